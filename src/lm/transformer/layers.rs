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

    /// `x Wᵀ (+ b)` for `x` `[.., in]`; under a mixed-precision `pass` the
    /// product runs in its precision, `x` and the weights cast to it, and
    /// the result stays in it (as under `torch.autocast`).
    pub(crate) fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        linear_in(x, &self.w, self.b.as_ref(), pass.matmul)
    }

    /// Converts the parameters to `kind` in place (the variables they are
    /// shallow clones of see it).
    pub(crate) fn set_kind(&mut self, kind: Kind) -> Result<()> {
        set_kind(&mut self.w, kind)?;
        if let Some(b) = &mut self.b {
            set_kind(b, kind)?;
        }
        Ok(())
    }
}

/// How one forward pass runs.
///
/// * `grad`: autograd records it (then every parameter variable must appear
///   in the graph, so fused products cannot stand in for several).
/// * `matmul`: with gradients, the precision its matrix products run in
///   when it differs from the parameters' (mixed-precision training in the
///   manner of `torch.autocast`: f32 master weights, gradients, residual
///   stream, norms and loss; the linear maps, RoPE, attention and the MLP's
///   activation in bf16, each block's output widened to f32 where it joins
///   the residual stream). `None` without gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pass {
    pub(crate) grad: bool,
    pub(crate) matmul: Option<Kind>,
}

/// `x Wᵀ (+ b)` for `x` `[.., in]` and `w` `[out, in]`, with the product
/// over a single row computed as one over two (the row twice, one half
/// kept): the matrix kernels take another path for one row than for
/// several (a matrix-vector product that sums in another order), so
/// without this a sequence decoded alone would differ from the same
/// sequence decoded in a batch by a rounding unit, in bf16 enough to
/// change a sampled token. Several rows give each row the same result
/// whatever their number.
///
/// # Errors
/// Shape mismatches.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let in_dim = x.size().last().copied().unwrap_or(0);
    if in_dim > 0 && x.numel() as i64 == in_dim {
        let two = Tensor::f_cat(&[x, x], 0)?;
        return Ok(two.f_linear(w, b)?.f_narrow(0, 0, 1)?);
    }
    Ok(x.f_linear(w, b)?)
}

/// [`linear`] with the product in `matmul` when given: `x`, `w` and `b`
/// cast to it and the result left in it (mixed precision, [`Pass`]).
///
/// # Errors
/// Shape mismatches.
pub(crate) fn linear_in(x: &Tensor, w: &Tensor, b: Option<&Tensor>, matmul: Option<Kind>) -> Result<Tensor> {
    match matmul {
        Some(kind) => {
            let b = b.map(|b| b.f_to_kind(kind)).transpose()?;
            linear(&x.f_to_kind(kind)?, &w.f_to_kind(kind)?, b.as_ref())
        }
        None => linear(x, w, b),
    }
}

/// Converts `t` (a parameter variable or a shallow clone of one) to `kind`
/// in place: every handle on the same tensor sees the new data.
pub(crate) fn set_kind(t: &mut Tensor, kind: Kind) -> Result<()> {
    if t.kind() != kind {
        let converted = t.f_to_kind(kind)?;
        t.f_set_data(&converted)?;
    }
    Ok(())
}

/// Several linear maps on the same input run as one: their weights
/// `[Σ out_i, in]` (and biases) live in one tensor, and each map's
/// parameter variable is re-pointed to its rows of it, so the checkpoint
/// still names `q_proj`, `k_proj`, `v_proj` (or `gate_proj`, `up_proj`)
/// and an optimizer step on a variable is seen by the fused weight.
///
/// Only forward passes without gradients use the fused weight
/// ([`Fused::forward`]): autograd knows the variables, not the tensor they
/// are views of, so a forward with gradients runs the maps one by one.
pub(crate) struct Fused {
    w: Tensor,
    b: Option<Tensor>,
    parts: Vec<i64>,
}

