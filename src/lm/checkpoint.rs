//! Weight files: reading tensors from Hugging Face safetensors (single
//! file or sharded with `model.safetensors.index.json`; GGUF tensors are
//! read by [`super::gguf::gguf_tensor`]), and writing a
//! Hugging Face-layout `model.safetensors` (format:
//! <https://github.com/huggingface/safetensors>, 8-byte header length, JSON
//! header, little-endian data).

use anyhow::{anyhow, bail, Context, Result};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, TensorView};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

struct StFile {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    meta: Metadata,
}

/// Safetensors weights of a HF directory, memory-mapped.
pub struct SafetensorsSource {
    files: Vec<StFile>,
    index: HashMap<String, usize>,
}

/// Why a safetensors file fails to parse, with the first tensor whose data
/// lies past the end when the file is truncated.
fn diagnose_safetensors(path: &Path, buf: &[u8], err: safetensors::SafeTensorError) -> anyhow::Error {
    let hint = (|| {
        let n = u64::from_le_bytes(buf.get(..8)?.try_into().ok()?) as usize;
        let header: serde_json::Value = serde_json::from_slice(buf.get(8..8 + n)?).ok()?;
        let avail = buf.len().checked_sub(8 + n)?;
        let mut worst: Option<(u64, String)> = None;
        for (name, info) in header.as_object()? {
            let end = info.get("data_offsets").and_then(|o| o.get(1)).and_then(|e| e.as_u64());
            if let Some(end) = end {
                if end as usize > avail && worst.as_ref().is_none_or(|w| end < w.0) {
                    worst = Some((end, name.clone()));
                }
            }
        }
        worst.map(|(end, name)| {
            format!("tensor {name}: data ends at byte {end} of the data section, which has {avail} bytes (truncated?)")
        })
    })();
    match hint {
        Some(h) => anyhow!("{}: {h} ({err})", path.display()),
        None => anyhow!("{}: invalid safetensors file: {err}", path.display()),
    }
}

impl SafetensorsSource {
    /// Opens `dir/model.safetensors`, or the shards listed in
    /// `dir/model.safetensors.index.json`.
    ///
    /// # Errors
    /// Missing, unreadable or corrupt files (named, with the tensor when one
    /// is cut off).
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let paths: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index_path.exists() {
            let text =
                std::fs::read_to_string(&index_path).with_context(|| format!("reading {}", index_path.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", index_path.display()))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .with_context(|| format!("{}: no weight_map", index_path.display()))?;
            let mut files: Vec<String> = map.values().filter_map(|f| f.as_str().map(str::to_string)).collect();
            files.sort();
            files.dedup();
            files.into_iter().map(|f| dir.join(f)).collect()
        } else {
            bail!("{}: neither model.safetensors nor model.safetensors.index.json", dir.display());
        };
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for path in paths {
            let f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            // SAFETY: read-only map of a file we do not modify while it is mapped.
            let mmap = unsafe { Mmap::map(&f) }.with_context(|| format!("mapping {}", path.display()))?;
            let (header_len, meta) = match SafeTensors::read_metadata(&mmap) {
                Ok(x) => x,
                Err(e) => return Err(diagnose_safetensors(&path, &mmap, e)),
            };
            for name in meta.tensors().keys() {
                index.insert(name.clone(), files.len());
            }
            files.push(StFile { path, mmap, header_len, meta });
        }
        Ok(SafetensorsSource { files, index })
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The tensor `name` as a CPU f32 tensor (F32, F16 and BF16 are read).
    ///
    /// # Errors
    /// Missing tensor or unsupported dtype, naming the file and the tensor.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let &i = self
            .index
            .get(name)
            .with_context(|| format!("tensor {name} is not in the checkpoint ({} files)", self.files.len()))?;
        let f = &self.files[i];
        let info = f.meta.info(name).with_context(|| format!("{}: tensor {name} missing", f.path.display()))?;
        let (s, e) = info.data_offsets;
        let start = 8 + f.header_len;
        let bytes = f
            .mmap
            .get(start + s..start + e)
            .with_context(|| format!("{}: tensor {name}: data out of bounds", f.path.display()))?;
        let dims: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
        let kind = match info.dtype {
            Dtype::F32 => Kind::Float,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            other => bail!("{}: tensor {name}: unsupported dtype {other:?}", f.path.display()),
        };
        let t = Tensor::f_from_data_size(bytes, &dims, kind)
            .with_context(|| format!("{}: tensor {name}", f.path.display()))?;
        Ok(t.f_to_kind(Kind::Float)?)
    }
}

/// Writes `tensors` (HF name → tensor, any device, stored as f32) to
/// `path` as safetensors with `{"format": "pt"}` metadata.
///
/// # Errors
/// Conversion or I/O failure, naming the file.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * 4];
        t.f_copy_data_u8(&mut bytes, numel).with_context(|| format!("copying {name}"))?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        bufs.push((name.clone(), shape, bytes));
    }
    let mut views = Vec::with_capacity(bufs.len());
    for (name, shape, bytes) in &bufs {
        let v = TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(|e| anyhow!("{name}: {e}"))?;
        views.push((name.clone(), v));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}
