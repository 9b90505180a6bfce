//! [`TchEvaluator`] and [`evaluate_checkpoint`], the one evaluation path of
//! a run and of `restpg eval`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actors::capability::{CapabilityError, CheckpointRef, EvalSummary, Evaluate, PromptKind};

use super::judge::judge_model;
use super::policy::separator_stop;
use super::{load_inference_model, retryable};
use crate::data::Split;
use crate::lm::{LanguageModel, SamplingSettings};
use crate::pipeline::RunContext;

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
        split: Split,
        system: &str,
        prompt: PromptKind,
    ) -> Result<EvalSummary, CapabilityError> {
        let model = load_inference_model(&self.ctx, &self.ctx.checkpoint_path(checkpoint), None)?;
        let report =
            evaluate_checkpoint(&self.ctx, &model, &checkpoint.hash, None, split, system, prompt, &self.judge_path)
                .map_err(|e| retryable("evaluation", e))?;
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

/// The decoding of evaluation and `restpg write`: `[eval]`'s temperature,
/// nucleus mass, budget and repetition guards, the stop rules of `[sampling]` (stop strings,
/// the model's end-of-sequence ids, and a second separator line for a
/// reasoning prompt).
pub fn inference_sampling(
    config: &crate::config::RunConfig,
    model: &LanguageModel,
    prompt: PromptKind,
) -> SamplingSettings {
    let sampling = config.eval.sampling();
    SamplingSettings {
        temperature: f64::from(sampling.temperature),
        top_p: f64::from(sampling.top_p),
        top_k: None,
        max_new_tokens: sampling.max_new_tokens as usize,
        stop_tokens: model.tokenizer().eos_ids().to_vec(),
        stop_strings: config.sampling.stop_strings.clone(),
        separator: separator_stop(prompt),
        penalties: sampling.penalties,
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
    anyhow::ensure!(!items.is_empty(), "split {} of {} has no examples", split.file_stem(), ctx.config.data.display());
    let settings = crate::eval::EvalSettings {
        sampling: inference_sampling(&ctx.config, model, prompt),
        seed: ctx.config.seed,
        batch_size: ctx.config.sampling.batch_size,
        metrics: eval_metrics(&ctx.config.reward.name),
    };
    // The evaluation judge is the LLM judge whatever the training reward
    // is (the paper reports the judge score and the lexical metrics).
    let mut judge = judge_model(ctx, judge_path)?;
    let scorers = crate::reward::Scorers::for_metrics(&settings.metrics)?;
    let mut generator: &LanguageModel = model;
    let mut report = crate::eval::evaluate(
        &mut generator,
        &items,
        &settings,
        system,
        split.file_stem(),
        Some(&mut judge),
        &scorers,
    )?;
    let judge_hash =
        store::hash_path(judge_path).map_err(|e| anyhow::anyhow!("hashing the judge {}: {e}", judge_path.display()))?;
    report.provenance = Some(crate::eval::Provenance {
        checkpoint: events::digest_hex(checkpoint),
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
    });
    Ok(report)
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
    fn evaluation_adds_the_rewards_metrics_to_the_papers() {
        let paper = vec![Metric::Judge, Metric::Rouge1, Metric::RougeL, Metric::Meteor];
        assert_eq!(eval_metrics("judge"), paper);
        let mut with = paper.clone();
        with.push(Metric::Similarity);
        assert_eq!(eval_metrics("0.5*similarity+0.5*meteor"), with);
    }
}