impl Fused {
    /// Fuses `maps` (all with or all without a bias, same input width) in
    /// `kind`, re-pointing each map's parameters to their rows of the fused
    /// tensors.
    ///
    /// # Errors
    /// Maps that differ in input width or in having a bias.
    pub(crate) fn new(maps: &mut [&mut Linear], kind: Kind) -> Result<Self> {
        let with_bias = maps.iter().filter(|m| m.b.is_some()).count();
        if with_bias != 0 && with_bias != maps.len() {
            bail!("fused linear maps: {with_bias} of {} have a bias", maps.len());
        }
        let widths: Vec<i64> = maps.iter().map(|m| m.w.size().get(1).copied().unwrap_or(0)).collect();
        if widths.windows(2).any(|w| w[0] != w[1]) {
            bail!("fused linear maps of input widths {widths:?}");
        }
        let parts: Vec<i64> = maps.iter().map(|m| m.w.size()[0]).collect();
        let ws: Vec<Tensor> = maps.iter().map(|m| m.w.f_to_kind(kind)).collect::<Result<_, _>>()?;
        let w = Tensor::f_cat(&ws, 0)?.f_contiguous()?;
        let b = match with_bias {
            0 => None,
            _ => {
                let bs: Vec<Tensor> =
                    maps.iter().filter_map(|m| m.b.as_ref()).map(|b| b.f_to_kind(kind)).collect::<Result<_, _>>()?;
                Some(Tensor::f_cat(&bs, 0)?.f_contiguous()?)
            }
        };
        let mut at = 0;
        for (m, &rows) in maps.iter_mut().zip(&parts) {
            m.w.f_set_data(&w.f_narrow(0, at, rows)?)?;
            if let (Some(mb), Some(b)) = (&mut m.b, &b) {
                mb.f_set_data(&b.f_narrow(0, at, rows)?)?;
            }
            at += rows;
        }
        Ok(Fused { w, b, parts })
    }

    /// The maps' outputs for `x` `[.., in]`, in their order: `[.., out_i]`
    /// each (views of one `[.., Σ out_i]` product).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let y = linear(x, &self.w, self.b.as_ref())?;
        Ok(y.f_split_with_sizes(&self.parts, -1)?)
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
    /// Converts the weight to `kind` in place.
    pub(crate) fn set_kind(&mut self, kind: Kind) -> Result<()> {
        set_kind(&mut self.w, kind)
    }

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

    /// The tables for `positions` `[B, T]`, computed in f32 and given in
    /// `kind` (the activations' precision).
    pub(crate) fn tables(&self, positions: &Tensor, kind: Kind) -> Result<RopeTables> {
        let freqs = positions.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?.f_mul(&self.inv_freq)?;
        let emb = Tensor::f_cat(&[&freqs, &freqs], -1)?.f_unsqueeze(1)?;
        Ok(RopeTables { cos: emb.f_cos()?.f_to_kind(kind)?, sin: emb.f_sin()?.f_to_kind(kind)? })
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
    /// For a decode step over left-padded rows: the runs of rows that share
    /// where their real keys start (see [`KeyRun`]).
    runs: Option<Vec<KeyRun>>,
}

/// Rows `first .. first + rows` of a batch whose real keys are the
/// positions `start ..` of the cache: left padding of the same length.
///
/// Attention over a row's real keys only makes a row's output independent
/// of the padding its batch needs, and so of the other rows: the kernels
/// block the key axis, so the same scores over a longer, partly masked key
/// axis are summed in another order (differences of ~1e-7 in f32, of one
/// bf16 unit in bf16, enough to change a sampled token). Batch size itself
/// does not change a row's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyRun {
    pub(crate) first: i64,
    pub(crate) rows: i64,
    pub(crate) start: i64,
}

