//! [`ProfileStatistics`]: a reasoning generator without a language model,
//! for machines where the only generator is too small to summarize a user.
//!
//! REST-PG §3 step 2 has an LLM (the paper: Gemma 7B) read the request, the
//! expected output y and the profile, and write bullet points on the user's
//! preferences, interests, background and style that lead to y. At 135M
//! parameters our generator writes no such summary (it restates or loops),
//! so SFT on its output teaches the policy noise. This generator writes the
//! same kind of summary from counts over the same inputs, deterministically:
//!
//! - **Interests**: the most frequent content words (at least 4 letters, not
//!   stop words) of the retrieved profile items that y also uses; when fewer
//!   than two are shared, the most frequent of the items alone.
//! - **Background**: the title (subject, summary, title) of the most
//!   relevant retrieved item, when it has one.
//! - **Style**: from all the user's profile texts: mean sentence length in
//!   words, contractions per 100 words (≥ 1 reads as informal), first-person
//!   pronouns per 100 words (≥ 2 reads as personal).
//! - **Length**: y's length in words, rounded to tens.
//!
//! The text depends only on the example and its retrieval (no seed), so a
//! resumed run regenerates it exactly; it is logged as a
//! `ReasoningGenerated` record by generator name `profile-statistics`.

use std::collections::BTreeMap;
use std::sync::Arc;

use actors::capability::{CapabilityError, CheckpointRef, Generate, PromptKind, SampleOutput, SampleRequest};

use crate::data::Example;
use crate::pipeline::RunContext;

/// The generator name logged in `ReasoningGenerated`.
pub const PROFILE_STATISTICS: &str = "profile-statistics";

const STOP_WORDS: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "also",
    "been",
    "before",
    "being",
    "both",
    "could",
    "does",
    "doing",
    "down",
    "each",
    "even",
    "from",
    "further",
    "have",
    "having",
    "here",
    "into",
    "just",
    "like",
    "make",
    "many",
    "more",
    "most",
    "much",
    "must",
    "only",
    "other",
    "over",
    "same",
    "should",
    "some",
    "such",
    "than",
    "that",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "under",
    "until",
    "very",
    "want",
    "well",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "will",
    "with",
    "would",
    "your",
    "yours",
    "because",
    "email",
    "wrote",
    "thanks",
    "people",
    "thing",
    "things",
    "really",
    "think",
    "know",
    "going",
    "still",
    "using",
    "used",
    "need",
    "something",
];

/// The reasoning generator of `[model] reasoning_generator_kind =
/// "profile-statistics"` (see the module docs).
pub struct ProfileStatistics {
    ctx: Arc<RunContext>,
}

impl ProfileStatistics {
    /// A generator over the run's examples and retrieval.
    pub fn new(ctx: Arc<RunContext>) -> Self {
        Self { ctx }
    }
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'').filter(|w| !w.is_empty()).map(str::to_lowercase)
}

fn content_words(text: &str) -> impl Iterator<Item = String> + '_ {
    words(text)
        .filter(|w| w.chars().count() >= 4 && w.chars().all(char::is_alphabetic) && !STOP_WORDS.contains(&w.as_str()))
}

/// The main text and the title of a profile item for its task: the last of
/// the task's profile fields is the text, the first other one the title.
fn item_text<'a>(ex: &Example, item: &'a crate::data::ProfileItem) -> (&'a str, Option<&'a str>) {
    let fields = ex.task.profile_fields();
    let text = fields.last().map_or("", |f| item.field(f));
    let title = fields[..fields.len().saturating_sub(1)]
        .iter()
        .filter(|f| **f != "overall")
        .map(|f| item.field(f).trim())
        .find(|t| !t.is_empty());
    (text, title)
}

