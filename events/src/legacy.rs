//! Schema versions 1 to 6 of the payload, kept only to decode old records
//! and upcast them into the current [`Event`] (cqrs-es style: old versions
//! are read, never written by new code). Versions 1 and 2 share one payload
//! ([`EventV2`]; they differ in the envelope's time field); versions 3 to 6
//! have their own ([`EventV3`], [`EventV4`], [`EventV5`], [`EventV6`]).
//! Each old payload upcasts one version at a time: `EventV2 → EventV3 →
//! EventV4 → EventV5 → EventV6 → Event`.
//!
//! - Version 3 added fields: from version 2, `SampleGenerated.finish` and
//!   `RunStarted.settings` become `None`, meaning "not recorded".
//! - Version 4 typed the names: `StageStarted`/`StageFinished.stage`,
//!   `CheckpointSaved.role` and `EvaluationDone.split` were text and are
//!   [`Stage`], [`Role`] and [`Split`]. An old name is read by its exact
//!   spelling (the `as_str` of its variant, the text the old build wrote);
//!   any other text fails the record with an [`UpcastError`] naming the
//!   field, never a default. Event ids hash those same spellings, so the
//!   ids of old and new records of one fact agree.
//! - Version 5 added fields: `SampleGenerated.penalties` (the repetition
//!   guards) and `SampleGenerated.precision`. A version-4 sample was drawn
//!   without guards in f32, the only precision there was, so it upcasts to
//!   [`Penalties::default`] (neutral) and [`Precision::F32`]: exactly what
//!   happened, not a guess.
//! - Version 6 names the engine: `SampleGenerated.engine`,
//!   `RewardAssigned.engine` and `RewardAssigned.unseen_mass`. Every
//!   version-5 sample and judge reward was produced by the embedded tch
//!   engine, the only one there was, so a sample upcasts to
//!   [`EngineInfo::tch`], a reward with a judge distribution to
//!   `Some(EngineInfo::tch())` and one without (a lexical reward such as
//!   rouge-l, no model) to `None`; the unseen mass is `None` (tch reads the
//!   full distribution). Event ids hash neither, so they do not change.
//! - Version 7 made dropping unfinished samples a logged setting:
//!   `RunStarted.settings.drop_unfinished`, with the filter decision
//!   `Unfinished`. Every version-6 run kept samples that ran to the token
//!   limit, so its settings upcast to `drop_unfinished: false` ([`RunSettingsV6`]):
//!   exactly what happened. Event ids hash no settings, so they do not change.

use serde::{Deserialize, Serialize};

use crate::digest::{serde_digest, Digest};
use crate::engine::EngineInfo;
use crate::event::{Event, EventKind};
use crate::sample::{Decision, FinishReason, SampleId};
use crate::settings::RunSettings;
use crate::vocab::{InitMode, Penalties, Precision, Role, Split, Stage, UnknownName};

/// The payload as schema versions 1 and 2 wrote it (same variant order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum EventV2 {
    RunStarted {
        method: String,
        config_toml: String,
        #[serde(with = "serde_digest")]
        config_digest: Digest,
        code_version: String,
        seed: u64,
        #[serde(with = "serde_digest")]
        dataset_digest: Digest,
    },
    RetrievalDone {
        input_id: String,
        task: String,
        retriever: String,
        k: u32,
        item_indices: Vec<u32>,
        scores: Vec<f32>,
    },
    ReasoningGenerated {
        input_id: String,
        generator: String,
        seed: u64,
        reasoning: String,
    },
    StageStarted {
        iteration: u32,
        stage: String,
    },
    StageFinished {
        iteration: u32,
        stage: String,
        wall_ms: u64,
    },
    SampleGenerated {
        sample: SampleId,
        seed: u64,
        #[serde(with = "serde_digest")]
        prompt_digest: Digest,
        reasoning: Option<String>,
        response: String,
        prompt_tokens: u32,
        output_tokens: u32,
        #[serde(with = "serde_digest")]
        checkpoint: Digest,
        temperature: f32,
        top_p: f32,
    },
    RewardAssigned {
        sample: SampleId,
        reward: f32,
        reward_name: String,
        judge_distribution: Vec<f32>,
    },
    FilterDecided {
        sample: SampleId,
        decision: Decision,
        reward: f32,
        tau: f32,
        rank: u32,
    },
    DatasetSealed {
        iteration: u32,
        count: u64,
        #[serde(with = "serde_digest")]
        digest: Digest,
    },
    TrainingProgress {
        iteration: u32,
        step: u64,
        loss: f32,
        learning_rate: f32,
        tokens: u64,
    },
    CheckpointSaved {
        iteration: u32,
        step: u64,
        role: String,
        #[serde(with = "serde_digest")]
        hash: Digest,
        path: String,
        validation_score: Option<f64>,
    },
    EvaluationDone {
        iteration: u32,
        split: String,
        system: String,
        scores: Vec<(String, f64)>,
        report_path: String,
    },
    IterationFinished {
        iteration: u32,
    },
    RunFinished {
        wall_ms: u64,
    },
    RunFailed {
        reason: String,
    },
}

