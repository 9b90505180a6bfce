//! `restpg view RUN_DIR [RUN_DIR…] [--port P] [--bind ADDR]`: serves the
//! runs' pages (see [`crate::view`]) until interrupted.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

/// Arguments of `restpg view`.
#[derive(Args, Debug)]
pub struct ViewArgs {
    /// Run directories (each holds `log/`), served as runs 0, 1, … in this order.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Port to listen on; 0 lets the system choose a free one.
    #[arg(long, default_value_t = 8520)]
    pub port: u16,
    /// Address to listen on. The pages show users' personal text: the
    /// default serves this machine only; another address serves anyone who
    /// can reach it.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
}

/// Opens every run (refusing a directory that is not one before serving
/// anything), prints where the pages are, then serves until SIGINT
/// (Ctrl-C), SIGTERM or SIGQUIT, and lets go of every log it read.
///
/// # Errors
/// A run directory that is not one, a log that cannot be opened, an
/// address that cannot be bound.
pub fn run(args: ViewArgs) -> anyhow::Result<()> {
    let options = crate::view::ViewOptions { runs: args.runs, bind: args.bind, port: args.port };
    actix_web::rt::System::new().block_on(async move {
        let bound = crate::view::bind(&options)?;
        let scope = if bound.addr.ip().is_loopback() {
            "bound to the loopback address only: this machine alone can open it".to_owned()
        } else {
            format!("bound to {}: anyone who can reach this address sees the runs' personal text", bound.addr.ip())
        };
        println!(
            "restpg view: {} run{} at http://{}/ ({scope}; read-only; Ctrl-C stops it)",
            options.runs.len(),
            if options.runs.len() == 1 { "" } else { "s" },
            bound.addr
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
        bound.serve().await?;
        Ok(())
    })
}
