//! Walking the hash chain.

use std::fmt;

use events::{digest_hex, Digest, Envelope, RecordError, GENESIS_HASH};

use crate::reader::RawRecords;
use crate::StoreError;

/// What [`LogReader::verify`](crate::LogReader::verify) found.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    /// The run.
    pub run_id: String,
    /// Records that passed, from seq 0 on.
    pub valid: u64,
    /// Hash of the last valid record ([`GENESIS_HASH`] when none).
    pub last_hash: Digest,
    /// The first bad record, if any; the walk stops there.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// Whether the whole chain is intact.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// The first bad record of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Its sequence number (where the record should be, for a gap).
    pub seq: u64,
    /// What is wrong with it.
    pub reason: ProblemReason,
}

/// What is wrong with a record.
#[derive(Clone, Debug, PartialEq)]
pub enum ProblemReason {
    /// It does not decode: unknown schema version, altered bytes (hash
    /// mismatch), or a body that is not its version's.
    Record(RecordError),
    /// There is no record at this sequence number, but there is one later.
    Missing {
        /// The next sequence number present.
        next_present: u64,
    },
    /// The record says it has another sequence number than its key.
    SeqMismatch {
        /// The sequence number inside the record.
        stored: u64,
    },
    /// The record belongs to another run.
    WrongRun {
        /// The run id inside the record.
        found: String,
    },
    /// The record does not link to the hash of the record before it.
    BrokenLink {
        /// Hash of the previous record.
        expected: Digest,
        /// `prev_hash` inside this record.
        found: Digest,
    },
    /// The event id inside the record is not its payload's.
    EventIdMismatch,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: ", self.seq)?;
        match &self.reason {
            ProblemReason::Record(e) => write!(f, "{e}"),
            ProblemReason::Missing { next_present } => {
                write!(f, "missing (the next record present is seq {next_present})")
            }
            ProblemReason::SeqMismatch { stored } => write!(f, "the record inside says seq {stored}"),
            ProblemReason::WrongRun { found } => write!(f, "the record belongs to run {found:?}"),
            ProblemReason::BrokenLink { expected, found } => write!(
                f,
                "broken chain: prev_hash is {}, the record before hashes to {}",
                digest_hex(found),
                digest_hex(expected)
            ),
            ProblemReason::EventIdMismatch => f.write_str("the stored event id is not its payload's"),
        }
    }
}

/// Walks `records` (all of them, from seq 0) as the log of `run_id`.
pub(crate) fn walk(run_id: &str, records: RawRecords) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport { run_id: run_id.to_owned(), valid: 0, last_hash: GENESIS_HASH, problem: None };
    for item in records {
        let (seq, bytes) = item?;
        let expected = report.valid;
        let outcome = if seq != expected {
            Err(Problem { seq: expected, reason: ProblemReason::Missing { next_present: seq } })
        } else {
            Envelope::decode(&bytes)
                .map_err(|e| Problem { seq, reason: ProblemReason::Record(e) })
                .and_then(|env| match check(run_id, seq, &report.last_hash, &env) {
                    Some(reason) => Err(Problem { seq, reason }),
                    None => Ok(env.hash),
                })
        };
        match outcome {
            Ok(hash) => {
                report.valid += 1;
                report.last_hash = hash;
            }
            Err(p) => {
                report.problem = Some(p);
                break;
            }
        }
    }
    Ok(report)
}

fn check(run_id: &str, seq: u64, prev: &Digest, env: &Envelope) -> Option<ProblemReason> {
    if env.seq != seq {
        Some(ProblemReason::SeqMismatch { stored: env.seq })
    } else if env.run_id != run_id {
        Some(ProblemReason::WrongRun { found: env.run_id.clone() })
    } else if &env.prev_hash != prev {
        Some(ProblemReason::BrokenLink { expected: *prev, found: env.prev_hash })
    } else if env.event_id != env.payload.event_id(run_id) {
        Some(ProblemReason::EventIdMismatch)
    } else {
        None
    }
}
