//! Given a run's events, when the log is folded, then D_t rebuilds to its
//! seal, and every way of making the facts disagree is caught and named by
//! sequence number.

extern crate restpg_replay as replay;

mod common;

use common::{chain, fold_dir, fold_records, seq_of, through_store, write_log};
use events::{Decision, Event};
use replay::synthetic::SyntheticRun;
use replay::{CapSource, ReplayError, Violation};

fn run() -> SyntheticRun {
    SyntheticRun { inputs: 12, m: 8, cap: 2, ..SyntheticRun::default() }
}

/// The first kept sample of iteration 1, as (index of its reward event,
/// index of its filter event) in the event list.
fn first_kept(events: &[Event]) -> (usize, usize) {
    let f = events
        .iter()
        .position(|e| matches!(e, Event::FilterDecided { decision: Decision::Kept, .. }))
        .expect("some sample is kept");
    let sample = events[f].sample().unwrap().clone();
    let r = events.iter().position(|e| matches!(e, Event::RewardAssigned { sample: s, .. } if *s == sample)).unwrap();
    (r, f)
}

#[test]
fn every_iteration_rebuilds_to_its_sealed_digest() {
    // Given a two-iteration run
    let run = run();
    // When it is written through the store and folded back
    let (state, records) = through_store(run.events());
    // Then each D_t reproduces the seal, with the configured cap and τ
    for t in 1..=2 {
        let v = state.verify_iteration(t).unwrap_or_else(|e| panic!("{e}"));
        let seal = state.iterations[&t].seal.clone().unwrap();
        assert_eq!(v.digest, seal.digest);
        assert_eq!(v.count, seal.count);
        assert!(v.count > 0, "the synthetic run keeps something");
        assert_eq!(v.cap, CapSource::Config(2));
        assert_eq!(v.tau, Some(1.0));
        let (entries, digest) = state.rebuild_dataset(t).unwrap();
        assert_eq!(digest, seal.digest);
        assert!(entries.iter().all(|e| e.reward >= 1.0 && e.sample.iteration == t));
    }
    assert_eq!(state.records, records.len() as u64);
    assert_eq!(state.training[&1].len(), 5);
    assert_eq!(state.checkpoints.len(), 4);
    assert_eq!(state.evaluations.len(), 2);
    assert!(state.anomalies.is_empty());
}

#[test]
fn a_rewritten_response_does_not_reproduce_the_seal() {
    // Given a log rewritten with a valid chain where a kept sample's response was edited
    let run = run();
    let mut events = run.events();
    let (r, _) = first_kept(&events);
    let sample = events[r].sample().unwrap().clone();
    let g = events.iter().position(|e| matches!(e, Event::SampleGenerated { sample: s, .. } if *s == sample)).unwrap();
    if let Event::SampleGenerated { response, .. } = &mut events[g] {
        response.push_str(" (edited)");
    }
    let (state, records) = through_store(events);
    // When iteration 1 is verified
    let err = state.verify_iteration(1).unwrap_err();
    // Then the digest mismatch names the iteration, the seal and both digests
    let msg = err.to_string();
    let seal = records.iter().find(|r| matches!(r.payload, Event::DatasetSealed { iteration: 1, .. })).unwrap();
    assert!(
        matches!(&err.violations[..], [Violation::DigestMismatch { iteration: 1, seal_seq, .. }] if *seal_seq == seal.seq),
        "{msg}"
    );
    assert!(msg.contains("D_1 does not match its seal"), "{msg}");
    if let Event::DatasetSealed { digest, .. } = &seal.payload {
        assert!(msg.contains(&events::digest_hex(digest)), "{msg}");
    }
}

#[test]
fn a_tampered_reward_is_named_by_its_sequence_number() {
    // Given a log rewritten with a valid chain, where one kept sample's
    // RewardAssigned says 0.3 instead of 1.0
    let run = run();
    let mut events = run.events();
    let (r, _) = first_kept(&events);
    if let Event::RewardAssigned { reward, .. } = &mut events[r] {
        *reward = 0.3;
    }
    let tampered = events[r].clone();
    let (state, records) = through_store(events);
    let tampered_seq = seq_of(&records, &tampered);
    // When iteration 1 is verified
    let err = state.verify_iteration(1).unwrap_err();
    // Then the disagreement names the tampered record
    let hit = err
        .violations
        .iter()
        .find(|v| matches!(v, Violation::RewardDisagrees { .. }))
        .unwrap_or_else(|| panic!("no reward disagreement in {err}"));
    assert!(hit.seqs().contains(&tampered_seq), "{hit}");
    assert!(err.to_string().contains(&format!("RewardAssigned at seq {tampered_seq}")), "{err}");
    // and the other iteration still verifies
    state.verify_iteration(2).unwrap();
}

