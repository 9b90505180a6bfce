//! `restpg bench train`: the M-step/SFT trainer's throughput and peak memory
//! on the real model (a measurement, not a test; BENCHMARKS.md keeps its
//! figures).
//!
//! Each run trains a fresh copy of the model for `--steps` optimiser steps
//! through the real [`Trainer`] (forward, backward, global-norm clipping,
//! the optimiser update, and the resume checkpoint written at the last
//! step, which is not timed). Every step is one micro-batch of
//! `--micro-batch` sequences of exactly `--seq` tokens: the text file's
//! tokens (no chat template, no special tokens) repeated until there are
//! enough, each sequence its own window of them, the first
//! `--prompt-tokens` the prompt and the rest the target. All sequences have
//! the same length, so there is no padding and every step does the same
//! work.
//!
//! The figures, medians over `--runs` runs (each run's figure being the
//! median over its steps; a step is timed from the end of the previous one,
//! the first from the start of [`Trainer::train`], so it includes the
//! optimiser state's allocation):
//! - `tok_s`: tokens (`micro_batch × seq`) per second of a step;
//! - `s_per_step`: seconds per optimiser step;
//! - `peak_rss_mib`: the process's peak resident memory over the runs
//!   (`VmHWM`, reset after the model is loaded where the kernel allows it),
//!   MiB.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};

use super::bench::{median, model_path, peak_rss_mib, reset_peak_rss};
use crate::lm::LanguageModel;
use crate::train::{OptimizerKind, TrainConfig, TrainExample, Trainer};

/// The optimiser of `restpg bench train`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchOptimizer {
    /// Adafactor (the trainer's default).
    Adafactor,
    /// AdamW.
    Adamw,
}

impl From<BenchOptimizer> for OptimizerKind {
    fn from(o: BenchOptimizer) -> Self {
        match o {
            BenchOptimizer::Adafactor => OptimizerKind::Adafactor,
            BenchOptimizer::Adamw => OptimizerKind::Adamw,
        }
    }
}

/// Arguments of `restpg bench train`.
#[derive(Args, Debug, Clone)]
pub struct TrainBenchArgs {
    /// A text file; its tokens, repeated, make the training sequences.
    #[arg(long)]
    pub text_file: PathBuf,
    /// Optimiser steps per run.
    #[arg(long, default_value_t = 3)]
    pub steps: u64,
    /// Sequences per step (one micro-batch: the step's effective batch).
    #[arg(long, default_value_t = 4)]
    pub micro_batch: usize,
    /// Tokens per sequence (prompt plus target).
    #[arg(long, default_value_t = 512)]
    pub seq: usize,
    /// Prompt tokens of each sequence (default: a quarter of `--seq`); the rest carry the loss.
    #[arg(long)]
    pub prompt_tokens: Option<usize>,
    /// The optimiser.
    #[arg(long, value_enum, default_value_t = BenchOptimizer::Adamw)]
    pub optimizer: BenchOptimizer,
    /// Torch intra-op threads (default: RESTPG_THREADS, else the cores available to the process).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the model runs: cpu, cuda, or auto (CUDA when libtorch sees a GPU).
    #[arg(long, default_value = "cpu")]
    pub device: crate::lm::placement::DeviceChoice,
    /// A `.gguf` file or Hugging Face directory (default: the set-up's SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The precision of the training products (`[train] precision`): f32,
    /// bf16 (mixed precision, f32 master weights), or auto.
    #[arg(long, value_enum, default_value_t = crate::lm::placement::DtypeChoice::F32)]
    pub precision: crate::lm::placement::DtypeChoice,
    /// Timed runs; figures are their medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The validated settings of `restpg bench train`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBench {
    /// Prompt tokens per sequence (≥ 1).
    pub prompt_tokens: usize,
    /// The trainer's configuration of every run.
    pub config: TrainConfig,
    /// Timed runs.
    pub runs: usize,
}

