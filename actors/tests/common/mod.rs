//! Test doubles for the capabilities: small, deterministic, and recording
//! what they were asked to do. Protocol tests only: they stand in for the
//! tch models the root package supplies.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actors::capability::*;
use actors::{Capabilities, Method, Plan};
use events::{digest, digest_hex, Envelope, Event, SampleId};

/// What the doubles were asked to do, shared by every instance a factory
/// builds.
#[derive(Default)]
pub struct Recorder {
    /// Every sample the policy was asked to generate (E-step), in order.
    pub generated: Mutex<Vec<SampleId>>,
    /// Every reasoning input the generator was asked for.
    pub reasoning: Mutex<Vec<String>>,
    /// Every sample judged.
    pub judged: Mutex<Vec<SampleId>>,
    /// Every training job.
    pub jobs: Mutex<Vec<TrainJob>>,
    /// K of every reward check run.
    pub reward_checks: Mutex<Vec<usize>>,
    /// Policy instances built (initial + restarts).
    pub policy_builds: AtomicUsize,
    /// The thread each policy instance was built in.
    pub build_threads: Mutex<Vec<std::thread::ThreadId>>,
    /// Generate calls running right now, and the most at once.
    pub concurrent: AtomicUsize,
    /// Most concurrent generate calls seen.
    pub peak_concurrent: AtomicUsize,
}

/// Failure scripts for the doubles: the n-th call (0-based, counted over
/// every instance) fails once in the given way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fail {
    Never,
    PanicAt(usize),
    RetryableAt(usize),
    FatalAt(usize),
    AlwaysRetryable,
}

#[derive(Default)]
pub struct Script {
    calls: AtomicUsize,
}

impl Script {
    fn check(&self, fail: Fail, what: &str) -> Result<(), CapabilityError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match fail {
            Fail::PanicAt(k) if k == n => panic!("double {what} panics at call {n}"),
            Fail::RetryableAt(k) if k == n => {
                Err(CapabilityError::retryable(format!("double {what} fails at call {n}")))
            }
            Fail::FatalAt(k) if k == n => Err(CapabilityError::fatal(format!("double {what}: bad input at call {n}"))),
            Fail::AlwaysRetryable => Err(CapabilityError::retryable(format!("double {what} always fails"))),
            _ => Ok(()),
        }
    }
}

pub struct Doubles {
    pub rec: Arc<Recorder>,
    pub policy_fail: Fail,
    pub judge_fail: Fail,
    pub trainer_fail: Fail,
    /// Which E-step samples the policy reports as cut at the token limit
    /// (finish `length`); none by default.
    pub unfinished: fn(&SampleId) -> bool,
    policy_script: Arc<Script>,
    judge_script: Arc<Script>,
    trainer_script: Arc<Script>,
}

