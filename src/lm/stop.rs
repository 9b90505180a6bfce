//! Where a generated text ends: stop strings (OpenAI `stop` semantics) and
//! the repeated separator line of the reasoning template.
//!
//! One rule for what a separator line is, shared by the generator (which
//! stops at the second one) and by [`crate::prompt::parse_output`] (which
//! splits at the first one): a line whose text, with leading whitespace
//! removed and compared without regard to ASCII case, starts with the
//! separator without its trailing colon (`### Response:` matches
//! `### response`, `  ### RESPONSE:` and `### Response`).

/// Byte offsets into `text` of every separator line: each is the offset of
/// the line's first byte, with `lead` the length of its leading whitespace
/// and `marker_end` the offset just past the marker (and its colon, if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeparatorLine {
    /// Offset of the line's first byte.
    pub line_start: usize,
    /// Offset just past the marker and its colon, if present.
    pub marker_end: usize,
}

/// Every separator line of `text`, in order (see the module doc for the
/// rule). A blank `separator` matches nothing.
pub fn separator_lines(text: &str, separator: &str) -> Vec<SeparatorLine> {
    let marker = separator.trim().trim_end_matches(':').to_ascii_lowercase();
    if marker.is_empty() {
        return vec![];
    }
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let lead = line.len() - trimmed.len();
        if trimmed.get(..marker.len()).map(str::to_ascii_lowercase).as_deref() == Some(marker.as_str()) {
            let mut end = offset + lead + marker.len();
            if text[end..].starts_with(':') {
                end += 1;
            }
            out.push(SeparatorLine { line_start: offset, marker_end: end });
        }
        offset += line.len();
    }
    out
}

/// Which rule ended a generation at a stop offset ([`stop_offset`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StopRule {
    /// One of the configured stop strings.
    StopString,
    /// A second separator line: the model began another response block.
    Separator,
}

impl StopRule {
    /// The finish reason a generation cut by this rule logs.
    pub fn finish_reason(self) -> events::FinishReason {
        match self {
            StopRule::StopString => events::FinishReason::StopString,
            StopRule::Separator => events::FinishReason::Separator,
        }
    }
}

/// Where a generation stops, as a byte offset into `text` to cut at, and the
/// rule that put it there: the first occurrence of any of `stop_strings`, or
/// the start of the second separator line, whichever comes first (a stop
/// string wins a tie). `None` when neither occurs.
pub fn stop_offset(text: &str, stop_strings: &[String], separator: Option<&str>) -> Option<(usize, StopRule)> {
    let by_string = stop_strings.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min();
    let by_separator = separator.and_then(|sep| separator_lines(text, sep).get(1).map(|l| l.line_start));
    match (by_string, by_separator) {
        (Some(a), Some(b)) if b < a => Some((b, StopRule::Separator)),
        (Some(a), _) => Some((a, StopRule::StopString)),
        (None, Some(b)) => Some((b, StopRule::Separator)),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_separator_line_stops_and_the_first_does_not() {
        let sep = Some("### Response:");
        let one = "She writes tersely.\n\n### Response:\nHi Bob,\nsee you.";
        assert_eq!(stop_offset(one, &[], sep), None);
        let two = format!("{one}\n### Response:\n### Response:");
        assert_eq!(stop_offset(&two, &[], sep), Some((one.len() + 1, StopRule::Separator)));
        // case and leading blanks as parse_output reads them
        let loose = "r\n### Response\nhello\n   ### RESPONSE: again";
        assert_eq!(stop_offset(loose, &[], sep), Some(("r\n### Response\nhello\n".len(), StopRule::Separator)));
    }

    #[test]
    fn stop_strings_cut_at_their_first_occurrence() {
        let stops = vec!["<|user|>".to_string(), "\n\n\n".to_string()];
        assert_eq!(stop_offset("abc<|user|>d\n\n\n", &stops, None), Some((3, StopRule::StopString)));
        assert_eq!(stop_offset("ab\n\n\nc<|user|>", &stops, None), Some((2, StopRule::StopString)));
        assert_eq!(stop_offset("abc", &stops, None), None);
    }

    #[test]
    fn separator_lines_find_the_marker_end() {
        let t = "x\n  ### Response: y";
        assert_eq!(separator_lines(t, "### Response:"), vec![SeparatorLine { line_start: 2, marker_end: 17 }]);
        assert!(separator_lines("### Response", " ").is_empty());
    }
}
