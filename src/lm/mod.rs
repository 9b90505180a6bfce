//! The language model: one decoder-only transformer on tch that is the
//! policy, the reasoning generator and the local judge.
//!
//! [`LanguageModel`] owns a `tch::nn::VarStore` of f32 parameters (named as
//! in Hugging Face checkpoints), the [`transformer::Transformer`] built on
//! them and a [`ChatTokenizer`]. It loads a GGUF file (dequantized to f32,
//! see [`gguf`]) or a Hugging Face directory, and saves Hugging Face
//! directories that `transformers` and vLLM load unchanged. It offers a
//! differentiable [`LanguageModel::forward`] for training, batched
//! generation with a KV cache and per-sequence seeds
//! ([`LanguageModel::generate`]), and scoring ([`LanguageModel::token_logprobs`],
//! [`LanguageModel::next_token_logprobs`], and the judge's
//! [`LanguageModel::tail_logprobs`] with prefix sharing, [`score`]).
//!
//! `tch::Tensor` is `Send` but not `Sync`: a model has one owner thread
//! (e.g. a `SyncArbiter` worker that builds its own copy), and is never
//! shared behind a lock.

pub mod chat_template;
pub mod checkpoint;
pub mod config;
mod generate;
pub mod gguf;
pub mod penalties;
pub mod placement;
pub mod sampling;
pub mod score;
pub mod stop;
pub mod tokenizer;
pub mod transformer;

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

pub use config::{Arch, ModelConfig};
pub use generate::{FinishReason, GenerateOptions, Generation, GenerationRequest, GenerationStats};
pub use penalties::TokenHistory;
pub use sampling::{Penalties, SamplingSettings};
pub use score::ScoreOptions;
pub use tokenizer::ChatTokenizer;
use transformer::Transformer;

/// A loaded model. See the module docs.
pub struct LanguageModel {
    vs: nn::VarStore,
    model: Transformer,
    tokenizer: ChatTokenizer,
    source: PathBuf,
}

impl std::fmt::Debug for LanguageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanguageModel").field("source", &self.source).field("config", self.model.config()).finish()
    }
}

/// Pads rows of token ids to one length. `left` puts padding before the
/// tokens. Returns `ids [B, T]` and `mask [B, T]` (i64, 1 = token) on the
/// CPU. Padding uses id 0.
///
/// # Errors
/// An empty batch.
pub fn pad_batch(rows: &[Vec<u32>], left: bool) -> Result<(Tensor, Tensor)> {
    if rows.is_empty() {
        bail!("empty batch");
    }
    let t = rows.iter().map(Vec::len).max().unwrap_or(0);
    let b = rows.len();
    let mut ids = vec![0i64; b * t];
    let mut mask = vec![0i64; b * t];
    for (r, row) in rows.iter().enumerate() {
        let off = if left { t - row.len() } else { 0 };
        for (j, &id) in row.iter().enumerate() {
            ids[r * t + off + j] = id as i64;
            mask[r * t + off + j] = 1;
        }
    }
    let shape = [b as i64, t as i64];
    Ok((Tensor::f_from_slice(&ids)?.f_view(shape)?, Tensor::f_from_slice(&mask)?.f_view(shape)?))
}

/// RoPE positions for a padded batch: the number of real tokens before each
/// position (`cumsum(mask) - 1`, clamped at 0 for leading padding).
fn positions_from_mask(mask: &Tensor) -> Result<Tensor> {
    Ok(mask.f_cumsum(-1, Kind::Int64)?.f_sub_scalar(1)?.f_clamp_min(0)?)
}

