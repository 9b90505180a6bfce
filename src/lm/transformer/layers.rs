//! The layers every decoder family here is built from: path-scoped weights,
//! linear maps, RMSNorm, rotary position embeddings, grouped-query
//! attention with a KV cache, and the gated MLP.
//!
//! Each layer has `load(&Scope, …)`, which creates its parameters under the
//! checkpoint's own names, and `forward`.

use anyhow::{bail, Context, Result};
use tch::{nn, Kind, Tensor};

/// Supplies a parameter by its HF name as a CPU f32 tensor; the
/// transformer checks the shape.
pub(crate) type WeightSource<'a> = dyn FnMut(&str) -> Result<Tensor> + 'a;

/// A place in the parameter tree: the `VarStore` path and the checkpoint
/// name it stands for (`model.layers.0.self_attn`), scoped together so that
/// every variable is named as in the checkpoint.
#[derive(Clone)]
pub(crate) struct Scope<'a> {
    path: nn::Path<'a>,
    name: String,
}

impl<'a> Scope<'a> {
    /// The root of `vs`.
    pub(crate) fn root(vs: &'a nn::VarStore) -> Self {
        Scope { path: vs.root(), name: String::new() }
    }

    /// The child scope `part` (`model` → `model.layers`).
    pub(crate) fn pp(&self, part: impl std::fmt::Display) -> Self {
        let part = part.to_string();
        let name = if self.name.is_empty() { part.clone() } else { format!("{}.{part}", self.name) };
        Scope { path: self.path.sub(&part), name }
    }

    /// Creates variable `leaf` of this scope from `src`, which must give it
    /// the shape `shape`; an error names the tensor and both shapes.
    pub(crate) fn var(&self, leaf: &str, shape: &[i64], src: &mut WeightSource) -> Result<Tensor> {
        let hf_name = format!("{}.{leaf}", self.name);
        let t = src(&hf_name)?;
        if t.size() != shape {
            bail!("tensor {hf_name}: shape {:?}, expected {shape:?}", t.size());
        }
        let t = t.f_to_kind(Kind::Float)?;
        let v = self.path.f_var_copy(leaf, &t).with_context(|| format!("creating variable {hf_name}"))?;
        Ok(v)
    }
}

/// `y = x Wᵀ (+ b)`.
pub(crate) struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// `weight` `[out_dim, in_dim]` and, with `bias`, `bias` `[out_dim]`.
    pub(crate) fn load(s: &Scope, out_dim: usize, in_dim: usize, bias: bool, src: &mut WeightSource) -> Result<Self> {
        let w = s.var("weight", &[out_dim as i64, in_dim as i64], src)?;
        let b = if bias { Some(s.var("bias", &[out_dim as i64], src)?) } else { None };
        Ok(Linear { w, b })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.w, self.b.as_ref())?)
    }
}

/// RMSNorm over the last `dim` features, scaled by `w` or, for Gemma's
/// checkpoints, by `1 + w`.
pub(crate) struct RmsNorm {
    w: Tensor,
    dim: i64,
    eps: f64,
    plus_one: bool,
}

impl RmsNorm {
    /// `weight` `[dim]`.
    pub(crate) fn load(s: &Scope, dim: usize, eps: f64, plus_one: bool, src: &mut WeightSource) -> Result<Self> {
        let w = s.var("weight", &[dim as i64], src)?;
        Ok(RmsNorm { w, dim: dim as i64, eps, plus_one })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.plus_one {
            let w1 = self.w.f_add_scalar(1.0)?;
            Ok(x.f_rms_norm([self.dim], Some(&w1), self.eps)?)
        } else {
            Ok(x.f_rms_norm([self.dim], Some(&self.w), self.eps)?)
        }
    }
}

/// Rotary position embeddings (Su et al. 2021) in the rotate-half layout of
/// HF checkpoints: frequencies `θ^(-2i/head_dim)`.
pub(crate) struct Rope {
    inv_freq: Tensor,
}

