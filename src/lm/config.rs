//! Model configuration: the raw Hugging Face `config.json` as found on disk
//! (every field optional, serde defaults) resolved into one [`ModelConfig`]
//! with every value decided, and the same resolution from GGUF metadata
//! (`{arch}.block_count`, `{arch}.embedding_length`, … as written by
//! llama.cpp's `convert_hf_to_gguf.py`; key names from the GGUF spec,
//! <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The decoder families this crate runs. Each is described by its own file
/// under [`super::transformer`] ([`Arch::family`]), over shared layers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// Llama / SmolLM2 (Touvron et al. 2023): RMSNorm, rotate-half RoPE,
    /// grouped-query attention, SwiGLU MLP.
    Llama,
    /// Gemma (Gemma Team 2024): GeGLU MLP (tanh-approximate GELU), RMSNorm
    /// scaled by `(1 + w)`, embeddings multiplied by `sqrt(hidden_size)`,
    /// always-tied LM head.
    Gemma,
    /// Qwen2 (Yang et al. 2024): Llama with biases on the q/k/v projections.
    Qwen2,
}

impl Arch {
    /// Every family, in the order of the error message that lists them.
    pub const ALL: [Arch; 3] = [Arch::Llama, Arch::Gemma, Arch::Qwen2];

    /// The Hugging Face `model_type` string.
    pub fn hf_model_type(self) -> &'static str {
        self.family().hf_model_type
    }

    /// The Hugging Face `architectures[0]` class name.
    pub fn hf_architecture(self) -> &'static str {
        self.family().hf_architecture
    }

    /// Whether the MLP gate uses GELU (tanh approximation) instead of SiLU.
    pub fn gelu_gate(self) -> bool {
        self.family().activation == super::transformer::Activation::GeluTanh
    }

    /// The family named `name` (an HF `model_type` or a GGUF
    /// `general.architecture`).
    ///
    /// # Errors
    /// A name no family goes by.
    pub(crate) fn from_name(name: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|a| a.family().names.contains(&name)) {
            Some(a) => Ok(a),
            None => bail!("unsupported architecture {name:?} (supported: llama, gemma, qwen2)"),
        }
    }
}

/// A fully resolved decoder configuration. All sizes are counts (tokens,
/// features, heads); `head_dim * num_heads` need not equal `hidden_size`
/// (Gemma 7B).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Model family switch.
    pub arch: Arch,
    /// Number of token ids (rows of the embedding matrix).
    pub vocab_size: usize,
    /// Width of the residual stream `d`.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_layers: usize,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads (grouped-query attention; divides `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// RoPE base θ (Su et al. 2021): frequencies `θ^(-2i/head_dim)`.
    pub rope_theta: f64,
    /// Epsilon inside RMSNorm's square root.
    pub rms_norm_eps: f64,
    /// Whether the LM head reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Longest context the model was trained for (positions are not limited
    /// by the code, only by quality).
    pub max_position_embeddings: usize,
    /// Beginning-of-sequence token id, if the model has one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id(s) from the model's metadata.
    pub eos_token_ids: Vec<u32>,
}

impl ModelConfig {
    /// Checks internal consistency (divisibility of heads, non-zero sizes).
    ///
    /// # Errors
    /// A message naming the offending field.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
        ] {
            if v == 0 {
                bail!("config field {name} is 0");
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            bail!("num_heads {} is not a multiple of num_kv_heads {}", self.num_heads, self.num_kv_heads);
        }
        // Every weight's shape must be expressible for tch (i64 dimensions).
        for (name, a, b) in [
            ("num_heads * head_dim", self.num_heads, self.head_dim),
            ("num_kv_heads * head_dim", self.num_kv_heads, self.head_dim),
            ("vocab_size * hidden_size", self.vocab_size, self.hidden_size),
            ("hidden_size * intermediate_size", self.hidden_size, self.intermediate_size),
        ] {
            if a.checked_mul(b).is_none_or(|n| n > i64::MAX as usize) {
                bail!("config fields {name} = {a} * {b} overflow");
            }
        }
        if !self.head_dim.is_multiple_of(2) {
            bail!("head_dim {} must be even for RoPE", self.head_dim);
        }
        Ok(())
    }

    /// Reads a Hugging Face `config.json`.
    ///
    /// # Errors
    /// Unreadable file, bad JSON, unsupported `model_type` or a missing
    /// required field, each naming the file.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let raw: HfConfig = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        raw.resolve().with_context(|| format!("resolving {}", path.display()))
    }

    /// The Hugging Face `config.json` for this configuration (weights stored
    /// as f32), loadable by `transformers.AutoConfig`.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let eos = match self.eos_token_ids.as_slice() {
            [] => serde_json::Value::Null,
            [one] => serde_json::json!(one),
            many => serde_json::json!(many),
        };
        let act = if self.arch.gelu_gate() { "gelu_pytorch_tanh" } else { "silu" };
        serde_json::json!({
            "architectures": [self.arch.hf_architecture()],
            "model_type": self.arch.hf_model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "hidden_act": act,
            "hidden_activation": act,
            "attention_bias": false,
            "mlp_bias": false,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": eos,
            "torch_dtype": "float32",
            "use_cache": true,
        })
    }
}

/// `eos_token_id` may be one id or a list in `config.json`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

/// `config.json` as found on disk: every field optional; [`HfConfig::resolve`]
/// applies the defaults of the `transformers` config classes.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rope_theta: Option<f64>,
    rms_norm_eps: Option<f64>,
    tie_word_embeddings: Option<bool>,
    max_position_embeddings: Option<usize>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<OneOrMany>,
}

impl HfConfig {
    fn resolve(self) -> Result<ModelConfig> {
        let arch = Arch::from_name(self.model_type.as_deref().unwrap_or("llama"))?;
        let req = |v: Option<usize>, name: &str| v.with_context(|| format!("missing field {name}"));
        let hidden_size = req(self.hidden_size, "hidden_size")?;
        let num_heads = req(self.num_attention_heads, "num_attention_heads")?;
        let cfg = ModelConfig {
            arch,
            vocab_size: req(self.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: req(self.intermediate_size, "intermediate_size")?,
            num_layers: req(self.num_hidden_layers, "num_hidden_layers")?,
            num_heads,
            num_kv_heads: self.num_key_value_heads.unwrap_or(num_heads),
            head_dim: self.head_dim.unwrap_or(hidden_size / num_heads.max(1)),
            rope_theta: self.rope_theta.unwrap_or(10_000.0),
            rms_norm_eps: self.rms_norm_eps.unwrap_or(1e-6),
            // Gemma always ties; Llama and Qwen2 default to untied in transformers.
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(arch.family().tied_by_default),
            max_position_embeddings: self.max_position_embeddings.unwrap_or(2048),
            bos_token_id: self.bos_token_id,
            eos_token_ids: match self.eos_token_id {
                None => vec![],
                Some(OneOrMany::One(x)) => vec![x],
                Some(OneOrMany::Many(v)) => v,
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}
