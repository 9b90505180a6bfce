//! The run configuration (`RUN.toml`) of `restpg train` and `restpg demo`.
//!
//! A TOML file whose every key is optional: a missing key takes the paper's
//! value (REST-PG, Salemi et al. 2025: §3 for the method, §4 and Appendix B
//! for the experimental settings). Unknown keys are refused
//! (`deny_unknown_fields`), except the retired keys of [`RETIRED_KEYS`],
//! which older configurations and logs name and which are accepted and
//! ignored; [`RunConfig::validate`] checks ranges and files before any work
//! starts, naming the offending key.
//!
//! The configuration's canonical TOML ([`RunConfig::to_toml`], the data path
//! made absolute) is kept in the log's `RunStarted` event, with its digest,
//! so a run can always be traced back to the exact settings it used.

pub use crate::lm::placement::{DeviceChoice, DtypeChoice};
use crate::train::TrainConfig;
use actors::Method;
use events::{Penalties, Sampling, ScoreRule};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Serde for a vocabulary name ([`Method`], [`ScoreRule`]) through its
/// `FromStr`/`Display` spellings (`rest-pg`, `argmax`, …), so the TOML error
/// names the value and the accepted ones.
pub(crate) mod by_name {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What writes the reasoning data (REST-PG §3 step 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasoningGeneratorKind {
    /// A language model (`model.reasoning_generator`, default the policy's
    /// base model).
    #[default]
    Model,
    /// Counts over the profile and y ([`crate::engine::profile_statistics`]).
    ProfileStatistics,
}

/// Model files. Paths may be a GGUF file or a Hugging Face-layout directory;
/// an empty value means the set-up's SmolLM2-135M-Instruct.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// The policy θ⁰ (paper: Gemma 2B).
    pub policy: Option<PathBuf>,
    /// The LLM judge (paper: Gemma 7B).
    pub judge: Option<PathBuf>,
    /// The reasoning generator (paper: Gemma 7B).
    pub reasoning_generator: Option<PathBuf>,
    /// What writes the reasoning data: the model at `reasoning_generator`
    /// (the paper's way, the default), or `profile-statistics`, a summary
    /// from counts over the profile and y for machines whose only model is
    /// too small to summarize a user
    /// ([`crate::engine::profile_statistics`]).
    pub reasoning_generator_kind: ReasoningGeneratorKind,
    /// Torch intra-op threads, set at the start of every command that runs
    /// a model (see [`torch_threads`]); 0 = the cores available to the
    /// process. At most [`MAX_THREADS`].
    pub threads: usize,
    /// Where every model of the run (policy, judge, reasoning generator,
    /// trainer) runs: `cpu` (the default), `cuda`, or `auto` (CUDA when
    /// libtorch sees a GPU). A `cuda` that libtorch cannot see is refused
    /// when the first model loads.
    pub device: DeviceChoice,
    /// The precision of inference (sampling, evaluation, judging, reasoning
    /// generation): `auto` (the default: bf16 on a GPU or on a CPU that
    /// multiplies bf16 natively, else f32), `f32` or `bf16`. Training keeps
    /// f32 weights. Each sample logs the precision it was drawn in, and
    /// `replay --resample` uses that one.
    pub dtype: DtypeChoice,
}

/// The environment variable that overrides `model.threads` (a whole number
/// in `1..=MAX_THREADS`).
pub const THREADS_ENV: &str = "RESTPG_THREADS";

/// The largest thread count accepted from a flag, `model.threads` or
/// [`THREADS_ENV`].
pub const MAX_THREADS: usize = 1024;

/// The cores this process may run on: `std::thread::available_parallelism`,
/// which honours the CPU affinity mask and a cgroup CPU quota (torch's own
/// default counts the machine's physical cores, too many in a container or
/// on a shared machine); 1 when it cannot be found.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The torch intra-op thread count: `flag` (a command-line `--threads`)
/// when given, else [`THREADS_ENV`] when set, else `configured`
/// (`model.threads`) when not 0, else [`available_cores`].
///
/// # Errors
/// [`ConfigError::Invalid`] naming `--threads`, `RESTPG_THREADS` or
/// `model.threads` when the value is 0 (flag and variable), not a whole
/// number (variable) or above [`MAX_THREADS`].
pub fn torch_threads(flag: Option<usize>, configured: usize) -> Result<usize, ConfigError> {
    let in_range = |key: &str, n: usize| {
        if (1..=MAX_THREADS).contains(&n) {
            Ok(n)
        } else {
            Err(invalid(key, format!("must be in 1..={MAX_THREADS}, not {n}")))
        }
    };
    if let Some(n) = flag {
        return in_range("--threads", n);
    }
    if let Some(v) = std::env::var_os(THREADS_ENV) {
        let v = v.to_string_lossy();
        let n = v
            .trim()
            .parse::<usize>()
            .map_err(|_| invalid(THREADS_ENV, format!("must be a whole number in 1..={MAX_THREADS}, not `{v}`")))?;
        return in_range(THREADS_ENV, n);
    }
    match configured {
        0 => Ok(available_cores()),
        n => in_range("model.threads", n),
    }
}

/// Sets torch's intra-op threads to [`torch_threads`]`(flag, configured)`
/// and returns the count. Every command that runs a model calls it before
/// loading one: left alone, torch starts one OpenMP thread per physical
/// core, and spinning threads that outnumber the free cores run 5–10×
/// slower than one.
///
/// # Errors
/// As [`torch_threads`].
pub fn apply_torch_threads(flag: Option<usize>, configured: usize) -> Result<usize, ConfigError> {
    let n = torch_threads(flag, configured)?;
    tch::set_num_threads(n as i32);
    tracing::debug!(threads = n, "torch intra-op threads");
    Ok(n)
}

/// Retrieval settings (REST-PG §3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalSection {
    /// `bm25` or `dense`.
    pub retriever: String,
    /// Profile items retrieved per input (paper: k = 5).
    pub k: usize,
    /// Encoder directory for `dense` (default: the set-up's all-MiniLM-L6-v2).
    pub encoder: Option<PathBuf>,
}

