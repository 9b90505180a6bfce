//! # restpg-replay: a run's log folded back into state
//!
//! A restpg run writes every fact to its event log: each sample with its
//! seed, each reward with the judge's distribution, each filter decision with
//! its reason, the digest of each sealed training set D_t, each training step
//! and checkpoint. This crate reads those facts back and answers, from the
//! log alone, what D_t was, what was left out of it and why, and whether the
//! log still agrees with itself.
//!
//! The main types:
//!
//! - [`Replay`] folds records into a [`RunState`]. [`fold`] and
//!   [`Replay::fold_log`] read a [`store::LogReader`] (several threads decode
//!   contiguous ranges of a long local log; records are still applied in
//!   order); [`Replay::fold`] takes any iterator of records. It checks the
//!   chain as it goes (contiguous sequence numbers, each record naming its
//!   predecessor's hash, one run id) and stops at the first record that
//!   breaks it, or that the store cannot decode, with a [`ReplayError`]
//!   naming the sequence number.
//! - [`RunState`] is plain data: per iteration an [`IterationState`] with
//!   every sample's [`SampleRecord`] (generation, rewards, filter decision)
//!   in canonical order and the seal; the training curves, checkpoints and
//!   evaluations; and [`Anomaly`] entries for records that repeat a fact.
//!   [`RunState::apply`] is the whole fold: pure, one record at a time, and
//!   unable to fail.
//! - [`RunState::rebuild_dataset`] gives D_t as [`events::DatasetEntry`]
//!   values and their digest; [`RunState::verify_iteration`] compares that
//!   digest with the seal and checks the filter's rules against its own
//!   records, returning every [`Violation`] it finds.
//! - [`audit`] turns an iteration into rows and per-task summaries;
//!   [`RunState::export_jsonl`] writes D_t for other trainers;
//!   [`RunState::retrain_spec`] and [`RunState::resample_spec`] gather what
//!   re-running an M-step or redrawing samples needs, and
//!   [`compare_loss_curves`] says where a re-run parts from the log.
//!
//! Why it is shaped this way:
//!
//! - **Apply cannot fail; verify judges.** Following the event-sourcing
//!   habit, folding only records what the log says. A contradiction (a fact
//!   logged twice, a decision whose reward disagrees with the reward
//!   assigned) is data for the verifier and the audit, not a reason to stop
//!   reading, so a log that does not verify can still be audited to find out
//!   why. Only a record that cannot be read, or that breaks the chain, stops
//!   a replay: after it nothing can be trusted to be in order.
//! - **Two kinds of tampering, two defences.** A byte changed on disk fails
//!   the record's hash in the store. A log rewritten with a valid chain
//!   passes every hash; it is caught here because the facts no longer agree:
//!   the rebuilt digest differs from the seal, or a filter decision's reward
//!   differs from the reward assigned, and the violation names both records
//!   by sequence number.
//! - **The seal covers responses; the completion rule is a parameter.**
//!   A D_t entry's `response_digest` is blake3 of the logged response, as the
//!   coordinator seals it, so verification needs nothing but the log. The
//!   text the M-step trains on (reasoning ⊕ separator ⊕ response) depends on
//!   the root package's templates, so export and the retrain spec take it as
//!   a [`Completion`] value rather than a constant kept in step by hand.
//! - **Scoped folds for big logs.** [`Replay::only_iteration`] keeps one
//!   iteration's samples and [`Replay::without_text`] drops texts once their
//!   digests are computed, so verifying one D_t of a million-sample log
//!   needs memory for one iteration's ids and digests, not for every text.
//! - **No model here.** Re-training and re-sampling need tch; this crate
//!   stops at plain-data specs so that it stays fast to build and test, and
//!   the root package wires the model in.
#![deny(missing_docs)]

pub mod audit;
mod completion;
mod export;
mod fold;
mod specs;
mod state;
pub mod synthetic;
mod verify;

pub use completion::Completion;
pub use export::{ExportError, ExportRecord, PromptBuilder};
pub use fold::{fold, Replay, ReplayError};
pub use specs::{
    compare_loss_curves, compare_loss_curves_within, ResampleItem, ResampleSpec, RetrainItem, RetrainSpec, SpecError,
    TextMismatch,
};
pub use state::{
    Anomaly, CheckpointRecord, EvaluationRecord, FilterRecord, Generated, IterationState, ProgressPoint,
    RetrievalRecord, RewardCheckRecord, RewardRecord, RunEnd, RunRecord, RunState, SampleRecord, SampleText,
    SealRecord, StageRecord,
};
pub use verify::{CapSource, RebuildError, VerifiedIteration, VerifyError, Violation};
