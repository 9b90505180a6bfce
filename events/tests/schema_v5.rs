//! Given the committed records written in schema version 5 (the build that
//! recorded each sample's repetition guards and precision, before version 6
//! named each sample's and reward's engine), when this build reads them,
//! then they upcast into today's `Event`: every sample and every judge
//! reward was produced by the embedded tch engine, a lexical reward by no
//! engine, none with an unseen mass; with the same event ids and their
//! original bytes.

use restpg_events::{EngineInfo, Envelope, Event, EventKind, Penalties, Precision, GENESIS_HASH, SCHEMA_VERSION};

mod common;

const RUN: &str = "fixture-run-v5";

fn fixture() -> Vec<Vec<u8>> {
    common::fixture_records("v5_records.bin")
}

#[test]
fn version_5_records_upcast_into_the_current_payload() {
    // Given the version-5 fixture
    let records = fixture();
    assert_eq!(records.len(), 46);
    let mut prev = GENESIS_HASH;
    let (mut samples, mut rewards) = (Vec::new(), Vec::new());
    for (i, bytes) in records.iter().enumerate() {
        // When each record is decoded
        let env = Envelope::decode(bytes).expect("decodes");
        // Then it keeps its version, its place and its link to the one before
        assert_eq!(env.schema_version, 5);
        assert_eq!(env.seq, i as u64);
        assert_eq!(env.prev_hash, prev);
        // and the id the version-5 build stored is the id this build computes
        assert_eq!(env.event_id, env.payload.event_id(RUN), "record {i}");
        // and re-encoding in version 5 gives back the stored bytes exactly
        assert_eq!(&env.encode(), bytes, "record {i}");
        prev = env.hash;
        match env.payload {
            Event::SampleGenerated { penalties, precision, engine, .. } => {
                // and every sample reads as drawn by tch, deterministic
                assert_eq!(engine, EngineInfo::tch(), "record {i}");
                assert!(engine.deterministic);
                samples.push((penalties, precision))
            }
            Event::RewardAssigned { reward_name, judge_distribution, engine, unseen_mass, .. } => {
                rewards.push((reward_name, judge_distribution.len(), engine, unseen_mass))
            }
            _ => {}
        }
    }
    // and every sample keeps the guards and precision it was drawn with
    let guards = Penalties {
        repetition_penalty: 1.2,
        frequency_penalty: 0.5,
        presence_penalty: -0.25,
        no_repeat_ngram_size: 3,
        min_p: 0.05,
    };
    assert_eq!(
        samples,
        [(Penalties::default(), Precision::F32), (guards, Precision::Bf16), (Penalties::default(), Precision::F32)]
    );
    // and the two judge rewards name tch, the lexical one no engine, and
    // none an unseen mass (tch read the full distribution)
    let tch = Some(EngineInfo::tch());
    assert_eq!(
        rewards,
        [
            ("judge".to_string(), 3, tch.clone(), None),
            ("judge".to_string(), 3, tch, None),
            ("rouge-l".to_string(), 0, None, None)
        ]
    );
    const { assert!(SCHEMA_VERSION > 5) };
}

#[test]
fn every_kind_of_version_5_record_is_in_the_fixture() {
    let kinds: std::collections::BTreeSet<EventKind> =
        fixture().iter().map(|b| Envelope::decode(b).unwrap().payload.kind()).collect();
    // (the 17 kinds version 5 had; later versions may add more at the end)
    let v5_kinds: std::collections::BTreeSet<EventKind> = (1..=17).map(|c| EventKind::from_code(c).unwrap()).collect();
    assert_eq!(kinds, v5_kinds);
}

#[test]
fn the_current_version_names_a_version_5_fact_by_the_same_id() {
    for bytes in fixture() {
        // Given a version-5 record
        let old = Envelope::decode(&bytes).unwrap();
        // When the same payload is sealed today
        let new = Envelope::seal(old.seq, old.time, &old.run_id, old.payload.clone(), old.prev_hash);
        // Then it is a current-version record naming the same fact
        assert_eq!(new.schema_version, SCHEMA_VERSION);
        assert_eq!(new.event_id, old.event_id);
        assert_eq!(Envelope::decode(&new.encode()).unwrap(), new);
    }
}
