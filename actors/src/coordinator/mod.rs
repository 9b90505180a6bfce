//! The [`Coordinator`]: REST-PG's Algorithm 1 as an async actor that routes
//! work to the sync worker pools and results to the [`LogWriter`].
//!
//! It never computes anything heavy itself: it decides what is missing (from
//! the log folded into a [`LoggedRun`]), sends batches, and appends each
//! result before counting it. Stage by stage:
//!
//! ```text
//! reward check → retrieve → [reasoning] → SFT (θ¹) → eval(val)
//!   → for t = 1..T: E-step → judge → filter → seal D_t → M-step → eval(val)
//!   → eval(test) → RunFinished
//! ```
//!
//! It is also the log's only writer: a new run's opening records
//! (`RunStarted` and the base checkpoint θ⁰, carried by the [`Plan`]) are
//! appended here, before the first stage.
//!
//! One file per stage (`reward_check`, `retrieve`, `reasoning`, `sft`,
//! `e_step`, `judge`, `seal`, `m_step`, `evaluate`); every batched stage talks to its pool
//! through the one fan-out in `fan_out`, every single job (training,
//! evaluation) through the one single-job helper beside it.

mod e_step;
mod evaluate;
mod fan_out;
mod judge;
mod m_step;
mod outcome;
mod reasoning;
mod retrieve;
mod reward_check;
mod seal;
mod sft;

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use events::{Event, Role, Split, Stage};

/// The pure rules shared with replay, defined in [`events::rules`].
pub use events::{reasoning_sample, response_digest, train_seed};
pub use outcome::{Evaluation, IterationOutcome, RunError, RunOutcome};

use crate::capability::{CheckReward, Evaluate, Factory, Generate, Judge, Retrieve, Targets, Train};
use crate::log::{Append, Close, EventSink, Flush, LoadRun, LogWriter, Observer};
use crate::plan::Plan;
use crate::resume::LoggedRun;
use crate::workers::FaultSwitch;

/// The capabilities a run needs, supplied by the root package. Each
/// [`Factory`] is called in the worker thread that will own the instance.
#[derive(Clone)]
pub struct Capabilities {
    /// Builds a retriever (one worker).
    pub retriever: Factory<dyn Retrieve>,
    /// Builds the policy sampler (one per sampler worker).
    pub policy: Factory<dyn Generate>,
    /// Builds the reasoning generator (one per sampler worker, only for
    /// `sft-reasoning` and `rest-pg`, only while reasoning is generated).
    pub generator: Factory<dyn Generate>,
    /// Builds the judge (one per judge worker).
    pub judge: Factory<dyn Judge>,
    /// Builds the reward check (one worker, only for the first stage).
    pub reward_check: Factory<dyn CheckReward>,
    /// Builds the trainer (one worker).
    pub trainer: Factory<dyn Train>,
    /// Builds the evaluator (one worker).
    pub evaluator: Factory<dyn Evaluate>,
    /// Rebuilds a logged sample's raw output for the M-step.
    pub targets: Arc<dyn Targets>,
    /// Called for every newly appended event (progress bars); optional.
    pub observer: Option<Observer>,
}

/// Runs a plan: send it [`Start`] once. See the module documentation.
pub struct Coordinator {
    pending: Option<(Plan, Box<dyn EventSink>, Capabilities)>,
}

impl Coordinator {
    /// A coordinator for `plan` on `log` (empty, or holding an interrupted
    /// run with the same run id, which is then resumed).
    ///
    /// # Errors
    /// [`RunError::Plan`] when [`Plan::validate`] refuses the plan.
    pub fn new(plan: Plan, log: impl EventSink, capabilities: Capabilities) -> Result<Coordinator, RunError> {
        plan.validate()?;
        Ok(Coordinator { pending: Some((plan, Box::new(log), capabilities)) })
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;
}

/// Runs the coordinator's plan to the end (or to its first fatal error). The
/// log is flushed and closed before the reply.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<RunOutcome, RunError>")]
pub struct Start;

impl Handler<Start> for Coordinator {
    type Result = ResponseFuture<Result<RunOutcome, RunError>>;

