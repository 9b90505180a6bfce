//! Running the `restpg` binary from a test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The test build's `restpg`, on one torch thread.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_restpg"));
    c.env("RESTPG_THREADS", "1");
    c
}

/// Runs `cmd`, panics with both streams unless it succeeds, and returns
/// (stdout, stderr).
pub fn run_ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("spawn restpg");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{cmd:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

/// A small demo data set in `dir/data` (`restpg data demo`, 4 users per
/// task, texts cut to 40 words); returns its folder.
pub fn demo_data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    run_ok(bin().args(["data", "demo", "--users", "4", "--max-words", "40", "--out"]).arg(&data));
    data
}

/// Every record of the log of the run in `run_dir`, in order.
pub fn events_of(run_dir: &Path) -> Vec<events::Event> {
    let reader = store::LogReader::open(store::RunDir::new(run_dir).log(), None).expect("open log");
    reader.iter().map(|e| e.expect("record").payload).collect()
}