#[test]
fn a_tampered_filter_reward_breaks_the_digest_and_is_named() {
    // Given a rewritten log where a kept sample's decision carries weight 0.9…
    // no: τ is 1.0, so it also becomes a kept sample below τ
    let run = run();
    let mut events = run.events();
    let (_, f) = first_kept(&events);
    if let Event::FilterDecided { reward, .. } = &mut events[f] {
        *reward = 0.9;
    }
    let tampered = events[f].clone();
    let (state, records) = through_store(events);
    let seq = seq_of(&records, &tampered);
    // When verified
    let err = state.verify_iteration(1).unwrap_err();
    // Then the seal no longer matches, and the record is named twice over
    assert!(err.violations.iter().any(|v| matches!(v, Violation::DigestMismatch { .. })), "{err}");
    assert!(err
        .violations
        .iter()
        .any(|v| matches!(v, Violation::RewardDisagrees { filter_seq, .. } if *filter_seq == seq)));
    assert!(err.violations.iter().any(|v| matches!(v, Violation::KeptBelowTau { seq: s, .. } if *s == seq)));
}

#[test]
fn keeping_past_the_cap_is_caught() {
    // Given a rewritten log where an over-cap sample is marked kept
    let run = run();
    let mut events = run.events();
    let f = events
        .iter()
        .position(
            |e| matches!(e, Event::FilterDecided { decision: Decision::OverCap, sample, .. } if sample.iteration == 1),
        )
        .expect("the synthetic run has an over-cap sample");
    let input = events[f].sample().unwrap().input_id.clone();
    if let Event::FilterDecided { decision, .. } = &mut events[f] {
        *decision = Decision::Kept;
    }
    let (state, _) = through_store(events);
    // When verified
    let err = state.verify_iteration(1).unwrap_err();
    // Then the input is named as over the cap
    assert!(
        err.violations
            .iter()
            .any(|v| matches!(v, Violation::OverCap { input_id, kept: 3, cap: 2, .. } if *input_id == input)),
        "{err}"
    );
}

#[test]
fn a_missing_decision_and_a_late_record_are_named() {
    // Given a log where one filter decision was dropped and re-appended after the seal
    let run = run();
    let mut events = run.events();
    let f = events.iter().position(|e| matches!(e, Event::FilterDecided { .. })).unwrap();
    let moved = events.remove(f);
    let seal = events.iter().position(|e| matches!(e, Event::DatasetSealed { iteration: 1, .. })).unwrap();
    events.insert(seal + 1, moved);
    let moved = events[seal + 1].clone();
    let (state, records) = through_store(events);
    let late = seq_of(&records, &moved);
    // Then the late record is named
    let err = state.verify_iteration(1).unwrap_err();
    assert!(err.violations.iter().any(|v| matches!(v, Violation::AfterSeal { seq, .. } if *seq == late)), "{err}");
}

#[test]
fn a_duplicated_fact_is_an_anomaly_not_an_error_of_the_fold() {
    // Given a rewritten log with one sample generated twice
    let run = run();
    let mut events = run.events();
    let g = events.iter().position(|e| matches!(e, Event::SampleGenerated { .. })).unwrap();
    events.insert(g + 1, events[g].clone());
    let records = chain("run-a", events);
    // When folded, then the fold succeeds and the verifier names both records
    let state = fold_records(records);
    assert_eq!(state.anomalies.len(), 1);
    let err = state.verify_iteration(1).unwrap_err();
    assert!(err.violations.iter().any(|v| v.seqs() == vec![g as u64, g as u64 + 1]), "{err}");
}

#[test]
fn a_broken_chain_stops_the_fold_at_its_sequence_number() {
    let run = run();
    let records = chain("run-a", run.events());
    let fold =
        |records: Vec<events::Envelope>| replay::Replay::new().fold(records.into_iter().map(Ok::<_, std::io::Error>));
    // Given a log with a record removed
    let mut gap = records.clone();
    gap.remove(10);
    assert!(matches!(fold(gap), Err(ReplayError::SequenceGap { expected: 10, found: 11 })));
    // Given a log where a record was replaced by one with another predecessor
    let mut cut = records.clone();
    cut[12].prev_hash = [9; 32];
    let err = fold(cut).unwrap_err();
    assert!(matches!(err, ReplayError::ChainBroken { seq: 12, .. }), "{err}");
    assert!(err.to_string().contains("seq 12"), "{err}");
    // Given records of another run spliced in
    let mut foreign = records.clone();
    let other = chain("run-b", run.events());
    foreign.truncate(5);
    foreign.push(events::Envelope { prev_hash: foreign[4].hash, ..other[5].clone() });
    assert!(matches!(fold(foreign), Err(ReplayError::ForeignRecord { seq: 5, .. })));
    // Given a store that fails to read a record
    let reads = records
        .into_iter()
        .take(3)
        .map(Ok)
        .chain(std::iter::once(Err(std::io::Error::other("hash mismatch at seq 3"))));
    let err = replay::Replay::new().fold(reads).unwrap_err();
    assert!(err.to_string().contains("after seq 2") && err.to_string().contains("seq 3"), "{err}");
}

