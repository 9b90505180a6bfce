//! Choosing the next token from one row of logits: greedy (temperature 0),
//! or temperature-scaled sampling restricted by top-k, nucleus (top-p,
//! Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration")
//! and min-p, after the repetition guards ([`events::Penalties`],
//! [`super::penalties`]) have adjusted the logits.
//!
//! Sampling runs on the CPU in f64 from the row's logits with the row's own
//! `ChaCha20Rng`, so a sequence's choices depend only on its own logits,
//! tokens and seed, never on what else shares the batch.

use anyhow::{bail, Result};
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use super::penalties::TokenHistory;
pub use events::Penalties;

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
    /// Texts that end a sequence at their first occurrence in the generated
    /// text, which is cut just before it (OpenAI `stop` semantics).
    #[serde(default)]
    pub stop_strings: Vec<String>,
    /// The reasoning/response separator of the method's template: a *second*
    /// separator line ([`super::stop::separator_lines`]) ends the sequence,
    /// cut at the start of that line. A model that has written its response
    /// and starts another `### Response:` block is opening a turn of its own.
    #[serde(default)]
    pub separator: Option<String>,
    /// Guards against repetition and the min-p floor (neutral: off).
    #[serde(default)]
    pub penalties: Penalties,
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
            stop_strings: vec![],
            separator: None,
            penalties: Penalties::default(),
        }
    }
}

impl SamplingSettings {
    /// Checks ranges: `temperature >= 0` and finite, `0 < top_p <= 1`,
    /// `top_k >= 1`, and the penalties' ([`Penalties::check`]).
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            bail!("temperature must be finite and >= 0, got {}", self.temperature);
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!("top_p must be in (0, 1], got {}", self.top_p);
        }
        if self.top_k == Some(0) {
            bail!("top_k must be >= 1");
        }
        if self.stop_strings.iter().any(String::is_empty) {
            bail!("stop_strings must not contain an empty string");
        }
        if self.separator.as_deref().is_some_and(|s| s.trim().is_empty()) {
            bail!("separator must not be blank");
        }
        if let Err(e) = self.penalties.check() {
            bail!("{e}");
        }
        Ok(())
    }
}

/// Temperatures below this behave as greedy decoding: softmax(l / T) tends
/// to the argmax as T → 0, and already at T = 1e-5 a logit gap of 0.001 is
/// a factor e^100, while smaller T makes `l / T` overflow f32 (at T = 1e-40
/// every probability of a torch softmax is NaN).
pub const GREEDY_BELOW_TEMPERATURE: f64 = 1e-5;

impl SamplingSettings {
    /// Whether these settings pick the argmax: temperature below
    /// [`GREEDY_BELOW_TEMPERATURE`] (0 included) or `top_k = 1`.
    pub fn is_greedy(&self) -> bool {
        self.temperature < GREEDY_BELOW_TEMPERATURE || self.top_k == Some(1)
    }
}

/// Logits that are not finite numbers: a broken model or checkpoint, never a
/// token choice.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the model produced a non-finite logit ({value}) for token id {token}")]
pub struct NonFiniteLogits {
    /// The first offending token id.
    pub token: u32,
    /// Its value (NaN or ±inf).
    pub value: f32,
}

/// Checks that every logit of a row is finite.
///
/// # Errors
/// [`NonFiniteLogits`] naming the first NaN or infinite entry.
pub fn check_finite(logits: &[f32]) -> Result<(), NonFiniteLogits> {
    match logits.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(NonFiniteLogits { token: i as u32, value: logits[i] }),
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
/// one uniform number from `rng`. Computes the tempered softmax itself (in
/// f64, max-subtracted); the generator computes it batched in torch and
/// calls [`sample_from_probs`].
///
/// # Errors
/// [`NonFiniteLogits`] when a logit is NaN or infinite.
pub fn sample(logits: &[f32], s: &SamplingSettings, rng: &mut ChaCha20Rng) -> Result<u32, NonFiniteLogits> {
    check_finite(logits)?;
    if s.is_greedy() {
        return Ok(argmax(logits));
    }
    let probs = tempered_softmax(logits, s.temperature);
    sample_from_probs(logits, &probs, s, rng)
}

/// softmax(logits / temperature) in f64, max-subtracted, stored as f32. A
/// logit of −∞ (a banned token) gets probability 0.
fn tempered_softmax(logits: &[f32], temperature: f64) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<f32> = logits.iter().map(|&l| ((l as f64 - max) / temperature).exp() as f32).collect();
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    probs.iter_mut().for_each(|p| *p = (*p as f64 / total) as f32);
    probs
}

