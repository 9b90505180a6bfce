//! Choosing the next token from one row of logits: greedy (temperature 0),
//! or temperature-scaled sampling restricted by top-k and nucleus (top-p,
//! Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration").
//!
//! Sampling runs on the CPU in f64 from the row's logits with the row's own
//! `ChaCha20Rng`, so a sequence's choices depend only on its own logits and
//! seed, never on what else shares the batch.

use anyhow::{bail, Result};
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// How to pick tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingSettings {
    /// Softmax temperature; `0` means greedy (argmax, lowest id on ties).
    pub temperature: f64,
    /// Nucleus mass in `(0, 1]`: sample among the most probable tokens whose
    /// cumulative probability first reaches `top_p`. `1` disables it.
    pub top_p: f64,
    /// Keep only the `k` most probable tokens (`None` disables it).
    pub top_k: Option<usize>,
    /// Maximum number of generated tokens (the stop token counts).
    pub max_new_tokens: usize,
    /// Extra token ids that end a sequence, in addition to the tokenizer's
    /// end-of-sequence ids.
    pub stop_tokens: Vec<u32>,
}

impl Default for SamplingSettings {
    /// Greedy, 256 new tokens.
    fn default() -> Self {
        SamplingSettings {
            temperature: 0.0,
            top_p: 1.0,
            top_k: None,
            max_new_tokens: 256,
            stop_tokens: vec![],
        }
    }
}

impl SamplingSettings {
    /// Checks ranges: `temperature >= 0` and finite, `0 < top_p <= 1`,
    /// `top_k >= 1`.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            bail!(
                "temperature must be finite and >= 0, got {}",
                self.temperature
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!("top_p must be in (0, 1], got {}", self.top_p);
        }
        if self.top_k == Some(0) {
            bail!("top_k must be >= 1");
        }
        Ok(())
    }
}

/// Index of the largest value (lowest index on ties; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut bv = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > bv {
            bv = v;
            best = i;
        }
    }
    best as u32
}

/// Picks a token id from one row of logits (`[V]`) per `s`, drawing at most
/// one uniform number from `rng`. Computes the tempered softmax itself; the
/// generator computes it batched in torch and calls [`sample_from_probs`].
pub fn sample(logits: &[f32], s: &SamplingSettings, rng: &mut ChaCha20Rng) -> u32 {
    if s.temperature == 0.0 || s.top_k == Some(1) {
        return argmax(logits);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<f32> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / s.temperature).exp() as f32)
        .collect();
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    probs
        .iter_mut()
        .for_each(|p| *p = (*p as f64 / total) as f32);
    sample_from_probs(logits, &probs, s, rng)
}

/// Picks a token id given one row's logits and `probs = softmax(logits /
/// temperature)` (both `[V]`). Greedy settings read only `logits`.
///
/// Only tokens above a probability threshold are sorted (by probability
/// descending, id ascending); the threshold is lowered until the candidates
/// contain the top-k tokens or the top-p mass. This is exact, since every
/// excluded token is less probable than every candidate, and keeps a step at
/// a few dozen sorted entries instead of the whole vocabulary. Without top-k
/// and top-p, the draw walks the distribution in id order (no sort).
pub fn sample_from_probs(
    logits: &[f32],
    probs: &[f32],
    s: &SamplingSettings,
    rng: &mut ChaCha20Rng,
) -> u32 {
    if s.temperature == 0.0 || s.top_k == Some(1) {
        return argmax(logits);
    }
    let v = probs.len();
    if s.top_p >= 1.0 && s.top_k.is_none() {
        let total: f64 = probs.iter().map(|&p| p as f64).sum();
        let u = rng.random::<f64>() * total;
        let mut acc = 0.0;
        let mut last = 0;
        for (i, &p) in probs.iter().enumerate() {
            if p > 0.0 {
                acc += p as f64;
                last = i;
                if u < acc {
                    return i as u32;
                }
            }
        }
        return last as u32;
    }
    let mut thr = 1e-4f32;
    let mut cand: Vec<(u32, f32)>;
    loop {
        cand = probs
            .iter()
            .enumerate()
            .filter(|(_, &p)| p >= thr)
            .map(|(i, &p)| (i as u32, p))
            .collect();
        if thr == 0.0 {
            break;
        }
        let enough = match s.top_k {
            // Top-k first, then top-p within it: the k best must all be candidates.
            Some(k) => cand.len() >= k.min(v),
            None => cand.iter().map(|c| c.1 as f64).sum::<f64>() >= s.top_p,
        };
        if enough {
            break;
        }
        thr = if thr < 1e-12 { 0.0 } else { thr * 0.01 };
    }
    cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(k) = s.top_k {
        cand.truncate(k.max(1));
    }
    if s.top_p < 1.0 {
        // As in HF's TopPLogitsWarper: the nucleus of the (top-k renormalized) distribution.
        let kept: f64 = cand.iter().map(|c| c.1 as f64).sum();
        let mut acc = 0.0;
        let mut keep = cand.len();
        for (i, c) in cand.iter().enumerate() {
            acc += c.1 as f64;
            if acc >= s.top_p * kept {
                keep = i + 1;
                break;
            }
        }
        cand.truncate(keep.max(1));
    }
    let mass: f64 = cand.iter().map(|c| c.1 as f64).sum();
    let u: f64 = rng.random::<f64>() * mass;
    let mut acc = 0.0;
    for c in &cand {
        acc += c.1 as f64;
        if u < acc {
            return c.0;
        }
    }
    cand.last().map_or(0, |c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn settings(t: f64, p: f64, k: Option<usize>) -> SamplingSettings {
        SamplingSettings {
            temperature: t,
            top_p: p,
            top_k: k,
            max_new_tokens: 1,
            stop_tokens: vec![],
        }
    }

    #[test]
    fn greedy_takes_argmax_lowest_on_ties() {
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        assert_eq!(
            sample(&[1.0, 3.0, 3.0, 0.0], &settings(0.0, 1.0, None), &mut rng),
            1
        );
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits = [2.0f32, 1.9, 0.0, -1.0, -5.0];
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for _ in 0..200 {
            let t = sample(&logits, &settings(1.0, 1.0, Some(2)), &mut rng);
            assert!(t < 2, "top-k 2 sampled {t}");
            // p(0) ≈ 0.46, p(1) ≈ 0.42: top-p 0.5 keeps two tokens.
            let t = sample(&logits, &settings(1.0, 0.5, None), &mut rng);
            assert!(t < 2, "top-p 0.5 sampled {t}");
            let t = sample(&logits, &settings(1.0, 0.4, None), &mut rng);
            assert_eq!(t, 0);
        }
        // Without restrictions every token shows up eventually.
        let mut seen = [false; 5];
        for _ in 0..5000 {
            seen[sample(&logits, &settings(2.0, 1.0, None), &mut rng) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    #[test]
    fn same_seed_same_choices() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32) / 10.0).collect();
        let s = settings(0.7, 0.9, Some(50));
        let a: Vec<u32> = {
            let mut r = ChaCha20Rng::seed_from_u64(42);
            (0..20).map(|_| sample(&logits, &s, &mut r)).collect()
        };
        let mut r = ChaCha20Rng::seed_from_u64(42);
        let b: Vec<u32> = (0..20).map(|_| sample(&logits, &s, &mut r)).collect();
        assert_eq!(a, b);
        assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 1);
    }
}