impl Default for RetrievalSection {
    fn default() -> Self {
        Self { retriever: "bm25".into(), k: 5, encoder: None }
    }
}

/// E-step sampling (REST-PG Algorithm 1, line 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingSection {
    /// Samples per train input, m (paper: 32).
    pub m: u32,
    /// Sampling temperature γ (paper: 0.7).
    pub temperature: f32,
    /// Nucleus-sampling mass.
    pub top_p: f32,
    /// Generation budget per sample in tokens (paper: output ≤ 1,536).
    pub max_new_tokens: u32,
    /// Budget for the reasoning generator's summaries in tokens.
    pub reasoning_max_new_tokens: u32,
    /// Sequences per generation batch.
    pub batch_size: usize,
    /// Sampler worker threads, each with its own model.
    pub workers: usize,
    /// Batches outstanding to the sampler pool or judges at once.
    pub max_in_flight: usize,
    /// Extra texts that end a sample at their first occurrence (cut before
    /// it), on top of the model's end-of-turn token and, for the reasoning
    /// methods, a second `### Response:` separator line.
    pub stop_strings: Vec<String>,
    /// Seconds one generation or judge batch may take before its worker is
    /// presumed hung; the batch is then re-issued like a failed one.
    pub batch_timeout_secs: u64,
    /// CTRL repetition penalty over the prompt and the output so far (HF
    /// `repetition_penalty`; 1 is off, the paper's setting).
    pub repetition_penalty: f32,
    /// Subtracted per occurrence in the output so far (OpenAI/vLLM
    /// `frequency_penalty`, in [-2, 2]; 0 is off).
    pub frequency_penalty: f32,
    /// Subtracted once per token already in the output (OpenAI/vLLM
    /// `presence_penalty`, in [-2, 2]; 0 is off).
    pub presence_penalty: f32,
    /// No n-gram of this length repeats one in the prompt or the output
    /// (HF `no_repeat_ngram_size`; 0 is off).
    pub no_repeat_ngram_size: u32,
    /// Drop tokens less probable than `min_p ×` the most probable one, after
    /// temperature (HF/vLLM `min_p`, in [0, 1]; 0 is off).
    pub min_p: f32,
}

impl Default for SamplingSection {
    fn default() -> Self {
        Self {
            m: 32,
            temperature: 0.7,
            top_p: 0.95,
            max_new_tokens: 1536,
            reasoning_max_new_tokens: 512,
            batch_size: 8,
            workers: 1,
            max_in_flight: 2,
            stop_strings: Vec::new(),
            batch_timeout_secs: 3600,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            no_repeat_ngram_size: 0,
            min_p: 0.0,
        }
    }
}

