//! Whether generations follow the reasoning template's format (REST-PG,
//! Salemi et al. 2025, §3.1 and Figure 7: a reasoning part about the user's
//! profile, the separator line, the response), and the rates of a set of
//! generations that do.
//!
//! A generation is **well formed** when all three hold:
//! - **non-empty reasoning**: there is a separator line and text before it
//!   ([`crate::prompt::parse_output`] gives `Some` non-blank reasoning);
//! - **exactly one separator**: one separator line, and the model did not
//!   open a second response block (a second separator line ends a sequence
//!   with [`FinishReason::Separator`], so the kept text never shows it);
//! - **a stop, not the limit**: the model ended its turn (its end-of-turn
//!   or end-of-sequence token, or a configured stop string), rather than
//!   running to `max_new_tokens` ([`FinishReason::Length`]) or into a
//!   second separator.
//!
//! For a method without reasoning (plain prompt) only the stop counts; the
//! reasoning and separator rates are reported as not applicable.

use events::FinishReason;
use serde::{Deserialize, Serialize};

/// The format facts of one generation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FormatCheck {
    /// A separator line with non-blank text before it.
    pub nonempty_reasoning: bool,
    /// Exactly one separator line.
    pub one_separator: bool,
    /// Ended by a stop token or stop string.
    pub stopped: bool,
}

impl FormatCheck {
    /// Checks a raw generation of the reasoning prompt (the text as the
    /// generator returned it, cut before any stop) and why it ended.
    pub fn of_generation(raw: &str, finish: FinishReason) -> Self {
        let lines = crate::lm::stop::separator_lines(raw, crate::prompt::RESPONSE_SEPARATOR).len();
        let parsed = crate::prompt::parse_output(raw);
        Self::from_parts(parsed.reasoning.as_deref(), lines, finish)
    }

    /// Checks a logged sample: its reasoning part (`None` without a
    /// separator), its response and why it ended. The response is the text
    /// after the first separator line, so any separator line in it is a
    /// second one.
    pub fn of_sample(reasoning: Option<&str>, response: &str, finish: FinishReason) -> Self {
        let later = crate::lm::stop::separator_lines(response, crate::prompt::RESPONSE_SEPARATOR).len();
        let lines = usize::from(reasoning.is_some()) + later;
        Self::from_parts(reasoning, lines, finish)
    }

    fn from_parts(reasoning: Option<&str>, separator_lines: usize, finish: FinishReason) -> Self {
        FormatCheck {
            nonempty_reasoning: reasoning.is_some_and(|r| !r.trim().is_empty()),
            one_separator: separator_lines == 1 && finish != FinishReason::Separator,
            stopped: matches!(finish, FinishReason::StopToken | FinishReason::StopString),
        }
    }

    /// All three facts hold.
    pub fn well_formed(&self) -> bool {
        self.nonempty_reasoning && self.one_separator && self.stopped
    }
}

/// Counts of a set of generations that pass each format check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatRates {
    /// Generations counted.
    pub n: usize,
    /// Whether the prompt asks for reasoning (else only `stopped` applies).
    pub reasoning: bool,
    /// With non-empty reasoning.
    pub nonempty_reasoning: usize,
    /// With exactly one separator.
    pub one_separator: usize,
    /// Ended by a stop rather than the token limit or a second separator.
    pub stopped: usize,
    /// Ended at `max_new_tokens`.
    pub length: usize,
    /// Well formed: all of the above that apply.
    pub well_formed: usize,
}

impl FormatRates {
    /// The results tables' cell: `well formed/n (rate%)`.
    pub fn well_formed_cell(&self) -> String {
        format!("{}/{} ({:.0}%)", self.well_formed, self.n, 100.0 * self.rate(self.well_formed))
    }

    /// Empty counts for a prompt with (`reasoning`) or without a reasoning
    /// part.
    pub fn new(reasoning: bool) -> Self {
        FormatRates { reasoning, ..Default::default() }
    }

    /// Counts one generation.
    pub fn add(&mut self, c: FormatCheck, finish: FinishReason) {
        self.n += 1;
        self.nonempty_reasoning += usize::from(c.nonempty_reasoning);
        self.one_separator += usize::from(c.one_separator);
        self.stopped += usize::from(c.stopped);
        self.length += usize::from(finish == FinishReason::Length);
        self.well_formed += usize::from(if self.reasoning { c.well_formed() } else { c.stopped });
    }

    /// `count / n` (0 when `n = 0`).
    pub fn rate(&self, count: usize) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            count as f64 / self.n as f64
        }
    }

    /// One line: `well formed 22/24 (92%): reasoning 100%, one separator 96%,
    /// stopped 92%, at the limit 8%`.
    pub fn summary(&self) -> String {
        let pct = |c: usize| format!("{:.0}%", 100.0 * self.rate(c));
        if self.reasoning {
            format!(
                "well formed {}/{} ({}): non-empty reasoning {}, one separator {}, stopped {}, at the token limit {}",
                self.well_formed,
                self.n,
                pct(self.well_formed),
                pct(self.nonempty_reasoning),
                pct(self.one_separator),
                pct(self.stopped),
                pct(self.length)
            )
        } else {
            format!(
                "stopped {}/{} ({}), at the token limit {}",
                self.stopped,
                self.n,
                pct(self.stopped),
                pct(self.length)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_generation_is_well_formed_and_each_failure_is_named() {
        let ok = FormatCheck::of_generation("- writes tersely\n### Response:\nHi Bob.", FinishReason::StopToken);
        assert!(ok.well_formed(), "{ok:?}");
        let empty = FormatCheck::of_generation("\n### Response:\nHi Bob.", FinishReason::StopToken);
        assert!(!empty.nonempty_reasoning && empty.one_separator && empty.stopped);
        let none = FormatCheck::of_generation("Hi Bob.", FinishReason::StopToken);
        assert!(!none.nonempty_reasoning && !none.one_separator);
        let second = FormatCheck::of_generation("- terse\n### Response:\nHi", FinishReason::Separator);
        assert!(second.nonempty_reasoning && !second.one_separator && !second.stopped);
        let long = FormatCheck::of_generation("- terse\n### Response:\nHi Hi Hi", FinishReason::Length);
        assert!(long.one_separator && !long.stopped && !long.well_formed());
    }

    #[test]
    fn a_logged_sample_with_a_separator_in_its_response_has_two() {
        let two = FormatCheck::of_sample(Some("- terse"), "Hi\n### Response:\nHi", FinishReason::StopToken);
        assert!(!two.one_separator);
        let one = FormatCheck::of_sample(Some("- terse"), "Hi", FinishReason::StopToken);
        assert!(one.well_formed());
        let none = FormatCheck::of_sample(None, "Hi", FinishReason::StopToken);
        assert!(!none.one_separator && !none.nonempty_reasoning);
    }

    #[test]
    fn rates_count_each_fact() {
        let mut r = FormatRates::new(true);
        r.add(FormatCheck::of_sample(Some("a"), "b", FinishReason::StopToken), FinishReason::StopToken);
        r.add(FormatCheck::of_sample(Some(""), "b", FinishReason::Length), FinishReason::Length);
        assert_eq!(
            (r.n, r.well_formed, r.nonempty_reasoning, r.one_separator, r.stopped, r.length),
            (2, 1, 1, 2, 1, 1)
        );
        assert!(r.summary().starts_with("well formed 1/2 (50%)"), "{}", r.summary());
        let mut plain = FormatRates::new(false);
        plain.add(FormatCheck::of_generation("Hi", FinishReason::StopToken), FinishReason::StopToken);
        assert_eq!(plain.well_formed, 1);
    }
}
