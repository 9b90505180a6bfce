//! The [`Coordinator`]: REST-PG's Algorithm 1 as an async actor that routes
//! work to the sync worker pools and results to the [`LogWriter`].
//!
//! It never computes anything heavy itself: it decides what is missing (from
//! the log folded into a [`RunState`]), sends batches, and appends each
//! result before counting it. Stage by stage:
//!
//! ```text
//! retrieve → [reasoning] → SFT (θ¹) → eval(val)
//!   → for t = 1..T: E-step → judge → filter → seal D_t → M-step → eval(val)
//!   → eval(test) → RunFinished
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use events::{dataset_digest, DatasetEntry, Decision, Digest, Event, SampleId};

use crate::capability::{
    CheckpointRef, EvalSummary, Evaluate, Factory, Generate, Judge, JudgeRequest, PromptKind, Retrieve, SampleRequest,
    Targets, Train, TrainItem, TrainJob, TrainTarget,
};
use crate::dispatch::Bounded;
use crate::filter::{decide, FilterError, FilterRule, Scored};
use crate::log::{Append, Close, EventSink, Flush, LoadRun, LogError, LogWriter, Observer};
use crate::plan::{InitMode, Plan, PlanError};
use crate::resume::RunState;
use crate::workers::{
    start_pool, EvaluateRun, FaultSwitch, GenerateBatch, JudgeBatch, JudgeName, RetrieveBatch, TrainRun, Worker,
    WorkerError,
};

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
    /// Builds the trainer (one worker).
    pub trainer: Factory<dyn Train>,
    /// Builds the evaluator (one worker).
    pub evaluator: Factory<dyn Evaluate>,
    /// Rebuilds a logged sample's raw output for the M-step.
    pub targets: Arc<dyn Targets>,
    /// Called for every newly appended event (progress bars); optional.
    pub observer: Option<Observer>,
}

/// Why a run stopped. Every variant but [`RunError::InjectedCrash`] is also
/// logged as `RunFailed` with this error's text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The plan was refused before anything started.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The event log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A worker failed with an error that re-issuing cannot fix.
    #[error("{stage}: batch {batch}: {source}")]
    Worker {
        /// The stage (`e-step 1`, `judge 2`, `sft`, …).
        stage: String,
        /// The batch (its first input or sample).
        batch: String,
        /// The worker's error.
        source: WorkerError,
    },
    /// A batch kept failing.
    #[error("{stage}: batch {batch} failed {attempts} times, giving up; last error: {last}")]
    RetriesExhausted {
        /// The stage.
        stage: String,
        /// The batch (its first input or sample).
        batch: String,
        /// Deliveries made.
        attempts: u32,
        /// The last failure.
        last: WorkerError,
    },
    /// A worker thread or actor could not be reached.
    #[error("{stage}: {what}")]
    Mailbox {
        /// The stage.
        stage: String,
        /// What was lost.
        what: String,
    },
    /// The filter refused the rewards.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The log contradicts itself or this plan (e.g. a sealed digest that the
    /// logged samples do not reproduce).
    #[error("the log is inconsistent with this run: {0}")]
    Inconsistent(String),
    /// Test-only: the fault switch simulated a crash after this many samples.
    #[error("test-only fault switch: simulated crash after {0} samples")]
    InjectedCrash(usize),
    /// The coordinator was asked to run twice.
    #[error("this coordinator already ran its plan")]
    AlreadyStarted,
}

/// One EM iteration's result.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationOutcome {
    /// Iteration t (from 1).
    pub iteration: u32,
    /// Samples in the E-step (train inputs × m).
    pub samples: u64,
    /// Kept samples: |D_t|.
    pub kept: u64,
    /// [`events::dataset_digest`] of D_t, as sealed.
    pub digest: Digest,
    /// The M-step's checkpoint θ_{t+1}.
    pub checkpoint: CheckpointRef,
}

