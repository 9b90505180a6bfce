//! `restpg experiment`: the paper's four systems on one data set with shared
//! seeds, each in its own run directory, and Table 1 (see
//! [`crate::pipeline::experiment`]).

use std::path::{Path, PathBuf};

use clap::Args;

/// Arguments of `restpg experiment`.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    /// The experiment file (TOML: `base`, `systems`, `seed`, `[data]`).
    #[arg(long)]
    pub config: PathBuf,
    /// The experiment directory (default: `runs/<experiment file stem>`);
    /// running again with the same directory continues the experiment.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `restpg experiment` and prints Table 1.
///
/// # Errors
/// A bad experiment file or base configuration, or a failed run.
pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let out = args.out.unwrap_or_else(|| {
        Path::new("runs").join(args.config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
    });
    let started = std::time::Instant::now();
    let summary =
        crate::pipeline::experiment::run_experiment(&args.config, &out, !args.quiet && super::stderr_is_terminal())?;
    print!("{}", summary.to_markdown());
    println!("experiment wall time (this invocation): {:.1} min", started.elapsed().as_secs_f64() / 60.0);
    println!("table:     {}", out.join("table1.md").display());
    Ok(())
}
