//! Algorithm 1 lines 8–9: the filter (R ≥ τ, at most the cap per input),
//! the seal of D_t with its canonical digest, and D_t rebuilt from the log
//! for the M-step.

use std::sync::Arc;

use events::{dataset_digest, DatasetEntry, Decision, Event, SampleId, Stage};

use super::{response_digest, Run, RunError};
use crate::filter::{decide, FilterRule, Scored};

/// A member of D_t with what the M-step trains on.
pub(super) struct Kept {
    pub(super) sample: SampleId,
    pub(super) reward: f32,
    pub(super) reasoning: Option<String>,
    pub(super) response: String,
}

/// The D_t entry of a kept sample.
fn entry(sample: &SampleId, reward: f32, response: &str) -> DatasetEntry {
    DatasetEntry { sample: sample.clone(), reward, response_digest: response_digest(response) }
}

impl Run {
    /// Algorithm 1 lines 8–9: filter (R ≥ τ, at most the cap per input) and
    /// seal D_t with its canonical digest.
    pub(super) async fn filter_and_seal(&mut self, t: u32, reward_name: &str) -> Result<(), RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(t, Stage::Filter).await?;
        let mut scored = Vec::new();
        for (id, sample) in self.state.samples_of(t) {
            let reward = self.state.rewards.get(&(id.clone(), reward_name.to_owned())).ok_or_else(|| {
                RunError::Inconsistent(format!("sample {id} has no {reward_name:?} reward after judging"))
            })?;
            scored.push(Scored {
                sample: id.clone(),
                reward: *reward,
                has_reasoning: sample.reasoning.is_some(),
                finish: sample.finish,
            });
        }
        let rule = FilterRule {
            tau: plan.tau,
            cap: plan.max_kept_per_input,
            require_reasoning: plan.require_reasoning,
            drop_unfinished: plan.drop_unfinished,
        };
        let verdicts = decide(&scored, &rule)?;
        let mut events = Vec::with_capacity(verdicts.len() + 1);
        let mut entries = Vec::new();
        for v in verdicts {
            if let Some(logged) = self.state.decisions.get(&v.sample) {
                if logged.decision != v.decision
                    || logged.rank != v.rank
                    || logged.reward.to_bits() != v.reward.to_bits()
                {
                    return Err(RunError::Inconsistent(format!(
                        "sample {}: logged decision {} (rank {}, reward {}) differs from {} (rank {}, reward {})",
                        v.sample, logged.decision, logged.rank, logged.reward, v.decision, v.rank, v.reward
                    )));
                }
            }
            if v.decision == Decision::Kept {
                entries.push(entry(&v.sample, v.reward, &self.state.samples[&v.sample].response));
            }
            events.push(Event::FilterDecided {
                sample: v.sample,
                decision: v.decision,
                reward: v.reward,
                tau: plan.tau,
                rank: v.rank,
            });
        }
        self.append(events).await?;
        let digest = dataset_digest(&entries);
        tracing::info!(iteration = t, kept = entries.len(), digest = %events::digest_hex(&digest), "D_t sealed");
        self.append(vec![Event::DatasetSealed { iteration: t, count: entries.len() as u64, digest }]).await?;
        self.flush().await?;
        self.stage_finished(t, Stage::Filter, since).await
    }

    /// D_t as the log holds it, checked against its sealed digest; and the
    /// number of samples of the iteration.
    pub(super) fn sealed_set(&self, t: u32) -> Result<(Vec<Kept>, u64), RunError> {
        let (count, sealed) =
            *self.state.sealed.get(&t).ok_or_else(|| RunError::Inconsistent(format!("iteration {t} is not sealed")))?;
        let mut kept = Vec::new();
        let mut entries = Vec::new();
        for (id, d) in self.state.decisions.iter().filter(|(id, d)| id.iteration == t && d.decision == Decision::Kept) {
            let s = self
                .state
                .samples
                .get(id)
                .ok_or_else(|| RunError::Inconsistent(format!("kept sample {id} has no SampleGenerated")))?;
            entries.push(entry(id, d.reward, &s.response));
            kept.push(Kept {
                sample: id.clone(),
                reward: d.reward,
                reasoning: s.reasoning.clone(),
                response: s.response.clone(),
            });
        }
        let digest = dataset_digest(&entries);
        if digest != sealed || entries.len() as u64 != count {
            return Err(RunError::Inconsistent(format!(
                "D_{t} rebuilt from the log has {} samples and digest {}, but was sealed with {count} and {}",
                entries.len(),
                events::digest_hex(&digest),
                events::digest_hex(&sealed)
            )));
        }
        Ok((kept, self.state.samples_of(t).count() as u64))
    }
}
