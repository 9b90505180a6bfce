//! The synchronous workers: retriever, sampler, judge, trainer, evaluator.
//!
//! Each is a [`Worker`] running in a [`SyncArbiter`] thread that builds its
//! own capability from a [`Factory`] when it starts, so one model is owned
//! by one thread. Every capability call runs under
//! [`catch_unwind`]: a panic in a `SyncArbiter` handler would otherwise end
//! the thread and drop the message in flight without a reply. A panic or a
//! retryable error drops the capability and stops the actor, which makes
//! actix build a fresh [`Worker`] in the same thread (calling the factory
//! again); the coordinator re-issues the batch.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use events::Event;

use crate::capability::{
    CapabilityError, CheckReward, CheckpointRef, EvalSummary, Evaluate, Factory, Generate, Judge, JudgeRequest,
    Judgement, PromptKind, Retrieval, Retrieve, RewardCheckSummary, SampleOutput, SampleRequest, Train, TrainJob,
};
use crate::log::Append;
use crate::plan::FaultPlan;

/// A failed piece of work, as a worker reports it to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{role} worker: {what}{}", if *.panicked { " (panicked)" } else { "" })]
pub struct WorkerError {
    /// Which kind of worker (`sampler`, `judge`, …).
    pub role: &'static str,
    /// What went wrong, naming the input or file at fault.
    pub what: String,
    /// Whether re-issuing the work to a rebuilt worker may succeed.
    pub retryable: bool,
    /// Whether the capability panicked (always retryable).
    pub panicked: bool,
}

impl WorkerError {
    fn capability(role: &'static str, e: CapabilityError) -> Self {
        WorkerError { role, what: e.what, retryable: e.retryable, panicked: false }
    }
    fn panic(role: &'static str, payload: Box<dyn Any + Send>) -> Self {
        let what = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-text payload".to_owned()
        };
        WorkerError { role, what, retryable: true, panicked: true }
    }
    /// A capability that broke its contract (wrong count or ids): a bug,
    /// not retried.
    fn contract(role: &'static str, what: String) -> Self {
        WorkerError { role, what, retryable: false, panicked: false }
    }
}

/// Shared state of the test-only fault switch across a sampler pool.
#[derive(Debug)]
pub(crate) struct FaultSwitch {
    plan: FaultPlan,
    batches: AtomicUsize,
    fired: AtomicBool,
}

impl FaultSwitch {
    pub(crate) fn new(plan: FaultPlan) -> Arc<Self> {
        Arc::new(FaultSwitch { plan, batches: AtomicUsize::new(0), fired: AtomicBool::new(false) })
    }

    /// Counts one batch; fails it when it is the planned one (once).
    fn on_batch(&self) -> Result<(), CapabilityError> {
        let n = self.batches.fetch_add(1, Ordering::SeqCst);
        if n == self.plan.sampler_fail_once_at_batch && !self.fired.swap(true, Ordering::SeqCst) {
            if let Some(ms) = self.plan.hang_ms {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                return Ok(());
            }
            if self.plan.panic {
                panic!("injected sampler panic at batch {n} (test-only fault switch)");
            }
            return Err(CapabilityError::retryable(format!(
                "injected sampler failure at batch {n} (test-only fault switch)"
            )));
        }
        Ok(())
    }
}

/// A supervised synchronous worker around one capability `T` (`dyn
/// Generate`, `dyn Judge`, …). See the module documentation.
pub struct Worker<T: ?Sized> {
    role: &'static str,
    factory: Factory<T>,
    inner: Option<Box<T>>,
    fault: Option<Arc<FaultSwitch>>,
    progress: Option<Recipient<Append>>,
}

