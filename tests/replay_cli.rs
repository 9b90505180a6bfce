//! `restpg replay`, `restpg audit` and `restpg export` through the binary,
//! on synthetic runs written through the real store.

use std::path::Path;
use std::process::{Command, Output};

use events::{Decision, Event};
use replay::synthetic::SyntheticRun;

fn run_spec() -> SyntheticRun {
    SyntheticRun { inputs: 10, m: 8, cap: 2, ..SyntheticRun::default() }
}

/// Writes `events` as run `run-cli`'s log in run directory `dir`.
fn write_log(dir: &Path, events: Vec<Event>) {
    let log = store::EventLog::create(store::RunDir::new(dir).log(), "run-cli").expect("create the log");
    log.append_batch(events).expect("append");
    log.flush().expect("flush");
}

fn restpg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_restpg")).args(args).env("RUST_LOG", "warn").output().expect("run restpg")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sealed(events: &[Event], t: u32) -> (u64, events::Digest) {
    events
        .iter()
        .find_map(|e| match e {
            Event::DatasetSealed { iteration, count, digest } if *iteration == t => Some((*count, *digest)),
            _ => None,
        })
        .expect("sealed")
}

#[test]
fn replay_verifies_each_iteration_and_prints_count_and_digest() {
    // Given a run with two iterations in a run directory
    let run = run_spec();
    let events = run.events();
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), events.clone());
    for t in 1..=2u32 {
        // When D_t is replayed
        let out = restpg(&["replay", dir.path().to_str().unwrap(), "--iteration", &t.to_string()]);
        // Then it verifies, printing the sealed count and digest
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        let (count, digest) = sealed(&events, t);
        assert!(stdout.contains(&format!("D_{t} verified: {count} samples kept")), "{stdout}");
        assert!(stdout.contains(&events::digest_hex(&digest)), "{stdout}");
    }
    // and an iteration that is not there fails
    let out = restpg(&["replay", dir.path().to_str().unwrap(), "--iteration", "7"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("iteration 7"), "{}", text(&out.stderr));
}

#[test]
fn replay_of_a_tampered_log_fails_naming_the_record() {
    // Given a log rewritten with a valid chain where one kept sample's reward was changed
    let run = run_spec();
    let mut events = run.events();
    let f = events.iter().position(|e| matches!(e, Event::FilterDecided { decision: Decision::Kept, .. })).unwrap();
    let sample = events[f].sample().unwrap().clone();
    let r = events.iter().position(|e| matches!(e, Event::RewardAssigned { sample: s, .. } if *s == sample)).unwrap();
    if let Event::RewardAssigned { reward, .. } = &mut events[r] {
        *reward = 0.4;
    }
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), events);
    // When it is replayed
    let out = restpg(&["replay", dir.path().to_str().unwrap(), "--iteration", "1"]);
    // Then the exit status is non-zero and the message names the record (seq = position: no duplicates)
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("RewardAssigned at seq {r} gave 0.4")), "{stderr}");
    assert!(stderr.contains(&sample.to_string()), "{stderr}");
}

#[test]
fn audit_lists_decisions_in_three_formats_and_explains_one() {
    let run = run_spec();
    let events = run.events();
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), events.clone());
    let d = dir.path().to_str().unwrap();
    let decided = |want: Option<Decision>| {
        events
            .iter()
            .filter(|e| {
                matches!(e, Event::FilterDecided { sample, decision, .. }
                if sample.iteration == 1 && want.is_none_or(|w| w == *decision))
            })
            .count()
    };
    // Table with the summary per task
    let out = restpg(&["audit", d, "--iteration", "1"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("judge (top 3)") && stdout.contains("task email:") && stdout.contains("task topic:"),
        "{stdout}"
    );
    assert!(stdout.contains("pass rate"), "{stdout}");
    // CSV of the kept samples: one line per kept decision, plus the header
    let out = restpg(&["audit", d, "--iteration", "1", "--kept", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), decided(Some(Decision::Kept)) + 1);
    // JSONL of the rejected ones
    let out = restpg(&["audit", d, "--iteration", "1", "--rejected", "--format", "jsonl"]);
    let lines: Vec<serde_json::Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), decided(None) - decided(Some(Decision::Kept)));
    assert!(
        lines.iter().all(|l| ["below-threshold", "over-cap", "zero-reward"].contains(&l["decision"].as_str().unwrap())),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l["rank"].as_u64().unwrap() >= 1));
    // One input
    let input = run.input_id(4);
    let out = restpg(&["audit", d, "--iteration", "1", "--input", &input, "--format", "jsonl"]);
    assert_eq!(text(&out.stdout).lines().count(), run.m as usize);
    // One sample, one line
    let below = events
        .iter()
        .find_map(|e| match e {
            Event::FilterDecided { sample, decision: Decision::BelowThreshold, .. } => Some(sample.clone()),
            _ => None,
        })
        .unwrap();
    let out = restpg(&["audit", d, "--sample", &below.to_string()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("{below}: reward ")) && stdout.contains("→ rejected (below τ); rank "),
        "{stdout}"
    );
    // Bad arguments are refused
    assert!(!restpg(&["audit", d, "--iteration", "1", "--kept", "--rejected"]).status.success());
    assert!(!restpg(&["audit", d, "--sample", "email-u01/#3"]).status.success());
}

#[test]
fn export_writes_d_t_as_jsonl() {
    let run = run_spec();
    let events = run.events();
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), events.clone());
    let file = dir.path().join("d1.jsonl");
    // A synthetic run has no data set to rebuild its prompts from: export
    // refuses, saying why and how to export without them
    let out = restpg(&["export", dir.path().to_str().unwrap(), "--iteration", "1", "--out", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot rebuild the prompts of D_1") && text(&out.stderr).contains("--no-prompt"),
        "{}",
        text(&out.stderr)
    );
    let out = restpg(&[
        "export",
        dir.path().to_str().unwrap(),
        "--iteration",
        "1",
        "--no-prompt",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The file holds users' text: private to its owner
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let body = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, sealed(&events, 1).0);
    for l in &lines {
        assert!(l["completion"].as_str().unwrap().contains("\n\n### Response:\n"), "{l}");
        assert_eq!(l["weight"], 1.0);
        assert_eq!(l["prompt_digest"].as_str().unwrap().len(), 64);
        assert!(l["sample_id"].as_str().unwrap().starts_with("t1/"));
        assert!(l["input_id"].is_string());
        assert!(l.get("prompt").is_none(), "{l}");
    }
}
