//! Building a LongLaMP-format, user-based data set from author-attributed
//! documents (`restpg data build`).
//!
//! Per user (author) one *target* document becomes the example's expected
//! output and the user's other documents its profile, as in LongLaMP's user
//! setting (Kumar et al. 2024, §3: the user-based split holds out whole users).
//! The target is the user's latest document by `time` (input order breaks
//! ties and stands in when no time is given). Users are split into
//! train/val/test by ranking them on a seeded blake3 hash of their id, so the
//! split is deterministic, disjoint by construction and does not depend on
//! the order of the corpus file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Dataset, Example, ProfileItem, Split, Task};

/// One author-attributed document, one JSON object per line of a corpus
/// file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorDoc {
    /// The author (user) id.
    pub author: String,
    /// Optional time; RFC 3339 is compared as time, anything else as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Optional title (essays, papers, posts, products reviewed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Optional subject (e-mails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Optional rating (reviews; required for review writing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<String>,
    /// Optional product description (reviews; the title stands in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The document's text.
    pub text: String,
}

/// Reads a JSON Lines corpus of [`AuthorDoc`]s, strictly: every non-blank
/// line must be a JSON object with `author` and a non-blank `text`.
///
/// # Errors
/// Names the file, the line and the field (missing, unknown or empty).
pub fn read_docs(path: &Path) -> anyhow::Result<Vec<AuthorDoc>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = super::longlamp::utf8_or_error(path, &bytes, true)?;
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let doc: AuthorDoc =
            serde_json::from_str(line).with_context(|| format!("{}: line {}", path.display(), i + 1))?;
        if doc.author.trim().is_empty() {
            anyhow::bail!("{}: line {}: field `author` is empty", path.display(), i + 1);
        }
        if doc.text.trim().is_empty() {
            anyhow::bail!("{}: line {}: field `text` is empty", path.display(), i + 1);
        }
        docs.push(doc);
    }
    Ok(docs)
}

/// Options of [`build_from_docs`].
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Seed of the user split (and of the user sample when `max_users` is
    /// set).
    pub seed: u64,
    /// Fraction of users in the validation split.
    pub val_frac: f64,
    /// Fraction of users in the test split.
    pub test_frac: f64,
    /// Users with fewer documents are left out (one target + at least
    /// `min_docs - 1` profile items). At least 2.
    pub min_docs: usize,
    /// Keep at most this many users (chosen by the seeded hash order).
    pub max_users: Option<usize>,
    /// After the split, keep at most this many *training* users (chosen by
    /// another seeded hash order); validation and test keep all theirs. A
    /// small machine can then self-train on a few users and still evaluate
    /// on many.
    pub max_train_users: Option<usize>,
    /// Targets and profile texts are cut to at most this many words (at a
    /// sentence end when one lies in the last third), to keep sequences sane
    /// for a 135M model on CPU.
    pub max_words: usize,
    /// Keep at most this many profile items per user (the most recent).
    pub max_profile: usize,
    /// Email completion: the opening given in the input is at most this many
    /// words (and at most a third of the e-mail).
    pub opening_words: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            seed: 0,
            val_frac: 0.15,
            test_frac: 0.15,
            min_docs: 3,
            max_users: None,
            max_train_users: None,
            max_words: 300,
            max_profile: 32,
            opening_words: 30,
        }
    }
}

/// Assigns users to splits: users are ordered by blake3(seed ‖ user id);
/// the first `round(n·test_frac)` go to test, the next `round(n·val_frac)`
/// to val, the rest to train. With at least 3 users and a non-zero fraction,
/// val and test get at least one user each.
pub fn split_users(users: &[String], seed: u64, val_frac: f64, test_frac: f64) -> BTreeMap<String, Split> {
    let mut ranked: Vec<(blake3::Hash, &String)> = users.iter().map(|u| (user_rank(u, seed), u)).collect();
    ranked.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(b.1)));
    let n = ranked.len();
    let count = |frac: f64| -> usize {
        let c = (n as f64 * frac).round() as usize;
        if c == 0 && frac > 0.0 && n >= 3 {
            1
        } else {
            c
        }
    };
    let n_test = count(test_frac).min(n);
    let n_val = count(val_frac).min(n - n_test);
    ranked
        .into_iter()
        .enumerate()
        .map(|(i, (_, u))| {
            let s = if i < n_test {
                Split::Test
            } else if i < n_test + n_val {
                Split::Validation
            } else {
                Split::Train
            };
            (u.clone(), s)
        })
        .collect()
}

