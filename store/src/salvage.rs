//! Copying the intact records of a damaged log into a new one.

use std::path::Path;

use events::{Envelope, GENESIS_HASH};

use crate::reader::LogReader;
use crate::verify::Problem;
use crate::writer::EventLog;
use crate::StoreError;

/// What [`salvage`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Salvaged {
    /// The run.
    pub run_id: String,
    /// Records 0 to `copied - 1` were copied, byte for byte.
    pub copied: u64,
    /// Why the copy stops there: the first problem `verify` found in the
    /// source (`None` when the whole log was intact).
    pub stopped_at: Option<Problem>,
    /// How many records the source's `log/flushed` says were written.
    pub written: Option<u64>,
}

/// Copies the intact prefix of the log in `from` (every record up to the
/// first one [`LogReader::verify`] rejects, or the end) into a new log in
/// `to`, as the same run and byte for byte, so that hashes and chain are
/// the source's and the new log can be opened with
/// [`EventLog::open`] and appended to. The source is only read (through a
/// private copy, see [`LogReader::open_damaged`]).
///
/// # Errors
/// [`StoreError::AlreadyExists`] when `to` holds a log; the errors of
/// [`LogReader::open_damaged`] for `from`; I/O or sled errors.
pub fn salvage(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<Salvaged, StoreError> {
    let reader = LogReader::open_damaged(from, None)?;
    let report = reader.verify()?;
    let log = EventLog::create(to, reader.run_id())?;
    let mut prev = GENESIS_HASH;
    let mut records = Vec::new();
    for item in reader.raw_range(..report.valid)? {
        let (seq, bytes) = item?;
        let env = Envelope::decode(&bytes).map_err(|source| StoreError::Record { seq, source })?;
        if env.prev_hash != prev {
            break;
        }
        prev = env.hash;
        records.push((bytes, env));
    }
    let copied = log.import(records)?;
    Ok(Salvaged {
        run_id: reader.run_id().to_owned(),
        copied,
        stopped_at: report.problem,
        written: report.flushed.map(|f| f.records),
    })
}
