//! llama.cpp's tensor names and the tensors of a GGUF in Hugging Face
//! layout (dequantized, renamed, q/k rows un-permuted).

use anyhow::{anyhow, bail, Context, Result};
use tch::Tensor;

use super::permute::unpermute_qk;
use super::GgufFile;
use crate::lm::config::ModelConfig;

/// The GGUF name of an HF parameter name (llama.cpp's tensor map:
/// `token_embd`, `blk.N.attn_q`, `ffn_gate`, `output_norm`, `output`).
///
/// # Errors
/// A name with no GGUF counterpart.
pub fn hf_to_gguf(name: &str) -> Result<String> {
    let fixed = match name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Ok(f.to_string());
    }
    let rest = name.strip_prefix("model.layers.").with_context(|| format!("no GGUF name for {name}"))?;
    let (layer, tail) = rest.split_once('.').with_context(|| format!("no GGUF name for {name}"))?;
    let (module, kind) = tail.rsplit_once('.').with_context(|| format!("no GGUF name for {name}"))?;
    let g = match module {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => bail!("no GGUF name for {name}"),
    };
    Ok(format!("blk.{layer}.{g}.{kind}"))
}

/// Reads the HF-named parameter `hf` from a GGUF as a CPU f32 tensor in HF
/// layout: Llama q/k weights (and biases) are un-permuted, Gemma norm
/// weights get back their `- 1` (llama.cpp's converter stores `1 + w`).
///
/// # Errors
/// Missing tensor or corrupt data, naming the file and the GGUF tensor; a
/// q/k tensor that is not 1- or 2-dimensional, or whose rows do not split
/// into the configured heads, also names its shape.
pub fn gguf_tensor(g: &GgufFile, cfg: &ModelConfig, hf: &str) -> Result<Tensor> {
    let gname = hf_to_gguf(hf)?;
    let (shape, mut data) = g.tensor_f32(&gname)?;
    let heads = if gname.contains(".attn_q.") {
        Some(cfg.num_heads)
    } else if gname.contains(".attn_k.") {
        Some(cfg.num_kv_heads)
    } else {
        None
    };
    if let (Some(heads), true) = (heads, cfg.arch.family().gguf_qk_permuted) {
        // A weight is [rows, cols], a bias [rows]; anything else is corrupt.
        let (rows, cols) = match shape.as_slice() {
            [rows] => (*rows, 1),
            [rows, cols] => (*rows, *cols),
            _ => bail!(
                "{}: tensor {gname}: shape {shape:?} is neither [rows] nor [rows, cols], so its q/k rows cannot be un-permuted",
                g.path.display()
            ),
        };
        data = unpermute_qk(&data, rows, cols, heads)
            .map_err(|e| anyhow!("{}: tensor {gname}: shape {shape:?}: {e}", g.path.display()))?;
    }
    if cfg.arch.family().gguf_norm_plus_one && gname.ends_with("norm.weight") {
        data.iter_mut().for_each(|x| *x -= 1.0);
    }
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    Ok(Tensor::f_from_slice(&data)?.f_view(dims.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names() {
        assert_eq!(hf_to_gguf("model.layers.3.self_attn.k_proj.weight").unwrap(), "blk.3.attn_k.weight");
        assert_eq!(hf_to_gguf("model.layers.12.mlp.down_proj.weight").unwrap(), "blk.12.ffn_down.weight");
        assert_eq!(hf_to_gguf("model.layers.0.self_attn.q_proj.bias").unwrap(), "blk.0.attn_q.bias");
        assert_eq!(hf_to_gguf("model.embed_tokens.weight").unwrap(), "token_embd.weight");
        assert!(hf_to_gguf("model.layers.0.foo.weight").is_err());
    }
}
