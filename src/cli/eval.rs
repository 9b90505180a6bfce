//! `restpg eval` and `restpg compare`.
//!
//! `eval` evaluates a checkpoint exactly as a run's evaluator does
//! ([`crate::engine::evaluator::evaluate_checkpoint`]: the run's retriever and
//! prompt fitting, its decoding, judge and engines), with the settings of `--run` (or the
//! paper's defaults) and any flag given on top; it writes `report.json`
//! (recording the checkpoint's hash and every setting) and `report.md` into
//! `--out`. `compare` pairs two such reports by example id and writes the
//! paired t-test table (`comparison.md`, `comparison.json`).

use crate::config::RunConfig;
use crate::data::Split;
use crate::engine::evaluator::{evaluate_checkpoint, EvalModel};
use crate::eval::{compare, EvalReport};
use crate::pipeline::RunContext;
use crate::reward::ScoreRule;
use actors::capability::PromptKind;
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

/// Arguments of `restpg eval`. Every setting left out is the run's (with
/// `--run`) or the paper's default (Appendix B, as in `RunConfig`).
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A run directory: its configuration (data, retriever, k, budgets,
    /// judge and its rule, decoding, seed) is the default of every setting,
    /// and its last logged checkpoint the default model.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// The policy: a `.gguf` file or a Hugging Face directory (a run's
    /// `blobs/<hash>`); required without `--run`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The data set folder (`restpg data` output); required without `--run`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Split to evaluate: val or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Prompt of the system (default: the run's method's, else plain).
    #[arg(long, value_enum)]
    pub system: Option<SystemKind>,
    /// Label of the system in reports (default: the run's method, else the
    /// system kind).
    #[arg(long)]
    pub name: Option<String>,
    /// Judge model (default: the run's judge, else the policy model).
    #[arg(long)]
    pub judge: Option<PathBuf>,
    /// Judge rule: argmax (paper) or expected (G-Eval).
    #[arg(long)]
    pub judge_rule: Option<ScoreRule>,
    /// Retriever: bm25 or dense.
    #[arg(long)]
    pub retriever: Option<String>,
    /// At most this many examples per task (seeded random subset).
    #[arg(long)]
    pub max_per_task: Option<usize>,
    /// Run seed (subset and sampling).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sampling temperature (paper: 0.1).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus mass.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Maximum new tokens (paper: 1,536).
    #[arg(long)]
    pub max_new_tokens: Option<u32>,
    /// Input token budget for prompt fitting (paper: 5,120).
    #[arg(long)]
    pub max_input_tokens: Option<usize>,
    /// Retrieved profile items (paper: 5).
    #[arg(long)]
    pub k: Option<usize>,
    /// Prompts per generation batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The engines to generate and judge on: `run` (the run's `[engine.policy]`
    /// and `[engine.judge]`; the embedded engine without `--run`) or `tch`
    /// (the embedded engine for both, e.g. to compare a served run with it).
    #[arg(long, value_enum, default_value_t = EvalEngine::Run)]
    pub engine: EvalEngine,
    /// Output folder for report.json and report.md.
    #[arg(long)]
    pub out: PathBuf,
}

/// Which engines `restpg eval` runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvalEngine {
    /// The run's configured engines.
    Run,
    /// The embedded tch engine for generation and judging.
    Tch,
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