/// The summary of one example with its ranked retrieved items (profile
/// indices, best first).
pub fn summarize(ex: &Example, ranked: &[(usize, f32)]) -> String {
    let items = crate::retrieve::retrieved_items(ex, ranked);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for item in &items {
        for w in content_words(item_text(ex, item).0) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let in_y: std::collections::BTreeSet<String> = content_words(&ex.output).collect();
    let mut ranked_words: Vec<(&String, &usize)> = counts.iter().collect();
    ranked_words.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let shared: Vec<&str> =
        ranked_words.iter().filter(|(w, _)| in_y.contains(*w)).map(|(w, _)| w.as_str()).take(4).collect();
    let interests: Vec<&str> =
        if shared.len() >= 2 { shared } else { ranked_words.iter().map(|(w, _)| w.as_str()).take(4).collect() };
    let mut lines = Vec::new();
    if !interests.is_empty() {
        lines.push(format!("- Interests: writes about {}.", interests.join(", ")));
    }
    if let Some(title) = items.first().and_then(|i| item_text(ex, i).1) {
        let short: String = title.split_whitespace().take(12).collect::<Vec<_>>().join(" ");
        lines.push(format!("- Background: has written before on \"{short}\"."));
    }
    // Style over every profile text of the user.
    let (mut n_words, mut sentences, mut contractions, mut first_person) = (0usize, 0usize, 0usize, 0usize);
    for item in &ex.profile {
        let text = item_text(ex, item).0;
        sentences += text.matches(['.', '!', '?']).count().max(1);
        for w in words(text) {
            n_words += 1;
            contractions += usize::from(w.contains('\'') && w.len() > 2);
            first_person +=
                usize::from(matches!(w.as_str(), "i" | "i'm" | "i've" | "i'd" | "i'll" | "my" | "me" | "we" | "our"));
        }
    }
    if n_words > 0 {
        let per100 = |c: usize| 100.0 * c as f64 / n_words as f64;
        let tone =
            if per100(contractions) >= 1.0 { "informal, with contractions" } else { "formal, without contractions" };
        let person = if per100(first_person) >= 2.0 { ", often in the first person" } else { "" };
        let sentence = (n_words as f64 / sentences.max(1) as f64).round();
        lines.push(format!("- Style: {tone}{person}; sentences of about {sentence} words."));
    }
    let y_words = ex.output.split_whitespace().count();
    let rounded = ((y_words as f64 / 10.0).round() as usize * 10).max(10);
    lines.push(format!("- Length: about {rounded} words."));
    lines.join("\n")
}

impl Generate for ProfileStatistics {
    fn load(&mut self, _checkpoint: &CheckpointRef) -> Result<(), CapabilityError> {
        Ok(())
    }

    fn generate(&mut self, requests: &[SampleRequest]) -> Result<Vec<SampleOutput>, CapabilityError> {
        let k = self.ctx.config.retrieval.k;
        requests
            .iter()
            .map(|req| {
                if req.prompt != PromptKind::ReasoningGeneration {
                    return Err(CapabilityError::fatal(format!(
                        "the profile-statistics generator writes reasoning data only, not {} prompts",
                        req.prompt.as_str()
                    )));
                }
                let id = &req.sample.input_id;
                let ex = self.ctx.example(id)?;
                let ranked = self.ctx.retrievals.get(id).map(Vec::as_slice).unwrap_or(&[]);
                let ranked = &ranked[..ranked.len().min(k)];
                let text = summarize(ex, ranked);
                Ok(SampleOutput {
                    sample: req.sample.clone(),
                    prompt_digest: events::prompt_digest(&format!("{PROFILE_STATISTICS}:{id}")),
                    reasoning: Some(text.clone()),
                    response: text.clone(),
                    output_tokens: text.split_whitespace().count() as u32,
                    raw: text,
                    prompt_tokens: 0,
                    finish: events::FinishReason::StopToken,
                    precision: events::Precision::F32,
                    // Not a model: a deterministic rule that runs in
                    // process, as tch does, so it is logged as the embedded
                    // engine (deterministic, no server).
                    engine: events::EngineInfo::tch(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ProfileItem, Task};

    fn item(id: &str, subject: &str, text: &str) -> ProfileItem {
        ProfileItem {
            id: id.into(),
            fields: [("subject".to_string(), subject.to_string()), ("text".to_string(), text.to_string())].into(),
        }
    }

    #[test]
    fn the_summary_names_shared_interests_the_top_title_style_and_length() {
        let ex = Example {
            id: "e".into(),
            task: Task::EmailCompletion,
            user_id: "u".into(),
            input: "Finish this e-mail".into(),
            output: "The spamassassin rules for razor need updating. Razor servers were down. I'm on it.".into(),
            profile: vec![
                item(
                    "a",
                    "Razor outage",
                    "I'm seeing razor timeouts. The razor servers don't answer. Spamassassin waits.",
                ),
                item("b", "Lunch", "Anyone for pizza? I'll bring drinks."),
            ],
        };
        let s = summarize(&ex, &[(0, 2.0), (1, 1.0)]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "- Interests: writes about razor, servers, spamassassin.", "{s}");
        assert_eq!(lines[1], "- Background: has written before on \"Razor outage\".");
        assert!(lines[2].starts_with("- Style: informal, with contractions, often in the first person;"), "{s}");
        assert_eq!(lines[3], "- Length: about 10 words.");
        // deterministic
        assert_eq!(s, summarize(&ex, &[(0, 2.0), (1, 1.0)]));
    }
}
