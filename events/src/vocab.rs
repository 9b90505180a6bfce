//! The shared vocabulary of a run: the names that cross crate boundaries
//! (method, stage, split, checkpoint role, prompt kind, judge rule, where an
//! M-step starts, the precision a sample was drawn in) as enums, and the
//! sampling settings (with their repetition penalties) as plain structs.
//!
//! Each name has one spelling, the kebab-case text the configuration, the
//! CLI and the log's JSON export use; [`FromStr`] reads it back (plus the
//! aliases a type documents) and refuses anything else naming the accepted
//! spellings. In bincode a variant is its position: variants are only ever
//! added at the end, like [`Event`](crate::Event)'s.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name that is none of a vocabulary type's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {got:?} (expected one of: {expected})")]
pub struct UnknownName {
    /// What was being named (`method`, `stage`, `split`, …).
    pub what: &'static str,
    /// The rejected text.
    pub got: String,
    /// The accepted spellings, comma-separated.
    pub expected: &'static str,
}

/// Defines the common parts of a unit-variant vocabulary enum: `ALL`,
/// `as_str`, `from_name` (the exact spelling), `Display` and comparison
/// with text. `FromStr` comes from [`exact_from_str`] or, for a type with
/// aliases, its own impl.
macro_rules! vocabulary {
    (
        $ty:ident, $what:literal, $expected:literal;
        $($variant:ident = $name:literal,)*
    ) => {
        impl $ty {
            /// Every variant, in schema order.
            pub const ALL: [$ty; [$($name),*].len()] = [$($ty::$variant),*];

            /// The spelling used in configurations, on the command line and
            /// in the log.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }

            /// The variant whose [`as_str`](Self::as_str) is exactly `s`, if
            /// any (no aliases: what old log records are read with).
            pub fn from_name(s: &str) -> Option<$ty> {
                match s {
                    $($name => Some($ty::$variant),)*
                    _ => None,
                }
            }

            /// The error for text that names no variant.
            pub(crate) fn unknown_name(s: &str) -> UnknownName {
                UnknownName { what: $what, got: s.to_owned(), expected: $expected }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

/// `FromStr` through `from_name`, exact spellings only.
macro_rules! exact_from_str {
    ($($ty:ident),*) => {
        $(
            impl FromStr for $ty {
                type Err = UnknownName;

                fn from_str(s: &str) -> Result<Self, Self::Err> {
                    $ty::from_name(s).ok_or_else(|| $ty::unknown_name(s))
                }
            }
        )*
    };
}

/// Which of the paper's four systems a run is (REST-PG §4, Table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Supervised fine-tuning on (x, y) with the retrieval-augmented prompt.
    Sft,
    /// SFT on (x, reasoning ⊕ y): D_reasoning only, no self-training.
    SftReasoning,
    /// ReST-EM (Singh et al. 2024): SFT on (x, y), then T rounds of
    /// expectation-maximization without reasoning.
    RestEm,
    /// REST-PG: SFT on D_reasoning, then T rounds of reasoning-enhanced
    /// self-training (Algorithm 1).
    RestPg,
}

vocabulary! {
    Method, "method", "sft, sft-reasoning, rest-em, rest-pg";
    Sft = "sft",
    SftReasoning = "sft-reasoning",
    RestEm = "rest-em",
    RestPg = "rest-pg",
}

impl Method {
    /// Whether the method generates reasoning data and trains on
    /// reasoning ⊕ y (and samples reasoning ⊕ response in the E-step).
    pub fn uses_reasoning(self) -> bool {
        matches!(self, Method::SftReasoning | Method::RestPg)
    }

    /// Whether the method runs the E-step/M-step loop after SFT.
    pub fn self_trains(self) -> bool {
        matches!(self, Method::RestEm | Method::RestPg)
    }

    /// The template the policy is trained, sampled and evaluated with.
    pub fn policy_prompt(self) -> PromptKind {
        if self.uses_reasoning() {
            PromptKind::Reasoning
        } else {
            PromptKind::Plain
        }
    }
}

/// A stage of the pipeline, as `StageStarted` and `StageFinished` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Top-k profile items for every input (REST-PG §3 step 1).
    Retrieve,
    /// The generator summarizes each train user (D_reasoning, §3 step 2).
    Reasoning,
    /// Supervised fine-tuning: θ¹.
    Sft,
    /// Algorithm 1 line 5: m samples per train input from θ_t.
    EStep,
    /// Algorithm 1 line 7: a reward for each sample.
    Judge,
    /// Algorithm 1 lines 8–9: the filter, and the seal of D_t.
    Filter,
    /// Algorithm 1 line 11: reward-weighted training on D_t.
    MStep,
    /// Evaluation on the validation split.
    EvalValidation,
    /// Evaluation on the test split.
    EvalTest,
    /// Before the first stage: whether the reward tells a user's own text
    /// from another user's and from degenerate text (`RewardChecked`).
    RewardCheck,
}

vocabulary! {
    Stage, "stage", "retrieve, reasoning, sft, e-step, judge, filter, m-step, eval-validation, eval-test, reward-check";
    Retrieve = "retrieve",
    Reasoning = "reasoning",
    Sft = "sft",
    EStep = "e-step",
    Judge = "judge",
    Filter = "filter",
    MStep = "m-step",
    EvalValidation = "eval-validation",
    EvalTest = "eval-test",
    RewardCheck = "reward-check",
}

/// A data set split. Ordered `Train < Validation < Test`.
///
/// The log names the validation split `validation` (its spelling here);
/// LongLaMP's files and our data sets call it `val` ([`Split::file_stem`]),
/// and `val` and `dev` are read as aliases wherever a split is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// Training examples.
    Train,
    /// Validation examples.
    #[serde(alias = "val", alias = "dev")]
    Validation,
    /// Test examples.
    Test,
}

vocabulary! {
    Split, "split", "train, validation (or val, dev), test";
    Train = "train",
    Validation = "validation",
    Test = "test",
}

impl Split {
    /// The file-name stem of the split in a data set directory (and in its
    /// digest and manifest): `train`, `val`, `test`.
    pub fn file_stem(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "val",
            Split::Test => "test",
        }
    }
}