impl LanguageModel {
    /// Loads a `.gguf` file (weights dequantized to f32, tokenizer built from
    /// its metadata) or a Hugging Face directory (`config.json`,
    /// `model.safetensors` or sharded, `tokenizer.json`) onto `device`.
    ///
    /// # Errors
    /// Missing or corrupt files, unsupported architectures or tensor types;
    /// every error names the file (and the tensor when one is at fault).
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        if path.is_dir() {
            Self::load_hf_dir(path, device)
        } else if path.is_file() {
            Self::load_gguf(path, device)
        } else {
            bail!("{}: no such model file or directory", path.display())
        }
    }

    /// [`Self::load`] on `device`, then [`Self::set_precision`]: a model for
    /// inference.
    ///
    /// # Errors
    /// As [`Self::load`]; a failed conversion.
    pub fn load_in(path: &Path, device: Device, precision: events::Precision) -> Result<Self> {
        let mut model = Self::load(path, device)?;
        model.set_precision(precision).with_context(|| format!("loading {}", path.display()))?;
        Ok(model)
    }

    /// [`Self::load_in`] where a run configuration's `[model] device` and
    /// `dtype` say.
    ///
    /// # Errors
    /// `cuda` without a GPU; as [`Self::load_in`].
    pub fn load_placed(path: &Path, device: placement::DeviceChoice, dtype: placement::DtypeChoice) -> Result<Self> {
        let device = device.resolve()?;
        Self::load_in(path, device, dtype.resolve(device))
    }

    /// The tokenizer of the checkpoint at `path` (a GGUF file or a Hugging
    /// Face directory) without its weights: what a role served by another
    /// engine needs to build our prompts and read its tokens.
    ///
    /// # Errors
    /// Missing or corrupt files, naming them.
    pub fn load_tokenizer(path: &Path) -> Result<ChatTokenizer> {
        if path.is_dir() {
            let cfg = ModelConfig::from_hf_file(&path.join("config.json"))?;
            ChatTokenizer::from_hf_dir(path, cfg.bos_token_id, &cfg.eos_token_ids)
        } else if path.is_file() {
            ChatTokenizer::from_gguf(&gguf::GgufFile::open(path)?)
        } else {
            bail!("{}: no such model file or directory", path.display())
        }
    }

    fn load_gguf(path: &Path, device: Device) -> Result<Self> {
        let g = gguf::GgufFile::open(path)?;
        let cfg = ModelConfig::from_gguf(&g)?;
        let tokenizer = ChatTokenizer::from_gguf(&g)?;
        if tokenizer.vocab_size() > cfg.vocab_size {
            bail!(
                "{}: tokenizer has {} tokens, model vocab_size is {}",
                path.display(),
                tokenizer.vocab_size(),
                cfg.vocab_size
            );
        }
        let vs = nn::VarStore::new(device);
        let mut src = |hf: &str| gguf::gguf_tensor(&g, &cfg, hf);
        let model = tch::no_grad(|| Transformer::load(&vs, &cfg, &mut src))
            .with_context(|| format!("loading {}", path.display()))?;
        Ok(LanguageModel { vs, model, tokenizer, source: path.to_path_buf() })
    }

    fn load_hf_dir(dir: &Path, device: Device) -> Result<Self> {
        let cfg = ModelConfig::from_hf_file(&dir.join("config.json"))?;
        let tokenizer = ChatTokenizer::from_hf_dir(dir, cfg.bos_token_id, &cfg.eos_token_ids)?;
        let st = checkpoint::SafetensorsSource::open(dir)?;
        let vs = nn::VarStore::new(device);
        let mut src = |hf: &str| st.tensor(hf);
        let model = tch::no_grad(|| Transformer::load(&vs, &cfg, &mut src))
            .with_context(|| format!("loading {}", dir.display()))?;
        Ok(LanguageModel { vs, model, tokenizer, source: dir.to_path_buf() })
    }

    /// Writes a Hugging Face directory: `model.safetensors` (f32, HF names,
    /// HF q/k row order; no `lm_head.weight` when tied), `config.json`,
    /// `generation_config.json`, `tokenizer.json` and `tokenizer_config.json`.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tensors: BTreeMap<String, Tensor> = self.vs.variables().into_iter().collect();
        checkpoint::write_safetensors(&dir.join("model.safetensors"), &tensors)?;
        let cfg = self.model.config();
        let write_json = |name: &str, v: &serde_json::Value| -> Result<()> {
            let p = dir.join(name);
            std::fs::write(&p, serde_json::to_string_pretty(v)?).with_context(|| format!("writing {}", p.display()))
        };
        write_json("config.json", &cfg.to_hf_json())?;
        write_json(
            "generation_config.json",
            &serde_json::json!({
                "bos_token_id": cfg.bos_token_id,
                "eos_token_id": self.tokenizer.eos_ids(),
                "pad_token_id": self.tokenizer.eos_ids().first(),
            }),
        )?;
        self.tokenizer.save(dir)
    }

    /// The resolved configuration.
    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &ChatTokenizer {
        &self.tokenizer
    }

    /// Where the model was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The precision the forward pass runs in, as a sample records it:
    /// f32 as loaded (every checkpoint is dequantized or widened to f32),
    /// bf16 after [`Self::set_precision`].
    pub fn precision(&self) -> events::Precision {
        precision_of(self.model.kind())
    }

    /// Runs the model in `precision` from now on: the parameters are
    /// converted in place (bf16 halves the bytes every decode step reads;
    /// on CPUs with AVX512-BF16 or AMX libtorch's oneDNN kernels multiply
    /// bf16 natively), activations and the KV cache follow, and logits
    /// stay f32. For inference: a model converted to bf16 should not be
    /// trained (its master weights would be bf16), and converting back to
    /// f32 does not restore the bits lost.
    ///
    /// # Errors
    /// A failed conversion.
    pub fn set_precision(&mut self, precision: events::Precision) -> Result<()> {
        let kind = kind_of(precision);
        tch::no_grad(|| self.model.set_kind(kind)).with_context(|| format!("converting the model to {precision}"))?;
        for (name, t) in self.vs.variables() {
            if t.kind() != kind {
                bail!("variable {name} is {:?} after converting the model to {precision}", t.kind());
            }
        }
        Ok(())
    }

    /// Runs the matrix products of training forwards (those under grad
    /// mode) in `precision`: bf16 is mixed-precision training, f32 master
    /// weights and gradients with bf16 products (see
    /// `Transformer::set_training_matmul`); f32, the default, runs them in
    /// f32. Inference forwards keep [`Self::precision`].
    ///
    /// # Errors
    /// None today; a `Result` for engines that may refuse a precision.
    pub fn set_training_precision(&mut self, precision: events::Precision) -> Result<()> {
        self.model.set_training_matmul(kind_of(precision))
    }

    /// The precision of the matrix products of training forwards.
    pub fn training_precision(&self) -> events::Precision {
        precision_of(self.model.training_matmul())
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The parameters (trainable f32 variables under HF names).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Mutable parameters, for optimizers and `VarStore::copy`.
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// The transformer, for callers that want hidden states
    /// ([`Transformer::hidden`]) and a cheaper LM head on selected positions.
    pub fn transformer(&self) -> &Transformer {
        &self.model
    }

    /// Logits `[B, T, V]` (f32, differentiable when grad mode is on) for
    /// `input_ids [B, T]` (i64) with `attention_mask [B, T]` (i64, 1 = token,
    /// 0 = padding on the left or right). Positions count real tokens only,
    /// so a padded row gives the same logits as the row alone.
    ///
    /// # Errors
    /// Shape mismatches, ids out of range.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let h = self.hidden_states(input_ids, attention_mask)?;
        self.model.logits(&h)
    }

    /// Final hidden states `[B, T, d]` for a padded batch (as [`Self::forward`]
    /// without the LM head).
    ///
    /// # Errors
    /// Shape mismatches, ids out of range.
    pub fn hidden_states(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let dev = self.device();
        let ids = input_ids.f_to_device(dev)?.f_to_kind(Kind::Int64)?;
        let mask = attention_mask.f_to_device(dev)?.f_to_kind(Kind::Int64)?;
        if ids.size() != mask.size() {
            bail!("input_ids {:?} and attention_mask {:?} differ in shape", ids.size(), mask.size());
        }
        let pos = positions_from_mask(&mask)?;
        self.model.hidden(&ids, &pos, &mask, None)
    }

    /// `log p(y_t | x, y_<t)` for every target token of each `(x, y)` pair
    /// (natural log, f32). `x` must be non-empty; an empty `y` gives an empty
    /// row. Runs without gradients, in chunks of 8 rows.
    ///
    /// # Errors
    /// An empty prompt, ids out of range.
    pub fn token_logprobs(&self, batch: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(8) {
            for (i, (x, _)) in chunk.iter().enumerate() {
                if x.is_empty() {
                    bail!("token_logprobs: row {i} has an empty prompt");
                }
            }
            let rows: Vec<Vec<u32>> = chunk.iter().map(|(x, y)| x.iter().chain(y).copied().collect()).collect();
            let (ids, mask) = pad_batch(&rows, false)?;
            let res: Result<Vec<Vec<f32>>> = tch::no_grad(|| {
                let h = self.hidden_states(&ids, &mask)?;
                let mut rows_out = Vec::with_capacity(chunk.len());
                for (r, (x, y)) in chunk.iter().enumerate() {
                    if y.is_empty() {
                        rows_out.push(vec![]);
                        continue;
                    }
                    let hr = h.f_get(r as i64)?.f_narrow(0, x.len() as i64 - 1, y.len() as i64)?;
                    let lp = self.model.logits(&hr)?.f_log_softmax(-1, Kind::Float)?;
                    let tgt: Vec<i64> = y.iter().map(|&t| t as i64).collect();
                    let tgt = Tensor::f_from_slice(&tgt)?.f_to_device(self.device())?.f_unsqueeze(1)?;
                    let g = lp.f_gather(1, &tgt, false)?.f_squeeze_dim(1)?.f_to_device(Device::Cpu)?;
                    rows_out.push(Vec::<f32>::try_from(&g)?);
                }
                Ok(rows_out)
            });
            out.extend(res?);
        }
        Ok(out)
    }

    /// The next-token log-distribution `[B][V]` (log-softmax, f32) after each
    /// prompt. Prompts are left-padded into one batch.
    ///
    /// # Errors
    /// An empty prompt, ids out of range.
    pub fn next_token_logprobs(&self, prompts: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        if prompts.iter().any(Vec::is_empty) {
            bail!("next_token_logprobs: empty prompt");
        }
        let mut out = Vec::with_capacity(prompts.len());
        for chunk in prompts.chunks(8) {
            let (ids, mask) = pad_batch(chunk, true)?;
            let res: Result<Tensor> = tch::no_grad(|| {
                let h = self.hidden_states(&ids, &mask)?;
                let t = h.size()[1];
                let last = h.f_narrow(1, t - 1, 1)?.f_squeeze_dim(1)?;
                Ok(self.model.logits(&last)?.f_log_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?)
            });
            let lp = res?;
            for r in 0..chunk.len() {
                out.push(Vec::<f32>::try_from(&lp.f_get(r as i64)?)?);
            }
        }
        Ok(out)
    }

    /// blake3 over all parameters in sorted name order: for each, the name's
    /// UTF-8 bytes, a 0 byte, the shape as little-endian u64s, then the
    /// values as little-endian f32 bytes.
    ///
    /// # Errors
    /// A tensor that cannot be copied to the CPU.
    pub fn weights_hash(&self) -> Result<[u8; 32]> {
        let vars: BTreeMap<String, Tensor> = self.vs.variables().into_iter().collect();
        let mut h = blake3::Hasher::new();
        for (name, t) in vars {
            h.update(name.as_bytes());
            h.update(&[0]);
            for d in t.size() {
                h.update(&(d as u64).to_le_bytes());
            }
            let t = t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
            let n = t.numel();
            let mut bytes = vec![0u8; n * 4];
            t.f_copy_data_u8(&mut bytes, n)?;
            h.update(&bytes);
        }
        Ok(*h.finalize().as_bytes())
    }
}

/// The tensor kind a [`events::Precision`] runs in.
fn kind_of(precision: events::Precision) -> Kind {
    match precision {
        events::Precision::F32 => Kind::Float,
        events::Precision::Bf16 => Kind::BFloat16,
    }
}

/// The [`events::Precision`] of the kind the model runs in (`Float` or
/// `BFloat16`, the only two `Transformer::set_kind` accepts).
fn precision_of(kind: Kind) -> events::Precision {
    match kind {
        Kind::BFloat16 => events::Precision::Bf16,
        _ => events::Precision::F32,
    }
}
