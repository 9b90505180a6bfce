//! Helpers shared by the replay tests.
#![allow(dead_code)]

use chrono::{TimeZone, Utc};
use events::{Envelope, Event, GENESIS_HASH};
use replay::synthetic::SyntheticRun;
use replay::{Replay, RunState};

/// Seals `events` into a hash chain in memory, as the store would.
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
pub fn fold_records(run: &SyntheticRun, records: Vec<Envelope>) -> RunState {
    Replay::new(run.completion.clone())
        .fold(records.into_iter().map(Ok::<_, std::io::Error>))
        .expect("an in-memory chain folds")
}

/// The sequence number of the first event matching `pred`.
pub fn seq_of(records: &[Envelope], pred: impl Fn(&Event) -> bool) -> u64 {
    records.iter().find(|r| pred(&r.payload)).expect("event present").seq
}
