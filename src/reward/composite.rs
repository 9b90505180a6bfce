//! The configured reward: a [`RewardSpec`] made into a [`Reward`].
//!
//! R(x, y, ŷ) = Σ wᵢ · metricᵢ over the LLM judge and LongLaMP's lexical
//! metrics, each in [0, 1]. The judge is a model and comes from the caller
//! (the engine that owns it); METEOR's data is loaded here when the spec
//! uses it.

use anyhow::Result;

use super::judge::{Judge, ScoreModel};
use super::spec::{Metric, RewardSpec};
use super::{nonempty, Reward, RewardInput, RewardOutput, Scorers};

/// A weighted mix of metrics as one reward; the judge's score distribution
/// is kept in the output when the judge takes part.
pub struct Composite<M: ScoreModel> {
    terms: Vec<(f64, Metric)>,
    judge: Option<Judge<M>>,
    scorers: Scorers,
}

impl<M: ScoreModel> std::fmt::Debug for Composite<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composite").field("terms", &self.terms).finish_non_exhaustive()
    }
}

impl<M: ScoreModel> Composite<M> {
    /// The reward of `spec`, judging with `judge` when the spec names the
    /// judge (a judge given to a spec without it is dropped unused); loads
    /// METEOR's data and the similarity encoder only when the spec names
    /// them.
    ///
    /// # Errors
    /// A spec that names the judge without one given, or METEOR data or the
    /// encoder that does not load.
    pub fn new(spec: RewardSpec, judge: Option<Judge<M>>) -> Result<Self> {
        let judge = judge.filter(|_| spec.uses_judge());
        anyhow::ensure!(!spec.uses_judge() || judge.is_some(), "reward `{spec}` needs the LLM judge");
        let scorers = Scorers::for_metrics(&spec.metrics())?;
        Ok(Self { terms: spec.terms, judge, scorers })
    }
}

impl<M: ScoreModel> Reward for Composite<M> {
    fn score(&mut self, items: &[RewardInput]) -> Result<Vec<RewardOutput>> {
        let judged = match self.judge.as_mut() {
            Some(j) => Some(j.score(items)?),
            None => None,
        };
        let responses: Vec<Option<String>> = items.iter().map(|i| nonempty(&i.response)).collect();
        // Each non-judge metric scores the non-empty responses in one batch.
        let mut values: Vec<Vec<f64>> = Vec::with_capacity(self.terms.len());
        for (_, m) in &self.terms {
            let v = match m {
                Metric::Judge => Vec::new(),
                m => {
                    let pairs: Vec<(&str, &str)> = items
                        .iter()
                        .zip(&responses)
                        .filter_map(|(i, r)| r.as_deref().map(|r| (i.expected.as_str(), r)))
                        .collect();
                    let mut scored = self.scorers.values(*m, &pairs)?.into_iter();
                    responses.iter().map(|r| if r.is_some() { scored.next().unwrap_or(0.0) } else { 0.0 }).collect()
                }
            };
            values.push(v);
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, response) in responses.iter().enumerate() {
            let mut reward = 0.0f64;
            let mut distribution = None;
            for (k, (w, m)) in self.terms.iter().enumerate() {
                let v = match m {
                    Metric::Judge => {
                        let j = &judged.as_ref().expect("judge loaded when the spec uses it")[i];
                        distribution = j.distribution.clone();
                        f64::from(j.reward)
                    }
                    _ => values[k][i],
                };
                reward += w * v;
            }
            out.push(RewardOutput { reward: reward as f32, distribution, empty_response: response.is_none() });
        }
        Ok(out)
    }
}
