//! `restpg train`, `restpg demo` and `restpg status`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;

use crate::config::RunConfig;
use crate::pipeline::{self, RunOptions, RunSummary};

/// Arguments of `restpg train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run configuration (TOML; every key optional, defaults are the
    /// paper's). Required unless `--resume`.
    #[arg(long, conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Run directory to create (default: `runs/<config file stem>`).
    #[arg(long, conflicts_with = "resume")]
    pub run_dir: Option<PathBuf>,
    /// Continue the run in this directory from where its log stops.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Test-only fault switch: the sampler pool's batch N (0-based) fails
    /// once with a panic, to exercise restart and re-issue.
    #[arg(long, hide = true, value_name = "N")]
    pub test_fault_sampler_once_at_batch: Option<usize>,
}

/// Arguments of `restpg demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to write the demo data set and run (default: `runs/demo`).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Users per task in the demo data set.
    #[arg(long, default_value_t = 12)]
    pub users: usize,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an existing demo directory instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `restpg status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The run directory.
    pub run_dir: PathBuf,
}

/// Runs `restpg train`.
///
/// # Errors
/// A bad configuration (before any work starts) or a failed run.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let fault = args.test_fault_sampler_once_at_batch.map(|n| actors::FaultPlan {
        sampler_fail_once_at_batch: n,
        panic: true,
        crash_after_samples: None,
        hang_ms: None,
    });
    let summary = if let Some(dir) = args.resume {
        pipeline::run(
            None,
            &RunOptions { run_dir: dir, resume: true, progress: !args.quiet && super::stderr_is_terminal(), fault },
        )?
    } else {
        let path = args.config.context("`restpg train` needs `--config RUN.toml` or `--resume RUN_DIR`")?;
        let (config, _) = RunConfig::load(&path)?;
        config.validate()?;
        let run_dir = args.run_dir.unwrap_or_else(|| {
            Path::new("runs").join(path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
        });
        pipeline::run(
            Some(config),
            &RunOptions { run_dir, resume: false, progress: !args.quiet && super::stderr_is_terminal(), fault },
        )?
    };
    print!("{}", results_table(&summary));
    Ok(())
}

/// The demo's embedded configuration, sized for 2 CPU cores and ~20 minutes:
/// REST-PG on the real demo data with SmolLM2-135M as policy, judge and
/// reasoning generator, T = 1, m = 4, a few training steps.
pub const DEMO_CONFIG: &str = include_str!("../../configs/demo.toml");

/// Runs `restpg demo`.
///
/// # Errors
/// Missing set-up artifacts, an existing demo directory without `--force`,
/// or a failed run.
pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        if !args.force {
            bail!("{} exists: pass --force to replace it, or --out elsewhere", args.out.display());
        }
        std::fs::remove_dir_all(&args.out).with_context(|| format!("removing {}", args.out.display()))?;
    }
    store::create_private_dir(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let data_dir = args.out.join("data");
    // Targets and profile items are cut to 80 words so that a prompt with
    // k = 2 items fits the demo's 384-token input budget.
    let opts =
        crate::data::DemoOptions { users: Some(args.users), seed: args.seed, max_words: 80, ..Default::default() };
    let stats = crate::data::build_demo_dataset(&data_dir, &opts)?;
    eprintln!("demo data set: {}", data_dir.display());
    eprint!("{stats}");
    let mut config = RunConfig::from_toml(DEMO_CONFIG, Path::new("configs/demo.toml"))?;
    config.data = data_dir;
    config.seed = args.seed;
    let run_dir = args.out.join("run");
    let summary = pipeline::run(
        Some(config),
        &RunOptions {
            run_dir: run_dir.clone(),
            resume: false,
            progress: !args.quiet && super::stderr_is_terminal(),
            fault: None,
        },
    )?;
    print!("{}", results_table(&summary));
    println!("event log: {}", store::RunDir::new(&run_dir).log().display());
    println!("reports:   {}", run_dir.join("reports").display());
    println!("audit it:  restpg audit {} --iteration 1", run_dir.display());
    Ok(())
}

/// Runs `restpg status`.
///
/// # Errors
/// A directory without a readable log.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    print!("{}", pipeline::status(&args.run_dir)?);
    Ok(())
}

/// The results table: one row per evaluation (system, split, iteration), one
/// column per score, as Markdown; then each D_t's size and digest.
pub fn results_table(summary: &RunSummary) -> String {
    let mut cols: Vec<String> = Vec::new();
    for e in &summary.outcome.evaluations {
        for (k, _) in &e.summary.scores {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    let mut out =
        format!("\nrun {} finished in {:.1} s\n\n| system | split | iteration |", summary.run_id, summary.wall_s);
    for c in &cols {
        out.push_str(&format!(" {c} |"));
    }
    out.push_str("\n|---|---|---|");
    out.push_str(&"---|".repeat(cols.len()));
    out.push('\n');
    for e in &summary.outcome.evaluations {
        // The SFT checkpoint θ¹ is the SFT (or SFT + reasoning) baseline;
        // later ones are the self-trained system after iteration t.
        let system = match (e.iteration, summary.method.uses_reasoning()) {
            (0, true) => actors::Method::SftReasoning.to_string(),
            (0, false) => actors::Method::Sft.to_string(),
            (t, _) => format!("{} (t={t})", summary.method.as_str()),
        };
        out.push_str(&format!("| {system} | {} | {} |", e.split, e.iteration));
        for c in &cols {
            match e.summary.scores.iter().find(|(k, _)| k == c) {
                Some((_, v)) => out.push_str(&format!(" {v:.4} |")),
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    if let Some(check) = &summary.reward_check {
        out.push_str(&format!("\n{}", check.summary_line()));
        if let Some(w) = check.warning() {
            out.push_str(&format!("\n{w}"));
        }
        out.push('\n');
    }
    for it in &summary.outcome.iterations {
        out.push_str(&format!(
            "\nD_{}: {} of {} samples kept (R ≥ τ), digest {}",
            it.iteration,
            it.kept,
            it.samples,
            events::digest_hex(&it.digest)
        ));
    }
    out.push('\n');
    out
}
