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
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--top-p"));
}

#[test]
fn bench_generate_prints_one_json_object_per_sample_count() {
    // Given a small text file and the real model (the default of --model)
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompt.txt");
    std::fs::write(&file, "The quick brown fox jumps over the lazy dog.").unwrap();
    let file = file.to_str().unwrap();
    // When `restpg bench generate` runs at tiny settings
    let out = restpg(&[
        "bench",
        "generate",
        "--prompt-file",
        file,
        "--prompt-tokens",
        "16",
        "--new-tokens",
        "4",
        "--samples",
        "1,2",
        "--runs",
        "1",
        "--threads",
        "1",
        "--json",
    ]);
    // Then each line is one N's figures
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, n) in lines.iter().zip([1u64, 2]) {
        assert_eq!(line["samples"], n);
        assert_eq!(line["generated_tokens"], 4 * n, "stop tokens are disabled: {line}");
        assert_eq!(line["prompt_tokens"], 16);
        for key in ["prefill_tok_s", "decode_tok_s", "e2e_tok_s", "wall_s", "peak_rss_mib"] {
            let v = line[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {line}"));
            assert!(v > 0.0 && v.is_finite(), "{key} = {v}");
        }
    }
    // A bad flag is named before the model loads.
    let bad = Command::new(env!("CARGO_BIN_EXE_restpg"))
        .args(["bench", "generate", "--prompt-file", file, "--samples", "1,x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--samples"));
}

#[test]
fn bench_generate_runs_the_same_workload_through_llama_cpp_and_prints_the_ratios() {
    // Given the set-up's llama-cpp-python (the test command runs
    // `scripts/setup.sh --llamacpp`) and a small prompt file
    assert!(
        restpg::cli::bench_peer::llamacpp_python().exists(),
        "llama-cpp-python is missing: run ./scripts/setup.sh --llamacpp"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompt.txt");
    std::fs::write(&file, "The quick brown fox jumps over the lazy dog.").unwrap();
    // When `bench generate --peer llamacpp` runs at tiny settings
    let out = restpg(&[
        "bench",
        "generate",
        "--prompt-file",
        file.to_str().unwrap(),
        "--prompt-tokens",
        "24",
        "--new-tokens",
        "6",
        "--samples",
        "1,3",
        "--runs",
        "1",
        "--threads",
        "1",
        "--peer",
        "llamacpp",
        "--json",
    ]);
    // Then restpg's lines come first, then llama.cpp's with the ratios
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (line, (engine, n)) in lines.iter().zip([("restpg", 1u64), ("restpg", 3), ("llamacpp", 1), ("llamacpp", 3)]) {
        assert!(line["engine"].as_str().unwrap().starts_with(engine), "{line}");
        assert_eq!(line["samples"], n);
        // llama.cpp ran the same workload: every sequence wrote all its tokens
        assert_eq!(line["generated_tokens"], 6 * n, "{line}");
    }
    for line in &lines[2..] {
        for key in ["ratio_e2e", "ratio_decode", "ratio_prefill", "e2e_tok_s"] {
            let v = line[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {line}"));
            assert!(v > 0.0 && v.is_finite(), "{key} = {v}");
        }
    }
}

#[test]
fn bench_judge_prints_one_json_object_with_its_figures() {
    // Given the real model and the demo's essays (the defaults)
    // When `restpg bench judge` runs at tiny settings
    let out = restpg(&[
        "bench",
        "judge",
        "--calls",
        "2",
        "--prompt-tokens",
        "64",
        "--samples-per-input",
        "2",
        "--runs",
        "1",
        "--threads",
        "1",
        "--json",
    ]);
    // Then one line holds the figures of the run
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{out}");
    let line = &lines[0];
    assert_eq!(line["calls"], 2);
    assert_eq!(line["prompt_tokens"], 64);
    assert_eq!(line["runs"], 1);
    assert_eq!(line["threads"], 1);
    assert_eq!(line["one_pass"], true);
    assert_eq!(line["prefix_sharing"], true);
    for key in ["calls_per_s", "s_per_call", "wall_s", "cpu_s_per_call", "mean_prompt_tokens", "peak_rss_mib"] {
        let v = line[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {line}"));
        assert!(v > 0.0 && v.is_finite(), "{key} = {v}");
    }
    let (cps, spc) = (line["calls_per_s"].as_f64().unwrap(), line["s_per_call"].as_f64().unwrap());
    assert!((cps * spc - 1.0).abs() < 1e-9, "calls/s and s/call are inverses: {line}");
    // A bad flag is named before the model loads.
    let bad = Command::new(env!("CARGO_BIN_EXE_restpg")).args(["bench", "judge", "--calls", "0"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--calls"));
}
