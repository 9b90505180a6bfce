//! `restpg bench train` end to end on the real SmolLM2 GGUF at tiny
//! settings.

use std::process::Command;

#[test]
fn bench_train_prints_its_figures_as_one_json_object() {
    // Given a small text file and the real model (the default of --model)
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("text.txt");
    std::fs::write(&file, "The quick brown fox jumps over the lazy dog.").unwrap();
    let file = file.to_str().unwrap();
    // When `restpg bench train` runs two steps of 2 × 16 tokens, twice
    let out = Command::new(env!("CARGO_BIN_EXE_restpg"))
        .args([
            "bench",
            "train",
            "--text-file",
            file,
            "--steps",
            "2",
            "--micro-batch",
            "2",
            "--seq",
            "16",
            "--runs",
            "2",
            "--threads",
            "1",
            "--json",
        ])
        .output()
        .expect("run restpg");
    assert!(out.status.success(), "restpg bench train failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Then stdout is one JSON object with the settings and the figures
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let f = &lines[0];
    assert_eq!(f["steps"], 2);
    assert_eq!(f["micro_batch"], 2);
    assert_eq!(f["seq"], 16);
    assert_eq!(f["prompt_tokens"], 4, "a quarter of --seq by default: {f}");
    assert_eq!(f["optimizer"], "adamw");
    assert_eq!(f["threads"], 1);
    assert_eq!(f["runs"], 2);
    assert_eq!(f["tokens_per_step"], 32);
    for key in ["tok_s", "s_per_step", "peak_rss_mib"] {
        let v = f[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {f}"));
        assert!(v > 0.0 && v.is_finite(), "{key} = {v}");
    }
    let tok_s = f["tok_s"].as_f64().unwrap();
    let s = f["s_per_step"].as_f64().unwrap();
    assert!((tok_s * s - 32.0).abs() < 1e-6, "tokens/s × s/step is the tokens of a step: {f}");
    // Every run timed each of its steps.
    let runs = f["step_s"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{f}");
    assert!(runs.iter().all(|r| r.as_array().unwrap().len() == 2), "{f}");
    // A bad flag is named before the model loads.
    let bad = Command::new(env!("CARGO_BIN_EXE_restpg"))
        .args(["bench", "train", "--text-file", file, "--seq", "8", "--prompt-tokens", "8"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--prompt-tokens"));
}
