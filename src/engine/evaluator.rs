//! [`RunEvaluator`] and [`evaluate_checkpoint`], the one evaluation path of
//! a run and of `restpg eval`, on the engines the run names: generation on
//! `[engine.policy]` (the tch model, or a server launched for the
//! checkpoint), the LLM judge on `[engine.judge]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actors::capability::{CapabilityError, CheckpointRef, EvalSummary, Evaluate, PromptKind};

use crate::data::Split;
use crate::engine::openai::served::ServedModel;
use crate::engine::openai::server::Servers;
use crate::engine::openai::session::Session;
use crate::engine::openai::{OpenAiScorer, ServedGenerator};
use crate::engine::ServedRole;
use crate::lm::{ChatTokenizer, LanguageModel, SamplingSettings};
use crate::pipeline::RunContext;

/// Generation at the inference temperature on a split, scored by the judge
/// and LongLaMP's lexical metrics; writes a JSON and a Markdown report.
pub struct RunEvaluator {
    ctx: Arc<RunContext>,
    judge_path: PathBuf,
}

impl RunEvaluator {
    /// An evaluator judging with the model at `judge_path`.
    pub fn new(ctx: Arc<RunContext>, judge_path: PathBuf) -> Self {
        Self { ctx, judge_path }
    }
}

impl Evaluate for RunEvaluator {
    fn evaluate(
        &mut self,
        checkpoint: &CheckpointRef,
        split: Split,
        system: &str,
        prompt: PromptKind,
    ) -> Result<EvalSummary, CapabilityError> {
        let model = EvalModel { path: self.ctx.checkpoint_path(checkpoint), hash: checkpoint.hash };
        let report = evaluate_checkpoint(&self.ctx, &model, None, split, system, prompt, &self.judge_path)
            .map_err(|e| crate::engine::openai::failure::from_anyhow("evaluation", &e))?;
        let dir = store::RunDir::new(&self.ctx.run_dir).reports();
        // Named by the checkpoint too: the same system is evaluated on the
        // same split after several iterations.
        let stem = format!("{system}-{split}-{}", &events::digest_hex(&checkpoint.hash)[..12]);
        report
            .write(&dir, &stem)
            .map_err(|e| CapabilityError::retryable(format!("writing a report into {}: {e:#}", dir.display())))?;
        // The log names it relative to the run directory (`EvaluationDone`),
        // so a run directory can be moved or opened from anywhere.
        Ok(EvalSummary { scores: report.flat_scores(), report_path: format!("{}/{stem}.json", store::REPORTS) })
    }
}

/// The model an evaluation generates with.
#[derive(Debug, Clone)]
pub struct EvalModel {
    /// A checkpoint's blob directory (Hugging Face layout) or a GGUF file.
    pub path: PathBuf,
    /// Its content hash (the blob hash in a run, the file's hash otherwise):
    /// the report's checkpoint, and the key of a server launched for it.
    pub hash: events::Digest,
}

/// The generator of an evaluation on `[engine.policy]`'s engine.
enum Generator {
    Tch(LanguageModel),
    Served(ServedGenerator),
}

impl Generator {
    /// Loads `model` in tch, or serves it (a server launched for this
    /// evaluation and stopped when it ends).
    fn open(ctx: &RunContext, model: &EvalModel) -> anyhow::Result<Self> {
        let cfg = &ctx.config.engine.policy;
        match cfg.backend {
            events::Backend::Tch => Ok(Generator::Tch(
                crate::engine::tch::inference_model(ctx, &model.path).map_err(|e| anyhow::anyhow!("{e}"))?,
            )),
            events::Backend::OpenAi => {
                let tokenizer = LanguageModel::load_tokenizer(&model.path)?;
                let base = ServedModel::policy_gguf_base(&ctx.config)?;
                let served = ServedModel { key: model.hash, path: model.path.clone(), gguf_base: base };
                let session = Session::connect(
                    ServedRole::Policy,
                    cfg,
                    &served,
                    &Servers::default(),
                    &ctx.run_dir,
                    ctx.config.seed,
                )?;
                Ok(Generator::Served(ServedGenerator::new(
                    session,
                    tokenizer,
                    cfg.prompt_format,
                    cfg.request_extra.clone(),
                )))
            }
        }
    }

    fn tokenizer(&self) -> &ChatTokenizer {
        match self {
            Generator::Tch(m) => m.tokenizer(),
            Generator::Served(s) => s.tokenizer(),
        }
    }