impl FromStr for Split {
    type Err = UnknownName;

    /// Any spelling or alias (`val`, `dev`), ignoring case and surrounding
    /// space.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "val" | "dev" => Ok(Split::Validation),
            name => Split::from_name(name).ok_or_else(|| Split::unknown_name(s)),
        }
    }
}

/// What a checkpoint is, as `CheckpointSaved` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The pretrained model θ_0 the run starts from.
    Base,
    /// The SFT checkpoint θ¹.
    Sft,
    /// An M-step's checkpoint θ_{t+1}.
    MStep,
}

vocabulary! {
    Role, "checkpoint role", "base, sft, m-step";
    Base = "base",
    Sft = "sft",
    MStep = "m-step",
}

/// Where each M-step starts (REST-PG §3.3; ReST-EM restarts from the base).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitMode {
    /// Every M-step trains from the base checkpoint (the paper's default, as
    /// in ReST-EM: "fine-tune the base model" at each M-step).
    #[default]
    Fresh,
    /// The M-step of iteration t trains from θ_t, the checkpoint that
    /// sampled D_t.
    Continue,
}

vocabulary! {
    InitMode, "init mode", "fresh, continue";
    Fresh = "fresh",
    Continue = "continue",
}

/// Which prompt template a generation or training example uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptKind {
    /// Prompt 1: retrieval-augmented, response only (SFT, ReST-EM).
    Plain,
    /// Prompt 2: reasoning-enhanced; the model writes reasoning, the
    /// separator, then the response (REST-PG).
    Reasoning,
    /// Prompt 3: the reasoning generator's prompt, which also shows the
    /// expected output y.
    ReasoningGeneration,
}

vocabulary! {
    PromptKind, "prompt kind", "plain, reasoning, reasoning-generation";
    Plain = "plain",
    Reasoning = "reasoning",
    ReasoningGeneration = "reasoning-generation",
}

/// How the judge's score distribution becomes a reward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreRule {
    /// The most probable score ÷ 10 (the paper's rule; ties → lower score).
    #[default]
    Argmax,
    /// Σ p(s)·s ÷ 10 (G-Eval).
    Expected,
}

