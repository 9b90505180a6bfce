//! The template set of REST-PG: the four prompts and the per-task profile
//! item templates, built in or read from a directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::budget::{fit_profile, Fitted};
use super::template::{Template, TemplateError};
use super::RESPONSE_SEPARATOR;
use crate::data::{Example, ProfileItem, Task};

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

/// Which prompt a profile is fitted into: the shared vocabulary's kind
/// (prompt 1 plain, prompt 2's input side for reasoning, prompt 3 the
/// reasoning generator's, which also shows the expected output, never
/// trimmed).
pub use events::PromptKind;

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
            PromptKind::Reasoning => self.reasoning_input(ex, items),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_parse() {
        let t = Templates::builtin();
        assert_eq!(t.origin(), "builtin");
    }
}
