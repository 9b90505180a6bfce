//! # restpg-store: the run log on disk, and checkpoints by hash
//!
//! A restpg run keeps everything in one run directory, readable by its
//! owner only ([`RunDir`]): the event log in `log/`, a sled 0.34 database,
//! and the checkpoints in `blobs/`, named by content hash. This crate writes
//! and reads both. It knows the event schema (`events`) and nothing of tch,
//! actors or the pipeline.
//!
//! The main types:
//!
//! - [`EventLog`] is a run's one writer. [`EventLog::append`] and
//!   [`EventLog::append_batch`] seal events into hash-chained
//!   [`events::Envelope`]s and store each record with its index entries in
//!   one atomic sled batch; an event whose id is already stored comes back
//!   as [`AppendOutcome::Duplicate`] and writes nothing. Durability follows a
//!   [`FlushPolicy`] (by default at every step boundary and every 1,000
//!   events) plus explicit [`EventLog::flush`] calls.
//! - [`LogReader`] reads: by sequence range, by sample
//!   ([`LogReader::get_by_sample`], [`LogReader::by_input`]), by kind, by
//!   event id; [`LogReader::subscribe`] follows appends as they happen and
//!   [`LogReader::verify`] walks the hash chain, stopping at the first bad
//!   record with its sequence number and reason ([`VerifyReport`]).
//!   [`follow`] keeps following across writer restarts.
//! - Reading never changes a byte of the run directory: with no writer
//!   running, a reader copies the database into a private temporary
//!   directory and opens that, because sled's recovery writes (it zeroes a
//!   damaged `db` after the damage). A damaged or cut-off log is an error
//!   naming the file and the last intact record
//!   ([`StoreError::Corrupt`], [`StoreError::Truncated`]: the writer keeps
//!   the count of flushed records in `log/flushed`, beside the database,
//!   where sled's recovery cannot shorten it), and [`salvage`] copies the
//!   intact records into a new log that can be appended to.
//! - [`BlobStore`] stores a safetensors file or a model directory under its
//!   blake3 and re-hashes it on every [`BlobStore::get`].
//!
//! Why it is built this way:
//!
//! - **One tree, one batch per append.** Records (`r` + seq), the event-id
//!   index, the kind index and the (iteration, input, index) sample index
//!   share one sled tree, so one `apply_batch` makes a record and its index
//!   entries durable together: after a crash there is never an index entry
//!   without its record, or a record the duplicate check cannot see.
//! - **One writer, many readers, across processes.** sled 0.34 lets one
//!   process open a database. A writer takes `log/owner.lock` (an `flock`
//!   naming its pid) before sled's own lock, so a second writer, in
//!   another process or the same one, is refused with a message naming the
//!   holder. The process that has the log open serves it to other readers on
//!   a Unix socket in the log directory (`remote.rs`), so `restpg log tail
//!   --follow` or `log verify` work while a run is writing.
//! - **The chain is checked by readers, not trusted.** Records travel and
//!   are stored as the exact bytes that were hashed; every decode checks the
//!   record's own hash, and `verify` checks sequence, run id, links and
//!   event ids. A flipped byte is reported with its sequence number.
//! - **Private by default.** Run directories hold users' personal text:
//!   directories are created `0700`, files `0600`, and an existing run
//!   directory with wider modes is tightened when opened.
#![deny(missing_docs)]

mod blob;
mod error;
mod flushed;
mod follow;
mod keys;
mod lock;
mod reader;
mod remote;
mod rundir;
mod salvage;
mod snapshot;
mod verify;
mod writer;

#[cfg(feature = "test-util")]
pub mod testing;

pub use blob::{hash_path, BlobStore};
pub use error::StoreError;
pub use flushed::Flushed;
pub use follow::{follow, Follow};
pub use lock::LockHolder;
pub use reader::{log_holder, LogReader, Records};
pub use rundir::{create_private_dir, create_private_file, write_private_file, RunDir, REPORTS};
pub use salvage::{salvage, Salvaged};
pub use verify::{Problem, ProblemReason, VerifyReport};
pub use writer::{AppendOutcome, EventLog, FlushPolicy};