/// The run configuration `restpg eval` evaluates with: the run's (or the
/// defaults), then each flag given. Returns it with the run's id and the
/// model to evaluate.
fn resolve(args: &EvalArgs) -> Result<(RunConfig, Option<String>, PathBuf)> {
    let (mut config, run_id, last) = match &args.run {
        Some(dir) => {
            let path = dir.join("config.toml");
            let config = RunConfig::load(&path)
                .map(|(c, _)| c)
                .with_context(|| format!("reading the run's {}", path.display()))?;
            let (run_id, last) = last_checkpoint(dir)?;
            (config, Some(run_id), last.map(|p| dir.join(p)))
        }
        None => (RunConfig::default(), None, None),
    };
    match (&args.data, &args.run) {
        (Some(d), _) => config.data = d.clone(),
        (None, None) => anyhow::bail!("--data is required without --run"),
        (None, Some(_)) => {}
    }
    if let Some(v) = &args.judge_rule {
        config.reward.rule = *v;
    }
    if let Some(v) = &args.retriever {
        config.retrieval.retriever = v.clone();
    }
    if let Some(v) = args.k {
        config.retrieval.k = v;
    }
    if let Some(v) = args.max_per_task {
        config.eval.max_per_task = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.temperature {
        config.eval.temperature = v;
    }
    if let Some(v) = args.top_p {
        config.eval.top_p = v;
    }
    if let Some(v) = args.max_new_tokens {
        config.eval.max_new_tokens = v;
    }
    if let Some(v) = args.max_input_tokens {
        config.train.max_input_tokens = v;
    }
    if let Some(v) = args.batch_size {
        config.sampling.batch_size = v;
    }
    if let Some(j) = &args.judge {
        config.model.judge = Some(j.clone());
    }
    if args.engine == EvalEngine::Tch {
        config.engine.policy = crate::engine::RoleEngine::default();
        config.engine.judge = crate::engine::RoleEngine::default();
    }
    config.validate()?;
    let model = match (&args.model, last) {
        (Some(m), _) => m.clone(),
        (None, Some(last)) => last,
        (None, None) if args.run.is_some() => anyhow::bail!("the run logs no checkpoint yet: pass --model"),
        (None, None) => anyhow::bail!("--model is required without --run"),
    };
    Ok((config, run_id, model))
}

/// The run id and the path (relative to the run directory) of the last
/// checkpoint a run's log holds.
fn last_checkpoint(run_dir: &Path) -> Result<(String, Option<String>)> {
    let reader = store::LogReader::open(store::RunDir::new(run_dir).log(), None)
        .with_context(|| format!("opening the log of {}", run_dir.display()))?;
    let mut run_id = String::new();
    let mut last = None;
    for record in reader.iter() {
        let record = record.with_context(|| format!("reading the log of {}", run_dir.display()))?;
        run_id = record.run_id.clone();
        if let events::Event::CheckpointSaved { path, .. } = record.payload {
            last = Some(path);
        }
    }
    Ok((run_id, last))
}

/// Runs `restpg eval`: the run's own evaluation path
/// ([`crate::engine::evaluator::evaluate_checkpoint`]) on any checkpoint.
///
/// # Errors
/// A bad flag or configuration, a missing data set or model, or an
/// evaluation failure.
pub fn run_eval(args: EvalArgs) -> Result<()> {
    let split: Split = args.split.parse()?;
    let (config, run_id, model_path) = resolve(&args)?;
    let system = args.system.unwrap_or(match (&args.run, config.method.uses_reasoning()) {
        (Some(_), true) => SystemKind::Reasoning,
        _ => SystemKind::Plain,
    });
    let prompt = match system {
        SystemKind::Plain => PromptKind::Plain,
        SystemKind::Reasoning => PromptKind::Reasoning,
    };
    let judge_path = match &config.model.judge {
        Some(j) => j.clone(),
        None if args.run.is_some() => crate::paths::require(crate::paths::smollm2_gguf())?,
        None => model_path.clone(),
    };
    let name = args.name.clone().unwrap_or_else(|| match &args.run {
        Some(_) => config.method.as_str().to_owned(),
        None => format!("{system:?}").to_lowercase(),
    });
    crate::config::apply_torch_threads(None, config.model.threads)?;
    let hash = store::hash_path(&model_path).with_context(|| format!("hashing {}", model_path.display()))?;
    store::create_private_dir(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let ctx_dir = args.run.clone().unwrap_or_else(|| args.out.clone());
    let ctx = RunContext::build(config, &ctx_dir)?;
    let model = EvalModel { path: model_path, hash };
    let report = evaluate_checkpoint(&ctx, &model, run_id.as_deref(), split, &name, prompt, &judge_path)?;
    report.write(&args.out, "report")?;
    println!("{}", report.to_markdown());
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
