//! Helpers shared by the replay tests: synthetic runs written through the
//! real store (`store::EventLog`, sled on disk) and read back.
#![allow(dead_code)]

use std::path::Path;

use chrono::{TimeZone, Utc};
use events::{Envelope, Event, GENESIS_HASH};
use replay::{Replay, RunState};

/// Writes `events` as the log of run `run_id` in log directory `dir` (a
/// run's `RunDir::log`), in batches as the pipeline does, and flushes.
pub fn write_log(dir: &Path, run_id: &str, events: Vec<Event>) {
    let log = store::EventLog::create(dir, run_id).expect("create the log");
    for chunk in events.chunks(64) {
        let outcomes = log.append_batch(chunk.iter().cloned()).expect("append");
        assert!(outcomes.iter().all(|o| !o.is_duplicate()), "the synthetic run repeats no fact");
    }
    log.flush().expect("flush");
}

/// Every record of the log in `dir`, read back through the store.
pub fn read_back(dir: &Path) -> Vec<Envelope> {
    let reader = store::LogReader::open(dir, None).expect("open the log");
    reader.iter().collect::<Result<Vec<_>, _>>().expect("read the log")
}

/// Folds the log in `dir` as `restpg replay` does.
pub fn fold_dir(dir: &Path) -> Result<RunState, replay::ReplayError> {
    let reader = store::LogReader::open(dir, None).expect("open the log");
    Replay::new().fold_log(&reader)
}

/// Writes `events` to a fresh run directory and folds it back: the state and
/// the records as stored.
pub fn through_store(events: Vec<Event>) -> (RunState, Vec<Envelope>) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_log(dir.path(), "run-a", events);
    let records = read_back(dir.path());
    let state = fold_dir(dir.path()).expect("the log folds");
    (state, records)
}

/// Seals `events` into a hash chain in memory, bypassing the store: for
/// logs the store would refuse to write (a fact twice, a gap).
pub fn chain(run_id: &str, events: Vec<Event>) -> Vec<Envelope> {
    let t0 = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    let mut prev = GENESIS_HASH;
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let env = Envelope::seal(i as u64, t0 + chrono::Duration::milliseconds(i as i64), run_id, e, prev);
            prev = env.hash;
            env
        })
        .collect()
}

/// Folds in-memory records.
pub fn fold_records(records: Vec<Envelope>) -> RunState {
    Replay::new().fold(records.into_iter().map(Ok::<_, std::io::Error>)).expect("an in-memory chain folds")
}

/// The sequence number of the stored record whose payload equals `event`.
pub fn seq_of(records: &[Envelope], event: &Event) -> u64 {
    records.iter().find(|r| r.payload == *event).expect("event stored").seq
}
