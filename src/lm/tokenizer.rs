//! The chat tokenizer: a `tokenizers::Tokenizer` built from a GGUF's
//! vocabulary (byte-level BPE as in GPT-2, Radford et al. 2019: `Ġ`-encoded
//! tokens, ranked merges, the pre-tokenizer regex named by
//! `tokenizer.ggml.pre`) or loaded from a `tokenizer.json`, plus the model's
//! special ids and its ChatML prompt format
//! (`<|im_start|>role\n…<|im_end|>\n`).

use anyhow::{bail, Context, Result};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::gguf::GgufFile;

/// Qwen2's pre-tokenizer regex (from its `tokenizer.json`).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer regex (from its `tokenizer.json`).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer with the model's special tokens and chat format.
///
/// Encoding never adds special tokens by itself; special token strings that
/// appear in the text (`<|im_start|>`) are encoded as their single ids.
#[derive(Clone)]
pub struct ChatTokenizer {
    inner: Tokenizer,
    eos_ids: Vec<u32>,
    bos: Option<(u32, String)>,
    add_bos: bool,
    default_system: Option<String>,
    chat_template: Option<String>,
}

impl std::fmt::Debug for ChatTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("eos_ids", &self.eos_ids)
            .field("bos", &self.bos)
            .finish()
    }
}

/// Extracts the default system message from a ChatML Jinja template such
/// as SmolLM2's (`'<|im_start|>system\nYou are … Hugging Face<|im_end|>\n'`).
fn default_system_from_template(t: &str) -> Option<String> {
    let start = "<|im_start|>system\\n";
    let i = t.find(start)? + start.len();
    let rest = &t[i..];
    let j = rest.find("<|im_end|>")?;
    let msg = &rest[..j];
    // A template that splices in the caller's message has Jinja syntax here.
    if msg.is_empty() || msg.contains('{') || msg.contains('\'') || msg.contains('+') {
        return None;
    }
    Some(msg.replace("\\n", "\n"))
}