impl SamplingSection {
    /// The E-step's sampling settings (γ, nucleus mass, budget, guards).
    pub fn e_step(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            max_new_tokens: self.max_new_tokens,
            penalties: self.penalties(),
        }
    }

    /// The repetition guards of these keys ([`Penalties`]).
    pub fn penalties(&self) -> Penalties {
        Penalties {
            repetition_penalty: self.repetition_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            min_p: self.min_p,
        }
    }

    /// The reasoning generator's sampling settings: the E-step's, with the
    /// reasoning budget.
    pub fn reasoning(&self) -> Sampling {
        Sampling { max_new_tokens: self.reasoning_max_new_tokens, ..self.e_step() }
    }
}

/// Reward and filter (REST-PG §3.2, Algorithm 1 lines 7–9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardSection {
    /// Reward spec: `judge`, `rouge-1`, `rouge-l`, `meteor`, `similarity` or
    /// a weighted mix such as `0.5*judge+0.5*rouge-l`.
    pub name: String,
    /// Judge scoring rule: `argmax` (paper) or `expected` (G-Eval).
    #[serde(with = "by_name")]
    pub rule: ScoreRule,
    /// Threshold τ: samples with R ≥ τ are kept (paper: 1.0).
    pub tau: f32,
    /// At most this many kept samples per input (paper: 10).
    pub max_kept_per_input: u32,
    /// Judge prompts per batch.
    pub batch_size: usize,
    /// K of the reward check, the run's first stage: at most this many
    /// validation examples per task are scored as the user's own text,
    /// another user's and degenerate text (`restpg reward check`); 0 skips
    /// the check.
    pub check_per_task: usize,
}

impl Default for RewardSection {
    fn default() -> Self {
        Self {
            name: "judge".into(),
            rule: ScoreRule::Argmax,
            tau: 1.0,
            max_kept_per_input: 10,
            batch_size: 8,
            check_per_task: 8,
        }
    }
}

/// The EM loop (REST-PG Algorithm 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmSection {
    /// Iterations T (paper: 3). Where each M-step starts is `train.init`.
    pub iterations: u32,
    /// For the reasoning methods: keep samples whose output has no
    /// separator line (no reasoning) as response-only targets. Off by
    /// default: they are dropped as `no-reasoning`, since training on them
    /// teaches the policy to skip reasoning.
    pub allow_samples_without_reasoning: bool,
    /// Keep samples that ran to `sampling.max_new_tokens` without stopping.
    /// Off by default: they are dropped as `unfinished`, since their text is
    /// cut mid-way and the M-step would train on it as a finished answer
    /// (ending it with the end-of-turn token), teaching the policy to write
    /// to the limit. Every run logged before schema version 7 kept them.
    /// Left out of the canonical form when off.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_unfinished_samples: bool,
    /// Training inputs per task each E-step samples: 0 (the default and the
    /// paper's) samples every training input in every iteration; N > 0
    /// samples N per task (all of a task with fewer), a different seeded
    /// choice each iteration ([`crate::pipeline::e_step_inputs`]), while SFT
    /// still trains on every training input. For a small machine: more
    /// users teach the format in SFT, and each E-step costs N · tasks · m
    /// samples. Left out of the canonical form when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub inputs_per_task: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for EmSection {
    fn default() -> Self {
        Self {
            iterations: 3,
            allow_samples_without_reasoning: false,
            allow_unfinished_samples: false,
            inputs_per_task: 0,
        }
    }
}

/// Evaluation (REST-PG §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Inference temperature (paper: 0.1).
    pub temperature: f32,
    /// Nucleus mass at inference.
    pub top_p: f32,
    /// At most this many examples per task and split (paper: 1,024 for
    /// validation).
    pub max_per_task: usize,
    /// Generation budget in tokens.
    pub max_new_tokens: u32,
    /// Evaluate on validation after SFT and after each iteration.
    pub validation: bool,
    /// Evaluate on test after the last iteration.
    pub test: bool,
    /// Also evaluate on test after SFT and after every iteration (not only
    /// the last), so a results table can pair every checkpoint with θ¹ on
    /// test. The paper reports test only for the final system (§4); off by
    /// default.
    pub test_every_iteration: bool,
    /// CTRL repetition penalty over the prompt and the output so far (HF
    /// `repetition_penalty`; 1 is off, the paper's setting).
    pub repetition_penalty: f32,
    /// Subtracted per occurrence in the output so far (OpenAI/vLLM
    /// `frequency_penalty`, in [-2, 2]; 0 is off).
    pub frequency_penalty: f32,
    /// Subtracted once per token already in the output (OpenAI/vLLM
    /// `presence_penalty`, in [-2, 2]; 0 is off).
    pub presence_penalty: f32,
    /// No n-gram of this length repeats one in the prompt or the output
    /// (HF `no_repeat_ngram_size`; 0 is off).
    pub no_repeat_ngram_size: u32,
    /// Drop tokens less probable than `min_p ×` the most probable one, after
    /// temperature (HF/vLLM `min_p`, in [0, 1]; 0 is off).
    pub min_p: f32,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            temperature: 0.1,
            top_p: 0.95,
            max_per_task: 1024,
            max_new_tokens: 1536,
            validation: true,
            test: true,
            test_every_iteration: false,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            no_repeat_ngram_size: 0,
            min_p: 0.0,
        }
    }
}