impl<T: ?Sized + 'static> Worker<T> {
    fn new(role: &'static str, factory: Factory<T>) -> Self {
        Worker { role, factory, inner: None, fault: None, progress: None }
    }

    /// Runs `f` on the capability (building it first if needed), catching
    /// panics. A panic or a retryable error restarts the worker.
    fn call<R>(
        &mut self,
        ctx: &mut SyncContext<Self>,
        f: impl FnOnce(&mut T, Option<&FaultSwitch>, Option<&Recipient<Append>>) -> Result<R, CapabilityError>,
    ) -> Result<R, WorkerError> {
        let role = self.role;
        let inner = match self.inner.take() {
            Some(inner) => inner,
            None => {
                let factory = Arc::clone(&self.factory);
                match catch_unwind(AssertUnwindSafe(|| factory())) {
                    Ok(Ok(inner)) => inner,
                    Ok(Err(e)) => {
                        tracing::warn!(role, error = %e.what, "building the worker's capability failed");
                        return Err(WorkerError::capability(
                            role,
                            CapabilityError { what: format!("building: {}", e.what), ..e },
                        ));
                    }
                    Err(p) => {
                        ctx.stop();
                        return Err(WorkerError::panic(role, p));
                    }
                }
            }
        };
        let mut inner = inner;
        let fault = self.fault.as_deref();
        let progress = self.progress.as_ref();
        match catch_unwind(AssertUnwindSafe(|| f(&mut inner, fault, progress))) {
            Ok(Ok(r)) => {
                self.inner = Some(inner);
                Ok(r)
            }
            Ok(Err(e)) => {
                if e.retryable {
                    tracing::warn!(role, error = %e.what, "retryable failure; restarting the worker");
                    drop(inner);
                    ctx.stop();
                } else {
                    self.inner = Some(inner);
                }
                Err(WorkerError::capability(role, e))
            }
            Err(p) => {
                let e = WorkerError::panic(role, p);
                tracing::warn!(role, error = %e.what, "worker panicked; restarting it");
                // The capability may be half-updated: never reuse it.
                drop(inner);
                ctx.stop();
                Err(e)
            }
        }
    }
}

impl<T: ?Sized + 'static> Actor for Worker<T> {
    type Context = SyncContext<Self>;

    /// Builds the capability as soon as the worker starts (and again when
    /// actix restarts it), so models load in parallel before work arrives.
    /// A failure here is only logged: the next message builds again and
    /// reports the error to the coordinator.
    fn started(&mut self, _: &mut SyncContext<Self>) {
        let factory = Arc::clone(&self.factory);
        match catch_unwind(AssertUnwindSafe(|| factory())) {
            Ok(Ok(inner)) => self.inner = Some(inner),
            Ok(Err(e)) => tracing::warn!(role = self.role, error = %e.what, "building the worker's capability failed"),
            Err(_) => tracing::warn!(role = self.role, "building the worker's capability panicked"),
        }
    }
}

/// Starts `n` sync workers for capability `T`; each thread builds its own
/// instance from `factory`.
pub(crate) fn start_pool<T: ?Sized + 'static>(
    role: &'static str,
    n: usize,
    factory: Factory<T>,
    fault: Option<Arc<FaultSwitch>>,
    progress: Option<Recipient<Append>>,
) -> Addr<Worker<T>>
where
    Worker<T>: Actor<Context = SyncContext<Worker<T>>>,
{
    SyncArbiter::start(n, move || {
        let mut w = Worker::new(role, Arc::clone(&factory));
        w.fault = fault.clone();
        w.progress = progress.clone();
        w
    })
}

/// Retrieves the top-k profile items for a batch of inputs.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Retrieval>, WorkerError>")]
pub struct RetrieveBatch {
    /// Input ids, in order.
    pub input_ids: Vec<String>,
    /// Items per input.
    pub k: usize,
}

impl Handler<RetrieveBatch> for Worker<dyn Retrieve> {
    type Result = Result<Vec<Retrieval>, WorkerError>;

    fn handle(&mut self, msg: RetrieveBatch, ctx: &mut SyncContext<Self>) -> Self::Result {
        let out = self.call(ctx, |r, _, _| r.retrieve(&msg.input_ids, msg.k))?;
        let ids: Vec<&String> = out.iter().map(|r| &r.input_id).collect();
        if ids != msg.input_ids.iter().collect::<Vec<_>>() {
            return Err(WorkerError::contract(
                self.role,
                format!(
                    "asked for {} inputs {:?}…, got {} results for other ids",
                    msg.input_ids.len(),
                    msg.input_ids.first(),
                    out.len()
                ),
            ));
        }
        Ok(out)
    }
}

/// Generates one output per request with the weights of `checkpoint`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<SampleOutput>, WorkerError>")]
pub struct GenerateBatch {
    /// Weights to sample from.
    pub checkpoint: CheckpointRef,
    /// The requests, in order.
    pub requests: Vec<SampleRequest>,
}

impl Handler<GenerateBatch> for Worker<dyn Generate> {
    type Result = Result<Vec<SampleOutput>, WorkerError>;