/// The cos and sin tables of one forward pass, `[B, 1, T, head_dim]`.
pub(crate) struct RopeTables {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    pub(crate) fn new(head_dim: usize, theta: f64, device: tch::Device) -> Result<Self> {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half).map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32).collect();
        Ok(Rope { inv_freq: Tensor::f_from_slice(&inv)?.f_to_device(device)? })
    }

    /// The tables for `positions` `[B, T]`.
    pub(crate) fn tables(&self, positions: &Tensor) -> Result<RopeTables> {
        let freqs = positions.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?.f_mul(&self.inv_freq)?;
        let emb = Tensor::f_cat(&[&freqs, &freqs], -1)?.f_unsqueeze(1)?;
        Ok(RopeTables { cos: emb.f_cos()?, sin: emb.f_sin()? })
    }
}

impl RopeTables {
    /// `x` `[B, H, T, D]` rotated by its positions.
    pub(crate) fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_mul(&self.cos)?.f_add(&rotate_half(x)?.f_mul(&self.sin)?)?)
    }
}

fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let d = x.size().last().copied().unwrap_or(0);
    let x1 = x.f_narrow(-1, 0, d / 2)?;
    let x2 = x.f_narrow(-1, d / 2, d / 2)?;
    Ok(Tensor::f_cat(&[&x2.f_neg()?, &x1], -1)?)
}

/// The shape of an attention layer.
#[derive(Copy, Clone)]
pub(crate) struct AttentionShape {
    pub(crate) hidden: usize,
    pub(crate) heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
    /// Biases on the q/k/v projections (Qwen2).
    pub(crate) qkv_bias: bool,
}

/// The attention mask of one forward pass, built once and shared by every
/// layer: additive (`0` where a query may attend to a key, `−∞` where not),
/// `[B, 1, rep·T, Tk]` with each query row repeated for the `rep` query heads
/// of a KV head (the layout of [`Attention::forward`]'s grouped queries).
///
/// `scaled_dot_product_attention` turns a boolean mask into exactly this
/// additive form itself, but does so in every layer, and in training each
/// layer's autograd graph then keeps its own float copy; one shared tensor
/// gives the same scores bit for bit at a fraction of the memory.
pub(crate) struct AttentionMask {
    bias: Tensor,
    rep: i64,
}

impl AttentionMask {
    /// From `allowed` `[B, 1, T, Tk]` (bool, true where a query may attend
    /// to a key) for attention with `rep` query heads per KV head.
    ///
    /// # Errors
    /// `allowed` is not 4-D, or `rep` < 1.
    pub(crate) fn new(allowed: &Tensor, rep: i64) -> Result<Self> {
        let (b, one, t, tk) = allowed.size4()?;
        if one != 1 || rep < 1 {
            bail!("attention mask is {:?} with {rep} query heads per KV head", allowed.size());
        }
        let allowed = if rep > 1 {
            allowed.f_unsqueeze(2)?.f_expand([b, 1, rep, t, tk], false)?.f_reshape([b, 1, rep * t, tk])?
        } else {
            allowed.shallow_clone()
        };
        let zeros = Tensor::f_zeros(allowed.size(), (Kind::Float, allowed.device()))?;
        let bias = zeros.f_masked_fill(&allowed.f_logical_not()?, f64::NEG_INFINITY)?;
        Ok(AttentionMask { bias, rep })
    }
}

/// Grouped-query attention (Ainslie et al. 2023) with RoPE on q and k and
/// `scaled_dot_product_attention` under an explicit [`AttentionMask`].
pub(crate) struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
}

