//! Capability traits: what the actors need from the machine-learning side.
//!
//! The actors crate knows nothing of tch, tokenizers or prompt templates. The
//! root package implements these traits with the local tch policy, BM25 or
//! dense retrieval, the LLM judge and the trainer (its tch engine); another
//! engine would implement the same traits. Every trait is
//! synchronous and `Send` but not `Sync`: each worker thread builds its own
//! instance from a [`Factory`], so one model is owned by one thread and never
//! shared behind a lock.
//!
//! Data crossing this boundary is plain data with public fields. Prompts are
//! built on the root side from the input id (the implementation holds the data
//! set and the templates), so messages stay small and the log stores ids and
//! digests rather than whole prompts.

use events::{Digest, SampleId};
use std::sync::Arc;

/// An error from a capability. `retryable` tells the supervisor whether
/// re-issuing the same work to a rebuilt worker may succeed (a crashed or
/// poisoned worker) or not (bad input, a missing file).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}")]
pub struct CapabilityError {
    /// Human-readable description naming the input, file or record at fault.
    pub what: String,
    /// Whether the supervisor should rebuild the worker and re-issue the work.
    pub retryable: bool,
}

impl CapabilityError {
    /// A failure that a rebuilt worker may not repeat.
    pub fn retryable(what: impl Into<String>) -> Self {
        Self { what: what.into(), retryable: true }
    }
    /// A failure that re-issuing cannot fix (bad input, missing file).
    pub fn fatal(what: impl Into<String>) -> Self {
        Self { what: what.into(), retryable: false }
    }
}

/// Builds one capability instance; called once per worker thread and again
/// whenever a worker is restarted after a failure.
pub type Factory<T> = Arc<dyn Fn() -> Result<Box<T>, CapabilityError> + Send + Sync>;

/// A checkpoint as the log knows it: content hash and where the weights are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRef {
    /// blake3 content hash of the checkpoint's weights.
    pub hash: Digest,
    /// Directory (or file) holding the weights, loadable by the policy.
    pub path: String,
}

/// The retrieval result for one input: the top-k profile items.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieval {
    /// The example (input) id.
    pub input_id: String,
    /// Task name of the example (e.g. `email-completion`).
    pub task: String,
    /// Retriever name (e.g. `bm25`, `dense:all-MiniLM-L6-v2`).
    pub retriever: String,
    /// Indices into the example's profile, best first (at most k).
    pub item_indices: Vec<u32>,
    /// Retrieval score of each index (BM25 score or dot product).
    pub scores: Vec<f32>,
}

/// Retrieves profile items for inputs (REST-PG §3, step 1).
pub trait Retrieve: Send {
    /// Top-k profile items for each input id, in input order.
    ///
    /// # Errors
    /// An unknown input id or a failing encoder.
    fn retrieve(&mut self, input_ids: &[String], k: usize) -> Result<Vec<Retrieval>, CapabilityError>;
}

/// Which prompt template a generation request uses (the shared vocabulary's
/// type).
pub use events::PromptKind;

/// One generation to perform.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// Deterministic id; also names the input whose prompt is built.
    pub sample: SampleId,
    /// Per-sample seed (derived from the run seed and `sample`).
    pub seed: u64,
    /// Temperature (γ in the paper; 0 = greedy), nucleus mass, budget and
    /// repetition guards.
    pub sampling: events::Sampling,
    /// Which template to build the prompt with.
    pub prompt: PromptKind,
}

/// The result of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOutput {
    /// The request's id.
    pub sample: SampleId,
    /// blake3 of the exact prompt text given to the model.
    pub prompt_digest: Digest,
    /// Reasoning part, when the template has one and the output held the
    /// separator.
    pub reasoning: Option<String>,
    /// Final response (what the judge sees).
    pub response: String,
    /// Raw generated text (reasoning ⊕ separator ⊕ response as produced).
    pub raw: String,
    /// Prompt length in tokens.
    pub prompt_tokens: u32,
    /// Generated length in tokens.
    pub output_tokens: u32,
    /// Why generation ended.
    pub finish: events::FinishReason,
    /// The precision the model ran in.
    pub precision: events::Precision,
    /// The engine that drew it (logged with the sample, so replay can tell
    /// whether the same request and seed must give the same text again).
    pub engine: events::EngineInfo,
}

/// A policy that samples outputs (the E-step's sampler, and the reasoning
/// generator).
pub trait Generate: Send {
    /// Switches the weights to `checkpoint` (no-op when already loaded).
    ///
    /// # Errors
    /// A missing or corrupt checkpoint (not retryable).
    fn load(&mut self, checkpoint: &CheckpointRef) -> Result<(), CapabilityError>;
    /// Generates one output per request, in request order. The same request
    /// (checkpoint, prompt, seed, settings) gives the same text whatever else
    /// is in the batch.
    ///
    /// # Errors
    /// Unknown input ids (fatal) or a model failure (retryable).
    fn generate(&mut self, requests: &[SampleRequest]) -> Result<Vec<SampleOutput>, CapabilityError>;
}

/// One response to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeRequest {
    /// The sample's id (its input id names the input and expected output).
    pub sample: SampleId,
    /// The final response only: never the reasoning.
    pub response: String,
}

/// A reward with the judge's score distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The judged sample.
    pub sample: SampleId,
    /// R(x, y, ŷ) in the reward's range (the LLM judge: [0, 1]).
    pub reward: f32,
    /// The judge's probabilities for scores 0..=10 (empty for lexical rewards).
    pub distribution: Vec<f32>,
    /// The engine of the judge model; `None` for a reward without a model
    /// (a lexical reward such as rouge-l).
    pub engine: Option<events::EngineInfo>,
    /// The probability mass, in [0, 1], that the engine did not return
    /// among its top log-probabilities at the score positions (the largest
    /// over the positions read); `None` when the full distribution was read
    /// (tch) and for rewards without a model.
    pub unseen_mass: Option<f32>,
}

