//! The filter of the E-step (REST-PG Algorithm 1, line 9; ReST-EM §3): keep
//! the samples whose reward reaches τ, at most `cap` per input, best first.
//!
//! Pure logic: [`decide`] is a function of the scored samples alone, so the
//! same rewards always give the same decisions, on resume and in replay.

use std::collections::{BTreeMap, BTreeSet};

use actix::prelude::*;
use events::{Decision, SampleId};

/// The rank given to an input's best sample. `FilterDecided.rank` is
/// documented in the event schema as counted "from 0".
pub const FIRST_RANK: u32 = 0;

/// A judged sample as the filter sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The sample.
    pub sample: SampleId,
    /// Its reward R(x, y, ŷ).
    pub reward: f32,
}

/// The filter's verdict on one sample (becomes a `FilterDecided` event).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The sample.
    pub sample: SampleId,
    /// Kept, below τ, or over the per-input cap.
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

/// Decides every sample: per input (and iteration), rank the samples by
/// reward descending, then sample index ascending; a sample with R < τ is
/// [`Decision::BelowThreshold`]; of those with R ≥ τ the first `cap` by rank
/// are [`Decision::Kept`] and the rest [`Decision::OverCap`]. Verdicts come
/// back sorted by sample id.
///
/// # Errors
/// [`FilterError`] for a non-finite reward or τ, or a sample given twice.
pub fn decide(samples: &[Scored], tau: f32, cap: u32) -> Result<Vec<Verdict>, FilterError> {
    if !tau.is_finite() {
        return Err(FilterError::BadThreshold(tau));
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
            let decision = if s.reward < tau {
                Decision::BelowThreshold
            } else {
                passing += 1;
                if passing <= cap {
                    Decision::Kept
                } else {
                    Decision::OverCap
                }
            };
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

/// Asks the [`Filter`] for the verdicts on one E-step's judged samples.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Verdict>, FilterError>")]
pub struct Decide {
    /// The judged samples (any number of inputs).
    pub samples: Vec<Scored>,
    /// The threshold τ.
    pub tau: f32,
    /// Most samples kept per input.
    pub cap: u32,
}

/// The filter as an actor: stateless, runs [`decide`] on the async arbiter
/// (it is cheap: a sort per input).
#[derive(Debug, Default)]
pub struct Filter;

impl Actor for Filter {
    type Context = Context<Self>;
}

impl Handler<Decide> for Filter {
    type Result = Result<Vec<Verdict>, FilterError>;

    fn handle(&mut self, msg: Decide, _: &mut Context<Self>) -> Self::Result {
        decide(&msg.samples, msg.tau, msg.cap)
    }
}
