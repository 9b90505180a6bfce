//! The state a run's log folds into, and the pure function that applies one
//! record to it.
//!
//! Applying never fails: whatever a record says is either stored where it
//! belongs or, when it contradicts what came before (a second seal for the
//! same iteration, a sample generated twice), kept as an [`Anomaly`] with its
//! sequence number. Judging the state is the verifier's job
//! ([`RunState::verify_iteration`](crate::RunState::verify_iteration)), not the
//! fold's, so the same state can be audited even when it does not verify.

use std::collections::{BTreeMap, BTreeSet};

use events::{Decision, Digest, Envelope, Event, Role, SampleId, Split, Stage};
use serde::Serialize;

/// What `RunStarted` recorded, with the filter settings read from its
/// configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRecord {
    /// Sequence number of the `RunStarted` record.
    pub seq: u64,
    /// The method as the CLI names it (`rest-pg`, `rest-em`, …).
    pub method: String,
    /// The resolved configuration as TOML.
    pub config_toml: String,
    /// The run seed; every sample seed derives from it.
    pub seed: u64,
    /// Digest of the training data as the run loaded it
    /// (`Dataset::digest` of the root package).
    pub dataset_digest: Digest,
    /// Version of the code that wrote the run.
    pub code_version: String,
    /// The filter threshold τ (from the logged settings; in logs older than
    /// schema 3, from `reward.tau` of the configuration when it has it).
    pub tau: Option<f32>,
    /// The per-input cap (likewise, `reward.max_kept_per_input`).
    pub cap: Option<u32>,
    /// Where each M-step starts (likewise, `train.init`).
    pub init: Option<events::InitMode>,
    /// The typed settings `RunStarted` logged (schema 3 on).
    pub settings: Option<events::RunSettings>,
}

/// A `RetrievalDone` record: the profile items retrieved for one input.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetrievalRecord {
    /// Its sequence number.
    pub seq: u64,
    /// The retriever as configured (`bm25`, a dense encoder's name).
    pub retriever: String,
    /// How many items were asked for.
    pub k: u32,
    /// (index into the input's profile, retrieval score), best first.
    pub items: Vec<(u32, f32)>,
}

/// The logged text of a sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampleText {
    /// The reasoning part, when the template has one.
    pub reasoning: Option<String>,
    /// The final response.
    pub response: String,
}

/// A `SampleGenerated` record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Generated {
    /// Its sequence number.
    pub seq: u64,
    /// The sampling seed.
    pub seed: u64,
    /// blake3 of the prompt text.
    pub prompt_digest: Digest,
    /// The text, unless the fold was asked not to keep it
    /// ([`Replay::without_text`](crate::Replay::without_text)).
    pub text: Option<SampleText>,
    /// [`events::response_digest`] of the response, computed while
    /// folding: the `response_digest` of its D_t entry.
    pub response_digest: Digest,
    /// Prompt length in tokens.
    pub prompt_tokens: u32,
    /// Output length in tokens.
    pub output_tokens: u32,
    /// The checkpoint that sampled it.
    pub checkpoint: Digest,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus mass.
    pub top_p: f32,
    /// Why generation ended (`None` in logs older than schema 3).
    pub finish: Option<events::FinishReason>,
    /// The repetition guards it was drawn with (neutral in logs older than
    /// schema 5).
    pub penalties: events::Penalties,
    /// The precision the model ran in (`F32` in logs older than schema 5).
    pub precision: events::Precision,
    /// The engine that drew it (tch in logs older than schema 6).
    pub engine: events::EngineInfo,
    /// Whether the output had a reasoning part.
    pub has_reasoning: bool,
}

/// A `RewardAssigned` record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RewardRecord {
    /// Its sequence number.
    pub seq: u64,
    /// The reward.
    pub reward: f32,
    /// Which reward (`judge`, `rouge-l`, …).
    pub reward_name: String,
    /// The judge's probabilities over scores 0..=10 (empty for non-judges).
    pub judge_distribution: Vec<f32>,
    /// The judge model's engine; `None` for a reward without a model (in
    /// logs older than schema 6: tch when the distribution is non-empty).
    pub engine: Option<events::EngineInfo>,
    /// The probability mass, in [0, 1], the engine did not return among
    /// its top log-probabilities at the score positions (the largest over
    /// the positions read); `None` when the full distribution was read.
    pub unseen_mass: Option<f32>,
}

