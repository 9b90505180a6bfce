//! `restpg score` end to end through the built binary, on real pairs of the
//! parity fixture: per-example values equal the Python references, means are
//! printed, and mismatched ids fail naming them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn pairs(n: usize) -> Vec<serde_json::Value> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/lexical.jsonl");
    std::fs::read_to_string(p)
        .expect("fixture")
        .lines()
        .take(n)
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn write_jsonl(path: &Path, rows: &[(String, String)]) {
    let text: String =
        rows.iter().map(|(id, o)| serde_json::json!({"id": id, "output": o}).to_string() + "\n").collect();
    std::fs::write(path, text).expect("write");
}

fn restpg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_restpg")).args(args).output().expect("run restpg")
}

#[test]
fn scores_match_python_references_and_means_are_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ps = pairs(25);
    let preds: Vec<(String, String)> =
        ps.iter().enumerate().map(|(i, p)| (format!("ex{i}"), p["prediction"].as_str().unwrap().to_string())).collect();
    // References in reverse order: pairing must go by id, not by line.
    let refs: Vec<(String, String)> = ps
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| (format!("ex{i}"), p["reference"].as_str().unwrap().to_string()))
        .collect();
    let (pp, rp, out) = (dir.path().join("p.jsonl"), dir.path().join("r.jsonl"), dir.path().join("s.jsonl"));
    write_jsonl(&pp, &preds);
    write_jsonl(&rp, &refs);
    let o = restpg(&[
        "score",
        "--metrics",
        "rouge-1,rouge-2,rouge-l,meteor",
        "--predictions",
        pp.to_str().unwrap(),
        "--references",
        rp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 25);
    let mut sum = 0.0;
    for row in &rows {
        let i: usize = row["id"].as_str().unwrap()[2..].parse().unwrap();
        for (ours, theirs, tol) in [
            ("rouge-1", "rouge1", 1e-6),
            ("rouge-2", "rouge2", 1e-6),
            ("rouge-l", "rougeL", 1e-6),
            ("meteor", "meteor", 1e-3),
        ] {
            let a = row[ours].as_f64().unwrap();
            let b = ps[i][theirs].as_f64().unwrap();
            assert!((a - b).abs() <= tol, "ex{i} {ours}: {a} vs {b}");
        }
        sum += row["rouge-l"].as_f64().unwrap();
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["n"], 25);
    assert!((summary["rouge-l"].as_f64().unwrap() - sum / 25.0).abs() < 1e-12);
}

#[test]
fn mismatched_and_duplicate_ids_are_errors_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pp, rp) = (dir.path().join("p.jsonl"), dir.path().join("r.jsonl"));
    write_jsonl(&pp, &[("a".into(), "x y".into()), ("b".into(), "y z".into())]);
    write_jsonl(&rp, &[("a".into(), "x y".into()), ("c".into(), "y z".into())]);
    let o = restpg(&[
        "score",
        "--metrics",
        "rouge-1",
        "--predictions",
        pp.to_str().unwrap(),
        "--references",
        rp.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"c\"") && err.contains("\"b\""), "{err}");
    write_jsonl(&rp, &[("a".into(), "x".into()), ("a".into(), "y".into())]);
    let o = restpg(&[
        "score",
        "--metrics",
        "rouge-1",
        "--predictions",
        pp.to_str().unwrap(),
        "--references",
        rp.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("duplicate id \"a\""), "{err}");
    let o = restpg(&[
        "score",
        "--metrics",
        "rouge-1,bleu",
        "--predictions",
        pp.to_str().unwrap(),
        "--references",
        rp.to_str().unwrap(),
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("\"bleu\""));
}
