//! Rewards R(x, y, ŷ) for self-training and the metrics of evaluation.
//!
//! A reward looks at the *final response only*: [`RewardInput::generated`]
//! is the raw generated text, and every reward here first runs
//! [`response_of`] (the prompt parser's split at the reasoning/response
//! separator) and scores only the response part, so the reasoning is never
//! seen. An empty or missing response scores 0 with
//! [`RewardOutput::empty_response`] set — counted, never an error.
//!
//! Rewards are configured by name through [`RewardSpec`]: `judge`,
//! `rouge-1`, `rouge-2`, `rouge-l`, `meteor`, `similarity` (MiniLM sentence
//! embeddings, [`similarity`]), or a weighted mix such as
//! `0.5*judge+0.5*rouge-l`, made into one reward by [`Composite`]; the
//! non-judge metrics are scored through [`Scorers`]. Before a run trusts a
//! reward, [`check`] measures whether it tells a user's own text from
//! another user's and from degenerate text. The
//! lexical metrics follow LongLaMP's evaluation exactly ([`rouge`]: Google's
//! `rouge_score`; [`meteor`]: NLTK's METEOR as
//! called by Hugging Face `evaluate`), proven by parity fixtures generated
//! from the Python references (`scripts/make_parity_fixtures.py`). The LLM
//! judge of the paper is in [`judge`].

pub mod check;
pub mod composite;
pub mod judge;
pub mod meteor;
pub mod rouge;
pub mod scorers;
pub mod similarity;
pub mod spec;

pub use composite::Composite;
pub use judge::{Judge, JudgeConfig, ScoreModel, ScoreRule};
pub use scorers::Scorers;
pub use similarity::Similarity;
pub use spec::{Metric, RewardSpec};

use anyhow::Result;

/// One item to score: the task input x, the expected output y and the raw
/// generated text ŷ (reasoning and response, as the policy wrote it).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RewardInput {
    /// The task input x (shown to the judge).
    pub input: String,
    /// The expected output y.
    pub expected: String,
    /// The final response only, already split from any reasoning (by
    /// [`response_of`] at the one place a raw generation is parsed); scored
    /// as it is.
    pub response: String,
}

/// The reward of one item.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RewardOutput {
    /// The reward in [0, 1].
    pub reward: f32,
    /// The judge's probability over the scores 0..=10 (11 values summing to
    /// 1), when a judge took part; goes to the event log.
    pub distribution: Option<Vec<f32>>,
    /// The response part was empty or missing (the reward is then 0).
    pub empty_response: bool,
}

/// A reward function over batches of items.
pub trait Reward {
    /// Scores each item; the output has one entry per input, in order.
    ///
    /// # Errors
    /// Model failures (judge); never for empty responses.
    fn score(&mut self, items: &[RewardInput]) -> Result<Vec<RewardOutput>>;
}

/// The response part of a raw generation, trimmed; `None` when it is empty.
///
/// Uses [`crate::prompt::parse_output`]: the text after the
/// reasoning/response separator when there is one, else the whole text. The
/// reasoning part is dropped here, so no reward ever sees it.
pub fn response_of(generated: &str) -> Option<String> {
    nonempty(&crate::prompt::parse_output(generated).response)
}

/// `response` trimmed, or `None` when that is empty (an empty response is
/// scored 0 without a model call).
pub fn nonempty(response: &str) -> Option<String> {
    let r = response.trim();
    if r.is_empty() {
        None
    } else {
        Some(r.to_string())
    }
}
