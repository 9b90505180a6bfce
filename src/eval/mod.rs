//! Evaluation as in the paper (§4 and Appendix B): generate for the
//! validation or test split at temperature 0.1 with nucleus sampling, score
//! every response with the LLM judge and with LongLaMP's ROUGE-1, ROUGE-L and
//! METEOR, report per task and the macro average over tasks, and compare two
//! systems with a paired two-tailed t-test on the same examples ([`ttest`]).
//!
//! Prompt construction (plain or reasoning template, retrieval) belongs to
//! the pipeline: [`evaluate`] takes ready prompt ids ([`EvalItem`]). Each
//! example's sampling seed derives from the run seed and the example id, so a
//! report does not depend on batch composition or order. Per-example scores
//! are kept in the report ([`ExampleScore`]) so that [`compare`] can pair
//! them by id. Reports serialise to JSON and render as Markdown; [`report`]
//! writes them.

pub mod format;
pub mod plots;
pub mod report;
pub mod table;
pub mod table1;
pub mod ttest;

use crate::data::Task;
use crate::lm::{FinishReason, GenerationRequest, LanguageModel, SamplingSettings};
use crate::reward::{response_of, Metric, Reward, RewardInput, Scorers};
use anyhow::{bail, ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};

/// One example to evaluate: its prompt (already built by the pipeline) and
/// what the judge and metrics need.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalItem {
    /// Example id (pairs examples across systems).
    pub id: String,
    /// Its task.
    pub task: Task,
    /// Prompt token ids for the policy.
    pub prompt_ids: Vec<u32>,
    /// The expected output y.
    pub expected: String,
    /// The task input x (shown to the judge).
    pub input: String,
}

/// Evaluation settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalSettings {
    /// Decoding (paper: temperature 0.1, nucleus sampling).
    pub sampling: SamplingSettings,
    /// Run seed; each example's seed is derived from it and the example id.
    pub seed: u64,
    /// Prompts generated together.
    pub batch_size: usize,
    /// Metrics to report (the judge only when a judge is supplied).
    pub metrics: Vec<Metric>,
}

impl Default for EvalSettings {
    /// Paper settings: temperature 0.1, top-p 0.95, up to 1,536 new tokens;
    /// judge, ROUGE-1, ROUGE-L and METEOR.
    fn default() -> Self {
        EvalSettings {
            sampling: SamplingSettings {
                temperature: 0.1,
                top_p: 0.95,
                top_k: None,
                max_new_tokens: 1536,
                ..Default::default()
            },
            seed: 0,
            batch_size: 8,
            metrics: vec![Metric::Judge, Metric::Rouge1, Metric::RougeL, Metric::Meteor],
        }
    }
}

/// Something that writes text for prompts: the tch model, or a stand-in.
pub trait TextGenerator {
    /// One text per request, in order.
    ///
    /// # Errors
    /// Model failures.
    fn generate_texts(&mut self, reqs: &[GenerationRequest]) -> Result<Vec<String>>;

    /// One text per request with why it ended, in order; the default calls
    /// [`TextGenerator::generate_texts`] and reports no reason.
    ///
    /// # Errors
    /// Model failures.
    fn generate_finished(&mut self, reqs: &[GenerationRequest]) -> Result<Vec<(String, Option<FinishReason>)>> {
        Ok(self.generate_texts(reqs)?.into_iter().map(|t| (t, None)).collect())
    }
}

impl TextGenerator for &LanguageModel {
    fn generate_texts(&mut self, reqs: &[GenerationRequest]) -> Result<Vec<String>> {
        Ok(self.generate(reqs)?.into_iter().map(|g| g.text).collect())
    }

    fn generate_finished(&mut self, reqs: &[GenerationRequest]) -> Result<Vec<(String, Option<FinishReason>)>> {
        Ok(self.generate(reqs)?.into_iter().map(|g| (g.text, Some(g.finish))).collect())
    }
}

/// The seed of one example: blake3 of the run seed and the id, first 8 bytes.
pub fn example_seed(run_seed: u64, id: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"restpg-eval-seed");
    h.update(&run_seed.to_le_bytes());
    h.update(id.as_bytes());
    let b = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&b.as_bytes()[..8]);
    u64::from_le_bytes(x)
}