impl From<EventV2> for EventV3 {
    fn from(e: EventV2) -> EventV3 {
        match e {
            EventV2::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest } => {
                EventV3::RunStarted {
                    method,
                    config_toml,
                    config_digest,
                    code_version,
                    seed,
                    dataset_digest,
                    settings: None,
                }
            }
            EventV2::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV3::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV2::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV3::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV2::StageStarted { iteration, stage } => EventV3::StageStarted { iteration, stage },
            EventV2::StageFinished { iteration, stage, wall_ms } => {
                EventV3::StageFinished { iteration, stage, wall_ms }
            }
            EventV2::SampleGenerated {
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
            } => EventV3::SampleGenerated {
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
                finish: None,
            },
            EventV2::RewardAssigned { sample, reward, reward_name, judge_distribution } => {
                EventV3::RewardAssigned { sample, reward, reward_name, judge_distribution }
            }
            EventV2::FilterDecided { sample, decision, reward, tau, rank } => {
                EventV3::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV2::DatasetSealed { iteration, count, digest } => EventV3::DatasetSealed { iteration, count, digest },
            EventV2::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV3::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV2::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                EventV3::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            EventV2::EvaluationDone { iteration, split, system, scores, report_path } => {
                EventV3::EvaluationDone { iteration, split, system, scores, report_path }
            }
            EventV2::IterationFinished { iteration } => EventV3::IterationFinished { iteration },
            EventV2::RunFinished { wall_ms } => EventV3::RunFinished { wall_ms },
            EventV2::RunFailed { reason } => EventV3::RunFailed { reason },
        }
    }
}

impl EventV2 {
    /// The old-schema form of `e`, for re-encoding a record that was read in
    /// version 1 or 2; `None` when `e` holds what those versions cannot say
    /// (a finish reason, run settings, or a variant added in version 3).
    pub(crate) fn downcast(e: &EventV3) -> Option<EventV2> {
        Some(match e.clone() {
            EventV3::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings: None,
            } => EventV2::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest },
            EventV3::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV2::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV3::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV2::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV3::StageStarted { iteration, stage } => EventV2::StageStarted { iteration, stage },
            EventV3::StageFinished { iteration, stage, wall_ms } => {
                EventV2::StageFinished { iteration, stage, wall_ms }
            }
            EventV3::SampleGenerated {
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
                finish: None,
            } => EventV2::SampleGenerated {
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
            },
            EventV3::RewardAssigned { sample, reward, reward_name, judge_distribution } => {
                EventV2::RewardAssigned { sample, reward, reward_name, judge_distribution }
            }
            EventV3::FilterDecided { sample, decision, reward, tau, rank } => {
                EventV2::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV3::DatasetSealed { iteration, count, digest } => EventV2::DatasetSealed { iteration, count, digest },
            EventV3::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV2::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV3::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                EventV2::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            EventV3::EvaluationDone { iteration, split, system, scores, report_path } => {
                EventV2::EvaluationDone { iteration, split, system, scores, report_path }
            }
            EventV3::IterationFinished { iteration } => EventV2::IterationFinished { iteration },
            EventV3::RunFinished { wall_ms } => EventV2::RunFinished { wall_ms },
            EventV3::RunFailed { reason } => EventV2::RunFailed { reason },
            _ => return None,
        })
    }
}