impl Doubles {
    pub fn new() -> Self {
        Doubles {
            rec: Arc::new(Recorder::default()),
            policy_fail: Fail::Never,
            judge_fail: Fail::Never,
            trainer_fail: Fail::Never,
            unfinished: |_| false,
            policy_script: Arc::default(),
            judge_script: Arc::default(),
            trainer_script: Arc::default(),
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        let rec = Arc::clone(&self.rec);
        let (fail, script, unfinished) = (self.policy_fail, Arc::clone(&self.policy_script), self.unfinished);
        let policy: Factory<dyn Generate> = Arc::new(move || {
            rec.policy_builds.fetch_add(1, Ordering::SeqCst);
            rec.build_threads.lock().unwrap().push(std::thread::current().id());
            let script = Arc::clone(&script);
            Ok(Box::new(Policy { rec: Arc::clone(&rec), loaded: None, fail, script, unfinished }) as Box<dyn Generate>)
        });
        let rec = Arc::clone(&self.rec);
        let generator: Factory<dyn Generate> = Arc::new(move || {
            let rec = Arc::clone(&rec);
            let (fail, script) = (Fail::Never, Arc::default());
            Ok(Box::new(Policy { rec, loaded: None, fail, script, unfinished: |_| false }) as Box<dyn Generate>)
        });
        let rec = Arc::clone(&self.rec);
        let (fail, script) = (self.judge_fail, Arc::clone(&self.judge_script));
        let judge: Factory<dyn Judge> = Arc::new(move || {
            Ok(Box::new(JudgeDouble { rec: Arc::clone(&rec), fail, script: Arc::clone(&script) }) as Box<dyn Judge>)
        });
        let rec = Arc::clone(&self.rec);
        let (fail, script) = (self.trainer_fail, Arc::clone(&self.trainer_script));
        let trainer: Factory<dyn Train> = Arc::new(move || {
            Ok(Box::new(Trainer { rec: Arc::clone(&rec), fail, script: Arc::clone(&script) }) as Box<dyn Train>)
        });
        let rec = Arc::clone(&self.rec);
        let reward_check: Factory<dyn CheckReward> =
            Arc::new(move || Ok(Box::new(RewardChecker { rec: Arc::clone(&rec) }) as Box<dyn CheckReward>));
        Capabilities {
            retriever: Arc::new(|| Ok(Box::new(Retriever) as Box<dyn Retrieve>)),
            policy,
            generator,
            judge,
            reward_check,
            trainer,
            evaluator: Arc::new(|| Ok(Box::new(Evaluator) as Box<dyn Evaluate>)),
            targets: Arc::new(Joiner),
            observer: None,
        }
    }
}

/// A reward check that records its K and reports fixed figures.
pub struct RewardChecker {
    rec: Arc<Recorder>,
}

impl CheckReward for RewardChecker {
    fn check(&mut self, per_task: usize) -> Result<RewardCheckSummary, CapabilityError> {
        self.rec.reward_checks.lock().unwrap().push(per_task);
        Ok(RewardCheckSummary {
            reward_name: "double".into(),
            examples: 2,
            counts: [2, 2, 6],
            auc_own_other: Some(0.9),
            auc_own_degenerate: Some(1.0),
            auc_other_degenerate: Some(0.8),
            means: [Some(0.9), Some(0.4), Some(0.1)],
        })
    }
}

pub struct Joiner;

impl Targets for Joiner {
    fn join(&self, reasoning: Option<&str>, response: &str) -> String {
        match reasoning {
            Some(r) => format!("{r}\n<sep>\n{response}"),
            None => response.to_owned(),
        }
    }
}

pub struct Retriever;

impl Retrieve for Retriever {
    fn retrieve(&mut self, input_ids: &[String], k: usize) -> Result<Vec<Retrieval>, CapabilityError> {
        Ok(input_ids
            .iter()
            .map(|id| Retrieval {
                input_id: id.clone(),
                task: "email".into(),
                retriever: "bm25".into(),
                item_indices: (0..k as u32).collect(),
                scores: (0..k).map(|i| 10.0 - i as f32).collect(),
            })
            .collect())
    }
}

pub struct Policy {
    rec: Arc<Recorder>,
    loaded: Option<CheckpointRef>,
    fail: Fail,
    script: Arc<Script>,
    unfinished: fn(&SampleId) -> bool,
}

/// The double's text for a request: a function of checkpoint, sample and
/// seed only (never of the batch), as the Generate contract demands.
pub fn text_of(checkpoint: &CheckpointRef, r: &SampleRequest) -> String {
    let d = digest(format!("{}|{}|{}", digest_hex(&checkpoint.hash), r.sample, r.seed).as_bytes());
    digest_hex(&d)[..12].to_owned()
}

impl Generate for Policy {
    fn load(&mut self, checkpoint: &CheckpointRef) -> Result<(), CapabilityError> {
        self.loaded = Some(checkpoint.clone());
        Ok(())
    }