/// One evaluation's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Iteration of the evaluated model (0 = after SFT).
    pub iteration: u32,
    /// `validation` or `test`.
    pub split: String,
    /// Its scores and report.
    pub summary: EvalSummary,
}

/// What a finished run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The last trained checkpoint (SFT's for `sft`/`sft-reasoning`, the last
    /// M-step's otherwise).
    pub final_checkpoint: CheckpointRef,
    /// The SFT checkpoint θ¹.
    pub sft_checkpoint: CheckpointRef,
    /// Per EM iteration, in order.
    pub iterations: Vec<IterationOutcome>,
    /// Every evaluation, in order.
    pub evaluations: Vec<Evaluation>,
    /// Whether the log already held events of this run (a resume).
    pub resumed: bool,
    /// Samples generated by this process (0 when everything was logged).
    pub generated_samples: usize,
    /// Batches re-issued after a worker failure.
    pub reissued_batches: usize,
    /// Most batches outstanding to one pool at once.
    pub peak_in_flight: usize,
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

/// The seed of a training job: derived from the run seed and the iteration
/// (REST-PG fixes one seed per run; each stage gets its own stream).
pub fn train_seed(run_seed: u64, iteration: u32) -> u64 {
    let mut bytes = b"restpg.train-seed.v1\0".to_vec();
    bytes.extend_from_slice(&run_seed.to_le_bytes());
    bytes.extend_from_slice(&iteration.to_le_bytes());
    let d = events::digest(&bytes);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The `response_digest` of a D_t entry: blake3 of the logged response
/// text, so replay can recompute it from `SampleGenerated` alone.
pub fn response_digest(response: &str) -> Digest {
    events::digest(response.as_bytes())
}

/// The reasoning sample id of a train input (iteration 0, index 0): its seed
/// is `SampleId::seed(run_seed)` like every other sample's.
pub fn reasoning_sample(input_id: &str) -> SampleId {
    SampleId { iteration: 0, input_id: input_id.to_owned(), index: 0 }
}

struct Run {
    plan: Arc<Plan>,
    caps: Capabilities,
    log: Addr<LogWriter>,
    state: RunState,
    fault: Option<Arc<FaultSwitch>>,
    generated: usize,
    reissued: usize,
    peak_in_flight: usize,
    started: Instant,
}

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
            state: RunState::default(),
            fault,
            generated: 0,
            reissued: 0,
            peak_in_flight: 0,
            started: Instant::now(),
        }
    }

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

    async fn append(&mut self, events: Vec<Event>) -> Result<(), RunError> {
        if events.is_empty() {
            return Ok(());
        }
        self.log.send(Append(events.clone())).await.map_err(|e| mailbox("append", "log writer", e))??;
        for e in &events {
            self.state.apply(e);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), RunError> {
        self.log.send(Flush).await.map_err(|e| mailbox("flush", "log writer", e))??;
        Ok(())
    }

    async fn stage_started(&mut self, iteration: u32, stage: &str) -> Result<Instant, RunError> {
        tracing::info!(iteration, stage, "stage started");
        self.append(vec![Event::StageStarted { iteration, stage: stage.to_owned() }]).await?;
        Ok(Instant::now())
    }

    async fn stage_finished(&mut self, iteration: u32, stage: &str, since: Instant) -> Result<(), RunError> {
        let wall_ms = since.elapsed().as_millis() as u64;
        tracing::info!(iteration, stage, wall_ms, "stage finished");
        self.append(vec![Event::StageFinished { iteration, stage: stage.to_owned(), wall_ms }]).await?;
        self.flush().await
    }

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

        self.retrieve().await?;
        if plan.method.uses_reasoning() {
            self.reasoning().await?;
        }
        let sft = self.sft().await?;
        let mut evaluations = Vec::new();
        if let Some(e) = self.evaluate(0, "validation", &sft).await? {
            evaluations.push(e);
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
            if let Some(e) = self.evaluate(t, "validation", &next).await? {
                evaluations.push(e);
            }
            self.append(vec![Event::IterationFinished { iteration: t }]).await?;
            self.flush().await?;
            iterations.push(IterationOutcome { iteration: t, samples, kept: count, digest, checkpoint: next.clone() });
            current = next;
        }

        if let Some(e) = self.evaluate(plan.em_iterations(), "test", &current).await? {
            evaluations.push(e);
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

    fn note_pool<M, T>(&mut self, pool: &Bounded<M, T>)
    where
        M: Message<Result = Result<T, WorkerError>> + Clone + Send + 'static,
        T: Send + 'static,
    {
        self.reissued += pool.reissued;
        self.peak_in_flight = self.peak_in_flight.max(pool.peak_in_flight);
    }

    /// REST-PG §3 step 1: top-k profile items for every input of every split.
    async fn retrieve(&mut self) -> Result<(), RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(0, "retrieve").await?;
        let mut seen = BTreeSet::new();
        let missing: Vec<String> = plan
            .train_ids
            .iter()
            .chain(&plan.val_ids)
            .chain(&plan.test_ids)
            .filter(|id| seen.insert(id.as_str()) && !self.state.retrieved.contains(id.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let addr = start_pool::<dyn Retrieve>("retriever", 1, Arc::clone(&self.caps.retriever), None, None);
            let mut pool = Bounded::new(
                "retrieve",
                addr.recipient(),
                plan.max_in_flight,
                plan.max_attempts,
                Some(plan.batch_timeout),
            );
            for chunk in missing.chunks(plan.batch_size) {
                pool.push(chunk[0].clone(), RetrieveBatch { input_ids: chunk.to_vec(), k: plan.k });
            }
            while let Some(done) = pool.next().await {
                let (_, results) = done?;
                let events = results
                    .into_iter()
                    .map(|r| Event::RetrievalDone {
                        input_id: r.input_id,
                        task: r.task,
                        retriever: r.retriever,
                        k: plan.k as u32,
                        item_indices: r.item_indices,
                        scores: r.scores,
                    })
                    .collect();
                self.append(events).await?;
            }
            self.note_pool(&pool);
        }
        self.stage_finished(0, "retrieve", since).await
    }

    /// REST-PG §3 step 2: the generator summarizes each train user
    /// (D_reasoning).
    async fn reasoning(&mut self) -> Result<(), RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(0, "reasoning").await?;
        let requests: Vec<SampleRequest> = plan
            .train_ids
            .iter()
            .filter(|id| !self.state.reasoning.contains_key(&((*id).clone(), plan.generator_name.clone())))
            .map(|id| {
                let sample = reasoning_sample(id);
                SampleRequest {
                    seed: sample.seed(plan.seed),
                    sample,
                    temperature: plan.reasoning.temperature,
                    top_p: plan.reasoning.top_p,
                    max_new_tokens: plan.reasoning.max_new_tokens,
                    prompt: PromptKind::ReasoningGeneration,
                }
            })
            .collect();
        if !requests.is_empty() {
            let addr = start_pool::<dyn Generate>(
                "generator",
                plan.sampler_workers,
                Arc::clone(&self.caps.generator),
                self.fault.clone(),
                None,
            );
            let mut pool = Bounded::new(
                "reasoning",
                addr.recipient(),
                plan.max_in_flight,
                plan.max_attempts,
                Some(plan.batch_timeout),
            );
            for chunk in requests.chunks(plan.batch_size) {
                pool.push(
                    chunk[0].sample.input_id.clone(),
                    GenerateBatch { checkpoint: plan.generator_checkpoint.clone(), requests: chunk.to_vec() },
                );
            }
            while let Some(done) = pool.next().await {
                let (msg, outputs) = done?;
                let events = outputs
                    .into_iter()
                    .zip(msg.requests)
                    .map(|(out, req)| Event::ReasoningGenerated {
                        input_id: req.sample.input_id,
                        generator: plan.generator_name.clone(),
                        seed: req.seed,
                        // The reasoning-generation template has no separator:
                        // the whole response is the summary, unless the
                        // implementation split one out.
                        reasoning: out.reasoning.unwrap_or(out.response),
                    })
                    .collect();
                self.append(events).await?;
            }
            self.note_pool(&pool);
        }
        self.stage_finished(0, "reasoning", since).await
    }

    fn trainer(&self) -> Addr<Worker<dyn Train>> {
        let progress = self.log.clone().recipient::<Append>();
        start_pool::<dyn Train>("trainer", 1, Arc::clone(&self.caps.trainer), None, Some(progress))
    }

    async fn train(&mut self, stage: &str, job: TrainJob) -> Result<crate::workers::Trained, RunError> {
        let plan = Arc::clone(&self.plan);
        let mut pool = Bounded::new(stage, self.trainer().recipient(), 1, plan.max_attempts, None);
        pool.push(format!("iteration {}", job.iteration), TrainRun { job });
        let trained = match pool.next().await {
            Some(r) => r?.1,
            None => return Err(RunError::Mailbox { stage: stage.into(), what: "trainer returned nothing".into() }),
        };
        self.note_pool(&pool);
        Ok(trained)
    }

    /// SFT on (x, y) or on D_reasoning (x, reasoning ⊕ y): θ¹.
    async fn sft(&mut self) -> Result<CheckpointRef, RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(0, "sft").await?;
        if let Some(c) = self.state.checkpoints.get(&(0, "sft".to_owned())) {
            let c = c.checkpoint.clone();
            self.stage_finished(0, "sft", since).await?;
            return Ok(c);
        }
        let mut data = Vec::with_capacity(plan.train_ids.len());
        for id in &plan.train_ids {
            let target = if plan.method.uses_reasoning() {
                let reasoning =
                    self.state.reasoning.get(&(id.clone(), plan.generator_name.clone())).ok_or_else(|| {
                        RunError::Inconsistent(format!("no reasoning logged for train input {id:?} before SFT"))
                    })?;
                TrainTarget::ReasoningThenReference { reasoning: reasoning.clone() }
            } else {
                TrainTarget::Reference
            };
            data.push(TrainItem { input_id: id.clone(), prompt: plan.method.policy_prompt(), target, weight: 1.0 });
        }
        let job = TrainJob { iteration: 0, init: plan.base.clone(), data, seed: train_seed(plan.seed, 0) };
        let trained = self.train("sft", job).await?;
        self.append(vec![checkpoint_saved(0, "sft", &trained)]).await?;
        self.flush().await?;
        self.stage_finished(0, "sft", since).await?;
        Ok(trained.checkpoint)
    }

    /// Evaluates `checkpoint` on `split` (skipped when the split is empty;
    /// reused when already logged).
    async fn evaluate(
        &mut self,
        t: u32,
        split: &str,
        checkpoint: &CheckpointRef,
    ) -> Result<Option<Evaluation>, RunError> {
        let plan = Arc::clone(&self.plan);
        let ids = if split == "test" { &plan.test_ids } else { &plan.val_ids };
        if ids.is_empty() {
            return Ok(None);
        }
        let system = plan.method.as_str().to_owned();
        let stage = format!("eval-{split}");
        let since = self.stage_started(t, &stage).await?;
        let key = (t, split.to_owned(), system.clone());
        let summary = match self.state.evaluations.get(&key) {
            Some(s) => s.clone(),
            None => {
                let addr = start_pool::<dyn Evaluate>("evaluator", 1, Arc::clone(&self.caps.evaluator), None, None);
                let mut pool = Bounded::new(stage.clone(), addr.recipient(), 1, plan.max_attempts, None);
                pool.push(
                    split.to_owned(),
                    EvaluateRun {
                        checkpoint: checkpoint.clone(),
                        split: split.to_owned(),
                        system: system.clone(),
                        prompt: plan.method.policy_prompt(),
                    },
                );
                let summary = match pool.next().await {
                    Some(r) => r?.1,
                    None => return Err(RunError::Mailbox { stage, what: "evaluator returned nothing".into() }),
                };
                self.note_pool(&pool);
                self.append(vec![Event::EvaluationDone {
                    iteration: t,
                    split: split.to_owned(),
                    system,
                    scores: summary.scores.clone(),
                    report_path: summary.report_path.clone(),
                }])
                .await?;
                self.flush().await?;
                summary
            }
        };
        self.stage_finished(t, &stage, since).await?;
        Ok(Some(Evaluation { iteration: t, split: split.to_owned(), summary }))
    }

    /// Algorithm 1 line 5: m samples per train input from θ_t, skipping the
    /// samples already logged.
    async fn e_step(&mut self, t: u32, theta: &CheckpointRef) -> Result<(), RunError> {
        let plan = Arc::clone(&self.plan);
        let stage = "e-step";
        let since = self.stage_started(t, stage).await?;
        if let Some((id, s)) = self.state.samples_of(t).find(|(_, s)| s.checkpoint != theta.hash) {
            return Err(RunError::Inconsistent(format!(
                "sample {id} was logged from checkpoint {}, but θ_{t} is {}",
                events::digest_hex(&s.checkpoint),
                events::digest_hex(&theta.hash)
            )));
        }
        let mut requests = Vec::new();
        for input in &plan.train_ids {
            for index in 0..plan.m {
                let sample = SampleId { iteration: t, input_id: input.clone(), index };
                if self.state.samples.contains_key(&sample) {
                    continue;
                }
                requests.push(SampleRequest {
                    seed: sample.seed(plan.seed),
                    sample,
                    temperature: plan.e_step.temperature,
                    top_p: plan.e_step.top_p,
                    max_new_tokens: plan.e_step.max_new_tokens,
                    prompt: plan.method.policy_prompt(),
                });
            }
        }
        tracing::info!(iteration = t, missing = requests.len(), "E-step");
        if !requests.is_empty() {
            let addr = start_pool::<dyn Generate>(
                "sampler",
                plan.sampler_workers,
                Arc::clone(&self.caps.policy),
                self.fault.clone(),
                None,
            );
            let mut pool = Bounded::new(
                format!("e-step {t}"),
                addr.recipient(),
                plan.max_in_flight,
                plan.max_attempts,
                Some(plan.batch_timeout),
            );
            for chunk in requests.chunks(plan.batch_size) {
                pool.push(
                    chunk[0].sample.to_string(),
                    GenerateBatch { checkpoint: theta.clone(), requests: chunk.to_vec() },
                );
            }
            while let Some(done) = pool.next().await {
                let (msg, outputs) = done?;
                let n = outputs.len();
                let events = outputs
                    .into_iter()
                    .zip(msg.requests)
                    .map(|(out, req)| Event::SampleGenerated {
                        sample: out.sample,
                        seed: req.seed,
                        prompt_digest: out.prompt_digest,
                        reasoning: out.reasoning,
                        response: out.response,
                        prompt_tokens: out.prompt_tokens,
                        output_tokens: out.output_tokens,
                        checkpoint: theta.hash,
                        temperature: req.temperature,
                        top_p: req.top_p,
                        finish: Some(out.finish),
                    })
                    .collect();
                self.append(events).await?;
                self.generated += n;
                if let Some(limit) = plan.fault.and_then(|f| f.crash_after_samples) {
                    if self.generated >= limit {
                        return Err(RunError::InjectedCrash(self.generated));
                    }
                }
            }
            self.note_pool(&pool);
        }
        let have = self.state.samples_of(t).count();
        let want = plan.train_ids.len() * plan.m as usize;
        if have != want {
            return Err(RunError::Inconsistent(format!("iteration {t}: {have} samples logged, expected {want}")));
        }
        self.stage_finished(t, stage, since).await
    }

    /// Algorithm 1 line 7: reward each sample's final response.
    async fn judge(&mut self, t: u32) -> Result<String, RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(t, "judge").await?;
        let addr = start_pool::<dyn Judge>("judge", plan.judge_workers, Arc::clone(&self.caps.judge), None, None);
        let name = {
            let mut pool = Bounded::new(
                format!("judge {t}"),
                addr.clone().recipient(),
                1,
                plan.max_attempts,
                Some(plan.batch_timeout),
            );
            pool.push("name".into(), JudgeName);
            match pool.next().await {
                Some(r) => r?.1,
                None => return Err(RunError::Mailbox { stage: "judge".into(), what: "judge returned no name".into() }),
            }
        };
        let requests: Vec<JudgeRequest> = self
            .state
            .samples_of(t)
            .filter(|(id, _)| !self.state.rewards.contains_key(&((*id).clone(), name.clone())))
            .map(|(id, s)| JudgeRequest { sample: id.clone(), response: s.response.clone() })
            .collect();
        if !requests.is_empty() {
            let mut pool = Bounded::new(
                format!("judge {t}"),
                addr.recipient(),
                plan.max_in_flight,
                plan.max_attempts,
                Some(plan.batch_timeout),
            );
            for chunk in requests.chunks(plan.batch_size) {
                pool.push(chunk[0].sample.to_string(), JudgeBatch { requests: chunk.to_vec() });
            }
            while let Some(done) = pool.next().await {
                let (_, judgements) = done?;
                let events = judgements
                    .into_iter()
                    .map(|j| Event::RewardAssigned {
                        sample: j.sample,
                        reward: j.reward,
                        reward_name: name.clone(),
                        judge_distribution: j.distribution,
                    })
                    .collect();
                self.append(events).await?;
            }
            self.note_pool(&pool);
        }
        self.stage_finished(t, "judge", since).await?;
        Ok(name)
    }

    /// Algorithm 1 lines 8–9: filter (R ≥ τ, at most the cap per input) and
    /// seal D_t with its canonical digest.
    async fn filter_and_seal(&mut self, t: u32, reward_name: &str) -> Result<(), RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(t, "filter").await?;
        let mut scored = Vec::new();
        for (id, sample) in self.state.samples_of(t) {
            let reward = self.state.rewards.get(&(id.clone(), reward_name.to_owned())).ok_or_else(|| {
                RunError::Inconsistent(format!("sample {id} has no {reward_name:?} reward after judging"))
            })?;
            scored.push(Scored { sample: id.clone(), reward: *reward, has_reasoning: sample.reasoning.is_some() });
        }
        let rule =
            FilterRule { tau: plan.tau, cap: plan.max_kept_per_input, require_reasoning: plan.require_reasoning };
        let verdicts = decide(&scored, &rule)?;
        let mut events = Vec::with_capacity(verdicts.len() + 1);
        let mut entries = Vec::new();
        for v in verdicts {
            if let Some(logged) = self.state.decisions.get(&v.sample) {
                if logged.decision != v.decision
                    || logged.rank != v.rank
                    || logged.reward.to_bits() != v.reward.to_bits()
                {
                    return Err(RunError::Inconsistent(format!(
                        "sample {}: logged decision {} (rank {}, reward {}) differs from {} (rank {}, reward {})",
                        v.sample, logged.decision, logged.rank, logged.reward, v.decision, v.rank, v.reward
                    )));
                }
            }
            if v.decision == Decision::Kept {
                let response = &self.state.samples[&v.sample].response;
                entries.push(DatasetEntry {
                    sample: v.sample.clone(),
                    reward: v.reward,
                    response_digest: response_digest(response),
                });
            }
            events.push(Event::FilterDecided {
                sample: v.sample,
                decision: v.decision,
                reward: v.reward,
                tau: plan.tau,
                rank: v.rank,
            });
        }
        self.append(events).await?;
        let digest = dataset_digest(&entries);
        tracing::info!(iteration = t, kept = entries.len(), digest = %events::digest_hex(&digest), "D_t sealed");
        self.append(vec![Event::DatasetSealed { iteration: t, count: entries.len() as u64, digest }]).await?;
        self.flush().await?;
        self.stage_finished(t, "filter", since).await
    }

    /// D_t as the log holds it, checked against its sealed digest; and the
    /// number of samples of the iteration.
    fn sealed_set(&self, t: u32) -> Result<(Vec<Kept>, u64), RunError> {
        let (count, sealed) =
            *self.state.sealed.get(&t).ok_or_else(|| RunError::Inconsistent(format!("iteration {t} is not sealed")))?;
        let mut kept = Vec::new();
        let mut entries = Vec::new();
        for (id, d) in self.state.decisions.iter().filter(|(id, d)| id.iteration == t && d.decision == Decision::Kept) {
            let s = self
                .state
                .samples
                .get(id)
                .ok_or_else(|| RunError::Inconsistent(format!("kept sample {id} has no SampleGenerated")))?;
            entries.push(DatasetEntry {
                sample: id.clone(),
                reward: d.reward,
                response_digest: response_digest(&s.response),
            });
            kept.push(Kept {
                sample: id.clone(),
                reward: d.reward,
                reasoning: s.reasoning.clone(),
                response: s.response.clone(),
            });
        }
        let digest = dataset_digest(&entries);
        if digest != sealed || entries.len() as u64 != count {
            return Err(RunError::Inconsistent(format!(
                "D_{t} rebuilt from the log has {} samples and digest {}, but was sealed with {count} and {}",
                entries.len(),
                events::digest_hex(&digest),
                events::digest_hex(&sealed)
            )));
        }
        Ok((kept, self.state.samples_of(t).count() as u64))
    }

    /// Algorithm 1 line 11: train on D_t with loss −R·log p(ŷ | x, P).
    async fn m_step(&mut self, t: u32, theta: &CheckpointRef, kept: &[Kept]) -> Result<CheckpointRef, RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(t, "m-step").await?;
        if let Some(c) = self.state.checkpoints.get(&(t, "m-step".to_owned())) {
            let c = c.checkpoint.clone();
            self.stage_finished(t, "m-step", since).await?;
            return Ok(c);
        }
        let trained = if kept.is_empty() {
            // Nothing is trainable: training from the base on nothing would
            // throw away θ_t, so θ_t carries over as θ_{t+1}, with the reason logged.
            let reason = format!(
                "D_{t} is empty: no sample of iteration {t} was kept (τ = {}, zero rewards and samples without reasoning are never training data); θ_{t} carries over",
                plan.tau
            );
            tracing::warn!(iteration = t, "{reason}");
            self.append(vec![Event::MStepSkipped { iteration: t, reason }]).await?;
            crate::workers::Trained { checkpoint: theta.clone(), steps: 0 }
        } else {
            let data = kept
                .iter()
                .map(|k| TrainItem {
                    input_id: k.sample.input_id.clone(),
                    prompt: plan.method.policy_prompt(),
                    target: TrainTarget::Generated { raw: self.caps.targets.join(k.reasoning.as_deref(), &k.response) },
                    weight: k.reward,
                })
                .collect();
            let init = match plan.init {
                InitMode::Fresh => plan.base.clone(),
                InitMode::Continue => theta.clone(),
            };
            let job = TrainJob { iteration: t, init, data, seed: train_seed(plan.seed, t) };
            self.train(&format!("m-step {t}"), job).await?
        };
        self.append(vec![checkpoint_saved(t, "m-step", &trained)]).await?;
        self.flush().await?;
        self.stage_finished(t, "m-step", since).await?;
        Ok(trained.checkpoint)
    }
}

/// A member of D_t with what the M-step trains on.
struct Kept {
    sample: SampleId,
    reward: f32,
    reasoning: Option<String>,
    response: String,
}

fn checkpoint_saved(iteration: u32, role: &str, trained: &crate::workers::Trained) -> Event {
    Event::CheckpointSaved {
        iteration,
        step: trained.steps,
        role: role.to_owned(),
        hash: trained.checkpoint.hash,
        path: trained.checkpoint.path.clone(),
        validation_score: None,
    }
}
