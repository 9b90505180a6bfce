//! The decoder-only transformer, one file per family over shared layers
//! (the layout of candle's `candle-transformers/src/models/`):
//!
//! - [`layers`]: path-scoped weights, linear maps, RMSNorm, rotary position
//!   embeddings (Su et al. 2021), grouped-query attention (Ainslie et al.
//!   2023) and the gated MLP;
//! - `block.rs`: the pre-norm decoder block, `h = x + Attn(RMSNorm(x))`,
//!   `out = h + MLP(RMSNorm(h))`;
//! - one file per family — [`llama`] (and SmolLM2), [`gemma`], [`qwen2`] —
//!   citing its paper and reference implementation and stating, as a
//!   [`Family`], its names and how it switches the shared layers.
//!
//! Adding a family (Gemma 2 or 3: soft-capping, sliding windows, QK-norm) is
//! a new file with its [`Family`] and, where its block differs, its own
//! decoder layer; plus its variant of [`Arch`].
//!
//! Attention runs `scaled_dot_product_attention` with an explicit mask that
//! combines causality with each row's padding, so prompts padded on the left
//! or right can share a batch; the mask is built once per forward pass, in
//! the additive form the kernel uses, and shared by every layer. A decode
//! step over left-padded rows attends each run of equally padded rows over
//! its real keys only, which makes a sampled row independent of its batch
//! bit for bit (`layers::KeyRun`).
//!
//! The model runs in f32 or bf16 ([`Transformer::set_kind`]); q/k/v and
//! gate/up run as one fused product each in forwards without gradients.
//!
//! Parameters live in a `tch::nn::VarStore` under their Hugging Face names
//! (`model.layers.0.self_attn.q_proj.weight`, …), built by path scoping;
//! the layers hold shallow clones of those variables, so optimizer updates
//! are seen by the model. The model is immutable during inference; the KV
//! cache is a separate value passed `&mut`.

mod block;
pub mod gemma;
pub mod layers;
pub mod llama;
pub mod qwen2;

use anyhow::{bail, Result};
use tch::{nn, Device, Kind, Tensor};

use self::block::{DecoderLayer, LoadLayer};
pub use self::layers::Activation;
pub(crate) use self::layers::WeightSource;
use self::layers::{AttentionMask, Pass, RmsNorm, Rope, Scope};
use super::config::{Arch, ModelConfig};

/// What distinguishes a decoder family: the names it goes by and how it
/// switches the shared layers, in its own file.
pub struct Family {
    /// Names accepted as HF `model_type` and GGUF `general.architecture`.
    pub names: &'static [&'static str],
    /// The Hugging Face `model_type` written to `config.json`.
    pub hf_model_type: &'static str,
    /// The Hugging Face `architectures[0]` class name.
    pub hf_architecture: &'static str,
    /// The MLP gate's activation.
    pub activation: Activation,
    /// RMSNorm multiplies by `(1 + w)` instead of `w`.
    pub norm_plus_one: bool,
    /// Embeddings are scaled by `sqrt(hidden_size)`.
    pub scale_embeddings: bool,
    /// The q/k/v projections carry a bias.
    pub qkv_bias: bool,
    /// The LM head is tied when `config.json` does not say.
    pub tied_by_default: bool,
    /// A GGUF stores the q/k rows permuted for interleaved RoPE.
    pub gguf_qk_permuted: bool,
    /// A GGUF stores the norm weights as `1 + w`.
    pub gguf_norm_plus_one: bool,
    /// Loads one decoder layer.
    pub(crate) load_layer: LoadLayer,
}

impl Arch {
    /// The family's description, from its file.
    pub fn family(self) -> &'static Family {
        match self {
            Arch::Llama => &llama::LLAMA,
            Arch::Gemma => &gemma::GEMMA,
            Arch::Qwen2 => &qwen2::QWEN2,
        }
    }
}

