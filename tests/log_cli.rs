//! `restpg log verify | export | tail` through the built binary, given /
//! when / then.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use events::{digest, Decision, Event, SampleId};
use store::{EventLog, RunDir};

fn restpg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_restpg")).args(args).output().expect("run restpg")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn sample(n: u32) -> SampleId {
    SampleId { iteration: 1, input_id: format!("email/{}", n / 4), index: n % 4 }
}

/// A small run: started, 8 samples generated and filtered, D_1 sealed.
fn events() -> Vec<Event> {
    let mut evs = vec![Event::RunStarted {
        method: "reinforce".into(),
        config_toml: "seed = 7\n".into(),
        config_digest: digest(b"seed = 7\n"),
        code_version: "test".into(),
        seed: 7,
        dataset_digest: digest(b"data"),
        settings: None,
    }];
    for n in 0..8 {
        evs.push(Event::SampleGenerated {
            sample: sample(n),
            seed: sample(n).seed(7),
            prompt_digest: digest(b"prompt"),
            reasoning: None,
            response: format!("Draft {n}: see you on Monday."),
            prompt_tokens: 100,
            output_tokens: 12,
            checkpoint: digest(b"sft"),
            temperature: 0.7,
            top_p: 0.95,
            finish: Some(events::FinishReason::StopToken),
            penalties: events::Penalties::default(),
            precision: events::Precision::F32,
            engine: events::EngineInfo::tch(),
        });
        evs.push(Event::FilterDecided {
            sample: sample(n),
            decision: if n % 2 == 0 { Decision::Kept } else { Decision::BelowThreshold },
            reward: 1.0 - (n % 2) as f32,
            tau: 1.0,
            rank: n % 4,
        });
    }
    evs.push(Event::DatasetSealed { iteration: 1, count: 4, digest: digest(b"d1") });
    evs
}

/// A run directory with the log of `events()` (18 records).
fn run_dir(root: &Path) -> std::path::PathBuf {
    let run = RunDir::create(root.join("run")).unwrap();
    let log = EventLog::create(run.log(), "cli-run").unwrap();
    log.append_batch(events()).unwrap();
    run.path().to_path_buf()
}

#[test]
fn verify_passes_an_intact_log() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    let out = restpg(&["log", "verify", run.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("run cli-run: 18 records, hash chain intact"), "{stdout}");
}

#[test]
fn verify_reports_a_flipped_byte_with_its_sequence_number() {
    // Given a run whose record 5 had one byte flipped on disk
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    store::testing::tamper_record(RunDir::new(&run).log(), 5, |b| {
        let i = b.len() / 2;
        b[i] ^= 0x01;
    })
    .unwrap();
    // When the log is verified
    let out = restpg(&["log", "verify", run.to_str().unwrap()]);
    // Then it fails, naming record 5 and a hash mismatch
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("records 0 to 4 verify"), "{stdout}");
    assert!(stdout.contains("seq 5: hash mismatch"), "{stdout}");
    assert!(stderr.contains("does not verify: seq 5: hash mismatch"), "{stderr}");
}

#[test]
fn verify_names_an_unknown_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    store::testing::tamper_record(RunDir::new(&run).log(), 2, |b| b[..2].copy_from_slice(&9u16.to_le_bytes())).unwrap();
    let out = restpg(&["log", "verify", run.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("seq 2: unknown schema version 9"), "{stdout}{stderr}");
}

#[test]
fn export_writes_one_json_envelope_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    let out = restpg(&["log", "export", run.to_str().unwrap(), "--format", "jsonl"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 18);
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["seq"], i as u64);
        assert_eq!(v["run_id"], "cli-run");
        assert_eq!(v["hash"].as_str().unwrap().len(), 64, "digests are hex");
    }
    assert_eq!(lines[1]["payload"]["SampleGenerated"]["sample"]["input_id"], "email/0");
    assert_eq!(lines[2]["payload"]["FilterDecided"]["decision"], "Kept");
    // and an envelope read back from JSON is the stored one
    let env: events::Envelope = serde_json::from_value(lines[3].clone()).unwrap();
    assert_eq!(env, store::LogReader::open(RunDir::new(&run).log(), None).unwrap().get(3).unwrap().unwrap());
    // and a kind filter keeps only that kind, also when written to a file
    let file = dir.path().join("kept.jsonl");
    let out =
        restpg(&["log", "export", run.to_str().unwrap(), "--kind", "filter-decided", "-o", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 8);
}

