//! Optimisers written on tch tensors so that every bit of their state can be
//! saved and restored for an exact resume: AdamW and Adafactor, plus
//! global-norm gradient clipping.
//!
//! * **AdamW** — Loshchilov & Hutter, "Decoupled Weight Decay Regularization"
//!   (ICLR 2019), Algorithm 2, in PyTorch's form: `X ← X·(1 − lr·λ)`, then the
//!   bias-corrected Adam step `X ← X − lr · m̂ / (√v̂ + ε)` with
//!   `m̂ = m / (1 − β1^t)`, `v̂ = v / (1 − β2^t)`.
//! * **Adafactor** — Shazeer & Stern, "Adafactor: Adaptive Learning Rates with
//!   Sublinear Memory Cost" (ICML 2018). For a tensor with ≥ 2 dimensions
//!   (its last two are the n × m matrix) Algorithm 4: `R_t = β̂2 R_{t−1} +
//!   (1 − β̂2)(G² + ε1)1_m`, `C_t = β̂2 C_{t−1} + (1 − β̂2)1_nᵀ(G² + ε1)`,
//!   `V̂_t = R_t C_t / (1_nᵀ R_t)`; for vectors Algorithm 5: `V̂_t = β̂2 V̂_{t−1} +
//!   (1 − β̂2)(G² + ε1)`. Then `U_t = G_t / √V̂_t`, update clipping (Section 5)
//!   `Û_t = U_t / max(1, RMS(U_t)/d)` and `X_t = X_{t−1} − α_t Û_t`. The decay
//!   schedule is Section 7.2's `β̂2_t = 1 − t^(−0.8)`. No first moment (β1 = 0,
//!   the paper's setting). R and C are kept as row/column *means* rather than
//!   sums: `R̄ C̄ / mean(R̄)` equals `R C / sum(R)` and stays in range in f32.
//!   The relative step size is off: α_t is the schedule's learning rate, times
//!   `max(ε2, RMS(X_{t−1}))` only when `scale_parameter` is set (the paper's
//!   α_t). Weight decay is decoupled as for AdamW (`X ← X·(1 − lr·λ)`), which
//!   the paper does not have; it follows the Hugging Face implementation.
//!
//! AdamW on the CPU runs fused, one pass over memory per parameter
//! ([`super::adamw_fused`]).
//!
//! Weight decay skips 1-D tensors (RMSNorm gains and biases): decaying a norm
//! gain towards 0 rather than 1 only hurts, the usual practice since BERT.

use anyhow::{bail, Context, Result};
use tch::{nn::VarStore, Kind, Tensor};

use super::adamw_fused;
use super::config::{AdafactorParams, AdamWParams, OptimizerKind, TrainConfig};

/// One trainable tensor of the model with its name in the `VarStore`.
#[derive(Debug)]
pub struct Param {
    /// The `VarStore` name (e.g. `model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// A shallow clone of the variable (shares storage and gradient).
    pub tensor: Tensor,
    /// Whether decoupled weight decay applies (tensors with ≥ 2 dimensions).
    pub decay: bool,
}

/// The trainable variables of `vs` in name order, one entry per storage (a
/// tied tensor registered under two names is kept once, under the first name),
/// so that the update order and the saved state do not depend on a hash map.
pub fn trainable_params(vs: &VarStore) -> Vec<Param> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut seen = std::collections::HashSet::new();
    named
        .into_iter()
        .filter(|(_, t)| seen.insert(t.data_ptr() as usize))
        .map(|(name, tensor)| {
            let decay = tensor.dim() >= 2;
            Param { name, tensor, decay }
        })
        .collect()
}

/// Sets every parameter's gradient to zero (where one exists).
pub fn zero_grads(params: &mut [Param]) {
    for p in params.iter_mut() {
        p.tensor.zero_grad();
    }
}

/// Clips the gradients in place so that their global L2 norm is at most
/// `max_norm` (scale `max_norm / (norm + 1e-6)` when above), and returns the
/// norm before clipping. Parameters without a gradient count as zero.
///
/// # Errors
/// A tch error, or a non-finite norm (NaN/inf gradients), naming the first
/// parameter whose gradient is not finite.
pub fn clip_grad_norm(params: &[Param], max_norm: f64) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let mut sq = 0.0f64;
    for p in params {
        let g = p.tensor.grad();
        if !g.defined() {
            continue;
        }
        let n = g.f_norm()?.f_double_value(&[])?;
        if !n.is_finite() {
            bail!("gradient of `{}` is not finite (norm {n})", p.name);
        }
        sq += n * n;
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for p in params {
            let mut g = p.tensor.grad();
            if g.defined() {
                let _ = g.f_mul_scalar_(scale)?;
            }
        }
    }
    Ok(norm)
}

