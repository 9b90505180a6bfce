//! AdamW's update as one pass over each parameter's memory (CPU, f32).
//!
//! The tensor-op form of the update ([`super::optim`]) makes about ten
//! passes over the parameter, its gradient and both moments, each a separate
//! libtorch kernel; on CPU the update is memory-bound, so those passes cost
//! seconds per step for a 135M-parameter model. Here each element is read
//! and written once: `x ← x·(1 − lr·λ)`, `m ← m + (1 − β1)(g − m)`,
//! `v ← v + (1 − β2)(g² − v)`, `x ← x − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)`
//! (PyTorch's AdamW; Loshchilov & Hutter 2019, Algorithm 2).
//!
//! Determinism: every element is computed on its own, in f32, in a fixed
//! order of IEEE operations (Rust never contracts `a·b + c` into a fused
//! multiply-add or reassociates), so the result is the same bit for bit
//! whatever the number of threads, the split into chunks or the SIMD width.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

/// The per-step constants of the update, in f32 (as the kernel uses them).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct AdamWCoefficients {
    /// `1 − lr·λ` (1 where the parameter takes no weight decay).
    pub decay: f32,
    /// `1 − β1`, the weight of the new gradient in the first moment.
    pub w1: f32,
    /// `1 − β2`, the weight of the new squared gradient in the second moment.
    pub w2: f32,
    /// `√(1 − β2^t)`, the second moment's bias correction under the root.
    pub sqrt_bc2: f32,
    /// ε, added to the denominator.
    pub eps: f32,
    /// `lr / (1 − β1^t)`, the step size with the first moment's bias
    /// correction.
    pub step: f32,
}

impl AdamWCoefficients {
    /// The constants of step `t` (1-based) with learning rate `lr`, weight
    /// decay `wd` (0 for none), `β1`, `β2` and `ε`.
    pub fn new(lr: f64, wd: f64, beta1: f64, beta2: f64, eps: f64, t: u64) -> Self {
        let bc1 = 1.0 - beta1.powi(t as i32);
        let bc2 = 1.0 - beta2.powi(t as i32);
        Self {
            decay: (1.0 - lr * wd) as f32,
            w1: (1.0 - beta1) as f32,
            w2: (1.0 - beta2) as f32,
            sqrt_bc2: bc2.sqrt() as f32,
            eps: eps as f32,
            step: (lr / bc1) as f32,
        }
    }
}

/// Updates `x`, `m` and `v` in place from the gradient `g` (all the same
/// length), element by element (see the module docs).
pub fn update_slices(x: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &AdamWCoefficients) {
    let n = x.len();
    assert!(g.len() == n && m.len() == n && v.len() == n, "adamw: slices of different lengths");
    for (((x, &g), m), v) in x.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mi = *m + c.w1 * (g - *m);
        let vi = *v + c.w2 * (g * g - *v);
        let denom = vi.sqrt() / c.sqrt_bc2 + c.eps;
        *x = *x * c.decay - c.step * (mi / denom);
        *m = mi;
        *v = vi;
    }
}

/// Elements per thread below which splitting the work costs more than it
/// saves.
const MIN_PER_THREAD: usize = 1 << 16;

/// [`update_slices`] split over up to `threads` threads (the result does
/// not depend on the split).
pub fn update_slices_parallel(
    x: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: &AdamWCoefficients,
    threads: usize,
) {
    let n = x.len();
    let parts = threads.clamp(1, n.div_ceil(MIN_PER_THREAD).max(1));
    if parts == 1 {
        update_slices(x, g, m, v, c);
        return;
    }
    let chunk = n.div_ceil(parts);
    std::thread::scope(|s| {
        let mut work = x.chunks_mut(chunk).zip(g.chunks(chunk)).zip(m.chunks_mut(chunk)).zip(v.chunks_mut(chunk));
        let first = work.next();
        for (((x, g), m), v) in work {
            s.spawn(move || update_slices(x, g, m, v, c));
        }
        if let Some((((x, g), m), v)) = first {
            update_slices(x, g, m, v, c);
        }
    });
}

/// Whether `t` can be read as a plain f32 slice: a defined, contiguous f32
/// tensor on the CPU.
fn plain_f32(t: &Tensor) -> bool {
    t.defined() && t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous()
}

/// Whether [`update_tensors`] can update parameter `x` with moments `m`,
/// `v` (all contiguous f32 on the CPU, the same number of elements).
pub fn applies(x: &Tensor, m: &Tensor, v: &Tensor) -> bool {
    plain_f32(x) && plain_f32(m) && plain_f32(v) && x.numel() == m.numel() && x.numel() == v.numel()
}