/// The payload as schema version 3 wrote it: today's variants, with the
/// stage, checkpoint role and split as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum EventV3 {
    RunStarted {
        method: String,
        config_toml: String,
        #[serde(with = "serde_digest")]
        config_digest: Digest,
        code_version: String,
        seed: u64,
        #[serde(with = "serde_digest")]
        dataset_digest: Digest,
        settings: Option<RunSettingsV6>,
    },
    RetrievalDone {
        input_id: String,
        task: String,
        retriever: String,
        k: u32,
        item_indices: Vec<u32>,
        scores: Vec<f32>,
    },
    ReasoningGenerated {
        input_id: String,
        generator: String,
        seed: u64,
        reasoning: String,
    },
    StageStarted {
        iteration: u32,
        stage: String,
    },
    StageFinished {
        iteration: u32,
        stage: String,
        wall_ms: u64,
    },
    SampleGenerated {
        sample: SampleId,
        seed: u64,
        #[serde(with = "serde_digest")]
        prompt_digest: Digest,
        reasoning: Option<String>,
        response: String,
        prompt_tokens: u32,
        output_tokens: u32,
        #[serde(with = "serde_digest")]
        checkpoint: Digest,
        temperature: f32,
        top_p: f32,
        finish: Option<FinishReason>,
    },
    RewardAssigned {
        sample: SampleId,
        reward: f32,
        reward_name: String,
        judge_distribution: Vec<f32>,
    },
    FilterDecided {
        sample: SampleId,
        decision: Decision,
        reward: f32,
        tau: f32,
        rank: u32,
    },
    DatasetSealed {
        iteration: u32,
        count: u64,
        #[serde(with = "serde_digest")]
        digest: Digest,
    },
    TrainingProgress {
        iteration: u32,
        step: u64,
        loss: f32,
        learning_rate: f32,
        tokens: u64,
    },
    CheckpointSaved {
        iteration: u32,
        step: u64,
        role: String,
        #[serde(with = "serde_digest")]
        hash: Digest,
        path: String,
        validation_score: Option<f64>,
    },
    EvaluationDone {
        iteration: u32,
        split: String,
        system: String,
        scores: Vec<(String, f64)>,
        report_path: String,
    },
    IterationFinished {
        iteration: u32,
    },
    RunFinished {
        wall_ms: u64,
    },
    RunFailed {
        reason: String,
    },
    MStepSkipped {
        iteration: u32,
        reason: String,
    },
}

/// An old record's text that names nothing of today's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}.{field}: {source}")]
pub struct UpcastError {
    /// The record's kind.
    pub kind: EventKind,
    /// The field holding the text.
    pub field: &'static str,
    /// The text and the accepted names.
    pub source: UnknownName,
}

impl TryFrom<EventV3> for EventV4 {
    type Error = UpcastError;

    fn try_from(e: EventV3) -> Result<EventV4, UpcastError> {
        fn name<T>(
            kind: EventKind,
            field: &'static str,
            text: String,
            parse: fn(&str) -> Option<T>,
            unknown: fn(&str) -> UnknownName,
        ) -> Result<T, UpcastError> {
            parse(&text).ok_or_else(|| UpcastError { kind, field, source: unknown(&text) })
        }
        let stage = |kind, text| name(kind, "stage", text, Stage::from_name, Stage::unknown_name);
        Ok(match e {
            EventV3::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings,
            } => {
                EventV4::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest, settings }
            }
            EventV3::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV4::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV3::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV4::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV3::StageStarted { iteration, stage: s } => {
                EventV4::StageStarted { iteration, stage: stage(EventKind::StageStarted, s)? }
            }
            EventV3::StageFinished { iteration, stage: s, wall_ms } => {
                EventV4::StageFinished { iteration, stage: stage(EventKind::StageFinished, s)?, wall_ms }
            }
            EventV3::SampleGenerated {
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
            } => EventV4::SampleGenerated {
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
            },
            EventV3::RewardAssigned { sample, reward, reward_name, judge_distribution } => {
                EventV4::RewardAssigned { sample, reward, reward_name, judge_distribution }
            }
            EventV3::FilterDecided { sample, decision, reward, tau, rank } => {
                EventV4::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV3::DatasetSealed { iteration, count, digest } => EventV4::DatasetSealed { iteration, count, digest },
            EventV3::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV4::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV3::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                let role = name(EventKind::CheckpointSaved, "role", role, Role::from_name, Role::unknown_name)?;
                EventV4::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            EventV3::EvaluationDone { iteration, split, system, scores, report_path } => {
                let split = name(EventKind::EvaluationDone, "split", split, Split::from_name, Split::unknown_name)?;
                EventV4::EvaluationDone { iteration, split, system, scores, report_path }
            }
            EventV3::IterationFinished { iteration } => EventV4::IterationFinished { iteration },
            EventV3::RunFinished { wall_ms } => EventV4::RunFinished { wall_ms },
            EventV3::RunFailed { reason } => EventV4::RunFailed { reason },
            EventV3::MStepSkipped { iteration, reason } => EventV4::MStepSkipped { iteration, reason },
        })
    }
}

