//! Llama and SmolLM2 (Touvron et al. 2023, "LLaMA: Open and Efficient
//! Foundation Language Models"; reference implementation Hugging Face
//! `transformers/models/llama/modeling_llama.py`): RMSNorm, rotate-half
//! RoPE, grouped-query attention, SwiGLU MLP, in pre-norm blocks. Mistral
//! checkpoints load as Llama.

use super::block::PreNormBlock;
use super::layers::Activation;
use super::Family;

/// The Llama family.
pub static LLAMA: Family = Family {
    names: &["llama", "mistral"],
    hf_model_type: "llama",
    hf_architecture: "LlamaForCausalLM",
    activation: Activation::Silu,
    norm_plus_one: false,
    scale_embeddings: false,
    qkv_bias: false,
    // transformers' `LlamaConfig` defaults to an untied head.
    tied_by_default: false,
    // llama.cpp's converter permutes q/k rows for interleaved RoPE.
    gguf_qk_permuted: true,
    gguf_norm_plus_one: false,
    load_layer: PreNormBlock::load,
};
