//! The store's errors. Each names the directory, run, sequence number or
//! process it is about, so that a message on its own says what to do.

use std::io;
use std::path::{Path, PathBuf};

use events::RecordError;

use crate::lock::LockHolder;

/// Everything that can go wrong opening, appending to or reading a log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// sled failed.
    #[error("event log {}: {source}", dir.display())]
    Sled {
        /// The log directory.
        dir: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// There is no log where one was expected.
    #[error("no event log in {} (a run directory keeps it in log/, made by `EventLog::create`)", dir.display())]
    NoLog {
        /// The directory.
        dir: PathBuf,
    },
    /// `create` found a log already there.
    #[error("{} already holds the event log of run {run_id:?}: open it to resume", dir.display())]
    AlreadyExists {
        /// The log directory.
        dir: PathBuf,
        /// The run whose log it is.
        run_id: String,
    },
    /// The log belongs to another run than the caller expected.
    #[error("{} holds the event log of run {found:?}, not of run {expected:?}: wrong run directory?", dir.display())]
    OtherRun {
        /// The log directory.
        dir: PathBuf,
        /// The run the caller asked for.
        expected: String,
        /// The run the log belongs to.
        found: String,
    },
    /// A writer is refused because the log is already open.
    #[error("cannot open the event log in {} for writing: it is already open by {holder}; a run has one writer at a time", dir.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
        /// Who holds it.
        holder: LockHolder,
    },
    /// A reader could neither open the log nor reach the process holding it.
    #[error("cannot read the event log in {}: it is open by {holder} and that process does not answer on {}", dir.display(), socket.display())]
    Unreachable {
        /// The log directory.
        dir: PathBuf,
        /// Who holds it.
        holder: LockHolder,
        /// Where it should have answered.
        socket: PathBuf,
    },
    /// A run id that cannot name a run.
    #[error("invalid run id {0:?}: use 1 to 128 ASCII letters, digits, '.', '_' or '-'")]
    InvalidRunId(String),
    /// A stored record is invalid.
    #[error("record {seq}: {source}")]
    Record {
        /// Its sequence number (its key).
        seq: u64,
        /// Why.
        #[source]
        source: RecordError,
    },
    /// An index lists a record that is not in the log.
    #[error("an index lists record {seq}, which is not in the log; run `restpg log verify`")]
    MissingRecord {
        /// The listed sequence number.
        seq: u64,
    },
    /// The last record is invalid, so nothing can be chained after it.
    #[error("cannot append to run {run_id:?}: its last record (seq {seq}) is invalid ({source}); run `restpg log verify`")]
    CorruptTail {
        /// The run.
        run_id: String,
        /// The last record's sequence number.
        seq: u64,
        /// Why it is invalid.
        #[source]
        source: RecordError,
    },
    /// No checkpoint of that hash is stored.
    #[error("checkpoint {hash} is not in the blob store (expected at {})", path.display())]
    BlobMissing {
        /// The hash, in hex.
        hash: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// A stored checkpoint no longer hashes to its name.
    #[error("checkpoint {hash} at {} is corrupt: its content hashes to {computed} ({size} bytes): truncated or altered", path.display())]
    BlobCorrupt {
        /// The hash it is named by, in hex.
        hash: String,
        /// Where it lies.
        path: PathBuf,
        /// What its content hashes to now, in hex.
        computed: String,
        /// Its size in bytes (of the file, or of the directory entry).
        size: u64,
    },
    /// The process serving the log to other readers broke the protocol or
    /// went away.
    #[error("reading the event log through {}: {message}", socket.display())]
    Remote {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: io::Error) -> StoreError {
        StoreError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn sled(dir: &Path, source: sled::Error) -> StoreError {
        StoreError::Sled { dir: dir.to_path_buf(), source }
    }
}
