//! Errors of loading and validating data, and where in a file they are.

use std::fmt;
use std::path::PathBuf;

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
