//! The template engine: `{name}` placeholders checked against the names a
//! template may and must use, `{{` and `}}` for literal braces.

use std::collections::{BTreeMap, BTreeSet};

/// Errors of loading templates, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// Template file.
        file: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A placeholder this template may not use.
    #[error("{file}: unknown placeholder {{{name}}} (allowed: {allowed})")]
    Unknown {
        /// Template file.
        file: String,
        /// The placeholder.
        name: String,
        /// The allowed placeholders, comma-separated.
        allowed: String,
    },
    /// A required placeholder absent from the template.
    #[error("{file}: missing placeholder {{{name}}}")]
    Missing {
        /// Template file.
        file: String,
        /// The placeholder.
        name: String,
    },
    /// Unbalanced or malformed braces.
    #[error("{file}: byte {offset}: {message} (write {{{{ and }}}} for literal braces)")]
    Syntax {
        /// Template file.
        file: String,
        /// Byte offset in the file.
        offset: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

/// One parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    file: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text` (from `file`, named in errors) and checks its
    /// placeholders: each must be in `allowed`, each of `required` must occur.
    /// One trailing newline of the file is dropped.
    ///
    /// # Errors
    /// [`TemplateError`] naming the file and placeholder.
    pub fn parse(file: &str, text: &str, allowed: &[&str], required: &[&str]) -> Result<Self, TemplateError> {
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let mut parts = Vec::new();
        let mut lit = String::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        let syntax = |offset: usize, message: &str| TemplateError::Syntax {
            file: file.to_string(),
            offset,
            message: message.to_string(),
        };
        while i < text.len() {
            let c = bytes[i];
            if c == b'{' {
                if bytes.get(i + 1) == Some(&b'{') {
                    lit.push('{');
                    i += 2;
                    continue;
                }
                let close = text[i + 1..].find('}').ok_or_else(|| syntax(i, "`{` without a closing `}`"))?;
                let name = &text[i + 1..i + 1 + close];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(syntax(i, &format!("`{{{name}}}` is not a placeholder name")));
                }
                if !allowed.contains(&name) {
                    return Err(TemplateError::Unknown {
                        file: file.to_string(),
                        name: name.to_string(),
                        allowed: allowed.join(", "),
                    });
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var(name.to_string()));
                i += close + 2;
            } else if c == b'}' {
                if bytes.get(i + 1) == Some(&b'}') {
                    lit.push('}');
                    i += 2;
                    continue;
                }
                return Err(syntax(i, "`}` without an opening `{`"));
            } else {
                // Copy one UTF-8 character.
                let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                lit.push(ch);
                i += ch.len_utf8();
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let used: BTreeSet<&str> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Var(v) => Some(v.as_str()),
                Part::Lit(_) => None,
            })
            .collect();
        for r in required {
            if !used.contains(r) {
                return Err(TemplateError::Missing { file: file.to_string(), name: r.to_string() });
            }
        }
        Ok(Template { file: file.to_string(), parts })
    }

    /// The file this template came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Fills the placeholders from `vars` (a placeholder without a value
    /// renders empty; loading already checked the names).
    pub fn render(&self, vars: &BTreeMap<&str, &str>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => out.push_str(vars.get(v.as_str()).copied().unwrap_or("")),
            }
        }
        out
    }
}
