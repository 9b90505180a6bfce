//! Given the committed records written in schema version 1, when this build
//! reads them, then they decode into today's `Envelope`, unchanged in meaning,
//! with their original hashes still chaining.

use chrono::{TimeZone, Utc};
use restpg_events::{Decision, Envelope, Event, EventKind, SampleId, GENESIS_HASH, SCHEMA_VERSION};

mod common;

fn fixture() -> Vec<Vec<u8>> {
    common::fixture_records("v1_records.bin")
}

#[test]
fn version_1_records_decode_into_the_current_envelope() {
    // Given the version-1 fixture
    let records = fixture();
    assert_eq!(records.len(), 8);
    // When each record is decoded
    let envs: Vec<Envelope> = records.iter().map(|r| Envelope::decode(r).expect("decodes")).collect();
    // Then each keeps its version, its place and its link to the one before
    let mut prev = GENESIS_HASH;
    for (i, env) in envs.iter().enumerate() {
        assert_eq!(env.schema_version, 1);
        assert_eq!(env.seq, i as u64);
        assert_eq!(env.run_id, "fixture-run");
        assert_eq!(env.prev_hash, prev);
        assert_eq!(env.event_id, env.payload.event_id("fixture-run"));
        // and re-encoding in version 1 gives back the stored bytes exactly
        assert_eq!(env.encode(), records[i]);
        prev = env.hash;
    }
    // and the time text became a UTC instant, nanoseconds included
    assert_eq!(
        envs[0].time,
        Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::nanoseconds(123_456_789)
    );
    assert_eq!(envs[1].time - envs[0].time, chrono::Duration::milliseconds(250));
    // and the payloads are the facts that were written
    let kinds: Vec<EventKind> = envs.iter().map(|e| e.payload.kind()).collect();
    use EventKind::*;
    assert_eq!(
        kinds,
        [
            RunStarted,
            RetrievalDone,
            SampleGenerated,
            RewardAssigned,
            FilterDecided,
            DatasetSealed,
            CheckpointSaved,
            RunFinished
        ]
    );
    let sample = SampleId { iteration: 1, input_id: "email/17".into(), index: 0 };
    match &envs[2].payload {
        Event::SampleGenerated { sample: s, seed, response, reasoning, .. } => {
            assert_eq!(s, &sample);
            assert_eq!(*seed, sample.seed(7));
            assert_eq!(response, "Thanks, see you Monday.");
            assert_eq!(reasoning.as_deref(), Some("The user writes tersely."));
        }
        other => panic!("expected a sample, got {other:?}"),
    }
    assert!(matches!(&envs[4].payload, Event::FilterDecided { decision: Decision::Kept, .. }));
    assert!(matches!(&envs[6].payload, Event::CheckpointSaved { validation_score: Some(v), .. } if *v == 0.5));
}

#[test]
fn the_current_version_writes_the_same_fact_under_the_same_id() {
    // Given a version-1 record
    let old = Envelope::decode(&fixture()[2]).unwrap();
    // When the same payload is sealed today
    let new = Envelope::seal(old.seq, old.time, &old.run_id, old.payload.clone(), old.prev_hash);
    // Then it is a current-version record naming the same fact, with its own hash
    assert_eq!(new.schema_version, SCHEMA_VERSION);
    assert_eq!(new.event_id, old.event_id);
    assert_ne!(new.hash, old.hash);
    assert_eq!(Envelope::decode(&new.encode()).unwrap(), new);
}