impl EvalSection {
    /// The sampling settings at inference (paper: temperature 0.1).
    pub fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            max_new_tokens: self.max_new_tokens,
            penalties: self.penalties(),
        }
    }

    /// The repetition guards of these keys ([`Penalties`]).
    pub fn penalties(&self) -> Penalties {
        Penalties {
            repetition_penalty: self.repetition_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            min_p: self.min_p,
        }
    }
}

/// A whole run configuration. Every field has the paper's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Which system to train: `sft`, `sft-reasoning`, `rest-em`, `rest-pg`.
    #[serde(with = "by_name")]
    pub method: Method,
    /// Run seed: every sample seed and the data order derive from it.
    pub seed: u64,
    /// LongLaMP-format data set directory (see `restpg data build`).
    pub data: PathBuf,
    /// Model files.
    pub model: ModelSection,
    /// Retrieval.
    pub retrieval: RetrievalSection,
    /// E-step sampling.
    pub sampling: SamplingSection,
    /// Reward and filter.
    pub reward: RewardSection,
    /// EM loop.
    pub em: EmSection,
    /// Training (SFT and M-step).
    pub train: TrainConfig,
    /// Evaluation.
    pub eval: EvalSection,
    /// Which engine runs each role (`[engine.*]`; default: tch everywhere,
    /// and then left out of the canonical TOML).
    #[serde(skip_serializing_if = "crate::engine::EngineSection::is_default")]
    pub engine: crate::engine::EngineSection,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            method: Method::RestPg,
            seed: 0,
            data: PathBuf::new(),
            model: ModelSection::default(),
            retrieval: RetrievalSection::default(),
            sampling: SamplingSection::default(),
            reward: RewardSection::default(),
            em: EmSection::default(),
            train: TrainConfig::default(),
            eval: EvalSection::default(),
            engine: crate::engine::EngineSection::default(),
        }
    }
}