    fn engine(&self) -> events::EngineInfo {
        match self {
            Generator::Tch(_) => events::EngineInfo::tch(),
            Generator::Served(s) => s.engine().clone(),
        }
    }
}

/// The LLM judge of an evaluation on `[engine.judge]`'s engine, and that
/// engine.
fn open_judge(
    ctx: &RunContext,
    judge_path: &Path,
) -> anyhow::Result<(Box<dyn crate::reward::Reward>, events::EngineInfo)> {
    let cfg = &ctx.config.engine.judge;
    let judge_config = crate::engine::run_reward::judge_config(ctx);
    match cfg.backend {
        events::Backend::Tch => {
            let model = crate::engine::tch::inference_model(ctx, judge_path).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((Box::new(crate::reward::Judge::new(model, judge_config)?), events::EngineInfo::tch()))
        }
        events::Backend::OpenAi => {
            let scorer = OpenAiScorer::connect(cfg, judge_path, &Servers::default(), &ctx.run_dir, ctx.config.seed)?;
            let engine = scorer.engine().clone();
            Ok((Box::new(crate::reward::Judge::new(scorer, judge_config)?), engine))
        }
    }
}

/// The decoding of evaluation and `restpg write`: `[eval]`'s temperature,
/// nucleus mass, budget and repetition guards, the stop rules of `[sampling]` (stop strings,
/// the model's end-of-sequence ids, and a second separator line for a
/// reasoning prompt).
pub fn inference_sampling(
    config: &crate::config::RunConfig,
    tokenizer: &ChatTokenizer,
    prompt: PromptKind,
) -> SamplingSettings {
    let sampling = config.eval.sampling();
    SamplingSettings {
        temperature: f64::from(sampling.temperature),
        top_p: f64::from(sampling.top_p),
        top_k: None,
        max_new_tokens: sampling.max_new_tokens as usize,
        stop_tokens: tokenizer.eos_ids().to_vec(),
        stop_strings: config.sampling.stop_strings.clone(),
        separator: crate::prompt::separator_stop(prompt),
        penalties: sampling.penalties,
    }
}

/// Evaluates `model` on `split` the way a run does: generation on
/// `[engine.policy]`'s engine, the run context's retrieval and prompt
/// fitting ([`RunContext::prompt_ids`]), its evaluation decoding (`[eval]`,
/// stop rules of `[sampling]`), a seeded subset of `eval.max_per_task` per
/// task, the LLM judge at `judge_path` on `[engine.judge]`'s engine with the
/// run's rule, and LongLaMP's lexical metrics. The one evaluation path of
/// both the pipeline and `restpg eval`; the report records the checkpoint,
/// both engines and every setting ([`crate::eval::Provenance`]).
///
/// # Errors
/// Prompt building, a model or judge that does not load or serve, METEOR
/// loading, generation or scoring failures (a server's named with its URL).
pub fn evaluate_checkpoint(
    ctx: &RunContext,
    model: &EvalModel,
    run_id: Option<&str>,
    split: Split,
    system: &str,
    prompt: PromptKind,
    judge_path: &Path,
) -> anyhow::Result<crate::eval::EvalReport> {
    let cfg = &ctx.config.eval;
    let mut generator = Generator::open(ctx, model)?;
    let mut items = Vec::new();
    for ex in ctx.dataset.split(split) {
        let (_, prompt_ids) =
            ctx.prompt_ids(generator.tokenizer(), &ex.id, prompt).map_err(|e| anyhow::anyhow!("{e}"))?;
        items.push(crate::eval::EvalItem {
            id: ex.id.clone(),
            task: ex.task,
            input: ex.input.clone(),
            expected: ex.output.clone(),
            prompt_ids,
        });
    }
    let items = crate::eval::subset(&items, cfg.max_per_task, ctx.config.seed);
    anyhow::ensure!(!items.is_empty(), "split {} of {} has no examples", split.file_stem(), ctx.config.data.display());
    let settings = crate::eval::EvalSettings {
        sampling: inference_sampling(&ctx.config, generator.tokenizer(), prompt),
        seed: ctx.config.seed,
        batch_size: ctx.config.sampling.batch_size,
        metrics: eval_metrics(&ctx.config.reward.name),
    };
    // The evaluation judge is the LLM judge whatever the training reward
    // is (the paper reports the judge score and the lexical metrics).
    let (mut judge, judge_engine) = open_judge(ctx, judge_path)?;
    let scorers = crate::reward::Scorers::for_metrics(&settings.metrics)?;
    let policy_engine = generator.engine();
    let mut report = match &mut generator {
        Generator::Tch(m) => {
            let mut g: &LanguageModel = m;
            crate::eval::evaluate(&mut g, &items, &settings, system, split.file_stem(), Some(judge.as_mut()), &scorers)?
        }
        Generator::Served(s) => {
            crate::eval::evaluate(s, &items, &settings, system, split.file_stem(), Some(judge.as_mut()), &scorers)?
        }
    };
    let judge_hash =
        store::hash_path(judge_path).map_err(|e| anyhow::anyhow!("hashing the judge {}: {e}", judge_path.display()))?;
    report.provenance = Some(crate::eval::Provenance {
        checkpoint: events::digest_hex(&model.hash),
        run_id: run_id.map(str::to_owned),
        prompt: prompt.as_str().into(),
        retriever: ctx.retriever_name.clone(),
        k: ctx.config.retrieval.k,
        max_input_tokens: ctx.config.train.max_input_tokens,
        judge: format!(
            "{} ({})",
            judge_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            &events::digest_hex(&judge_hash)[..16]
        ),
        judge_rule: ctx.config.reward.rule.as_str().to_owned(),
        max_per_task: cfg.max_per_task,
        policy_engine: engine_setting(&policy_engine),
        judge_engine: engine_setting(&judge_engine),
    });
    Ok(report)
}

