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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::data::{Example, ProfileItem, Task};

/// The separator line between reasoning and response in prompt 2's target.
/// Chosen to be a line no e-mail, essay, review or abstract normally holds.
pub const RESPONSE_SEPARATOR: &str = "### Response:";

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

/// File names and embedded defaults.
const PLAIN: (&str, &str) = ("plain.txt", include_str!("../../prompts/plain.txt"));
const REASONING_INPUT: (&str, &str) = ("reasoning_input.txt", include_str!("../../prompts/reasoning_input.txt"));
const REASONING_GENERATION: (&str, &str) =
    ("reasoning_generation.txt", include_str!("../../prompts/reasoning_generation.txt"));
const JUDGE: (&str, &str) = ("judge.txt", include_str!("../../prompts/judge.txt"));
const PROFILE: [(Task, &str, &str); 4] = [
    (Task::EmailCompletion, "profile-email-completion.txt", include_str!("../../prompts/profile-email-completion.txt")),
    (
        Task::AbstractGeneration,
        "profile-abstract-generation.txt",
        include_str!("../../prompts/profile-abstract-generation.txt"),
    ),
    (Task::ReviewWriting, "profile-review-writing.txt", include_str!("../../prompts/profile-review-writing.txt")),
    (Task::TopicWriting, "profile-topic-writing.txt", include_str!("../../prompts/profile-topic-writing.txt")),
];

/// Text shown in place of the profile when no item is retrieved or fits.
pub const EMPTY_PROFILE: &str = "(no earlier texts)";

/// The prompt templates (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Templates {
    plain: Template,
    reasoning_input: Template,
    reasoning_generation: Template,
    judge: Template,
    profile: BTreeMap<Task, Template>,
    origin: String,
}

/// Which prompt a profile is fitted into.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PromptKind {
    /// Prompt 1.
    Plain,
    /// Prompt 2, input side.
    ReasoningInput,
    /// Prompt 3 (also shows the expected output, which is never trimmed).
    ReasoningGeneration,
}

/// Reads one template `(file name, built-in text)` as `(text, origin)`.
type TemplateSource<'a> = dyn Fn(&str, &str) -> Result<(String, String), TemplateError> + 'a;

impl Templates {
    fn from_sources(get: &TemplateSource<'_>, origin: String) -> Result<Self, TemplateError> {
        let t =
            |(name, default): (&str, &str), allowed: &[&str], required: &[&str]| -> Result<Template, TemplateError> {
                let (file, text) = get(name, default)?;
                Template::parse(&file, &text, allowed, required)
            };
        let plain = t(PLAIN, &["input", "profile"], &["input", "profile"])?;
        let reasoning_input =
            t(REASONING_INPUT, &["input", "profile", "separator"], &["input", "profile", "separator"])?;
        let reasoning_generation =
            t(REASONING_GENERATION, &["input", "profile", "expected"], &["input", "profile", "expected"])?;
        let judge = t(JUDGE, &["input", "expected", "generated"], &["input", "expected", "generated"])?;
        let mut profile = BTreeMap::new();
        for (task, name, default) in PROFILE {
            let mut allowed: Vec<&str> = task.profile_fields().to_vec();
            allowed.push("index");
            profile.insert(task, t((name, default), &allowed, task.profile_fields())?);
        }
        Ok(Templates { plain, reasoning_input, reasoning_generation, judge, profile, origin })
    }

    /// The templates embedded in the binary (the files under `prompts/` at
    /// build time).
    pub fn builtin() -> Self {
        // The embedded files are checked by a unit test; failing here would
        // mean the binary was built from invalid templates.
        Self::from_sources(&|name, default| Ok((format!("<builtin>/{name}"), default.to_string())), "builtin".into())
            .unwrap_or_else(|e| panic!("embedded prompt templates are invalid: {e}"))
    }