/// The optimiser state of one parameter.
#[derive(Debug)]
enum Slots {
    /// AdamW first and second moments, shaped like the parameter.
    Adam { exp_avg: Tensor, exp_avg_sq: Tensor },
    /// Adafactor factored second moment: row means `[.., n]`, column means
    /// `[.., m]` for an `[.., n, m]` parameter.
    Factored { row: Tensor, col: Tensor },
    /// Adafactor full second moment for a vector, shaped like the parameter.
    Full { exp_avg_sq: Tensor },
}

impl Slots {
    fn named(&self) -> Vec<(&'static str, &Tensor)> {
        match self {
            Slots::Adam { exp_avg, exp_avg_sq } => vec![("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)],
            Slots::Factored { row, col } => vec![("exp_avg_sq_row", row), ("exp_avg_sq_col", col)],
            Slots::Full { exp_avg_sq } => vec![("exp_avg_sq", exp_avg_sq)],
        }
    }

    fn named_mut(&mut self) -> Vec<(&'static str, &mut Tensor)> {
        match self {
            Slots::Adam { exp_avg, exp_avg_sq } => vec![("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)],
            Slots::Factored { row, col } => vec![("exp_avg_sq_row", row), ("exp_avg_sq_col", col)],
            Slots::Full { exp_avg_sq } => vec![("exp_avg_sq", exp_avg_sq)],
        }
    }
}

/// AdamW or Adafactor over a fixed list of parameters, with its step counter.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    adamw: AdamWParams,
    adafactor: AdafactorParams,
    weight_decay: f64,
    params: Vec<Param>,
    slots: Vec<Slots>,
    step: u64,
}

impl Optimizer {
    /// An optimiser over `trainable_params(vs)` with zeroed state (step 0),
    /// configured by `config.optimizer`, its parameter block and
    /// `config.weight_decay`.
    ///
    /// # Errors
    /// No trainable variables, or a tch allocation error.
    pub fn new(config: &TrainConfig, vs: &VarStore) -> Result<Self> {
        let params = trainable_params(vs);
        if params.is_empty() {
            bail!("the model has no trainable variables");
        }
        let mut slots = Vec::with_capacity(params.len());
        for p in &params {
            let t = &p.tensor;
            let s = match config.optimizer {
                OptimizerKind::Adamw => Slots::Adam { exp_avg: t.f_zeros_like()?, exp_avg_sq: t.f_zeros_like()? },
                OptimizerKind::Adafactor if t.dim() >= 2 => {
                    let size = t.size();
                    let (lead, last) = size.split_at(size.len() - 1);
                    let (lead2, _) = size.split_at(size.len() - 2);
                    let col_shape: Vec<i64> = lead2.iter().copied().chain(last.iter().copied()).collect();
                    Slots::Factored {
                        row: Tensor::f_zeros(lead, (Kind::Float, t.device()))?,
                        col: Tensor::f_zeros(&col_shape, (Kind::Float, t.device()))?,
                    }
                }
                OptimizerKind::Adafactor => Slots::Full { exp_avg_sq: t.f_zeros_like()? },
            };
            slots.push(s);
        }
        Ok(Self {
            kind: config.optimizer,
            adamw: config.adamw,
            adafactor: config.adafactor,
            weight_decay: config.weight_decay,
            params,
            slots,
            step: 0,
        })
    }

    /// Which optimiser this is.
    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// Updates taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The parameters, in update order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Mutable parameters (to zero their gradients).
    pub fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }

    /// Applies one update with learning rate `lr` from the current gradients
    /// (parameters without a gradient are left alone, state included), then
    /// increments the step counter.
    ///
    /// AdamW on contiguous f32 CPU tensors (every parameter of a model on the
    /// CPU) runs as one pass over each parameter's memory
    /// ([`adamw_fused`]); elsewhere (another device) as tensor operations,
    /// which round differently in the last bits. Either way the result does
    /// not depend on the thread count of the update.
    ///
    /// # Errors
    /// A tch error naming the parameter.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let t = self.step + 1;
        let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1);
        for (p, s) in self.params.iter_mut().zip(self.slots.iter_mut()) {
            let g = p.tensor.grad();
            if !g.defined() {
                continue;
            }
            let wd = if p.decay { self.weight_decay } else { 0.0 };
            match s {
                Slots::Adam { exp_avg, exp_avg_sq } if adamw_fused::applies(&p.tensor, exp_avg, exp_avg_sq) => {
                    let h = &self.adamw;
                    let c = adamw_fused::AdamWCoefficients::new(lr, wd, h.beta1, h.beta2, h.eps, t);
                    adamw_fused::update_tensors(&mut p.tensor, &g, exp_avg, exp_avg_sq, &c, threads)
                }
                Slots::Adam { exp_avg, exp_avg_sq } => {
                    adamw_update(&mut p.tensor, &g, exp_avg, exp_avg_sq, &self.adamw, lr, wd, t)
                }
                Slots::Factored { row, col } => {
                    adafactor_factored(&mut p.tensor, &g, row, col, &self.adafactor, lr, wd, t)
                }
                Slots::Full { exp_avg_sq } => adafactor_full(&mut p.tensor, &g, exp_avg_sq, &self.adafactor, lr, wd, t),
            }
            .with_context(|| format!("optimiser update of `{}`", p.name))?;
        }
        self.step = t;
        Ok(())
    }