#[test]
fn a_scoped_fold_keeps_one_iteration_and_still_verifies() {
    let run = run();
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), "run-a", run.events());
    let reader = store::LogReader::open(dir.path(), None).unwrap();
    let state = replay::Replay::new().only_iteration(2).without_text().fold_log(&reader).unwrap();
    assert_eq!(state.iterations.keys().copied().collect::<Vec<_>>(), vec![2]);
    state.verify_iteration(2).unwrap();
    assert!(state.verify_iteration(1).is_err());
    assert!(matches!(state.export_records(2, &run.completion, None), Err(replay::ExportError::NoText)));
}

#[test]
fn a_missing_iteration_names_the_ones_the_log_has_even_out_of_scope() {
    // Given a two-iteration run folded for iteration 3 only (as `audit --iteration 3` does)
    let run = run();
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), "run-a", run.events());
    let reader = store::LogReader::open(dir.path(), None).unwrap();
    let state = replay::Replay::new().only_iteration(3).without_text().fold_log(&reader).unwrap();
    // When iteration 3 is asked for
    let err = state.iteration(3).unwrap_err();
    // Then the error lists the iterations the log holds, not "none"
    assert!(err.to_string().contains("iterations present: 1, 2"), "{err}");
    assert_eq!(state.iterations_present().collect::<Vec<_>>(), vec![1, 2]);
    // and a log without samples says none
    assert!(replay::RunState::new().iteration(1).unwrap_err().to_string().contains("iterations present: none"));
}

#[test]
fn retrain_and_resample_specs_carry_the_logged_facts() {
    let run = run();
    let (state, _) = through_store(run.events());
    // When the M-step of iteration 2 is to be re-run
    let spec = state.retrain_spec(2, &run.completion).unwrap();
    // Then it starts from the base checkpoint (fresh), trains on D_2 and must reproduce the m-step hash
    assert_eq!(spec.start.as_ref().unwrap().role, "base");
    assert_eq!(spec.items.len() as u64, state.iterations[&2].seal.as_ref().unwrap().count);
    assert!(spec.items.iter().all(|i| i.weight >= 1.0 && i.completion.contains("\n\n### Response:\n")));
    assert_eq!(spec.loss_curve.len(), 5);
    assert_eq!(replay::compare_loss_curves(&spec.loss_curve, &spec.loss_curve), None);
    let logged = spec.logged_checkpoint.unwrap();
    assert_eq!((logged.iteration, logged.role.as_str()), (2, "m-step"));
    assert_eq!(spec.sampled_from, Some(events::digest(b"m-step 1")));
    // When 5 samples are to be drawn again, then they carry their seeds and texts
    let spec = state.resample_spec(1, 5).unwrap();
    assert_eq!(spec.items.len(), 5);
    for item in &spec.items {
        assert_eq!(item.seed, item.sample.seed(run.seed));
        item.check(item.reasoning.as_deref(), &item.response).unwrap();
    }
}

#[test]
fn a_byte_flipped_on_disk_stops_the_replay_at_its_sequence_number() {
    // Given a stored log in which one byte of record 40 was flipped on disk
    let run = run();
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), "run-a", run.events());
    store::testing::tamper_record(dir.path(), 40, |bytes| {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
    })
    .unwrap();
    // When it is replayed
    let err = fold_dir(dir.path()).unwrap_err();
    // Then the replay stops there and says so
    assert_eq!(err.seq(), Some(40), "{err}");
    assert!(err.to_string().contains("seq 40"), "{err}");
}

#[test]
fn a_record_replaced_with_a_valid_hash_breaks_the_chain_after_it() {
    // Given a stored log in which record k (a kept sample's reward) was
    // replaced by a re-sealed record with another reward: its own hash is
    // valid, but the next record still names the old one
    let run = run();
    let mut events = run.events();
    let (r, _) = first_kept(&events);
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), "run-a", events.clone());
    let original = common::read_back(dir.path()).remove(r);
    if let Event::RewardAssigned { reward, .. } = &mut events[r] {
        *reward = 0.5;
    }
    let forged = events::Envelope::seal(original.seq, original.time, "run-a", events[r].clone(), original.prev_hash);
    store::testing::tamper_record(dir.path(), original.seq, |bytes| *bytes = forged.encode()).unwrap();
    // When it is replayed
    let err = fold_dir(dir.path()).unwrap_err();
    // Then the chain breaks at the record after the forged one
    assert!(matches!(err, ReplayError::ChainBroken { seq, .. } if seq == original.seq + 1), "{err}");
}

