//! End to end through the real binary on the real demo data, at tiny scale:
//! REST-PG with m = 2, T = 1 and a few training steps, with the SmolLM2
//! model as policy, judge and reasoning generator.
//!
//! - the uninterrupted run (with a sampler worker made to fail once by the
//!   test-only fault switch) completes, logs every stage's events, seals D_1,
//!   logs loadable checkpoints, and has exactly m samples per train input;
//! - a second run of the same configuration is killed with SIGKILL during
//!   the E-step and resumed with `--resume`: its D_1 digest equals the
//!   uninterrupted run's;
//! - `restpg replay` rebuilds D_1 from the log alone and verifies it, and
//!   `--resample` regenerates logged samples to the identical text, with
//!   the repetition guards and the precision each sample logged (all guards
//!   on, bf16 here);
//! - `restpg export` writes D_1 in TRL's prompt-completion shape, each
//!   prompt rebuilt to the exact text the policy saw;
//! - a new run says it is starting, a resumed one that it resumes, and
//!   neither colours a piped stderr;
//! - the reward check is the first stage, logged once as `RewardChecked`,
//!   shown by `restpg status` and in `reports/reward-check.md`, and not
//!   redone by a resumed run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{bin, events_of};
use events::Event;

fn run_ok(cmd: &mut Command) -> String {
    run_ok_with_stderr(cmd).0
}

fn run_ok_with_stderr(cmd: &mut Command) -> (String, String) {
    common::cli::run_ok(cmd)
}

/// Reads a JSON Lines file the way TRL reads a prompt-completion data set
/// (`datasets.load_dataset("json", ...)`, then `prompt` and `completion`
/// as strings): every line one JSON object with string fields `prompt`
/// and `completion`; other fields are allowed.
fn load_prompt_completion(path: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let body = std::fs::read_to_string(path).expect("read the export");
    body.lines()
        .enumerate()
        .map(|(i, line)| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            let obj = value.as_object().unwrap_or_else(|| panic!("line {} is not an object", i + 1)).clone();
            for field in ["prompt", "completion"] {
                assert!(
                    obj.get(field).is_some_and(serde_json::Value::is_string),
                    "line {}: no string {field:?}: {line}",
                    i + 1
                );
            }
            obj
        })
        .collect()
}

const M: u32 = 2;

fn config(data: &Path) -> String {
    format!(
        r#"
method = "rest-pg"
seed = 7
data = "{data}"

[model]
# Samples drawn in bf16: replay --resample must take the same path.
dtype = "bf16"

[retrieval]
k = 1

[sampling]
m = {M}
max_new_tokens = 12
reasoning_max_new_tokens = 12
batch_size = 4
repetition_penalty = 1.2
frequency_penalty = 0.3
presence_penalty = 0.2
no_repeat_ngram_size = 3
min_p = 0.05

[reward]
tau = 0.0

[em]
iterations = 1
# The tiny token limits cut most samples: keep them, as the tiny run
# needs a D_t (the default drops them as `unfinished`).
allow_unfinished_samples = true

[train]
optimizer = "adamw"
learning_rate = 1e-4
warmup_steps = 1
max_steps = 2
batch_size = 2
micro_batch_size = 2
max_input_tokens = 384
max_output_tokens = 48

[eval]
max_per_task = 1
max_new_tokens = 8
validation = false
"#,
        data = data.display()
    )
}

fn sealed_digest(events: &[Event], iteration: u32) -> events::Digest {
    events
        .iter()
        .find_map(|e| match e {
            Event::DatasetSealed { iteration: t, digest, .. } if *t == iteration => Some(*digest),
            _ => None,
        })
        .expect("D_t sealed")
}