    /// Every state tensor, named `<param>/<slot>` (slots: `exp_avg`,
    /// `exp_avg_sq`, `exp_avg_sq_row`, `exp_avg_sq_col`), for a safetensors
    /// file. The step counter is not a tensor: save [`Self::steps_taken`].
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (p, s) in self.params.iter().zip(&self.slots) {
            for (slot, t) in s.named() {
                out.push((format!("{}/{}", p.name, slot), t.shallow_clone()));
            }
        }
        out
    }

    /// Restores the state written by [`Self::state_tensors`] and the step
    /// counter.
    ///
    /// # Errors
    /// A missing, extra or misshapen state tensor (named), or a tch error.
    pub fn load_state(&mut self, tensors: Vec<(String, Tensor)>, step: u64) -> Result<()> {
        let mut map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        let _guard = tch::no_grad_guard();
        for (p, s) in self.params.iter().zip(self.slots.iter_mut()) {
            for (slot, dst) in s.named_mut() {
                let key = format!("{}/{}", p.name, slot);
                let src = map.remove(&key).with_context(|| format!("optimiser state `{key}` is missing"))?;
                if src.size() != dst.size() {
                    bail!("optimiser state `{key}` has shape {:?}, expected {:?}", src.size(), dst.size());
                }
                dst.f_copy_(&src).with_context(|| format!("restoring optimiser state `{key}`"))?;
            }
        }
        if let Some(extra) = map.keys().min() {
            bail!("optimiser state has `{extra}`, which matches no parameter (another optimiser or model?)");
        }
        self.step = step;
        Ok(())
    }
}

/// AdamW (Loshchilov & Hutter 2019) in PyTorch's form; `t` is 1-based.
#[allow(clippy::too_many_arguments)]
fn adamw_update(
    x: &mut Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    h: &AdamWParams,
    lr: f64,
    wd: f64,
    t: u64,
) -> Result<()> {
    // In place, with one temporary the size of the parameter.
    if wd > 0.0 {
        let _ = x.f_mul_scalar_(1.0 - lr * wd)?;
    }
    let _ = m.f_lerp_(g, 1.0 - h.beta1)?;
    let mut tmp = g.f_square()?;
    let _ = v.f_lerp_(&tmp, 1.0 - h.beta2)?;
    let bc1 = 1.0 - h.beta1.powi(t as i32);
    let bc2 = 1.0 - h.beta2.powi(t as i32);
    // tmp = √v / √bc2 + ε, then m / tmp · lr / bc1.
    let _ = v.f_sqrt_out(&tmp)?;
    let _ = tmp.f_div_scalar_(bc2.sqrt())?;
    let _ = tmp.f_add_scalar_(h.eps)?;
    let _ = m.f_div_out(&tmp, &tmp)?;
    let _ = tmp.f_mul_scalar_(lr / bc1)?;
    let _ = x.f_sub_(&tmp)?;
    Ok(())
}

/// β̂2_t = 1 − t^(−c) (Shazeer & Stern 2018, Section 7.2).
fn beta2_hat(h: &AdafactorParams, t: u64) -> f64 {
    1.0 - (t as f64).powf(-h.decay_rate)
}

