//! Given the committed records written in schema version 6 (the build that
//! named each sample's and reward's engine, before version 7 logged whether
//! the filter drops samples that ran to the token limit), when this build
//! reads them, then they upcast into today's `Event`: the run's settings
//! say it kept unfinished samples, as every version-6 run did; with the
//! same event ids and their original bytes.

use restpg_events::{Decision, Envelope, Event, EventKind, GENESIS_HASH, SCHEMA_VERSION};

mod common;

const RUN: &str = "fixture-run-v6";

fn fixture() -> Vec<Vec<u8>> {
    common::fixture_records("v6_records.bin")
}

#[test]
fn version_6_records_upcast_into_the_current_payload() {
    // Given the version-6 fixture
    let records = fixture();
    assert_eq!(records.len(), 46);
    let mut prev = GENESIS_HASH;
    let mut settings = Vec::new();
    for (i, bytes) in records.iter().enumerate() {
        // When each record is decoded
        let env = Envelope::decode(bytes).expect("decodes");
        // Then it keeps its version, its place and its link to the one before
        assert_eq!(env.schema_version, 6);
        assert_eq!(env.seq, i as u64);
        assert_eq!(env.prev_hash, prev);
        // and the id the version-6 build stored is the id this build computes
        assert_eq!(env.event_id, env.payload.event_id(RUN), "record {i}");
        // and re-encoding in version 6 gives back the stored bytes exactly
        assert_eq!(&env.encode(), bytes, "record {i}");
        prev = env.hash;
        match env.payload {
            Event::RunStarted { settings: s, .. } => settings.push(s.expect("version 6 logs its settings")),
            Event::FilterDecided { decision, .. } => assert_ne!(decision, Decision::Unfinished, "record {i}"),
            _ => {}
        }
    }
    // and the run's settings read as a run that kept unfinished samples,
    // the rest as logged
    assert_eq!(settings.len(), 1);
    assert!(!settings[0].drop_unfinished);
    assert_eq!((settings[0].tau, settings[0].max_kept_per_input, settings[0].require_reasoning), (1.0, 10, true));
    const { assert!(SCHEMA_VERSION > 6) };
}

#[test]
fn every_kind_of_version_6_record_is_in_the_fixture() {
    let kinds: std::collections::BTreeSet<EventKind> =
        fixture().iter().map(|b| Envelope::decode(b).unwrap().payload.kind()).collect();
    // (the 17 kinds version 6 had; later versions may add more at the end)
    let v6_kinds: std::collections::BTreeSet<EventKind> = (1..=17).map(|c| EventKind::from_code(c).unwrap()).collect();
    assert_eq!(kinds, v6_kinds);
}

#[test]
fn a_run_that_drops_unfinished_samples_is_a_version_7_fact_of_the_same_id() {
    for bytes in fixture() {
        // Given a version-6 record, sealed today with the run's settings
        // changed to drop unfinished samples
        let old = Envelope::decode(&bytes).unwrap();
        let mut payload = old.payload.clone();
        let changed = match &mut payload {
            Event::RunStarted { settings: Some(s), .. } => {
                s.drop_unfinished = true;
                true
            }
            _ => false,
        };
        let new = Envelope::seal(old.seq, old.time, &old.run_id, payload.clone(), old.prev_hash);
        // Then it is a current-version record naming the same fact, and it
        // reads back with the setting
        assert_eq!(new.schema_version, SCHEMA_VERSION);
        assert_eq!(new.event_id, old.event_id);
        let back = Envelope::decode(&new.encode()).unwrap();
        assert_eq!(back, new);
        if changed {
            assert!(matches!(back.payload, Event::RunStarted { settings: Some(s), .. } if s.drop_unfinished));
        }
    }
}

#[test]
#[should_panic(expected = "cannot be written in schema version 6")]
fn an_unfinished_decision_has_no_version_6_form() {
    // Given a version-6 filter decision, when it is made `unfinished`, then
    // version 6, which had no such reason, refuses to write it
    let old = fixture()
        .iter()
        .map(|b| Envelope::decode(b).unwrap())
        .find(|e| matches!(e.payload, Event::FilterDecided { .. }))
        .unwrap();
    let mut payload = old.payload.clone();
    if let Event::FilterDecided { decision, .. } = &mut payload {
        *decision = Decision::Unfinished;
    }
    let mut env = old.clone();
    env.payload = payload;
    let _ = env.encode();
}