/// The split of one user among `users` (see [`split_users`]).
pub fn split_for_user(user: &str, users: &[String], seed: u64, val_frac: f64, test_frac: f64) -> Option<Split> {
    split_users(users, seed, val_frac, test_frac).get(user).copied()
}

fn user_rank(user: &str, seed: u64) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"restpg-user-split");
    h.update(&seed.to_le_bytes());
    h.update(user.as_bytes());
    h.finalize()
}

/// Builds a user-based data set of `task` from `docs` (see the module docs).
///
/// # Errors
/// Invalid options; a review-writing document without `rating`; no user with
/// enough documents.
pub fn build_from_docs(docs: &[AuthorDoc], task: Task, opts: &BuildOptions) -> anyhow::Result<Dataset> {
    anyhow::ensure!(opts.min_docs >= 2, "min_docs must be at least 2 (one target, one profile item)");
    anyhow::ensure!(
        opts.val_frac >= 0.0 && opts.test_frac >= 0.0 && opts.val_frac + opts.test_frac < 1.0,
        "val_frac and test_frac must be non-negative and sum to less than 1"
    );
    anyhow::ensure!(opts.max_words >= 20, "max_words must be at least 20");
    let mut by_user: BTreeMap<&str, Vec<(usize, &AuthorDoc)>> = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        by_user.entry(d.author.as_str()).or_default().push((i, d));
    }
    let mut users: Vec<String> =
        by_user.iter().filter(|(_, v)| v.len() >= opts.min_docs).map(|(u, _)| u.to_string()).collect();
    anyhow::ensure!(
        !users.is_empty(),
        "no author has at least {} documents ({} authors, {} documents)",
        opts.min_docs,
        by_user.len(),
        docs.len()
    );
    if let Some(max) = opts.max_users {
        users.sort_by_key(|u| *user_rank(u, opts.seed ^ 0x5eed).as_bytes());
        users.truncate(max);
        users.sort();
    }
    let mut splits = split_users(&users, opts.seed, opts.val_frac, opts.test_frac);
    if let Some(max) = opts.max_train_users {
        let mut train: Vec<String> =
            splits.iter().filter(|(_, s)| **s == Split::Train).map(|(u, _)| u.clone()).collect();
        train.sort_by_key(|u| *user_rank(u, opts.seed ^ 0x7ea1_7a1e).as_bytes());
        for dropped in train.iter().skip(max) {
            splits.remove(dropped);
        }
        users.retain(|u| splits.contains_key(u));
    }
    let mut examples: BTreeMap<Split, Vec<Example>> = BTreeMap::new();
    for user in &users {
        let mut user_docs = by_user.get(user.as_str()).cloned().unwrap_or_default();
        user_docs.sort_by(|a, b| time_key(a.1).cmp(&time_key(b.1)).then(a.0.cmp(&b.0)));
        let (_, target) = *user_docs.last().context("user without documents")?;
        let profile_docs = &user_docs[..user_docs.len() - 1];
        let skip = profile_docs.len().saturating_sub(opts.max_profile);
        let mut profile = Vec::new();
        for (j, (_, d)) in profile_docs.iter().enumerate().skip(skip) {
            profile.push(ProfileItem { id: format!("{user}-d{j}"), fields: profile_fields(task, d, opts)? });
        }
        let (input, output) = make_input_output(task, target, opts)?;
        let split = splits.get(user).copied().unwrap_or(Split::Train);
        examples.entry(split).or_default().push(Example {
            id: format!("{task}-{user}"),
            task,
            user_id: user.clone(),
            input,
            output,
            profile,
        });
    }
    let description = format!("{task} built from {} author documents (seed {})", docs.len(), opts.seed);
    let ds = Dataset::from_splits(description, examples)?;
    ds.check_user_disjoint()?;
    Ok(ds)
}