/// Weight decay, update clipping and the step shared by Algorithms 4 and 5:
/// `Û = U / max(1, RMS(U)/d)`, `X ← X − α Û`.
fn adafactor_apply(x: &mut Tensor, mut u: Tensor, h: &AdafactorParams, lr: f64, wd: f64) -> Result<()> {
    let rms = |t: &Tensor| -> Result<f64> { Ok(t.f_norm()?.f_double_value(&[])? / (t.numel() as f64).sqrt()) };
    let alpha = if h.scale_parameter { lr * rms(x)?.max(h.eps2) } else { lr };
    let clip = (rms(&u)? / h.clip_threshold).max(1.0);
    let _ = u.f_mul_scalar_(alpha / clip)?;
    if wd > 0.0 {
        let _ = x.f_mul_scalar_(1.0 - lr * wd)?;
    }
    let _ = x.f_sub_(&u)?;
    Ok(())
}

/// Adafactor for an `[.., n, m]` tensor (Algorithm 4), with row/column means.
#[allow(clippy::too_many_arguments)]
fn adafactor_factored(
    x: &mut Tensor,
    g: &Tensor,
    row: &mut Tensor,
    col: &mut Tensor,
    h: &AdafactorParams,
    lr: f64,
    wd: f64,
    t: u64,
) -> Result<()> {
    let one_minus_beta = 1.0 - beta2_hat(h, t);
    let mut g2 = g.f_square()?;
    let _ = g2.f_add_scalar_(h.eps1)?;
    let _ = row.f_lerp_(&g2.f_mean_dim(-1, false, Kind::Float)?, one_minus_beta)?;
    let _ = col.f_lerp_(&g2.f_mean_dim(-2, false, Kind::Float)?, one_minus_beta)?;
    drop(g2);
    // V̂ = R̄ C̄ / mean(R̄): rsqrt(V̂) = rsqrt(R̄ / mean(R̄)) ⊗ rsqrt(C̄).
    let r_factor = row.f_div(&row.f_mean_dim(-1, true, Kind::Float)?)?.f_rsqrt()?.f_unsqueeze(-1)?;
    let c_factor = col.f_rsqrt()?.f_unsqueeze(-2)?;
    let mut u = g.f_mul(&r_factor)?;
    let _ = u.f_mul_(&c_factor)?;
    adafactor_apply(x, u, h, lr, wd)
}

