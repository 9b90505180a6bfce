//! The concrete REST-PG pipeline: the tch capabilities behind the actors.
//!
//! The `actors` crate runs Algorithm 1 of REST-PG against capability traits
//! and knows nothing of models, prompts or data. This module supplies them:
//!
//! - [`RunContext`]: the loaded data set, the prompt templates and the
//!   retrieval results, shared read-only (plain data behind an `Arc`) by
//!   every worker, and the [`actors::capability::Targets`] that turn input
//!   ids into training texts.
//! - [`TchPolicy`]: the policy sampler and reasoning generator (one
//!   [`LanguageModel`] per worker thread, built by a factory in that thread).
//! - [`TchJudge`]: the reward R(x, y, ŷ) on the final response only.
//! - [`TchTrainer`]: SFT and the reward-weighted M-step, saving each
//!   checkpoint into the run's content-addressed blob store.
//! - [`TchEvaluator`]: generation at temperature 0.1 on a split, scored by
//!   the judge and LongLaMP's lexical metrics.
//!
//! [`run`] resolves a [`RunConfig`] into an [`actors::Plan`], opens (or
//! resumes) the run's event log and runs the coordinator.

mod caps;
mod context;
mod progress;
pub mod reproduce;
mod run;

pub use caps::{evaluate_checkpoint, TchEvaluator, TchJudge, TchPolicy, TchTrainer};
pub use context::RunContext;
pub use run::{run, status, RunOptions, RunSummary};

use crate::lm::LanguageModel;
