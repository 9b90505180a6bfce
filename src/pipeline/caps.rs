//! The tch implementations of the actors' capability traits.
//!
//! Each value is built inside the worker thread that owns it (by the
//! factories in [`super::run`]) and holds its own [`LanguageModel`]: tch
//! tensors are `Send` but not `Sync`, so a model is never shared.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actors::capability::{
    CapabilityError, CheckpointRef, EvalSummary, Evaluate, Generate, JudgeRequest, Judgement, PromptKind, Retrieval,
    Retrieve, SampleOutput, SampleRequest, Train, TrainJob, TrainProgressReport, TrainTarget,
};
use events::digest;

use super::context::RunContext;
use super::LanguageModel;
use crate::data::Split;
use crate::lm::{GenerationRequest, SamplingSettings};
use crate::prompt::{parse_output, RESPONSE_SEPARATOR};

/// Turns an `anyhow` error from the model side into a capability error that
/// a rebuilt worker may not repeat.
fn retryable(what: &str, e: anyhow::Error) -> CapabilityError {
    CapabilityError::retryable(format!("{what}: {e:#}"))
}

/// Loads a checkpoint (a GGUF file or a Hugging Face-layout directory) on
/// the CPU with the configured thread count.
fn load_model(path: &Path) -> Result<LanguageModel, CapabilityError> {
    LanguageModel::load(path, tch::Device::Cpu)
        .map_err(|e| CapabilityError::fatal(format!("loading checkpoint {}: {e:#}", path.display())))
}

/// Retrieval from the run context's precomputed results.
pub struct ContextRetriever {
    /// The run's shared context.
    pub ctx: Arc<RunContext>,
}

impl Retrieve for ContextRetriever {
    fn retrieve(&mut self, input_ids: &[String], k: usize) -> Result<Vec<Retrieval>, CapabilityError> {
        input_ids.iter().map(|id| self.ctx.retrieval(id, k)).collect()
    }
}

/// The policy sampler and reasoning generator on a local tch model.
pub struct TchPolicy {
    ctx: Arc<RunContext>,
    loaded: Option<(CheckpointRef, LanguageModel)>,
}

impl TchPolicy {
    /// A sampler with no weights loaded yet (they come with the first
    /// batch's checkpoint).
    pub fn new(ctx: Arc<RunContext>) -> Self {
        Self { ctx, loaded: None }
    }

    fn model(&self) -> Result<&LanguageModel, CapabilityError> {
        self.loaded
            .as_ref()
            .map(|(_, m)| m)
            .ok_or_else(|| CapabilityError::fatal("generate called before a checkpoint was loaded"))
    }
}

impl Generate for TchPolicy {
    fn load(&mut self, checkpoint: &CheckpointRef) -> Result<(), CapabilityError> {
        if self.loaded.as_ref().is_some_and(|(c, _)| c == checkpoint) {
            return Ok(());
        }
        self.loaded = None;
        let model = load_model(&self.ctx.checkpoint_path(checkpoint))?;
        self.loaded = Some((checkpoint.clone(), model));
        Ok(())
    }