impl From<&EventV4> for EventV3 {
    /// The version-3 form of `e`, for re-encoding a record read in an old
    /// version (every version-4 payload has one: names become their text).
    fn from(e: &EventV4) -> EventV3 {
        match e.clone() {
            EventV4::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings,
            } => {
                EventV3::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest, settings }
            }
            EventV4::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV3::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV4::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV3::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV4::StageStarted { iteration, stage } => {
                EventV3::StageStarted { iteration, stage: stage.as_str().to_owned() }
            }
            EventV4::StageFinished { iteration, stage, wall_ms } => {
                EventV3::StageFinished { iteration, stage: stage.as_str().to_owned(), wall_ms }
            }
            EventV4::SampleGenerated {
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
            } => EventV3::SampleGenerated {
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
            },
            EventV4::RewardAssigned { sample, reward, reward_name, judge_distribution } => {
                EventV3::RewardAssigned { sample, reward, reward_name, judge_distribution }
            }
            EventV4::FilterDecided { sample, decision, reward, tau, rank } => {
                EventV3::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV4::DatasetSealed { iteration, count, digest } => EventV3::DatasetSealed { iteration, count, digest },
            EventV4::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV3::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV4::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                EventV3::CheckpointSaved {
                    iteration,
                    step,
                    role: role.as_str().to_owned(),
                    hash,
                    path,
                    validation_score,
                }
            }
            EventV4::EvaluationDone { iteration, split, system, scores, report_path } => {
                EventV3::EvaluationDone { iteration, split: split.as_str().to_owned(), system, scores, report_path }
            }
            EventV4::IterationFinished { iteration } => EventV3::IterationFinished { iteration },
            EventV4::RunFinished { wall_ms } => EventV3::RunFinished { wall_ms },
            EventV4::RunFailed { reason } => EventV3::RunFailed { reason },
            EventV4::MStepSkipped { iteration, reason } => EventV3::MStepSkipped { iteration, reason },
        }
    }
}

/// The payload as schema version 4 wrote it: typed names, and samples
/// without repetition guards or precision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum EventV4 {
    RunStarted {
        method: String,
        config_toml: String,
        #[serde(with = "serde_digest")]
        config_digest: Digest,
        code_version: String,
        seed: u64,
        #[serde(with = "serde_digest")]
        dataset_digest: Digest,
        settings: Option<RunSettingsV6>,
    },
    RetrievalDone {
        input_id: String,
        task: String,
        retriever: String,
        k: u32,
        item_indices: Vec<u32>,
        scores: Vec<f32>,
    },
    ReasoningGenerated {
        input_id: String,
        generator: String,
        seed: u64,
        reasoning: String,
    },
    StageStarted {
        iteration: u32,
        stage: Stage,
    },
    StageFinished {
        iteration: u32,
        stage: Stage,
        wall_ms: u64,
    },
    SampleGenerated {
        sample: SampleId,
        seed: u64,
        #[serde(with = "serde_digest")]
        prompt_digest: Digest,
        reasoning: Option<String>,
        response: String,
        prompt_tokens: u32,
        output_tokens: u32,
        #[serde(with = "serde_digest")]
        checkpoint: Digest,
        temperature: f32,
        top_p: f32,
        finish: Option<FinishReason>,
    },
    RewardAssigned {
        sample: SampleId,
        reward: f32,
        reward_name: String,
        judge_distribution: Vec<f32>,
    },
    FilterDecided {
        sample: SampleId,
        decision: Decision,
        reward: f32,
        tau: f32,
        rank: u32,
    },
    DatasetSealed {
        iteration: u32,
        count: u64,
        #[serde(with = "serde_digest")]
        digest: Digest,
    },
    TrainingProgress {
        iteration: u32,
        step: u64,
        loss: f32,
        learning_rate: f32,
        tokens: u64,
    },
    CheckpointSaved {
        iteration: u32,
        step: u64,
        role: Role,
        #[serde(with = "serde_digest")]
        hash: Digest,
        path: String,
        validation_score: Option<f64>,
    },
    EvaluationDone {
        iteration: u32,
        split: Split,
        system: String,
        scores: Vec<(String, f64)>,
        report_path: String,
    },
    IterationFinished {
        iteration: u32,
    },
    RunFinished {
        wall_ms: u64,
    },
    RunFailed {
        reason: String,
    },
    MStepSkipped {
        iteration: u32,
        reason: String,
    },
}

