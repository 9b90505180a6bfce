//! # Prompts: the four templates of REST-PG, the reasoning parser, budgets
//!
//! REST-PG (Salemi et al. 2025) uses four prompts, each kept here as an
//! editable text file under `prompts/` at the repository root and embedded
//! into the binary with `include_str!` as the default ([`Templates::builtin`]);
//! [`Templates::load`] reads a directory of edited copies instead.
//!
//! 1. `plain.txt` — the retrieval-augmented prompt of the SFT and ReST-EM
//!    baselines: retrieved profile items, then the input `x`
//!    ([`Templates::plain`]).
//! 2. `reasoning_input.txt` — the reasoning-enhanced prompt (paper Fig. 2):
//!    the model first writes a bullet-point summary of the user's
//!    preferences, interests, background knowledge and writing style, then a
//!    separator line ([`RESPONSE_SEPARATOR`]), then the response. The
//!    training target is `reasoning ⊕ separator ⊕ y`
//!    ([`Templates::reasoning_target`]); [`parse_output`] splits a generation
//!    back into reasoning and response, so that the reward looks at the
//!    response only.
//! 3. `reasoning_generation.txt` — for the generator LLM that writes
//!    `D_reasoning` (paper Fig. 7 intent): given `x`, the expected output `y`
//!    and the profile, summarise the user's preferences, interests,
//!    background knowledge and writing style that lead from `x` to `y`, as
//!    bullet points, without quoting `y`.
//! 4. `judge.txt` — the reward model's prompt (paper Fig. 8 intent): input,
//!    expected output, generated output, and criteria for each score 0..10;
//!    the answer is a single integer.
//!
//! Profile items are rendered per task with `profile-<task>.txt` (the task's
//! LongLaMP fields as placeholders, plus `{index}`, 1-based rank).
//!
//! Placeholders are `{name}`; `{{` and `}}` are literal braces. Every file is
//! checked when it is loaded: a placeholder the template may not use, a
//! required placeholder that is missing, or a stray brace is an error naming
//! the file and the placeholder ([`TemplateError`]), so an edited template
//! fails at start-up rather than producing silently wrong prompts.
//!
//! Token budgets ([`fit_profile`]): the paper caps inputs at 5,120 tokens.
//! Only retrieved profile items give way: lower-ranked items are dropped and
//! the last one that partly fits is trimmed (its long text field, by words);
//! the user's request, and the expected output in prompt 3, are never cut. A
//! prompt whose fixed part alone exceeds the budget is returned whole with
//! [`Fitted::over_budget`] set, for the caller to decide.

pub mod budget;
pub mod output;
pub mod template;
pub mod templates;

pub use budget::{fit_profile, Fitted, MIN_TRIMMED_WORDS};
pub use output::{parse_output, ParsedOutput};
pub use template::{Template, TemplateError};
pub use templates::{PromptKind, Templates, EMPTY_PROFILE};

/// The separator line between reasoning and response in prompt 2's target.
/// Chosen to be a line no e-mail, essay, review or abstract normally holds.
pub const RESPONSE_SEPARATOR: &str = "### Response:";

/// The separator rule of decoding for `prompt`: for the reasoning prompt,
/// an output that has written its response ends at the next separator line
/// (the model is opening a turn of its own); other prompts have none. The
/// same rule for the tch engine, a server's replies and evaluation.
pub fn separator_stop(prompt: PromptKind) -> Option<String> {
    (prompt == PromptKind::Reasoning).then(|| RESPONSE_SEPARATOR.to_owned())
}
