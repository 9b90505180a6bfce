//! A BERT encoder on tch for dense retrieval (MiniLM / Contriever).
//!
//! Architecture as Hugging Face `BertModel` (Devlin et al. 2019): word +
//! position + token-type embeddings, LayerNorm, then `num_hidden_layers`
//! post-norm blocks of multi-head self-attention and a GELU (erf) MLP.
//! Sentence embedding = mean of the last hidden states over non-padding
//! tokens (sentence-transformers `Pooling(mean_tokens)`, and Contriever's
//! `mean_pooling`), optionally L2-normalised (all-MiniLM-L6-v2's
//! `Normalize` module). Score = dot product.
//!
//! Weights: `model.safetensors` with or without the `bert.` prefix (the
//! set-up's MiniLM lacks it, `facebook/contriever`'s `BertModel` export too,
//! a `BertForMaskedLM` export has it), F32, F16 or BF16 (converted to f32).
//! Inference only: no gradients, one owner (tch tensors are `Send`, not
//! `Sync`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use tch::{Device, Kind, Tensor};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{document_text, query_text, top_k, Retriever};
use crate::data::Example;

/// `config.json` fields the encoder needs (Hugging Face `BertConfig`).
#[derive(Clone, Debug, Deserialize)]
struct BertConfig {
    hidden_size: i64,
    num_hidden_layers: usize,
    num_attention_heads: i64,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_max_pos")]
    max_position_embeddings: usize,
    #[serde(default)]
    hidden_act: Option<String>,
}

fn default_eps() -> f64 {
    1e-12
}
fn default_max_pos() -> usize {
    512
}

/// Options of the dense encoder.
#[derive(Clone, Debug)]
pub struct DenseOptions {
    /// L2-normalise embeddings (MiniLM: yes; Contriever: no).
    pub normalize: bool,
    /// Token limit per text; `None`: `sentence_bert_config.json`'s
    /// `max_seq_length` when present, else `max_position_embeddings`.
    pub max_len: Option<usize>,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Device (CPU by default).
    pub device: Device,
}

impl Default for DenseOptions {
    fn default() -> Self {
        DenseOptions { normalize: true, max_len: None, batch_size: 16, device: Device::Cpu }
    }
}

struct Layer {
    q_w: Tensor,
    q_b: Tensor,
    k_w: Tensor,
    k_b: Tensor,
    v_w: Tensor,
    v_b: Tensor,
    ao_w: Tensor,
    ao_b: Tensor,
    ln1_w: Tensor,
    ln1_b: Tensor,
    i_w: Tensor,
    i_b: Tensor,
    o_w: Tensor,
    o_b: Tensor,
    ln2_w: Tensor,
    ln2_b: Tensor,
}

/// A BERT sentence encoder (see the module docs).
pub struct BertEncoder {
    cfg: BertConfig,
    tokenizer: Tokenizer,
    word: Tensor,
    pos: Tensor,
    tok_type: Tensor,
    emb_ln_w: Tensor,
    emb_ln_b: Tensor,
    layers: Vec<Layer>,
    opts: DenseOptions,
    max_len: usize,
    dir: PathBuf,
}

/// Reads safetensors tensors into f32 tch tensors on `device`.
fn load_tensors(path: &Path, device: Device) -> anyhow::Result<HashMap<String, Tensor>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: the file is opened read-only and not modified while mapped.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&mmap).with_context(|| format!("parsing {}", path.display()))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let shape: Vec<i64> = view.shape().iter().map(|d| *d as i64).collect();
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => {
                data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            }
            safetensors::Dtype::F16 => {
                data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
            }
            safetensors::Dtype::BF16 => {
                data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
            }
            // Integer buffers (position_ids) are not weights.
            _ => continue,
        };
        let t = Tensor::f_from_slice(&values)?
            .f_reshape(shape.as_slice())
            .with_context(|| format!("{}: tensor {name}: reshaping to {shape:?}", path.display()))?
            .f_to_device(device)?;
        out.insert(name, t);
    }
    Ok(out)
}