    fn generate(&mut self, requests: &[SampleRequest]) -> Result<Vec<SampleOutput>, CapabilityError> {
        let model = self.model()?;
        let tok = model.tokenizer();
        let mut prompts = Vec::with_capacity(requests.len());
        let mut reqs = Vec::with_capacity(requests.len());
        for r in requests {
            let (text, ids) = self.ctx.prompt_ids(tok, &r.sample.input_id, r.prompt)?;
            reqs.push(GenerationRequest {
                prompt_ids: ids.clone(),
                seed: r.seed,
                settings: SamplingSettings {
                    temperature: f64::from(r.temperature),
                    top_p: f64::from(r.top_p),
                    top_k: None,
                    max_new_tokens: r.max_new_tokens as usize,
                    stop_tokens: tok.eos_ids().to_vec(),
                    stop_strings: self.ctx.config.sampling.stop_strings.clone(),
                    separator: separator_stop(r.prompt),
                },
            });
            prompts.push((text, ids.len()));
        }
        let gens = model.generate(&reqs).map_err(|e| retryable("generation", e))?;
        Ok(requests
            .iter()
            .zip(gens)
            .zip(prompts)
            .map(|((r, g), (text, prompt_tokens))| {
                let (reasoning, response) = match r.prompt {
                    PromptKind::Reasoning => {
                        let parsed = parse_output(&g.text);
                        (parsed.reasoning, parsed.response)
                    }
                    PromptKind::Plain => (None, g.text.trim().to_owned()),
                    PromptKind::ReasoningGeneration => (Some(g.text.trim().to_owned()), String::new()),
                };
                SampleOutput {
                    sample: r.sample.clone(),
                    prompt_digest: digest(text.as_bytes()),
                    reasoning,
                    response,
                    raw: g.text.clone(),
                    prompt_tokens: prompt_tokens as u32,
                    output_tokens: g.token_ids.len() as u32,
                    finish: g.finish,
                }
            })
            .collect())
    }
}

/// The separator whose second line ends a sample of `prompt`: for the
/// reasoning prompt, an output that has written its response ends at the
/// next separator line (the model is opening a turn of its own); other
/// prompts have no separator.
fn separator_stop(prompt: PromptKind) -> Option<String> {
    (prompt == PromptKind::Reasoning).then(|| RESPONSE_SEPARATOR.to_owned())
}

/// The reward R(x, y, ŷ): the configured reward spec (LLM judge, lexical
/// metrics or a mix) on the final response only.
pub struct TchJudge {
    ctx: Arc<RunContext>,
    reward: Box<SpecReward>,
    name: String,
}

impl TchJudge {
    /// Builds the configured reward; the LLM judge loads `judge_path`.
    ///
    /// # Errors
    /// A bad reward spec, a judge model that does not load or whose tokenizer
    /// has no score tokens.
    pub fn new(ctx: Arc<RunContext>, judge_path: &Path) -> anyhow::Result<Self> {
        let name = ctx.config.reward.name.clone();
        let reward = Box::new(SpecReward::new(&ctx, judge_path)?);
        Ok(Self { ctx, reward, name })
    }
}

impl actors::capability::Judge for TchJudge {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn judge(&mut self, requests: &[JudgeRequest]) -> Result<Vec<Judgement>, CapabilityError> {
        let mut inputs = Vec::with_capacity(requests.len());
        for r in requests {
            let ex = self.ctx.example(&r.sample.input_id)?;
            inputs.push(crate::reward::RewardInput {
                input: ex.input.clone(),
                expected: ex.output.clone(),
                response: r.response.clone(),
            });
        }
        let outs = self.reward.score(&inputs).map_err(|e| retryable("judging", e))?;
        Ok(requests
            .iter()
            .zip(outs)
            .map(|(r, o)| Judgement {
                sample: r.sample.clone(),
                reward: o.reward,
                distribution: o.distribution.unwrap_or_default(),
            })
            .collect())
    }
}

/// SFT and the M-step: trains from `job.init`, saves the checkpoint in
/// Hugging Face layout into the run's blob store.
pub struct TchTrainer {
    ctx: Arc<RunContext>,
    blobs: store::BlobStore,
}

impl TchTrainer {
    /// A trainer writing checkpoints into `blobs`.
    pub fn new(ctx: Arc<RunContext>, blobs: store::BlobStore) -> Self {
        Self { ctx, blobs }
    }
}

