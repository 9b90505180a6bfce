//! `restpg generate`: one chat turn with a model (GGUF file or Hugging Face
//! directory), printed to stdout.
//!
//! The arguments are a plain struct so later areas can add their own
//! (e.g. `--task/--profile` to build a personalized prompt); raw values are
//! validated into [`SamplingSettings`] here, in one place.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::lm::{GenerationRequest, LanguageModel, SamplingSettings};

/// Arguments of `restpg generate`.
#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// A `.gguf` file or a Hugging Face directory (`model.safetensors`, `config.json`, `tokenizer.json`).
    #[arg(long)]
    pub model: PathBuf,
    /// The user message.
    #[arg(long)]
    pub prompt: String,
    /// System message (default: the model's own default, if its chat template has one).
    #[arg(long)]
    pub system: Option<String>,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus mass in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// CTRL repetition penalty over the prompt and the output (1 = off; HF `repetition_penalty`).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Subtracted per occurrence in the output, in [-2, 2] (0 = off; OpenAI/vLLM).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Subtracted once per token already in the output, in [-2, 2] (0 = off; OpenAI/vLLM).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Ban any n-gram of this length that is already in the prompt or the output (0 = off; HF).
    #[arg(long, default_value_t = 0)]
    pub no_repeat_ngram_size: u32,
    /// Drop tokens less probable than min_p × the most probable one, in [0, 1] (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Torch intra-op threads (default: RESTPG_THREADS, else the cores available to the process).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the model runs: cpu, cuda, or auto (CUDA when libtorch sees a GPU).
    #[arg(long, default_value = "auto")]
    pub device: crate::lm::placement::DeviceChoice,
    /// Precision: auto (bf16 on a GPU or a CPU that multiplies bf16 natively, else f32), f32 or bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: crate::lm::placement::DtypeChoice,
    /// Print token counts and speed to stderr.
    #[arg(long)]
    pub verbose: bool,
}

impl GenerateArgs {
    /// The validated sampling settings.
    ///
    /// # Errors
    /// Out-of-range values, named.
    pub fn settings(&self) -> anyhow::Result<SamplingSettings> {
        let s = SamplingSettings {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            max_new_tokens: self.max_new_tokens,
            penalties: crate::lm::Penalties {
                repetition_penalty: self.repetition_penalty,
                frequency_penalty: self.frequency_penalty,
                presence_penalty: self.presence_penalty,
                no_repeat_ngram_size: self.no_repeat_ngram_size,
                min_p: self.min_p,
            },
            ..Default::default()
        };
        s.validate().map_err(|e| anyhow::anyhow!("--{}", e.to_string().replace('_', "-")))?;
        Ok(s)
    }
}

/// Loads the model, applies the chat template, generates and prints the
/// response.
///
/// # Errors
/// Bad settings, a model that fails to load, generation failures.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    crate::config::apply_torch_threads(args.threads, 0)?;
    let t0 = std::time::Instant::now();
    let model = LanguageModel::load_placed(&args.model, args.device, args.dtype)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let tk = model.tokenizer();
    let prompt_ids = tk.chat(args.system.as_deref(), &args.prompt)?.ids;
    let t1 = std::time::Instant::now();
    let g =
        model.generate(&[GenerationRequest { prompt_ids: prompt_ids.clone(), seed: args.seed, settings }])?.remove(0);
    let t2 = std::time::Instant::now();
    println!("{}", g.text);
    if args.verbose {
        eprintln!(
            "{:?} {}; load {:.2}s; prompt {} tokens; generated {} tokens in {:.2}s ({:?})",
            model.device(),
            model.precision(),
            (t1 - t0).as_secs_f64(),
            prompt_ids.len(),
            g.token_ids.len(),
            (t2 - t1).as_secs_f64(),
            g.finish
        );
    }
    Ok(())
}