#[test]
fn rest_pg_end_to_end_with_fault_kill_and_resume() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    run_ok(bin().args(["data", "demo", "--users", "4", "--max-words", "40", "--out"]).arg(&data));
    let cfg = tmp.path().join("run.toml");
    std::fs::write(&cfg, config(&data)).expect("config");

    // Given an uninterrupted run whose sampler fails once (re-issued), its
    // run directory given relative to the working directory, as the demo
    // gives `runs/demo/run`.
    let a = tmp.path().join("runs/a");
    let (_, stderr) = run_ok_with_stderr(
        bin()
            .current_dir(tmp.path())
            .args(["train", "--quiet", "--test-fault-sampler-once-at-batch", "1", "--config"])
            .arg(&cfg)
            .args(["--run-dir", "runs/a"]),
    );
    let ev = events_of(&a);
    // The log names each report relative to the run directory, and it is
    // there.
    for e in &ev {
        if let Event::EvaluationDone { report_path, .. } = e {
            assert!(report_path.starts_with("reports/"), "{report_path}");
            assert!(a.join(report_path).is_file(), "{report_path} not in {}", a.display());
        }
    }
    // A new run says so (its log holds nothing when the coordinator starts;
    // it then writes RunStarted and the base checkpoint), in plain text on
    // a pipe.
    assert!(stderr.contains("starting a new run") && !stderr.contains("resuming from the log"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "ANSI escapes on a piped stderr: {stderr:?}");

    // Then every stage logged its events.
    let kinds: BTreeSet<String> = ev.iter().map(|e| format!("{:?}", e.kind())).collect();
    for k in [
        "RunStarted",
        "RetrievalDone",
        "ReasoningGenerated",
        "SampleGenerated",
        "RewardAssigned",
        "FilterDecided",
        "DatasetSealed",
        "TrainingProgress",
        "CheckpointSaved",
        "EvaluationDone",
        "RunFinished",
        "RewardChecked",
    ] {
        assert!(kinds.contains(k), "no {k} event in {kinds:?}");
    }
    // The reward check ran first, once, and `status` and the report show it.
    let first_stage = ev.iter().find_map(|e| match e {
        Event::StageStarted { stage, .. } => Some(*stage),
        _ => None,
    });
    assert_eq!(first_stage, Some(events::Stage::RewardCheck));
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::RewardChecked { .. })).count(), 1);
    let status = run_ok(bin().arg("status").arg(&a));
    assert!(status.contains("reward check `judge` (K = 8"), "{status}");
    assert!(status.contains("AUC own>other") && status.contains("RewardChecked=1"), "{status}");
    let report = std::fs::read_to_string(a.join("reports/reward-check.md")).expect("reward check report");
    assert!(report.contains("Reward check: `judge`"), "{report}");
    // Exactly m samples per train input, none duplicated, each judged and
    // filtered once.
    let mut per_input: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let (mut samples, mut rewards, mut decisions) = (0, 0, 0);
    for e in &ev {
        match e {
            Event::SampleGenerated { sample, penalties, precision, .. } if sample.iteration == 1 => {
                samples += 1;
                // Each sample logs the guards it was drawn with.
                let want = events::Penalties {
                    repetition_penalty: 1.2,
                    frequency_penalty: 0.3,
                    presence_penalty: 0.2,
                    no_repeat_ngram_size: 3,
                    min_p: 0.05,
                };
                assert_eq!((*penalties, *precision), (want, events::Precision::Bf16), "{sample}");
                assert!(
                    per_input.entry(sample.input_id.clone()).or_default().insert(sample.index),
                    "duplicate {sample}"
                );
            }
            Event::RewardAssigned { sample, .. } if sample.iteration == 1 => rewards += 1,
            Event::FilterDecided { sample, .. } if sample.iteration == 1 => decisions += 1,
            _ => {}
        }
    }
    assert!(!per_input.is_empty());
    for (input, idx) in &per_input {
        assert_eq!(idx.len(), M as usize, "input {input} has samples {idx:?}");
    }
    assert_eq!(rewards, samples);
    assert_eq!(decisions, samples);
    // Checkpoints are logged and loadable.
    let ckpts: Vec<PathBuf> = ev
        .iter()
        .filter_map(|e| match e {
            // Logged relative to the run directory.
            Event::CheckpointSaved { path, .. } => Some(a.join(path)),
            _ => None,
        })
        .collect();
    assert!(ckpts.len() >= 2, "expected SFT and M-step checkpoints, got {ckpts:?}");
    let last = ckpts.last().expect("checkpoint");
    let out = run_ok(bin().args(["generate", "--max-new-tokens", "3", "--prompt", "Hello", "--model"]).arg(last));
    assert!(!out.trim().is_empty() || out.is_empty(), "generate ran");
    // `write` uses the run's last checkpoint, retriever and template for a
    // user given by a profile file, and prints reasoning and response apart.
    let profile = tmp.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"[{"subject": "Razor timeouts", "text": "The razor servers time out again. I restarted spamd."},
            {"subject": "Lunch", "text": "Pizza on Friday? I'll bring drinks."}]"#,
    )
    .unwrap();
    let (out, stderr) = run_ok_with_stderr(
        bin()
            .args([
                "write",
                "--task",
                "email-completion",
                "--input",
                "Finish this e-mail: \"The razor servers\"",
                "--profile",
            ])
            .arg(&profile)
            .arg("--run")
            .arg(&a),
    );
    assert!(out.starts_with("## Reasoning\n") && out.contains("\n## Response\n"), "{out}");
    assert!(stderr.contains(&last.display().to_string()), "writes with the run's last checkpoint: {stderr}");
    // A profile item without the task's fields is refused, naming the field.
    std::fs::write(&profile, r#"[{"subject": "no text"}]"#).unwrap();
    let err = bin()
        .args(["write", "--task", "email-completion", "--input", "x", "--profile"])
        .arg(&profile)
        .arg("--run")
        .arg(&a)
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(!err.status.success() && msg.contains("profile[0].text"), "{msg}");
    let digest_a = sealed_digest(&ev, 1);

    // Replay rebuilds D_1 from the log alone, and regenerating two logged
    // samples from their seeds and checkpoint gives the logged text.
    let out = run_ok(bin().args(["replay", "--iteration", "1", "--resample", "2"]).arg(&a));
    assert!(out.contains(&events::digest_hex(&digest_a)), "replay output lacks the sealed digest: {out}");
    assert!(out.contains("resampled 2 samples"), "replay did not resample: {out}");

    // Export writes D_1 as TRL reads a prompt-completion data set, each
    // prompt the exact text the policy saw (it hashes to the logged digest),
    // into a file private to its owner.
    let d1 = tmp.path().join("d1.jsonl");
    run_ok(bin().args(["export", "--iteration", "1", "--out"]).arg(&d1).arg(&a));
    let lines = load_prompt_completion(&d1);
    let sealed_count = ev
        .iter()
        .find_map(|e| match e {
            Event::DatasetSealed { iteration: 1, count, .. } => Some(*count),
            _ => None,
        })
        .expect("D_1 sealed");
    assert_eq!(lines.len() as u64, sealed_count);
    let logged_prompts: BTreeMap<String, String> = ev
        .iter()
        .filter_map(|e| match e {
            Event::SampleGenerated { sample, prompt_digest, .. } if sample.iteration == 1 => {
                Some((sample.to_string(), events::digest_hex(prompt_digest)))
            }
            _ => None,
        })
        .collect();
    for l in &lines {
        let prompt = l["prompt"].as_str().unwrap();
        assert!(prompt.contains("<|im_start|>user\n") && prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
        let id = l["sample_id"].as_str().unwrap();
        assert_eq!(events::digest_hex(&events::digest(prompt.as_bytes())), logged_prompts[id], "{id}");
        assert_eq!(l["prompt_digest"].as_str(), Some(logged_prompts[id].as_str()));
        assert!(l["weight"].is_number());
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&d1).unwrap().permissions().mode() & 0o777, 0o600);

    // When a second run is killed with SIGKILL during the E-step…
    let b = tmp.path().join("b");
    let mut child = bin()
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&b)
        .env("RUST_LOG", "restpg::pipeline=debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut seen = 0;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr line");
        if line.contains("SampleGenerated") {
            seen += 1;
            if seen == 2 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no samples generated in time");
    }
    assert_eq!(seen, 2, "the run ended before its E-step");
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");

    // …then resuming finishes with the same D_1 as the uninterrupted run,
    // without checking the reward again (its report is not rewritten).
    let check_report = b.join("reports/reward-check.json");
    let checked_at = std::fs::metadata(&check_report).and_then(|m| m.modified()).expect("reward check before the kill");
    let (_, stderr) = run_ok_with_stderr(bin().args(["train", "--quiet", "--resume"]).arg(&b));
    assert_eq!(std::fs::metadata(&check_report).and_then(|m| m.modified()).unwrap(), checked_at);
    assert!(stderr.contains("resuming from the log"), "{stderr}");
    let ev_b = events_of(&b);
    assert_eq!(
        events::digest_hex(&sealed_digest(&ev_b, 1)),
        events::digest_hex(&digest_a),
        "resumed run sealed a different D_1"
    );
    assert_eq!(ev_b.iter().filter(|e| matches!(e, Event::RewardChecked { .. })).count(), 1);
    let mut ids = BTreeSet::new();
    for e in &ev_b {
        if let Event::SampleGenerated { sample, .. } = e {
            assert!(ids.insert(sample.to_string()), "sample {sample} logged twice after resume");
        }
    }
}