/// A seeded random subset of at most `max_per_task` items per task, in the
/// original order (the paper evaluates ≤ 1,024 validation examples per task).
pub fn subset(items: &[EvalItem], max_per_task: usize, seed: u64) -> Vec<EvalItem> {
    let mut by_task: BTreeMap<Task, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        by_task.entry(it.task).or_default().push(i);
    }
    let mut keep = BTreeSet::new();
    for (task, mut idx) in by_task {
        if idx.len() > max_per_task {
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ example_seed(seed, task.name()));
            idx.shuffle(&mut rng);
            idx.truncate(max_per_task);
        }
        keep.extend(idx);
    }
    keep.into_iter().map(|i| items[i].clone()).collect()
}

/// Scores of one example.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExampleScore {
    /// Example id.
    pub id: String,
    /// Its task.
    pub task: Task,
    /// The raw generation.
    pub generated: String,
    /// The response part that was scored (empty when missing).
    pub response: String,
    /// Whether the response was empty (all scores 0).
    pub empty_response: bool,
    /// Metric name → value in [0, 1].
    pub scores: BTreeMap<Metric, f64>,
    /// The judge's distribution over scores 0..=10, when judged.
    pub judge_distribution: Option<Vec<f32>>,
    /// Why the generation ended (`None` in reports written before it was
    /// recorded, or from a generator that does not say).
    #[serde(default)]
    pub finish: Option<FinishReason>,
}

/// Means of one task.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskScores {
    /// Number of examples.
    pub n: usize,
    /// Examples with an empty response.
    pub empty_responses: usize,
    /// Metric → mean over the task's examples.
    pub means: BTreeMap<Metric, f64>,
}

/// An evaluation of one system on one split.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    /// System label (e.g. "plain", "reasoning", a checkpoint name).
    pub system: String,
    /// Split name (val/test).
    pub split: String,
    /// Settings used.
    pub settings: EvalSettings,
    /// Task name → scores.
    pub per_task: BTreeMap<String, TaskScores>,
    /// Metric → mean of the per-task means (macro average).
    pub macro_average: BTreeMap<Metric, f64>,
    /// Every example's scores, in evaluation order.
    pub examples: Vec<ExampleScore>,
    /// The checkpoint and every setting besides `settings` that the numbers
    /// depend on (absent in reports written before it was recorded).
    #[serde(default)]
    pub provenance: Option<Provenance>,
    /// How many generations follow the template's format
    /// ([`format::FormatRates`]; absent when the generator did not report
    /// why its generations ended, and in older reports).
    #[serde(default)]
    pub format: Option<format::FormatRates>,
}

/// What an evaluation's numbers depend on besides its sampling settings:
/// which weights, and how prompts were built and judged.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// blake3 of the evaluated checkpoint (its blob hash in a run, the
    /// file's hash for a GGUF file), hex.
    pub checkpoint: String,
    /// The run the settings came from, when evaluated with `--run`.
    pub run_id: Option<String>,
    /// Which prompt: `plain` or `reasoning`.
    pub prompt: String,
    /// The retriever (`bm25`, a dense encoder's name).
    pub retriever: String,
    /// Profile items retrieved.
    pub k: usize,
    /// Prompt token budget.
    pub max_input_tokens: usize,
    /// The judge model's file name and its blake3 (hex, first 16).
    pub judge: String,
    /// The judge's scoring rule (`argmax`, `expected`).
    pub judge_rule: String,
    /// Examples per task.
    pub max_per_task: usize,
    /// The engine that generated: `tch`, or `openai` with the server's
    /// version and prompt format; `tch` in reports written before it was
    /// recorded.
    #[serde(default = "tch_label")]
    pub policy_engine: String,
    /// The engine the judge ran on, likewise.
    #[serde(default = "tch_label")]
    pub judge_engine: String,
}

/// The engine of every report written before engines were recorded.
fn tch_label() -> String {
    events::Backend::Tch.to_string()
}

