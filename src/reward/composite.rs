//! The configured reward: a [`RewardSpec`] made into a [`Reward`].
//!
//! R(x, y, ŷ) = Σ wᵢ · metricᵢ over the LLM judge and LongLaMP's lexical
//! metrics, each in [0, 1]. The judge is a model and comes from the caller
//! (the engine that owns it); METEOR's data is loaded here when the spec
//! uses it.

use anyhow::Result;

use super::judge::{Judge, ScoreModel};
use super::meteor::Meteor;
use super::spec::{Metric, RewardSpec};
use super::{lexical_value, nonempty, Reward, RewardInput, RewardOutput};

/// A weighted mix of metrics as one reward; the judge's score distribution
/// is kept in the output when the judge takes part.
pub struct Composite<M: ScoreModel> {
    terms: Vec<(f64, Metric)>,
    judge: Option<Judge<M>>,
    meteor: Option<Meteor>,
}

impl<M: ScoreModel> std::fmt::Debug for Composite<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composite").field("terms", &self.terms).finish_non_exhaustive()
    }
}

impl<M: ScoreModel> Composite<M> {
    /// The reward of `spec`, judging with `judge` when the spec names the
    /// judge (a judge given to a spec without it is dropped unused); loads
    /// METEOR's data only when the spec names METEOR.
    ///
    /// # Errors
    /// A spec that names the judge without one given, or METEOR data that
    /// does not load.
    pub fn new(spec: RewardSpec, judge: Option<Judge<M>>) -> Result<Self> {
        let judge = judge.filter(|_| spec.uses_judge());
        anyhow::ensure!(!spec.uses_judge() || judge.is_some(), "reward `{spec}` needs the LLM judge");
        let meteor = if spec.uses_meteor() { Some(Meteor::load_default()?) } else { None };
        Ok(Self { terms: spec.terms, judge, meteor })
    }
}

impl<M: ScoreModel> Reward for Composite<M> {
    fn score(&mut self, items: &[RewardInput]) -> Result<Vec<RewardOutput>> {
        let judged = match self.judge.as_mut() {
            Some(j) => Some(j.score(items)?),
            None => None,
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let response = nonempty(&item.response);
            let mut reward = 0.0f64;
            let mut distribution = None;
            for (w, m) in &self.terms {
                let v = match m {
                    Metric::Judge => {
                        let j = &judged.as_ref().expect("judge loaded when the spec uses it")[i];
                        distribution = j.distribution.clone();
                        f64::from(j.reward)
                    }
                    lexical => match &response {
                        Some(r) => lexical_value(*lexical, self.meteor.as_ref(), &item.expected, r),
                        None => 0.0,
                    },
                };
                reward += w * v;
            }
            out.push(RewardOutput { reward: reward as f32, distribution, empty_response: response.is_none() });
        }
        Ok(out)
    }
}
