//! The text the M-step trains on for one logged sample, and its digest.
//!
//! The log keeps a sample's reasoning and response apart (the judge sees only
//! the response), but the M-step trains on the model's whole output: the
//! reasoning, the template's separator, then the response. The separator
//! belongs to the prompt templates of the root package, so it enters replay
//! as a value rather than a constant this crate would have to keep in step.

use events::Digest;

/// How a logged sample's reasoning and response join into the completion the
/// M-step trains on: `reasoning ⊕ separator ⊕ response` when the sample has a
/// reasoning part, the response alone when it has none (SFT, ReST-EM, or a
/// REST-PG output that never produced the separator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    separator: String,
}

impl Completion {
    /// A rule joining reasoning and response with `separator`, exactly as
    /// the reasoning template writes it (whitespace included).
    pub fn new(separator: impl Into<String>) -> Self {
        Self { separator: separator.into() }
    }

    /// The separator this rule joins with.
    pub fn separator(&self) -> &str {
        &self.separator
    }

    /// The completion text.
    pub fn text(&self, reasoning: Option<&str>, response: &str) -> String {
        match reasoning {
            Some(r) => {
                let mut s = String::with_capacity(r.len() + self.separator.len() + response.len());
                s.push_str(r);
                s.push_str(&self.separator);
                s.push_str(response);
                s
            }
            None => response.to_owned(),
        }
    }

    /// blake3 of [`Completion::text`], computed without building the string.
    /// This is the `response_digest` of a [`DatasetEntry`](events::DatasetEntry):
    /// the pipeline must seal with the same rule for replay to agree.
    pub fn digest(&self, reasoning: Option<&str>, response: &str) -> Digest {
        let mut h = blake3::Hasher::new();
        if let Some(r) = reasoning {
            h.update(r.as_bytes());
            h.update(self.separator.as_bytes());
        }
        h.update(response.as_bytes());
        *h.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_the_digest_of_the_text() {
        let c = Completion::new("\n### Response:\n");
        for reasoning in [None, Some("terse writer"), Some("")] {
            let text = c.text(reasoning, "See you Monday.");
            assert_eq!(c.digest(reasoning, "See you Monday."), events::digest(text.as_bytes()));
        }
        assert_eq!(c.text(None, "x"), "x");
        assert_eq!(c.text(Some("r"), "x"), "r\n### Response:\nx");
        assert_ne!(c.digest(Some(""), "x"), c.digest(None, "x"), "an empty reasoning still writes the separator");
    }
}