impl Provenance {
    /// The settings in which `self` and `other` differ, as
    /// `field: a vs b` (the checkpoint and run are not settings).
    pub fn differences(&self, other: &Provenance) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}: {a} vs {b}"));
            }
        };
        cmp("prompt", self.prompt.clone(), other.prompt.clone());
        cmp("retriever", self.retriever.clone(), other.retriever.clone());
        cmp("k", self.k.to_string(), other.k.to_string());
        cmp("max_input_tokens", self.max_input_tokens.to_string(), other.max_input_tokens.to_string());
        cmp("judge", self.judge.clone(), other.judge.clone());
        cmp("judge_rule", self.judge_rule.clone(), other.judge_rule.clone());
        cmp("max_per_task", self.max_per_task.to_string(), other.max_per_task.to_string());
        cmp("policy_engine", self.policy_engine.clone(), other.policy_engine.clone());
        cmp("judge_engine", self.judge_engine.clone(), other.judge_engine.clone());
        out
    }
}

/// Scores already generated texts (the part of [`evaluate`] after
/// generation; also used by the `score` path and tests).
///
/// # Errors
/// Judge failures; a judge metric requested without a judge; METEOR or
/// `similarity` requested without its scorer in `scorers`.
pub fn score_generations(
    items: &[EvalItem],
    generated: &[String],
    metrics: &[Metric],
    mut judge: Option<&mut dyn Reward>,
    scorers: &Scorers,
) -> Result<Vec<ExampleScore>> {
    ensure!(items.len() == generated.len(), "{} items but {} generations", items.len(), generated.len());
    if metrics.contains(&Metric::Judge) && judge.is_none() {
        bail!("the judge metric was requested but no judge was given");
    }
    if metrics.contains(&Metric::Meteor) && scorers.meteor.is_none() {
        bail!("METEOR was requested but its data is not loaded");
    }
    if metrics.contains(&Metric::Similarity) && scorers.similarity.is_none() {
        bail!("similarity was requested but its sentence encoder is not loaded");
    }
    // The one place a raw generation is split: every metric sees this.
    let responses: Vec<Option<String>> = generated.iter().map(|g| response_of(g)).collect();
    let judged = match (&mut judge, metrics.contains(&Metric::Judge)) {
        (Some(j), true) => {
            let inputs: Vec<RewardInput> = items
                .iter()
                .zip(&responses)
                .map(|(it, r)| RewardInput {
                    input: it.input.clone(),
                    expected: it.expected.clone(),
                    response: r.clone().unwrap_or_default(),
                })
                .collect();
            Some(j.score(&inputs)?)
        }
        _ => None,
    };
    // Every other metric scores the non-empty responses in one batch.
    let mut other: BTreeMap<Metric, Vec<f64>> = BTreeMap::new();
    let scored: Vec<usize> = (0..items.len()).filter(|k| responses[*k].is_some()).collect();
    for m in metrics.iter().filter(|m| **m != Metric::Judge) {
        let pairs: Vec<(&str, &str)> =
            scored.iter().map(|k| (items[*k].expected.as_str(), responses[*k].as_deref().unwrap_or(""))).collect();
        let mut values = vec![0.0; items.len()];
        for (k, v) in scored.iter().zip(scorers.values(*m, &pairs)?) {
            values[*k] = v;
        }
        other.insert(*m, values);
    }
    let mut out = Vec::with_capacity(items.len());
    for (k, (it, g)) in items.iter().zip(generated).enumerate() {
        let response = responses[k].clone();
        let mut scores = BTreeMap::new();
        let mut dist = None;
        for m in metrics {
            let v = match (m, &response) {
                (_, None) => 0.0,
                (Metric::Judge, Some(_)) => {
                    let r = &judged.as_ref().context("judge outputs")?[k];
                    dist = r.distribution.clone();
                    f64::from(r.reward)
                }
                (m, Some(_)) => other[m][k],
            };
            scores.insert(*m, v);
        }
        out.push(ExampleScore {
            id: it.id.clone(),
            task: it.task,
            generated: g.clone(),
            response: response.clone().unwrap_or_default(),
            empty_response: response.is_none(),
            scores,
            judge_distribution: dist,
            finish: None,
        });
    }
    Ok(out)
}

/// The format rates of `examples` (generations of a prompt with a reasoning
/// part when `reasoning`), or `None` when any example lacks its finish
/// reason.
pub fn format_rates(examples: &[ExampleScore], reasoning: bool) -> Option<format::FormatRates> {
    let mut rates = format::FormatRates::new(reasoning);
    for ex in examples {
        let finish = ex.finish?;
        rates.add(format::FormatCheck::of_generation(&ex.generated, finish), finish);
    }
    Some(rates)
}