#[test]
fn replay_retrains_a_continue_run_to_its_logged_checkpoint() {
    // Given a run whose M-step continues from θ_1 (the SFT checkpoint), with
    // every non-zero sample kept (12 tokens are too few for reasoning),
    // training in mixed precision decided by `auto`, and an E-step limited
    // to one training input per task
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    run_ok(bin().args(["data", "demo", "--users", "4", "--max-words", "40", "--out"]).arg(&data));
    let cfg = tmp.path().join("run.toml");
    let text = config(&data)
        .replace(
            "[em]\niterations = 1\n",
            "[em]\niterations = 1\nallow_samples_without_reasoning = true\ninputs_per_task = 1\n",
        )
        .replace("[train]\n", "[train]\ninit = \"continue\"\nprecision = \"auto\"\n")
        // f32 here (the other test samples in bf16): these 12-token samples
        // then keep non-zero rewards.
        .replace("dtype = \"bf16\"", "dtype = \"f32\"");
    assert!(text.contains("init = \"continue\"") && text.contains("allow_samples_without_reasoning"));
    std::fs::write(&cfg, text).expect("config");
    let c = tmp.path().join("c");
    run_ok(bin().args(["train", "--quiet", "--config"]).arg(&cfg).arg("--run-dir").arg(&c));
    let ev = events_of(&c);
    let kept = ev.iter().filter(|e| matches!(e, Event::FilterDecided { decision: events::Decision::Kept, .. })).count();
    assert!(kept > 0, "D_1 is empty: nothing to retrain");
    // and the logged configuration names the precision `auto` chose here
    let want = restpg::config::DtypeChoice::Auto.resolve(tch::Device::Cpu).to_string();
    let logged = std::fs::read_to_string(c.join("config.toml")).expect("config.toml");
    assert!(!logged.contains("\"auto\""), "{logged}");
    assert_eq!(logged.contains("precision = \"bf16\""), want == "bf16", "{logged}");
    // and SFT's reasoning covers every training input while the E-step drew
    // m samples of one input per task
    let reasoned: BTreeSet<String> = ev
        .iter()
        .filter_map(|e| match e {
            Event::ReasoningGenerated { input_id, .. } => Some(input_id.clone()),
            _ => None,
        })
        .collect();
    let sampled: BTreeMap<String, usize> = ev.iter().fold(BTreeMap::new(), |mut acc, e| {
        if let Event::SampleGenerated { sample, .. } = e {
            *acc.entry(sample.input_id.clone()).or_default() += 1;
        }
        acc
    });
    let tasks: BTreeSet<&str> = sampled.keys().map(|id| id.split('-').next().unwrap_or("")).collect();
    assert_eq!(sampled.len(), 2, "one input per task: {sampled:?}");
    assert_eq!(tasks.len(), 2, "{sampled:?}");
    assert!(sampled.values().all(|&n| n == M as usize), "{sampled:?}");
    assert!(reasoned.len() > sampled.len(), "SFT data {reasoned:?} vs E-step inputs {sampled:?}");
    assert!(sampled.keys().all(|id| reasoned.contains(id)));
    // and the log records where the M-step started, as a typed setting
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::RunStarted { settings: Some(s), .. } if s.init == events::InitMode::Continue
    )));
    // When replay re-runs the M-step from the log, then it starts from θ_1
    // and rebuilds the logged checkpoint bit for bit
    let out = run_ok(bin().args(["replay", "--iteration", "1", "--retrain"]).arg(&c));
    assert!(out.contains("equals the logged one"), "{out}");

    // And `restpg eval --run` of the run's last checkpoint takes the run's
    // own evaluation path and settings: its report equals the run's test
    // report, and `compare` accepts the two.
    let eval_dir = tmp.path().join("eval");
    run_ok(bin().args(["eval", "--run"]).arg(&c).args(["--split", "test", "--out"]).arg(&eval_dir));
    let reports = c.join("reports");
    let own = std::fs::read_dir(&reports)
        .expect("reports")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("rest-pg-test-"))
                && p.extension().is_some_and(|x| x == "json")
        })
        .expect("the run's test report");
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).expect("report")).expect("json")
    };
    let (a, b) = (read(&own), read(&eval_dir.join("report.json")));
    assert_eq!(a["macro_average"], b["macro_average"], "eval --run differs from the run's own evaluation");
    assert_eq!(a["provenance"]["checkpoint"], b["provenance"]["checkpoint"]);
    let out = run_ok(bin().arg("compare").arg(&own).arg(eval_dir.join("report.json")));
    assert!(out.contains("rest-pg@"), "{out}");
}