impl Train for TchTrainer {
    fn train(
        &mut self,
        job: &TrainJob,
        progress: &mut dyn FnMut(TrainProgressReport),
    ) -> Result<CheckpointRef, CapabilityError> {
        let mut model = load_model(&self.ctx.checkpoint_path(&job.init))?;
        let tok = model.tokenizer().clone();
        let mut data = Vec::with_capacity(job.data.len());
        for item in &job.data {
            let (_, prompt_ids) = self.ctx.prompt_ids(&tok, &item.input_id, item.prompt)?;
            let target = match &item.target {
                TrainTarget::Reference => self.ctx.example(&item.input_id)?.output.clone(),
                TrainTarget::ReasoningThenReference { reasoning } => {
                    self.ctx.templates.reasoning_target(reasoning, &self.ctx.example(&item.input_id)?.output)
                }
                TrainTarget::Generated { raw } => raw.clone(),
            };
            let mut target_ids = tok
                .encode(&target)
                .map_err(|e| CapabilityError::fatal(format!("tokenizing the target of {}: {e:#}", item.input_id)))?;
            // The model must learn to stop: the chat template closes the
            // assistant turn with its end-of-turn token.
            target_ids.push(tok.end_of_turn_id());
            data.push(crate::train::TrainExample {
                id: item.input_id.clone(),
                prompt_ids,
                target_ids,
                weight: item.weight,
            });
        }
        let mut config = self.ctx.config.train.clone();
        config.seed = job.seed;
        let work = self.ctx.run_dir.join("work").join(format!("train-{}", job.iteration));
        let mut trainer =
            crate::train::Trainer::new(config, &work).map_err(|e| CapabilityError::fatal(format!("{e:#}")))?;
        let mut report = |p: crate::train::TrainProgress| {
            progress(TrainProgressReport {
                step: p.step,
                loss: p.loss as f32,
                learning_rate: p.learning_rate as f32,
                tokens: p.target_tokens as u64,
            })
        };
        // Training is deterministic: a failure would fail again, so it is fatal
        // (never retried as if the worker were at fault).
        trainer
            .train(&mut model, &data, &mut report)
            .map_err(|e| CapabilityError::fatal(format!("training iteration {}: {e:#}", job.iteration)))?;
        let out = work.join("final");
        let _ = std::fs::remove_dir_all(&out);
        model.save(&out).map_err(|e| retryable("saving the checkpoint", e))?;
        let hash = self
            .blobs
            .put(&out)
            .map_err(|e| CapabilityError::retryable(format!("storing checkpoint {}: {e}", out.display())))?;
        let _ = std::fs::remove_dir_all(&work);
        Ok(CheckpointRef { hash, path: store::BlobStore::relative_path(&hash) })
    }
}

/// Generation at the inference temperature on a split, scored by the judge
/// and LongLaMP's lexical metrics; writes a JSON and a Markdown report.
pub struct TchEvaluator {
    ctx: Arc<RunContext>,
    judge_path: PathBuf,
}

impl TchEvaluator {
    /// An evaluator judging with the model at `judge_path`.
    pub fn new(ctx: Arc<RunContext>, judge_path: PathBuf) -> Self {
        Self { ctx, judge_path }
    }
}

impl Evaluate for TchEvaluator {
    fn evaluate(
        &mut self,
        checkpoint: &CheckpointRef,
        split: &str,
        system: &str,
        prompt: PromptKind,
    ) -> Result<EvalSummary, CapabilityError> {
        let split_v = match split {
            "validation" | "val" => Split::Val,
            "test" => Split::Test,
            "train" => Split::Train,
            other => return Err(CapabilityError::fatal(format!("unknown split {other:?}"))),
        };
        let model = load_model(&self.ctx.checkpoint_path(checkpoint))?;
        let report =
            evaluate_checkpoint(&self.ctx, &model, &checkpoint.hash, None, split_v, system, prompt, &self.judge_path)
                .map_err(|e| retryable("evaluation", e))?;
        let dir = self.ctx.run_dir.join("reports");
        // Named by the checkpoint too: the same system is evaluated on the
        // same split after several iterations.
        let stem = format!("{system}-{split}-{}", &events::digest_hex(&checkpoint.hash)[..12]);
        let path = write_report(&report, &dir, &stem)
            .map_err(|e| CapabilityError::retryable(format!("writing a report into {}: {e:#}", dir.display())))?;
        Ok(EvalSummary { scores: flat_scores(&report), report_path: path.to_string_lossy().into_owned() })
    }
}