vocabulary! {
    ScoreRule, "judge score rule", "argmax, expected";
    Argmax = "argmax",
    Expected = "expected",
}

impl ScoreRule {
    /// Applies the rule to a distribution over the scores 0, 1, … (the
    /// judge's 11 values for 0..=10).
    pub fn apply(self, dist: &[f32]) -> f32 {
        match self {
            ScoreRule::Argmax => {
                let mut best = 0;
                for (i, p) in dist.iter().enumerate() {
                    if *p > dist[best] {
                        best = i;
                    }
                }
                best as f32 / 10.0
            }
            ScoreRule::Expected => dist.iter().enumerate().map(|(s, p)| s as f32 * p).sum::<f32>() / 10.0,
        }
    }
}

/// The floating-point precision a model ran in when it drew a sample.
/// Replaying a sample needs the same precision: the logits, and so the
/// choices, differ between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// 32-bit floats throughout (the tch engine today; every record written
    /// before schema version 5).
    #[default]
    F32,
    /// bfloat16 weights and activations.
    Bf16,
}

vocabulary! {
    Precision, "precision", "f32, bf16";
    F32 = "f32",
    Bf16 = "bf16",
}

/// Which engine runs a role's model: our own tch engine, or a server with
/// the OpenAI-compatible completions API (vLLM, SGLang, llama.cpp's
/// server), `[engine.policy|generator|judge] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The embedded tch engine (every record written before schema
    /// version 6).
    #[default]
    Tch,
    /// An OpenAI-compatible HTTP server (`/v1/completions`, `/v1/models`).
    /// Spelled `openai` in JSON as in the configuration (kebab-case would
    /// make it `open-ai`).
    #[serde(rename = "openai")]
    OpenAi,
}

vocabulary! {
    Backend, "backend", "tch, openai";
    Tch = "tch",
    OpenAi = "openai",
}

/// Which trainer runs SFT and the M-step, `[engine.trainer] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainerBackend {
    /// The embedded tch trainer.
    #[default]
    Tch,
    /// An external command (TRL, accelerate/torchrun scripts) given D_t as
    /// JSONL and writing a Hugging Face directory.
    Command,
}

vocabulary! {
    TrainerBackend, "trainer backend", "tch, command";
    Tch = "tch",
    Command = "command",
}

/// How a prompt is sent to an OpenAI-compatible server
/// (`[engine.*] prompt_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptFormat {
    /// Our token ids (`"prompt": [1, 2, …]`), so templates and special
    /// tokens stay exactly ours: vLLM, SGLang and llama.cpp's own
    /// `llama-server` accept them.
    #[default]
    Tokens,
    /// The prompt text (llama-cpp-python's server takes text only; it
    /// tokenizes with special tokens parsed).
    Text,
}

vocabulary! {
    PromptFormat, "prompt format", "tokens, text";
    Tokens = "tokens",
    Text = "text",
}

exact_from_str!(Method, Stage, Role, InitMode, PromptKind, ScoreRule, Precision, Backend, TrainerBackend, PromptFormat);