/// A `FilterDecided` record.
#[derive(Copy, Clone, Debug, PartialEq, Serialize)]
pub struct FilterRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Kept, or why not.
    pub decision: Decision,
    /// The reward the decision used (the loss weight when kept).
    pub reward: f32,
    /// The threshold τ.
    pub tau: f32,
    /// Rank among the input's samples by reward, from 0.
    pub rank: u32,
}

/// Everything the log says about one sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampleRecord {
    /// The sample.
    pub id: SampleId,
    /// Its generation, when logged.
    pub generated: Option<Generated>,
    /// Its rewards, one per reward name, in log order.
    pub rewards: Vec<RewardRecord>,
    /// Its filter decision, when logged.
    pub filter: Option<FilterRecord>,
}

impl SampleRecord {
    fn new(id: SampleId) -> Self {
        Self { id, generated: None, rewards: Vec::new(), filter: None }
    }

    /// The reward the filter should have used: the one whose value the
    /// filter's record carries, else the first logged.
    pub fn reward(&self) -> Option<&RewardRecord> {
        match &self.filter {
            Some(f) => self.rewards.iter().find(|r| r.reward.to_bits() == f.reward.to_bits()).or(self.rewards.first()),
            None => self.rewards.first(),
        }
    }

    /// The reward the audit shows and the view filters on: the one the
    /// filter's decision used, else the first assigned.
    pub fn shown_reward(&self) -> Option<f32> {
        self.filter.map(|f| f.reward).or_else(|| self.reward().map(|r| r.reward))
    }

    /// The largest sequence number among this sample's records.
    pub fn last_seq(&self) -> Option<u64> {
        let g = self.generated.as_ref().map(|g| g.seq);
        let r = self.rewards.iter().map(|r| r.seq).max();
        let f = self.filter.as_ref().map(|f| f.seq);
        [g, r, f].into_iter().flatten().max()
    }
}

/// A `DatasetSealed` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SealRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Number of kept samples it vouches for.
    pub count: u64,
    /// Their [`dataset_digest`](events::dataset_digest).
    pub digest: Digest,
}

/// One E-step iteration as the log tells it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IterationState {
    /// Every sample of the iteration, in canonical order (input id, index).
    pub samples: BTreeMap<SampleId, SampleRecord>,
    /// The seal of D_t, when written.
    pub seal: Option<SealRecord>,
    /// Sequence number of `IterationFinished`, when written.
    pub finished_seq: Option<u64>,
}

impl IterationState {
    /// The samples of one input, in index order: one range of the
    /// canonical order, not a scan of the iteration.
    pub fn samples_of<'a>(&'a self, input_id: &str) -> impl Iterator<Item = &'a SampleRecord> + 'a {
        let t = self.samples.keys().next().map_or(0, |id| id.iteration);
        let id = |index| SampleId { iteration: t, input_id: input_id.to_owned(), index };
        self.samples.range(id(0)..=id(u32::MAX)).map(|(_, s)| s)
    }
}

/// One `TrainingProgress` record.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProgressPoint {
    /// Its sequence number (0 for points that did not come from the log).
    pub seq: u64,
    /// Optimizer step.
    pub step: u64,
    /// Training loss.
    pub loss: f32,
    /// Learning rate.
    pub learning_rate: f32,
    /// Tokens seen so far.
    pub tokens: u64,
}

/// One `CheckpointSaved` record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckpointRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Iteration (0 for base and SFT).
    pub iteration: u32,
    /// Optimizer step.
    pub step: u64,
    /// What the checkpoint is (base, SFT, an M-step's).
    pub role: Role,
    /// Content hash.
    pub hash: Digest,
    /// Path relative to the run directory.
    pub path: String,
    /// Validation score, when computed.
    pub validation_score: Option<f64>,
}

