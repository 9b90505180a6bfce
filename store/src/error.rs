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
    #[error(
        "cannot append to run {run_id:?}: its last record (seq {seq}) is invalid ({source}); run `restpg log verify`"
    )]
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
    /// sled cannot read the log's database: the file is damaged. The
    /// run directory was not changed (readers work on a private copy).
    #[error(
        "the event log in {} is damaged: {}{}: {detail}; {}; `restpg log salvage` copies the intact records into a new run directory",
        dir.display(),
        file.display(),
        offset.map_or(String::new(), |o| format!(" at offset {o}")),
        last_intact.map_or("no record could be read".to_owned(), |s| format!("the last intact record is seq {s}"))
    )]
    Corrupt {
        /// The log directory.
        dir: PathBuf,
        /// The damaged file (`log/db`).
        file: PathBuf,
        /// Where in it, as far as sled says.
        offset: Option<u64>,
        /// The last record that still reads, if any.
        last_intact: Option<u64>,
        /// What sled said.
        detail: String,
    },
    /// Records are missing at the end of the log: the writer's
    /// `log/flushed` says more were made durable than the database holds.
    #[error(
        "the event log in {} is cut off: {} says {written} records were written, the database holds {present}{}; {}`restpg log salvage` copies the intact records into a new run directory",
        dir.display(),
        flushed.display(),
        present.checked_sub(1).map_or(String::new(), |s| format!(" (the last intact record is seq {s})")),
        damage.as_ref().map_or(String::new(), |d| format!("{d}; "))
    )]
    Truncated {
        /// The log directory.
        dir: PathBuf,
        /// The `flushed` file.
        flushed: PathBuf,
        /// How many records it says were written.
        written: u64,
        /// How many the database holds.
        present: u64,
        /// What sled did to the database, when it said (file, offset).
        damage: Option<String>,
    },
    /// The `log/flushed` file does not parse.
    #[error("{}: {message}", path.display())]
    BadFlushed {
        /// The file.
        path: PathBuf,
        /// Which line or field is wrong, and how.
        message: String,
    },
    /// A key or value in the database has the wrong length for its kind.
    #[error("event log {}: tree {tree:?}: {what} is {len} bytes, expected {expected}{}", dir.display(), seq.map_or(String::new(), |s| format!(" (seq {s})")))]
    BadEntry {
        /// The log directory.
        dir: PathBuf,
        /// The sled tree.
        tree: &'static str,
        /// Which key or value (`record key`, `event-id index value`, …).
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length it must have.
        expected: usize,
        /// The sequence number involved, when known.
        seq: Option<u64>,
    },
    /// The process serving the log announced a frame larger than any a
    /// log server sends.
    #[error("reading the event log through {}: the serving process announced a {what} of {len} bytes, over the {cap}-byte limit: not a restpg log server, or a broken one", socket.display())]
    FrameTooLarge {
        /// The socket.
        socket: PathBuf,
        /// What the frame holds (`record`, `error message`).
        what: &'static str,
        /// The announced length.
        len: u64,
        /// The limit.
        cap: u64,
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