impl From<EventV4> for EventV5 {
    /// A version-4 sample was drawn without repetition guards, in f32.
    fn from(e: EventV4) -> EventV5 {
        match e {
            EventV4::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings,
            } => {
                EventV5::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest, settings }
            }
            EventV4::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV5::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV4::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV5::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV4::StageStarted { iteration, stage } => EventV5::StageStarted { iteration, stage },
            EventV4::StageFinished { iteration, stage, wall_ms } => {
                EventV5::StageFinished { iteration, stage, wall_ms }
            }
            EventV4::SampleGenerated {
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
            } => EventV5::SampleGenerated {
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
                penalties: Penalties::default(),
                precision: Precision::F32,
            },
            EventV4::RewardAssigned { sample, reward, reward_name, judge_distribution } => {
                EventV5::RewardAssigned { sample, reward, reward_name, judge_distribution }
            }
            EventV4::FilterDecided { sample, decision, reward, tau, rank } => {
                EventV5::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV4::DatasetSealed { iteration, count, digest } => EventV5::DatasetSealed { iteration, count, digest },
            EventV4::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV5::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV4::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                EventV5::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            EventV4::EvaluationDone { iteration, split, system, scores, report_path } => {
                EventV5::EvaluationDone { iteration, split, system, scores, report_path }
            }
            EventV4::IterationFinished { iteration } => EventV5::IterationFinished { iteration },
            EventV4::RunFinished { wall_ms } => EventV5::RunFinished { wall_ms },
            EventV4::RunFailed { reason } => EventV5::RunFailed { reason },
            EventV4::MStepSkipped { iteration, reason } => EventV5::MStepSkipped { iteration, reason },
        }
    }
}

impl EventV4 {
    /// The version-4 form of `e`, for re-encoding a record that was read in
    /// version 4 or older; `None` when `e` holds what version 4 cannot say
    /// (a sample drawn with repetition guards or in another precision than
    /// f32, or a variant added after version 4).
    pub(crate) fn downcast(e: &EventV5) -> Option<EventV4> {
        Some(match e.clone() {
            EventV5::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings,
            } => {
                EventV4::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest, settings }
            }
            EventV5::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV4::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV5::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV4::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV5::StageStarted { iteration, stage } => EventV4::StageStarted { iteration, stage },
            EventV5::StageFinished { iteration, stage, wall_ms } => {
                EventV4::StageFinished { iteration, stage, wall_ms }
            }
            EventV5::SampleGenerated {
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
                precision: Precision::F32,
            } if penalties.is_neutral() => EventV4::SampleGenerated {
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
            },
            EventV5::RewardAssigned { sample, reward, reward_name, judge_distribution } => {
                EventV4::RewardAssigned { sample, reward, reward_name, judge_distribution }
            }
            EventV5::FilterDecided { sample, decision, reward, tau, rank } => {
                EventV4::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV5::DatasetSealed { iteration, count, digest } => EventV4::DatasetSealed { iteration, count, digest },
            EventV5::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV4::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV5::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                EventV4::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            EventV5::EvaluationDone { iteration, split, system, scores, report_path } => {
                EventV4::EvaluationDone { iteration, split, system, scores, report_path }
            }
            EventV5::IterationFinished { iteration } => EventV4::IterationFinished { iteration },
            EventV5::RunFinished { wall_ms } => EventV4::RunFinished { wall_ms },
            EventV5::RunFailed { reason } => EventV4::RunFailed { reason },
            EventV5::MStepSkipped { iteration, reason } => EventV4::MStepSkipped { iteration, reason },
            _ => return None,
        })
    }
}