    fn generate(&mut self, requests: &[SampleRequest]) -> Result<Vec<SampleOutput>, CapabilityError> {
        let now = self.rec.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
        self.rec.peak_concurrent.fetch_max(now, Ordering::SeqCst);
        let _guard = Decrement(&self.rec.concurrent);
        self.script.check(self.fail, "policy")?;
        let ckpt = self.loaded.clone().ok_or_else(|| CapabilityError::fatal("generate before load"))?;
        // Give other workers a chance to overlap (exercises backpressure).
        std::thread::sleep(std::time::Duration::from_millis(1));
        let mut out = Vec::new();
        for r in requests {
            let text = text_of(&ckpt, r);
            let (reasoning, response) = match r.prompt {
                PromptKind::ReasoningGeneration => {
                    self.rec.reasoning.lock().unwrap().push(r.sample.input_id.clone());
                    (None, format!("user of {} likes {text}", r.sample.input_id))
                }
                PromptKind::Reasoning => {
                    self.rec.generated.lock().unwrap().push(r.sample.clone());
                    (Some(format!("because {text}")), format!("reply {text}"))
                }
                PromptKind::Plain => {
                    self.rec.generated.lock().unwrap().push(r.sample.clone());
                    (None, format!("reply {text}"))
                }
            };
            let raw = Joiner.join(reasoning.as_deref(), &response);
            let cut = r.prompt != PromptKind::ReasoningGeneration && (self.unfinished)(&r.sample);
            let finish = if cut { events::FinishReason::Length } else { events::FinishReason::StopToken };
            out.push(SampleOutput {
                sample: r.sample.clone(),
                prompt_digest: digest(r.sample.input_id.as_bytes()),
                reasoning,
                response,
                raw,
                prompt_tokens: 10,
                output_tokens: 5,
                finish,
                precision: events::Precision::F32,
                engine: served(),
            });
        }
        Ok(out)
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Recorder {
    /// How many threads built their policy more than once, and how many
    /// extra builds there were.
    pub fn rebuilds(&self) -> (usize, usize) {
        let mut per_thread = std::collections::HashMap::new();
        for t in self.build_threads.lock().unwrap().iter() {
            *per_thread.entry(*t).or_insert(0usize) += 1;
        }
        let threads = per_thread.values().filter(|&&n| n > 1).count();
        let extra = per_thread.values().map(|n| n - 1).sum();
        (threads, extra)
    }
}

/// The engine the doubles report: a served model, so a test can tell that
/// the coordinator logs the capability's engine rather than assuming tch.
pub fn served() -> events::EngineInfo {
    events::EngineInfo {
        backend: events::Backend::OpenAi,
        server_model: Some("double-1".into()),
        server_version: Some("double 0.1".into()),
        url: Some("http://127.0.0.1:1".into()),
        prompt_format: Some(events::PromptFormat::Tokens),
        deterministic: true,
    }
}

/// The unseen mass the double judge reports with every reward.
pub const JUDGE_UNSEEN_MASS: f32 = 0.015;

/// Reward of the double judge: one of 0.0, 0.1, …, 1.0 from the response's
/// hash.
pub fn reward_of(response: &str) -> f32 {
    f32::from(digest(response.as_bytes())[0] % 11) / 10.0
}

pub struct JudgeDouble {
    rec: Arc<Recorder>,
    fail: Fail,
    script: Arc<Script>,
}

impl Judge for JudgeDouble {
    fn name(&self) -> String {
        "judge".into()
    }

    fn judge(&mut self, requests: &[JudgeRequest]) -> Result<Vec<Judgement>, CapabilityError> {
        self.script.check(self.fail, "judge")?;
        Ok(requests
            .iter()
            .map(|r| {
                self.rec.judged.lock().unwrap().push(r.sample.clone());
                let reward = reward_of(&r.response);
                let mut distribution = vec![0.0; 11];
                distribution[(reward * 10.0).round() as usize] = 1.0;
                Judgement {
                    sample: r.sample.clone(),
                    reward,
                    distribution,
                    engine: Some(served()),
                    unseen_mass: Some(JUDGE_UNSEEN_MASS),
                }
            })
            .collect())
    }
}

pub struct Trainer {
    rec: Arc<Recorder>,
    fail: Fail,
    script: Arc<Script>,
}

impl Train for Trainer {
    fn train(
        &mut self,
        job: &TrainJob,
        progress: &mut dyn FnMut(TrainProgressReport),
    ) -> Result<CheckpointRef, CapabilityError> {
        self.script.check(self.fail, "trainer")?;
        self.rec.jobs.lock().unwrap().push(job.clone());
        let mut text = format!("{}|{}|{}", digest_hex(&job.init.hash), job.iteration, job.seed);
        for item in &job.data {
            text.push_str(&format!("|{}|{:?}|{:?}|{}", item.input_id, item.prompt, item.target, item.weight.to_bits()));
        }
        for step in 1..=2 {
            progress(TrainProgressReport { step, loss: 1.0 / step as f32, learning_rate: 5e-6, tokens: 100 * step });
        }
        let hash = digest(text.as_bytes());
        Ok(CheckpointRef { hash, path: format!("blobs/{}", &digest_hex(&hash)[..16]) })
    }
}

pub struct Evaluator;

impl Evaluate for Evaluator {
    fn evaluate(
        &mut self,
        checkpoint: &CheckpointRef,
        split: events::Split,
        system: &str,
        _: PromptKind,
    ) -> Result<EvalSummary, CapabilityError> {
        Ok(EvalSummary {
            scores: vec![("macro".into(), f64::from(checkpoint.hash[0]) / 255.0)],
            report_path: format!("reports/{system}-{split}.json"),
        })
    }
}

pub fn base() -> CheckpointRef {
    CheckpointRef { hash: digest(b"base"), path: "base".into() }
}

/// A small plan: `inputs` train inputs, 2 validation, 2 test, m = 4, T = 2,
/// τ = 0.5, cap 2, batches of 2 over 2 sampler workers, a reward check of
/// K = 4.
pub fn plan(run_id: &str, method: Method, inputs: usize) -> Plan {
    let ids = |p: &str, n: usize| (0..n).map(|i| format!("{p}-{i}")).collect::<Vec<_>>();
    let mut p = Plan::new(run_id, method, 42, base(), ids("train", inputs));
    p.val_ids = ids("val", 2);
    p.test_ids = ids("test", 2);
    p.m = 4;
    p.iterations = 2;
    p.tau = 0.5;
    p.max_kept_per_input = 2;
    p.batch_size = 2;
    p.sampler_workers = 2;
    p.judge_workers = 2;
    p.max_in_flight = 2;
    p.reward_check_per_task = 4;
    p
}

/// Every event of the log at `dir`, in sequence order.
pub fn read_events(dir: &Path) -> Vec<Event> {
    read_envelopes(dir).into_iter().map(|e| e.payload).collect()
}

/// How many times each sample id has a SampleGenerated event.
pub fn sample_counts(events: &[Event]) -> BTreeMap<SampleId, usize> {
    let mut counts = BTreeMap::new();
    for e in events {
        if let Event::SampleGenerated { sample, .. } = e {
            *counts.entry(sample.clone()).or_default() += 1;
        }
    }
    counts
}

// ---- the event log used by the tests ----

/// The run's real (sled) event log in `dir`, created or reopened.
pub fn open_log(dir: &Path, run_id: &str) -> store::EventLog {
    store::EventLog::open_or_create(dir, run_id).expect("open the event log")
}

/// Every record of the log in `dir` (reopened read-only after the run).
pub fn read_envelopes(dir: &Path) -> Vec<Envelope> {
    let reader = store::LogReader::open(dir, None).expect("open the log for reading");
    reader.iter().collect::<Result<Vec<_>, _>>().expect("read the log")
}
