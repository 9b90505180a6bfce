//! Running the `restpg` binary from a test.

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
