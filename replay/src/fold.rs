//! Folding a sequence of records into a [`RunState`], checking the chain on
//! the way.

use events::{digest_hex, Digest, Envelope, GENESIS_HASH};

use crate::state::{RunState, Scope};

/// Why a replay stopped before the end of the log.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store could not read or decode a record (a flipped byte, an
    /// unknown schema version, an I/O error). Its message names the record.
    #[error("cannot read the record after {}: {source}", after_seq.map_or_else(|| "the start of the log".to_owned(), |s| format!("seq {s}")))]
    Read {
        /// Sequence number of the last record read successfully.
        after_seq: Option<u64>,
        /// The store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The store could not read or decode a record: a flipped byte (its hash
    /// fails), an unknown schema version, an index or I/O failure.
    #[error("the log stops making sense at {}: {source}", describe_store_error(source, *after_seq))]
    Store {
        /// Sequence number of the last record read successfully.
        after_seq: Option<u64>,
        /// The store's error (it names the record when it is one).
        #[source]
        source: Box<store::StoreError>,
    },
    /// A record's sequence number is not the one after its predecessor's:
    /// records were removed, duplicated or reordered.
    #[error("sequence gap at seq {found}: expected seq {expected} (records were removed or reordered)")]
    SequenceGap {
        /// The sequence number that should have come next.
        expected: u64,
        /// The one that did.
        found: u64,
    },
    /// A record does not carry its predecessor's hash: the chain was cut or
    /// a record was replaced without rewriting everything after it.
    #[error(
        "hash chain broken at seq {seq}: it names previous hash {}, but the record before it hashes to {} \
         (the record before it was replaced, or this one was re-linked)",
        digest_hex(.found),
        digest_hex(.expected)
    )]
    ChainBroken {
        /// The record whose `prev_hash` is wrong.
        seq: u64,
        /// The hash of the record before it (or genesis).
        expected: Digest,
        /// The `prev_hash` it carries.
        found: Digest,
    },
    /// A record belongs to another run than the ones before it.
    #[error("seq {seq} belongs to run {found:?}, but the log is run {expected:?}")]
    ForeignRecord {
        /// The record.
        seq: u64,
        /// The log's run id (the first record's).
        expected: String,
        /// The record's.
        found: String,
    },
}

/// Most threads that decode a local log at once.
const MAX_READERS: usize = 4;

/// Logs shorter than this are read by one thread.
const PARALLEL_FROM: u64 = 20_000;

/// How to fold a log: which part of the state to keep.
/// `Replay::new().fold(records)` keeps everything.
#[derive(Clone, Debug)]
pub struct Replay {
    scope: Scope,
}

impl Default for Replay {
    fn default() -> Self {
        Self::new()
    }
}

impl Replay {
    /// A fold that keeps every iteration and every sample's text.
    pub fn new() -> Self {
        Self { scope: Scope { iteration: None, keep_text: true } }
    }

    /// Keeps the samples, rewards, decisions and seal of iteration `t` only
    /// (run records, training curves, checkpoints and evaluations are always
    /// kept). The whole chain is still read and checked.
    pub fn only_iteration(mut self, t: u32) -> Self {
        self.scope.iteration = Some(t);
        self
    }

    /// Drops sample texts after computing their response digests: enough
    /// to verify and audit, not to export, retrain or resample.
    pub fn without_text(mut self) -> Self {
        self.scope.keep_text = false;
        self
    }

    /// Folds records in log order, checking that sequence numbers follow
    /// each other, that each record names its predecessor's hash, and that
    /// all belong to one run. Stops at the first record the source cannot
    /// read or that breaks the chain.
    ///
    /// # Errors
    /// [`ReplayError`], naming the sequence number where the log stops
    /// making sense.
    pub fn fold<I, E>(&self, records: I) -> Result<RunState, ReplayError>
    where
        I: IntoIterator<Item = Result<Envelope, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        self.fold_with(records, |e, after_seq| ReplayError::Read { after_seq, source: e.into() })
    }

    /// Applies the record that follows `state`'s last one, checking the
    /// link as [`Replay::fold`] does: what a live view calls for each record
    /// a running writer appends after an initial fold. `state` must come
    /// from a fold with this `Replay`'s scope.
    ///
    /// # Errors
    /// [`ReplayError::SequenceGap`], [`ReplayError::ChainBroken`] or
    /// [`ReplayError::ForeignRecord`]; `state` is left unchanged.
    pub fn apply_next(&self, state: &mut RunState, record: Envelope) -> Result<(), ReplayError> {
        check_link(state, &record)?;
        state.apply_prepared(RunState::prepare(&self.scope, record));
        Ok(())
    }

    /// Folds a store's log from its first record.
    ///
    /// # Errors
    /// As [`Replay::fold`]; a record the store cannot decode is
    /// [`ReplayError::Store`] with its sequence number.
    ///
    /// A local log is read by several threads at once, each decoding and
    /// hash-checking one contiguous range of sequence numbers; the records
    /// are still applied one by one in sequence order, and the chain is
    /// checked across the ranges' seams as everywhere else.
    pub fn fold_log(&self, log: &store::LogReader) -> Result<RunState, ReplayError> {
        let store_err = |source, after_seq| ReplayError::Store { after_seq, source: Box::new(source) };
        let last = log.last_seq().map_err(|e| store_err(e, None))?;
        let readers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_READERS) as u64;
        let Some(last) = last.filter(|&l| readers > 1 && l >= PARALLEL_FROM && !log.is_remote()) else {
            return self.fold_with(log.iter(), store_err);
        };
        let per = (last + 1).div_ceil(readers);
        std::thread::scope(|s| {
            let mut queues = Vec::new();
            for k in 0..readers {
                let (from, to) = (k * per, ((k + 1) * per).min(last + 1));
                let (tx, rx) = std::sync::mpsc::channel();
                let (log, scope) = (log.clone(), &self.scope);
                s.spawn(move || {
                    for r in log.read_range(from..to) {
                        let failed = r.is_err();
                        if tx.send(r.map(|env| RunState::prepare(scope, env))).is_err() || failed {
                            break;
                        }
                    }
                });
                queues.push(rx);
            }
            let mut state = RunState::scoped(self.scope.clone());
            for rx in queues {
                for item in rx {
                    let prepared = item.map_err(|e| store_err(e, state.last.map(|(s, _)| s)))?;
                    check_link(&state, &prepared.record)?;
                    state.apply_prepared(prepared);
                }
            }
            match state.last {
                Some((seq, _)) if seq == last => Ok(state),
                other => Err(ReplayError::SequenceGap { expected: other.map_or(0, |(s, _)| s + 1), found: last }),
            }
        })
    }

    fn fold_with<I, E>(
        &self,
        records: I,
        read_error: impl Fn(E, Option<u64>) -> ReplayError,
    ) -> Result<RunState, ReplayError>
    where
        I: IntoIterator<Item = Result<Envelope, E>>,
    {
        let mut state = RunState::scoped(self.scope.clone());
        for record in records {
            let record = record.map_err(|e| read_error(e, state.last.map(|(s, _)| s)))?;
            check_link(&state, &record)?;
            state.apply_prepared(RunState::prepare(&self.scope, record));
        }
        Ok(state)
    }
}

