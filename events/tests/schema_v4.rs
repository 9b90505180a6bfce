//! Given the committed records written in schema version 4 (by the build
//! before version 5 recorded a sample's repetition guards and precision),
//! when this build reads them, then they upcast into today's `Event`: every
//! sample was drawn without guards in f32, with the same event ids and their
//! original bytes.

use restpg_events::{EngineInfo, Envelope, Event, EventKind, Penalties, Precision, GENESIS_HASH, SCHEMA_VERSION};

mod common;

const RUN: &str = "fixture-run-v4";

fn fixture() -> Vec<Vec<u8>> {
    common::fixture_records("v4_records.bin")
}

#[test]
fn version_4_records_upcast_into_the_current_payload() {
    // Given the version-4 fixture
    let records = fixture();
    assert_eq!(records.len(), 45);
    let mut prev = GENESIS_HASH;
    let mut samples = 0;
    for (i, bytes) in records.iter().enumerate() {
        // When each record is decoded
        let env = Envelope::decode(bytes).expect("decodes");
        // Then it keeps its version, its place and its link to the one before
        assert_eq!(env.schema_version, 4);
        assert_eq!(env.seq, i as u64);
        assert_eq!(env.prev_hash, prev);
        // and the id the version-4 build stored is the id this build computes
        assert_eq!(env.event_id, env.payload.event_id(RUN), "record {i}");
        // and re-encoding in version 4 gives back the stored bytes exactly
        assert_eq!(&env.encode(), bytes, "record {i}");
        prev = env.hash;
        // and every sample reads as drawn without guards, in f32
        if let Event::SampleGenerated { penalties, precision, temperature, engine, .. } = env.payload {
            assert_eq!(penalties, Penalties::default());
            assert!(penalties.is_neutral());
            assert_eq!(precision, Precision::F32);
            assert_eq!(temperature, 0.7);
            // by tch, the only engine there was
            assert_eq!(engine, EngineInfo::tch());
            samples += 1;
        }
    }
    assert_eq!(samples, 3);
    const { assert!(SCHEMA_VERSION > 4) };
}

#[test]
fn every_kind_of_version_4_record_is_in_the_fixture() {
    let kinds: std::collections::BTreeSet<EventKind> =
        fixture().iter().map(|b| Envelope::decode(b).unwrap().payload.kind()).collect();
    // (the 16 kinds version 4 had; later versions may add more at the end)
    let v4_kinds: std::collections::BTreeSet<EventKind> = (1..=16).map(|c| EventKind::from_code(c).unwrap()).collect();
    assert_eq!(kinds, v4_kinds);
}

#[test]
fn the_current_version_names_an_upcast_fact_by_the_same_id() {
    for bytes in fixture() {
        // Given a version-4 record
        let old = Envelope::decode(&bytes).unwrap();
        // When the same payload is sealed today
        let new = Envelope::seal(old.seq, old.time, &old.run_id, old.payload.clone(), old.prev_hash);
        // Then it is a current-version record naming the same fact
        assert_eq!(new.schema_version, SCHEMA_VERSION);
        assert_eq!(new.event_id, old.event_id);
        assert_eq!(Envelope::decode(&new.encode()).unwrap(), new);
    }
}