/// Sort key: RFC 3339 times as instants (first), other times as text, no
/// time last-but-stable (input order decides).
fn time_key(d: &AuthorDoc) -> (u8, i64, String) {
    match &d.time {
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(dt) => (1, dt.timestamp(), String::new()),
            Err(_) => (1, 0, t.clone()),
        },
        None => (0, 0, String::new()),
    }
}

/// Cuts `text` to at most `max` whitespace-separated words, keeping the
/// original spacing and line breaks, and ending at a sentence end when one
/// lies in the last third of the kept text.
pub fn cut_words(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut count = 0;
    let mut end = text.len();
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                count += 1;
                in_word = false;
                if count == max {
                    end = i;
                    break;
                }
            }
        } else {
            in_word = true;
        }
    }
    if end == text.len() {
        return text.to_string();
    }
    let kept = &text[..end];
    let sentence_end = kept.rfind(['.', '!', '?']).map(|i| i + 1);
    match sentence_end {
        Some(i) if i * 3 >= kept.len() * 2 => kept[..i].to_string(),
        _ => kept.to_string(),
    }
}

/// The first sentence of `text` (up to `.`, `!` or `?` followed by
/// whitespace), at most `max` words, and the rest of the text.
pub fn first_sentence(text: &str, max: usize) -> (String, String) {
    let text = text.trim();
    let mut cut = text.len();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|(_, n)| n.is_whitespace()) {
            cut = i + c.len_utf8();
            break;
        }
    }
    let first = &text[..cut];
    let words: Vec<&str> = first.split_whitespace().collect();
    if words.len() > max {
        // Too long to be a summary line: take the first `max` words as the
        // gist and keep the whole text as the rest.
        return (words[..max].join(" "), text.to_string());
    }
    (words.join(" "), text[cut..].trim().to_string())
}

/// A short heading for a document: its title or subject, else its first
/// sentence (at most 25 words).
fn heading(d: &AuthorDoc) -> String {
    d.title
        .as_deref()
        .or(d.subject.as_deref())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| first_sentence(&d.text, 25).0)
}

fn profile_fields(task: Task, d: &AuthorDoc, opts: &BuildOptions) -> anyhow::Result<BTreeMap<String, String>> {
    let text = cut_words(&d.text, opts.max_words);
    let mut f = BTreeMap::new();
    match task {
        Task::EmailCompletion => {
            f.insert("subject".into(), d.subject.clone().or_else(|| d.title.clone()).unwrap_or_default());
            f.insert("text".into(), text);
        }
        Task::AbstractGeneration => {
            f.insert("title".into(), heading(d));
            f.insert("abstract".into(), text);
        }
        Task::ReviewWriting => {
            let rating = d.rating.clone().with_context(|| format!("author {:?}: review without `rating`", d.author))?;
            f.insert("overall".into(), rating);
            f.insert("summary".into(), heading(d));
            f.insert("description".into(), d.product.clone().or_else(|| d.title.clone()).unwrap_or_default());
            f.insert("reviewText".into(), text);
        }
        Task::TopicWriting => {
            let (summary, content) = topic_summary_content(d, opts);
            f.insert("summary".into(), summary);
            f.insert("content".into(), content);
        }
    }
    Ok(f)
}

/// Topic writing: the title is the summary when there is one; otherwise the
/// first sentence is, and it is removed from the content so that the input
/// does not contain the start of the output verbatim.
fn topic_summary_content(d: &AuthorDoc, opts: &BuildOptions) -> (String, String) {
    match d.title.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => (t.to_string(), cut_words(&d.text, opts.max_words)),
        None => {
            let (first, rest) = first_sentence(&d.text, 25);
            (first, cut_words(&rest, opts.max_words))
        }
    }
}

