//! The `restpg` command line: global options, the subcommand enum and
//! dispatch. Each area of the library owns one file here with its
//! subcommand's arguments and handler; arguments are parsed raw by clap and
//! validated into resolved settings inside those handlers.

use clap::{Parser, Subcommand, ValueEnum};

pub mod audit;
pub mod bench;
pub mod bench_peer;
pub mod bench_train;
pub mod bench_view;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod generate;
pub mod log;
pub mod model;
pub mod reward;
pub mod run;
pub mod score;
pub mod view;
pub mod write;

/// Log output format.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// restpg: reasoning-enhanced self-training for personalized long-form text.
#[derive(Parser, Debug)]
#[command(name = "restpg", version, about, long_about = None)]
pub struct Cli {
    /// Log format; verbosity comes from `RUST_LOG` (default `info`).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// All subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the real demo data set and run REST-PG end to end on it (the README's main command).
    Demo(run::DemoArgs),
    /// Train a system (sft, sft-reasoning, rest-em, rest-pg) from a TOML configuration, or resume a run.
    Train(run::TrainArgs),
    /// Where a run is and what it has produced, from its log.
    Status(run::StatusArgs),
    /// The paper's comparison: SFT, SFT with reasoning, ReST-EM and REST-PG on one data set, then Table 1.
    Experiment(experiment::ExperimentArgs),
    /// LongLaMP's metrics (ROUGE-1/2/L, METEOR, similarity) of predictions vs references, JSONL {"id","output"}.
    Score(score::ScoreArgs),
    /// Check a reward before trusting it: AUCs of own text over another user's and over degenerate text.
    Reward(reward::RewardArgs),
    /// Generate for a split and score with the judge and ROUGE/METEOR; writes report.json/report.md.
    Eval(eval::EvalArgs),
    /// Paired t-test between two evaluation reports; writes comparison.md/comparison.json.
    Compare(eval::CompareArgs),
    /// Build, import and inspect data sets (LongLaMP format, demo corpora).
    Data(data::DataArgs),
    /// One chat turn with a model (GGUF or Hugging Face directory), printed to stdout.
    Generate(generate::GenerateArgs),
    /// Write for one user with a trained run's policy: retrieve from the given profile, print reasoning and response.
    Write(write::WriteArgs),
    /// Import a GGUF into a Hugging Face directory; show a model's configuration.
    Model(model::ModelArgs),
    /// Verify, export or tail a run's event log.
    Log(log::LogArgs),
    /// Rebuild an iteration's training set D_t from the log and verify it against its seal.
    Replay(audit::ReplayArgs),
    /// Per-sample rewards, judge distributions, filter decisions and ranks of an iteration.
    Audit(audit::AuditArgs),
    /// An iteration's D_t as JSONL {"prompt", "completion", "weight", ...} (TRL / OpenRLHF shape).
    Export(audit::ExportArgs),
    /// Throughput benchmarks on the real model (`bench generate`: an E-step's N samples of one prompt; `bench train`: M-step steps).
    Bench(bench::BenchArgs),
    /// A local, read-only web page over run logs: runs, iterations, samples, comparisons; live while a run writes.
    View(view::ViewArgs),
}

/// Whether to colour what goes to stderr: only when it is a terminal, and
/// never when `NO_COLOR` is set to anything but the empty string
/// (no-color.org). A file or a pipe gets plain text.
pub fn stderr_colour() -> bool {
    use std::io::IsTerminal as _;
    colour_allowed(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref())
}

fn colour_allowed(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Whether stderr is a terminal, where progress bars can redraw in place.
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal()
}

/// Sets up tracing for `RUST_LOG` and the chosen format, coloured only as
/// [`stderr_colour`] allows.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(stderr_colour());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the parsed command line.
///
/// # Errors
/// Whatever the subcommand returns.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => run::demo(args),
        Command::Train(args) => run::train(args),
        Command::Status(args) => run::status(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Score(args) => score::run(args),
        Command::Reward(args) => reward::run(args),
        Command::Eval(args) => eval::run_eval(args),
        Command::Compare(args) => eval::run_compare(args),
        Command::Data(args) => data::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Write(args) => write::run(args),
        Command::Model(args) => model::run(args),
        Command::Log(args) => log::run(args),
        Command::Replay(args) => audit::replay(&args).map(drop),
        Command::Audit(args) => audit::audit(args),
        Command::Export(args) => audit::export(args, &audit::Hooks::builtin()).map(drop),
        Command::Bench(args) => bench::run(args),
        Command::View(args) => view::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour_allowed(true, None));
        assert!(colour_allowed(true, Some(OsStr::new(""))), "an empty NO_COLOR does not count");
        assert!(!colour_allowed(true, Some(OsStr::new("1"))));
        assert!(!colour_allowed(false, None), "a file or a pipe gets no colour");
    }
}
