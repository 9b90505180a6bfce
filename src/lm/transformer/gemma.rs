//! Gemma (Gemma Team 2024, "Gemma: Open Models Based on Gemini Research and
//! Technology"; reference implementation Hugging Face
//! `transformers/models/gemma/modeling_gemma.py`): the Llama block with a
//! GeGLU MLP (tanh-approximate GELU), RMSNorm scaled by `(1 + w)`,
//! embeddings multiplied by `sqrt(hidden_size)` and an always-tied LM head.

use super::block::PreNormBlock;
use super::layers::Activation;
use super::Family;

/// The Gemma family.
pub static GEMMA: Family = Family {
    names: &["gemma"],
    hf_model_type: "gemma",
    hf_architecture: "GemmaForCausalLM",
    activation: Activation::GeluTanh,
    norm_plus_one: true,
    scale_embeddings: true,
    qkv_bias: false,
    tied_by_default: true,
    gguf_qk_permuted: false,
    // llama.cpp's converter stores the norm weights as `1 + w`.
    gguf_norm_plus_one: true,
    load_layer: PreNormBlock::load,
};
