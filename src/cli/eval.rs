//! `restpg eval` and `restpg compare`.
//!
//! `eval` loads a model and a data set, builds each example's prompt for the
//! chosen system (plain, or the reasoning template; BM25 retrieval of k = 5
//! profile items, fitted to the input budget), generates at temperature 0.1
//! with nucleus sampling, scores with the LLM judge (by default the same
//! model; `--judge` for another, `--no-judge` to skip) and LongLaMP's
//! ROUGE-1/ROUGE-L/METEOR, and writes `report.json` and `report.md` into
//! `--out`. `compare` pairs two such reports by example id and writes the
//! paired t-test table (`comparison.md`, `comparison.json`).

use crate::data::{Dataset, Split};
use crate::eval::{compare, evaluate, subset, EvalItem, EvalReport, EvalSettings};
use crate::lm::{LanguageModel, SamplingSettings};
use crate::prompt::{PromptKind, Templates};
use crate::retrieve::{retrieved_items, Bm25, Bm25Params, Retriever, DEFAULT_K};
use crate::reward::judge::{templates_judge, Judge, JudgeConfig, ScoreRule};
use crate::reward::meteor::Meteor;
use crate::reward::{Metric, Reward};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// Which prompt a system uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SystemKind {
    /// The plain prompt (SFT, ReST-EM): the model answers directly.
    Plain,
    /// The reasoning prompt (SFT+reasoning, REST-PG): reasoning, then
    /// the response after the separator; only the response is scored.
    Reasoning,
}

/// Arguments of `restpg eval`.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The policy: a `.gguf` file or a Hugging Face directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The data set folder (`restpg data` output).
    #[arg(long)]
    pub data: PathBuf,
    /// Split to evaluate: val or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Prompt of the system.
    #[arg(long, value_enum, default_value = "plain")]
    pub system: SystemKind,
    /// Label of the system in reports (default: the system kind).
    #[arg(long)]
    pub name: Option<String>,
    /// Judge model (default: the policy model).
    #[arg(long)]
    pub judge: Option<PathBuf>,
    /// Skip the LLM judge (lexical metrics only).
    #[arg(long)]
    pub no_judge: bool,
    /// Judge rule: argmax (paper) or expected (G-Eval).
    #[arg(long, default_value = "argmax")]
    pub judge_rule: String,
    /// Prompt templates folder (default: the built-in templates).
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// At most this many examples per task (seeded random subset).
    #[arg(long, default_value_t = 1024)]
    pub max_per_task: usize,
    /// Run seed (subset and sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampling temperature (paper: 0.1).
    #[arg(long, default_value_t = 0.1)]
    pub temperature: f64,
    /// Nucleus mass.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f64,
    /// Maximum new tokens (paper: 1,536).
    #[arg(long, default_value_t = 1536)]
    pub max_new_tokens: usize,
    /// Input token budget for prompt fitting (paper: 5,120).
    #[arg(long, default_value_t = 5120)]
    pub max_input_tokens: usize,
    /// Retrieved profile items (paper: 5).
    #[arg(long, default_value_t = DEFAULT_K)]
    pub k: usize,
    /// Prompts per generation batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Output folder for report.json and report.md.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `restpg compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Report of system A (`report.json` of `restpg eval`).
    pub a: PathBuf,
    /// Report of system B.
    pub b: PathBuf,
    /// Output folder for comparison.md and comparison.json (default: print Markdown only).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Reports hold users' text (inputs, expected and generated outputs):
