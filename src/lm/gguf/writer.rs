//! Writing a checkpoint as a GGUF file that llama.cpp serves: the inverse of
//! [`super::tensors::gguf_tensor`].
//!
//! Layout as the reader expects it (GGUF spec v3): magic, version 3, tensor
//! and metadata counts, the metadata pairs, the tensor infos (name, dims
//! innermost first, ggml type, offset from the start of the data), padding
//! to `general.alignment`, then each tensor's data at an aligned offset.
//!
//! The metadata comes from the base GGUF the checkpoint was trained from
//! (architecture keys, tokenizer vocabulary, merges, special ids and chat
//! template), copied byte for byte so every value keeps its stored type;
//! only `general.file_type` is written anew and `general.quantization_version`
//! is dropped (nothing is quantized). Weights follow `convert_hf_to_gguf.py`'s
//! conventions: Llama q/k rows permuted to the interleaved order, Gemma norm
//! weights stored as `1 + w`, one-dimensional tensors kept F32 in an F16
//! file, no `output.weight` for a tied head.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use super::permute::permute_qk;
use super::tensors::hf_to_gguf;
use super::GgufFile;
use crate::lm::config::ModelConfig;
use crate::lm::LanguageModel;

/// The element type of an exported GGUF's weight matrices.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportDtype {
    /// 32-bit floats: the checkpoint exactly (`general.file_type` 0, `ALL_F32`).
    F32,
    /// IEEE half for matrices, F32 for vectors (`general.file_type` 1,
    /// `MOSTLY_F16`): half the bytes, values rounded to 11 bits.
    F16,
}

impl ExportDtype {
    /// llama.cpp's `llama_ftype` value for `general.file_type`.
    fn file_type(self) -> u32 {
        match self {
            ExportDtype::F32 => 0,
            ExportDtype::F16 => 1,
        }
    }
}

