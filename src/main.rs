//! The `restpg` binary: parses the command line and dispatches to
//! [`restpg::cli`].
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = restpg::cli::Cli::parse();
    restpg::cli::init_tracing(cli.log_format);
    match restpg::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("restpg: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
