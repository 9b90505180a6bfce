//! The errors of reading a GGUF file.

use std::path::PathBuf;

/// Errors from reading a GGUF file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The header or metadata is malformed or ends early.
    #[error("{path}: corrupt or truncated GGUF header at byte {offset}: {what}")]
    Header {
        /// The file.
        path: PathBuf,
        /// Byte offset where reading failed.
        offset: usize,
        /// What was being read.
        what: String,
    },
    /// A metadata key is missing or has the wrong type.
    #[error("{path}: metadata key {key}: {what}")]
    Meta {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// A tensor's data is missing, out of bounds or of an unsupported type.
    #[error("{path}: tensor {tensor}: {what}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's GGUF name.
        tensor: String,
        /// What is wrong.
        what: String,
    },
}
