//! placeholder essay (written below)
#![deny(missing_docs)]

pub mod capability;
mod coordinator;
mod dispatch;
pub mod filter;
pub mod log;
pub mod plan;
pub mod resume;
pub mod workers;

pub use coordinator::{
    reasoning_sample, response_digest, run, run_pipeline, train_seed, Capabilities, Coordinator, Evaluation,
    IterationOutcome, RunError, RunOutcome, Start,
};
pub use plan::{FaultPlan, GenerationSettings, InitMode, Method, Plan, PlanError};
