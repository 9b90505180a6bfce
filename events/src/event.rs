//! The payload: everything that happens in a run, as one enum of past-tense
//! facts, and the deterministic id of each fact.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::{digest, serde_digest, Digest, KeyHasher};
use crate::engine::EngineInfo;
use crate::sample::{Decision, FinishReason, SampleId};
use crate::settings::RunSettings;
use crate::vocab::{Penalties, Precision, Role, Split, Stage};

/// One fact about a run.
///
/// On disk a variant is its position in this list (bincode writes the index),
/// so variants are only ever *added at the end*; changing a variant's fields
/// is a new [`SCHEMA_VERSION`](crate::SCHEMA_VERSION) with an upcast from the
/// old one (see `envelope.rs`). The fixture test fails when either rule is
/// broken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A run began (or was created): everything needed to rerun it.
    RunStarted {
        /// The method as the CLI names it (`rest-pg`, `sft`, …; see
        /// [`Method`](crate::Method)). Kept as text: records of schema
        /// versions 1 and 2 hold names that are no method of today's.
        method: String,
        /// The resolved configuration, every value decided, as TOML.
        config_toml: String,
        /// blake3 of `config_toml`.
        #[serde(with = "serde_digest")]
        config_digest: Digest,
        /// Version of the code (crate version and git commit when known).
        code_version: String,
        /// The run seed; sample seeds derive from it ([`SampleId::seed`]).
        seed: u64,
        /// Digest of the training data as loaded.
        #[serde(with = "serde_digest")]
        dataset_digest: Digest,
        /// The settings replay needs (τ, cap, M-step start, separator,
        /// reward); `None` only in records written before schema version 3.
        settings: Option<RunSettings>,
    },
    /// Profile items retrieved for one input.
    RetrievalDone {
        /// The input.
        input_id: String,
        /// Its task as the data set names it (`email-completion`, …). Kept
        /// as text: the tasks are the root package's data, and records of
        /// schema versions 1 and 2 hold other names.
        task: String,
        /// `bm25`, `contriever`, … as configured.
        retriever: String,
        /// How many items were asked for.
        k: u32,
        /// Indices into the input's profile, best first.
        item_indices: Vec<u32>,
        /// Their scores, aligned with `item_indices`.
        scores: Vec<f32>,
    },
    /// The reasoning generator summarized the user for one input.
    ReasoningGenerated {
        /// The input.
        input_id: String,
        /// The generator model's name or checkpoint.
        generator: String,
        /// Sampling seed.
        seed: u64,
        /// The generated reasoning text.
        reasoning: String,
    },
    /// A pipeline stage began.
    StageStarted {
        /// Iteration (0 before the first E-step).
        iteration: u32,
        /// The stage.
        stage: Stage,
    },
    /// A pipeline stage ended.
    StageFinished {
        /// Iteration (0 before the first E-step).
        iteration: u32,
        /// The stage.
        stage: Stage,
        /// Wall time of the stage in milliseconds.
        wall_ms: u64,
    },
    /// The policy produced one sample.
    SampleGenerated {
        /// Which sample.
        sample: SampleId,
        /// Its sampling seed.
        seed: u64,
        /// blake3 of the exact prompt text.
        #[serde(with = "serde_digest")]
        prompt_digest: Digest,
        /// The reasoning part, for methods that generate one.
        reasoning: Option<String>,
        /// The final response (what the judge sees).
        response: String,
        /// Prompt length in tokens.
        prompt_tokens: u32,
        /// Generated length in tokens (reasoning and response).
        output_tokens: u32,
        /// Content hash of the checkpoint that sampled it.
        #[serde(with = "serde_digest")]
        checkpoint: Digest,
        /// Sampling temperature.
        temperature: f32,
        /// Nucleus sampling mass.
        top_p: f32,
        /// Why generation ended; `None` only in records written before
        /// schema version 3.
        finish: Option<FinishReason>,
        /// The repetition guards it was drawn with; neutral in records
        /// written before schema version 5 (which had none).
        penalties: Penalties,
        /// The precision the model ran in; `F32` in records written before
        /// schema version 5 (the only one there was).
        precision: Precision,
        /// Which engine drew it (the embedded tch engine or a server, with
        /// its model, version and whether it is deterministic). Records
        /// written before schema version 6 read [`EngineInfo::tch`]: that
        /// is what drew them, the only engine there was.
        engine: EngineInfo,
    },
    /// A reward was assigned to a sample.
    RewardAssigned {
        /// Which sample.
        sample: SampleId,
        /// The reward in [0, 1].
        reward: f32,
        /// Which reward (`judge`, `rouge-l`, …).
        reward_name: String,
        /// The judge's probabilities over its score levels (0..=10); empty
        /// for rewards that are not a judge.
        judge_distribution: Vec<f32>,
        /// The engine of the judge model; `None` for a reward without a
        /// model (a lexical reward such as rouge-l). Records written before
        /// schema version 6 read `Some(EngineInfo::tch())` when
        /// `judge_distribution` is non-empty and `None` otherwise.
        engine: Option<EngineInfo>,
        /// The probability mass, in [0, 1], that the engine did not return
        /// among its top log-probabilities at the score positions: the
        /// largest over the positions read. `None` when the full
        /// distribution was read (tch), for rewards without a model, and in
        /// records written before schema version 6.
        unseen_mass: Option<f32>,
    },
    /// The filter kept or dropped a sample.
    FilterDecided {
        /// Which sample.
        sample: SampleId,
        /// Kept, or why not.
        decision: Decision,
        /// The reward the decision used.
        reward: f32,
        /// The threshold τ.
        tau: f32,
        /// Rank of the sample among its input's samples by reward, from 0.
        rank: u32,
    },
    /// The E-step's training set D_t is complete.
    DatasetSealed {
        /// Iteration t.
        iteration: u32,
        /// Number of kept samples.
        count: u64,
        /// [`dataset_digest`](crate::dataset_digest) of the kept samples.
        #[serde(with = "serde_digest")]
        digest: Digest,
    },
    /// A training step's figures.
    TrainingProgress {
        /// Iteration (0 for SFT).
        iteration: u32,
        /// Optimizer step.
        step: u64,
        /// Training loss.
        loss: f32,
        /// Learning rate at this step.
        learning_rate: f32,
        /// Tokens seen so far in this training.
        tokens: u64,
    },
    /// A checkpoint was written to the blob store.
    CheckpointSaved {
        /// Iteration (0 for the base model and SFT).
        iteration: u32,
        /// Optimizer step.
        step: u64,
        /// What the checkpoint is (base, SFT, an M-step's).
        role: Role,
        /// Content hash, the blob's name in the blob store.
        #[serde(with = "serde_digest")]
        hash: Digest,
        /// Where it lies, relative to the run directory.
        path: String,
        /// Validation score, when one was computed.
        validation_score: Option<f64>,
    },
    /// An evaluation finished.
    EvaluationDone {
        /// Iteration of the evaluated model.
        iteration: u32,
        /// The evaluated split (validation or test).
        split: Split,
        /// Which system was evaluated.
        system: String,
        /// Metric or task name → value.
        scores: Vec<(String, f64)>,
        /// The written report, relative to the run directory.
        report_path: String,
    },
    /// An iteration ended (after its M-step).
    IterationFinished {
        /// Iteration t.
        iteration: u32,
    },
    /// The run ended normally.
    RunFinished {
        /// Wall time in milliseconds.
        wall_ms: u64,
    },
    /// The run stopped on an error.
    RunFailed {
        /// The error, as shown to the user.
        reason: String,
    },
    /// An M-step trained nothing and θ_t carries over as θ_{t+1}.
    MStepSkipped {
        /// Iteration t.
        iteration: u32,
        /// Why (e.g. D_t is empty: no sample reached τ).
        reason: String,
    },
    /// The run's reward was checked before the run trusted it: for up to
    /// `per_task` examples per task it scored (a) the user's own expected
    /// output, (b) another user's for the same task and (c) degenerate texts
    /// (empty, the separator repeated, one sentence repeated). AUCs are
    /// Mann–Whitney U / (n·m), ties counting 1/2; `None` when a group was
    /// empty.
    RewardChecked {
        /// Which reward (the configured spec, as `RewardAssigned` names it).
        reward_name: String,
        /// K: examples per task at most.
        per_task: u32,
        /// Examples checked.
        examples: u32,
        /// Texts scored in groups a, b and c.
        counts: [u32; 3],
        /// AUC of a over b: below 0.75 the reward cannot tell this user's
        /// text from someone else's.
        auc_own_other: Option<f64>,
        /// AUC of a over c.
        auc_own_degenerate: Option<f64>,
        /// AUC of b over c.
        auc_other_degenerate: Option<f64>,
        /// Mean reward of groups a, b and c.
        means: [Option<f64>; 3],
    },
}