/// The guards against repetition applied to a row's logits before a token is
/// chosen, with the meanings Hugging Face `generate` and vLLM give them.
/// [`Penalties::default`] is neutral: every guard off, the distribution
/// untouched.
///
/// In the order they are applied (HF's processors, then its warpers):
///
/// 1. `repetition_penalty` p (Keskar et al. 2019, "CTRL", §4.1; HF
///    `RepetitionPenaltyLogitsProcessor`, vLLM `repetition_penalty`): for
///    every distinct token id in the **prompt and the tokens generated so
///    far**, a logit `l > 0` becomes `l / p` and a logit `l < 0` becomes
///    `l · p` (0 stays 0). `1` is off; `p > 1` discourages repetition.
/// 2. `frequency_penalty` f and `presence_penalty` r (OpenAI API, vLLM):
///    over the **generated tokens only**, a token seen c times gets
///    `l − f·c − r·[c > 0]`. `0` is off.
/// 3. `no_repeat_ngram_size` n (HF `NoRepeatNGramLogitsProcessor`): a token
///    that would complete an n-gram already present in the **prompt and the
///    generated tokens** (HF's whole `input_ids`) gets logit −∞. `0` is off.
/// 4. `min_p` (HF `MinPLogitsWarper`, vLLM `min_p`; Nguyen et al. 2024):
///    after temperature, top-k and top-p, tokens whose probability is below
///    `min_p ×` the most probable token's are dropped. `0` is off; it never
///    changes a greedy choice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Penalties {
    /// CTRL repetition penalty, finite and > 0; 1 is off.
    pub repetition_penalty: f32,
    /// Subtracted per occurrence in the generated tokens, in [-2, 2]; 0 is off.
    pub frequency_penalty: f32,
    /// Subtracted once from every token already generated, in [-2, 2]; 0 is off.
    pub presence_penalty: f32,
    /// Length of the n-grams that may not repeat; 0 is off.
    pub no_repeat_ngram_size: u32,
    /// Probability floor relative to the most probable token, in [0, 1]; 0 is off.
    pub min_p: f32,
}

impl Default for Penalties {
    /// Every guard off: repetition penalty 1, the others 0.
    fn default() -> Self {
        Penalties {
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            no_repeat_ngram_size: 0,
            min_p: 0.0,
        }
    }
}

impl Penalties {
    /// Whether every guard is off (the distribution is untouched).
    pub fn is_neutral(&self) -> bool {
        *self == Penalties::default()
    }

    /// Whether a guard changes the logits (all but `min_p`, which only
    /// narrows the support), so the logits must be adjusted per row.
    pub fn changes_logits(&self) -> bool {
        self.repetition_penalty != 1.0
            || self.frequency_penalty != 0.0
            || self.presence_penalty != 0.0
            || self.no_repeat_ngram_size > 0
    }

    /// Checks the ranges: `repetition_penalty` finite and > 0,
    /// `frequency_penalty` and `presence_penalty` in [-2, 2] (the OpenAI
    /// API's and vLLM's range), `min_p` in [0, 1].
    ///
    /// # Errors
    /// What is out of range, naming the key, as a sentence fragment
    /// (`repetition_penalty 0 must be finite and > 0`).
    pub fn check(&self) -> Result<(), String> {
        let p = self.repetition_penalty;
        if !(p.is_finite() && p > 0.0) {
            return Err(format!("repetition_penalty {p} must be finite and > 0 (1 is off)"));
        }
        for (key, v) in [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)] {
            if !(-2.0..=2.0).contains(&v) {
                return Err(format!("{key} {v} must be in [-2, 2] (0 is off)"));
            }
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min_p {} must be in [0, 1] (0 is off)", self.min_p));
        }
        Ok(())
    }
}

/// The sampling settings of one kind of generation (E-step samples,
/// reasoning data, evaluation), as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Softmax temperature (γ in the paper; 0 means greedy).
    pub temperature: f32,
    /// Nucleus-sampling probability mass, in (0, 1].
    pub top_p: f32,
    /// Generation budget in tokens (paper: output ≤ 1,536 tokens).
    pub max_new_tokens: u32,
    /// Guards against repetition (neutral in the paper's settings).
    pub penalties: Penalties,
}

impl Sampling {
    /// Checks the ranges: a finite temperature ≥ 0, `top_p` in (0, 1], a
    /// budget of at least one token, and [`Penalties::check`].
    ///
    /// # Errors
    /// What is out of range, as a sentence fragment (`top_p 0 must be in
    /// (0, 1]`).
    pub fn check(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!("temperature {} must be finite and ≥ 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        if self.max_new_tokens == 0 {
            return Err("max_new_tokens must be at least 1".into());
        }
        self.penalties.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: Copy + fmt::Debug + fmt::Display + PartialEq + FromStr<Err = UnknownName> + Serialize,
    {
        for &v in all {
            let name = v.to_string();
            assert_eq!(name.parse::<T>().unwrap(), v, "{name}");
            // serde's kebab-case name is the same spelling
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::Value::String(name));
        }
    }

