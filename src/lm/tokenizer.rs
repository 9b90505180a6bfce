//! The chat tokenizer: a `tokenizers::Tokenizer` built from a GGUF's
//! vocabulary (byte-level BPE as in GPT-2, Radford et al. 2019: `Ġ`-encoded
//! tokens, ranked merges, the pre-tokenizer regex named by
//! `tokenizer.ggml.pre`; see [`super::gguf`]) or loaded from a
//! `tokenizer.json`, plus the model's
//! special ids and its chat template ([`super::chat_template`]).
//!
//! Control tokens come from the template only: user text (requests, profile
//! items, expected outputs, responses being judged, training targets) is
//! encoded as plain text, so a literal `<|im_end|>` in it is ten ordinary
//! tokens, never the end-of-turn id.

use anyhow::{Context, Result};
use std::path::Path;
use tokenizers::Tokenizer;

use super::chat_template::{ChatRole, ChatTemplate, Segment, CHATML_TEMPLATE, PLAIN_TEMPLATE};

/// A tokenizer with the model's special tokens and chat template.
///
/// [`ChatTokenizer::encode`] never adds special tokens and never reads one
/// out of the text; only [`ChatTokenizer::chat`] puts control tokens into a
/// prompt, where the template wrote them.
#[derive(Clone)]
pub struct ChatTokenizer {
    /// Recognizes special-token strings (for template text only).
    inner: Tokenizer,
    /// Encodes special-token strings as plain text (for user text).
    plain: Tokenizer,
    eos_ids: Vec<u32>,
    bos: Option<(u32, String)>,
    add_bos: bool,
    /// The template as shipped (`None`: a built-in one is used).
    chat_template: Option<String>,
    /// The compiled template in use.
    template: ChatTemplate,
    /// The id that closes an assistant turn (the M-step's target terminator).
    end_of_turn: u32,
}

/// A chat prompt: the text the model sees and its ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatPrompt {
    /// The rendered prompt (for display and digests).
    pub text: String,
    /// Its ids: template segments with control tokens, contents as plain
    /// text.
    pub ids: Vec<u32>,
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

impl ChatTokenizer {
    /// Loads `tokenizer.json` (and, when present next to it,
    /// `tokenizer_config.json` for the chat template and `add_bos_token`).
    /// `bos`/`eos` come from the model's `config.json`.
    ///
    /// # Errors
    /// Unreadable or invalid files, naming them.
    pub fn from_hf_dir(dir: &Path, bos: Option<u32>, eos: &[u32]) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let tk = Tokenizer::from_file(&path).map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let (mut template, mut add_bos) = (None, false);
        if cfg_path.exists() {
            let text = std::fs::read_to_string(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", cfg_path.display()))?;
            template = v.get("chat_template").and_then(|t| t.as_str()).map(str::to_string);
            add_bos = v.get("add_bos_token").and_then(|t| t.as_bool()).unwrap_or(false);
        }
        let origin = format!("{}: chat_template", cfg_path.display());
        Self::assemble(tk, bos, add_bos, eos.to_vec(), template, &origin)
    }