/// The most frequent content words of `text` (≥ 4 letters, not in a short
/// stop list), ties broken alphabetically: the "keywords" of a built
/// abstract-generation input.
fn keywords(text: &str, n: usize) -> Vec<String> {
    const STOP: &[&str] = &[
        "that", "this", "with", "from", "have", "were", "which", "their", "there", "these", "they", "been", "also",
        "into", "than", "then", "them", "such", "when", "where", "what", "will", "would", "could", "should", "about",
        "more", "most", "some", "only", "other", "over", "very", "your", "just", "like",
    ];
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        let w = w.to_lowercase();
        if w.chars().count() >= 4 && w.chars().all(char::is_alphabetic) && !STOP.contains(&w.as_str()) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().take(n).map(|(w, _)| w).collect()
}

/// The task's input `x` and expected output `y` built from a target document,
/// worded like LongLaMP's inputs so that [`crate::retrieve::query_text`]
/// extracts the same query from both.
fn make_input_output(task: Task, d: &AuthorDoc, opts: &BuildOptions) -> anyhow::Result<(String, String)> {
    Ok(match task {
        Task::EmailCompletion => {
            let text = cut_words(&d.text, opts.max_words + opts.opening_words);
            let n_words = text.split_whitespace().count();
            let open_n = opts.opening_words.min(n_words / 3).max(1);
            let opening = cut_words_exact(&text, open_n);
            let rest = text[opening.len()..].trim().to_string();
            let subject = d.subject.clone().or_else(|| d.title.clone()).unwrap_or_default();
            let input = format!(
                "Complete the email. Subject: \"{}\". The email begins: \"{}\"",
                subject.trim(),
                opening.trim()
            );
            (input, rest)
        }
        Task::AbstractGeneration => {
            let text = cut_words(&d.text, opts.max_words);
            let title = heading(d);
            let items: Vec<String> =
                keywords(&text, 5).iter().enumerate().map(|(i, k)| format!("{}. {k}", i + 1)).collect();
            (
                format!(
                    "Generate an abstract for the title \"{title}\" using the following items: {}",
                    items.join(" ")
                ),
                text,
            )
        }
        Task::ReviewWriting => {
            let rating = d.rating.clone().with_context(|| format!("author {:?}: review without `rating`", d.author))?;
            let product = d.product.clone().or_else(|| d.title.clone()).unwrap_or_default();
            let summary = heading(d);
            (
                format!(
                    "Generate the review text written by a reviewer who has given an overall rating of \"{rating}\" for a product with description \"{product}\". The summary of the review text is \"{summary}\"."
                ),
                cut_words(&d.text, opts.max_words),
            )
        }
        Task::TopicWriting => {
            let (summary, content) = topic_summary_content(d, opts);
            (format!("Write the full post for the following summary: \"{summary}\""), content)
        }
    })
}

/// The prefix of `text` holding exactly its first `n` words (original
/// spacing kept).
fn cut_words_exact(text: &str, n: usize) -> &str {
    let mut count = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                count += 1;
                in_word = false;
                if count == n {
                    return &text[..i];
                }
            }
        } else {
            in_word = true;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_words_keeps_short_text_and_cuts_long() {
        assert_eq!(cut_words("a b c", 5), "a b c");
        assert_eq!(cut_words("one two three four", 2), "one two");
        assert_eq!(cut_words("One two. Three four five six", 3), "One two. Three");
        assert_eq!(cut_words("One two three. Four", 3), "One two three.");
    }

    #[test]
    fn first_sentence_splits() {
        let (a, b) = first_sentence("Hello there. General Kenobi!", 10);
        assert_eq!(a, "Hello there.");
        assert_eq!(b, "General Kenobi!");
    }
}