/// Evaluates `model` (whose weights hash to `checkpoint`) on `split` the way
/// a run does: the run context's retrieval and prompt fitting
/// ([`RunContext::prompt_ids`]), its evaluation decoding (`[eval]`, stop
/// rules of `[sampling]`), a seeded subset of `eval.max_per_task` per task,
/// the LLM judge at `judge_path` with the run's rule, and LongLaMP's lexical
/// metrics. The one evaluation path of both the pipeline and `restpg eval`;
/// the report records the checkpoint and every setting
/// ([`crate::eval::Provenance`]).
///
/// # Errors
/// Prompt building, judge or METEOR loading, generation or scoring
/// failures.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_checkpoint(
    ctx: &RunContext,
    model: &LanguageModel,
    checkpoint: &events::Digest,
    run_id: Option<&str>,
    split: Split,
    system: &str,
    prompt: PromptKind,
    judge_path: &Path,
) -> anyhow::Result<crate::eval::EvalReport> {
    let cfg = &ctx.config.eval;
    let mut items = Vec::new();
    for ex in ctx.dataset.split(split) {
        let (_, prompt_ids) = ctx.prompt_ids(model.tokenizer(), &ex.id, prompt).map_err(|e| anyhow::anyhow!("{e}"))?;
        items.push(crate::eval::EvalItem {
            id: ex.id.clone(),
            task: ex.task,
            input: ex.input.clone(),
            expected: ex.output.clone(),
            prompt_ids,
        });
    }
    let items = crate::eval::subset(&items, cfg.max_per_task, ctx.config.seed);
    anyhow::ensure!(!items.is_empty(), "split {} of {} has no examples", split.name(), ctx.config.data.display());
    let settings = crate::eval::EvalSettings {
        sampling: SamplingSettings {
            temperature: f64::from(cfg.temperature),
            top_p: f64::from(cfg.top_p),
            top_k: None,
            max_new_tokens: cfg.max_new_tokens as usize,
            stop_tokens: model.tokenizer().eos_ids().to_vec(),
            stop_strings: ctx.config.sampling.stop_strings.clone(),
            separator: separator_stop(prompt),
        },
        seed: ctx.config.seed,
        batch_size: ctx.config.sampling.batch_size,
        ..Default::default()
    };
    // The evaluation judge is the LLM judge whatever the training reward
    // is (the paper reports the judge score and the lexical metrics).
    let mut judge = judge_model(ctx, judge_path)?;
    let meteor = crate::reward::meteor::Meteor::load_default()?;
    let mut generator: &LanguageModel = model;
    let mut report = crate::eval::evaluate(
        &mut generator,
        &items,
        &settings,
        system,
        split.name(),
        Some(&mut judge),
        Some(&meteor),
    )?;
    let judge_hash =
        store::hash_path(judge_path).map_err(|e| anyhow::anyhow!("hashing the judge {}: {e}", judge_path.display()))?;
    report.provenance = Some(crate::eval::Provenance {
        checkpoint: events::digest_hex(checkpoint),
        run_id: run_id.map(str::to_owned),
        prompt: match prompt {
            PromptKind::Plain => "plain".into(),
            PromptKind::Reasoning => "reasoning".into(),
            PromptKind::ReasoningGeneration => "reasoning-generation".into(),
        },
        retriever: ctx.retriever_name.clone(),
        k: ctx.config.retrieval.k,
        max_input_tokens: ctx.config.train.max_input_tokens,
        judge: format!(
            "{} ({})",
            judge_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            &events::digest_hex(&judge_hash)[..16]
        ),
        judge_rule: ctx.config.reward.rule.clone(),
        max_per_task: cfg.max_per_task,
    });
    Ok(report)
}