/// The payload as schema version 5 wrote it: samples with their repetition
/// guards and precision, and no record naming its engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum EventV5 {
    RunStarted {
        method: String,
        config_toml: String,
        #[serde(with = "serde_digest")]
        config_digest: Digest,
        code_version: String,
        seed: u64,
        #[serde(with = "serde_digest")]
        dataset_digest: Digest,
        settings: Option<RunSettingsV6>,
    },
    RetrievalDone {
        input_id: String,
        task: String,
        retriever: String,
        k: u32,
        item_indices: Vec<u32>,
        scores: Vec<f32>,
    },
    ReasoningGenerated {
        input_id: String,
        generator: String,
        seed: u64,
        reasoning: String,
    },
    StageStarted {
        iteration: u32,
        stage: Stage,
    },
    StageFinished {
        iteration: u32,
        stage: Stage,
        wall_ms: u64,
    },
    SampleGenerated {
        sample: SampleId,
        seed: u64,
        #[serde(with = "serde_digest")]
        prompt_digest: Digest,
        reasoning: Option<String>,
        response: String,
        prompt_tokens: u32,
        output_tokens: u32,
        #[serde(with = "serde_digest")]
        checkpoint: Digest,
        temperature: f32,
        top_p: f32,
        finish: Option<FinishReason>,
        penalties: Penalties,
        precision: Precision,
    },
    RewardAssigned {
        sample: SampleId,
        reward: f32,
        reward_name: String,
        judge_distribution: Vec<f32>,
    },
    FilterDecided {
        sample: SampleId,
        decision: Decision,
        reward: f32,
        tau: f32,
        rank: u32,
    },
    DatasetSealed {
        iteration: u32,
        count: u64,
        #[serde(with = "serde_digest")]
        digest: Digest,
    },
    TrainingProgress {
        iteration: u32,
        step: u64,
        loss: f32,
        learning_rate: f32,
        tokens: u64,
    },
    CheckpointSaved {
        iteration: u32,
        step: u64,
        role: Role,
        #[serde(with = "serde_digest")]
        hash: Digest,
        path: String,
        validation_score: Option<f64>,
    },
    EvaluationDone {
        iteration: u32,
        split: Split,
        system: String,
        scores: Vec<(String, f64)>,
        report_path: String,
    },
    IterationFinished {
        iteration: u32,
    },
    RunFinished {
        wall_ms: u64,
    },
    RunFailed {
        reason: String,
    },
    MStepSkipped {
        iteration: u32,
        reason: String,
    },
    RewardChecked {
        reward_name: String,
        per_task: u32,
        examples: u32,
        counts: [u32; 3],
        auc_own_other: Option<f64>,
        auc_own_degenerate: Option<f64>,
        auc_other_degenerate: Option<f64>,
        means: [Option<f64>; 3],
    },
}

impl From<EventV5> for EventV6 {
    /// Every version-5 record was produced by the embedded tch engine (the
    /// only one there was): a sample upcasts to [`EngineInfo::tch`], a judge
    /// reward (a non-empty distribution) to `Some` of it and a lexical one
    /// to `None`; no record knew of unseen mass, since tch reads the full
    /// distribution.
    fn from(e: EventV5) -> EventV6 {
        match e {
            EventV5::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings,
            } => {
                EventV6::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest, settings }
            }
            EventV5::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV6::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV5::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV6::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV5::StageStarted { iteration, stage } => EventV6::StageStarted { iteration, stage },
            EventV5::StageFinished { iteration, stage, wall_ms } => {
                EventV6::StageFinished { iteration, stage, wall_ms }
            }
            EventV5::SampleGenerated {
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
            } => EventV6::SampleGenerated {
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
                engine: EngineInfo::tch(),
            },
            EventV5::RewardAssigned { sample, reward, reward_name, judge_distribution } => {
                let engine = (!judge_distribution.is_empty()).then(EngineInfo::tch);
                EventV6::RewardAssigned { sample, reward, reward_name, judge_distribution, engine, unseen_mass: None }
            }
            EventV5::FilterDecided { sample, decision, reward, tau, rank } => {
                EventV6::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV5::DatasetSealed { iteration, count, digest } => EventV6::DatasetSealed { iteration, count, digest },
            EventV5::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV6::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV5::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                EventV6::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            EventV5::EvaluationDone { iteration, split, system, scores, report_path } => {
                EventV6::EvaluationDone { iteration, split, system, scores, report_path }
            }
            EventV5::IterationFinished { iteration } => EventV6::IterationFinished { iteration },
            EventV5::RunFinished { wall_ms } => EventV6::RunFinished { wall_ms },
            EventV5::RunFailed { reason } => EventV6::RunFailed { reason },
            EventV5::MStepSkipped { iteration, reason } => EventV6::MStepSkipped { iteration, reason },
            EventV5::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            } => EventV6::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            },
        }
    }
}