macro_rules! event_kinds {
    ($($kind:ident = $code:literal, $name:literal;)*) => {
        /// The variant of an [`Event`], without its fields. `code` is the
        /// stable byte used in the store's index keys.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EventKind {
            $(
                #[doc = concat!("[`Event::", stringify!($kind), "`].")]
                $kind,
            )*
        }

        impl EventKind {
            /// Every kind, in schema order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$kind),*];

            /// The stable one-byte code (never reused or renumbered).
            pub fn code(self) -> u8 {
                match self { $(EventKind::$kind => $code),* }
            }

            /// The kind with this code.
            pub fn from_code(code: u8) -> Option<EventKind> {
                match code { $($code => Some(EventKind::$kind),)* _ => None }
            }

            /// Kebab-case name as the CLI shows it (`sample-generated`).
            pub fn as_str(self) -> &'static str {
                match self { $(EventKind::$kind => $name),* }
            }
        }

        impl Event {
            /// This event's kind.
            pub fn kind(&self) -> EventKind {
                match self { $(Event::$kind { .. } => EventKind::$kind),* }
            }
        }
    };
}

event_kinds! {
    RunStarted = 1, "run-started";
    RetrievalDone = 2, "retrieval-done";
    ReasoningGenerated = 3, "reasoning-generated";
    StageStarted = 4, "stage-started";
    StageFinished = 5, "stage-finished";
    SampleGenerated = 6, "sample-generated";
    RewardAssigned = 7, "reward-assigned";
    FilterDecided = 8, "filter-decided";
    DatasetSealed = 9, "dataset-sealed";
    TrainingProgress = 10, "training-progress";
    CheckpointSaved = 11, "checkpoint-saved";
    EvaluationDone = 12, "evaluation-done";
    IterationFinished = 13, "iteration-finished";
    RunFinished = 14, "run-finished";
    RunFailed = 15, "run-failed";
    MStepSkipped = 16, "m-step-skipped";
    RewardChecked = 17, "reward-checked";
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {got:?} (known: {known})")]
pub struct EventKindParseError {
    /// The rejected name.
    pub got: String,
    /// The accepted names, comma-separated.
    pub known: String,
}

impl FromStr for EventKind {
    type Err = EventKindParseError;

    /// Accepts the kebab-case name (`sample-generated`) or the variant name
    /// (`SampleGenerated`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL.iter().copied().find(|k| k.as_str() == s || format!("{k:?}") == s).ok_or_else(|| {
            EventKindParseError {
                got: s.to_owned(),
                known: EventKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}

impl Event {
    /// The deterministic id of this fact in run `run_id`: blake3 over the run
    /// id, the kind and the fields that name the fact (not those that
    /// describe it). Appending an event whose id is already in the log is a
    /// no-op, so a resumed run that re-emits a fact records it once.
    ///
    /// | kind | named by |
    /// |---|---|
    /// | run started, run finished | the run |
    /// | retrieval done | input id, retriever |
    /// | reasoning generated | input id, generator, seed |
    /// | stage started / finished | iteration, stage |
    /// | sample generated, filter decided | sample id |
    /// | reward assigned | sample id, reward name |
    /// | data set sealed, iteration finished, M-step skipped | iteration |
    /// | training progress | iteration, step |
    /// | checkpoint saved | iteration, role, step |
    /// | evaluation done | iteration, split, system |
    /// | run failed | the reason's text |
    /// | reward checked | reward name, K |
    pub fn event_id(&self, run_id: &str) -> Digest {
        let mut h = KeyHasher::new("restpg.event-id.v1");
        h.str(run_id).u64(u64::from(self.kind().code()));
        let sample = |h: &mut KeyHasher, s: &SampleId| {
            h.u64(u64::from(s.iteration)).str(&s.input_id).u64(u64::from(s.index));
        };
        match self {
            Event::RunStarted { .. } | Event::RunFinished { .. } => {}
            Event::RetrievalDone { input_id, retriever, .. } => {
                h.str(input_id).str(retriever);
            }
            Event::ReasoningGenerated { input_id, generator, seed, .. } => {
                h.str(input_id).str(generator).u64(*seed);
            }
            Event::StageStarted { iteration, stage } | Event::StageFinished { iteration, stage, .. } => {
                h.u64(u64::from(*iteration)).str(stage.as_str());
            }
            Event::SampleGenerated { sample: s, .. } | Event::FilterDecided { sample: s, .. } => {
                sample(&mut h, s);
            }
            Event::RewardAssigned { sample: s, reward_name, .. } => {
                sample(&mut h, s);
                h.str(reward_name);
            }
            Event::DatasetSealed { iteration, .. }
            | Event::IterationFinished { iteration }
            | Event::MStepSkipped { iteration, .. } => {
                h.u64(u64::from(*iteration));
            }
            Event::TrainingProgress { iteration, step, .. } => {
                h.u64(u64::from(*iteration)).u64(*step);
            }
            Event::CheckpointSaved { iteration, role, step, .. } => {
                h.u64(u64::from(*iteration)).str(role.as_str()).u64(*step);
            }
            Event::EvaluationDone { iteration, split, system, .. } => {
                h.u64(u64::from(*iteration)).str(split.as_str()).str(system);
            }
            Event::RunFailed { reason } => {
                h.bytes(&digest(reason.as_bytes()));
            }
            Event::RewardChecked { reward_name, per_task, .. } => {
                h.str(reward_name).u64(u64::from(*per_task));
            }
        }
        h.finish()
    }

    /// The sample this event is about, if any.
    pub fn sample(&self) -> Option<&SampleId> {
        match self {
            Event::SampleGenerated { sample, .. }
            | Event::RewardAssigned { sample, .. }
            | Event::FilterDecided { sample, .. } => Some(sample),
            _ => None,
        }
    }

    /// The iteration this event belongs to, if it names one.
    pub fn iteration(&self) -> Option<u32> {
        match self {
            Event::StageStarted { iteration, .. }
            | Event::StageFinished { iteration, .. }
            | Event::DatasetSealed { iteration, .. }
            | Event::TrainingProgress { iteration, .. }
            | Event::CheckpointSaved { iteration, .. }
            | Event::EvaluationDone { iteration, .. }
            | Event::IterationFinished { iteration }
            | Event::MStepSkipped { iteration, .. } => Some(*iteration),
            _ => self.sample().map(|s| s.iteration),
        }
    }

    /// Whether this event closes a step of the pipeline (a stage, a sealed
    /// data set, a checkpoint, an iteration, the run). The store flushes to
    /// disk after such events, so a crash never loses a finished step.
    pub fn is_step_boundary(&self) -> bool {
        matches!(
            self.kind(),
            EventKind::RunStarted
                | EventKind::StageFinished
                | EventKind::DatasetSealed
                | EventKind::CheckpointSaved
                | EventKind::EvaluationDone
                | EventKind::IterationFinished
                | EventKind::RunFinished
                | EventKind::RunFailed
                | EventKind::RewardChecked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_event(index: u32, response: &str) -> Event {
        Event::SampleGenerated {
            sample: SampleId { iteration: 1, input_id: "in-1".into(), index },
            seed: 9,
            prompt_digest: digest(b"p"),
            reasoning: None,
            response: response.into(),
            prompt_tokens: 10,
            output_tokens: 20,
            checkpoint: digest(b"c"),
            temperature: 0.7,
            top_p: 0.95,
            finish: Some(FinishReason::StopToken),
            penalties: Penalties::default(),
            precision: Precision::F32,
            engine: EngineInfo::tch(),
        }
    }

    #[test]
    fn kind_codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &k in EventKind::ALL {
            assert!(seen.insert(k.code()));
            assert_eq!(EventKind::from_code(k.code()), Some(k));
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
            assert_eq!(format!("{k:?}").parse::<EventKind>().unwrap(), k);
        }
        assert!("sample".parse::<EventKind>().unwrap_err().to_string().contains("sample-generated"));
    }

    #[test]
    fn event_ids_name_the_fact_not_its_description() {
        // Given the same sample generated twice with different text
        let a = sample_event(3, "one");
        let b = sample_event(3, "two");
        // then both name the same fact in one run, different facts across runs
        assert_eq!(a.event_id("run-a"), b.event_id("run-a"));
        assert_ne!(a.event_id("run-a"), a.event_id("run-b"));
        // and another index, or another kind about the same sample, is another fact
        assert_ne!(a.event_id("run-a"), sample_event(4, "one").event_id("run-a"));
        let filter = Event::FilterDecided {
            sample: a.sample().unwrap().clone(),
            decision: Decision::Kept,
            reward: 1.0,
            tau: 1.0,
            rank: 0,
        };
        assert_ne!(a.event_id("run-a"), filter.event_id("run-a"));
    }

    #[test]
    fn the_engine_is_no_part_of_which_fact_it_is() {
        // Given a sample and a reward drawn by tch, and the same facts from a server
        let server = EngineInfo { backend: crate::Backend::OpenAi, deterministic: false, ..EngineInfo::default() };
        let a = sample_event(3, "one");
        let mut b = a.clone();
        if let Event::SampleGenerated { engine, .. } = &mut b {
            *engine = server.clone();
        }
        let reward = |engine, unseen_mass| Event::RewardAssigned {
            sample: a.sample().unwrap().clone(),
            reward: 0.5,
            reward_name: "judge".into(),
            judge_distribution: vec![0.5, 0.5],
            engine,
            unseen_mass,
        };
        // then each names one fact: a run resumed on another engine keeps its ids
        assert_eq!(a.event_id("r"), b.event_id("r"));
        assert_eq!(reward(Some(EngineInfo::tch()), None).event_id("r"), reward(Some(server), Some(0.1)).event_id("r"));
    }

    fn checked(reward_name: &str, per_task: u32, auc: f64) -> Event {
        Event::RewardChecked {
            reward_name: reward_name.into(),
            per_task,
            examples: 4,
            counts: [4, 4, 12],
            auc_own_other: Some(auc),
            auc_own_degenerate: Some(1.0),
            auc_other_degenerate: None,
            means: [Some(1.0), Some(0.2), None],
        }
    }

    #[test]
    fn a_reward_check_is_named_by_its_reward_and_k() {
        // The same check logged again (a resumed run) is the same fact…
        assert_eq!(checked("judge", 8, 0.6).event_id("r"), checked("judge", 8, 0.9).event_id("r"));
        // …another reward or another K is another.
        assert_ne!(checked("judge", 8, 0.6).event_id("r"), checked("meteor", 8, 0.6).event_id("r"));
        assert_ne!(checked("judge", 8, 0.6).event_id("r"), checked("judge", 4, 0.6).event_id("r"));
        let e = checked("judge", 8, 0.6);
        assert_eq!((e.kind(), e.kind().code(), e.kind().as_str()), (EventKind::RewardChecked, 17, "reward-checked"));
        assert!(e.is_step_boundary());
        assert_eq!(e.iteration(), None);
    }

    #[test]
    fn iteration_and_sample_accessors() {
        let a = sample_event(0, "x");
        assert_eq!(a.iteration(), Some(1));
        assert_eq!(a.kind(), EventKind::SampleGenerated);
        assert!(!a.is_step_boundary());
        assert_eq!(Event::RunFinished { wall_ms: 1 }.iteration(), None);
        assert!(Event::RunFinished { wall_ms: 1 }.is_step_boundary());
    }
}
