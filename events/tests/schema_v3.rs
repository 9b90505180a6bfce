//! Given the committed records written in schema version 3 (by the build
//! before version 4 typed the stage, checkpoint role and split), when this
//! build reads them, then they upcast into today's `Event` with the same
//! names, the same event ids and their original bytes.

use restpg_events::{Envelope, Event, EventKind, Role, Split, Stage, GENESIS_HASH, SCHEMA_VERSION};

mod common;

const RUN: &str = "fixture-run-v3";

fn fixture() -> Vec<Vec<u8>> {
    common::fixture_records("v3_records.bin")
}

#[test]
fn version_3_records_upcast_into_the_current_payload() {
    // Given the version-3 fixture
    let records = fixture();
    assert_eq!(records.len(), 45);
    let mut prev = GENESIS_HASH;
    let (mut stages, mut roles, mut splits) = (Vec::new(), Vec::new(), Vec::new());
    for (i, bytes) in records.iter().enumerate() {
        // When each record is decoded
        let env = Envelope::decode(bytes).expect("decodes");
        // Then it keeps its version, its place and its link to the one before
        assert_eq!(env.schema_version, 3);
        assert_eq!(env.seq, i as u64);
        assert_eq!(env.prev_hash, prev);
        // and the id the version-3 build stored is the id this build computes
        // (a run resumed across the upgrade re-emits facts under the same ids)
        assert_eq!(env.event_id, env.payload.event_id(RUN), "record {i}");
        // and re-encoding in version 3 gives back the stored bytes exactly
        assert_eq!(&env.encode(), bytes, "record {i}");
        prev = env.hash;
        match env.payload {
            Event::StageStarted { stage, .. } => stages.push(stage),
            Event::CheckpointSaved { role, .. } => roles.push(role),
            Event::EvaluationDone { split, .. } => splits.push(split),
            _ => {}
        }
    }
    // and every text became its name
    use Stage::*;
    assert_eq!(
        stages,
        [Retrieve, Reasoning, Sft, EvalValidation, EStep, Judge, Filter, MStep, EvalValidation, EvalTest]
    );
    assert_eq!(roles, [Role::Base, Role::Sft, Role::MStep]);
    assert_eq!(splits, [Split::Validation, Split::Validation, Split::Test]);
    const { assert!(SCHEMA_VERSION > 3) };
}

#[test]
fn every_kind_of_version_3_record_is_in_the_fixture() {
    let kinds: std::collections::BTreeSet<EventKind> =
        fixture().iter().map(|b| Envelope::decode(b).unwrap().payload.kind()).collect();
    // Every kind but those added after version 3 (`RewardChecked`, code 17).
    let v3_kinds = EventKind::ALL.iter().filter(|k| k.code() <= 16).count();
    assert_eq!(kinds.len(), v3_kinds);
    assert!(!kinds.contains(&EventKind::RewardChecked));
}

#[test]
fn the_current_version_names_an_upcast_fact_by_the_same_id() {
    // Given version-3 records of a stage, a checkpoint and an evaluation
    for bytes in fixture() {
        let old = Envelope::decode(&bytes).unwrap();
        // When the same payload is sealed today
        let new = Envelope::seal(old.seq, old.time, &old.run_id, old.payload.clone(), old.prev_hash);
        // Then it is a current-version record naming the same fact
        assert_eq!(new.schema_version, SCHEMA_VERSION);
        assert_eq!(new.event_id, old.event_id);
        assert_eq!(Envelope::decode(&new.encode()).unwrap(), new);
    }
}