#[test]
fn tail_shows_the_last_records_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    let out = restpg(&["log", "tail", run.to_str().unwrap(), "-n", "3"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].trim_start().starts_with("15 ") && lines[0].contains("sample-generated"), "{stdout}");
    assert!(lines[0].contains("t1/email/1/#3"), "{stdout}");
    assert!(lines[2].contains("dataset-sealed") && lines[2].contains("D_1: 4 samples"), "{stdout}");
    let out = restpg(&["log", "tail", run.to_str().unwrap(), "-n", "2", "--kind", "filter-decided"]);
    let stdout = text(&out).0;
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.lines().all(|l| l.contains("filter-decided")), "{stdout}");
    // Ranks count from 1 as in `restpg audit` (samples 6 and 7 were logged with ranks 2 and 3),
    // decisions in their kebab-case form
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("t1/email/1/#2 kept (") && lines[0].ends_with("rank 3)"), "{stdout}");
    assert!(lines[1].contains("below-threshold (") && lines[1].ends_with("rank 4)"), "{stdout}");
}

#[test]
fn tail_follow_shows_records_appended_by_a_running_writer() {
    // Given a run whose writer is open in this process
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path().join("run")).unwrap();
    let log = EventLog::create(run.log(), "live-run").unwrap();
    log.append_batch(events().into_iter().take(3)).unwrap();
    // When `log tail --follow` runs in another process
    let mut child = Command::new(env!("CARGO_BIN_EXE_restpg"))
        .args(["log", "tail", "--follow", "-n", "1", run.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // and the writer appends more
    assert!(lines.next().unwrap().unwrap().trim_start().starts_with("2 "));
    log.append_batch(events().into_iter().skip(3)).unwrap();
    // Then the follower shows them as they come
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 15 {
        let line = lines.next().expect("follower ended early").unwrap();
        seen.push(line.split_whitespace().next().unwrap().parse::<u64>().unwrap());
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    assert_eq!(seen, (3..18).collect::<Vec<_>>());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_directory_without_a_log_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = restpg(&["log", "verify", dir.path().to_str().unwrap()]);
    let stderr = text(&out).1;
    assert!(!out.status.success());
    assert!(stderr.contains("no event log in"), "{stderr}");
}

/// Every file under `dir` with the blake3 of its bytes.
fn hashes(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), blake3::hash(&std::fs::read(&path).unwrap()).to_hex().to_string());
            }
        }
    }
    out
}

/// Flips a byte of every copy of record text `needle` in the run's `log/db`.
fn flip_text(run: &Path, needle: &str) {
    let path = RunDir::new(run).log().join("db");
    let mut bytes = std::fs::read(&path).unwrap();
    let at: Vec<usize> =
        bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle.as_bytes()).map(|(i, _)| i).collect();
    assert!(!at.is_empty(), "{needle:?} is in db");
    for i in at {
        bytes[i + 2] ^= 0x01;
    }
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn no_read_only_command_changes_a_byte_of_a_run_directory() {
    // Given a healthy run, one with a record's bytes flipped in log/db, and
    // one whose last records are gone
    let dir = tempfile::tempdir().unwrap();
    let healthy = run_dir(&dir.path().join("healthy"));
    let flipped = run_dir(&dir.path().join("flipped"));
    flip_text(&flipped, "Draft 5: see you");
    let cut = run_dir(&dir.path().join("cut"));
    store::testing::cut_records(RunDir::new(&cut).log(), 12).unwrap();
    for run in [healthy, flipped, cut] {
        let r = run.to_str().unwrap();
        let before = hashes(&run);
        // When every read-only command reads it
        for args in [
            vec!["log", "verify", r],
            vec!["log", "export", r],
            vec!["log", "tail", r, "-n", "3"],
            vec!["status", r],
            vec!["replay", r, "--iteration", "1"],
            vec!["audit", r, "--iteration", "1"],
        ] {
            restpg(&args);
        }
        // Then not one byte of it changed
        assert_eq!(hashes(&run), before, "{r}");
    }
}

#[test]
fn verify_fails_on_a_cut_off_log_naming_the_last_intact_record() {
    // Given a run whose records 12 to 17 were lost after they were flushed
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    store::testing::cut_records(RunDir::new(&run).log(), 12).unwrap();
    // When it is verified
    let out = restpg(&["log", "verify", run.to_str().unwrap()]);
    // Then it fails: the chain that is left is valid, but the log says 18 were written
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("the last intact record is seq 11"), "{stdout}");
    assert!(stdout.contains("seq 12: missing: the log ends here, but"), "{stdout}");
    assert!(stdout.contains("flushed says 18 records were written"), "{stdout}");
    // and status refuses to present it as a run that stopped early
    let out = restpg(&["status", run.to_str().unwrap()]);
    let stderr = text(&out).1;
    assert!(!out.status.success());
    assert!(stderr.contains("cut off") && stderr.contains("the last intact record is seq 11"), "{stderr}");
}