/// The AdamW update of parameter `x` from gradient `g`, with moments `m`
/// and `v`, in one pass over their memory on `threads` threads. Call it
/// under `no_grad`.
///
/// # Errors
/// `x`, `m`, `v` not contiguous f32 CPU tensors of `g`'s size (see
/// [`applies`]), or tensors sharing memory.
pub fn update_tensors(
    x: &mut Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    c: &AdamWCoefficients,
    threads: usize,
) -> Result<()> {
    if !applies(x, m, v) || g.numel() != x.numel() || g.device() != Device::Cpu {
        bail!(
            "fused AdamW needs contiguous f32 CPU tensors of one size (parameter {:?} {:?}, gradient {:?} {:?})",
            x.size(),
            x.kind(),
            g.size(),
            g.kind()
        );
    }
    let g = if plain_f32(g) { g.shallow_clone() } else { g.f_to_kind(Kind::Float)?.f_contiguous()? };
    let n = x.numel();
    let ptrs = [x.data_ptr() as usize, g.data_ptr() as usize, m.data_ptr() as usize, v.data_ptr() as usize];
    let bytes = n * std::mem::size_of::<f32>();
    for i in 0..4 {
        for j in i + 1..4 {
            if ptrs[i] < ptrs[j] + bytes && ptrs[j] < ptrs[i] + bytes {
                bail!("fused AdamW: the parameter, gradient and moments must not share memory");
            }
        }
    }
    if n == 0 {
        return Ok(());
    }
    // SAFETY: the four tensors are contiguous f32 CPU tensors of `n`
    // elements (checked above), so each data pointer addresses `n` valid,
    // aligned f32 values; their ranges do not overlap (checked above), so the
    // three mutable slices and the shared one do not alias. Nothing else
    // touches these tensors while the slices live: they are used here only,
    // and the `Tensor` handles (borrowed for this call) keep the storage
    // alive.
    let (xs, gs, ms, vs) = unsafe {
        (
            std::slice::from_raw_parts_mut(ptrs[0] as *mut f32, n),
            std::slice::from_raw_parts(ptrs[1] as *const f32, n),
            std::slice::from_raw_parts_mut(ptrs[2] as *mut f32, n),
            std::slice::from_raw_parts_mut(ptrs[3] as *mut f32, n),
        )
    };
    update_slices_parallel(xs, gs, ms, vs, c, threads);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        // A fixed pseudo-random sequence in (-1, 1).
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_the_formula_in_f64() {
        let c = AdamWCoefficients::new(1e-3, 0.1, 0.9, 0.999, 1e-8, 3);
        let (mut x, g, mut m, mut v) = (data(100, 1), data(100, 2), data(100, 3), data(100, 4));
        let v0: Vec<f32> = v.iter().map(|a| a.abs()).collect();
        v.copy_from_slice(&v0);
        let (x0, m0) = (x.clone(), m.clone());
        update_slices(&mut x, &g, &mut m, &mut v, &c);
        let (bc1, bc2) = (1.0 - 0.9f64.powi(3), 1.0 - 0.999f64.powi(3));
        for i in 0..100 {
            let gi = g[i] as f64;
            let mi = 0.9 * m0[i] as f64 + 0.1 * gi;
            let vi = 0.999 * v0[i] as f64 + 0.001 * gi * gi;
            let xi = x0[i] as f64 * (1.0 - 1e-4) - 1e-3 / bc1 * mi / (vi.sqrt() / bc2.sqrt() + 1e-8);
            assert!((m[i] as f64 - mi).abs() < 1e-6, "m[{i}]");
            assert!((v[i] as f64 - vi).abs() < 1e-6, "v[{i}]");
            assert!((x[i] as f64 - xi).abs() < 1e-5, "x[{i}]: {} vs {xi}", x[i]);
        }
    }

    #[test]
    fn the_bits_do_not_depend_on_the_thread_count() {
        let n = 3 * MIN_PER_THREAD + 12_345;
        let c = AdamWCoefficients::new(5e-4, 0.01, 0.9, 0.999, 1e-8, 7);
        let g = data(n, 9);
        let run = |threads: usize| {
            let (mut x, mut m) = (data(n, 5), data(n, 6));
            let mut v: Vec<f32> = data(n, 7).iter().map(|a| a * a).collect();
            update_slices_parallel(&mut x, &g, &mut m, &mut v, &c, threads);
            (x, m, v)
        };
        let one = run(1);
        for threads in [2, 3, 5] {
            let other = run(threads);
            let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same(&one.0, &other.0) && same(&one.1, &other.1) && same(&one.2, &other.2), "{threads} threads");
        }
    }

    #[test]
    fn tensors_are_updated_in_place_and_bad_ones_refused() {
        let c = AdamWCoefficients::new(1e-2, 0.0, 0.9, 0.999, 1e-8, 1);
        let mut x = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5]).view([2, 2]);
        let g = Tensor::from_slice(&[0.5f32, -0.5, 0.0, 2.0]).view([2, 2]);
        let (mut m, mut v) = (x.zeros_like(), x.zeros_like());
        update_tensors(&mut x, &g, &mut m, &mut v, &c, 2).expect("update");
        // First step: m̂ = g and v̂ = g², so x moves by lr·g/(|g| + ε).
        let got = Vec::<f32>::try_from(x.flatten(0, -1)).expect("f32");
        let want = [1.0 - 0.01, -2.0 + 0.01, 3.0, 0.5 - 0.01];
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{got:?}");
        }
        let mut wide = Tensor::zeros([2, 4], (Kind::Float, Device::Cpu));
        let mut strided = wide.narrow(1, 0, 2);
        assert!(!applies(&strided, &m, &v));
        let err = update_tensors(&mut strided, &g, &mut m, &mut v, &c, 1).unwrap_err().to_string();
        assert!(err.contains("contiguous"), "{err}");
        let _ = wide.zero_();
        let mut alias = m.shallow_clone();
        let err = update_tensors(&mut x, &g, &mut m, &mut alias, &c, 1).unwrap_err().to_string();
        assert!(err.contains("share memory"), "{err}");
    }
}