/// Picks a token id for a sequence whose guards change the logits
/// ([`Penalties::changes_logits`]): checks the raw row (`[V]`), adjusts a
/// copy by `history` ([`TokenHistory::apply`]), then picks as [`sample`]
/// does from the adjusted logits (greedy: their argmax; else their tempered
/// softmax, restricted by top-k, top-p and min-p). Draws at most one
/// uniform number from `rng`.
///
/// When every token is banned (an n-gram guard on a sequence that has
/// followed its last n−1 tokens with every id of the vocabulary) the raw
/// logits are used instead, so a choice is always made.
///
/// # Errors
/// [`NonFiniteLogits`] when a raw logit is NaN or infinite.
pub fn sample_with_history(
    logits: &[f32],
    history: &TokenHistory,
    s: &SamplingSettings,
    rng: &mut ChaCha20Rng,
) -> Result<u32, NonFiniteLogits> {
    check_finite(logits)?;
    let mut adjusted = logits.to_vec();
    history.apply(&mut adjusted);
    if adjusted.iter().all(|&l| l == f32::NEG_INFINITY) {
        adjusted.copy_from_slice(logits);
    }
    if s.is_greedy() {
        return Ok(argmax(&adjusted));
    }
    let probs = tempered_softmax(&adjusted, s.temperature);
    Ok(draw(&probs, s, rng))
}

/// Picks a token id given one row's logits and `probs = softmax(logits /
/// temperature)` (both `[V]`). Greedy settings ([`SamplingSettings::is_greedy`])
/// read only `logits`.
///
/// The support is top-k first (when set), then the nucleus (Holtzman et al.
/// 2020, §3.1): the smallest set of most probable tokens whose mass reaches
/// `top_p` of the distribution left after top-k, which is the *full*
/// distribution when top-k is off or covers the vocabulary (HF
/// `TopPLogitsWarper` after `TopKLogitsWarper`). Tokens are ordered by
/// probability descending, id ascending.
///
/// Then min-p (HF `MinPLogitsWarper`, applied after top-k and top-p as HF
/// orders its warpers): tokens whose probability is below `min_p ×` the most
/// probable token's are dropped (compared in f64). The ratio to the most
/// probable token does not change when top-k or top-p renormalize, so the
/// set it keeps is the same in either order.
///
/// Only tokens above a probability threshold are sorted; the threshold is
/// lowered until the candidates hold the top-k tokens or `top_p` of the full
/// mass. This is exact, since every excluded token is less probable than
/// every candidate and the cut is measured against the full mass, not the
/// candidates' (so `top_k = V` changes nothing). Without top-k and top-p,
/// the draw walks the distribution in id order (no sort).
///
/// # Errors
/// [`NonFiniteLogits`] when a logit is NaN or infinite.
pub fn sample_from_probs(
    logits: &[f32],
    probs: &[f32],
    s: &SamplingSettings,
    rng: &mut ChaCha20Rng,
) -> Result<u32, NonFiniteLogits> {
    check_finite(logits)?;
    if s.is_greedy() {
        return Ok(argmax(logits));
    }
    Ok(draw(probs, s, rng))
}

