//! The filter rule of the E-step (REST-PG Algorithm 1, line 9; ReST-EM §3):
//! keep the samples whose reward reaches τ, at most `cap` per input, best
//! first. One implementation, called by the run's coordinator and by
//! replay's verifier, so the two cannot drift.
//!
//! Pure logic: [`decide`] is a function of the scored samples alone, so the
//! same rewards always give the same decisions, on resume and in replay.

use std::collections::{BTreeMap, BTreeSet};

use crate::sample::{Decision, SampleId};

/// The rank given to an input's best sample. `FilterDecided.rank` is
/// documented in the event schema as counted "from 0".
pub const FIRST_RANK: u32 = 0;

/// The decided settings of the filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterRule {
    /// The threshold τ: a sample is kept only when R ≥ τ.
    pub tau: f32,
    /// Most samples kept per input (paper: 10).
    pub cap: u32,
    /// Whether a sample without reasoning is dropped as
    /// [`Decision::NoReasoning`] (the reasoning methods, unless the run
    /// allows such samples).
    pub require_reasoning: bool,
}

/// A judged sample as the filter sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The sample.
    pub sample: SampleId,
    /// Its reward R(x, y, ŷ).
    pub reward: f32,
    /// Whether its output had a reasoning part (a separator line).
    pub has_reasoning: bool,
}

/// The filter's verdict on one sample (becomes a `FilterDecided` event).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The sample.
    pub sample: SampleId,
    /// Kept, or why not.
    pub decision: Decision,
    /// The reward the decision used.
    pub reward: f32,
    /// Rank among the input's samples by reward (descending, ties by sample
    /// index ascending), starting at [`FIRST_RANK`].
    pub rank: u32,
}

/// Rewards the filter cannot order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// A reward is NaN or infinite.
    #[error("sample {sample}: reward {reward} is not a finite number")]
    NotFinite {
        /// The sample.
        sample: String,
        /// Its reward.
        reward: f32,
    },
    /// The same sample was scored twice.
    #[error("sample {sample} was given to the filter twice")]
    Duplicate {
        /// The sample.
        sample: String,
    },
    /// τ is not a finite number.
    #[error("threshold τ = {0} is not a finite number")]
    BadThreshold(f32),
}

/// The decision for one sample, before the per-input cap: the first reason
/// that applies, in this order — no reasoning (when required), reward 0
/// (no gradient, whatever τ), R < τ; otherwise the sample passes
/// (`None`) and the cap decides.
pub fn pre_cap_decision(rule: &FilterRule, reward: f32, has_reasoning: bool) -> Option<Decision> {
    if rule.require_reasoning && !has_reasoning {
        Some(Decision::NoReasoning)
    } else if reward == 0.0 {
        Some(Decision::ZeroReward)
    } else if reward < rule.tau {
        Some(Decision::BelowThreshold)
    } else {
        None
    }
}

/// Decides every sample: per input (and iteration), rank the samples by
/// reward descending, then sample index ascending; a sample gets
/// [`pre_cap_decision`]'s reason when one applies; of the others the first
/// `cap` by rank are [`Decision::Kept`] and the rest [`Decision::OverCap`].
/// Verdicts come back sorted by sample id.
///
/// # Errors
/// [`FilterError`] for a non-finite reward or τ, or a sample given twice.
pub fn decide(samples: &[Scored], rule: &FilterRule) -> Result<Vec<Verdict>, FilterError> {
    if !rule.tau.is_finite() {
        return Err(FilterError::BadThreshold(rule.tau));
    }
    let mut groups: BTreeMap<(u32, &str), Vec<&Scored>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for s in samples {
        if !s.reward.is_finite() {
            return Err(FilterError::NotFinite { sample: s.sample.to_string(), reward: s.reward });
        }
        if !seen.insert(&s.sample) {
            return Err(FilterError::Duplicate { sample: s.sample.to_string() });
        }
        groups.entry((s.sample.iteration, s.sample.input_id.as_str())).or_default().push(s);
    }
    let mut out = Vec::with_capacity(samples.len());
    for (_, mut group) in groups {
        group.sort_by(|a, b| b.reward.total_cmp(&a.reward).then(a.sample.index.cmp(&b.sample.index)));
        let mut passing = 0u32;
        for (position, s) in group.into_iter().enumerate() {
            let decision = pre_cap_decision(rule, s.reward, s.has_reasoning).unwrap_or_else(|| {
                passing += 1;
                if passing <= rule.cap {
                    Decision::Kept
                } else {
                    Decision::OverCap
                }
            });
            out.push(Verdict {
                sample: s.sample.clone(),
                decision,
                reward: s.reward,
                rank: FIRST_RANK + position as u32,
            });
        }
    }
    out.sort_by(|a, b| a.sample.cmp(&b.sample));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(input: &str, index: u32, reward: f32, has_reasoning: bool) -> Scored {
        Scored { sample: SampleId { iteration: 1, input_id: input.into(), index }, reward, has_reasoning }
    }

    #[test]
    fn zero_rewards_are_never_training_data_even_at_tau_zero() {
        let rule = FilterRule { tau: 0.0, cap: 10, require_reasoning: false };
        let v = decide(&[scored("a", 0, 0.0, true), scored("a", 1, 0.2, true)], &rule).unwrap();
        assert_eq!(v[0].decision, Decision::ZeroReward);
        assert_eq!(v[1].decision, Decision::Kept);
    }

    #[test]
    fn samples_without_reasoning_get_their_own_reason_when_required() {
        let strict = FilterRule { tau: 0.5, cap: 10, require_reasoning: true };
        let v = decide(&[scored("a", 0, 0.9, false), scored("a", 1, 0.8, true)], &strict).unwrap();
        assert_eq!((v[0].decision, v[0].rank), (Decision::NoReasoning, 0));
        assert_eq!((v[1].decision, v[1].rank), (Decision::Kept, 1));
        let lax = FilterRule { require_reasoning: false, ..strict };
        assert_eq!(decide(&[scored("a", 0, 0.9, false)], &lax).unwrap()[0].decision, Decision::Kept);
    }

    #[test]
    fn cap_counts_only_passing_samples_best_first() {
        let rule = FilterRule { tau: 0.5, cap: 1, require_reasoning: false };
        let v =
            decide(&[scored("a", 0, 0.6, true), scored("a", 1, 0.7, true), scored("a", 2, 0.1, true)], &rule).unwrap();
        let d: Vec<_> = v.iter().map(|v| v.decision).collect();
        assert_eq!(d, vec![Decision::OverCap, Decision::Kept, Decision::BelowThreshold]);
    }
}