/// Builds the per-task means, the macro average and the format rates from
/// example scores.
pub fn summarize(system: &str, split: &str, settings: EvalSettings, examples: Vec<ExampleScore>) -> EvalReport {
    let mut per_task: BTreeMap<String, TaskScores> = BTreeMap::new();
    for ex in &examples {
        let t = per_task.entry(ex.task.name().to_string()).or_insert(TaskScores {
            n: 0,
            empty_responses: 0,
            means: BTreeMap::new(),
        });
        t.n += 1;
        t.empty_responses += usize::from(ex.empty_response);
        for (m, v) in &ex.scores {
            *t.means.entry(*m).or_insert(0.0) += v;
        }
    }
    for t in per_task.values_mut() {
        for v in t.means.values_mut() {
            *v /= t.n as f64;
        }
    }
    let mut macro_average = BTreeMap::new();
    for m in &settings.metrics {
        let vals: Vec<f64> = per_task.values().filter_map(|t| t.means.get(m).copied()).collect();
        if !vals.is_empty() {
            macro_average.insert(*m, vals.iter().sum::<f64>() / vals.len() as f64);
        }
    }
    let format = format_rates(&examples, settings.sampling.separator.is_some());
    EvalReport {
        system: system.to_string(),
        split: split.to_string(),
        settings,
        per_task,
        macro_average,
        examples,
        provenance: None,
        format,
    }
}

/// Generates for every item and scores the results.
///
/// # Errors
/// Invalid settings, model or judge failures.
pub fn evaluate(
    generator: &mut dyn TextGenerator,
    items: &[EvalItem],
    settings: &EvalSettings,
    system: &str,
    split: &str,
    judge: Option<&mut dyn Reward>,
    scorers: &Scorers,
) -> Result<EvalReport> {
    settings.sampling.validate()?;
    ensure!(settings.batch_size > 0, "eval batch_size must be at least 1");
    let mut seen = BTreeSet::new();
    for it in items {
        ensure!(seen.insert(it.id.as_str()), "duplicate example id {:?} in the evaluation set", it.id);
    }
    let mut generated = Vec::with_capacity(items.len());
    for chunk in items.chunks(settings.batch_size) {
        let reqs: Vec<GenerationRequest> = chunk
            .iter()
            .map(|it| GenerationRequest {
                prompt_ids: it.prompt_ids.clone(),
                seed: example_seed(settings.seed, &it.id),
                settings: settings.sampling.clone(),
            })
            .collect();
        let texts = generator.generate_finished(&reqs)?;
        ensure!(texts.len() == chunk.len(), "generator returned {} texts for {} prompts", texts.len(), chunk.len());
        generated.extend(texts);
        tracing::info!(done = generated.len(), total = items.len(), "eval generation");
    }
    let metrics: Vec<Metric> =
        settings.metrics.iter().copied().filter(|m| *m != Metric::Judge || judge.is_some()).collect();
    let (texts, finishes): (Vec<String>, Vec<Option<FinishReason>>) = generated.into_iter().unzip();
    let mut examples = score_generations(items, &texts, &metrics, judge, scorers)?;
    for (ex, finish) in examples.iter_mut().zip(finishes) {
        ex.finish = finish;
    }
    let mut s = settings.clone();
    s.metrics = metrics;
    Ok(summarize(system, split, s, examples))
}

fn fmt_metric_header(metrics: &[Metric]) -> (String, String) {
    let names: Vec<&str> = metrics.iter().map(|m| m.name()).collect();
    (format!("| task | n | {} |", names.join(" | ")), format!("|---|---:|{}", "---:|".repeat(metrics.len())))
}

impl EvalReport {
    /// Metrics present in the report, canonical order.
    pub fn metrics(&self) -> Vec<Metric> {
        Metric::ALL.iter().copied().filter(|m| self.macro_average.contains_key(m)).collect()
    }

