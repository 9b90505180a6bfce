//! Roles served by a real llama.cpp server (the set-up's llama-cpp-python,
//! `scripts/setup.sh --llamacpp`, which the test command runs).
//!
//! - A tiny REST-PG run whose policy and judge both go through servers that
//!   restpg launches (the policy from each checkpoint exported as GGUF),
//!   with the policy's server killed in the middle of the E-step: the batch
//!   is re-issued to a relaunched server, every sample is logged once, D_1
//!   is sealed, replay verifies it and the audit names the engine; its
//!   evaluations generate and judge through the servers, and `restpg eval`
//!   of its checkpoint on the servers and on tch writes mostly the same
//!   greedy texts.
//! - A judge at a fixed `url` killed during the judge stage: the run fails
//!   naming the URL; with the server back, `train --resume` finishes with
//!   every sample once.
//! - The judge through llama.cpp and the tch judge on the same samples
//!   agree on the top score for at least 90% of them.
//! - restpg killed with SIGKILL leaves no server behind.
//! - A policy at a fixed `url` is refused by key before any work.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{bin, demo_data, events_of, run_ok};
use events::Event;

fn python() -> PathBuf {
    let p = restpg::cli::bench_peer::llamacpp_python();
    assert!(p.exists(), "llama-cpp-python is missing: run ./scripts/setup.sh --llamacpp");
    p
}

fn judge_gguf() -> PathBuf {
    restpg::paths::require(restpg::paths::smollm2_gguf()).expect("the set-up's SmolLM2 GGUF")
}

/// The launch template of llama-cpp-python's server, one thread.
fn launch() -> String {
    format!(
        "{} -m llama_cpp.server --model {{gguf}} --port {{port}} --seed {{seed}} --n_ctx 2048 --n_threads 1",
        python().display()
    )
}

fn engine_section(role: &str, how: &str) -> String {
    format!(
        "\n[engine.{role}]\nbackend = \"openai\"\n{how}\nprompt_format = \"text\"\nconcurrency = 1\ntimeout_s = 60\nretries = 1\n"
    )
}

fn config(data: &Path, method: &str, m: u32, check_per_task: u32) -> String {
    format!(
        r#"
method = "{method}"
seed = 11
data = "{data}"

[retrieval]
k = 1

[sampling]
m = {m}
max_new_tokens = 16
reasoning_max_new_tokens = 12
batch_size = 4

[reward]
tau = 0.0
check_per_task = {check_per_task}

[em]
iterations = 1
# The tiny token limits cut most samples: keep them, as the tiny run
# needs a D_t (the default drops them as `unfinished`).
allow_unfinished_samples = true

[train]
learning_rate = 1e-4
warmup_steps = 1
max_steps = 1
batch_size = 2
micro_batch_size = 2
max_input_tokens = 384
max_output_tokens = 32

[eval]
validation = false
test = false
"#,
        data = data.display()
    )
}

/// Pids of llama-cpp-python servers whose command line contains `needle`.
fn servers_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z'));
        if !zombie && cmd.contains("llama_cpp.server") && cmd.contains(needle) {
            out.push(pid);
        }
    }
    out
}

fn kill(pid: i32) {
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
}

