//! What a log already holds of a run: the fold the coordinator starts from.
//!
//! Applying an event is pure and cannot fail (cqrs style); contradictions
//! (two different checkpoints for one step, a sample generated twice with
//! different text) cannot arise from idempotent appends, and are caught
//! where they matter: the sealed digest is recomputed and compared before a
//! sealed data set is trained on.

use std::collections::{BTreeMap, BTreeSet};

use events::{Decision, Digest, Event, FinishReason, Role, SampleId, Split};

use crate::capability::{CheckpointRef, EvalSummary};

/// A generated sample as the log records it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedSample {
    /// Reasoning part, when the output had one.
    pub reasoning: Option<String>,
    /// Final response (what the judge sees).
    pub response: String,
    /// Content hash of the checkpoint that sampled it.
    pub checkpoint: Digest,
    /// Why its generation ended (`None` where the record did not say).
    pub finish: Option<FinishReason>,
}

/// A logged filter decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoggedDecision {
    /// Kept or why not.
    pub decision: Decision,
    /// The reward it used.
    pub reward: f32,
    /// Its rank.
    pub rank: u32,
}

/// A logged checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedCheckpoint {
    /// Hash and path.
    pub checkpoint: CheckpointRef,
    /// Optimiser step it was saved at.
    pub step: u64,
}

/// What the log already holds of one run, folded for the coordinator to
/// resume from (replay's audit fold of a whole log is `replay::RunState`).
/// Every map is keyed the way the corresponding event's id is, so "in the
/// log" and "in this state" mean the same thing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoggedRun {
    /// Inputs with a `RetrievalDone`.
    pub retrieved: BTreeSet<String>,
    /// Reasoning per (input id, generator name).
    pub reasoning: BTreeMap<(String, String), String>,
    /// Samples by id.
    pub samples: BTreeMap<SampleId, LoggedSample>,
    /// Rewards by (sample, reward name).
    pub rewards: BTreeMap<(SampleId, String), f32>,
    /// Filter decisions by sample.
    pub decisions: BTreeMap<SampleId, LoggedDecision>,
    /// Sealed data sets: iteration → (count, digest).
    pub sealed: BTreeMap<u32, (u64, Digest)>,
    /// Checkpoints by (iteration, role); the first logged one wins.
    pub checkpoints: BTreeMap<(u32, Role), LoggedCheckpoint>,
    /// Evaluations by (iteration, split, system).
    pub evaluations: BTreeMap<(u32, Split, String), EvalSummary>,
    /// Iterations with an `IterationFinished`.
    pub finished_iterations: BTreeSet<u32>,
    /// Whether the run already finished.
    pub run_finished: bool,
    /// Rewards already checked, by (reward name, K), as `RewardChecked`'s
    /// event id names them.
    pub reward_checks: BTreeSet<(String, u32)>,
    /// Reasons of earlier `RunFailed` events, in log order.
    pub failures: Vec<String>,
    /// Whether the log holds the run's `RunStarted`.
    pub started: bool,
    /// Number of events folded.
    pub events: u64,
    /// How many of them open a run: `RunStarted` and the base checkpoint
    /// (iteration 0, role `base`), which the coordinator logs before the
    /// first stage.
    pub opening: u64,
}

impl LoggedRun {
    /// Applies one event of this run.
    pub fn apply(&mut self, event: &Event) {
        self.events += 1;
        match event {
            Event::RetrievalDone { input_id, .. } => {
                self.retrieved.insert(input_id.clone());
            }
            Event::ReasoningGenerated { input_id, generator, reasoning, .. } => {
                self.reasoning.entry((input_id.clone(), generator.clone())).or_insert_with(|| reasoning.clone());
            }
            Event::SampleGenerated { sample, reasoning, response, checkpoint, finish, .. } => {
                self.samples.entry(sample.clone()).or_insert_with(|| LoggedSample {
                    reasoning: reasoning.clone(),
                    response: response.clone(),
                    checkpoint: *checkpoint,
                    finish: *finish,
                });
            }
            Event::RewardAssigned { sample, reward, reward_name, .. } => {
                self.rewards.entry((sample.clone(), reward_name.clone())).or_insert(*reward);
            }
            Event::FilterDecided { sample, decision, reward, rank, .. } => {
                self.decisions.entry(sample.clone()).or_insert(LoggedDecision {
                    decision: *decision,
                    reward: *reward,
                    rank: *rank,
                });
            }
            Event::DatasetSealed { iteration, count, digest } => {
                self.sealed.entry(*iteration).or_insert((*count, *digest));
            }
            Event::CheckpointSaved { iteration, step, role, hash, path, .. } => {
                if *iteration == 0 && *role == Role::Base {
                    self.opening += 1;
                }
                self.checkpoints.entry((*iteration, *role)).or_insert(LoggedCheckpoint {
                    checkpoint: CheckpointRef { hash: *hash, path: path.clone() },
                    step: *step,
                });
            }
            Event::EvaluationDone { iteration, split, system, scores, report_path } => {
                self.evaluations
                    .entry((*iteration, *split, system.clone()))
                    .or_insert_with(|| EvalSummary { scores: scores.clone(), report_path: report_path.clone() });
            }
            Event::IterationFinished { iteration } => {
                self.finished_iterations.insert(*iteration);
            }
            Event::RunFinished { .. } => self.run_finished = true,
            Event::RewardChecked { reward_name, per_task, .. } => {
                self.reward_checks.insert((reward_name.clone(), *per_task));
            }
            Event::RunFailed { reason } => self.failures.push(reason.clone()),
            Event::RunStarted { .. } => {
                self.started = true;
                self.opening += 1;
            }
            Event::StageStarted { .. }
            | Event::StageFinished { .. }
            | Event::TrainingProgress { .. }
            | Event::MStepSkipped { .. } => {}
        }
    }

    /// Whether the log holds work of the run beyond its opening records
    /// ([`LoggedRun::opening`]): then the coordinator resumes; otherwise a
    /// new run is starting.
    pub fn has_progress(&self) -> bool {
        self.events > self.opening
    }

    /// Samples of iteration `t`, in sample-id order.
    pub fn samples_of(&self, t: u32) -> impl Iterator<Item = (&SampleId, &LoggedSample)> {
        self.samples.iter().filter(move |(id, _)| id.iteration == t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Event {
        Event::RunStarted {
            method: "rest-pg".into(),
            config_toml: String::new(),
            config_digest: events::digest(b"config"),
            code_version: "test".into(),
            seed: 1,
            dataset_digest: events::digest(b"data"),
            settings: None,
        }
    }

    fn checkpoint(iteration: u32, role: Role) -> Event {
        Event::CheckpointSaved {
            iteration,
            step: 0,
            role,
            hash: events::digest(role.as_str().as_bytes()),
            path: format!("blobs/{role}"),
            validation_score: None,
        }
    }

    #[test]
    fn a_log_with_only_the_opening_records_is_a_new_run() {
        // Given the records a new run logs before its coordinator starts
        let mut state = LoggedRun::default();
        state.apply(&started());
        state.apply(&checkpoint(0, Role::Base));
        // Then nothing is resumed (the log line says a new run is starting)
        assert_eq!((state.events, state.opening), (2, 2));
        assert!(!state.has_progress());
        // When a stage has run, the run resumes
        state.apply(&Event::StageStarted { iteration: 0, stage: events::Stage::Retrieve });
        assert!(state.has_progress());
        // and a checkpoint past the base is progress too
        let mut state = LoggedRun::default();
        state.apply(&started());
        state.apply(&checkpoint(0, Role::Sft));
        assert!(state.has_progress());
    }
}