/// Where a store error stops the replay: the record it names, else the one
/// after the last good record.
fn describe_store_error(e: &store::StoreError, after_seq: Option<u64>) -> String {
    match e {
        store::StoreError::Record { seq, .. } | store::StoreError::MissingRecord { seq } => format!("seq {seq}"),
        _ => after_seq.map_or_else(|| "the first record".to_owned(), |s| format!("the record after seq {s}")),
    }
}

impl ReplayError {
    /// The sequence number of the record the replay stopped at, when known.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ReplayError::Store { source, after_seq } => match **source {
                store::StoreError::Record { seq, .. } | store::StoreError::MissingRecord { seq } => Some(seq),
                _ => after_seq.map(|s| s + 1),
            },
            ReplayError::Read { after_seq, .. } => after_seq.map(|s| s + 1),
            ReplayError::SequenceGap { found, .. } => Some(*found),
            ReplayError::ChainBroken { seq, .. } | ReplayError::ForeignRecord { seq, .. } => Some(*seq),
        }
    }
}

/// Checks that `record` follows the last record applied to `state`.
fn check_link(state: &RunState, record: &Envelope) -> Result<(), ReplayError> {
    let (expected_seq, expected_prev) = match state.last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (record.seq, if record.seq == 0 { GENESIS_HASH } else { record.prev_hash }),
    };
    if record.seq != expected_seq {
        return Err(ReplayError::SequenceGap { expected: expected_seq, found: record.seq });
    }
    if record.prev_hash != expected_prev {
        return Err(ReplayError::ChainBroken { seq: record.seq, expected: expected_prev, found: record.prev_hash });
    }
    if let Some(run_id) = &state.run_id {
        if *run_id != record.run_id {
            return Err(ReplayError::ForeignRecord {
                seq: record.seq,
                expected: run_id.clone(),
                found: record.run_id.clone(),
            });
        }
    }
    Ok(())
}

/// Folds a whole store log, keeping everything.
///
/// # Errors
/// As [`Replay::fold_log`].
pub fn fold(log: &store::LogReader) -> Result<RunState, ReplayError> {
    Replay::new().fold_log(log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SyntheticRun;

    fn sealed(events: Vec<events::Event>) -> Vec<Envelope> {
        let time = chrono::DateTime::from_timestamp(0, 0).expect("epoch");
        let mut prev = GENESIS_HASH;
        events
            .into_iter()
            .enumerate()
            .map(|(seq, e)| {
                let env = Envelope::seal(seq as u64, time, "run-next", e, prev);
                prev = env.hash;
                env
            })
            .collect()
    }

    #[test]
    fn applying_record_by_record_equals_the_fold_and_refuses_what_breaks_the_chain() {
        let records = sealed(SyntheticRun::default().events());
        let folded = Replay::new().fold(records.iter().cloned().map(Ok::<_, std::io::Error>)).unwrap();
        let replay = Replay::new();
        let mut state = RunState::new();
        let (head, tail) = records.split_at(records.len() / 2);
        for r in head {
            replay.apply_next(&mut state, r.clone()).unwrap();
        }
        // A record that skips one, or one already applied, is refused and
        // changes nothing.
        let before = state.clone();
        let e = replay.apply_next(&mut state, tail[1].clone()).unwrap_err();
        assert!(matches!(e, ReplayError::SequenceGap { .. }), "{e}");
        let e = replay.apply_next(&mut state, head[0].clone()).unwrap_err();
        assert!(matches!(e, ReplayError::SequenceGap { .. }), "{e}");
        assert_eq!(state, before);
        // A record re-linked to another predecessor is refused by seq.
        let mut relinked = tail[0].clone();
        relinked.prev_hash = [7; 32];
        let e = replay.apply_next(&mut state, relinked).unwrap_err();
        assert_eq!(e.seq(), Some(tail[0].seq));
        for r in tail {
            replay.apply_next(&mut state, r.clone()).unwrap();
        }
        assert_eq!(state, folded);
    }
}
