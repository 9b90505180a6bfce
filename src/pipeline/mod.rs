//! The concrete REST-PG pipeline: the wiring from a resolved configuration
//! to the actors.
//!
//! The `actors` crate runs Algorithm 1 of REST-PG against capability traits
//! and knows nothing of models, prompts or data. This module connects it to
//! the rest of the root package:
//!
//! - [`RunContext`]: the loaded data set, the prompt templates and the
//!   retrieval results, shared read-only (plain data behind an `Arc`) by
//!   every worker, and the [`actors::capability::Targets`] that turn input
//!   ids into training texts.
//! - [`run`] resolves a [`crate::config::RunConfig`] into an
//!   [`actors::Plan`], builds the worker factories of the
//!   [`crate::engine::tch`] engine, opens (or resumes) the run's event log
//!   and runs the coordinator; [`status`] reads where a run is.
//! - [`reproduce`]: `restpg replay --resample` and `--retrain` with the
//!   same engine.

mod context;
mod e_step_inputs;
pub mod experiment;
mod progress;
pub mod reproduce;
pub mod results;
mod run;

pub use context::{build_retriever, fit_prompt, RunContext};
pub use e_step_inputs::e_step_inputs;
pub use run::{run, status, RunOptions, RunSummary};