    fn handle(&mut self, _: Start, _: &mut Context<Self>) -> Self::Result {
        let Some((plan, log, caps)) = self.pending.take() else {
            return Box::pin(async { Err(RunError::AlreadyStarted) });
        };
        let writer = LogWriter::start(log, caps.observer.clone());
        Box::pin(Run::new(plan, caps, writer).execute())
    }
}

/// Runs `plan` inside the current actix system (call from within
/// `actix::System`); see [`run_pipeline`] for the blocking form.
///
/// # Errors
/// [`RunError`]: the plan is invalid, a stage failed (logged as
/// `RunFailed`), or the log failed.
pub async fn run(plan: Plan, log: impl EventSink, capabilities: Capabilities) -> Result<RunOutcome, RunError> {
    let addr = Coordinator::new(plan, log, capabilities)?.start();
    addr.send(Start).await.map_err(|e| RunError::Mailbox { stage: "run".into(), what: format!("coordinator: {e}") })?
}

/// Runs `plan` to the end in a fresh actix system on the calling thread and
/// returns when the log is flushed and closed. Call it from plain
/// (non-async) code, e.g. `restpg train`; it must not run inside a tokio
/// runtime.
///
/// # Errors
/// As [`run`].
pub fn run_pipeline(plan: Plan, log: impl EventSink, capabilities: Capabilities) -> Result<RunOutcome, RunError> {
    let system = System::new();
    let result = system.block_on(run(plan, log, capabilities));
    System::current().stop();
    result
}

/// One run of a plan: what the coordinator's [`Start`] future owns.
struct Run {
    plan: Arc<Plan>,
    caps: Capabilities,
    log: Addr<LogWriter>,
    state: LoggedRun,
    fault: Option<Arc<FaultSwitch>>,
    generated: usize,
    reissued: usize,
    peak_in_flight: usize,
    started: Instant,
}

/// A lost message to an actor, as the error of `stage`.
fn mailbox(stage: &str, what: &str, e: MailboxError) -> RunError {
    RunError::Mailbox { stage: stage.to_owned(), what: format!("{what}: {e}") }
}

impl Run {
    fn new(plan: Plan, caps: Capabilities, log: Addr<LogWriter>) -> Run {
        let fault = plan.fault.map(FaultSwitch::new);
        Run {
            plan: Arc::new(plan),
            caps,
            log,
            state: LoggedRun::default(),
            fault,
            generated: 0,
            reissued: 0,
            peak_in_flight: 0,
            started: Instant::now(),
        }
    }