/// One `EvaluationDone` record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvaluationRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Iteration of the evaluated model.
    pub iteration: u32,
    /// The evaluated split.
    pub split: Split,
    /// The evaluated system.
    pub system: String,
    /// Metric or task → value.
    pub scores: Vec<(String, f64)>,
    /// The report, relative to the run directory.
    pub report_path: String,
}

/// A `StageStarted` or `StageFinished` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageRecord {
    /// Its sequence number.
    pub seq: u64,
    /// The iteration (0 before the EM loop).
    pub iteration: u32,
    /// The stage.
    pub stage: Stage,
    /// `None` when the stage started; its wall time in milliseconds when it
    /// finished.
    pub wall_ms: Option<u64>,
}

/// A `RewardChecked` record: how well the run's reward told a user's own
/// text (a) from another user's (b) and from degenerate text (c).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RewardCheckRecord {
    /// Its sequence number.
    pub seq: u64,
    /// The reward checked.
    pub reward_name: String,
    /// K: examples per task at most.
    pub per_task: u32,
    /// Examples checked.
    pub examples: u32,
    /// Texts scored in groups a, b, c.
    pub counts: [u32; 3],
    /// AUC of a over b.
    pub auc_own_other: Option<f64>,
    /// AUC of a over c.
    pub auc_own_degenerate: Option<f64>,
    /// AUC of b over c.
    pub auc_other_degenerate: Option<f64>,
    /// Mean reward of groups a, b, c.
    pub means: [Option<f64>; 3],
}

/// A `RunFinished` or `RunFailed` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum RunEnd {
    /// The run finished.
    Finished {
        /// Its sequence number.
        seq: u64,
        /// Wall time of the run in milliseconds.
        wall_ms: u64,
    },
    /// The run failed.
    Failed {
        /// Its sequence number.
        seq: u64,
        /// Why, as the coordinator said.
        reason: String,
    },
}

impl RunEnd {
    /// The record's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            RunEnd::Finished { seq, .. } | RunEnd::Failed { seq, .. } => *seq,
        }
    }
}

/// A record that contradicts an earlier one. The store makes appends
/// idempotent by event id, so an honest log has none; a rewritten log may.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Anomaly {
    /// A second record of a fact already logged (same sample and kind, same
    /// reward name, or a second seal of one iteration). The first is kept.
    Duplicate {
        /// The kind of record, kebab-case.
        kind: &'static str,
        /// What it is about (`t1/x/#3`, `iteration 2`).
        subject: String,
        /// The iteration it belongs to.
        iteration: u32,
        /// The record that was kept.
        first_seq: u64,
        /// The record that was not.
        seq: u64,
    },
}

impl Anomaly {
    /// The iteration the anomaly belongs to.
    pub fn iteration(&self) -> u32 {
        match self {
            Anomaly::Duplicate { iteration, .. } => *iteration,
        }
    }
}

/// A record with its texts possibly stripped by [`RunState::prepare`].
pub(crate) struct Prepared {
    pub(crate) record: Envelope,
    pub(crate) response_digest: Option<Digest>,
    /// Whether the sample had reasoning, when its text was dropped.
    pub(crate) has_reasoning: Option<bool>,
}

/// Which part of a log a fold keeps. Folding everything is the default; the
/// CLI keeps one iteration's samples so that a million-sample log fits in
/// memory, and verification drops the text it does not need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) iteration: Option<u32>,
    pub(crate) keep_text: bool,
}