impl EventV5 {
    /// The version-5 form of `e`, for re-encoding a record that was read in
    /// version 5 or older; `None` when `e` holds what version 5 cannot say
    /// (a sample or a reward from an engine other than tch, a judge reward
    /// without an engine or a lexical one with one, an unseen mass, or a
    /// variant added after version 5).
    pub(crate) fn downcast(e: &EventV6) -> Option<EventV5> {
        Some(match e.clone() {
            EventV6::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings,
            } => {
                EventV5::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest, settings }
            }
            EventV6::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV5::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV6::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV5::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV6::StageStarted { iteration, stage } => EventV5::StageStarted { iteration, stage },
            EventV6::StageFinished { iteration, stage, wall_ms } => {
                EventV5::StageFinished { iteration, stage, wall_ms }
            }
            EventV6::SampleGenerated {
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
            } if engine == EngineInfo::tch() => EventV5::SampleGenerated {
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
            },
            EventV6::RewardAssigned { sample, reward, reward_name, judge_distribution, engine, unseen_mass: None }
                if engine == (!judge_distribution.is_empty()).then(EngineInfo::tch) =>
            {
                EventV5::RewardAssigned { sample, reward, reward_name, judge_distribution }
            }
            EventV6::FilterDecided { sample, decision, reward, tau, rank } => {
                EventV5::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV6::DatasetSealed { iteration, count, digest } => EventV5::DatasetSealed { iteration, count, digest },
            EventV6::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV5::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV6::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                EventV5::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            EventV6::EvaluationDone { iteration, split, system, scores, report_path } => {
                EventV5::EvaluationDone { iteration, split, system, scores, report_path }
            }
            EventV6::IterationFinished { iteration } => EventV5::IterationFinished { iteration },
            EventV6::RunFinished { wall_ms } => EventV5::RunFinished { wall_ms },
            EventV6::RunFailed { reason } => EventV5::RunFailed { reason },
            EventV6::MStepSkipped { iteration, reason } => EventV5::MStepSkipped { iteration, reason },
            EventV6::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            } => EventV5::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            },
            _ => return None,
        })
    }
}

/// The typed run settings as schema versions 3 to 6 wrote them: no
/// `drop_unfinished`, since every run then kept samples that ran to the
/// token limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunSettingsV6 {
    pub(crate) tau: f32,
    pub(crate) max_kept_per_input: u32,
    pub(crate) require_reasoning: bool,
    pub(crate) init: InitMode,
    pub(crate) separator: Option<String>,
    pub(crate) reward: String,
}

impl From<RunSettingsV6> for RunSettings {
    /// Every run before version 7 kept unfinished samples.
    fn from(s: RunSettingsV6) -> RunSettings {
        let RunSettingsV6 { tau, max_kept_per_input, require_reasoning, init, separator, reward } = s;
        RunSettings { tau, max_kept_per_input, require_reasoning, init, separator, reward, drop_unfinished: false }
    }
}

impl RunSettingsV6 {
    /// The version-6 form of `s`; `None` for a run that drops unfinished
    /// samples, which version 6 cannot say.
    pub(crate) fn downcast(s: &RunSettings) -> Option<RunSettingsV6> {
        let RunSettings { tau, max_kept_per_input, require_reasoning, init, separator, reward, drop_unfinished } =
            s.clone();
        (!drop_unfinished).then_some(RunSettingsV6 {
            tau,
            max_kept_per_input,
            require_reasoning,
            init,
            separator,
            reward,
        })
    }
}

/// The payload as schema version 6 wrote it: the run settings without
/// `drop_unfinished`, and no `unfinished` filter decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum EventV6 {
    RunStarted {
        method: String,
        config_toml: String,
        #[serde(with = "serde_digest")]
        config_digest: Digest,
        code_version: String,
        seed: u64,
        #[serde(with = "serde_digest")]
        dataset_digest: Digest,
        settings: Option<RunSettingsV6>,
    },
    RetrievalDone {
        input_id: String,
        task: String,
        retriever: String,
        k: u32,
        item_indices: Vec<u32>,
        scores: Vec<f32>,
    },
    ReasoningGenerated {
        input_id: String,
        generator: String,
        seed: u64,
        reasoning: String,
    },
    StageStarted {
        iteration: u32,
        stage: Stage,
    },
    StageFinished {
        iteration: u32,
        stage: Stage,
        wall_ms: u64,
    },
    SampleGenerated {
        sample: SampleId,
        seed: u64,
        #[serde(with = "serde_digest")]
        prompt_digest: Digest,
        reasoning: Option<String>,
        response: String,
        prompt_tokens: u32,
        output_tokens: u32,
        #[serde(with = "serde_digest")]
        checkpoint: Digest,
        temperature: f32,
        top_p: f32,
        finish: Option<FinishReason>,
        penalties: Penalties,
        precision: Precision,
        engine: EngineInfo,
    },
    RewardAssigned {
        sample: SampleId,
        reward: f32,
        reward_name: String,
        judge_distribution: Vec<f32>,
        engine: Option<EngineInfo>,
        unseen_mass: Option<f32>,
    },
    FilterDecided {
        sample: SampleId,
        decision: Decision,
        reward: f32,
        tau: f32,
        rank: u32,
    },
    DatasetSealed {
        iteration: u32,
        count: u64,
        #[serde(with = "serde_digest")]
        digest: Digest,
    },
    TrainingProgress {
        iteration: u32,
        step: u64,
        loss: f32,
        learning_rate: f32,
        tokens: u64,
    },
    CheckpointSaved {
        iteration: u32,
        step: u64,
        role: Role,
        #[serde(with = "serde_digest")]
        hash: Digest,
        path: String,
        validation_score: Option<f64>,
    },
    EvaluationDone {
        iteration: u32,
        split: Split,
        system: String,
        scores: Vec<(String, f64)>,
        report_path: String,
    },
    IterationFinished {
        iteration: u32,
    },
    RunFinished {
        wall_ms: u64,
    },
    RunFailed {
        reason: String,
    },
    MStepSkipped {
        iteration: u32,
        reason: String,
    },
    RewardChecked {
        reward_name: String,
        per_task: u32,
        examples: u32,
        counts: [u32; 3],
        auc_own_other: Option<f64>,
        auc_own_degenerate: Option<f64>,
        auc_other_degenerate: Option<f64>,
        means: [Option<f64>; 3],
    },
}