    /// Runs the body, logs `RunFailed` for any error but an injected crash,
    /// and closes the log.
    async fn execute(mut self) -> Result<RunOutcome, RunError> {
        let result = self.body().await;
        if let Err(e) = &result {
            match e {
                RunError::InjectedCrash(_) => {}
                e => {
                    tracing::error!(error = %e, "run failed");
                    // Best effort: the original error is what the caller sees.
                    let _ = self.append(vec![Event::RunFailed { reason: e.to_string() }]).await;
                }
            }
        }
        let closed = match self.log.send(Close).await {
            Ok(r) => r.map_err(RunError::from),
            Err(e) => Err(mailbox("close", "log writer", e)),
        };
        match (result, closed) {
            (Ok(outcome), Ok(())) => Ok(outcome),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), _) => Err(e),
        }
    }

    /// Appends `events` and folds them into the state once the writer has
    /// acknowledged them. Counts the `SampleGenerated` among them, and stops
    /// the run when the test-only fault switch says so.
    async fn append(&mut self, events: Vec<Event>) -> Result<(), RunError> {
        if events.is_empty() {
            return Ok(());
        }
        self.log.send(Append(events.clone())).await.map_err(|e| mailbox("append", "log writer", e))??;
        for e in &events {
            self.state.apply(e);
        }
        let samples = events.iter().filter(|e| matches!(e, Event::SampleGenerated { .. })).count();
        if samples > 0 {
            self.generated += samples;
            if let Some(limit) = self.plan.fault.and_then(|f| f.crash_after_samples) {
                if self.generated >= limit {
                    return Err(RunError::InjectedCrash(self.generated));
                }
            }
        }
        Ok(())
    }

    /// Appends the records that open the run ([`Plan::run_started`] and the
    /// base checkpoint θ⁰) unless the log already holds them: a resumed run
    /// keeps the ones it started with.
    async fn open(&mut self) -> Result<(), RunError> {
        let Some(started) = self.plan.run_started.clone() else {
            return Ok(());
        };
        let mut opening = Vec::with_capacity(2);
        if !self.state.started {
            opening.push(started);
        }
        if !self.state.checkpoints.contains_key(&(0, Role::Base)) {
            // θ⁰ is logged like every checkpoint, so replay finds the
            // M-step's starting weights (`init = fresh`) in the log alone.
            let base = &self.plan.base;
            opening.push(Event::CheckpointSaved {
                iteration: 0,
                step: 0,
                role: Role::Base,
                hash: base.hash,
                path: base.path.clone(),
                validation_score: None,
            });
        }
        if opening.is_empty() {
            return Ok(());
        }
        self.append(opening).await?;
        self.flush().await
    }

    /// Makes every appended event durable.
    async fn flush(&mut self) -> Result<(), RunError> {
        self.log.send(Flush).await.map_err(|e| mailbox("flush", "log writer", e))??;
        Ok(())
    }

    /// Logs the start of `stage` and returns the time it started.
    async fn stage_started(&mut self, iteration: u32, stage: Stage) -> Result<Instant, RunError> {
        tracing::info!(iteration, stage = stage.as_str(), "stage started");
        self.append(vec![Event::StageStarted { iteration, stage }]).await?;
        Ok(Instant::now())
    }

    /// Logs the end of `stage` with its wall time, and flushes.
    async fn stage_finished(&mut self, iteration: u32, stage: Stage, since: Instant) -> Result<(), RunError> {
        let wall_ms = since.elapsed().as_millis() as u64;
        tracing::info!(iteration, stage = stage.as_str(), wall_ms, "stage finished");
        self.append(vec![Event::StageFinished { iteration, stage, wall_ms }]).await?;
        self.flush().await
    }

    /// Algorithm 1, stage by stage, from what the log already holds.
    async fn body(&mut self) -> Result<RunOutcome, RunError> {
        let plan = Arc::clone(&self.plan);
        self.state = self
            .log
            .send(LoadRun { run_id: plan.run_id.clone() })
            .await
            .map_err(|e| mailbox("load", "log writer", e))??;
        let resumed = self.state.events > 0;
        if self.state.has_progress() {
            tracing::info!(events = self.state.events, "resuming from the log");
        } else {
            tracing::info!(run_id = %plan.run_id, "starting a new run");
        }
        self.open().await?;

        self.reward_check().await?;
        self.retrieve().await?;
        if plan.method.uses_reasoning() {
            self.reasoning().await?;
        }
        let sft = self.sft().await?;
        let mut evaluations = Vec::new();
        if let Some(e) = self.evaluate(0, Split::Validation, &sft).await? {
            evaluations.push(e);
        }
        let test_each = plan.test_every_iteration && plan.em_iterations() > 0;
        if test_each {
            if let Some(e) = self.evaluate(0, Split::Test, &sft).await? {
                evaluations.push(e);
            }
        }

        let mut current = sft.clone();
        let mut iterations = Vec::new();
        for t in 1..=plan.em_iterations() {
            if !self.state.sealed.contains_key(&t) {
                self.e_step(t, &current).await?;
                let reward_name = self.judge(t).await?;
                self.filter_and_seal(t, &reward_name).await?;
            }
            let (entries, samples) = self.sealed_set(t)?;
            let (count, digest) = self.state.sealed[&t];
            let next = self.m_step(t, &current, &entries).await?;
            if let Some(e) = self.evaluate(t, Split::Validation, &next).await? {
                evaluations.push(e);
            }
            if test_each {
                if let Some(e) = self.evaluate(t, Split::Test, &next).await? {
                    evaluations.push(e);
                }
            }
            self.append(vec![Event::IterationFinished { iteration: t }]).await?;
            self.flush().await?;
            iterations.push(IterationOutcome { iteration: t, samples, kept: count, digest, checkpoint: next.clone() });
            current = next;
        }

        if !test_each {
            if let Some(e) = self.evaluate(plan.em_iterations(), Split::Test, &current).await? {
                evaluations.push(e);
            }
        }
        self.append(vec![Event::RunFinished { wall_ms: self.started.elapsed().as_millis() as u64 }]).await?;
        self.flush().await?;
        Ok(RunOutcome {
            final_checkpoint: current,
            sft_checkpoint: sft,
            iterations,
            evaluations,
            resumed,
            generated_samples: self.generated,
            reissued_batches: self.reissued,
            peak_in_flight: self.peak_in_flight,
        })
    }
}