/// The reward model R(x, y, ŷ) (REST-PG §3.2).
pub trait Judge: Send {
    /// The reward's name as logged (e.g. `judge`, `rouge-l`).
    fn name(&self) -> String;
    /// Rewards for each request, in order.
    ///
    /// # Errors
    /// Unknown input ids (fatal) or a model failure (retryable).
    fn judge(&mut self, requests: &[JudgeRequest]) -> Result<Vec<Judgement>, CapabilityError>;
}

/// What a reward check found (logged as `RewardChecked`): how the reward
/// scores (a) each checked user's own expected output, (b) another user's
/// for the same task and (c) degenerate texts, as AUCs (Mann–Whitney U /
/// (n·m), ties 1/2) and group means.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardCheckSummary {
    /// The reward's name (as [`Judge::name`] gives it).
    pub reward_name: String,
    /// Examples checked.
    pub examples: u32,
    /// Texts scored in groups a, b and c.
    pub counts: [u32; 3],
    /// AUC of a over b (`None` when a group is empty).
    pub auc_own_other: Option<f64>,
    /// AUC of a over c.
    pub auc_own_degenerate: Option<f64>,
    /// AUC of b over c.
    pub auc_other_degenerate: Option<f64>,
    /// Mean reward of groups a, b and c.
    pub means: [Option<f64>; 3],
}

/// Checks the run's reward before the run trusts it (the first stage). The
/// implementation holds the data set and picks the examples.
pub trait CheckReward: Send {
    /// Scores up to `per_task` examples per task in the three groups of
    /// [`RewardCheckSummary`].
    ///
    /// # Errors
    /// A reward that does not build or fails (retryable), no examples
    /// (fatal).
    fn check(&mut self, per_task: usize) -> Result<RewardCheckSummary, CapabilityError>;
}

/// The target side of a training example. The actors do not hold the data
/// set, so SFT targets name the reference output y by input id and the root
/// side fills in its text.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainTarget {
    /// The expected output y of the input (plain SFT).
    Reference,
    /// The logged reasoning, the template's separator, then y
    /// (`D_reasoning`, REST-PG §3.1).
    ReasoningThenReference {
        /// The generator's reasoning for this input.
        reasoning: String,
    },
    /// A kept sample's raw output ŷ (reasoning ⊕ response as generated), for
    /// the M-step.
    Generated {
        /// The sample's raw text.
        raw: String,
    },
}

/// One training example of D_t (or of the SFT set).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainItem {
    /// Input id (names x and P on the root side).
    pub input_id: String,
    /// Template the prompt is built with.
    pub prompt: PromptKind,
    /// What the model learns to write after the prompt.
    pub target: TrainTarget,
    /// Loss weight: R for the M-step, 1 for SFT.
    pub weight: f32,
}

/// A training job: start weights, data, seed.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainJob {
    /// EM iteration (0 = the SFT stage).
    pub iteration: u32,
    /// Weights to start from (base for `fresh`, previous for `continue`).
    pub init: CheckpointRef,
    /// The training set, in canonical order.
    pub data: Vec<TrainItem>,
    /// Seed of the data order and any randomness in training.
    pub seed: u64,
}

/// One training progress report (logged as an event).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainProgressReport {
    /// Optimiser step (1-based).
    pub step: u64,
    /// Mean loss of that step.
    pub loss: f32,
    /// Learning rate used at that step.
    pub learning_rate: f32,
    /// Target tokens seen so far.
    pub tokens: u64,
}

/// Trains the policy (SFT and the M-step, REST-PG Algorithm 1 line 11).
pub trait Train: Send {
    /// Runs `job` and returns the saved checkpoint.
    ///
    /// # Errors
    /// Bad data (fatal) or a failure during training (retryable).
    fn train(
        &mut self,
        job: &TrainJob,
        progress: &mut dyn FnMut(TrainProgressReport),
    ) -> Result<CheckpointRef, CapabilityError>;
}

/// Scores of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSummary {
    /// (metric or `task/metric` name, value); includes the macro average.
    pub scores: Vec<(String, f64)>,
    /// Where the full report (per example) was written.
    pub report_path: String,
}

/// Evaluates a checkpoint on a split (REST-PG §4: temperature 0.1).
pub trait Evaluate: Send {
    /// Generates for `split` with `checkpoint` using `prompt`'s template and
    /// scores the responses.
    ///
    /// # Errors
    /// A missing checkpoint or split (fatal), a model failure (retryable).
    fn evaluate(
        &mut self,
        checkpoint: &CheckpointRef,
        split: events::Split,
        system: &str,
        prompt: PromptKind,
    ) -> Result<EvalSummary, CapabilityError>;
}

/// Rebuilds a generated sample's raw output from its logged parts. Added by
/// the actors crate: `SampleGenerated` logs the reasoning and the response
/// but not the raw text, and a resumed run must train on the same text as an
/// uninterrupted one, so the M-step's [`TrainTarget::Generated`] text is
/// always `join(reasoning, response)` of the logged sample, never the
/// in-memory [`SampleOutput::raw`].
pub trait Targets: Send + Sync {
    /// The raw output as the M-step trains on it: `response` alone when
    /// `reasoning` is `None`, otherwise reasoning ⊕ the template's separator
    /// ⊕ response (the inverse of the split [`Generate`] performs). Must be a
    /// pure function of its arguments.
    fn join(&self, reasoning: Option<&str>, response: &str) -> String;
}