impl From<EventV6> for Event {
    /// Field for field, the settings upcast as [`RunSettingsV6`] says.
    fn from(e: EventV6) -> Event {
        match e {
            EventV6::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings,
            } => Event::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings: settings.map(RunSettings::from),
            },
            EventV6::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                Event::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV6::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                Event::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV6::StageStarted { iteration, stage } => Event::StageStarted { iteration, stage },
            EventV6::StageFinished { iteration, stage, wall_ms } => Event::StageFinished { iteration, stage, wall_ms },
            EventV6::SampleGenerated {
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
            } => Event::SampleGenerated {
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
            },
            EventV6::RewardAssigned { sample, reward, reward_name, judge_distribution, engine, unseen_mass } => {
                Event::RewardAssigned { sample, reward, reward_name, judge_distribution, engine, unseen_mass }
            }
            EventV6::FilterDecided { sample, decision, reward, tau, rank } => {
                Event::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV6::DatasetSealed { iteration, count, digest } => Event::DatasetSealed { iteration, count, digest },
            EventV6::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                Event::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV6::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                Event::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            EventV6::EvaluationDone { iteration, split, system, scores, report_path } => {
                Event::EvaluationDone { iteration, split, system, scores, report_path }
            }
            EventV6::IterationFinished { iteration } => Event::IterationFinished { iteration },
            EventV6::RunFinished { wall_ms } => Event::RunFinished { wall_ms },
            EventV6::RunFailed { reason } => Event::RunFailed { reason },
            EventV6::MStepSkipped { iteration, reason } => Event::MStepSkipped { iteration, reason },
            EventV6::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            } => Event::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            },
        }
    }
}

impl EventV6 {
    /// The version-6 form of `e`, for re-encoding a record that was read in
    /// version 6 or older; `None` when `e` holds what version 6 cannot say
    /// (settings that drop unfinished samples, an `unfinished` decision).
    pub(crate) fn downcast(e: &Event) -> Option<EventV6> {
        Some(match e.clone() {
            Event::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest, settings } => {
                let settings = match settings {
                    Some(s) => Some(RunSettingsV6::downcast(&s)?),
                    None => None,
                };
                EventV6::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest, settings }
            }
            Event::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV6::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            Event::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV6::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            Event::StageStarted { iteration, stage } => EventV6::StageStarted { iteration, stage },
            Event::StageFinished { iteration, stage, wall_ms } => EventV6::StageFinished { iteration, stage, wall_ms },
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
            } => EventV6::SampleGenerated {
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
            },
            Event::RewardAssigned { sample, reward, reward_name, judge_distribution, engine, unseen_mass } => {
                EventV6::RewardAssigned { sample, reward, reward_name, judge_distribution, engine, unseen_mass }
            }
            Event::FilterDecided { sample, decision, reward, tau, rank } if decision != Decision::Unfinished => {
                EventV6::FilterDecided { sample, decision, reward, tau, rank }
            }
            Event::DatasetSealed { iteration, count, digest } => EventV6::DatasetSealed { iteration, count, digest },
            Event::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV6::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            Event::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                EventV6::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            Event::EvaluationDone { iteration, split, system, scores, report_path } => {
                EventV6::EvaluationDone { iteration, split, system, scores, report_path }
            }
            Event::IterationFinished { iteration } => EventV6::IterationFinished { iteration },
            Event::RunFinished { wall_ms } => EventV6::RunFinished { wall_ms },
            Event::RunFailed { reason } => EventV6::RunFailed { reason },
            Event::MStepSkipped { iteration, reason } => EventV6::MStepSkipped { iteration, reason },
            Event::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            } => EventV6::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            },
            _ => return None,
        })
    }
}
