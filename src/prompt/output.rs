//! The output parser: a generation of the reasoning prompt split into
//! reasoning and response at the separator line.

use super::RESPONSE_SEPARATOR;

/// A generation split into reasoning and response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedOutput {
    /// Text before the separator (trimmed; may be empty), `None` when there
    /// is no separator.
    pub reasoning: Option<String>,
    /// Text after the separator (trimmed), or the whole text when there is
    /// no separator.
    pub response: String,
    /// Whether the separator was found.
    pub had_separator: bool,
}

/// Splits a generation of prompt 2 into reasoning and response.
///
/// Rule: the separator is the first separator line
/// ([`crate::lm::stop::separator_lines`]: trimmed, ASCII-case-insensitive,
/// starts with `### Response`, with or without the colon). Everything before that line is the reasoning; the rest of the
/// separator line after the marker and all later lines are the response,
/// later separator lines included (so the response is never cut short). When
/// no line matches, `had_separator` is false, `reasoning` is `None` and the
/// response is the whole text, trimmed: the caller decides whether such a
/// sample counts (the reward only ever sees `response`).
pub fn parse_output(text: &str) -> ParsedOutput {
    match crate::lm::stop::separator_lines(text, RESPONSE_SEPARATOR).first() {
        Some(line) => ParsedOutput {
            reasoning: Some(text[..line.line_start].trim().to_string()),
            response: text[line.marker_end..].trim().to_string(),
            had_separator: true,
        },
        None => ParsedOutput { reasoning: None, response: text.trim().to_string(), had_separator: false },
    }
}