/// A run folded from its log: per iteration the samples with their rewards
/// and decisions, the seals, the training curves, checkpoints and
/// evaluations.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    /// The run id of the records (the first record's).
    pub run_id: Option<String>,
    /// The `RunStarted` record.
    pub run: Option<RunRecord>,
    /// Input id → task, from `RetrievalDone`.
    pub tasks: BTreeMap<String, String>,
    /// Input id → the profile items retrieved for it (the first
    /// `RetrievalDone` of the input).
    pub retrievals: BTreeMap<String, RetrievalRecord>,
    /// E-step iterations by number.
    pub iterations: BTreeMap<u32, IterationState>,
    /// Training curves by iteration (0 for SFT), in log order.
    pub training: BTreeMap<u32, Vec<ProgressPoint>>,
    /// Every checkpoint, in log order.
    pub checkpoints: Vec<CheckpointRecord>,
    /// Every evaluation, in log order.
    pub evaluations: Vec<EvaluationRecord>,
    /// Records that contradict earlier ones.
    pub anomalies: Vec<Anomaly>,
    /// Every stage start and end, in log order (the stage timings).
    pub stages: Vec<StageRecord>,
    /// Every reward check, in log order (one per run and reward).
    pub reward_checks: Vec<RewardCheckRecord>,
    /// Every end of the run (a failure, then a finish after a resume), in
    /// log order.
    pub ends: Vec<RunEnd>,
    /// Records applied, by kind.
    pub kinds: BTreeMap<events::EventKind, u64>,
    /// How many records were applied.
    pub records: u64,
    /// Sequence number and hash of the last record applied.
    pub last: Option<(u64, Digest)>,
    /// Every iteration the log has sample, seal or end records of, in or
    /// out of the fold's scope (what an error about a missing iteration
    /// lists).
    pub(crate) present: BTreeSet<u32>,
    pub(crate) scope: Scope,
}

impl Default for RunState {
    fn default() -> Self {
        Self::new()
    }
}

impl RunState {
    /// The state of an empty log: nothing applied yet.
    pub fn new() -> Self {
        Self::scoped(Scope { iteration: None, keep_text: true })
    }

    pub(crate) fn scoped(scope: Scope) -> Self {
        Self {
            run_id: None,
            run: None,
            tasks: BTreeMap::new(),
            retrievals: BTreeMap::new(),
            iterations: BTreeMap::new(),
            training: BTreeMap::new(),
            checkpoints: Vec::new(),
            evaluations: Vec::new(),
            anomalies: Vec::new(),
            stages: Vec::new(),
            reward_checks: Vec::new(),
            ends: Vec::new(),
            kinds: BTreeMap::new(),
            records: 0,
            last: None,
            present: BTreeSet::new(),
            scope,
        }
    }

    /// Whether sample texts were kept (they are unless the fold was asked
    /// not to).
    pub fn keeps_text(&self) -> bool {
        self.scope.keep_text
    }

    /// Notes that the log has records of `iteration` and says whether the
    /// fold keeps them.
    fn in_scope(&mut self, iteration: u32) -> bool {
        self.present.insert(iteration);
        self.scope.iteration.is_none_or(|t| t == iteration)
    }