/// What [`write_gguf`] wrote.
#[derive(Debug, serde::Serialize)]
pub struct ExportSummary {
    /// Tensors written.
    pub tensors: usize,
    /// Metadata pairs written (copied plus `general.file_type`).
    pub metadata: usize,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// One tensor ready to write: GGUF name, dims innermost first, ggml type id,
/// little-endian data.
struct Out {
    name: String,
    dims: Vec<u64>,
    ty: u32,
    data: Vec<u8>,
}

/// Writes `model` (a checkpoint in HF layout) to `out` as a GGUF with the
/// metadata of `base`, the GGUF it was trained from; the file is written to
/// `out` with a `.partial` suffix first and renamed when complete.
///
/// # Errors
/// A model whose shape-defining configuration differs from `base`'s (naming
/// the field), a parameter with no GGUF name, a tensor of `base` the model
/// lacks or the reverse, q/k shapes that do not split into heads, and I/O
/// errors naming the file.
pub fn write_gguf(out: &Path, base: &GgufFile, model: &LanguageModel, dtype: ExportDtype) -> Result<ExportSummary> {
    let cfg = model.config();
    check_same_shape(cfg, &ModelConfig::from_gguf(base)?, &base.path)?;
    let mut vars: std::collections::BTreeMap<String, Tensor> = model.var_store().variables().into_iter().collect();
    if cfg.tie_word_embeddings {
        vars.remove("lm_head.weight");
    }
    let mut by_gguf = std::collections::BTreeMap::new();
    for (hf, t) in vars {
        by_gguf.insert(hf_to_gguf(&hf)?, (hf, t));
    }
    // The base's tensor order, then nothing left over on either side.
    let mut tensors = Vec::with_capacity(by_gguf.len());
    for info in &base.tensors {
        let (hf, t) = by_gguf.remove(&info.name).with_context(|| {
            format!("{}: tensor {} has no counterpart in the checkpoint", base.path.display(), info.name)
        })?;
        tensors.push(tensor_out(cfg, &info.name, &hf, &t, dtype)?);
    }
    if let Some((g, (hf, _))) = by_gguf.into_iter().next() {
        bail!("the checkpoint's {hf} ({g}) is not a tensor of the base {}", base.path.display());
    }

    let align = base.alignment();
    let mut meta: Vec<Vec<u8>> = base
        .raw_metadata()
        .filter(|(k, _)| !matches!(*k, "general.file_type" | "general.quantization_version"))
        .map(|(_, b)| b.to_vec())
        .collect();
    let mut ft = string_bytes("general.file_type");
    ft.extend_from_slice(&4u32.to_le_bytes()); // GGUF_TYPE_UINT32
    ft.extend_from_slice(&dtype.file_type().to_le_bytes());
    meta.push(ft);

    // The header (metadata and tensor table) is small next to the weights:
    // build it in memory, then stream header, padding and tensor data.
    let mut header = Vec::new();
    header.extend_from_slice(b"GGUF");
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    for m in &meta {
        header.extend_from_slice(m);
    }
    let align = align as u64;
    let mut offset = 0u64;
    for t in &tensors {
        header.extend_from_slice(&string_bytes(&t.name));
        header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            header.extend_from_slice(&d.to_le_bytes());
        }
        header.extend_from_slice(&t.ty.to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        offset = (offset + t.data.len() as u64).next_multiple_of(align);
    }
    let padding = |len: usize| vec![0u8; ((len as u64).next_multiple_of(align) - len as u64) as usize];
    header.extend(padding(header.len()));

    let partial = out.with_extension("gguf.partial");
    let io = |e: std::io::Error| anyhow::anyhow!("writing {}: {e}", partial.display());
    let file = std::fs::File::create(&partial).map_err(io)?;
    let mut w = BufWriter::new(file);
    w.write_all(&header).map_err(io)?;
    for t in &tensors {
        w.write_all(&t.data).map_err(io)?;
        w.write_all(&padding(t.data.len())).map_err(io)?;
    }
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    std::fs::rename(&partial, out).with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    Ok(ExportSummary { tensors: tensors.len(), metadata: meta.len(), bytes })
}

/// A GGUF string: u64 length, then the UTF-8 bytes.
fn string_bytes(s: &str) -> Vec<u8> {
    let mut b = (s.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(s.as_bytes());
    b
}

/// The tensor `hf` (GGUF name `gname`) in GGUF layout and `dtype`.
fn tensor_out(cfg: &ModelConfig, gname: &str, hf: &str, t: &Tensor, dtype: ExportDtype) -> Result<Out> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let t = t.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    let mut data = Vec::<f32>::try_from(&t.f_flatten(0, -1)?).with_context(|| format!("reading {hf}"))?;
    let heads = if gname.contains(".attn_q.") {
        Some(cfg.num_heads)
    } else if gname.contains(".attn_k.") {
        Some(cfg.num_kv_heads)
    } else {
        None
    };
    if let (Some(heads), true) = (heads, cfg.arch.family().gguf_qk_permuted) {
        let (rows, cols) = match shape.as_slice() {
            [rows] => (*rows, 1),
            [rows, cols] => (*rows, *cols),
            _ => bail!("{hf}: shape {shape:?} is neither [rows] nor [rows, cols]"),
        };
        data = permute_qk(&data, rows, cols, heads).map_err(|e| anyhow::anyhow!("{hf}: shape {shape:?}: {e}"))?;
    }
    if cfg.arch.family().gguf_norm_plus_one && gname.ends_with("norm.weight") {
        data.iter_mut().for_each(|x| *x += 1.0);
    }
    let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
    let (ty, bytes) = if dtype == ExportDtype::F16 && shape.len() >= 2 {
        let h = Tensor::f_from_slice(&data)?.f_to_kind(Kind::Half)?;
        let mut b = vec![0u8; data.len() * 2];
        h.f_copy_data_u8(&mut b, data.len())?;
        (1u32, b) // GGML_TYPE_F16
    } else {
        (0u32, data.iter().flat_map(|x| x.to_le_bytes()).collect()) // GGML_TYPE_F32
    };
    Ok(Out { name: gname.to_owned(), dims, ty, data: bytes })
}

/// Refuses a checkpoint whose shape-defining configuration differs from the
/// base GGUF's, naming the first field that differs.
fn check_same_shape(model: &ModelConfig, base: &ModelConfig, base_path: &Path) -> Result<()> {
    let fields: [(&str, String, String); 9] = [
        ("architecture", format!("{:?}", model.arch), format!("{:?}", base.arch)),
        ("vocab_size", model.vocab_size.to_string(), base.vocab_size.to_string()),
        ("hidden_size", model.hidden_size.to_string(), base.hidden_size.to_string()),
        ("intermediate_size", model.intermediate_size.to_string(), base.intermediate_size.to_string()),
        ("num_layers", model.num_layers.to_string(), base.num_layers.to_string()),
        ("num_heads", model.num_heads.to_string(), base.num_heads.to_string()),
        ("num_kv_heads", model.num_kv_heads.to_string(), base.num_kv_heads.to_string()),
        ("head_dim", model.head_dim.to_string(), base.head_dim.to_string()),
        ("tie_word_embeddings", model.tie_word_embeddings.to_string(), base.tie_word_embeddings.to_string()),
    ];
    for (name, m, b) in fields {
        if m != b {
            bail!(
                "the checkpoint's {name} is {m} but the base {} has {b}: export needs the GGUF it was trained from",
                base_path.display()
            );
        }
    }
    Ok(())
}
