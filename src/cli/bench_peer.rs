//! The peer of `restpg bench generate --peer`: the same E-step workload run
//! through another engine in the same invocation, so that the two are
//! measured on the same machine under the same load, and the ratios mean
//! something (absolute speeds differ from machine to machine).
//!
//! `llamacpp` runs `scripts/bench_llamacpp.py` (embedded in the binary) with
//! the Python of the virtual environment `scripts/setup.sh --llamacpp`
//! builds (`<cache>/llamacpp/venv`): llama-cpp-python 0.3.36 on the GGUF
//! file restpg loads, given restpg's own prompt token ids.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use super::bench::{GenerateBench, GenerateFigures};

/// An engine to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// llama.cpp through llama-cpp-python (`scripts/setup.sh --llamacpp`).
    Llamacpp,
}

/// The peer script, written to a temporary file when it runs.
const LLAMACPP_SCRIPT: &str = include_str!("../../scripts/bench_llamacpp.py");

/// The Python of the set-up's llama-cpp-python environment.
pub fn llamacpp_python() -> PathBuf {
    crate::paths::cache_root().join("llamacpp/venv/bin/python")
}

/// Runs the workload of `bench` (prompt `prompt_ids`, `new_tokens` per
/// sample, `threads`) through `peer` on the GGUF file `model`, and returns
/// its figures per N, in `bench.samples` order.
///
/// # Errors
/// The peer is not installed (naming the set-up command), its process
/// fails (with its stderr), or its output is not one figure line per N.
pub fn run(
    peer: Peer,
    model: &Path,
    prompt_ids: &[u32],
    bench: &GenerateBench,
    new_tokens: usize,
    threads: usize,
) -> Result<Vec<GenerateFigures>> {
    let Peer::Llamacpp = peer;
    let python = llamacpp_python();
    if !python.exists() {
        bail!("--peer llamacpp: {} is missing: run `./scripts/setup.sh --llamacpp` first", python.display());
    }
    let dir = tempfile::tempdir().context("creating a temporary directory for the peer")?;
    let script = dir.path().join("bench_llamacpp.py");
    std::fs::write(&script, LLAMACPP_SCRIPT).with_context(|| format!("writing {}", script.display()))?;
    let ids = dir.path().join("prompt_ids.json");
    std::fs::write(&ids, serde_json::to_vec(prompt_ids)?).with_context(|| format!("writing {}", ids.display()))?;
    let samples: Vec<String> = bench.samples.iter().map(usize::to_string).collect();
    let out = Command::new(&python)
        .arg(&script)
        .arg("--model")
        .arg(model)
        .arg("--prompt-ids")
        .arg(&ids)
        .args(["--samples", &samples.join(",")])
        .args(["--new-tokens", &new_tokens.to_string()])
        .args(["--temperature", &bench.settings.temperature.to_string()])
        .args(["--top-p", &bench.settings.top_p.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--runs", &bench.runs.to_string()])
        .output()
        .with_context(|| format!("starting {}", python.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("--peer llamacpp failed ({}): {}", out.status, tail(&stderr, 2000));
    }
    parse_figures(&String::from_utf8_lossy(&out.stdout), &bench.samples)
}

/// The peer's figure lines (one JSON object per N), checked against the
/// sample counts asked for.
///
/// # Errors
/// A line that is not a figure object (quoted), or lines for other N.
pub fn parse_figures(stdout: &str, samples: &[usize]) -> Result<Vec<GenerateFigures>> {
    let mut figures = Vec::new();
    for (i, line) in stdout.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("--peer output line {}: not JSON: {:?}", i + 1, tail(line, 200)))?;
        let num = |key: &str| -> Result<f64> {
            v.get(key)
                .and_then(serde_json::Value::as_f64)
                .with_context(|| format!("--peer output line {}: no number `{key}` in {:?}", i + 1, tail(line, 200)))
        };
        figures.push(GenerateFigures {
            samples: num("samples")? as usize,
            prefill_tok_s: num("prefill_tok_s")?,
            prefill_s: num("prefill_s")?,
            decode_tok_s: num("decode_tok_s")?,
            e2e_tok_s: num("e2e_tok_s")?,
            generated_tokens: num("generated_tokens")? as usize,
            wall_s: num("wall_s")?,
            peak_rss_mib: num("peak_rss_mib")?,
        });
    }
    let got: Vec<usize> = figures.iter().map(|f| f.samples).collect();
    if got != samples {
        bail!("--peer gave figures for N = {got:?}, asked for {samples:?}");
    }
    Ok(figures)
}

/// The last `n` bytes of `s` (at a character boundary).
fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_lines_parse_and_bad_ones_are_named() {
        let line = |n: usize| {
            format!(
                r#"{{"samples": {n}, "prefill_tok_s": 300.5, "prefill_s": 1.3, "decode_tok_s": 90, "e2e_tok_s": 80, "generated_tokens": {}, "wall_s": 2.0, "peak_rss_mib": 200, "engine": "x"}}"#,
                n * 128
            )
        };
        let out = format!("{}\n{}\n", line(1), line(8));
        let f = parse_figures(&out, &[1, 8]).unwrap();
        assert_eq!((f[1].samples, f[1].generated_tokens), (8, 1024));
        assert!((f[0].prefill_tok_s - 300.5).abs() < 1e-9);
        let err = parse_figures(&out, &[1, 8, 32]).unwrap_err().to_string();
        assert!(err.contains("[1, 8]") && err.contains("[1, 8, 32]"), "{err}");
        let err = parse_figures("Traceback (most recent call last)\n", &[1]).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("not JSON"), "{err}");
        let err = parse_figures(r#"{"samples": 1}"#, &[1]).unwrap_err().to_string();
        assert!(err.contains("prefill_tok_s"), "{err}");
    }
}
