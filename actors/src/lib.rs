//! # restpg-actors: REST-PG's Algorithm 1 as supervised actix actors
//!
//! This crate runs the pipeline of REST-PG (Salemi et al. 2025, Algorithm 1)
//! and its baselines: retrieve profile items, generate reasoning data, SFT,
//! then T rounds of E-step (sample m outputs per train input), judge, filter,
//! seal D_t, M-step (reward-weighted training), and evaluation. It knows
//! nothing of tch, tokenizers or prompt templates: the machine-learning work
//! is behind the capability traits of [`capability`], which the root package
//! implements with its tch engine (`src/engine/tch`); any other engine
//! implements the same traits.
//!
//! The main types:
//!
//! - [`Plan`] is every decided value of a run (method, seed, splits, m, T,
//!   τ, the cap, fresh/continue, sampling settings, pool sizes, the
//!   in-flight bound) as plain data; [`Capabilities`] holds one [`Factory`]
//!   per capability. [`run_pipeline`] runs a plan on an [`EventSink`] (the
//!   sled [`store::EventLog`]) from plain code and returns a
//!   [`RunOutcome`]: the final checkpoint, each D_t's digest and size, every
//!   evaluation.
//! - The [`Coordinator`] is the only async actor with logic: it folds the
//!   log into a [`resume::LoggedRun`], decides what is missing, sends
//!   batches, and appends each result. [`workers::Worker`] runs one
//!   capability in a `SyncArbiter` thread (retriever, sampler pool, reasoning
//!   generator pool, judge pool, trainer, evaluator). [`filter::decide`] is
//!   pure logic. [`log::LogWriter`] is the log's single writer.
//!
//! Why it is shaped this way:
//!
//! - **A result counts once it is in the log.** The coordinator appends
//!   every sample, reward and decision as it arrives and only then counts
//!   it, and flushes at each step boundary (end of retrieval, of the E-step,
//!   of judging, the seal, every checkpoint). Events have deterministic ids
//!   ([`events::Event::event_id`]) and the store ignores an id it already
//!   holds, so re-appending after a crash is harmless.
//! - **Resume is the normal path.** Every run starts by reading its log:
//!   inputs already retrieved, reasoning already generated, samples already
//!   logged (by [`events::SampleId`]), rewards already assigned, a sealed
//!   D_t and a logged checkpoint are all reused, never redone. Seeds derive
//!   from the run seed and the sample id ([`events::SampleId::seed`]), so
//!   the samples a resumed run still has to draw are the ones the
//!   interrupted run would have drawn, and D_t's digest comes out the same.
//!   The M-step trains on text rebuilt from the logged reasoning and
//!   response ([`capability::Targets::join`]), never on in-memory state a
//!   crash would lose.
//! - **Heavy work off the async arbiter, one model per thread.** Sampling,
//!   judging and training run in `SyncArbiter` threads that each build their
//!   own capability from a factory; nothing is shared behind a lock. Pools
//!   are started per stage and dropped after it, so the sampler's model is
//!   freed before the trainer loads its own.
//! - **Bounded work in flight.** At most [`Plan::max_in_flight`] batches are
//!   outstanding to a pool; the rest wait in the coordinator, not in a
//!   mailbox, so a slow pool never makes the coordinator queue a whole
//!   E-step.
//! - **Supervision that loses nothing.** A panic inside a `SyncArbiter`
//!   handler ends its thread and silently drops the message in flight, and
//!   actix's `Supervisor` does not apply to sync actors. So every capability
//!   call runs under `catch_unwind`; a panic or a retryable
//!   [`capability::CapabilityError`] drops the capability and stops the
//!   actor, which actix rebuilds in the same thread; the coordinator
//!   re-issues the batch, up to [`Plan::max_attempts`] deliveries, then fails
//!   the run with `RunFailed` naming the stage, the batch and the error. A
//!   fatal error fails the run at once. [`FaultPlan`] (test-only) makes a
//!   sampler fail once, or stops the run mid-E-step, to test exactly this.
//! - **Async actors only route.** The coordinator's work is waiting: on
//!   workers, on the log writer. It never touches a tensor.
//!
//! [`Factory`]: capability::Factory
//! [`EventSink`]: log::EventSink
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
    run, run_pipeline, Capabilities, Coordinator, Evaluation, IterationOutcome, RunError, RunOutcome, Start,
};
/// The pure rules shared with replay, defined in [`events::rules`].
pub use events::{reasoning_sample, response_digest, train_seed};
pub use plan::{FaultPlan, InitMode, Method, MethodParseError, Plan, PlanError, Sampling};
