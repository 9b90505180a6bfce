//! `restpg generate` and `restpg model import` end to end on the real
//! SmolLM2 GGUF.

use std::process::Command;

fn restpg(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_restpg")).args(args).output().expect("run restpg");
    assert!(out.status.success(), "restpg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn generate_and_import_agree() {
    let gguf = restpg::paths::require(restpg::paths::smollm2_gguf()).unwrap();
    let gguf = gguf.to_str().unwrap();
    let q = ["--prompt", "What is the capital of France?", "--max-new-tokens", "12", "--threads", "1"];
    let from_gguf = restpg(&[&["generate", "--model", gguf][..], &q[..]].concat());
    assert!(from_gguf.contains("Paris"), "{from_gguf}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    let report = restpg(&["model", "import", gguf, "--out", out.to_str().unwrap()]);
    assert!(report.contains("weights_blake3"), "{report}");
    let from_dir = restpg(&[&["generate", "--model", out.to_str().unwrap()][..], &q[..]].concat());
    assert_eq!(from_dir, from_gguf);
    // Bad settings are rejected before loading anything.
    let bad = Command::new(env!("CARGO_BIN_EXE_restpg"))
        .args(["generate", "--model", gguf, "--prompt", "x", "--top-p", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("top_p"));
}