    /// Reads the templates from `dir` (`plain.txt`, `reasoning_input.txt`,
    /// `reasoning_generation.txt`, `judge.txt`, `profile-<task>.txt`). Every
    /// file must be present: a partial directory is an error rather than a
    /// silent mix of edited and built-in prompts.
    ///
    /// # Errors
    /// [`TemplateError`] naming the file (missing file, unknown or missing
    /// placeholder, bad braces).
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let get = |name: &str, _default: &str| -> Result<(String, String), TemplateError> {
            let path: PathBuf = dir.join(name);
            let file = path.display().to_string();
            let text =
                std::fs::read_to_string(&path).map_err(|source| TemplateError::Io { file: file.clone(), source })?;
            Ok((file, text))
        };
        Self::from_sources(&get, dir.display().to_string())
    }

    /// Writes the built-in templates into `dir` (to start editing them).
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write_builtin(dir: &Path) -> anyhow::Result<()> {
        use anyhow::Context as _;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut files: Vec<(&str, &str)> = vec![PLAIN, REASONING_INPUT, REASONING_GENERATION, JUDGE];
        files.extend(PROFILE.iter().map(|(_, n, d)| (*n, *d)));
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Where the templates came from (`builtin` or the directory).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Renders retrieved profile items in rank order with the task's item
    /// template, separated by blank lines; [`EMPTY_PROFILE`] when none.
    pub fn render_profile(&self, task: Task, items: &[&ProfileItem]) -> String {
        if items.is_empty() {
            return EMPTY_PROFILE.to_string();
        }
        let Some(t) = self.profile.get(&task) else {
            return EMPTY_PROFILE.to_string();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let index = (i + 1).to_string();
            let mut vars: BTreeMap<&str, &str> = item.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            vars.insert("index", &index);
            out.push(t.render(&vars));
        }
        out.join("\n\n")
    }

    /// Prompt 1: the retrieval-augmented prompt for SFT and ReST-EM.
    pub fn plain(&self, ex: &Example, retrieved: &[&ProfileItem]) -> String {
        let profile = self.render_profile(ex.task, retrieved);
        self.plain.render(&BTreeMap::from([("input", ex.input.as_str()), ("profile", profile.as_str())]))
    }

    /// Prompt 2, input side: the model is asked for reasoning, the
    /// separator line, then the response.
    pub fn reasoning_input(&self, ex: &Example, retrieved: &[&ProfileItem]) -> String {
        let profile = self.render_profile(ex.task, retrieved);
        self.reasoning_input.render(&BTreeMap::from([
            ("input", ex.input.as_str()),
            ("profile", profile.as_str()),
            ("separator", RESPONSE_SEPARATOR),
        ]))
    }

    /// Prompt 2, target side: `reasoning ⊕ "\n\n" ⊕ separator ⊕ "\n" ⊕
    /// response` (both parts trimmed). [`parse_output`] inverts it.
    pub fn reasoning_target(&self, reasoning: &str, response: &str) -> String {
        format!("{}\n\n{RESPONSE_SEPARATOR}\n{}", reasoning.trim(), response.trim())
    }

    /// Prompt 3: for the reasoning generator, with `x`, `y` and the
    /// retrieved profile.
    pub fn reasoning_generation(&self, ex: &Example, retrieved: &[&ProfileItem]) -> String {
        let profile = self.render_profile(ex.task, retrieved);
        self.reasoning_generation.render(&BTreeMap::from([
            ("input", ex.input.as_str()),
            ("profile", profile.as_str()),
            ("expected", ex.output.as_str()),
        ]))
    }

    /// Prompt 4: the judge prompt; the expected answer is one integer 0..=10.
    pub fn judge(&self, ex_input: &str, expected: &str, generated: &str) -> String {
        self.judge.render(&BTreeMap::from([("input", ex_input), ("expected", expected), ("generated", generated)]))
    }

    /// Renders prompt `kind` for `ex` with as many of `retrieved` (rank
    /// order) as fit in `max_tokens` by `count_tokens` (see [`fit_profile`]).
    pub fn fit(
        &self,
        kind: PromptKind,
        ex: &Example,
        retrieved: &[&ProfileItem],
        max_tokens: usize,
        count_tokens: &dyn Fn(&str) -> usize,
    ) -> Fitted {
        let render = |items: &[&ProfileItem]| match kind {
            PromptKind::Plain => self.plain(ex, items),
            PromptKind::ReasoningInput => self.reasoning_input(ex, items),
            PromptKind::ReasoningGeneration => self.reasoning_generation(ex, items),
        };
        fit_profile(ex.task, retrieved, max_tokens, count_tokens, &render)
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::builtin()
    }
}

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