/// A configuration error naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// A value out of range or a missing file.
    #[error("invalid config: `{key}` {message}")]
    Invalid {
        /// Dotted key, e.g. `reward.tau`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Keys (section, key) that configurations of earlier versions name and
/// that no longer mean anything: accepted and ignored, so that an old
/// `config.toml` resumes and an old log's `RunStarted` replays.
/// `train.eval_every` set how often the trainer scored a validation set to
/// keep a best checkpoint, which no run ever reached.
pub const RETIRED_KEYS: &[(&str, &str)] = &[("train", "eval_every")];

/// `text` as a TOML table without its [`RETIRED_KEYS`], when it names one
/// (`None` otherwise, or when it is not TOML: the caller's parse reports
/// that).
fn without_retired_keys(text: &str) -> Option<toml::Table> {
    let mut table: toml::Table = text.parse().ok()?;
    let mut found = false;
    for (section, key) in RETIRED_KEYS {
        if let Some(toml::Value::Table(t)) = table.get_mut(*section) {
            if t.remove(*key).is_some() {
                tracing::warn!("ignoring the retired configuration key `{section}.{key}`");
                found = true;
            }
        }
    }
    found.then_some(table)
}

/// A [`ConfigError::Invalid`] for `key` (dotted, e.g. `reward.tau`).
pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

impl RunConfig {
    /// Parses TOML text; `path` only names the source in errors.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for bad syntax, unknown keys or wrong types,
    /// and, naming the key, for an integer above 2^63 − 1, which the parser
    /// accepts for unsigned fields but TOML cannot write back (so the
    /// canonical TOML of [`RunConfig::to_toml`] would fail).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse { path: path.to_owned(), message: e.to_string() };
        let cfg: Self = match without_retired_keys(text) {
            // Deserialising the text itself keeps toml's line numbers in errors.
            None => toml::from_str(text).map_err(parse_error)?,
            Some(table) => toml::Value::Table(table).try_into().map_err(parse_error)?,
        };
        cfg.check_integers_fit_toml().map_err(|message| ConfigError::Parse { path: path.to_owned(), message })?;
        Ok(cfg)
    }

    /// Every unsigned field wider than 32 bits, checked against TOML's
    /// largest integer (found by `tests/fuzz.rs`: `eval.max_per_task =
    /// 9223372036854775808` parsed, then failed to serialise).
    fn check_integers_fit_toml(&self) -> Result<(), String> {
        let t = &self.train;
        let fields: [(&str, u64); 19] = [
            ("seed", self.seed),
            ("model.threads", self.model.threads as u64),
            ("retrieval.k", self.retrieval.k as u64),
            ("sampling.batch_size", self.sampling.batch_size as u64),
            ("sampling.workers", self.sampling.workers as u64),
            ("sampling.max_in_flight", self.sampling.max_in_flight as u64),
            ("reward.batch_size", self.reward.batch_size as u64),
            ("eval.max_per_task", self.eval.max_per_task as u64),
            ("train.warmup_steps", t.warmup_steps),
            ("train.max_steps", t.max_steps),
            ("train.batch_size", t.batch_size as u64),
            ("train.micro_batch_size", t.micro_batch_size as u64),
            ("train.checkpoint_every", t.checkpoint_every),
            ("train.max_input_tokens", t.max_input_tokens as u64),
            ("train.max_output_tokens", t.max_output_tokens as u64),
            ("train.seed", t.seed),
            ("sampling.m", self.sampling.m as u64),
            ("em.iterations", self.em.iterations as u64),
            ("reward.max_kept_per_input", self.reward.max_kept_per_input as u64),
        ];
        for (key, v) in fields {
            if v > i64::MAX as u64 {
                return Err(format!("`{key}` is {v}, above the largest TOML integer {}", i64::MAX));
            }
        }
        Ok(())
    }

    /// Reads and parses a config file, then resolves relative paths against
    /// the file's directory.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn load(path: &Path) -> Result<(Self, String), ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut cfg = Self::from_toml(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut cfg.data);
        for p in [
            &mut cfg.model.policy,
            &mut cfg.model.judge,
            &mut cfg.model.reasoning_generator,
            &mut cfg.retrieval.encoder,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        Ok((cfg, text))
    }

    /// Decides `train.precision = "auto"` for this machine (bf16 where
    /// inference's `auto` would run bf16 on `model.device`, else f32), so that
    /// the configuration a run logs names the precision it trained in and a
    /// retrain elsewhere uses the same one. Other values are left as they are.
    pub fn decide_training_precision(&mut self) {
        if self.train.precision == DtypeChoice::Auto {
            let device = self.model.device.resolve().unwrap_or(tch::Device::Cpu);
            self.train.precision = match DtypeChoice::Auto.resolve(device) {
                events::Precision::Bf16 => DtypeChoice::Bf16,
                events::Precision::F32 => DtypeChoice::F32,
            };
        }
    }

    /// The configuration as canonical TOML (what the log stores).
    ///
    /// # Errors
    /// Only if serialisation fails, which would be a bug.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }

    /// Checks ranges and files before any work starts.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.model.threads > MAX_THREADS {
            return Err(invalid("model.threads", format!("must be at most {MAX_THREADS} (0 = the available cores)")));
        }
        if let Err(e) = self.model.device.resolve() {
            return Err(invalid("model.device", e.to_string()));
        }
        if self.data.as_os_str().is_empty() {
            return Err(invalid("data", "is missing: set it to a data set directory (see `restpg data build`)"));
        }
        if !self.data.is_dir() {
            return Err(invalid("data", format!("{} is not a directory", self.data.display())));
        }
        for (key, p) in [
            ("model.policy", &self.model.policy),
            ("model.judge", &self.model.judge),
            ("model.reasoning_generator", &self.model.reasoning_generator),
            ("retrieval.encoder", &self.retrieval.encoder),
        ] {
            if let Some(p) = p {
                if !p.exists() {
                    return Err(invalid(key, format!("{} does not exist", p.display())));
                }
            }
        }
        match self.retrieval.retriever.as_str() {
            "bm25" | "dense" => {}
            other => return Err(invalid("retrieval.retriever", format!("must be `bm25` or `dense`, not `{other}`"))),
        }
        if self.retrieval.k == 0 {
            return Err(invalid("retrieval.k", "must be at least 1"));
        }
        let s = &self.sampling;
        if s.m == 0 {
            return Err(invalid("sampling.m", "must be at least 1"));
        }
        if !(s.temperature > 0.0 && s.temperature <= 2.0) {
            return Err(invalid("sampling.temperature", format!("must be in (0, 2], not {}", s.temperature)));
        }
        if !(s.top_p > 0.0 && s.top_p <= 1.0) {
            return Err(invalid("sampling.top_p", format!("must be in (0, 1], not {}", s.top_p)));
        }
        if let Some(i) = s.stop_strings.iter().position(String::is_empty) {
            return Err(invalid("sampling.stop_strings", format!("entry {i} is empty")));
        }
        for (key, v) in [
            ("sampling.max_new_tokens", s.max_new_tokens as usize),
            ("sampling.reasoning_max_new_tokens", s.reasoning_max_new_tokens as usize),
            ("sampling.batch_size", s.batch_size),
            ("sampling.workers", s.workers),
            ("sampling.max_in_flight", s.max_in_flight),
            ("sampling.batch_timeout_secs", s.batch_timeout_secs as usize),
            ("reward.batch_size", self.reward.batch_size),
            ("eval.max_per_task", self.eval.max_per_task),
            ("eval.max_new_tokens", self.eval.max_new_tokens as usize),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        let spec: crate::reward::RewardSpec = self
            .reward
            .name
            .parse()
            .map_err(|e: crate::reward::spec::SpecError| invalid("reward.name", e.to_string()))?;
        // The mix Σ wᵢ·metricᵢ ranges over its metrics' ranges, weighted.
        let (lo, hi) = spec.range();
        if !(self.reward.tau >= lo as f32 && self.reward.tau <= hi as f32) {
            return Err(invalid(
                "reward.tau",
                format!("{} is outside the reward's range [{lo}, {hi}]", self.reward.tau),
            ));
        }
        if self.reward.max_kept_per_input == 0 {
            return Err(invalid("reward.max_kept_per_input", "must be at least 1"));
        }
        if self.method.self_trains() && self.em.iterations == 0 {
            return Err(invalid("em.iterations", format!("must be at least 1 for method {}", self.method.as_str())));
        }
        if !(self.eval.temperature >= 0.0 && self.eval.temperature <= 2.0) {
            return Err(invalid("eval.temperature", "must be in [0, 2]"));
        }
        if !(self.eval.top_p > 0.0 && self.eval.top_p <= 1.0) {
            return Err(invalid("eval.top_p", "must be in (0, 1]"));
        }
        for (section, p) in [("sampling", self.sampling.penalties()), ("eval", self.eval.penalties())] {
            check_penalties(section, &p)?;
        }
        self.train.validate().map_err(|e| invalid("train", e.to_string()))?;
        self.engine.validate()?;
        self.engine.check_supported(&self.sampling.penalties(), &self.eval.penalties())?;
        Ok(())
    }
}