/// written `0600` into a `0700` folder, like a run directory's.
fn write(path: &Path, text: &str) -> Result<()> {
    store::write_private_file(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Builds the evaluation items of `split` for `system`.
///
/// # Errors
/// Tokenizer or retrieval failures.
pub fn build_items(
    data: &Dataset,
    split: Split,
    system: SystemKind,
    templates: &Templates,
    model: &LanguageModel,
    k: usize,
    max_input_tokens: usize,
) -> Result<Vec<EvalItem>> {
    let tk = model.tokenizer();
    let mut retriever = Bm25::new(Bm25Params::default());
    let count = |s: &str| tk.encode(s).map(|v| v.len()).unwrap_or(usize::MAX);
    let kind = match system {
        SystemKind::Plain => PromptKind::Plain,
        SystemKind::Reasoning => PromptKind::ReasoningInput,
    };
    let mut items = Vec::new();
    for ex in data.split(split) {
        let ranked = retriever.retrieve(ex, k).with_context(|| format!("retrieving for example {:?}", ex.id))?;
        let retrieved = retrieved_items(ex, &ranked);
        let fitted = templates.fit(kind, ex, &retrieved, max_input_tokens, &count);
        let prompt_ids = tk.encode(&tk.chat_prompt(None, &fitted.prompt))?;
        items.push(EvalItem {
            id: ex.id.clone(),
            task: ex.task,
            prompt_ids,
            expected: ex.output.clone(),
            input: ex.input.clone(),
        });
    }
    Ok(items)
}

/// Runs `restpg eval`.
///
/// # Errors
/// Bad arguments, unreadable data or models, generation or judge failures.
pub fn run_eval(args: EvalArgs) -> Result<()> {
    let split: Split = args.split.parse()?;
    let rule = match args.judge_rule.as_str() {
        "argmax" => ScoreRule::Argmax,
        "expected" => ScoreRule::Expected,
        other => anyhow::bail!("unknown judge rule {other:?}: expected argmax or expected"),
    };
    let settings = EvalSettings {
        sampling: SamplingSettings {
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: None,
            max_new_tokens: args.max_new_tokens,
            stop_tokens: vec![],
        },
        seed: args.seed,
        batch_size: args.batch_size,
        metrics: vec![Metric::Judge, Metric::Rouge1, Metric::RougeL, Metric::Meteor],
    };
    settings.sampling.validate()?;
    let data = Dataset::load(&args.data).with_context(|| format!("loading data set {}", args.data.display()))?;
    let templates = match &args.prompts {
        Some(d) => Templates::load(d).with_context(|| format!("loading prompt templates from {}", d.display()))?,
        None => Templates::builtin(),
    };
    let device = tch::Device::cuda_if_available();
    let model =
        LanguageModel::load(&args.model, device).with_context(|| format!("loading model {}", args.model.display()))?;
    let items = build_items(&data, split, args.system, &templates, &model, args.k, args.max_input_tokens)?;
    let items = subset(&items, args.max_per_task, args.seed);
    anyhow::ensure!(!items.is_empty(), "split {} of {} has no examples", split.name(), args.data.display());
    let meteor = Meteor::load_default()?;
    let judge_model = match (&args.judge, args.no_judge) {
        (Some(p), false) => {
            Some(LanguageModel::load(p, device).with_context(|| format!("loading judge {}", p.display()))?)
        }
        _ => None,
    };
    let config = || JudgeConfig { rule, template: templates_judge(templates.clone()), ..JudgeConfig::default() };
    let mut owned_judge;
    let mut shared_judge;
    let judge: Option<&mut dyn Reward> = if args.no_judge {
        None
    } else if let Some(m) = judge_model {
        owned_judge = Judge::new(m, config())?;
        Some(&mut owned_judge)
    } else {
        shared_judge = Judge::new(&model, config())?;
        Some(&mut shared_judge)
    };
    let name = args.name.clone().unwrap_or_else(|| format!("{:?}", args.system).to_lowercase());
    let mut gen = &model;
    let report = evaluate(&mut gen, &items, &settings, &name, split.name(), judge, Some(&meteor))?;
    store::create_private_dir(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    write(&args.out.join("report.json"), &serde_json::to_string_pretty(&report)?)?;
    let md = report.to_markdown();
    write(&args.out.join("report.md"), &md)?;
    println!("{md}");
    Ok(())
}

fn read_report(p: &Path) -> Result<EvalReport> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not an evaluation report", p.display()))
}

/// Runs `restpg compare`.
///
/// # Errors
/// Unreadable reports or reports over different examples.
pub fn run_compare(args: CompareArgs) -> Result<()> {
    let a = read_report(&args.a)?;
    let b = read_report(&args.b)?;
    let c = compare(&a, &b)?;
    let md = c.to_markdown();
    if let Some(out) = &args.out {
        store::create_private_dir(out).with_context(|| format!("creating {}", out.display()))?;
        write(&out.join("comparison.json"), &serde_json::to_string_pretty(&c)?)?;
        write(&out.join("comparison.md"), &md)?;
    }
    println!("{md}");
    Ok(())
}