/// The [`KeyRun`]s of `key_mask` `[B, Tk]` (1 = real key), when every row
/// is padding followed only by real keys; `None` when a row has a hole.
///
/// # Errors
/// A mask that is not 2-D or cannot be read.
pub(crate) fn key_runs(key_mask: &Tensor) -> Result<Option<Vec<KeyRun>>> {
    let (b, tk) = key_mask.size2()?;
    let flat = key_mask.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Int64)?.f_contiguous()?.f_view([-1])?;
    let flat = Vec::<i64>::try_from(&flat)?;
    let mut runs: Vec<KeyRun> = Vec::new();
    for r in 0..b {
        let row = &flat[(r * tk) as usize..((r + 1) * tk) as usize];
        let start = row.iter().position(|&m| m != 0).unwrap_or(row.len()) as i64;
        if start == tk || row[start as usize..].contains(&0) {
            return Ok(None);
        }
        match runs.last_mut() {
            Some(run) if run.start == start => run.rows += 1,
            _ => runs.push(KeyRun { first: r, rows: 1, start }),
        }
    }
    Ok(Some(runs))
}

impl AttentionMask {
    /// From `allowed` `[B, 1, T, Tk]` (bool, true where a query may attend
    /// to a key) for attention with `rep` query heads per KV head, in the
    /// queries' precision `kind`.
    ///
    /// # Errors
    /// `allowed` is not 4-D, or `rep` < 1.
    pub(crate) fn new(allowed: &Tensor, rep: i64, kind: Kind) -> Result<Self> {
        let (b, one, t, tk) = allowed.size4()?;
        if one != 1 || rep < 1 {
            bail!("attention mask is {:?} with {rep} query heads per KV head", allowed.size());
        }
        let allowed = if rep > 1 {
            allowed.f_unsqueeze(2)?.f_expand([b, 1, rep, t, tk], false)?.f_reshape([b, 1, rep * t, tk])?
        } else {
            allowed.shallow_clone()
        };
        let zeros = Tensor::f_zeros(allowed.size(), (kind, allowed.device()))?;
        let bias = zeros.f_masked_fill(&allowed.f_logical_not()?, f64::NEG_INFINITY)?;
        Ok(AttentionMask { bias, rep, runs: None })
    }

    /// Attends each run of rows over its own real keys only (see
    /// [`KeyRun`]); for forwards whose every query is a real token (a
    /// decode step).
    pub(crate) fn with_runs(self, runs: Vec<KeyRun>) -> Self {
        AttentionMask { runs: Some(runs), ..self }
    }
}

/// Grouped-query attention (Ainslie et al. 2023) with RoPE on q and k and
/// `scaled_dot_product_attention` under an explicit [`AttentionMask`].
pub(crate) struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// q, k and v as one product, for forwards without gradients.
    qkv: Fused,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
}

impl Attention {
    /// `q_proj`, `k_proj`, `v_proj`, `o_proj` of scope `s`.
    pub(crate) fn load(s: &Scope, shape: AttentionShape, src: &mut WeightSource) -> Result<Self> {
        let AttentionShape { hidden: d, heads: h, kv_heads: kvh, head_dim: hd, qkv_bias: bias } = shape;
        let mut q = Linear::load(&s.pp("q_proj"), h * hd, d, bias, src)?;
        let mut k = Linear::load(&s.pp("k_proj"), kvh * hd, d, bias, src)?;
        let mut v = Linear::load(&s.pp("v_proj"), kvh * hd, d, bias, src)?;
        let qkv = Fused::new(&mut [&mut q, &mut k, &mut v], Kind::Float)?;
        Ok(Attention {
            q,
            k,
            v,
            o: Linear::load(&s.pp("o_proj"), d, h * hd, false, src)?,
            qkv,
            heads: h as i64,
            kv_heads: kvh as i64,
            head_dim: hd as i64,
        })
    }

    /// Converts every parameter to `kind` in place, fusing q, k and v anew.
    pub(crate) fn set_kind(&mut self, kind: Kind) -> Result<()> {
        self.qkv = Fused::new(&mut [&mut self.q, &mut self.k, &mut self.v], kind)?;
        self.o.set_kind(kind)
    }