impl TrainBenchArgs {
    /// Checks the flags.
    ///
    /// # Errors
    /// A message naming the flag: zero steps, micro-batch or runs, a
    /// sequence under 2 tokens, a prompt that leaves no target token.
    pub fn resolve(&self) -> Result<TrainBench> {
        if self.steps == 0 {
            bail!("--steps must be at least 1");
        }
        if self.micro_batch == 0 {
            bail!("--micro-batch must be at least 1");
        }
        if self.runs == 0 {
            bail!("--runs must be at least 1");
        }
        if self.seq < 2 {
            bail!("--seq must be at least 2 (one prompt and one target token), not {}", self.seq);
        }
        let prompt_tokens = self.prompt_tokens.unwrap_or((self.seq / 4).max(1));
        if prompt_tokens == 0 || prompt_tokens >= self.seq {
            bail!("--prompt-tokens must be in 1..{} (below --seq), not {prompt_tokens}", self.seq);
        }
        let config = TrainConfig {
            optimizer: self.optimizer.into(),
            learning_rate: 1e-6,
            warmup_steps: 0,
            max_steps: self.steps,
            batch_size: self.micro_batch,
            micro_batch_size: self.micro_batch,
            checkpoint_every: u64::MAX,
            max_input_tokens: prompt_tokens,
            max_output_tokens: self.seq - prompt_tokens,
            precision: self.precision,
            ..TrainConfig::default()
        };
        config.validate()?;
        Ok(TrainBench { prompt_tokens, config, runs: self.runs })
    }
}

/// `n` training sequences of `seq` tokens from `text`'s tokens repeated,
/// sequence `i` the window `i·seq .. (i+1)·seq`, its first `prompt` tokens
/// the prompt.
///
/// # Errors
/// Text without a single token.
pub fn sequences(model: &LanguageModel, text: &str, n: usize, seq: usize, prompt: usize) -> Result<Vec<TrainExample>> {
    let ids = model.tokenizer().encode(text)?;
    if ids.is_empty() {
        bail!("the text file has no tokens");
    }
    let all: Vec<u32> = ids.iter().copied().cycle().take(n * seq).collect();
    Ok(all
        .chunks(seq)
        .enumerate()
        .map(|(i, s)| TrainExample {
            id: format!("bench-{i}"),
            prompt_ids: s[..prompt].to_vec(),
            target_ids: s[prompt..].to_vec(),
            weight: 1.0,
        })
        .collect())
}

/// The medians over the runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainFigures {
    /// Tokens per step.
    pub tokens_per_step: usize,
    /// Tokens per second of a step.
    pub tok_s: f64,
    /// Seconds per optimiser step.
    pub s_per_step: f64,
    /// Every step's seconds, run by run.
    pub step_s: Vec<Vec<f64>>,
    /// Peak resident memory over the runs, MiB (NaN where
    /// `/proc/self/status` cannot be read).
    pub peak_rss_mib: f64,
}

