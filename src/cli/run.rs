//! `restpg train`, `restpg demo` and `restpg status`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;

use crate::config::RunConfig;
use crate::pipeline::{self, RunOptions};

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
    /// Users per task in the demo data set (default: every eligible user,
    /// about 107 e-mail senders and 26 essay authors).
    #[arg(long)]
    pub users: Option<usize>,
    /// Training users per task at most (default: all, 60% of the users);
    /// validation and test keep all their users, 20% each. SFT trains on
    /// every training user; each E-step samples the configuration's
    /// `em.inputs_per_task` of them.
    #[arg(long)]
    pub train_users: Option<usize>,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an existing demo directory instead of resuming the run in it
    /// (a resumed demo keeps the data set and settings it started with).
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
    print!("{}", crate::pipeline::results::results_text(&summary));
    Ok(())
}

/// The demo's embedded configuration, sized for 2 CPU cores: REST-PG on the
/// real demo data with SmolLM2-135M as policy and judge, reasoning data from
/// profile statistics, the METEOR reward, T = 2, m = 4 on 10 users per task, 32 training steps.
pub const DEMO_CONFIG: &str = include_str!("../../configs/demo.toml");

/// Runs `restpg demo`.
///
/// # Errors
/// Missing set-up artifacts, an existing demo directory without `--force`,
/// or a failed run.
pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let run_dir = args.out.join("run");
    let resume = args.out.exists() && !args.force && demo_to_resume(&args, &run_dir)?;
    let config = if resume {
        eprintln!(
            "resuming the demo in {} from its log, with the data set and settings it started with \
             (--force starts anew)",
            args.out.display()
        );
        None
    } else {
        if args.out.exists() {
            std::fs::remove_dir_all(&args.out).with_context(|| format!("removing {}", args.out.display()))?;
        }
        store::create_private_dir(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
        let data_dir = args.out.join("data");
        let opts = crate::data::DemoOptions::for_demo_run(args.users, args.train_users, args.seed);
        let stats = crate::data::build_demo_dataset(&data_dir, &opts)?;
        eprintln!("demo data set: {}", data_dir.display());
        eprint!("{stats}");
        let mut config = RunConfig::from_toml(DEMO_CONFIG, Path::new("configs/demo.toml"))?;
        config.data = data_dir;
        config.seed = args.seed;
        Some(config)
    };
    let summary = pipeline::run(
        config,
        &RunOptions {
            run_dir: run_dir.clone(),
            resume,
            progress: !args.quiet && super::stderr_is_terminal(),
            fault: None,
        },
    )?;
    print!("{}", crate::pipeline::results::results_text(&summary));
    println!("event log: {}", store::RunDir::new(&run_dir).log().display());
    println!("reports:   {}", store::RunDir::new(&run_dir).reports().display());
    println!("audit it:  restpg audit {} --iteration 1", run_dir.display());
    println!("see it:    restpg view {}   (a read-only page on http://127.0.0.1:8520/)", run_dir.display());
    Ok(())
}

/// Whether the existing `args.out` holds a demo run to resume (the README's
/// command run again after an interruption continues instead of starting
/// over).
///
/// # Errors
/// A directory that holds no demo run, or one started with another seed,
/// each telling the user to pass `--force` or `--out`.
fn demo_to_resume(args: &DemoArgs, run_dir: &Path) -> anyhow::Result<bool> {
    let config_path = run_dir.join("config.toml");
    let none = || {
        anyhow::anyhow!(
            "{} exists but holds no demo run to resume: pass --force to replace it, or --out elsewhere",
            args.out.display()
        )
    };
    if !config_path.is_file() {
        return Err(none());
    }
    let (logged, _) = RunConfig::load(&config_path)?;
    if logged.seed != args.seed {
        bail!(
            "{} holds a demo run with seed {}, not {}: pass --force to replace it, or --out elsewhere",
            args.out.display(),
            logged.seed,
            args.seed
        );
    }
    if !store::RunDir::new(run_dir).log().join("db").is_file() {
        return Err(none());
    }
    Ok(true)
}

/// Runs `restpg status`.
///
/// # Errors
/// A directory without a readable log.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    print!("{}", pipeline::status(&args.run_dir)?);
    Ok(())
}