    /// Attention of `x` `[B, T, d]` over the cached keys (`past` positions)
    /// and its own; the new keys and values are written into `cache`.
    /// With gradients (`pass.grad`), the projections run one by one so that
    /// autograd reaches each variable; without, as one fused product.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: &AttentionMask,
        past: i64,
        cache: Option<&mut (Tensor, Tensor)>,
        pass: Pass,
    ) -> Result<Tensor> {
        let (b, t, _) = x.size3()?;
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let (q, k, v) = if pass.grad {
            (self.q.forward(x, pass)?, self.k.forward(x, pass)?, self.v.forward(x, pass)?)
        } else {
            let mut parts = self.qkv.forward(x)?.into_iter();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(q), Some(k), Some(v)) => (q, k, v),
                _ => bail!("fused q/k/v projection did not give three parts"),
            }
        };
        let q = q.f_reshape([b, t, h, hd])?.f_transpose(1, 2)?;
        let k = k.f_reshape([b, t, kvh, hd])?.f_transpose(1, 2)?;
        let v = v.f_reshape([b, t, kvh, hd])?.f_transpose(1, 2)?;
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
        let q = if rep > 1 { q.f_reshape([b, kvh, rep * t, hd])? } else { q };
        let out = match &mask.runs {
            None => Tensor::f_scaled_dot_product_attention(&q, &k, &v, Some(&mask.bias), 0.0, false, scale, false)?,
            Some(runs) => {
                let mut parts = Vec::with_capacity(runs.len());
                for run in runs {
                    let rows = |x: &Tensor| x.f_narrow(0, run.first, run.rows);
                    let keys = |x: &Tensor| -> Result<Tensor> { Ok(rows(x)?.f_narrow(2, run.start, tk - run.start)?) };
                    let bias = rows(&mask.bias)?.f_narrow(3, run.start, tk - run.start)?;
                    parts.push(Tensor::f_scaled_dot_product_attention(
                        &rows(&q)?,
                        &keys(&k)?,
                        &keys(&v)?,
                        Some(&bias),
                        0.0,
                        false,
                        scale,
                        false,
                    )?);
                }
                if parts.len() == 1 {
                    parts.remove(0)
                } else {
                    Tensor::f_cat(&parts, 0)?
                }
            }
        };
        let out = if rep > 1 { out.f_reshape([b, h, t, hd])? } else { out };
        let out = out.f_transpose(1, 2)?.f_reshape([b, t, h * hd])?;
        self.o.forward(&out, pass)
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
    /// gate and up as one product, for forwards without gradients.
    gate_up: Fused,
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
        let mut gate = Linear::load(&s.pp("gate_proj"), intermediate, hidden, false, src)?;
        let mut up = Linear::load(&s.pp("up_proj"), intermediate, hidden, false, src)?;
        let gate_up = Fused::new(&mut [&mut gate, &mut up], Kind::Float)?;
        Ok(Mlp {
            gate,
            up,
            down: Linear::load(&s.pp("down_proj"), hidden, intermediate, false, src)?,
            gate_up,
            activation,
        })
    }

    /// Converts every parameter to `kind` in place, fusing gate and up anew.
    pub(crate) fn set_kind(&mut self, kind: Kind) -> Result<()> {
        self.gate_up = Fused::new(&mut [&mut self.gate, &mut self.up], kind)?;
        self.down.set_kind(kind)
    }

    /// With gradients (`pass.grad`), gate and up run one by one (autograd
    /// reaches each variable); without, as one fused product.
    pub(crate) fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let (g, u) = if pass.grad {
            (self.gate.forward(x, pass)?, self.up.forward(x, pass)?)
        } else {
            let mut parts = self.gate_up.forward(x)?.into_iter();
            match (parts.next(), parts.next()) {
                (Some(g), Some(u)) => (g, u),
                _ => bail!("fused gate/up projection did not give two parts"),
            }
        };
        let g = match self.activation {
            Activation::GeluTanh => g.f_gelu("tanh")?,
            Activation::Silu => g.f_silu()?,
        };
        self.down.forward(&g.f_mul(&u)?, pass)
    }
}