impl ChatTokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata: tokens, merges,
    /// token types (3 = control, 4 = user-defined become added tokens),
    /// bos/eos ids and the chat template.
    ///
    /// # Errors
    /// A non-BPE tokenizer model (`tokenizer.ggml.model` other than `gpt2`),
    /// an unknown pre-tokenizer, or malformed merges, naming the file.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let file = g.path.display();
        let model = g.meta_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            bail!("{file}: tokenizer.ggml.model = {model:?}: only byte-level BPE (\"gpt2\") is built from GGUF; import a Hugging Face directory with tokenizer.json instead");
        }
        let tokens = g.meta_strings("tokenizer.ggml.tokens")?;
        let merges_raw = g.meta_strings("tokenizer.ggml.merges")?;
        let types = g.meta_ints_opt("tokenizer.ggml.token_type")?;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut merges = Vec::with_capacity(merges_raw.len());
        for (i, m) in merges_raw.iter().enumerate() {
            let (a, b) = m.split_once(' ').with_context(|| {
                format!("{file}: tokenizer.ggml.merges[{i}] = {m:?} has no space")
            })?;
            merges.push((a.to_string(), b.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| anyhow::anyhow!("{file}: building BPE: {e}"))?;
        let mut tk = Tokenizer::new(bpe);
        let pre = g
            .meta_str("tokenizer.ggml.pre")
            .unwrap_or_else(|_| "gpt2".to_string());
        let bl = |regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, regex));
        let split = |re: &str| -> Result<PreTokenizerWrapper> {
            let s = Split::new(
                SplitPattern::Regex(re.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| anyhow::anyhow!("{file}: pre-tokenizer regex: {e}"))?;
            Ok(PreTokenizerWrapper::Split(s))
        };
        let pt = match pre.as_str() {
            "smollm" => PreTokenizerWrapper::Sequence(Sequence::new(vec![PreTokenizerWrapper::Digits(Digits::new(true)), bl(true)])),
            "gpt2" | "default" => bl(true),
            "qwen2" => PreTokenizerWrapper::Sequence(Sequence::new(vec![split(QWEN2_REGEX)?, bl(false)])),
            "llama-bpe" | "llama3" => PreTokenizerWrapper::Sequence(Sequence::new(vec![split(LLAMA3_REGEX)?, bl(false)])),
            other => bail!("{file}: tokenizer.ggml.pre = {other:?} is not supported (smollm, gpt2, qwen2, llama-bpe)"),
        };
        tk.with_pre_tokenizer(Some(pt));
        tk.with_decoder(Some(ByteLevelDecoder::default()));
        tk.with_post_processor(Some(ByteLevel::new(false, false, true)));
        if let Some(types) = &types {
            if types.len() != tokens.len() {
                bail!(
                    "{file}: tokenizer.ggml.token_type has {} entries for {} tokens",
                    types.len(),
                    tokens.len()
                );
            }
            let added: Vec<AddedToken> = tokens
                .iter()
                .zip(types)
                .filter(|(_, &t)| t == 3 || t == 4)
                .map(|(s, &t)| AddedToken::from(s.clone(), t == 3))
                .collect();
            tk.add_special_tokens(&added);
        }
        let bos_id = g
            .meta_usize_opt("tokenizer.ggml.bos_token_id")?
            .map(|v| v as u32);
        let add_bos = matches!(
            g.meta.get("tokenizer.ggml.add_bos_token"),
            Some(super::gguf::GgufValue::Bool(true))
        );
        let eos = g
            .meta_usize_opt("tokenizer.ggml.eos_token_id")?
            .map(|v| v as u32);
        let template = g.meta_str("tokenizer.chat_template").ok();
        Self::assemble(tk, bos_id, add_bos, eos.into_iter().collect(), template)
    }

    /// Loads `tokenizer.json` (and, when present next to it,
    /// `tokenizer_config.json` for the chat template and `add_bos_token`).
    /// `bos`/`eos` come from the model's `config.json`.
    ///
    /// # Errors
    /// Unreadable or invalid files, naming them.
    pub fn from_hf_dir(dir: &Path, bos: Option<u32>, eos: &[u32]) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let tk = Tokenizer::from_file(&path)
            .map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let (mut template, mut add_bos) = (None, false);
        if cfg_path.exists() {
            let text = std::fs::read_to_string(&cfg_path)
                .with_context(|| format!("reading {}", cfg_path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", cfg_path.display()))?;
            template = v
                .get("chat_template")
                .and_then(|t| t.as_str())
                .map(str::to_string);
            add_bos = v
                .get("add_bos_token")
                .and_then(|t| t.as_bool())
                .unwrap_or(false);
        }
        Self::assemble(tk, bos, add_bos, eos.to_vec(), template)
    }

    fn assemble(
        inner: Tokenizer,
        bos_id: Option<u32>,
        add_bos: bool,
        mut eos_ids: Vec<u32>,
        chat_template: Option<String>,
    ) -> Result<Self> {
        // Chat models end a turn with <|im_end|>; base models with <|endoftext|>.
        for s in ["<|im_end|>", "<|endoftext|>"] {
            if let Some(id) = inner.token_to_id(s) {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }
        let bos = match bos_id {
            Some(id) => Some((
                id,
                inner
                    .id_to_token(id)
                    .with_context(|| format!("bos id {id} is not in the vocabulary"))?,
            )),
            None => None,
        };
        let default_system = chat_template
            .as_deref()
            .and_then(default_system_from_template);
        Ok(ChatTokenizer {
            inner,
            eos_ids,
            bos,
            add_bos,
            default_system,
            chat_template,
        })
    }

    /// Token ids of `text` (no special tokens added).
    ///
    /// # Errors
    /// The tokenizer's error (e.g. a regex failure), as text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow::anyhow!("encoding: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included verbatim.
    ///
    /// # Errors
    /// An id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| anyhow::anyhow!("decoding: {e}"))
    }

    /// The ChatML prompt for one user turn, ending in
    /// `<|im_start|>assistant\n` so that the model writes the answer. Without
    /// `system`, the model's default system message (from its chat template,
    /// e.g. SmolLM2's) is used when it has one.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str) -> String {
        let mut s = String::new();
        if self.add_bos {
            if let Some((_, b)) = &self.bos {
                s.push_str(b);
            }
        }
        if let Some(sys) = system.or(self.default_system.as_deref()) {
            s.push_str("<|im_start|>system\n");
            s.push_str(sys);
            s.push_str("<|im_end|>\n");
        }
        s.push_str("<|im_start|>user\n");
        s.push_str(user);
        s.push_str("<|im_end|>\n<|im_start|>assistant\n");
        s
    }

    /// Ids that end a generation (the model's eos plus `<|im_end|>` and
    /// `<|endoftext|>` when in the vocabulary).
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// The beginning-of-sequence id, if any.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos.as_ref().map(|b| b.0)
    }

    /// The id of a token string (special or ordinary), if in the vocabulary.
    pub fn token_id(&self, s: &str) -> Option<u32> {
        self.inner.token_to_id(s)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` (chat template,
    /// bos/eos strings) into `dir`, as Hugging Face `AutoTokenizer` reads them.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join("tokenizer.json");
        self.inner
            .save(&path, false)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        let tok = |id: Option<u32>| id.and_then(|i| self.inner.id_to_token(i));
        let cfg = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": self.add_bos,
            "add_eos_token": false,
            "bos_token": tok(self.bos_id()),
            "eos_token": tok(self.eos_ids.first().copied()),
            "pad_token": tok(self.eos_ids.first().copied()),
            "chat_template": self.chat_template,
            "clean_up_tokenization_spaces": false,
            "model_max_length": 8192,
        });
        let path = dir.join("tokenizer_config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&cfg)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}