/// The LLM judge on the model at `path`, with the run's rule and templates.
fn judge_model(ctx: &RunContext, path: &Path) -> anyhow::Result<crate::reward::Judge<LanguageModel>> {
    let model = LanguageModel::load(path, tch::Device::Cpu)?;
    let rule = match ctx.config.reward.rule.as_str() {
        "expected" => crate::reward::ScoreRule::Expected,
        _ => crate::reward::ScoreRule::Argmax,
    };
    let config = crate::reward::JudgeConfig {
        rule,
        batch_size: ctx.config.reward.batch_size,
        template: crate::reward::judge::templates_judge(ctx.templates.clone()),
        ..Default::default()
    };
    crate::reward::Judge::new(model, config)
}

/// The configured reward spec: Σ weight · metric over the LLM judge and the
/// lexical metrics, each in [0, 1]. The judge's score distribution is kept.
pub struct SpecReward {
    terms: Vec<(f64, crate::reward::Metric)>,
    judge: Option<crate::reward::Judge<LanguageModel>>,
    meteor: Option<crate::reward::meteor::Meteor>,
}

impl SpecReward {
    /// Builds the terms of `ctx.config.reward.name`; loads the judge model
    /// only when the judge takes part, METEOR's data only when it does.
    ///
    /// # Errors
    /// A bad spec, or a judge or METEOR resource that does not load.
    pub fn new(ctx: &RunContext, judge_path: &Path) -> anyhow::Result<Self> {
        let spec: crate::reward::RewardSpec = ctx.config.reward.name.parse()?;
        let judge = if spec.uses_judge() { Some(judge_model(ctx, judge_path)?) } else { None };
        let meteor = if spec.uses_meteor() { Some(crate::reward::meteor::Meteor::load_default()?) } else { None };
        Ok(Self { terms: spec.terms, judge, meteor })
    }

    /// Rewards of `items`, in order.
    ///
    /// # Errors
    /// Judge failures.
    pub fn score(&mut self, items: &[crate::reward::RewardInput]) -> anyhow::Result<Vec<crate::reward::RewardOutput>> {
        use crate::reward::{Metric, Reward};
        let judged = match self.judge.as_mut() {
            Some(j) => Some(j.score(items)?),
            None => None,
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let response = crate::reward::nonempty(&item.response);
            let mut reward = 0.0f64;
            let mut distribution = None;
            for (w, m) in &self.terms {
                let v = match m {
                    Metric::Judge => {
                        let j = &judged.as_ref().expect("judge loaded when the spec uses it")[i];
                        distribution = j.distribution.clone();
                        f64::from(j.reward)
                    }
                    lexical => match &response {
                        Some(r) => crate::reward::lexical_value(*lexical, self.meteor.as_ref(), &item.expected, r),
                        None => 0.0,
                    },
                };
                reward += w * v;
            }
            out.push(crate::reward::RewardOutput {
                reward: reward as f32,
                distribution,
                empty_response: response.is_none(),
            });
        }
        Ok(out)
    }
}

/// Scores of a report as (`task/metric` or `macro/metric`, value).
fn flat_scores(report: &crate::eval::EvalReport) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> =
        report.macro_average.iter().map(|(m, v)| (format!("macro/{}", m.name()), *v)).collect();
    for (task, scores) in &report.per_task {
        for (m, v) in &scores.means {
            out.push((format!("{task}/{}", m.name()), *v));
        }
    }
    out
}

/// Writes `report` as `<stem>.json` and `<stem>.md` (owner-only files) and
/// returns the JSON's path.
fn write_report(report: &crate::eval::EvalReport, dir: &Path, stem: &str) -> anyhow::Result<PathBuf> {
    store::create_private_dir(dir)?;
    let json = dir.join(format!("{stem}.json"));
    store::write_private_file(&json, serde_json::to_string_pretty(report)?.as_bytes())?;
    store::write_private_file(dir.join(format!("{stem}.md")), report.to_markdown().as_bytes())?;
    Ok(json)
}
