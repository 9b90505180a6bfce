//! A model configuration from GGUF metadata (`general.architecture` and the
//! `{arch}.*` keys of the GGUF spec).

use anyhow::{bail, Context, Result};

use super::GgufFile;
use crate::lm::config::{Arch, ModelConfig};

impl ModelConfig {
    /// Reads GGUF metadata (`general.architecture` and `{arch}.*` keys) into a
    /// config. `vocab_size` comes from `{arch}.vocab_size`, else the length of
    /// `tokenizer.ggml.tokens`; the head is tied when there is no
    /// `output.weight` tensor.
    ///
    /// # Errors
    /// A missing required key, named with the file.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let arch_name = g.meta_str("general.architecture")?;
        let arch = Arch::from_name(&arch_name).with_context(|| format!("{}", g.path.display()))?;
        let k = |s: &str| format!("{arch_name}.{s}");
        let hidden_size = g.meta_usize(&k("embedding_length"))?;
        let num_heads = g.meta_usize(&k("attention.head_count"))?;
        let num_kv_heads = g.meta_usize_opt(&k("attention.head_count_kv"))?.unwrap_or(num_heads);
        let head_dim = match g.meta_usize_opt(&k("attention.key_length"))? {
            Some(d) => d,
            None => hidden_size.checked_div(num_heads).with_context(|| {
                format!("{}: metadata key {}: 0 heads", g.path.display(), k("attention.head_count"))
            })?,
        };
        let vocab_size = match g.meta_usize_opt(&k("vocab_size"))? {
            Some(v) => v,
            None => g.meta_array_len("tokenizer.ggml.tokens")?,
        };
        let rope_theta = g.meta_f64_opt(&k("rope.freq_base"))?.unwrap_or(10_000.0);
        let rms_norm_eps = g.meta_f64_opt(&k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6);
        let tie = !g.has_tensor("output.weight");
        let eos = g.meta_usize_opt("tokenizer.ggml.eos_token_id")?.map(|v| v as u32);
        let cfg = ModelConfig {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size: g.meta_usize(&k("feed_forward_length"))?,
            num_layers: g.meta_usize(&k("block_count"))?,
            num_heads,
            num_kv_heads,
            head_dim,
            rope_theta,
            rms_norm_eps,
            tie_word_embeddings: tie,
            max_position_embeddings: g.meta_usize_opt(&k("context_length"))?.unwrap_or(2048),
            bos_token_id: g.meta_usize_opt("tokenizer.ggml.bos_token_id")?.map(|v| v as u32),
            eos_token_ids: eos.into_iter().collect(),
        };
        cfg.validate().with_context(|| format!("config from {}", g.path.display()))?;
        // Every layer has its own tensors, so a block count above the number
        // of tensors is corrupt (and would size the model's layer list).
        if cfg.num_layers > g.tensors.len() {
            bail!(
                "{}: metadata key {}: {} layers, but the file has only {} tensors",
                g.path.display(),
                k("block_count"),
                cfg.num_layers,
                g.tensors.len()
            );
        }
        Ok(cfg)
    }
}