/// `restpg train` of `cfg` into `run`, stderr to `stderr`, stdout to a pipe.
fn start_train(cfg: &Path, run: &Path, stderr: Stdio) -> Child {
    bin()
        .args(["train", "--quiet", "--config"])
        .arg(cfg)
        .arg("--run-dir")
        .arg(run)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The log of the server restpg launched whose name starts with `prefix`.
fn server_log(engines: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(engines)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
}

/// Waits until the `launch`-th server whose output goes to `path` (a log
/// restpg writes holds each launch's output after a launch line; any other
/// is one launch) has answered at least `n` completion requests; panics
/// after `limit`.
fn wait_for_requests(path: &dyn Fn() -> Option<PathBuf>, launch: usize, n: usize, limit: Duration, child: &mut Child) {
    let t0 = Instant::now();
    loop {
        if let Some(p) = path() {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let mark = restpg::engine::openai::server::LAUNCH_MARK;
            let launches: Vec<&str> =
                if text.contains(mark) { text.split(mark).skip(1).collect() } else { vec![text.as_str()] };
            if launches.get(launch - 1).is_some_and(|l| l.matches("POST /v1/completions").count() >= n) {
                return;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "restpg ended before the server answered {n} requests");
        assert!(t0.elapsed() < limit, "the server did not answer {n} requests within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The E-step samples of iteration 1, each once, and their rewards.
fn samples_and_rewards(ev: &[Event]) -> (BTreeMap<String, Event>, BTreeMap<String, Event>) {
    let (mut samples, mut rewards) = (BTreeMap::new(), BTreeMap::new());
    for e in ev {
        match e {
            Event::SampleGenerated { sample, .. } if sample.iteration == 1 => {
                assert!(samples.insert(sample.to_string(), e.clone()).is_none(), "{sample} logged twice");
            }
            Event::RewardAssigned { sample, .. } if sample.iteration == 1 => {
                assert!(rewards.insert(sample.to_string(), e.clone()).is_none(), "{sample} judged twice");
            }
            _ => {}
        }
    }
    (samples, rewards)
}

#[test]
fn rest_pg_through_launched_llama_cpp_servers_survives_a_killed_policy_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_data(tmp.path());
    let run = tmp.path().join("run");
    let how = format!("launch = \"{}\"", launch());
    // Greedy evaluation on validation, two examples per task.
    let evaluated = config(&data, "rest-pg", 2, 0).replace(
        "[eval]\nvalidation = false",
        "[eval]\nvalidation = true\nmax_per_task = 2\ntemperature = 0.0\nmax_new_tokens = 16",
    );
    // llama-cpp-python's server gives the same text for the same request and
    // seed: declared, so `replay --resample` may hold it to that.
    let policy = engine_section("policy", &format!("{how}\ndeterministic = true"));
    let cfg_text = format!("{}{}{}", evaluated, policy, engine_section("judge", &how));
    let cfg = tmp.path().join("run.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let mut child = start_train(&cfg, &run, Stdio::piped());
    // Given the E-step under way through the policy's server,
    let engines = run.join("engines");
    // (the second server of the SFT checkpoint: the first evaluated it)
    wait_for_requests(&|| server_log(&engines, "policy-"), 2, 2, Duration::from_secs(600), &mut child);
    // when the server dies,
    let pids = servers_with(&engines.to_string_lossy());
    assert_eq!(pids.len(), 1, "one policy server expected: {pids:?}");
    kill(pids[0]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // then the failed batch was re-issued to a relaunched server, naming the
    // failure, and the run finished.
    assert!(out.status.success(), "the run failed:\n{stderr}");
    assert!(stderr.contains("re-issuing batch") && stderr.contains("http://127.0.0.1:"), "{stderr}");
    assert!(servers_with(&tmp.path().to_string_lossy()).is_empty(), "a server outlived the run");

    let ev = events_of(&run);
    let (samples, rewards) = samples_and_rewards(&ev);
    assert!(!samples.is_empty());
    assert_eq!(samples.keys().collect::<Vec<_>>(), rewards.keys().collect::<Vec<_>>());
    for e in samples.values() {
        let Event::SampleGenerated { sample, engine, .. } = e else { unreachable!() };
        assert_eq!(engine.backend, events::Backend::OpenAi, "{sample}");
        assert!(engine.server_model.as_deref().is_some_and(|m| m.ends_with(".gguf")), "{sample}: {engine:?}");
        assert!(engine.server_version.as_deref().is_some_and(|v| v.contains("0.3.36")), "{sample}: {engine:?}");
        assert_eq!(engine.prompt_format, Some(events::PromptFormat::Text));
    }
    for e in rewards.values() {
        let Event::RewardAssigned { sample, engine, unseen_mass, judge_distribution, .. } = e else { unreachable!() };
        if !judge_distribution.is_empty() {
            assert_eq!(engine.as_ref().map(|e| e.backend), Some(events::Backend::OpenAi), "{sample}");
            assert!(unseen_mass.is_some_and(|u| (0.0..=1.0).contains(&u)), "{sample}: {unseen_mass:?}");
        }
    }
    // The exported checkpoint the policy server loaded is kept by hash.
    assert!(std::fs::read_dir(&engines).unwrap().flatten().any(|e| e.path().extension().is_some_and(|x| x == "gguf")));

    // Replay rebuilds and verifies D_1 from the log; the audit names the engine.
    let (replay, _) = run_ok(bin().args(["replay", "--iteration", "1"]).arg(&run));
    let sealed = ev
        .iter()
        .find_map(|e| match e {
            Event::DatasetSealed { iteration: 1, digest, .. } => Some(*digest),
            _ => None,
        })
        .expect("D_1 sealed");
    assert!(replay.contains(&events::digest_hex(&sealed)), "{replay}");
    let (audit, _) = run_ok(bin().args(["audit", "--iteration", "1"]).arg(&run));
    assert!(audit.contains("openai"), "{audit}");
    let (stages, _) = run_ok(bin().args(["log", "stages"]).arg(&run));
    assert!(stages.contains("| 1 | e-step | ") && stages.contains("| 1 | eval-validation | "), "{stages}");
    // `replay --resample` draws samples again through a server launched for
    // their checkpoint: declared deterministic, each must be identical; on
    // tch they are only reported.
    let (resampled, _) = run_ok(bin().args(["replay", "--iteration", "1", "--resample", "3"]).arg(&run));
    assert!(resampled.contains("resampled 3 samples of iteration 1: prompts and texts identical"), "{resampled}");
    let (on_tch, _) =
        run_ok(bin().args(["replay", "--iteration", "1", "--resample", "3", "--engine", "tch"]).arg(&run));
    assert!(on_tch.contains("0 identical to the log (deterministic engine)"), "{on_tch}");
    eprintln!("{on_tch}");

    // The run's evaluations generated and judged through the servers.
    let mut evaluations = Vec::new();
    for e in std::fs::read_dir(run.join("reports")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains("-validation-") && name.ends_with(".json") {
            let p = report(&e.path()).provenance.expect("provenance");
            assert!(p.policy_engine.starts_with("openai ") && p.judge_engine.starts_with("openai "), "{name}: {p:?}");
            evaluations.push(e.path());
        }
    }
    assert_eq!(evaluations.len(), 2, "SFT and iteration 1 evaluated on validation");
    // Two checkpoints evaluated on one engine compare.
    run_ok(bin().arg("compare").arg(&evaluations[0]).arg(&evaluations[1]));
    // `restpg eval` of the last checkpoint on the run's engines and on tch:
    // greedy generations from the same weights mostly agree.
    let served = tmp.path().join("eval-served");
    let embedded = tmp.path().join("eval-tch");
    run_ok(bin().args(["eval", "--split", "val", "--run"]).arg(&run).arg("--out").arg(&served));
    run_ok(bin().args(["eval", "--split", "val", "--engine", "tch", "--run"]).arg(&run).arg("--out").arg(&embedded));
    let (a, b) = (report(&served.join("report.json")), report(&embedded.join("report.json")));
    assert!(a.provenance.as_ref().unwrap().policy_engine.starts_with("openai "));
    assert_eq!(b.provenance.as_ref().unwrap().policy_engine, "tch");
    assert_eq!(
        a.examples.iter().map(|e| &e.id).collect::<Vec<_>>(),
        b.examples.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    let same = a.examples.iter().zip(&b.examples).filter(|(x, y)| x.generated == y.generated).count();
    eprintln!("greedy evaluation texts identical on llama.cpp and tch: {same} of {}", a.examples.len());
    assert!(2 * same >= a.examples.len(), "only {same} of {} greedy texts agree", a.examples.len());
    // Reports from different engines are not compared.
    let out = bin().arg("compare").arg(served.join("report.json")).arg(embedded.join("report.json")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("policy_engine"), "{err}");
}

fn report(path: &Path) -> restpg::eval::EvalReport {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_judge_at_a_url_that_dies_fails_the_run_by_name_and_resume_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_data(tmp.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server_log = tmp.path().join("judge-server.log");
    let start_server = || -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&server_log).unwrap();
        let c = Command::new(python())
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(judge_gguf())
            .args(["--port", &port.to_string(), "--n_ctx", "2048", "--n_threads", "1"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(120), "the judge server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    };
    let mut server = start_server();
    let url = format!("http://127.0.0.1:{port}/v1");
    let cfg_text =
        format!("{}{}", config(&data, "rest-em", 3, 0), engine_section("judge", &format!("url = \"{url}\"")));
    let cfg = tmp.path().join("run.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let run = tmp.path().join("run");
    let mut child = start_train(&cfg, &run, Stdio::piped());
    // Given the judge stage under way,
    let log_path = server_log.clone();
    wait_for_requests(&|| Some(log_path.clone()), 1, 2, Duration::from_secs(600), &mut child);
    // when the judge's server dies,
    server.kill().unwrap();
    server.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // then the run fails naming the URL,
    assert!(!out.status.success(), "the run did not fail:\n{stderr}");
    assert!(stderr.contains(&format!("{url}/completions")) && stderr.contains("no answer"), "{stderr}");
    let before = samples_and_rewards(&events_of(&run));
    assert!(before.1.len() < before.0.len(), "rewards {} of {}", before.1.len(), before.0.len());
    // and with the server back, resume finishes with every sample once.
    let mut server = start_server();
    run_ok(bin().args(["train", "--quiet", "--resume"]).arg(&run));
    server.kill().unwrap();
    server.wait().unwrap();
    let (samples, rewards) = samples_and_rewards(&events_of(&run));
    assert_eq!(samples.keys().collect::<Vec<_>>(), rewards.keys().collect::<Vec<_>>());
    for (id, e) in &before.0 {
        assert_eq!(samples.get(id), Some(e), "{id} changed across the resume");
    }
    for e in rewards.values() {
        let Event::RewardAssigned { engine, judge_distribution, .. } = e else { unreachable!() };
        if !judge_distribution.is_empty() {
            assert_eq!(engine.as_ref().and_then(|e| e.url.clone()), Some(url.clone()));
        }
    }
}

#[test]
fn the_llama_cpp_judge_agrees_with_the_tch_judge_on_the_top_score() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_data(tmp.path());
    // The same checkpoint for both: the judge exported as F32 GGUF, so both
    // engines compute with the same weights (the set-up's Q4_1 file makes
    // llama.cpp quantize activations too, which our engine does not).
    let judge = tmp.path().join("judge-f32.gguf");
    run_ok(
        bin().args(["model", "export", "--format", "gguf", "--dtype", "f32", "--out"]).arg(&judge).arg(judge_gguf()),
    );
    // The same tch policy and seeds: both runs judge the same samples; tch
    // in f32 (`auto` is bf16 on a CPU with bf16 dot products).
    let base =
        format!("{}\n[model]\njudge = \"{}\"\ndtype = \"f32\"\n", config(&data, "rest-em", 4, 4), judge.display());
    // An F32 KV cache too (llama.cpp's default is F16).
    let f32_launch = format!("{} --type_k 0 --type_v 0", launch());
    let served = format!("{base}{}", engine_section("judge", &format!("launch = \"{f32_launch}\"")));
    let mut dists: Vec<BTreeMap<String, Vec<f32>>> = Vec::new();
    let mut texts: Vec<BTreeSet<String>> = Vec::new();
    for (name, text) in [("tch", base), ("served", served)] {
        let cfg = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let run = tmp.path().join(name);
        run_ok(bin().args(["train", "--quiet", "--config"]).arg(&cfg).arg("--run-dir").arg(&run));
        let ev = events_of(&run);
        let (samples, rewards) = samples_and_rewards(&ev);
        texts.push(
            samples
                .values()
                .map(|e| match e {
                    Event::SampleGenerated { response, .. } => response.clone(),
                    _ => unreachable!(),
                })
                .collect(),
        );
        dists.push(
            rewards
                .into_iter()
                .filter_map(|(id, e)| match e {
                    Event::RewardAssigned { judge_distribution, .. } if !judge_distribution.is_empty() => {
                        Some((id, judge_distribution))
                    }
                    _ => None,
                })
                .collect(),
        );
    }
    assert_eq!(texts[0], texts[1], "the two runs drew different samples");
    let argmax = |d: &[f32]| d.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap();
    let (mut agree, mut n, mut worst) = (0, 0, 0f32);
    for (id, d) in &dists[0] {
        let other = dists[1].get(id).unwrap_or_else(|| panic!("{id} has no served judgement"));
        let same = argmax(d) == argmax(other);
        n += 1;
        agree += usize::from(same);
        let diff = d.iter().zip(other).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        worst = worst.max(diff);
        if !same {
            eprintln!("{id}: top scores differ\n tch    {d:?}\n served {other:?}");
        }
    }
    eprintln!(
        "the judges agree on the top score for {agree} of {n} samples; largest probability difference {worst:.6}"
    );
    assert!(n >= 10, "only {n} judged samples");
    assert!(agree * 10 >= n * 9, "the judges agree on the top score for {agree} of {n} samples");
    // Both in f32 on the same weights: the distributions agree closely (in
    // bf16 on tch they differed by up to 0.016, and near-ties of the flat
    // 135M judge fell either way).
    assert!(worst < 1e-3, "a score's probability differs by {worst} between the engines");
}

#[test]
fn a_policy_at_a_fixed_url_is_refused_by_key_and_sigkill_leaves_no_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_data(tmp.path());
    let cfg = tmp.path().join("bad.toml");
    let text =
        format!("{}{}", config(&data, "rest-em", 2, 0), engine_section("policy", "url = \"http://127.0.0.1:9/v1\""));
    std::fs::write(&cfg, text).unwrap();
    let out = bin()
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--run-dir")
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("engine.policy.url") && err.contains("launch"), "{err}");
    assert!(!tmp.path().join("r").join("log").exists(), "work started before the refusal");

    // A run whose judge server is up, killed with SIGKILL, takes the server
    // with it. The judge is a link in this test's directory, so its server's
    // command line names this test alone.
    let judge = tmp.path().join("judge.gguf");
    std::os::unix::fs::symlink(judge_gguf(), &judge).unwrap();
    let cfg = tmp.path().join("run.toml");
    let text = format!(
        "{}\n[model]\njudge = \"{}\"\n{}",
        config(&data, "rest-em", 2, 2),
        judge.display(),
        engine_section("judge", &format!("launch = \"{}\"", launch()))
    );
    std::fs::write(&cfg, text).unwrap();
    let run = tmp.path().join("run");
    let mut child = start_train(&cfg, &run, Stdio::null());
    let engines = run.join("engines");
    wait_for_requests(&|| server_log(&engines, "judge-"), 1, 1, Duration::from_secs(600), &mut child);
    let needle = judge.to_string_lossy().into_owned();
    assert_eq!(servers_with(&needle).len(), 1);
    child.kill().unwrap();
    child.wait().unwrap();
    let t0 = Instant::now();
    while !servers_with(&needle).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the judge server outlived restpg's SIGKILL");
        std::thread::sleep(Duration::from_millis(100));
    }
}
