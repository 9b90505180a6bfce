//! The filter rule of the E-step (REST-PG Algorithm 1, line 9; ReST-EM §3):
//! keep the samples whose reward reaches τ, at most `cap` per input, best
//! first, among those that are well formed training targets (a reasoning
//! part where the method needs one, a text that ended before the token
//! limit). One implementation, called by the run's coordinator and by
//! replay's verifier, so the two cannot drift.
//!
//! Pure logic: [`decide`] is a function of the scored samples alone, so the
//! same rewards always give the same decisions, on resume and in replay.

use std::collections::{BTreeMap, BTreeSet};

use crate::sample::{Decision, FinishReason, SampleId};

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
    /// Whether a sample that ran to the token limit (finish
    /// [`FinishReason::Length`]) is dropped as [`Decision::Unfinished`]
    /// (every run from schema version 7 on, unless it allows such samples).
    pub drop_unfinished: bool,
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
    /// Why its generation ended (`None` in records before schema version 3,
    /// which did not say; such a sample counts as finished).
    pub finish: Option<FinishReason>,
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
/// that applies, in this order — no reasoning (when required), unfinished
/// (when dropped: the text ran to the token limit), reward 0 (no gradient,
/// whatever τ), R < τ; otherwise the sample passes (`None`) and the cap
/// decides.
pub fn pre_cap_decision(
    rule: &FilterRule,
    reward: f32,
    has_reasoning: bool,
    finish: Option<FinishReason>,
) -> Option<Decision> {
    if rule.require_reasoning && !has_reasoning {
        Some(Decision::NoReasoning)
    } else if rule.drop_unfinished && finish == Some(FinishReason::Length) {
        Some(Decision::Unfinished)
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
            let decision = pre_cap_decision(rule, s.reward, s.has_reasoning, s.finish).unwrap_or_else(|| {
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
        let sample = SampleId { iteration: 1, input_id: input.into(), index };
        Scored { sample, reward, has_reasoning, finish: Some(FinishReason::StopToken) }
    }

    #[test]
    fn zero_rewards_are_never_training_data_even_at_tau_zero() {
        let rule = FilterRule { tau: 0.0, cap: 10, require_reasoning: false, drop_unfinished: true };
        let v = decide(&[scored("a", 0, 0.0, true), scored("a", 1, 0.2, true)], &rule).unwrap();
        assert_eq!(v[0].decision, Decision::ZeroReward);
        assert_eq!(v[1].decision, Decision::Kept);
    }

    #[test]
    fn samples_without_reasoning_get_their_own_reason_when_required() {
        let strict = FilterRule { tau: 0.5, cap: 10, require_reasoning: true, drop_unfinished: true };
        let v = decide(&[scored("a", 0, 0.9, false), scored("a", 1, 0.8, true)], &strict).unwrap();
        assert_eq!((v[0].decision, v[0].rank), (Decision::NoReasoning, 0));
        assert_eq!((v[1].decision, v[1].rank), (Decision::Kept, 1));
        let lax = FilterRule { require_reasoning: false, ..strict };
        assert_eq!(decide(&[scored("a", 0, 0.9, false)], &lax).unwrap()[0].decision, Decision::Kept);
    }

    #[test]
    fn cap_counts_only_passing_samples_best_first() {
        let rule = FilterRule { tau: 0.5, cap: 1, require_reasoning: false, drop_unfinished: true };
        let v =
            decide(&[scored("a", 0, 0.6, true), scored("a", 1, 0.7, true), scored("a", 2, 0.1, true)], &rule).unwrap();
        let d: Vec<_> = v.iter().map(|v| v.decision).collect();
        assert_eq!(d, vec![Decision::OverCap, Decision::Kept, Decision::BelowThreshold]);
    }

    #[test]
    fn a_sample_cut_at_the_token_limit_is_no_training_data_when_dropped() {
        // Given three samples clearing τ: one cut at the token limit, one
        // ended by its stop token, one from a record that did not say
        let rule = FilterRule { tau: 0.5, cap: 10, require_reasoning: false, drop_unfinished: true };
        let mut cut = scored("a", 0, 0.9, true);
        cut.finish = Some(FinishReason::Length);
        let mut unknown = scored("a", 2, 0.7, true);
        unknown.finish = None;
        let samples = [cut, scored("a", 1, 0.8, true), unknown];
        // Then the cut one is dropped as unfinished, keeping its rank, and
        // the others are kept
        let v = decide(&samples, &rule).unwrap();
        assert_eq!((v[0].decision, v[0].rank), (Decision::Unfinished, 0));
        assert_eq!((v[1].decision, v[2].decision), (Decision::Kept, Decision::Kept));
        // and a cut sample does not count against the cap
        let one = FilterRule { cap: 1, ..rule };
        let v = decide(&samples, &one).unwrap();
        let d: Vec<_> = v.iter().map(|v| v.decision).collect();
        assert_eq!(d, vec![Decision::Unfinished, Decision::Kept, Decision::OverCap]);
        // and a run that allows unfinished samples keeps it (as every run
        // before schema version 7 did)
        let lax = FilterRule { drop_unfinished: false, ..rule };
        assert_eq!(decide(&samples, &lax).unwrap()[0].decision, Decision::Kept);
        // while a missing reasoning part still comes first
        let strict = FilterRule { require_reasoning: true, ..rule };
        let mut both = scored("b", 0, 0.9, false);
        both.finish = Some(FinishReason::Length);
        assert_eq!(decide(&[both], &strict).unwrap()[0].decision, Decision::NoReasoning);
    }
}