/// Per-layer keys and values of the tokens seen so far, preallocated to a
/// capacity: `[B, kv_heads, capacity, head_dim]` each.
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: i64,
    capacity: i64,
}

impl KvCache {
    /// Number of positions already filled.
    pub fn len(&self) -> i64 {
        self.len
    }

    /// Whether nothing has been cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of rows (the batch dimension of every layer's tensors).
    pub fn rows(&self) -> i64 {
        self.layers.first().map_or(0, |(k, _)| k.size()[0])
    }

    /// Copies the filled positions of `src`, a one-row cache, into rows
    /// `rows` (i64 indices `[m]`) of this cache at positions `at .. at +
    /// src.len()`: a prompt prefilled once serves the `m` rows that share
    /// it. The length of this cache is left unchanged (see
    /// [`KvCache::set_len`]).
    ///
    /// # Errors
    /// `src` has more than one row or a different layer count, or the
    /// positions do not fit this cache's capacity.
    pub fn fill_rows(&mut self, rows: &Tensor, src: &KvCache, at: i64) -> Result<()> {
        if src.rows() != 1 || src.layers.len() != self.layers.len() {
            bail!("fill_rows: source cache has {} rows and {} layers", src.rows(), src.layers.len());
        }
        if at < 0 || at + src.len > self.capacity {
            bail!("fill_rows: positions {at} + {} exceed capacity {}", src.len, self.capacity);
        }
        let m = rows.size1()?;
        for ((dk, dv), (sk, sv)) in self.layers.iter_mut().zip(&src.layers) {
            for (dst, s) in [(dk, sk), (dv, sv)] {
                let (_, heads, _, dim) = s.size4()?;
                let s = s.f_narrow(2, 0, src.len)?.f_expand([m, heads, src.len, dim], false)?;
                let _ = dst.f_narrow(2, at, src.len)?.f_index_copy_(0, rows, &s)?;
            }
        }
        Ok(())
    }

    /// Marks the first `len` positions as filled.
    ///
    /// # Errors
    /// `len` above the capacity.
    pub fn set_len(&mut self, len: i64) -> Result<()> {
        if !(0..=self.capacity).contains(&len) {
            bail!("set_len: {len} outside 0..={}", self.capacity);
        }
        self.len = len;
        Ok(())
    }

    /// Keeps only rows `rows` (i64 indices `[n]`, in that order), dropping
    /// the others: a batch whose finished rows leave it.
    ///
    /// # Errors
    /// An index out of range.
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for (k, v) in &mut self.layers {
            *k = k.f_index_select(0, rows)?;
            *v = v.f_index_select(0, rows)?;
        }
        Ok(())
    }
}

/// The decoder. See the module docs.
pub struct Transformer {
    cfg: ModelConfig,
    embed: Tensor,
    blocks: Vec<Box<dyn DecoderLayer>>,
    norm: RmsNorm,
    lm_head: Tensor,
    rope: Rope,
    device: Device,
    /// A scalar that requires a gradient: an op on it records a graph
    /// exactly when grad mode is on, which is how a forward learns whether
    /// autograd is watching (tch offers no query of grad mode).
    grad_probe: Tensor,
    /// The precision of the matrix products of forwards with gradients
    /// (mixed-precision training; see [`Self::set_training_matmul`]).
    training_matmul: Kind,
}

