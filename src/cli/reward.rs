//! `restpg reward check`: the run's first stage on its own, before a run
//! is started — does the configured reward tell a user's own text from
//! another user's and from degenerate text? (See [`crate::reward::check`].)

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::config::RunConfig;
use crate::engine::tch::TchRewardCheck;
use crate::pipeline::RunContext;

/// Arguments of `restpg reward`.
#[derive(Args, Debug)]
pub struct RewardArgs {
    /// The reward subcommand.
    #[command(subcommand)]
    pub command: RewardCommand,
}

/// Subcommands of `restpg reward`.
#[derive(Subcommand, Debug)]
pub enum RewardCommand {
    /// AUCs of the configured reward: own text over another user's, own over degenerate, other over degenerate.
    Check(CheckArgs),
}

/// Arguments of `restpg reward check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Run configuration (TOML) naming the data set, the reward and the judge.
    #[arg(long)]
    pub config: PathBuf,
    /// K: validation examples per task at most (default: `reward.check_per_task`).
    #[arg(long)]
    pub per_task: Option<usize>,
    /// Check this reward spec instead of the configuration's `reward.name`
    /// (e.g. `0.5*similarity+0.5*meteor`).
    #[arg(long)]
    pub reward: Option<String>,
    /// The split whose examples are scored (`train`, `validation`/`val`,
    /// `test`; default: validation, or train when validation is empty, as in
    /// a run).
    #[arg(long)]
    pub split: Option<String>,
    /// Also write the report as `reward-check.{json,md}` into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `restpg reward`.
///
/// # Errors
/// A bad configuration or reward spec, a data set or judge that does not
/// load, or the reward's failures.
pub fn run(args: RewardArgs) -> anyhow::Result<()> {
    match args.command {
        RewardCommand::Check(a) => check(a),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let (mut config, _) = RunConfig::load(&args.config)?;
    if let Some(r) = args.reward {
        config.reward.name = r;
        // τ is the run's business, not the check's: keep it in range of the
        // spec being checked so validation judges the rest.
        let (lo, hi) = config
            .reward
            .name
            .parse::<crate::reward::RewardSpec>()
            .map_err(|e| anyhow::anyhow!("--reward: {e}"))?
            .range();
        config.reward.tau = config.reward.tau.clamp(lo as f32, hi as f32);
    }
    config.validate()?;
    let per_task = args.per_task.unwrap_or(config.reward.check_per_task);
    anyhow::ensure!(per_task > 0, "--per-task must be at least 1");
    let judge_path = match &config.model.judge {
        Some(p) => p.clone(),
        None => crate::paths::require(crate::paths::smollm2_gguf())?,
    };
    crate::config::apply_torch_threads(None, config.model.threads)?;
    // No run directory: the check writes nothing unless `--out` says so.
    let here = args.config.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let ctx = Arc::new(RunContext::build(config, &here).context("building the data set and retrieval")?);
    let mut checker = TchRewardCheck::new(ctx, &judge_path)?;
    let result = match &args.split {
        Some(s) => {
            let split: crate::data::Split = s.parse().map_err(|e| anyhow::anyhow!("--split: {e}"))?;
            checker.run_on(split, per_task)?
        }
        None => checker.run(per_task)?,
    };
    print!("{}", result.to_markdown());
    if let Some(w) = result.warning() {
        eprintln!("{w}");
    }
    if let Some(dir) = &args.out {
        let path = crate::eval::report::write_reward_check(&result, dir, crate::eval::report::REWARD_CHECK_STEM)?;
        eprintln!("report: {}", path.display());
    }
    Ok(())
}