    /// A Markdown table: one row per task and the macro average.
    pub fn to_markdown(&self) -> String {
        let metrics = self.metrics();
        let (h, sep) = fmt_metric_header(&metrics);
        let mut s = format!("## Evaluation: {} on {}\n\n{h}\n{sep}\n", self.system, self.split);
        for (task, t) in &self.per_task {
            let vals: Vec<String> =
                metrics.iter().map(|m| t.means.get(m).map_or("–".into(), |v| format!("{v:.4}"))).collect();
            s.push_str(&format!("| {task} | {} | {} |\n", t.n, vals.join(" | ")));
        }
        let n: usize = self.per_task.values().map(|t| t.n).sum();
        let vals: Vec<String> = metrics.iter().map(|m| format!("{:.4}", self.macro_average[m])).collect();
        s.push_str(&format!("| **macro average** | {n} | {} |\n", vals.join(" | ")));
        let empty: usize = self.per_task.values().map(|t| t.empty_responses).sum();
        s.push_str(&format!(
            "\nEmpty responses (scored 0): {empty}. Decoding: temperature {}, top-p {}, ≤ {} new tokens, seed {}.\n",
            shortest(self.settings.sampling.temperature),
            shortest(self.settings.sampling.top_p),
            self.settings.sampling.max_new_tokens,
            self.settings.seed
        ));
        if let Some(f) = &self.format {
            s.push_str(&format!("Format: {}.\n", f.summary()));
        }
        if let Some(p) = &self.provenance {
            s.push_str(&format!("Generated on {}; judged on {}.\n", p.policy_engine, p.judge_engine));
        }
        s
    }
}

/// A setting in its shortest form. Run configurations hold temperatures and
/// nucleus masses as `f32`; widened to `f64` they print as
/// `0.10000000149011612`. A value that is exactly an `f32` prints as that
/// `f32` (`0.1`); any other prints as the `f64` it is.
pub fn shortest(v: f64) -> String {
    let narrow = v as f32;
    if f64::from(narrow) == v {
        narrow.to_string()
    } else {
        v.to_string()
    }
}

/// One cell of a comparison: system A vs B on one task and metric.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComparisonCell {
    /// Task name, or "macro" for the macro average (no test there).
    pub task: String,
    /// Metric.
    pub metric: Metric,
    /// Mean of A.
    pub mean_a: f64,
    /// Mean of B.
    pub mean_b: f64,
    /// Paired t-test of A against B on the task's shared examples.
    pub test: Option<ttest::TTest>,
}

/// A comparison of two reports on the same examples.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    /// System A.
    pub system_a: String,
    /// System B.
    pub system_b: String,
    /// Cells, by task then metric.
    pub cells: Vec<ComparisonCell>,
}