#[test]
fn a_large_log_read_in_parallel_folds_like_one_read_in_order() {
    // Given a log long enough to be read by several threads (over 20,000 records)
    let run =
        SyntheticRun { inputs: 230, m: 32, iterations: 1, cap: 10, response_bytes: 120, ..SyntheticRun::default() };
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), "run-a", run.events());
    let reader = store::LogReader::open(dir.path(), None).unwrap();
    assert!(reader.last_seq().unwrap().unwrap() > 20_000);
    // When it is folded both ways, then the states are equal and D_1 verifies
    let parallel = replay::Replay::new().fold_log(&reader).unwrap();
    let in_order = replay::Replay::new().fold(reader.iter()).unwrap();
    assert!(parallel == in_order, "parallel and in-order folds differ");
    parallel.verify_iteration(1).unwrap();
    let scoped = replay::Replay::new().without_text().fold_log(&reader).unwrap();
    assert_eq!(scoped.rebuild_dataset(1).unwrap(), parallel.rebuild_dataset(1).unwrap());
    drop(reader);
    // Given a byte flipped late in the log, then the parallel fold names its record
    let late = 19_000;
    store::testing::tamper_record(dir.path(), late, |bytes| bytes[10] ^= 0x40).unwrap();
    let err = fold_dir(dir.path()).unwrap_err();
    assert_eq!(err.seq(), Some(late), "{err}");
}

#[test]
fn the_fold_keeps_stage_timings_run_ends_and_counts_by_kind() {
    // Given a run that failed in its E-step and finished after a resume
    let events = vec![
        Event::StageStarted { iteration: 1, stage: events::Stage::EStep },
        Event::RunFailed { reason: "sampler lost".into() },
        Event::StageStarted { iteration: 1, stage: events::Stage::EStep },
        Event::StageFinished { iteration: 1, stage: events::Stage::EStep, wall_ms: 1500 },
        Event::RunFinished { wall_ms: 9000 },
    ];
    // When it is folded
    let state = fold_records(chain("run-s", events));
    // Then every stage record is kept in log order, with its wall time when it finished
    let stages: Vec<(u64, Option<u64>)> = state.stages.iter().map(|s| (s.seq, s.wall_ms)).collect();
    assert_eq!(stages, vec![(0, None), (2, None), (3, Some(1500))]);
    assert!(state.stages.iter().all(|s| s.iteration == 1 && s.stage == "e-step"));
    // and both ends of the run, in order
    assert_eq!(
        state.ends,
        vec![
            replay::RunEnd::Failed { seq: 1, reason: "sampler lost".into() },
            replay::RunEnd::Finished { seq: 4, wall_ms: 9000 }
        ]
    );
    // and the records counted by kind
    assert_eq!(state.kinds.get(&events::EventKind::StageStarted), Some(&2));
    assert_eq!(state.kinds.get(&events::EventKind::RunFinished), Some(&1));
    assert_eq!(state.kinds.values().sum::<u64>(), 5);
}

#[test]
fn a_kept_sample_cut_at_the_token_limit_is_caught_where_the_run_drops_such_samples() {
    // Given a rewritten log where a kept sample's record says it ran to the
    // token limit (its text and so the seal unchanged)
    let run = run();
    let mut events = run.events();
    let (_, f) = first_kept(&events);
    let sample = events[f].sample().unwrap().clone();
    let g = events
        .iter()
        .position(|e| matches!(e, Event::SampleGenerated { sample: s, .. } if *s == sample))
        .expect("the kept sample was generated");
    if let Event::SampleGenerated { finish, .. } = &mut events[g] {
        *finish = Some(events::FinishReason::Length);
    }
    // When verified under the run's settings, which drop unfinished samples
    let (state, records) = through_store(events.clone());
    let seq = seq_of(&records, &events[f]);
    let err = state.verify_iteration(1).unwrap_err();
    // Then the decision is named as contradicting the rule, by its record
    assert!(
        err.violations.iter().any(|v| matches!(
            v,
            Violation::ReasonContradicts { sample: s, seq: q, decision: Decision::Kept, .. } if *s == sample && *q == seq
        )),
        "{err}"
    );
    // and under the settings every run before schema version 7 logged (it
    // kept such samples), the same log verifies
    if let Event::RunStarted { settings: Some(s), .. } = &mut events[0] {
        s.drop_unfinished = false;
    }
    let (state, _) = through_store(events);
    state.verify_iteration(1).unwrap_or_else(|e| panic!("{e}"));
}
