//! The text the M-step trains on for one logged sample.
//!
//! The log keeps a sample's reasoning and response apart (the judge sees only
//! the response), but the M-step trains on the model's whole output: the
//! reasoning, the template's separator, then the response. The separator
//! belongs to the prompt templates of the root package, so it enters replay
//! as a value rather than a constant this crate would have to keep in step.
//! D_t's digest does not depend on it: a sealed entry's `response_digest` is
//! blake3 of the logged response alone.

/// How a logged sample's reasoning and response join into the completion the
/// M-step trains on: `reasoning ⊕ separator ⊕ response` when the sample has a
/// reasoning part, the response alone when it has none (SFT, ReST-EM, or a
/// REST-PG output that never produced the separator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    separator: String,
    trim: bool,
}

impl Completion {
    /// A rule joining reasoning and response with `separator`, exactly as
    /// the reasoning template writes it (whitespace included).
    pub fn new(separator: impl Into<String>) -> Self {
        Self { separator: separator.into(), trim: false }
    }

    /// The same rule, trimming the reasoning and the response of surrounding
    /// whitespace before joining them (as the reasoning template's training
    /// target does). A response without reasoning is used as logged.
    pub fn trimmed(mut self) -> Self {
        self.trim = true;
        self
    }

    /// The separator this rule joins with.
    pub fn separator(&self) -> &str {
        &self.separator
    }

    /// The completion text.
    pub fn text(&self, reasoning: Option<&str>, response: &str) -> String {
        match reasoning {
            Some(r) => {
                let (r, response) = if self.trim { (r.trim(), response.trim()) } else { (r, response) };
                let mut s = String::with_capacity(r.len() + self.separator.len() + response.len());
                s.push_str(r);
                s.push_str(&self.separator);
                s.push_str(response);
                s
            }
            None => response.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_and_response_join_with_the_separator() {
        let c = Completion::new("\n\n### Response:\n");
        assert_eq!(c.text(None, " x "), " x ");
        assert_eq!(c.text(Some("r "), "x"), "r \n\n### Response:\nx");
        assert_eq!(c.text(Some(""), "x"), "\n\n### Response:\nx", "an empty reasoning still writes the separator");
        let t = c.clone().trimmed();
        assert_eq!(t.text(Some(" r\n"), "\nx "), "r\n\n### Response:\nx");
        assert_eq!(t.text(None, " x "), " x ");
    }
}