#[test]
fn salvage_copies_the_intact_records_into_a_new_run_that_verifies_and_resumes() {
    // Given a damaged run with a configuration and a checkpoint beside its log
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    std::fs::write(run.join("config.toml"), "seed = 7\n").unwrap();
    std::fs::write(run.join("blobs").join("ckpt"), b"weights").unwrap();
    store::testing::cut_records(RunDir::new(&run).log(), 12).unwrap();
    let before = hashes(&run);
    // When it is salvaged
    let new = dir.path().join("new");
    let out = restpg(&["log", "salvage", run.to_str().unwrap(), "--out", new.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("copied records 0 to 11 (12 records)"), "{stdout}");
    assert!(stdout.contains("6 records of the 18 written are lost"), "{stdout}");
    // Then the original is unchanged, the new run verifies and has the rest of the run
    assert_eq!(hashes(&run), before);
    let out = restpg(&["log", "verify", new.to_str().unwrap()]);
    assert!(text(&out).0.contains("run cli-run: 12 records, hash chain intact"), "{}", text(&out).0);
    assert_eq!(std::fs::read(new.join("config.toml")).unwrap(), b"seed = 7\n");
    assert_eq!(std::fs::read(new.join("blobs/ckpt")).unwrap(), b"weights");
    // and a writer continues its chain, as `train --resume` does
    let log = EventLog::open(RunDir::new(&new).log(), Some("cli-run")).unwrap();
    assert_eq!(log.append_batch(events()).unwrap().iter().filter(|o| !o.is_duplicate()).count(), 6);
    drop(log);
    let out = restpg(&["log", "verify", new.to_str().unwrap()]);
    assert!(text(&out).0.contains("18 records, hash chain intact"), "{}", text(&out).0);
    // and salvaging into a directory that is not empty is refused
    let out = restpg(&["log", "salvage", run.to_str().unwrap(), "--out", new.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).1.contains("is not empty"), "{}", text(&out).1);
}

#[test]
fn verify_names_the_database_file_when_its_bytes_are_damaged() {
    // Given a run with one record's bytes flipped inside log/db
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path());
    flip_text(&run, "Draft 5: see you");
    // When it is verified
    let out = restpg(&["log", "verify", run.to_str().unwrap()]);
    // Then it fails, naming the record (a hash mismatch) or the db file and the last intact record
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    let named_record = stdout.contains("hash mismatch");
    let named_file = stdout.contains("log/db") && stdout.contains("the last intact record is seq");
    let cut_off = stdout.contains("flushed says 18 records were written");
    assert!(named_record || named_file || cut_off, "{stdout}");
}

#[test]
fn stages_tabulates_each_runs_finished_stages_side_by_side() {
    use events::Stage;
    let dir = tempfile::tempdir().unwrap();
    // Given two runs of one configuration, the second not finished,
    let write = |name: &str, e_step: u64, finished: Option<u64>| {
        let run = RunDir::create(dir.path().join(name)).unwrap();
        let log = EventLog::create(run.log(), name).unwrap();
        let mut evs = vec![events()[0].clone()];
        let mut stage = |iteration, stage, wall_ms| {
            evs.push(Event::StageStarted { iteration, stage });
            evs.push(Event::StageFinished { iteration, stage, wall_ms });
        };
        stage(0, Stage::Sft, 2_000);
        stage(1, Stage::EStep, e_step);
        if let Some(ms) = finished {
            evs.push(Event::RunFinished { wall_ms: ms });
        }
        log.append_batch(evs).unwrap();
        run.path().to_path_buf()
    };
    let tch = write("tch", 10_000, Some(13_000));
    let served = write("llamacpp", 7_500, None);
    // when both are tabulated,
    let out = restpg(&["log", "stages", tch.to_str().unwrap(), served.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // then each stage is a row with one column per run, and the whole run last.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("| iteration | stage | {} (s) | {} (s) |", tch.display(), served.display()),
        "{stdout}"
    );
    assert_eq!(lines[2], "| 0 | sft | 2.0 | 2.0 |", "{stdout}");
    assert_eq!(lines[3], "| 1 | e-step | 10.0 | 7.5 |", "{stdout}");
    assert_eq!(lines[4], "| | **run** | 13.0 | – |", "{stdout}");
    // A run's log directory is a run too, and a directory without a log is named.
    let out = restpg(&["log", "stages", tch.join("log").to_str().unwrap()]);
    assert!(out.status.success() && text(&out).0.contains("| 1 | e-step | 10.0 |"), "{}", text(&out).1);
    let out = restpg(&["log", "stages", dir.path().join("none").to_str().unwrap()]);
    let err = text(&out).1;
    assert!(!out.status.success() && err.contains("none does not exist"), "{err}");
    let out = restpg(&["log", "stages", dir.path().to_str().unwrap()]);
    let err = text(&out).1;
    assert!(!out.status.success() && err.contains("no event log in"), "{err}");
}