/// Pairs the examples of `a` and `b` by id and runs a paired two-tailed
/// t-test per task and metric.
///
/// Columns are labelled by system and checkpoint (`rest-pg@1a2b3c4d`).
///
/// # Errors
/// Reports whose settings differ (naming every setting that differs:
/// decoding, seed, prompt, retrieval, judge, subset size), the same check
/// when only one report records its provenance, reports over different
/// example ids (naming up to five missing on each side), or an id's task
/// differs.
pub fn compare(a: &EvalReport, b: &EvalReport) -> Result<Comparison> {
    let mut differ = Vec::new();
    let (sa, sb) = (&a.settings.sampling, &b.settings.sampling);
    let mut cmp = |name: &str, x: String, y: String| {
        if x != y {
            differ.push(format!("{name}: {x} vs {y}"));
        }
    };
    cmp("temperature", sa.temperature.to_string(), sb.temperature.to_string());
    cmp("top_p", sa.top_p.to_string(), sb.top_p.to_string());
    cmp("top_k", format!("{:?}", sa.top_k), format!("{:?}", sb.top_k));
    cmp("max_new_tokens", sa.max_new_tokens.to_string(), sb.max_new_tokens.to_string());
    cmp("stop_strings", format!("{:?}", sa.stop_strings), format!("{:?}", sb.stop_strings));
    cmp("separator", format!("{:?}", sa.separator), format!("{:?}", sb.separator));
    cmp("seed", a.settings.seed.to_string(), b.settings.seed.to_string());
    match (&a.provenance, &b.provenance) {
        (Some(pa), Some(pb)) => differ.extend(pa.differences(pb)),
        (None, None) => {}
        (pa, _) => differ.push(format!(
            "provenance: only {} records its checkpoint and prompt settings",
            if pa.is_some() { &a.system } else { &b.system }
        )),
    }
    if !differ.is_empty() {
        bail!(
            "the reports were made with different settings, so their numbers are not comparable:\n  {}",
            differ.join("\n  ")
        );
    }
    let ia: BTreeMap<&str, &ExampleScore> = a.examples.iter().map(|e| (e.id.as_str(), e)).collect();
    let ib: BTreeMap<&str, &ExampleScore> = b.examples.iter().map(|e| (e.id.as_str(), e)).collect();
    let only_a: Vec<&str> = ia.keys().filter(|k| !ib.contains_key(*k)).take(5).copied().collect();
    let only_b: Vec<&str> = ib.keys().filter(|k| !ia.contains_key(*k)).take(5).copied().collect();
    if !only_a.is_empty() || !only_b.is_empty() {
        bail!(
            "the reports cover different examples: only in {}: {only_a:?}; only in {}: {only_b:?}",
            a.system,
            b.system
        );
    }
    let metrics: Vec<Metric> = a.metrics().into_iter().filter(|m| b.macro_average.contains_key(m)).collect();
    let mut by_task: BTreeMap<String, Vec<(&ExampleScore, &ExampleScore)>> = BTreeMap::new();
    for (id, ea) in &ia {
        let eb = ib[id];
        ensure!(
            ea.task == eb.task,
            "example {id:?} has task {} in {} but {} in {}",
            ea.task.name(),
            a.system,
            eb.task.name(),
            b.system
        );
        by_task.entry(ea.task.name().to_string()).or_default().push((ea, eb));
    }
    let mut cells = Vec::new();
    for (task, pairs) in &by_task {
        for m in &metrics {
            let xa: Vec<f64> = pairs.iter().map(|(x, _)| x.scores.get(m).copied().unwrap_or(0.0)).collect();
            let xb: Vec<f64> = pairs.iter().map(|(_, y)| y.scores.get(m).copied().unwrap_or(0.0)).collect();
            let n = xa.len() as f64;
            cells.push(ComparisonCell {
                task: task.clone(),
                metric: *m,
                mean_a: xa.iter().sum::<f64>() / n,
                mean_b: xb.iter().sum::<f64>() / n,
                test: ttest::paired_t_test(&xa, &xb).ok(),
            });
        }
    }
    for m in &metrics {
        let cs: Vec<&ComparisonCell> = cells.iter().filter(|c| c.metric == *m).collect();
        let k = cs.len() as f64;
        let (ma, mb) = (cs.iter().map(|c| c.mean_a).sum::<f64>() / k, cs.iter().map(|c| c.mean_b).sum::<f64>() / k);
        cells.push(ComparisonCell { task: "macro".into(), metric: *m, mean_a: ma, mean_b: mb, test: None });
    }
    let label = |r: &EvalReport| match &r.provenance {
        Some(p) => format!("{}@{}", r.system, &p.checkpoint[..p.checkpoint.len().min(8)]),
        None => r.system.clone(),
    };
    Ok(Comparison { system_a: label(a), system_b: label(b), cells })
}

impl Comparison {
    /// Markdown: per task and metric, both means, the difference, p, and †
    /// when p < 0.05 (paired two-tailed t-test, as the paper's Table 1).
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "## {} (A) vs {} (B)\n\n| task | metric | A | B | A − B | p | |\n|---|---|---:|---:|---:|---:|---|\n",
            self.system_a, self.system_b
        );
        for c in &self.cells {
            let (p, mark) = match &c.test {
                Some(t) if t.p.is_nan() => ("n/a".to_string(), ""),
                Some(t) => (format!("{:.4}", t.p), t.marker()),
                None => ("–".to_string(), ""),
            };
            s.push_str(&format!(
                "| {} | {} | {:.4} | {:.4} | {:+.4} | {p} | {mark} |\n",
                c.task,
                c.metric,
                c.mean_a,
                c.mean_b,
                c.mean_a - c.mean_b
            ));
        }
        s.push_str("\n† p < 0.05, paired two-tailed t-test on the same examples.\n");
        s
    }
}