    fn handle(&mut self, msg: GenerateBatch, ctx: &mut SyncContext<Self>) -> Self::Result {
        let out = self.call(ctx, |g, fault, _| {
            if let Some(f) = fault {
                f.on_batch()?;
            }
            g.load(&msg.checkpoint)?;
            g.generate(&msg.requests)
        })?;
        let same = out.len() == msg.requests.len() && out.iter().zip(&msg.requests).all(|(o, r)| o.sample == r.sample);
        if !same {
            return Err(WorkerError::contract(
                self.role,
                format!("asked for {} samples, got {} (or other sample ids / order)", msg.requests.len(), out.len()),
            ));
        }
        Ok(out)
    }
}

/// Rewards a batch of responses.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Judgement>, WorkerError>")]
pub struct JudgeBatch {
    /// The responses, in order.
    pub requests: Vec<JudgeRequest>,
}

impl Handler<JudgeBatch> for Worker<dyn Judge> {
    type Result = Result<Vec<Judgement>, WorkerError>;

    fn handle(&mut self, msg: JudgeBatch, ctx: &mut SyncContext<Self>) -> Self::Result {
        let out = self.call(ctx, |j, _, _| j.judge(&msg.requests))?;
        let same = out.len() == msg.requests.len() && out.iter().zip(&msg.requests).all(|(o, r)| o.sample == r.sample);
        if !same {
            return Err(WorkerError::contract(
                self.role,
                format!(
                    "asked to judge {} samples, got {} (or other sample ids / order)",
                    msg.requests.len(),
                    out.len()
                ),
            ));
        }
        if let Some(bad) = out.iter().find(|j| !j.reward.is_finite()) {
            return Err(WorkerError::contract(
                self.role,
                format!("sample {}: reward {} is not finite", bad.sample, bad.reward),
            ));
        }
        Ok(out)
    }
}

/// Asks a judge worker for its reward's name (logged with every reward).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<String, WorkerError>")]
pub struct JudgeName;

impl Handler<JudgeName> for Worker<dyn Judge> {
    type Result = Result<String, WorkerError>;

    fn handle(&mut self, _: JudgeName, ctx: &mut SyncContext<Self>) -> Self::Result {
        self.call(ctx, |j, _, _| Ok(j.name()))
    }
}

/// Runs one training job (SFT or an M-step).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Trained, WorkerError>")]
pub struct TrainRun {
    /// The job.
    pub job: TrainJob,
}

/// A finished training job.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The saved weights.
    pub checkpoint: CheckpointRef,
    /// The last optimiser step reported (0 when none was).
    pub steps: u64,
}

impl Handler<TrainRun> for Worker<dyn Train> {
    type Result = Result<Trained, WorkerError>;

    fn handle(&mut self, msg: TrainRun, ctx: &mut SyncContext<Self>) -> Self::Result {
        let iteration = msg.job.iteration;
        self.call(ctx, |t, _, progress| {
            let mut steps = 0;
            let checkpoint = t.train(&msg.job, &mut |r| {
                steps = steps.max(r.step);
                if let Some(log) = progress {
                    // Progress figures are informational: the checkpoint is
                    // what counts, and it is appended (and flushed) by the
                    // coordinator after this reply. Same mailbox, so order
                    // is kept.
                    log.do_send(Append(vec![Event::TrainingProgress {
                        iteration,
                        step: r.step,
                        loss: r.loss,
                        learning_rate: r.learning_rate,
                        tokens: r.tokens,
                    }]));
                }
            })?;
            Ok(Trained { checkpoint, steps })
        })
    }
}

/// Evaluates a checkpoint on a split.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<EvalSummary, WorkerError>")]
pub struct EvaluateRun {
    /// Weights to evaluate.
    pub checkpoint: CheckpointRef,
    /// The split (validation or test).
    pub split: events::Split,
    /// The system's name (the method).
    pub system: String,
    /// The template to generate with.
    pub prompt: PromptKind,
}

impl Handler<EvaluateRun> for Worker<dyn Evaluate> {
    type Result = Result<EvalSummary, WorkerError>;

    fn handle(&mut self, msg: EvaluateRun, ctx: &mut SyncContext<Self>) -> Self::Result {
        self.call(ctx, |e, _, _| e.evaluate(&msg.checkpoint, msg.split, &msg.system, msg.prompt))
    }
}

/// Runs the reward check with K examples per task at most.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<RewardCheckSummary, WorkerError>")]
pub struct RewardCheckRun {
    /// K.
    pub per_task: usize,
}

impl Handler<RewardCheckRun> for Worker<dyn CheckReward> {
    type Result = Result<RewardCheckSummary, WorkerError>;

    fn handle(&mut self, msg: RewardCheckRun, ctx: &mut SyncContext<Self>) -> Self::Result {
        self.call(ctx, |c, _, _| c.check(msg.per_task))
    }
}