/// [`Penalties::check`] for the keys of `[section]`, naming the first bad
/// key (`sampling.min_p`) and its range.
fn check_penalties(section: &str, p: &Penalties) -> Result<(), ConfigError> {
    p.check().map_err(|message| {
        let key = message.split_whitespace().next().unwrap_or_default();
        let rest = message.strip_prefix(key).unwrap_or(&message).trim_start();
        invalid(&format!("{section}.{key}"), rest.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_guards_default_to_off_and_out_of_range_values_name_their_key() {
        // Given the paper defaults, then every guard is off in both sections
        let cfg = RunConfig::default();
        assert!(cfg.sampling.e_step().penalties.is_neutral());
        assert!(cfg.eval.sampling().penalties.is_neutral());
        // and the canonical TOML writes them, and reads them back
        let toml = cfg.to_toml().unwrap();
        for key in ["repetition_penalty = 1.0", "no_repeat_ngram_size = 0", "min_p = 0.0"] {
            assert_eq!(toml.matches(key).count(), 2, "{key} in [sampling] and [eval]:\n{toml}");
        }
        let data = env!("CARGO_MANIFEST_DIR");
        let with = |extra: &str| {
            let text = format!("data = {data:?}\n{extra}");
            RunConfig::from_toml(&text, Path::new("run.toml")).unwrap()
        };
        // Given guards in range, then they pass and reach the sampling settings
        let ok = with("[sampling]\nrepetition_penalty = 1.2\nno_repeat_ngram_size = 3\n[eval]\nmin_p = 0.05\n");
        ok.validate().unwrap();
        assert_eq!(ok.sampling.e_step().penalties.repetition_penalty, 1.2);
        assert_eq!(ok.sampling.reasoning().penalties.no_repeat_ngram_size, 3);
        assert_eq!(ok.eval.sampling().penalties.min_p, 0.05);
        // When a value is out of range, then validation names the key and the range
        for (extra, key, range) in [
            ("[sampling]\nrepetition_penalty = 0.0\n", "`sampling.repetition_penalty`", "finite and > 0"),
            ("[sampling]\nfrequency_penalty = 2.5\n", "`sampling.frequency_penalty`", "[-2, 2]"),
            ("[sampling]\npresence_penalty = -3.0\n", "`sampling.presence_penalty`", "[-2, 2]"),
            ("[sampling]\nmin_p = 1.5\n", "`sampling.min_p`", "[0, 1]"),
            ("[eval]\nrepetition_penalty = -1.0\n", "`eval.repetition_penalty`", "> 0"),
            ("[eval]\nmin_p = -0.5\n", "`eval.min_p`", "[0, 1]"),
        ] {
            let err = with(extra).validate().unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(range), "{extra}: {err}");
        }
        // and a negative n-gram size is a type error that toml names
        let err = RunConfig::from_toml("[sampling]\nno_repeat_ngram_size = -1\n", Path::new("run.toml")).unwrap_err();
        assert!(err.to_string().contains("no_repeat_ngram_size"), "{err}");
    }

    #[test]
    fn training_precision_and_e_step_inputs_are_left_out_at_defaults_and_auto_is_decided_before_logging() {
        // Given the defaults, then neither key is in the canonical TOML (old runs' text is unchanged)
        let toml = RunConfig::default().to_toml().unwrap();
        assert!(!toml.contains("precision") && !toml.contains("inputs_per_task"), "{toml}");
        // Given `auto`, when the run decides it, then the logged text names a concrete precision
        let data = env!("CARGO_MANIFEST_DIR");
        let text = format!("data = {data:?}\n[em]\ninputs_per_task = 3\n[train]\nprecision = \"auto\"\n");
        let mut cfg = RunConfig::from_toml(&text, Path::new("run.toml")).unwrap();
        assert_eq!((cfg.train.precision, cfg.em.inputs_per_task), (DtypeChoice::Auto, 3));
        cfg.decide_training_precision();
        let want = DtypeChoice::Auto.resolve(tch::Device::Cpu).to_string();
        assert_eq!(cfg.train.precision.to_string(), want);
        let logged = cfg.to_toml().unwrap();
        assert_eq!(logged.contains(&format!("precision = \"{want}\"")), want == "bf16", "{logged}");
        assert!(logged.contains("inputs_per_task = 3"), "{logged}");
        // and an unknown precision is refused by name
        let bad = RunConfig::from_toml("[train]\nprecision = \"fp8\"\n", Path::new("run.toml")).unwrap_err();
        assert!(bad.to_string().contains("precision"), "{bad}");
    }

    #[test]
    fn threads_default_to_the_available_cores_and_bad_values_name_their_key() {
        // Given no flag and no RESTPG_THREADS (this test never sets it)
        if std::env::var_os(THREADS_ENV).is_none() {
            assert_eq!(torch_threads(None, 0).unwrap(), available_cores());
            assert_eq!(torch_threads(None, 3).unwrap(), 3);
            let err = torch_threads(None, MAX_THREADS + 1).unwrap_err();
            assert!(err.to_string().contains("`model.threads`"), "{err}");
        }
        assert_eq!(torch_threads(Some(2), 7).unwrap(), 2, "the flag wins");
        let err = torch_threads(Some(0), 0).unwrap_err();
        assert!(err.to_string().contains("`--threads`"), "{err}");
        assert!(available_cores() >= 1);
        // A configuration with too many threads is refused by key; a negative
        // one is a type error that toml names.
        let cfg = RunConfig::from_toml("[model]\nthreads = 5000\n", Path::new("run.toml")).unwrap();
        let err = cfg.validate().unwrap_err();
        assert!(err.to_string().contains("`model.threads`"), "{err}");
        let err = RunConfig::from_toml("[model]\nthreads = -1\n", Path::new("run.toml")).unwrap_err();
        assert!(err.to_string().contains("threads"), "{err}");
        let err = RunConfig::from_toml("[model]\nthread = 2\n", Path::new("run.toml")).unwrap_err();
        assert!(err.to_string().contains("thread"), "{err}");
    }

    #[test]
    fn device_and_dtype_parse_by_name_and_a_missing_gpu_is_refused_by_key() {
        let cfg =
            RunConfig::from_toml("[model]\ndevice = \"auto\"\ndtype = \"bf16\"\n", Path::new("run.toml")).unwrap();
        assert_eq!((cfg.model.device, cfg.model.dtype), (DeviceChoice::Auto, DtypeChoice::Bf16));
        // The canonical TOML keeps them.
        let again = RunConfig::from_toml(&cfg.to_toml().unwrap(), Path::new("log")).unwrap();
        assert_eq!((again.model.device, again.model.dtype), (DeviceChoice::Auto, DtypeChoice::Bf16));
        // Defaults: the CPU, and the precision that is fast on it.
        let d = RunConfig::default();
        assert_eq!((d.model.device, d.model.dtype), (DeviceChoice::Cpu, DtypeChoice::Auto));
        let err = RunConfig::from_toml("[model]\ndtype = \"fp16\"\n", Path::new("run.toml")).unwrap_err();
        assert!(err.to_string().contains("dtype") && err.to_string().contains("fp16"), "{err}");
        if !tch::Cuda::is_available() {
            let cfg = RunConfig::from_toml("[model]\ndevice = \"cuda\"\n", Path::new("run.toml")).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("`model.device`") && err.contains("setup.sh --cuda"), "{err}");
        }
    }

    #[test]
    fn a_retired_key_is_accepted_and_ignored() {
        let old = "seed = 3\n[train]\neval_every = 1000\nmax_steps = 7\n";
        let cfg = RunConfig::from_toml(old, Path::new("run.toml")).unwrap();
        assert_eq!((cfg.seed, cfg.train.max_steps), (3, 7));
        assert!(!cfg.to_toml().unwrap().contains("eval_every"));
        let err =
            RunConfig::from_toml("[train]\neval_every = 1000\nmax_step = 7\n", Path::new("run.toml")).unwrap_err();
        assert!(err.to_string().contains("max_step"), "{err}");
    }

    #[test]
    fn an_integer_toml_cannot_write_back_is_refused_by_key() {
        // The fuzzer's input: it parsed, and `to_toml` then failed.
        let err =
            RunConfig::from_toml("[eval]\nmax_per_task = 9223372036854775808\n", Path::new("run.toml")).unwrap_err();
        assert!(matches!(&err, ConfigError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("run.toml") && err.to_string().contains("`eval.max_per_task`"), "{err}");
        let err = RunConfig::from_toml("seed = 18446744073709551615\n", Path::new("run.toml")).unwrap_err();
        assert!(err.to_string().contains("`seed`"), "{err}");
        let cfg = RunConfig::from_toml("seed = 9223372036854775807\n", Path::new("run.toml")).unwrap();
        RunConfig::from_toml(&cfg.to_toml().unwrap(), Path::new("run.toml")).unwrap();
    }

    #[test]
    fn the_engine_section_is_read_by_key_and_left_out_when_default() {
        let data = env!("CARGO_MANIFEST_DIR");
        let parse = |extra: &str| RunConfig::from_toml(&format!("data = {data:?}\n{extra}"), Path::new("run.toml"));
        // The default configuration writes no [engine] (old runs' text is unchanged).
        let cfg = parse("").unwrap();
        assert!(!cfg.to_toml().unwrap().contains("engine"), "{}", cfg.to_toml().unwrap());
        // An unknown backend or key is a parse error naming it.
        let err = parse("[engine.judge]\nbackend = \"grpc\"\n").unwrap_err().to_string();
        assert!(err.contains("grpc") && err.contains("tch, openai"), "{err}");
        let err = parse("[engine.policy]\nbakend = \"tch\"\n").unwrap_err().to_string();
        assert!(err.contains("bakend"), "{err}");
        // A bad template is refused by key before any work.
        let cfg = parse("[engine.policy]\nbackend = \"openai\"\nlaunch = \"serve {gguf}\"\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("engine.policy.launch") && err.contains("{port}"), "{err}");
        // A well-formed section round-trips through the canonical TOML,
        let text = "[engine.judge]\nbackend = \"openai\"\nurl = \"http://127.0.0.1:8000/v1\"\napi_key_env = \"K\"\n";
        let cfg = parse(text).unwrap();
        assert_eq!(parse(&cfg.to_toml().unwrap().replace(&format!("data = {data:?}\n"), "")).unwrap(), cfg);
        // and runs (a judge at a url is served), as does a trainer command;
        cfg.validate().unwrap();
        let cfg = parse("[engine.trainer]\nbackend = \"command\"\ncommand = \"t {dataset} {init} {out}\"\n").unwrap();
        cfg.validate().unwrap();
        // the policy at a fixed url is refused naming its key, never run on tch.
        let cfg = parse("[engine.policy]\nbackend = \"openai\"\nurl = \"http://127.0.0.1:8000/v1\"\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("engine.policy.url") && err.contains("launch"), "{err}");
    }
}