    /// The iterations the log has sample, seal or end records of, whatever
    /// the fold's scope, in order.
    pub fn iterations_present(&self) -> impl Iterator<Item = u32> + '_ {
        self.present.iter().copied()
    }

    fn sample_mut(&mut self, id: &SampleId) -> &mut SampleRecord {
        let samples = &mut self.iterations.entry(id.iteration).or_default().samples;
        if !samples.contains_key(id) {
            samples.insert(id.clone(), SampleRecord::new(id.clone()));
        }
        samples.get_mut(id).expect("inserted above")
    }

    /// Applies one record. Pure and infallible: contradictions become
    /// [`Anomaly`] entries, never errors. Records must come in sequence
    /// order; the fold checks that, this does not.
    pub fn apply(&mut self, record: Envelope) {
        self.apply_prepared(Prepared { record, response_digest: None, has_reasoning: None });
    }

    /// Strips what this state will not keep from a record (a sample's text
    /// when texts are not kept or the sample is out of scope), remembering
    /// the response digest. Runs on reader threads, so that a parallel fold
    /// queues small records.
    pub(crate) fn prepare(scope: &Scope, mut record: Envelope) -> Prepared {
        let mut response_digest = None;
        let mut has_reasoning = None;
        if let Event::SampleGenerated { sample, reasoning, response, .. } = &mut record.payload {
            let in_scope = scope.iteration.is_none_or(|t| t == sample.iteration);
            if !scope.keep_text || !in_scope {
                response_digest = Some(events::response_digest(response));
                has_reasoning = Some(reasoning.is_some());
                *response = String::new();
                *reasoning = None;
            }
        }
        Prepared { record, response_digest, has_reasoning }
    }

    pub(crate) fn apply_prepared(&mut self, prepared: Prepared) {
        let Prepared { record, response_digest: precomputed, has_reasoning: had } = prepared;
        let seq = record.seq;
        self.records += 1;
        *self.kinds.entry(record.payload.kind()).or_default() += 1;
        self.last = Some((seq, record.hash));
        if self.run_id.is_none() {
            self.run_id = Some(record.run_id);
        }
        match record.payload {
            Event::RunStarted { method, config_toml, seed, code_version, settings, dataset_digest, .. } => {
                if self.run.is_none() {
                    let (tau, cap, init) = match &settings {
                        Some(s) => (Some(s.tau), Some(s.max_kept_per_input), Some(s.init)),
                        None => {
                            let legacy = FilterSettings::from_config(&config_toml);
                            (legacy.tau, legacy.cap, legacy.init)
                        }
                    };
                    self.run = Some(RunRecord {
                        seq,
                        method,
                        config_toml,
                        seed,
                        dataset_digest,
                        code_version,
                        tau,
                        cap,
                        init,
                        settings,
                    });
                }
            }
            Event::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                let items = item_indices.into_iter().zip(scores).collect();
                self.retrievals.entry(input_id.clone()).or_insert(RetrievalRecord { seq, retriever, k, items });
                self.tasks.entry(input_id).or_insert(task);
            }
            Event::SampleGenerated {
                sample,
                seed,
                prompt_digest,
                reasoning,
                response,
                prompt_tokens,
                output_tokens,
                checkpoint,
                temperature,
                top_p,
                finish,
                penalties,
                precision,
                engine,
            } => {
                if !self.in_scope(sample.iteration) {
                    return;
                }
                let response_digest = precomputed.unwrap_or_else(|| events::response_digest(&response));
                let has_reasoning = had.unwrap_or(reasoning.is_some());
                let text = self.scope.keep_text.then_some(SampleText { reasoning, response });
                let generated = Generated {
                    seq,
                    seed,
                    prompt_digest,
                    text,
                    response_digest,
                    prompt_tokens,
                    output_tokens,
                    checkpoint,
                    temperature,
                    top_p,
                    finish,
                    penalties,
                    precision,
                    engine,
                    has_reasoning,
                };
                let rec = self.sample_mut(&sample);
                match &rec.generated {
                    Some(first) => {
                        let first_seq = first.seq;
                        self.duplicate("sample-generated", sample.to_string(), sample.iteration, first_seq, seq);
                    }
                    None => rec.generated = Some(generated),
                }
            }
            Event::RewardAssigned { sample, reward, reward_name, judge_distribution, engine, unseen_mass } => {
                if !self.in_scope(sample.iteration) {
                    return;
                }
                let rec = self.sample_mut(&sample);
                match rec.rewards.iter().find(|r| r.reward_name == reward_name) {
                    Some(first) => {
                        let first_seq = first.seq;
                        let subject = format!("{sample} ({reward_name})");
                        self.duplicate("reward-assigned", subject, sample.iteration, first_seq, seq);
                    }
                    None => rec.rewards.push(RewardRecord {
                        seq,
                        reward,
                        reward_name,
                        judge_distribution,
                        engine,
                        unseen_mass,
                    }),
                }
            }
            Event::FilterDecided { sample, decision, reward, tau, rank } => {
                if !self.in_scope(sample.iteration) {
                    return;
                }
                let rec = self.sample_mut(&sample);
                match &rec.filter {
                    Some(first) => {
                        let first_seq = first.seq;
                        self.duplicate("filter-decided", sample.to_string(), sample.iteration, first_seq, seq);
                    }
                    None => rec.filter = Some(FilterRecord { seq, decision, reward, tau, rank }),
                }
            }
            Event::DatasetSealed { iteration, count, digest } => {
                if !self.in_scope(iteration) {
                    return;
                }
                let it = self.iterations.entry(iteration).or_default();
                match &it.seal {
                    Some(first) => {
                        let first_seq = first.seq;
                        self.duplicate("dataset-sealed", format!("iteration {iteration}"), iteration, first_seq, seq);
                    }
                    None => it.seal = Some(SealRecord { seq, count, digest }),
                }
            }
            Event::IterationFinished { iteration } => {
                if self.in_scope(iteration) {
                    let it = self.iterations.entry(iteration).or_default();
                    it.finished_seq.get_or_insert(seq);
                }
            }
            Event::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                self.training.entry(iteration).or_default().push(ProgressPoint {
                    seq,
                    step,
                    loss,
                    learning_rate,
                    tokens,
                });
            }
            Event::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                self.checkpoints.push(CheckpointRecord { seq, iteration, step, role, hash, path, validation_score });
            }
            Event::EvaluationDone { iteration, split, system, scores, report_path } => {
                self.evaluations.push(EvaluationRecord { seq, iteration, split, system, scores, report_path });
            }
            Event::StageStarted { iteration, stage } => {
                self.stages.push(StageRecord { seq, iteration, stage, wall_ms: None });
            }
            Event::StageFinished { iteration, stage, wall_ms } => {
                self.stages.push(StageRecord { seq, iteration, stage, wall_ms: Some(wall_ms) });
            }
            Event::RunFinished { wall_ms } => self.ends.push(RunEnd::Finished { seq, wall_ms }),
            Event::RunFailed { reason } => self.ends.push(RunEnd::Failed { seq, reason }),
            Event::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            } => self.reward_checks.push(RewardCheckRecord {
                seq,
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            }),
            Event::ReasoningGenerated { .. } | Event::MStepSkipped { .. } => {}
        }
    }

    fn duplicate(&mut self, kind: &'static str, subject: String, iteration: u32, first_seq: u64, seq: u64) {
        self.anomalies.push(Anomaly::Duplicate { kind, subject, iteration, first_seq, seq });
    }

    /// The task of an input, from its `RetrievalDone` record.
    pub fn task_of(&self, input_id: &str) -> Option<&str> {
        self.tasks.get(input_id).map(String::as_str)
    }

    /// The record of one sample.
    pub fn sample(&self, id: &SampleId) -> Option<&SampleRecord> {
        self.iterations.get(&id.iteration)?.samples.get(id)
    }
}

