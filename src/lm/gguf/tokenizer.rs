//! The chat tokenizer from a GGUF's `tokenizer.ggml.*` metadata: byte-level
//! BPE as in GPT-2 (Radford et al. 2019), the pre-tokenizer regex named by
//! `tokenizer.ggml.pre`.

use anyhow::{bail, Context, Result};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::{GgufFile, GgufValue};
use crate::lm::ChatTokenizer;

/// Qwen2's pre-tokenizer regex (from its `tokenizer.json`).
const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer regex (from its `tokenizer.json`).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

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
        let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let mut merges = Vec::with_capacity(merges_raw.len());
        for (i, m) in merges_raw.iter().enumerate() {
            let (a, b) = m
                .split_once(' ')
                .with_context(|| format!("{file}: tokenizer.ggml.merges[{i}] = {m:?} has no space"))?;
            merges.push((a.to_string(), b.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| anyhow::anyhow!("{file}: building BPE: {e}"))?;
        let mut tk = Tokenizer::new(bpe);
        let pre = g.meta_str("tokenizer.ggml.pre").unwrap_or_else(|_| "gpt2".to_string());
        let bl = |regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, regex));
        let split = |re: &str| -> Result<PreTokenizerWrapper> {
            let s = Split::new(SplitPattern::Regex(re.to_string()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| anyhow::anyhow!("{file}: pre-tokenizer regex: {e}"))?;
            Ok(PreTokenizerWrapper::Split(s))
        };
        let pt = match pre.as_str() {
            "smollm" => PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                bl(true),
            ])),
            "gpt2" | "default" => bl(true),
            "qwen2" => PreTokenizerWrapper::Sequence(Sequence::new(vec![split(QWEN2_REGEX)?, bl(false)])),
            "llama-bpe" | "llama3" => {
                PreTokenizerWrapper::Sequence(Sequence::new(vec![split(LLAMA3_REGEX)?, bl(false)]))
            }
            other => bail!("{file}: tokenizer.ggml.pre = {other:?} is not supported (smollm, gpt2, qwen2, llama-bpe)"),
        };
        tk.with_pre_tokenizer(Some(pt));
        tk.with_decoder(Some(ByteLevelDecoder::default()));
        tk.with_post_processor(Some(ByteLevel::new(false, false, true)));
        if let Some(types) = &types {
            if types.len() != tokens.len() {
                bail!("{file}: tokenizer.ggml.token_type has {} entries for {} tokens", types.len(), tokens.len());
            }
            let added: Vec<AddedToken> = tokens
                .iter()
                .zip(types)
                .filter(|(_, &t)| t == 3 || t == 4)
                .map(|(s, &t)| AddedToken::from(s.clone(), t == 3))
                .collect();
            tk.add_special_tokens(&added);
        }
        let bos_id = g.meta_usize_opt("tokenizer.ggml.bos_token_id")?.map(|v| v as u32);
        let add_bos = matches!(g.meta.get("tokenizer.ggml.add_bos_token"), Some(GgufValue::Bool(true)));
        let eos = g.meta_usize_opt("tokenizer.ggml.eos_token_id")?.map(|v| v as u32);
        let template = g.meta_str("tokenizer.chat_template").ok();
        let origin = format!("{file}: tokenizer.chat_template");
        Self::assemble(tk, bos_id, add_bos, eos.into_iter().collect(), template, &origin)
    }
}
