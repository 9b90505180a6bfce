//! `[engine.trainer] backend = "command"`: SFT and the M-step by an external
//! trainer given D_t as JSON Lines.
//!
//! The protocol (what restpg writes, fills in, checks and stores) is tested
//! with shell commands on the real pipeline; the real recipe,
//! `scripts/trl_sft.py` on TRL, runs when `scripts/setup.sh --trl` has
//! installed it (about 4.5 GB, so the test command does not):
//! `cargo test --release --test engine_command_trainer -- --ignored`.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{bin, demo_data, events_of};
use events::Event;

fn config(data: &Path, method: &str, command: &str) -> String {
    format!(
        r#"
method = "{method}"
seed = 5
data = "{data}"

[retrieval]
k = 1

[sampling]
m = 2
max_new_tokens = 12
reasoning_max_new_tokens = 12
batch_size = 4

[reward]
name = "rouge-l"
tau = 0.0
check_per_task = 0

[em]
iterations = 1
# The tiny token limits cut most samples: keep them, as the tiny run
# needs a D_t (the default drops them as `unfinished`).
allow_unfinished_samples = true

[train]
max_input_tokens = 384
max_output_tokens = 32

[eval]
validation = false
test = false

[engine.trainer]
backend = "command"
command = '''{command}'''
"#,
        data = data.display()
    )
}

fn train(dir: &Path, cfg_text: &str) -> (bool, String, PathBuf) {
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let run = dir.join("run");
    let out = bin().args(["train", "--quiet", "--config"]).arg(&cfg).arg("--run-dir").arg(&run).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), run)
}

#[test]
fn the_command_gets_the_training_set_and_its_out_becomes_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_data(tmp.path());
    let seen = tmp.path().join("seen");
    std::fs::create_dir(&seen).unwrap();
    // A "trainer" that keeps the weights and the data it was given.
    let command =
        format!("mkdir -p {{out}} && cp {{init}}/* {{out}}/ && cp {{dataset}} {}/d-{{seed}}.jsonl", seen.display());
    let (ok, stderr, run) = train(tmp.path(), &config(&data, "sft", &command));
    assert!(ok, "{stderr}");
    let files: Vec<PathBuf> = std::fs::read_dir(&seen).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&files[0]).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let prompt = l["prompt"].as_str().unwrap();
        assert!(prompt.contains("<|im_start|>assistant"), "{prompt}");
        assert!(!l["completion"].as_str().unwrap().is_empty());
        assert_eq!(l["weight"].as_f64(), Some(1.0));
        assert_eq!(l["prompt_digest"].as_str().unwrap(), events::digest_hex(&events::digest(prompt.as_bytes())));
    }
    // The SFT checkpoint is the command's out, stored by content hash.
    let ev = events_of(&run);
    let sft = ev
        .iter()
        .find_map(|e| match e {
            Event::CheckpointSaved { role: events::Role::Sft, path, .. } => Some(run.join(path)),
            _ => None,
        })
        .expect("an SFT checkpoint");
    assert!(sft.join("model.safetensors").exists() && sft.join("tokenizer.json").exists());
    assert!(run.join("engines/trainer-0.log").exists());
}

#[test]
fn a_failing_command_or_an_out_that_is_no_checkpoint_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_data(tmp.path());
    let a = tmp.path().join("a");
    std::fs::create_dir(&a).unwrap();
    let (ok, stderr, _) =
        train(&a, &config(&data, "sft", "echo 'CUDA out of memory' >&2; exit 3 # {dataset} {init} {out}"));
    assert!(!ok);
    assert!(stderr.contains("CUDA out of memory") && stderr.contains("exit status: 3"), "{stderr}");
    let b = tmp.path().join("b");
    std::fs::create_dir(&b).unwrap();
    let (ok, stderr, _) = train(&b, &config(&data, "sft", "mkdir -p {out} # {dataset} {init}"));
    assert!(!ok);
    assert!(stderr.contains("is not a checkpoint") && stderr.contains("{out}"), "{stderr}");
}

#[test]
#[ignore = "needs TRL: ./scripts/setup.sh --trl (about 4.5 GB)"]
fn rest_em_with_the_m_step_on_trl() {
    let python = restpg::paths::cache_root().join("trl/venv/bin/python");
    assert!(python.exists(), "TRL is missing: run ./scripts/setup.sh --trl");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/trl_sft.py");
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_data(tmp.path());
    let command = format!(
        "{} {} --dataset {{dataset}} --init {{init}} --out {{out}} --seed {{seed}} --max-steps 2 --batch-size 2 \
         --micro-batch-size 2 --learning-rate 1e-4 --warmup-steps 1 --threads 1",
        python.display(),
        script.display()
    );
    let (ok, stderr, run) = train(tmp.path(), &config(&data, "rest-em", &command));
    assert!(ok, "{stderr}");
    let ev = events_of(&run);
    let saved: Vec<(events::Role, events::Digest)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::CheckpointSaved { role, hash, .. } => Some((*role, *hash)),
            _ => None,
        })
        .collect();
    let sft = saved.iter().find(|(r, _)| *r == events::Role::Sft).expect("SFT checkpoint").1;
    assert!(saved.iter().any(|(r, _)| *r == events::Role::MStep), "{saved:?}");
    // The E-step sampled from the checkpoint TRL wrote, and TRL reported its steps.
    let drawn: Vec<events::Digest> = ev
        .iter()
        .filter_map(|e| match e {
            Event::SampleGenerated { checkpoint, .. } => Some(*checkpoint),
            _ => None,
        })
        .collect();
    assert!(!drawn.is_empty() && drawn.iter().all(|c| *c == sft));
    assert!(ev.iter().any(|e| matches!(e, Event::TrainingProgress { step: 2, .. })));
    let log = std::fs::read_to_string(run.join("engines/trainer-1.log")).unwrap();
    assert!(log.contains("trl 1.16.0") && log.contains("step 2/2"), "{log}");
}