/// Trains a fresh copy of the model at `path` on `device` `bench.runs` times on `data`.
///
/// # Errors
/// Model loading or training failures.
pub fn measure(
    path: &std::path::Path,
    device: tch::Device,
    data: &[TrainExample],
    bench: &TrainBench,
) -> Result<TrainFigures> {
    let tokens_per_step = data.iter().map(|e| e.prompt_ids.len() + e.target_ids.len()).sum();
    let mut step_s = Vec::with_capacity(bench.runs);
    let mut peak = f64::NAN;
    for run in 0..bench.runs {
        let mut model = LanguageModel::load(path, device).with_context(|| format!("loading {}", path.display()))?;
        // A fresh work directory per run, so that no run resumes another.
        let dir = std::env::temp_dir().join(format!("restpg-bench-train-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut trainer = Trainer::new(bench.config.clone(), &dir)?;
        let mut times = Vec::new();
        reset_peak_rss();
        let mut last = Instant::now();
        trainer.train(&mut model, data, &mut |_| {
            let now = Instant::now();
            times.push((now - last).as_secs_f64());
            last = now;
        })?;
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        // NaN where unreadable: `max` keeps the other value.
        peak = peak.max(peak_rss_mib());
        step_s.push(times);
    }
    let per_run: Vec<f64> = step_s.iter().map(|t| median(t.clone())).collect();
    let s_per_step = median(per_run);
    Ok(TrainFigures {
        tokens_per_step,
        tok_s: tokens_per_step as f64 / s_per_step,
        s_per_step,
        step_s,
        peak_rss_mib: peak,
    })
}

/// Runs `restpg bench train`.
///
/// # Errors
/// Bad flags (named), an unreadable text file, a model that fails to load,
/// training failures.
pub fn run(args: &TrainBenchArgs) -> Result<()> {
    let bench = args.resolve()?;
    let text = std::fs::read_to_string(&args.text_file)
        .with_context(|| format!("reading --text-file {}", args.text_file.display()))?;
    let threads = crate::config::apply_torch_threads(args.threads, 0)?;
    let path = model_path(&args.model)?;
    let data = {
        let model =
            LanguageModel::load(&path, tch::Device::Cpu).with_context(|| format!("loading {}", path.display()))?;
        sequences(&model, &text, args.micro_batch, args.seq, bench.prompt_tokens)?
    };
    let device = args.device.resolve()?;
    let precision = bench.config.precision.resolve(device);
    let f = measure(&path, device, &data, &bench)?;
    let optimizer = format!("{:?}", bench.config.optimizer).to_lowercase();
    if args.json {
        let line = serde_json::json!({
            "steps": args.steps,
            "micro_batch": args.micro_batch,
            "seq": args.seq,
            "prompt_tokens": bench.prompt_tokens,
            "optimizer": optimizer,
            "precision": precision.to_string(),
            "threads": threads,
            "runs": bench.runs,
            "tokens_per_step": f.tokens_per_step,
            "tok_s": f.tok_s,
            "s_per_step": f.s_per_step,
            "step_s": f.step_s,
            "peak_rss_mib": f.peak_rss_mib,
        });
        println!("{line}");
    } else {
        println!(
            "{} · {optimizer} · {precision} products · {} steps of {} × {} tokens ({} prompt) · {threads} threads · median of {} runs",
            path.display(),
            args.steps,
            args.micro_batch,
            args.seq,
            bench.prompt_tokens,
            bench.runs
        );
        println!("{:>9}  {:>8}  {:>12}", "tokens/s", "s/step", "peak RSS MiB");
        println!("{:>9.1}  {:>8.2}  {:>12.0}", f.tok_s, f.s_per_step, f.peak_rss_mib);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TrainBenchArgs {
        TrainBenchArgs {
            text_file: PathBuf::from("README.md"),
            steps: 3,
            micro_batch: 4,
            seq: 512,
            prompt_tokens: None,
            optimizer: BenchOptimizer::Adamw,
            threads: None,
            device: crate::lm::placement::DeviceChoice::Cpu,
            model: None,
            precision: crate::lm::placement::DtypeChoice::F32,
            runs: 3,
            json: false,
        }
    }

    #[test]
    fn flags_resolve_and_bad_ones_are_named() {
        let b = args().resolve().unwrap();
        assert_eq!(b.prompt_tokens, 128);
        assert_eq!((b.config.batch_size, b.config.micro_batch_size, b.config.max_steps), (4, 4, 3));
        assert_eq!((b.config.max_input_tokens, b.config.max_output_tokens), (128, 384));
        assert_eq!(b.config.optimizer, OptimizerKind::Adamw);
        for (bad, flag) in [
            (TrainBenchArgs { steps: 0, ..args() }, "--steps"),
            (TrainBenchArgs { micro_batch: 0, ..args() }, "--micro-batch"),
            (TrainBenchArgs { runs: 0, ..args() }, "--runs"),
            (TrainBenchArgs { seq: 1, ..args() }, "--seq"),
            (TrainBenchArgs { prompt_tokens: Some(512), ..args() }, "--prompt-tokens"),
            (TrainBenchArgs { prompt_tokens: Some(0), ..args() }, "--prompt-tokens"),
        ] {
            let err = bad.resolve().unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }
}