impl Transformer {
    /// Creates every parameter in `vs` under its HF name, filled from `src`.
    ///
    /// # Errors
    /// A missing tensor or a shape mismatch, naming the tensor.
    pub(crate) fn load(vs: &nn::VarStore, cfg: &ModelConfig, src: &mut WeightSource) -> Result<Self> {
        let (d, v) = (cfg.hidden_size as i64, cfg.vocab_size as i64);
        let family = cfg.arch.family();
        let root = Scope::root(vs);
        let model = root.pp("model");
        let embed = model.pp("embed_tokens").var("weight", &[v, d], src)?;
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            blocks.push((family.load_layer)(&model.pp("layers").pp(i), cfg, src)?);
        }
        let norm = RmsNorm::load(&model.pp("norm"), cfg.hidden_size, cfg.rms_norm_eps, family.norm_plus_one, src)?;
        let lm_head = if cfg.tie_word_embeddings {
            embed.shallow_clone()
        } else {
            root.pp("lm_head").var("weight", &[v, d], src)?
        };
        let rope = Rope::new(cfg.head_dim, cfg.rope_theta, vs.device())?;
        let grad_probe = Tensor::f_zeros([1], (Kind::Float, vs.device()))?.set_requires_grad(true);
        Ok(Transformer {
            cfg: cfg.clone(),
            embed,
            blocks,
            norm,
            lm_head,
            rope,
            device: vs.device(),
            grad_probe,
            training_matmul: Kind::Float,
        })
    }

    /// Runs the matrix products of forwards with gradients in `kind`
    /// (`Float`, the default, or `BFloat16`): mixed-precision training as
    /// `torch.autocast` does it: the parameters, their gradients, the
    /// residual stream, norms and the loss stay f32; each linear map's input
    /// and weight are cast to `kind` for the product, whose output stays in
    /// `kind` through RoPE, attention and the MLP's activation until it is
    /// added to the residual stream (widened to f32 there). Forwards without
    /// gradients are not affected.
    ///
    /// # Errors
    /// A kind other than `Float` and `BFloat16`.
    pub(crate) fn set_training_matmul(&mut self, kind: Kind) -> Result<()> {
        if !matches!(kind, Kind::Float | Kind::BFloat16) {
            bail!("training products run in f32 or bf16, not {kind:?}");
        }
        self.training_matmul = kind;
        Ok(())
    }

    /// The precision of the matrix products of forwards with gradients.
    pub fn training_matmul(&self) -> Kind {
        self.training_matmul
    }

    /// How a forward started now runs: with gradients when autograd is
    /// recording (grad mode on), in the training precision then.
    fn pass(&self) -> Result<Pass> {
        let grad = self.grad_probe.f_mul_scalar(1.0)?.requires_grad();
        let matmul = (grad && self.training_matmul != self.kind()).then_some(self.training_matmul);
        Ok(Pass { grad, matmul })
    }

    /// The precision of the parameters, activations and KV cache.
    pub fn kind(&self) -> Kind {
        self.embed.kind()
    }

    /// Converts every parameter to `kind` (`Float` or `BFloat16`) in place,
    /// refusing a model that is being trained: its variables (in the
    /// `VarStore` it was loaded into) see the new data. Activations and the
    /// KV cache follow the parameters; logits are returned in f32.
    ///
    /// # Errors
    /// A kind other than `Float` and `BFloat16`, or a failed conversion.
    pub(crate) fn set_kind(&mut self, kind: Kind) -> Result<()> {
        if !matches!(kind, Kind::Float | Kind::BFloat16) {
            bail!("the transformer runs in f32 or bf16, not {kind:?}");
        }
        for blk in &mut self.blocks {
            blk.set_kind(kind)?;
        }
        self.norm.set_kind(kind)?;
        layers::set_kind(&mut self.embed, kind)?;
        layers::set_kind(&mut self.lm_head, kind)?;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.device
    }

    /// An empty cache for `batch` rows and up to `capacity` positions.
    ///
    /// # Errors
    /// Allocation failure.
    pub fn new_cache(&self, batch: i64, capacity: i64) -> Result<KvCache> {
        let shape = [batch, self.cfg.num_kv_heads as i64, capacity, self.cfg.head_dim as i64];
        let mut layers = Vec::with_capacity(self.blocks.len());
        for _ in &self.blocks {
            layers.push((
                Tensor::f_zeros(shape, (self.kind(), self.device))?,
                Tensor::f_zeros(shape, (self.kind(), self.device))?,
            ));
        }
        Ok(KvCache { layers, len: 0, capacity })
    }

    /// Final hidden states `[B, T, d]` (after the last RMSNorm).
    ///
    /// * `input_ids`: `[B, T]` i64.
    /// * `positions`: `[B, T]` i64, the RoPE position of each token.
    /// * `key_mask`: `[B, past + T]` bool/i64, 1 where a key is a real token.
    /// * `cache`: when given, its `len()` positions precede `input_ids`; the
    ///   new keys/values are written after them and the length advances.
    ///
    /// Each query attends to real keys at or before its own position, and
    /// always to itself (so padding rows stay finite; their outputs are
    /// meaningless and ignored).
    ///
    /// # Errors
    /// Shape mismatches or a full cache.
    pub fn hidden(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        key_mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.size2()?;
        let past = cache.as_ref().map_or(0, |c| c.len);
        let tk = past + t;
        if let Some(c) = &cache {
            if tk > c.capacity {
                bail!("KV cache full: {past} + {t} positions exceed capacity {}", c.capacity);
            }
        }
        let (kb, kt) = key_mask.size2()?;
        if kb != b || kt != tk {
            bail!("key mask is [{kb}, {kt}], expected [{b}, {tk}]");
        }
        let dev = self.device;
        // Boolean attention mask [B, 1, T, Tk].
        let kpos = Tensor::f_arange(tk, (Kind::Int64, dev))?.f_view([1, 1, 1, tk])?;
        let qpos = Tensor::f_arange(t, (Kind::Int64, dev))?.f_add_scalar(past)?.f_view([1, 1, t, 1])?;
        let keys_real = key_mask.f_to_kind(Kind::Bool)?.f_view([b, 1, 1, tk])?;
        let allowed = kpos.f_le_tensor(&qpos)?.f_logical_and(&keys_real)?.f_logical_or(&kpos.f_eq_tensor(&qpos)?)?;
        // Built once, shared by every layer (see `AttentionMask`).
        let rep = (self.cfg.num_heads / self.cfg.num_kv_heads.max(1)) as i64;
        let kind = self.kind();
        let pass = self.pass()?;
        let mut mask = AttentionMask::new(&allowed, rep, pass.matmul.unwrap_or(kind))?;
        // A decode step over left-padded rows: each run of rows attends over
        // its own real keys only, so a row's output does not depend on the
        // padding its batch needs (see `KeyRun`).
        if t == 1 && cache.is_some() {
            if let Some(runs) = layers::key_runs(key_mask)? {
                mask = mask.with_runs(runs);
            }
        }
        // RoPE tables [B, 1, T, head_dim].
        let rope = self.rope.tables(positions, pass.matmul.unwrap_or(kind))?;

        let mut x = Tensor::f_embedding(&self.embed, input_ids, -1, false, false)?;
        if self.cfg.arch.family().scale_embeddings {
            x = x.f_mul_scalar((self.cfg.hidden_size as f64).sqrt())?;
        }
        for (li, blk) in self.blocks.iter().enumerate() {
            let layer_cache = match cache.as_deref_mut() {
                Some(c) => Some(&mut c.layers[li]),
                None => None,
            };
            x = blk.forward(&x, &rope, &mask, past, layer_cache, pass)?;
        }
        if let Some(c) = cache {
            c.len = tk;
        }
        self.norm.forward(&x)
    }

    /// LM-head logits `[.., V]` (f32) from hidden states `[.., d]`; with
    /// gradients, the product runs in the training precision.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        // Only a model set to train in another precision needs to know
        // whether autograd is recording (a decode step does not probe).
        let matmul = if self.training_matmul == self.kind() { None } else { self.pass()?.matmul };
        Ok(layers::linear_in(hidden, &self.lm_head, None, matmul)?.f_to_kind(Kind::Float)?)
    }
}