impl Attention {
    /// `q_proj`, `k_proj`, `v_proj`, `o_proj` of scope `s`.
    pub(crate) fn load(s: &Scope, shape: AttentionShape, src: &mut WeightSource) -> Result<Self> {
        let AttentionShape { hidden: d, heads: h, kv_heads: kvh, head_dim: hd, qkv_bias: bias } = shape;
        Ok(Attention {
            q: Linear::load(&s.pp("q_proj"), h * hd, d, bias, src)?,
            k: Linear::load(&s.pp("k_proj"), kvh * hd, d, bias, src)?,
            v: Linear::load(&s.pp("v_proj"), kvh * hd, d, bias, src)?,
            o: Linear::load(&s.pp("o_proj"), d, h * hd, false, src)?,
            heads: h as i64,
            kv_heads: kvh as i64,
            head_dim: hd as i64,
        })
    }

    /// Attention of `x` `[B, T, d]` over the cached keys (`past` positions)
    /// and its own; the new keys and values are written into `cache`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: &AttentionMask,
        past: i64,
        cache: Option<&mut (Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.size3()?;
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let q = self.q.forward(x)?.f_view([b, t, h, hd])?.f_transpose(1, 2)?;
        let k = self.k.forward(x)?.f_view([b, t, kvh, hd])?.f_transpose(1, 2)?;
        let v = self.v.forward(x)?.f_view([b, t, kvh, hd])?.f_transpose(1, 2)?;
        let q = rope.apply(&q)?;
        let k = rope.apply(&k)?;
        let (k, v) = match cache {
            Some((kc, vc)) => {
                kc.f_narrow(2, past, t)?.f_copy_(&k)?;
                vc.f_narrow(2, past, t)?.f_copy_(&v)?;
                (kc.f_narrow(2, 0, past + t)?, vc.f_narrow(2, 0, past + t)?)
            }
            None => (k, v),
        };
        let tk = past + t;
        let rep = h / kvh;
        if mask.rep != rep || mask.bias.size()[2] != rep * t || mask.bias.size()[3] != tk {
            bail!(
                "attention mask {:?} (×{}) does not fit {rep}×{t} queries over {tk} keys",
                mask.bias.size(),
                mask.rep
            );
        }
        // Grouped-query attention without copying K/V: query heads
        // `g*rep .. (g+1)*rep` share KV head `g` (HF `repeat_kv`), so the
        // queries of one group are stacked along the sequence axis
        // ([B, kvh, rep*T, D]); the mask's rows are repeated to match.
        let scale = 1.0 / (hd as f64).sqrt();
        let out = if rep > 1 {
            let qg = q.f_reshape([b, kvh, rep * t, hd])?;
            let o = Tensor::f_scaled_dot_product_attention(&qg, &k, &v, Some(&mask.bias), 0.0, false, scale, false)?;
            o.f_reshape([b, h, t, hd])?
        } else {
            Tensor::f_scaled_dot_product_attention(&q, &k, &v, Some(&mask.bias), 0.0, false, scale, false)?
        };
        let out = out.f_transpose(1, 2)?.f_reshape([b, t, h * hd])?;
        self.o.forward(&out)
    }
}

/// The activation of the MLP's gate.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU: SwiGLU (Shazeer 2020), Llama and Qwen2.
    Silu,
    /// GELU, tanh approximation: GeGLU, Gemma.
    GeluTanh,
}

/// The gated MLP: `down(act(gate(x)) · up(x))`.
pub(crate) struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    activation: Activation,
}

impl Mlp {
    /// `gate_proj`, `up_proj`, `down_proj` of scope `s`.
    pub(crate) fn load(
        s: &Scope,
        hidden: usize,
        intermediate: usize,
        activation: Activation,
        src: &mut WeightSource,
    ) -> Result<Self> {
        Ok(Mlp {
            gate: Linear::load(&s.pp("gate_proj"), intermediate, hidden, false, src)?,
            up: Linear::load(&s.pp("up_proj"), intermediate, hidden, false, src)?,
            down: Linear::load(&s.pp("down_proj"), hidden, intermediate, false, src)?,
            activation,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?;
        let g = match self.activation {
            Activation::GeluTanh => g.f_gelu("tanh")?,
            Activation::Silu => g.f_silu()?,
        };
        self.down.forward(&g.f_mul(&self.up.forward(x)?)?)
    }
}