    #[test]
    fn every_name_round_trips_and_is_its_serde_name() {
        round_trips(&Method::ALL);
        round_trips(&Stage::ALL);
        round_trips(&Split::ALL);
        round_trips(&Role::ALL);
        round_trips(&InitMode::ALL);
        round_trips(&PromptKind::ALL);
        round_trips(&ScoreRule::ALL);
        round_trips(&Precision::ALL);
        round_trips(&Backend::ALL);
        round_trips(&TrainerBackend::ALL);
        round_trips(&PromptFormat::ALL);
    }

    #[test]
    fn an_unknown_name_is_refused_naming_the_accepted_ones() {
        let e = "reinforce".parse::<Method>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown method \"reinforce\" (expected one of: sft, sft-reasoning, rest-em, rest-pg)"
        );
        assert!("best".parse::<Role>().unwrap_err().to_string().contains("base, sft, m-step"));
        assert!("mean".parse::<ScoreRule>().unwrap_err().to_string().contains("argmax, expected"));
        assert!("eval".parse::<Stage>().unwrap_err().to_string().contains("eval-validation"));
    }

    #[test]
    fn the_validation_split_reads_every_old_spelling() {
        for s in ["validation", "val", "dev", " VAL ", "Validation"] {
            assert_eq!(s.parse::<Split>().unwrap(), Split::Validation, "{s:?}");
        }
        assert_eq!(Split::Validation.as_str(), "validation");
        assert_eq!(Split::Validation.file_stem(), "val");
        assert!("holdout".parse::<Split>().unwrap_err().to_string().contains("validation"));
    }

    #[test]
    fn the_score_rules() {
        let d = [0.0, 0.1, 0.2, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0];
        assert_eq!(ScoreRule::Argmax.apply(&d), 0.7);
        assert!((ScoreRule::Expected.apply(&d) - (0.1 + 0.4 + 4.9) / 10.0).abs() < 1e-6);
    }

    #[test]
    fn sampling_ranges() {
        let ok = Sampling { temperature: 0.7, top_p: 0.95, max_new_tokens: 8, penalties: Penalties::default() };
        assert_eq!(ok.check(), Ok(()));
        assert!(Sampling { top_p: 0.0, ..ok }.check().unwrap_err().contains("top_p"));
        assert!(Sampling { temperature: f32::NAN, ..ok }.check().unwrap_err().contains("temperature"));
        assert!(Sampling { max_new_tokens: 0, ..ok }.check().unwrap_err().contains("max_new_tokens"));
    }

    #[test]
    fn penalty_ranges_name_the_key() {
        let neutral = Penalties::default();
        assert!(neutral.is_neutral() && !neutral.changes_logits());
        assert_eq!(neutral.check(), Ok(()));
        let bad = |p: Penalties| p.check().unwrap_err();
        for v in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(bad(Penalties { repetition_penalty: v, ..neutral }).starts_with("repetition_penalty"), "{v}");
        }
        assert!(bad(Penalties { frequency_penalty: 2.5, ..neutral }).starts_with("frequency_penalty 2.5"));
        assert!(bad(Penalties { presence_penalty: -2.01, ..neutral }).contains("[-2, 2]"));
        assert!(bad(Penalties { presence_penalty: f32::NAN, ..neutral }).starts_with("presence_penalty"));
        assert!(bad(Penalties { min_p: 1.5, ..neutral }).starts_with("min_p 1.5 must be in [0, 1]"));
        assert!(bad(Penalties { min_p: -0.1, ..neutral }).starts_with("min_p"));
        let on = Penalties { repetition_penalty: 1.2, no_repeat_ngram_size: 3, min_p: 0.05, ..neutral };
        assert_eq!(on.check(), Ok(()));
        assert!(on.changes_logits() && !on.is_neutral());
        assert!(!Penalties { min_p: 0.1, ..neutral }.changes_logits());
        let ok = Sampling { temperature: 0.7, top_p: 0.95, max_new_tokens: 8, penalties: on };
        assert!(Sampling { penalties: Penalties { min_p: 2.0, ..on }, ..ok }.check().unwrap_err().contains("min_p"));
    }
}
