//! Schema versions 1 and 2 of the payload, kept only to decode old records
//! and upcast them into the current [`Event`] (cqrs-es style: old versions
//! are read, never written by new code). Versions 1 and 2 share this payload;
//! they differ in the envelope's time field.
//!
//! Upcast (version 3 added fields): `SampleGenerated.finish` and
//! `RunStarted.settings` become `None`, meaning "not recorded".

use serde::{Deserialize, Serialize};

use crate::digest::{serde_digest, Digest};
use crate::event::Event;
use crate::sample::{Decision, SampleId};

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

impl From<EventV2> for Event {
    fn from(e: EventV2) -> Event {
        match e {
            EventV2::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest } => {
                Event::RunStarted {
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
                Event::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            EventV2::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                Event::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            EventV2::StageStarted { iteration, stage } => Event::StageStarted { iteration, stage },
            EventV2::StageFinished { iteration, stage, wall_ms } => Event::StageFinished { iteration, stage, wall_ms },
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
                finish: None,
            },
            EventV2::RewardAssigned { sample, reward, reward_name, judge_distribution } => {
                Event::RewardAssigned { sample, reward, reward_name, judge_distribution }
            }
            EventV2::FilterDecided { sample, decision, reward, tau, rank } => {
                Event::FilterDecided { sample, decision, reward, tau, rank }
            }
            EventV2::DatasetSealed { iteration, count, digest } => Event::DatasetSealed { iteration, count, digest },
            EventV2::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                Event::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            EventV2::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                Event::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            EventV2::EvaluationDone { iteration, split, system, scores, report_path } => {
                Event::EvaluationDone { iteration, split, system, scores, report_path }
            }
            EventV2::IterationFinished { iteration } => Event::IterationFinished { iteration },
            EventV2::RunFinished { wall_ms } => Event::RunFinished { wall_ms },
            EventV2::RunFailed { reason } => Event::RunFailed { reason },
        }
    }
}

impl EventV2 {
    /// The old-schema form of `e`, for re-encoding a record that was read in
    /// version 1 or 2; `None` when `e` holds what those versions cannot say
    /// (a finish reason, run settings, or a variant added in version 3).
    pub(crate) fn downcast(e: &Event) -> Option<EventV2> {
        Some(match e.clone() {
            Event::RunStarted {
                method,
                config_toml,
                config_digest,
                code_version,
                seed,
                dataset_digest,
                settings: None,
            } => EventV2::RunStarted { method, config_toml, config_digest, code_version, seed, dataset_digest },
            Event::RetrievalDone { input_id, task, retriever, k, item_indices, scores } => {
                EventV2::RetrievalDone { input_id, task, retriever, k, item_indices, scores }
            }
            Event::ReasoningGenerated { input_id, generator, seed, reasoning } => {
                EventV2::ReasoningGenerated { input_id, generator, seed, reasoning }
            }
            Event::StageStarted { iteration, stage } => EventV2::StageStarted { iteration, stage },
            Event::StageFinished { iteration, stage, wall_ms } => EventV2::StageFinished { iteration, stage, wall_ms },
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
            Event::RewardAssigned { sample, reward, reward_name, judge_distribution } => {
                EventV2::RewardAssigned { sample, reward, reward_name, judge_distribution }
            }
            Event::FilterDecided { sample, decision, reward, tau, rank } => {
                EventV2::FilterDecided { sample, decision, reward, tau, rank }
            }
            Event::DatasetSealed { iteration, count, digest } => EventV2::DatasetSealed { iteration, count, digest },
            Event::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
                EventV2::TrainingProgress { iteration, step, loss, learning_rate, tokens }
            }
            Event::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
                EventV2::CheckpointSaved { iteration, step, role, hash, path, validation_score }
            }
            Event::EvaluationDone { iteration, split, system, scores, report_path } => {
                EventV2::EvaluationDone { iteration, split, system, scores, report_path }
            }
            Event::IterationFinished { iteration } => EventV2::IterationFinished { iteration },
            Event::RunFinished { wall_ms } => EventV2::RunFinished { wall_ms },
            Event::RunFailed { reason } => EventV2::RunFailed { reason },
            _ => return None,
        })
    }
}
