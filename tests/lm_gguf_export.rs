//! `restpg model export --format gguf`: a checkpoint written as a GGUF reads
//! back to the same weights, and llama.cpp (the set-up's llama-cpp-python)
//! running the exported file agrees with our engine on greedy continuations
//! and per-token log-probabilities.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::cli::{bin, run_ok};
use restpg::lm::LanguageModel;

/// The set-up's base GGUF, imported to a Hugging Face directory in `dir`:
/// a checkpoint as a run stores it.
fn checkpoint(dir: &Path) -> std::path::PathBuf {
    let base = restpg::paths::smollm2_gguf();
    assert!(base.is_file(), "{} is missing: run ./scripts/setup.sh", base.display());
    let ckpt = dir.join("ckpt");
    run_ok(bin().args(["model", "import"]).arg(&base).arg("--out").arg(&ckpt));
    ckpt
}

fn export(ckpt: &Path, out: &Path, dtype: &str) -> serde_json::Value {
    let (stdout, _) = run_ok(bin().args(["model", "export"]).arg(ckpt).args(["--dtype", dtype, "--out"]).arg(out));
    serde_json::from_str(stdout.trim()).expect("export prints JSON")
}

#[test]
fn an_exported_gguf_reads_back_to_the_checkpoint_f32_exactly_f16_closely() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(tmp.path());
    let want = LanguageModel::load(&ckpt, tch::Device::Cpu).unwrap();

    // F32: the same weights bit for bit (q/k rows permuted and back).
    let f32_path = tmp.path().join("m32.gguf");
    let info = export(&ckpt, &f32_path, "f32");
    let got = LanguageModel::load(&f32_path, tch::Device::Cpu).unwrap();
    assert_eq!(got.weights_hash().unwrap(), want.weights_hash().unwrap());
    assert_eq!(info["tensors"], 272, "{info}");
    assert!(!f32_path.with_extension("gguf.partial").exists());
    // The tokenizer and chat template came along.
    let chat = |m: &LanguageModel| m.tokenizer().chat(None, "Name a colour.").unwrap().ids;
    assert_eq!(chat(&got), chat(&want));
    let g = restpg::lm::gguf::GgufFile::open(&f32_path).unwrap();
    assert_eq!(g.meta.get("general.file_type"), Some(&restpg::lm::gguf::GgufValue::U64(0)));
    assert!(g.meta.contains_key("tokenizer.chat_template") && !g.meta.contains_key("general.quantization_version"));

    // F16: half the bytes, next-token distributions within 0.05 nats.
    let f16_path = tmp.path().join("m16.gguf");
    let info16 = export(&ckpt, &f16_path, "f16");
    assert!(info16["bytes"].as_u64().unwrap() * 10 < info["bytes"].as_u64().unwrap() * 6, "{info16} vs {info}");
    let half = LanguageModel::load(&f16_path, tch::Device::Cpu).unwrap();
    let prompt = vec![chat(&want)];
    let (a, b) = (want.next_token_logprobs(&prompt).unwrap(), half.next_token_logprobs(&prompt).unwrap());
    let top: Vec<usize> = {
        let mut idx: Vec<usize> = (0..a[0].len()).collect();
        idx.sort_by(|&i, &j| a[0][j].total_cmp(&a[0][i]));
        idx.truncate(20);
        idx
    };
    for i in top {
        assert!((a[0][i] - b[0][i]).abs() < 0.05, "token {i}: f32 {} f16 {}", a[0][i], b[0][i]);
    }
}

#[test]
fn a_bad_base_or_checkpoint_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let truncated = tmp.path().join("cut.gguf");
    let bytes = std::fs::read(restpg::paths::smollm2_gguf()).unwrap();
    std::fs::write(&truncated, &bytes[..4096]).unwrap();
    let out = bin()
        .args(["model", "export"])
        .arg(restpg::paths::smollm2_gguf())
        .arg("--base")
        .arg(&truncated)
        .arg("--out")
        .arg(tmp.path().join("x.gguf"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cut.gguf"), "{err}");
    let out = bin().args(["model", "export", "/nonexistent/ckpt", "--out"]).arg(tmp.path().join("y.gguf")).output();
    let out = out.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent/ckpt"), "{err}");
    assert!(!tmp.path().join("x.gguf").exists() && !tmp.path().join("y.gguf").exists());
}

/// Greedy `n` tokens after `prompt` in our engine (argmax of the f32
/// next-token distribution, recomputed over the whole prefix each step).
fn greedy(model: &LanguageModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut ids = prompt.to_vec();
    for _ in 0..n {
        let lp = model.next_token_logprobs(&[ids.clone()]).unwrap();
        let best = (0..lp[0].len()).max_by(|&i, &j| lp[0][i].total_cmp(&lp[0][j])).unwrap();
        ids.push(best as u32);
    }
    ids[prompt.len()..].to_vec()
}

#[test]
fn llama_cpp_serving_the_export_agrees_with_our_engine() {
    // Given the set-up's llama-cpp-python (the test command runs
    // `scripts/setup.sh --llamacpp`) and a checkpoint exported as F32 GGUF
    let python = restpg::cli::bench_peer::llamacpp_python();
    assert!(python.exists(), "llama-cpp-python is missing: run ./scripts/setup.sh --llamacpp");
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(tmp.path());
    let gguf = tmp.path().join("m.gguf");
    export(&ckpt, &gguf, "f32");
    let model = LanguageModel::load(&ckpt, tch::Device::Cpu).unwrap();
    let tok = model.tokenizer();
    let asks = [
        "What is the capital of France?",
        "Write one sentence about the sea.",
        "Name three colours.",
        "Thank a colleague for reviewing my paper.",
        "Summarise: the meeting moved to Friday at noon.",
        "Give a title for an essay on city gardens.",
        "What is 12 plus 30?",
        "Describe a quiet morning in two sentences.",
        "Reply to an email asking for the slides.",
        "List two benefits of walking.",
    ];
    let prompts: Vec<Vec<u32>> = asks.iter().map(|a| tok.chat(None, a).unwrap().ids).collect();
    let context = tok.chat(None, "Write a short note to a friend.").unwrap().ids;
    let text = tok.encode("Hi Sam, thanks for the lovely dinner on Saturday. Let's meet again soon!").unwrap();

    // When llama.cpp runs the same ids
    let request = serde_json::json!({ "prompts": prompts, "new_tokens": 32, "context": context, "text": text });
    let mut child = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/llamacpp_logprobs.py"))
        .arg(&gguf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // Then greedy continuations agree on at least 9 of 10 prompts
    let mut same = 0;
    for (i, p) in prompts.iter().enumerate() {
        let ours = greedy(&model, p, 32);
        let llama: Vec<u32> =
            theirs["greedy"][i].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        if ours == llama {
            same += 1;
        } else {
            eprintln!("prompt {i} differs:\n ours  {:?}\n llama {:?}", tok.decode(&ours), tok.decode(&llama));
        }
    }
    assert!(same >= 9, "greedy continuations agree on only {same} of 10 prompts");
    // and per-token log-probabilities of a fixed text agree within 0.05
    let ours = model.token_logprobs(&[(context.clone(), text.clone())]).unwrap();
    let llama: Vec<f64> = theirs["logprobs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(llama.len(), ours[0].len());
    let worst = ours[0].iter().zip(&llama).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    eprintln!("greedy agreement {same}/10, worst log-probability difference {worst:.4}");
    assert!(worst < 0.05, "log-probabilities differ by up to {worst}");
}