    /// The tokenizer of `inner` with the model's special ids and chat
    /// template (`origin` names where the template came from, in errors).
    pub(super) fn assemble(
        inner: Tokenizer,
        bos_id: Option<u32>,
        add_bos: bool,
        mut eos_ids: Vec<u32>,
        chat_template: Option<String>,
        origin: &str,
    ) -> Result<Self> {
        let bos = match bos_id {
            Some(id) => {
                Some((id, inner.id_to_token(id).with_context(|| format!("bos id {id} is not in the vocabulary"))?))
            }
            None => None,
        };
        let template = match &chat_template {
            Some(t) => ChatTemplate::new(t, origin)?,
            None if inner.token_to_id("<|im_start|>").is_some() => {
                ChatTemplate::new(CHATML_TEMPLATE, "built-in ChatML template")?
            }
            None => ChatTemplate::new(PLAIN_TEMPLATE, "built-in plain template")?,
        };
        let mut plain = inner.clone();
        plain.set_encode_special_tokens(true);
        let eos_text = eos_ids.first().and_then(|&id| inner.id_to_token(id)).unwrap_or_default();
        let bos_text = bos.as_ref().map(|b| b.1.clone()).unwrap_or_default();
        // The end of turn is the first special token the template writes
        // after an assistant answer (`<|im_end|>`, `<end_of_turn>`), else eos.
        let turn_end = template.assistant_turn_end(&bos_text, &eos_text)?;
        let turn_end_ids = inner
            .encode(turn_end.as_str(), false)
            .map_err(|e| anyhow::anyhow!("{origin}: encoding the end of an assistant turn: {e}"))?;
        let special: std::collections::HashSet<u32> =
            inner.get_added_tokens_decoder().iter().filter(|(_, t)| t.special).map(|(&id, _)| id).collect();
        let end_of_turn = turn_end_ids
            .get_ids()
            .iter()
            .copied()
            .find(|id| special.contains(id))
            .or_else(|| eos_ids.first().copied())
            .with_context(|| {
                format!("{origin}: the template closes an assistant turn with {turn_end:?}, which holds no control token, and the model has no eos id")
            })?;
        if !eos_ids.contains(&end_of_turn) {
            eos_ids.push(end_of_turn);
        }
        // A base model ends its text with <|endoftext|> even inside a turn.
        if let Some(id) = inner.token_to_id("<|endoftext|>") {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        Ok(ChatTokenizer { inner, plain, eos_ids, bos, add_bos, chat_template, template, end_of_turn })
    }

    /// Token ids of `text` as plain text: no special tokens added, and
    /// special-token strings in it (`<|im_end|>`) encoded as ordinary text.
    ///
    /// # Errors
    /// The tokenizer's error (e.g. a regex failure), as text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.plain.encode(text, false).map_err(|e| anyhow::anyhow!("encoding: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included verbatim.
    ///
    /// # Errors
    /// An id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| anyhow::anyhow!("decoding: {e}"))
    }

    /// The prompt for one user turn as the model's chat template renders
    /// it (`add_generation_prompt`, so it ends where the assistant's answer
    /// starts), with the template's default system turn when `system` is
    /// `None` and the template has one. Contents are trimmed and encoded as
    /// plain text; a bos token is prepended when the model asks for one and
    /// the template did not write it.
    ///
    /// # Errors
    /// A template error (naming the template's origin) or a tokenizer error.
    pub fn chat(&self, system: Option<&str>, user: &str) -> Result<ChatPrompt> {
        let mut messages = Vec::with_capacity(2);
        if let Some(sys) = system {
            messages.push((ChatRole::System, sys));
        }
        messages.push((ChatRole::User, user));
        let bos_text = self.bos.as_ref().map(|b| b.1.as_str()).unwrap_or("");
        let eos_text = self.eos_ids.first().and_then(|&id| self.inner.id_to_token(id)).unwrap_or_default();
        let rendered = self.template.render(&messages, true, bos_text, &eos_text)?;
        let mut text = String::new();
        let mut ids = Vec::new();
        for seg in &rendered.segments {
            match seg {
                Segment::Template(t) => {
                    let enc = self
                        .inner
                        .encode(t.as_str(), false)
                        .map_err(|e| anyhow::anyhow!("encoding the chat template's text: {e}"))?;
                    ids.extend_from_slice(enc.get_ids());
                    text.push_str(t);
                }
                Segment::Content(c) => {
                    ids.extend(self.encode(c)?);
                    text.push_str(c);
                }
            }
        }
        if self.add_bos {
            if let Some((id, b)) = &self.bos {
                if ids.first() != Some(id) {
                    ids.insert(0, *id);
                    text.insert_str(0, b);
                }
            }
        }
        Ok(ChatPrompt { text, ids })
    }

    /// The id that closes an assistant turn in this model's template
    /// (`<|im_end|>` for ChatML, `<end_of_turn>` for Gemma): the M-step
    /// appends it to every target so the policy learns to stop.
    pub fn end_of_turn_id(&self) -> u32 {
        self.end_of_turn
    }

    /// Ids that end a generation: the model's eos, the template's end of
    /// turn ([`ChatTokenizer::end_of_turn_id`]) and `<|endoftext|>` when in
    /// the vocabulary.
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
        self.inner.save(&path, false).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
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