/// An engine as an evaluation setting: what makes two reports' numbers
/// comparable, i.e. the backend, a server's version and how prompts were
/// sent (`tch`, `openai llama_cpp 0.3.36, text prompts`). Not the served
/// model's id: a server names it by the file it loaded (a checkpoint's
/// export, a path on this machine), and the report records the checkpoint
/// and the judge by hash already.
fn engine_setting(engine: &events::EngineInfo) -> String {
    let mut s = engine.backend.to_string();
    if engine.backend == events::Backend::OpenAi {
        s.push(' ');
        s.push_str(engine.server_version.as_deref().unwrap_or("(version not reported)"));
        if let Some(f) = engine.prompt_format {
            s.push_str(&format!(", {f} prompts"));
        }
    }
    s
}

/// The metrics of an evaluation: the paper's (judge, ROUGE-1, ROUGE-L,
/// METEOR) and every other metric the run's reward spec `reward` names (so a
/// run rewarded by `similarity` reports it too); the paper's alone when the
/// spec does not parse (the configuration's validation reports that).
fn eval_metrics(reward: &str) -> Vec<crate::reward::Metric> {
    let mut metrics = crate::eval::EvalSettings::default().metrics;
    if let Ok(spec) = reward.parse::<crate::reward::RewardSpec>() {
        for m in spec.metrics() {
            if !metrics.contains(&m) {
                metrics.push(m);
            }
        }
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::Metric;

    #[test]
    fn an_engine_setting_names_the_server_version_not_the_served_file() {
        assert_eq!(engine_setting(&events::EngineInfo::tch()), "tch");
        let served = |model: &str, version: &str| events::EngineInfo {
            backend: events::Backend::OpenAi,
            server_model: Some(model.into()),
            server_version: Some(version.into()),
            prompt_format: Some(events::PromptFormat::Text),
            deterministic: true,
            ..Default::default()
        };
        let theta1 = served("/runs/a/engines/1dfa.gguf", "llama_cpp 0.3.36");
        let theta2 = served("/other/copy/engines/852f.gguf", "llama_cpp 0.3.36");
        assert_eq!(engine_setting(&theta1), "openai llama_cpp 0.3.36, text prompts");
        assert_eq!(engine_setting(&theta1), engine_setting(&theta2), "two checkpoints on one engine compare");
        assert_ne!(engine_setting(&theta1), engine_setting(&served("x", "llama_cpp 0.3.40")));
    }

    #[test]
    fn evaluation_adds_the_rewards_metrics_to_the_papers() {
        let paper = vec![Metric::Judge, Metric::Rouge1, Metric::RougeL, Metric::Meteor];
        assert_eq!(eval_metrics("judge"), paper);
        let mut with = paper.clone();
        with.push(Metric::Similarity);
        assert_eq!(eval_metrics("0.5*similarity+0.5*meteor"), with);
    }
}