/// The non-greedy draw of [`sample_from_probs`] from `probs` (`[V]`).
fn draw(probs: &[f32], s: &SamplingSettings, rng: &mut ChaCha20Rng) -> u32 {
    let v = probs.len();
    let min_p = f64::from(s.penalties.min_p);
    // The full mass, summed in id order (≈ 1; exact sums keep `top_k = V`
    // and `top_k = None` bit-identical).
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    let top_k = s.top_k.filter(|&k| k < v);
    if s.top_p >= 1.0 && top_k.is_none() && min_p > 0.0 {
        // Min-p alone: the tokens at or above the floor, in id order.
        let floor = min_p * probs.iter().copied().fold(0.0f32, f32::max) as f64;
        let kept = |p: f32| p > 0.0 && p as f64 >= floor;
        let mass: f64 = probs.iter().filter(|&&p| kept(p)).map(|&p| p as f64).sum();
        let u = rng.random::<f64>() * mass;
        let mut acc = 0.0;
        let mut last = 0;
        for (i, &p) in probs.iter().enumerate() {
            if kept(p) {
                acc += p as f64;
                last = i;
                if u < acc {
                    return i as u32;
                }
            }
        }
        return last as u32;
    }
    if s.top_p >= 1.0 && top_k.is_none() {
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
        cand = probs.iter().enumerate().filter(|(_, &p)| p >= thr).map(|(i, &p)| (i as u32, p)).collect();
        if thr == 0.0 {
            break;
        }
        let enough = match top_k {
            // Top-k first, then top-p within it: the k best must all be candidates.
            Some(k) => cand.len() >= k,
            None => cand.iter().map(|c| c.1 as f64).sum::<f64>() >= s.top_p * total,
        };
        if enough {
            break;
        }
        thr = if thr < 1e-12 { 0.0 } else { thr * 0.01 };
    }
    cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // The mass the nucleus is measured against: the top-k set's, or all of it.
    let reference = match top_k {
        Some(k) => {
            cand.truncate(k.max(1));
            cand.iter().map(|c| c.1 as f64).sum::<f64>()
        }
        None => total,
    };
    if s.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = cand.len();
        for (i, c) in cand.iter().enumerate() {
            acc += c.1 as f64;
            if acc >= s.top_p * reference {
                keep = i + 1;
                break;
            }
        }
        cand.truncate(keep.max(1));
    }
    if min_p > 0.0 {
        // Candidates are sorted by probability: keep the prefix at or above
        // the floor (the most probable token always stays).
        let floor = min_p * cand.first().map_or(0.0, |c| c.1 as f64);
        let keep = cand.iter().take_while(|c| c.1 as f64 >= floor).count();
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
        SamplingSettings { temperature: t, top_p: p, top_k: k, max_new_tokens: 1, ..Default::default() }
    }

    #[test]
    fn greedy_takes_argmax_lowest_on_ties() {
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        assert_eq!(sample(&[1.0, 3.0, 3.0, 0.0], &settings(0.0, 1.0, None), &mut rng).unwrap(), 1);
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits = [2.0f32, 1.9, 0.0, -1.0, -5.0];
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for _ in 0..200 {
            let t = sample(&logits, &settings(1.0, 1.0, Some(2)), &mut rng).unwrap();
            assert!(t < 2, "top-k 2 sampled {t}");
            // p(0) ≈ 0.46, p(1) ≈ 0.42: top-p 0.5 keeps two tokens.
            let t = sample(&logits, &settings(1.0, 0.5, None), &mut rng).unwrap();
            assert!(t < 2, "top-p 0.5 sampled {t}");
            let t = sample(&logits, &settings(1.0, 0.4, None), &mut rng).unwrap();
            assert_eq!(t, 0);
        }
        // Without restrictions every token shows up eventually.
        let mut seen = [false; 5];
        for _ in 0..5000 {
            seen[sample(&logits, &settings(2.0, 1.0, None), &mut rng).unwrap() as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    #[test]
    fn same_seed_same_choices() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32) / 10.0).collect();
        let s = settings(0.7, 0.9, Some(50));
        let a: Vec<u32> = {
            let mut r = ChaCha20Rng::seed_from_u64(42);
            (0..20).map(|_| sample(&logits, &s, &mut r).unwrap()).collect()
        };
        let mut r = ChaCha20Rng::seed_from_u64(42);
        let b: Vec<u32> = (0..20).map(|_| sample(&logits, &s, &mut r).unwrap()).collect();
        assert_eq!(a, b);
        assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 1);
    }

    /// A Zipf-like distribution over a SmolLM2-size vocabulary (49,152 ids),
    /// ids shuffled so probability order is not id order.
    fn real_size_logits(seed: u64) -> Vec<f32> {
        let mut r = ChaCha20Rng::seed_from_u64(seed);
        let v = 49_152usize;
        let mut ids: Vec<usize> = (0..v).collect();
        for i in (1..v).rev() {
            ids.swap(i, r.random_range(0..=i));
        }
        let mut logits = vec![0f32; v];
        for (rank, &id) in ids.iter().enumerate() {
            // log p ∝ -1.1 log(rank + 1): a long flat tail of tokens under 1e-4.
            logits[id] = -1.1 * ((rank + 1) as f32).ln() + r.random_range(-0.01..0.01);
        }
        logits
    }

    /// The nucleus by definition, from a full sort: the smallest prefix of
    /// tokens by probability (desc, id asc) whose mass reaches `p`.
    fn brute_force_nucleus(probs: &[f32], p: f64) -> std::collections::BTreeSet<u32> {
        let mut all: Vec<(u32, f32)> = probs.iter().enumerate().map(|(i, &q)| (i as u32, q)).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let total: f64 = probs.iter().map(|&q| q as f64).sum();
        let mut acc = 0.0;
        let mut out = std::collections::BTreeSet::new();
        for (id, q) in all {
            out.insert(id);
            acc += q as f64;
            if acc >= p * total {
                break;
            }
        }
        out
    }

    fn softmax(logits: &[f32], t: f64) -> Vec<f32> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = logits.iter().map(|&l| ((l as f64 - max) / t).exp()).collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|x| (x / z) as f32).collect()
    }

    #[test]
    fn nucleus_is_measured_against_the_full_distribution() {
        // Given a real-size vocabulary whose top-0.9 mass lies partly below the
        // 1e-4 candidate pre-filter
        for seed in 0..4 {
            let logits = real_size_logits(seed);
            let probs = softmax(&logits, 1.0);
            let nucleus = brute_force_nucleus(&probs, 0.9);
            assert!(nucleus.len() > 100, "the test needs a wide nucleus, got {}", nucleus.len());
            let s = settings(1.0, 0.9, None);
            let mut whole = s.clone();
            whole.top_k = Some(probs.len());
            // when sampling with top-p alone and with top-k = V
            for draw in 0..300u64 {
                let mut a = ChaCha20Rng::seed_from_u64(draw);
                let mut b = ChaCha20Rng::seed_from_u64(draw);
                let x = sample_from_probs(&logits, &probs, &s, &mut a).unwrap();
                let y = sample_from_probs(&logits, &probs, &whole, &mut b).unwrap();
                // then top-k = V changes nothing and every draw is in the nucleus
                assert_eq!(x, y, "seed {seed} draw {draw}");
                assert!(nucleus.contains(&x), "seed {seed} draw {draw}: {x} outside the nucleus");
            }
        }
    }

    #[test]
    fn nucleus_reaches_into_the_tail_when_it_must() {
        // Given the same distribution, the least probable nucleus member is drawn
        // with the right frequency only if the cut is at 0.9 of the full mass:
        // with a cut at 0.9 of the candidates' mass the tail is never drawn.
        let logits = real_size_logits(11);
        let probs = softmax(&logits, 1.0);
        let nucleus = brute_force_nucleus(&probs, 0.9);
        let tail: std::collections::BTreeSet<u32> =
            nucleus.iter().copied().filter(|&id| probs[id as usize] < 1e-4).collect();
        assert!(!tail.is_empty());
        let s = settings(1.0, 0.9, None);
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let hits =
            (0..4000).filter(|_| tail.contains(&sample_from_probs(&logits, &probs, &s, &mut rng).unwrap())).count();
        assert!(hits > 0, "no draw from the nucleus's low-probability members");
    }

    #[test]
    fn an_underflowing_temperature_is_greedy() {
        let logits = real_size_logits(3);
        let best = argmax(&logits);
        for t in [1e-40, 1e-30, 1e-6] {
            let s = settings(t, 0.9, None);
            assert!(s.is_greedy());
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            assert_eq!(sample(&logits, &s, &mut rng).unwrap(), best, "T = {t}");
        }
        assert!(!settings(0.1, 0.9, None).is_greedy());
    }

    fn probs_of(p: &[f64]) -> Vec<f32> {
        p.iter().map(|&x| x as f32).collect()
    }

    /// Which ids `n` draws of `s` from `logits` produce.
    fn support(logits: &[f32], s: &SamplingSettings, n: usize) -> std::collections::BTreeSet<u32> {
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        (0..n).map(|_| sample(logits, s, &mut rng).unwrap()).collect()
    }

    #[test]
    fn min_p_drops_tokens_below_the_floor_after_temperature() {
        // Given p = (0.5, 0.3, 0.15, 0.05) at T = 1
        let logits: Vec<f32> = [0.5f64, 0.3, 0.15, 0.05].iter().map(|p| p.ln() as f32).collect();
        let with = |t: f64, top_p: f64, min_p: f32| SamplingSettings {
            penalties: Penalties { min_p, ..Penalties::default() },
            ..settings(t, top_p, None)
        };
        // When min_p = 0.2 the floor is 0.2 × 0.5 = 0.1: token 3 (0.05) is dropped
        assert_eq!(support(&logits, &with(1.0, 1.0, 0.2), 3000), [0, 1, 2].into());
        // and min_p = 0.5 (floor 0.25) keeps tokens 0 and 1 only
        assert_eq!(support(&logits, &with(1.0, 1.0, 0.5), 3000), [0, 1].into());
        // and after top-p the same floor keeps the same set (the ratio to the
        // top token does not change when top-p renormalizes)
        assert_eq!(support(&logits, &with(1.0, 0.99, 0.5), 3000), [0, 1].into());
        assert_eq!(support(&logits, &with(1.0, 0.99, 0.2), 3000), [0, 1, 2].into());
        // At T = 2 the distribution is ∝ √p = (0.379, 0.294, 0.208, 0.120):
        // the floor 0.5 × 0.379 = 0.19 now keeps token 2 (min-p follows temperature)
        assert_eq!(support(&logits, &with(2.0, 1.0, 0.5), 3000), [0, 1, 2].into());
        // min_p 0 is off, and min_p never changes a greedy choice
        assert_eq!(support(&logits, &with(1.0, 1.0, 0.0), 3000), [0, 1, 2, 3].into());
        assert_eq!(support(&logits, &with(0.0, 1.0, 0.9), 10), [0].into());
        // and with min-p alone the draw is the one over the renormalized kept mass
        let probs = probs_of(&[0.5, 0.3, 0.15, 0.05]);
        let (mut a, mut b) = (ChaCha20Rng::seed_from_u64(3), ChaCha20Rng::seed_from_u64(3));
        let kept = probs_of(&[0.5, 0.3, 0.0, 0.0]);
        for _ in 0..200 {
            assert_eq!(
                sample_from_probs(&logits, &probs, &with(1.0, 1.0, 0.5), &mut a).unwrap(),
                sample_from_probs(&logits, &kept, &settings(1.0, 1.0, None), &mut b).unwrap()
            );
        }
    }

    #[test]
    fn a_guarded_draw_is_the_draw_from_the_hand_penalized_logits() {
        // Given logits (2.0, 1.9, 0.5, -1.0), a prompt [0, 3] and output [2, 2]
        let logits = [2.0f32, 1.9, 0.5, -1.0];
        let p = Penalties {
            repetition_penalty: 1.25,
            frequency_penalty: 0.5,
            presence_penalty: 0.25,
            ..Default::default()
        };
        let mut h = TokenHistory::new(&[0, 3], p);
        h.push(2);
        h.push(2);
        // By hand: token 0 is 2.0 / 1.25 = 1.6; token 2 is 0.5 / 1.25 − 0.5·2
        // − 0.25 = −0.85; token 3 is −1.0 · 1.25 = −1.25; token 1 is untouched
        let by_hand = [1.6f32, 1.9, 0.5 / 1.25 - 1.0 - 0.25, -1.25];
        // When drawn greedily, the penalty moves the argmax from 0 to 1
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        assert_eq!(sample(&logits, &settings(0.0, 1.0, None), &mut rng).unwrap(), 0);
        assert_eq!(sample_with_history(&logits, &h, &settings(0.0, 1.0, None), &mut rng).unwrap(), 1);
        // and sampled, every draw is the draw from the hand-penalized logits
        let s = settings(0.8, 0.95, None);
        let (mut a, mut b) = (ChaCha20Rng::seed_from_u64(9), ChaCha20Rng::seed_from_u64(9));
        for _ in 0..300 {
            assert_eq!(sample_with_history(&logits, &h, &s, &mut a).unwrap(), sample(&by_hand, &s, &mut b).unwrap());
        }
        // and a banned n-gram completion is never drawn, even when it is the argmax
        // (the sequence 2, 0, 1, 2 has had 0 after 2, and now ends in 2)
        let mut h = TokenHistory::new(&[2, 0, 1], Penalties { no_repeat_ngram_size: 2, ..Default::default() });
        h.push(2);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert_eq!(sample_with_history(&logits, &h, &settings(0.0, 1.0, None), &mut rng).unwrap(), 1);
        for _ in 0..300 {
            let t = sample_with_history(&logits, &h, &settings(1.0, 1.0, None), &mut rng).unwrap();
            assert_ne!(t, 0, "the bigram (2, 0) was repeated");
        }
        // and raw non-finite logits are still an error
        let e = sample_with_history(&[0.0, f32::NAN], &h, &s, &mut rng).unwrap_err();
        assert_eq!(e.token, 1);
    }

    #[test]
    fn non_finite_logits_are_an_error() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let logits = [0.5f32, bad, 0.1];
            for s in [settings(0.0, 1.0, None), settings(0.7, 0.9, None)] {
                let e = sample(&logits, &s, &mut rng).unwrap_err();
                assert_eq!(e.token, 1);
            }
        }
    }
}