impl BertEncoder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from
    /// `dir`.
    ///
    /// # Errors
    /// Missing files; a tensor absent or of the wrong shape (naming the
    /// tensor path and both shapes); an unsupported activation.
    pub fn load(dir: &Path, opts: DenseOptions) -> anyhow::Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg: BertConfig = serde_json::from_str(
            &std::fs::read_to_string(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?,
        )
        .with_context(|| format!("parsing {}", cfg_path.display()))?;
        if let Some(act) = &cfg.hidden_act {
            anyhow::ensure!(act == "gelu", "{}: hidden_act {act:?} unsupported (only gelu)", cfg_path.display());
        }
        anyhow::ensure!(
            cfg.hidden_size % cfg.num_attention_heads == 0,
            "{}: hidden_size {} not divisible by num_attention_heads {}",
            cfg_path.display(),
            cfg.hidden_size,
            cfg.num_attention_heads
        );
        let max_len = match opts.max_len {
            Some(m) => m,
            None => {
                let sb = dir.join("sentence_bert_config.json");
                std::fs::read_to_string(&sb)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .and_then(|v| v.get("max_seq_length").and_then(|m| m.as_u64()))
                    .map(|m| m as usize)
                    .unwrap_or(cfg.max_position_embeddings)
            }
        }
        .min(cfg.max_position_embeddings);
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tok_path).map_err(|e| anyhow::anyhow!("{}: {e}", tok_path.display()))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| anyhow::anyhow!("{}: truncation: {e}", tok_path.display()))?;
        let padding = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..padding }));

        let w_path = dir.join("model.safetensors");
        let mut tensors = load_tensors(&w_path, opts.device)?;
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
        let h = cfg.hidden_size;
        let inter = tensors
            .get(&format!("{prefix}encoder.layer.0.intermediate.dense.weight"))
            .map(|t| t.size()[0])
            .unwrap_or(4 * h);
        // The vocabulary size is not in our config subset: check the word
        // embedding's width only.
        let word = {
            let full = format!("{prefix}embeddings.word_embeddings.weight");
            let t = tensors.remove(&full).with_context(|| format!("{}: tensor {full} missing", w_path.display()))?;
            anyhow::ensure!(
                t.dim() == 2 && t.size()[1] == h,
                "{}: tensor {full} has shape {:?}, expected [vocab, {h}]",
                w_path.display(),
                t.size()
            );
            t
        };
        let n_types =
            tensors.get(&format!("{prefix}embeddings.token_type_embeddings.weight")).map(|t| t.size()[0]).unwrap_or(2);
        let mut take = |name: &str, shape: &[i64]| -> anyhow::Result<Tensor> {
            let full = format!("{prefix}{name}");
            let t = tensors.remove(&full).with_context(|| format!("{}: tensor {full} missing", w_path.display()))?;
            anyhow::ensure!(
                t.size() == shape,
                "{}: tensor {full} has shape {:?}, expected {shape:?}",
                w_path.display(),
                t.size()
            );
            Ok(t)
        };
        let max_pos = cfg.max_position_embeddings as i64;
        let pos = take("embeddings.position_embeddings.weight", &[max_pos, h])?;
        let tok_type = take("embeddings.token_type_embeddings.weight", &[n_types, h])?;
        let emb_ln_w = take("embeddings.LayerNorm.weight", &[h])?;
        let emb_ln_b = take("embeddings.LayerNorm.bias", &[h])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            layers.push(Layer {
                q_w: take(&format!("{p}.attention.self.query.weight"), &[h, h])?,
                q_b: take(&format!("{p}.attention.self.query.bias"), &[h])?,
                k_w: take(&format!("{p}.attention.self.key.weight"), &[h, h])?,
                k_b: take(&format!("{p}.attention.self.key.bias"), &[h])?,
                v_w: take(&format!("{p}.attention.self.value.weight"), &[h, h])?,
                v_b: take(&format!("{p}.attention.self.value.bias"), &[h])?,
                ao_w: take(&format!("{p}.attention.output.dense.weight"), &[h, h])?,
                ao_b: take(&format!("{p}.attention.output.dense.bias"), &[h])?,
                ln1_w: take(&format!("{p}.attention.output.LayerNorm.weight"), &[h])?,
                ln1_b: take(&format!("{p}.attention.output.LayerNorm.bias"), &[h])?,
                i_w: take(&format!("{p}.intermediate.dense.weight"), &[inter, h])?,
                i_b: take(&format!("{p}.intermediate.dense.bias"), &[inter])?,
                o_w: take(&format!("{p}.output.dense.weight"), &[h, inter])?,
                o_b: take(&format!("{p}.output.dense.bias"), &[h])?,
                ln2_w: take(&format!("{p}.output.LayerNorm.weight"), &[h])?,
                ln2_b: take(&format!("{p}.output.LayerNorm.bias"), &[h])?,
            });
        }
        Ok(BertEncoder {
            cfg,
            tokenizer,
            word,
            pos,
            tok_type,
            emb_ln_w,
            emb_ln_b,
            layers,
            opts,
            max_len,
            dir: dir.to_path_buf(),
        })
    }

    /// Embedding width (384 for MiniLM-L6, 768 for Contriever).
    pub fn dim(&self) -> usize {
        self.cfg.hidden_size as usize
    }

    /// Token limit per text.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Encodes `texts` into embeddings of [`BertEncoder::dim`] floats each
    /// (L2-normalised when the options say so), in batches of
    /// `batch_size`.
    ///
    /// # Errors
    /// Tokenizer or tensor errors.
    pub fn encode(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let _guard = tch::no_grad_guard();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.opts.batch_size.max(1)) {
            let inputs: Vec<String> = chunk.iter().map(|s| s.to_string()).collect();
            let enc = self
                .tokenizer
                .encode_batch(inputs, true)
                .map_err(|e| anyhow::anyhow!("{}: tokenizing: {e}", self.dir.display()))?;
            let batch = enc.len() as i64;
            let seq = enc.first().map(|e| e.get_ids().len()).unwrap_or(0) as i64;
            let flat = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<i64>| -> Vec<i64> { enc.iter().flat_map(f).collect() };
            let ids = flat(&|e| e.get_ids().iter().map(|x| *x as i64).collect());
            let types = flat(&|e| e.get_type_ids().iter().map(|x| *x as i64).collect());
            let mask = flat(&|e| e.get_attention_mask().iter().map(|x| *x as i64).collect());
            let dev = self.opts.device;
            let ids = Tensor::f_from_slice(&ids)?.f_view([batch, seq])?.f_to_device(dev)?;
            let types = Tensor::f_from_slice(&types)?.f_view([batch, seq])?.f_to_device(dev)?;
            let mask = Tensor::f_from_slice(&mask)?.f_view([batch, seq])?.f_to_kind(Kind::Float)?.f_to_device(dev)?;
            let emb = self.forward(&ids, &types, &mask)?;
            let dim = self.dim();
            let values = Vec::<f32>::try_from(emb.f_flatten(0, -1)?.f_to_device(Device::Cpu)?)?;
            out.extend(values.chunks_exact(dim).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Pooled embeddings `[batch, hidden]` of `ids`, `types`, `mask`
    /// (`[batch, seq]`; mask 1.0 for tokens, 0.0 for padding).
    fn forward(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> anyhow::Result<Tensor> {
        let (batch, seq) = ids.size2()?;
        let h = self.cfg.hidden_size;
        let heads = self.cfg.num_attention_heads;
        let head_dim = h / heads;
        let eps = self.cfg.layer_norm_eps;
        let positions = Tensor::f_arange(seq, (Kind::Int64, ids.device()))?;
        let mut x = Tensor::f_embedding(&self.word, ids, -1, false, false)?
            .f_add(&Tensor::f_embedding(&self.pos, &positions, -1, false, false)?.f_unsqueeze(0)?)?
            .f_add(&Tensor::f_embedding(&self.tok_type, types, -1, false, false)?)?
            .f_layer_norm([h], Some(&self.emb_ln_w), Some(&self.emb_ln_b), eps, false)?;
        // Additive mask [batch, 1, 1, seq]: 0 for tokens, a large negative
        // number for padding (HF uses the dtype's minimum; -1e4 is exact
        // enough after softmax in f32 and cannot overflow).
        let add_mask = mask.f_neg()?.f_add_scalar(1.0)?.f_mul_scalar(-1e4)?.f_view([batch, 1, 1, seq])?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for l in &self.layers {
            let split = |t: Tensor| -> anyhow::Result<Tensor> {
                Ok(t.f_view([batch, seq, heads, head_dim])?.f_transpose(1, 2)?)
            };
            let q = split(x.f_linear(&l.q_w, Some(&l.q_b))?)?;
            let k = split(x.f_linear(&l.k_w, Some(&l.k_b))?)?;
            let v = split(x.f_linear(&l.v_w, Some(&l.v_b))?)?;
            let att = q
                .f_matmul(&k.f_transpose(-2, -1)?)?
                .f_mul_scalar(scale)?
                .f_add(&add_mask)?
                .f_softmax(-1, Kind::Float)?;
            let ctx = att.f_matmul(&v)?.f_transpose(1, 2)?.f_contiguous()?.f_view([batch, seq, h])?;
            x = ctx.f_linear(&l.ao_w, Some(&l.ao_b))?.f_add(&x)?.f_layer_norm(
                [h],
                Some(&l.ln1_w),
                Some(&l.ln1_b),
                eps,
                false,
            )?;
            let inter = x.f_linear(&l.i_w, Some(&l.i_b))?.f_gelu("none")?;
            x = inter.f_linear(&l.o_w, Some(&l.o_b))?.f_add(&x)?.f_layer_norm(
                [h],
                Some(&l.ln2_w),
                Some(&l.ln2_b),
                eps,
                false,
            )?;
        }
        let m = mask.f_unsqueeze(-1)?;
        let summed = x.f_mul(&m)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;
        let counts = m.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_clamp_min(1e-9)?;
        let mut pooled = summed.f_div(&counts)?;
        if self.opts.normalize {
            let norm = pooled.f_norm_scalaropt_dim(2.0, [-1i64].as_slice(), true)?.f_clamp_min(1e-12)?;
            pooled = pooled.f_div(&norm)?;
        }
        Ok(pooled)
    }
}

/// Dense retrieval: [`BertEncoder`] embeddings, dot product, profile
/// embeddings cached per run by the blake3 digest of the document text.
pub struct DenseRetriever {
    encoder: BertEncoder,
    cache: HashMap<[u8; 32], Vec<f32>>,
    hits: usize,
    misses: usize,
}

impl DenseRetriever {
    /// A retriever over the encoder in `dir` (see [`BertEncoder::load`]).
    ///
    /// # Errors
    /// As [`BertEncoder::load`].
    pub fn load(dir: &Path, opts: DenseOptions) -> anyhow::Result<Self> {
        Ok(DenseRetriever { encoder: BertEncoder::load(dir, opts)?, cache: HashMap::new(), hits: 0, misses: 0 })
    }

    /// all-MiniLM-L6-v2 from the set-up ([`crate::paths::minilm_dir`]), with
    /// L2 normalisation.
    ///
    /// # Errors
    /// The model is missing (run `scripts/setup.sh`), or as
    /// [`BertEncoder::load`].
    pub fn minilm() -> anyhow::Result<Self> {
        let dir = crate::paths::require(crate::paths::minilm_dir())?;
        Self::load(&dir, DenseOptions::default())
    }

    /// The encoder.
    pub fn encoder(&self) -> &BertEncoder {
        &self.encoder
    }

    /// `(cache hits, cache misses)` of profile item embeddings so far.
    pub fn cache_stats(&self) -> (usize, usize) {
        (self.hits, self.misses)
    }

    /// Embeddings of `docs`, encoding only those not cached yet.
    ///
    /// # Errors
    /// Encoder errors.
    pub fn embed_documents(&mut self, docs: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let keys: Vec<[u8; 32]> = docs.iter().map(|d| *blake3::hash(d.as_bytes()).as_bytes()).collect();
        let mut todo: Vec<&str> = Vec::new();
        let mut todo_keys = Vec::new();
        for (k, d) in keys.iter().zip(docs) {
            if self.cache.contains_key(k) || todo_keys.contains(k) {
                self.hits += 1;
            } else {
                self.misses += 1;
                todo.push(d.as_str());
                todo_keys.push(*k);
            }
        }
        if !todo.is_empty() {
            let embs = self.encoder.encode(&todo)?;
            for (k, e) in todo_keys.into_iter().zip(embs) {
                self.cache.insert(k, e);
            }
        }
        keys.iter().map(|k| self.cache.get(k).cloned().context("embedding missing from cache after encoding")).collect()
    }
}

/// Dot product of two equal-length vectors.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Retriever for DenseRetriever {
    fn retrieve(&mut self, example: &Example, k: usize) -> anyhow::Result<Vec<(usize, f32)>> {
        let docs: Vec<String> = example.profile.iter().map(|p| document_text(example.task, p)).collect();
        let doc_embs = self.embed_documents(&docs)?;
        let query = query_text(example);
        let q = self.encoder.encode(&[query.as_str()])?.pop().context("no query embedding")?;
        Ok(top_k(doc_embs.iter().enumerate().map(|(i, d)| (i, dot(&q, d))), k))
    }

    fn name(&self) -> String {
        format!(
            "dense({}, mean-pool{}, dot)",
            self.encoder.dir.file_name().and_then(|n| n.to_str()).unwrap_or("encoder"),
            if self.encoder.opts.normalize { "+l2" } else { "" }
        )
    }
}