/// The filter settings a `RunStarted` configuration names. Keys that are
/// missing or of another type read as `None`; the verifier then falls back
/// on what the filter records themselves say.
/// The settings of a log older than schema 3, read from its configuration
/// text (the keys the run itself read: `reward.tau`,
/// `reward.max_kept_per_input`, `train.init`).
struct FilterSettings {
    tau: Option<f32>,
    cap: Option<u32>,
    init: Option<events::InitMode>,
}

impl FilterSettings {
    fn from_config(config_toml: &str) -> Self {
        let table: Option<toml::Table> = config_toml.parse().ok();
        let get = |section: &str, key: &str| -> Option<toml::Value> {
            table.as_ref()?.get(section)?.as_table()?.get(key).cloned()
        };
        let tau = get("reward", "tau").and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)));
        let cap = get("reward", "max_kept_per_input").and_then(|v| v.as_integer()).and_then(|i| u32::try_from(i).ok());
        let init = get("train", "init").and_then(|v| events::InitMode::from_name(v.as_str()?));
        Self { tau: tau.map(|t| t as f32), cap, init }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_settings_come_from_the_configuration() {
        let s = FilterSettings::from_config(
            "seed = 1\n[reward]\ntau = 0.8\nmax_kept_per_input = 4\n[train]\ninit = \"continue\"\n",
        );
        assert_eq!(s.tau, Some(0.8));
        assert_eq!(s.cap, Some(4));
        assert_eq!(s.init, Some(events::InitMode::Continue));
        // `[em]` has no `init` key (the run refuses it): it is not read.
        let s = FilterSettings::from_config("[em]\ninit = \"continue\"\n");
        assert_eq!(s.init, None);
        let s = FilterSettings::from_config("[reward]\ntau = 1\n");
        assert_eq!((s.tau, s.cap), (Some(1.0), None));
        let s = FilterSettings::from_config("not toml [");
        assert_eq!((s.tau, s.cap, s.init), (None, None, None));
    }
}
