//! Qwen2 (Yang et al. 2024, "Qwen2 Technical Report"; reference
//! implementation Hugging Face `transformers/models/qwen2/modeling_qwen2.py`):
//! the Llama block with biases on the q/k/v projections.

use super::block::PreNormBlock;
use super::layers::Activation;
use super::Family;

/// The Qwen2 family.
pub static QWEN2: Family = Family {
    names: &["qwen2"],
    hf_model_type: "qwen2",
    hf_architecture: "Qwen2ForCausalLM",
    activation: Activation::Silu,
    norm_plus_one: false,
    scale_embeddings: false,
    qkv_bias: true,
    tied_by_default: false,
    gguf_qk_permuted: false,
    gguf_norm_plus_one: false,
    load_layer: PreNormBlock::load,
};