/// A prompt fitted to a token budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fitted {
    /// The rendered prompt.
    pub prompt: String,
    /// The profile items shown, in rank order (the last possibly trimmed).
    pub items: Vec<ProfileItem>,
    /// Retrieved items left out entirely.
    pub dropped: usize,
    /// Whether the last shown item was trimmed.
    pub trimmed: bool,
    /// Tokens of `prompt` by the counter used.
    pub tokens: usize,
    /// The prompt without any profile item already exceeds the budget; it is
    /// returned whole (the request is never cut).
    pub over_budget: bool,
}

impl fmt::Display for Fitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prompt)
    }
}

/// Fewest words of a trimmed item's long field worth showing; below this the
/// item is dropped instead.
pub const MIN_TRIMMED_WORDS: usize = 8;

/// Fits retrieved profile items into `max_tokens` (see the module docs):
/// items are added in rank order while the whole prompt fits; the first that
/// does not fit has its long field ([`Task::long_field`]) cut to the most
/// words that fit (binary search; at least [`MIN_TRIMMED_WORDS`], else it is
/// dropped), and all lower-ranked items are dropped. `render` builds the
/// prompt around a list of items; `count_tokens` measures it.
pub fn fit_profile(
    task: Task,
    retrieved: &[&ProfileItem],
    max_tokens: usize,
    count_tokens: &dyn Fn(&str) -> usize,
    render: &dyn Fn(&[&ProfileItem]) -> String,
) -> Fitted {
    let full = render(retrieved);
    let n_full = count_tokens(&full);
    if n_full <= max_tokens {
        return Fitted {
            prompt: full,
            items: retrieved.iter().map(|p| (*p).clone()).collect(),
            dropped: 0,
            trimmed: false,
            tokens: n_full,
            over_budget: false,
        };
    }
    let base = render(&[]);
    let n_base = count_tokens(&base);
    if n_base > max_tokens {
        return Fitted {
            prompt: base,
            items: Vec::new(),
            dropped: retrieved.len(),
            trimmed: false,
            tokens: n_base,
            over_budget: true,
        };
    }
    let mut kept: Vec<ProfileItem> = Vec::new();
    let mut trimmed = false;
    let fits = |items: &[ProfileItem]| -> Option<(String, usize)> {
        let refs: Vec<&ProfileItem> = items.iter().collect();
        let p = render(&refs);
        let n = count_tokens(&p);
        (n <= max_tokens).then_some((p, n))
    };
    let mut best = (base, n_base);
    for item in retrieved {
        kept.push((*item).clone());
        if let Some(ok) = fits(&kept) {
            best = ok;
            continue;
        }
        kept.pop();
        // Trim the long field to the most words that fit.
        let field = task.long_field();
        let words: Vec<&str> = item.field(field).split_whitespace().collect();
        let (mut lo, mut hi) = (0usize, words.len());
        let mut found: Option<(ProfileItem, String, usize)> = None;
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let mut cut = (*item).clone();
            cut.fields.insert(field.to_string(), format!("{} …", words[..mid].join(" ")));
            kept.push(cut.clone());
            let r = fits(&kept);
            kept.pop();
            match r {
                Some((p, n)) => {
                    found = Some((cut, p, n));
                    lo = mid;
                }
                None => hi = mid - 1,
            }
        }
        if let Some((cut, p, n)) = found.filter(|_| lo >= MIN_TRIMMED_WORDS) {
            kept.push(cut);
            best = (p, n);
            trimmed = true;
        }
        break;
    }
    let dropped = retrieved.len() - kept.len();
    Fitted { prompt: best.0, items: kept, dropped, trimmed, tokens: best.1, over_budget: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_parse() {
        let t = Templates::builtin();
        assert_eq!(t.origin(), "builtin");
    }
}
