//! Walking the hash chain.

use std::fmt;

use std::path::{Path, PathBuf};

use events::{digest_hex, Digest, Envelope, RecordError, GENESIS_HASH};

use crate::flushed::{self, Flushed};
use crate::reader::RawRecords;
use crate::snapshot::Recovery;
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
    /// What the writer's `log/flushed` says was written, when the log has
    /// one.
    pub flushed: Option<Flushed>,
    /// Things worth knowing that are not damage (sled changed bytes past
    /// the last flush while recovering, say).
    pub notes: Vec<String>,
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
    /// sled cannot read the database from here on (or could open it only
    /// by leaving part of it out).
    Unreadable {
        /// The database file.
        file: PathBuf,
        /// Where in it, as far as sled says.
        offset: Option<u64>,
        /// What sled said.
        detail: String,
    },
    /// The log ends here, but the writer's `log/flushed` says more records
    /// were written.
    Truncated {
        /// The `flushed` file.
        flushed: PathBuf,
        /// How many records it says were written.
        written: u64,
        /// What sled did to the database, when it said.
        damage: Option<String>,
    },
    /// The record `log/flushed` names as the last one flushed hashes to
    /// something else.
    FlushedHashMismatch {
        /// The `flushed` file.
        flushed: PathBuf,
        /// The hash it names.
        expected: Digest,
        /// The record's hash.
        found: Digest,
    },
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
            ProblemReason::Unreadable { file, offset, detail } => write!(
                f,
                "unreadable: {}{} is damaged ({detail})",
                file.display(),
                offset.map_or(String::new(), |o| format!(" at offset {o}"))
            ),
            ProblemReason::Truncated { flushed, written, damage } => {
                write!(f, "missing: the log ends here, but {} says {written} records were written", flushed.display())?;
                if let Some(d) = damage {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
            ProblemReason::FlushedHashMismatch { flushed, expected, found } => write!(
                f,
                "{} says the record flushed last hashes to {}, it hashes to {}",
                flushed.display(),
                digest_hex(expected),
                digest_hex(found)
            ),
        }
    }
}

/// Walks `records` (all of them, from seq 0) as the log of `run_id` in
/// `log_dir`, then checks its end against `flushed` and what sled did
/// (`recovery`).
pub(crate) fn walk(
    run_id: &str,
    log_dir: &Path,
    records: RawRecords,
    flushed: Option<Flushed>,
    recovery: Option<Recovery>,
) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport {
        run_id: run_id.to_owned(),
        valid: 0,
        last_hash: GENESIS_HASH,
        problem: None,
        flushed,
        notes: Vec::new(),
    };
    let flushed_last = report.flushed.as_ref().and_then(|f| f.records.checked_sub(1));
    let mut flushed_hash = None;
    for item in records {
        let (seq, bytes) = match item {
            Ok(pair) => pair,
            Err(StoreError::Corrupt { file, offset, detail, .. }) => {
                report.problem =
                    Some(Problem { seq: report.valid, reason: ProblemReason::Unreadable { file, offset, detail } });
                break;
            }
            Err(e) => return Err(e),
        };
        let expected = report.valid;
        let outcome = if seq != expected {
            Err(Problem { seq: expected, reason: ProblemReason::Missing { next_present: seq } })
        } else {
            Envelope::decode(&bytes).map_err(|e| Problem { seq, reason: ProblemReason::Record(e) }).and_then(|env| {
                match check(run_id, seq, &report.last_hash, &env) {
                    Some(reason) => Err(Problem { seq, reason }),
                    None => Ok(env.hash),
                }
            })
        };
        match outcome {
            Ok(hash) => {
                report.valid += 1;
                report.last_hash = hash;
                if Some(seq) == flushed_last {
                    flushed_hash = Some(hash);
                }
            }
            Err(p) => {
                report.problem = Some(p);
                break;
            }
        }
    }
    if report.problem.is_none() {
        report.problem = check_end(&report, log_dir, flushed_hash, recovery.as_ref());
    }
    if let (None, Some(r)) = (&report.problem, &recovery) {
        report.notes.push(format!(
            "{}: {}; every record {} says was written is present",
            r.file.display(),
            r.detail,
            flushed::path(log_dir).display()
        ));
    }
    Ok(report)
}

/// The problem at the end of a chain whose records all verified.
fn check_end(
    report: &VerifyReport,
    log_dir: &Path,
    flushed_hash: Option<Digest>,
    recovery: Option<&Recovery>,
) -> Option<Problem> {
    let at_end = |reason| Some(Problem { seq: report.valid, reason });
    let unreadable =
        |r: &Recovery| ProblemReason::Unreadable { file: r.file.clone(), offset: r.offset, detail: r.detail.clone() };
    let damage = recovery.map(|r| {
        format!("{}{}: {}", r.file.display(), r.offset.map_or(String::new(), |o| format!(" at offset {o}")), r.detail)
    });
    match (&report.flushed, recovery) {
        (Some(f), _) if f.records > report.valid => {
            at_end(ProblemReason::Truncated { flushed: flushed::path(log_dir), written: f.records, damage })
        }
        (_, Some(r)) if r.fell_back => at_end(unreadable(r)),
        (None, Some(r)) => at_end(unreadable(r)),
        (Some(f), _) => match flushed_hash {
            Some(found) if found != f.last_hash => Some(Problem {
                seq: f.records - 1,
                reason: ProblemReason::FlushedHashMismatch {
                    flushed: flushed::path(log_dir),
                    expected: f.last_hash,
                    found,
                },
            }),
            _ => None,
        },
        (None, None) => None,
    }
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