/// Adafactor for a vector (Algorithm 5).
fn adafactor_full(
    x: &mut Tensor,
    g: &Tensor,
    v: &mut Tensor,
    h: &AdafactorParams,
    lr: f64,
    wd: f64,
    t: u64,
) -> Result<()> {
    let one_minus_beta = 1.0 - beta2_hat(h, t);
    let mut g2 = g.f_square()?;
    let _ = g2.f_add_scalar_(h.eps1)?;
    let _ = v.f_lerp_(&g2, one_minus_beta)?;
    let _ = v.f_rsqrt_out(&g2)?;
    let _ = g2.f_mul_(g)?;
    let u = g2;
    adafactor_apply(x, u, h, lr, wd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn store(kind: OptimizerKind, wd: f64) -> (VarStore, Optimizer) {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let _w = root.var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5, 0.25, -1.0]).view([2, 3]));
        let _b = root.var_copy("b", &Tensor::from_slice(&[0.5f32, -0.5]));
        let cfg = TrainConfig { optimizer: kind, weight_decay: wd, ..TrainConfig::default() };
        let opt = Optimizer::new(&cfg, &vs).expect("optimizer");
        (vs, opt)
    }

    fn set_grads(opt: &mut Optimizer, gw: &[f32], gb: &[f32]) {
        // loss = <w, gw> + <b, gb> has gradient (gw, gb).
        zero_grads(opt.params_mut());
        let b = opt.params()[0].tensor.shallow_clone();
        let w = opt.params()[1].tensor.shallow_clone();
        let loss =
            (w * Tensor::from_slice(gw).view([2, 3])).sum(Kind::Float) + (b * Tensor::from_slice(gb)).sum(Kind::Float);
        loss.backward();
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).expect("f32")
    }

    #[test]
    fn params_are_sorted_and_decay_only_matrices() {
        let (_vs, opt) = store(OptimizerKind::Adamw, 0.01);
        let names: Vec<_> = opt.params().iter().map(|p| (p.name.as_str(), p.decay)).collect();
        assert_eq!(names, vec![("b", false), ("w", true)]);
    }

    #[test]
    fn adamw_matches_hand_computation() {
        let (_vs, mut opt) = store(OptimizerKind::Adamw, 0.1);
        let gw = [0.1f32, -0.2, 0.3, 0.0, 1.0, -1.0];
        let gb = [2.0f32, -3.0];
        let lr = 0.01;
        set_grads(&mut opt, &gw, &gb);
        opt.step(lr).expect("step");
        // First step: m̂ = g, v̂ = g², so the step is lr·g/(|g|+ε) after decay.
        let w0 = [1.0f32, -2.0, 3.0, 0.5, 0.25, -1.0];
        let got = values(&opt.params()[1].tensor);
        for i in 0..6 {
            let g = gw[i] as f64;
            let want = w0[i] as f64 * (1.0 - lr * 0.1) - lr * g / (g.abs() + 1e-8);
            assert!((got[i] as f64 - want).abs() < 1e-6, "w[{i}] {} vs {want}", got[i]);
        }
        // No decay on the 1-D tensor.
        let got_b = values(&opt.params()[0].tensor);
        assert!((got_b[0] as f64 - (0.5 - lr)).abs() < 1e-6);
        assert!((got_b[1] as f64 - (-0.5 + lr)).abs() < 1e-6);
        assert_eq!(opt.steps_taken(), 1);
    }

    #[test]
    fn adafactor_first_step_matches_hand_computation() {
        let (_vs, mut opt) = store(OptimizerKind::Adafactor, 0.0);
        let gw = [0.1f32, -0.2, 0.3, 0.4, 1.0, -1.0];
        let gb = [2.0f32, -3.0];
        set_grads(&mut opt, &gw, &gb);
        let lr = 0.01;
        opt.step(lr).expect("step");
        // t=1: β̂2 = 0, so R = row sums of G², C = column sums, V̂ = R C / ΣR.
        let g2: Vec<f64> = gw.iter().map(|g| (*g as f64).powi(2) + 1e-30).collect();
        let r = [g2[0] + g2[1] + g2[2], g2[3] + g2[4] + g2[5]];
        let c = [g2[0] + g2[3], g2[1] + g2[4], g2[2] + g2[5]];
        let total = r[0] + r[1];
        let u: Vec<f64> = (0..6).map(|i| gw[i] as f64 / (r[i / 3] * c[i % 3] / total).sqrt()).collect();
        let rms = (u.iter().map(|x| x * x).sum::<f64>() / 6.0).sqrt();
        let scale = rms.max(1.0);
        let w0 = [1.0f64, -2.0, 3.0, 0.5, 0.25, -1.0];
        let got = values(&opt.params()[1].tensor);
        for i in 0..6 {
            let want = w0[i] - lr * u[i] / scale;
            assert!((got[i] as f64 - want).abs() < 1e-6, "w[{i}] {} vs {want}", got[i]);
        }
        // Vector: V̂ = G², U = sign(G), RMS(U) = 1 → step lr·sign(g).
        let got_b = values(&opt.params()[0].tensor);
        assert!((got_b[0] as f64 - (0.5 - lr)).abs() < 1e-6);
        assert!((got_b[1] as f64 - (-0.5 + lr)).abs() < 1e-6);
    }

    #[test]
    fn clipping_scales_to_the_threshold() {
        let (_vs, mut opt) = store(OptimizerKind::Adamw, 0.0);
        set_grads(&mut opt, &[3.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[4.0, 0.0]);
        let n = clip_grad_norm(opt.params(), 1.0).expect("clip");
        assert!((n - 5.0).abs() < 1e-6);
        let n2 = clip_grad_norm(opt.params(), 1.0).expect("clip");
        assert!((n2 - 1.0).abs() < 1e-5, "{n2}");
    }

    #[test]
    fn state_round_trips_and_rejects_mismatch() {
        for kind in [OptimizerKind::Adamw, OptimizerKind::Adafactor] {
            let (_vs, mut a) = store(kind, 0.01);
            set_grads(&mut a, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], &[1.0, 2.0]);
            a.step(0.01).expect("step");
            let state: Vec<(String, Tensor)> = a.state_tensors().into_iter().map(|(n, t)| (n, t.copy())).collect();
            let (_vs2, mut b) = store(kind, 0.01);
            b.load_state(state, a.steps_taken()).expect("load");
            for ((na, ta), (nb, tb)) in a.state_tensors().iter().zip(b.state_tensors().iter()) {
                assert_eq!(na, nb);
                assert!(ta.equal(tb), "{na}");
            }
            assert_eq!(b.steps_taken(), 1);
            let (_vs3, mut c) = store(kind, 0.01);
            let mut bad = a.state_tensors();
            bad.pop();
            let err = c.load_state(bad, 1).unwrap_err().to_string();
            assert!(err.contains("missing"), "{err}");
        }
    }
}
