//! Protocol tests of the coordinator and its actors, with deterministic
//! capability doubles and the event log in a temporary directory.

extern crate restpg_actors as actors;

mod common;

use std::collections::{BTreeMap, BTreeSet};

use actors::{run_pipeline, FaultPlan, Method, RunError};
use common::*;
use events::{dataset_digest, DatasetEntry, Decision, Event, SampleId};

/// The stage skeleton of a log: every event but the per-item ones, as text.
fn skeleton(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StageStarted { iteration, stage } => Some(format!("start {iteration} {stage}")),
            Event::StageFinished { iteration, stage, .. } => Some(format!("end {iteration} {stage}")),
            Event::DatasetSealed { iteration, .. } => Some(format!("sealed {iteration}")),
            Event::CheckpointSaved { iteration, role, .. } => Some(format!("checkpoint {iteration} {role}")),
            Event::EvaluationDone { iteration, split, .. } => Some(format!("eval {iteration} {split}")),
            Event::IterationFinished { iteration } => Some(format!("iteration {iteration}")),
            Event::RunFinished { .. } => Some("finished".into()),
            Event::RunFailed { reason } => Some(format!("failed {reason}")),
            Event::RewardChecked { per_task, .. } => Some(format!("checked {per_task}")),
            _ => None,
        })
        .collect()
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// D_t rebuilt from the log's events alone, independently of the actors'
/// own fold: kept FilterDecided + the sample's response.
fn rebuilt_digest(events: &[Event], t: u32) -> ([u8; 32], usize) {
    let mut responses = BTreeMap::new();
    for e in events {
        if let Event::SampleGenerated { sample, response, .. } = e {
            responses.insert(sample.clone(), response.clone());
        }
    }
    let entries: Vec<DatasetEntry> = events
        .iter()
        .filter_map(|e| match e {
            Event::FilterDecided { sample, decision: Decision::Kept, reward, .. } if sample.iteration == t => {
                Some(DatasetEntry {
                    sample: sample.clone(),
                    reward: *reward,
                    response_digest: events::response_digest(&responses[sample]),
                })
            }
            _ => None,
        })
        .collect();
    (dataset_digest(&entries), entries.len())
}

#[test]
fn a_rest_pg_run_with_two_iterations_logs_every_stage_in_order() {
    // Given 3 train inputs, m = 4, T = 2
    let dir = tempfile::tempdir().unwrap();
    let plan = plan("run-a", Method::RestPg, 3);
    let doubles = Doubles::new();
    // When the pipeline runs
    let outcome = run_pipeline(plan, open_log(dir.path(), "run-a"), doubles.capabilities()).unwrap();
    // Then the log's skeleton is Algorithm 1, in order
    let events = read_events(dir.path());
    let expected = lines(
        "start 0 reward-check
         checked 4
         end 0 reward-check
         start 0 retrieve
         end 0 retrieve
         start 0 reasoning
         end 0 reasoning
         start 0 sft
         checkpoint 0 sft
         end 0 sft
         start 0 eval-validation
         eval 0 validation
         end 0 eval-validation
         start 1 e-step
         end 1 e-step
         start 1 judge
         end 1 judge
         start 1 filter
         sealed 1
         end 1 filter
         start 1 m-step
         checkpoint 1 m-step
         end 1 m-step
         start 1 eval-validation
         eval 1 validation
         end 1 eval-validation
         iteration 1
         start 2 e-step
         end 2 e-step
         start 2 judge
         end 2 judge
         start 2 filter
         sealed 2
         end 2 filter
         start 2 m-step
         checkpoint 2 m-step
         end 2 m-step
         start 2 eval-validation
         eval 2 validation
         end 2 eval-validation
         iteration 2
         start 2 eval-test
         eval 2 test
         end 2 eval-test
         finished",
    );
    assert_eq!(skeleton(&events), expected);

    // and every item has its events: 7 retrievals, 3 reasonings, 24 samples,
    // each judged and filtered once, inside its own stage
    let count = |k: events::EventKind| events.iter().filter(|e| e.kind() == k).count();
    assert_eq!(count(events::EventKind::RetrievalDone), 7);
    assert_eq!(count(events::EventKind::ReasoningGenerated), 3);
    assert_eq!(count(events::EventKind::SampleGenerated), 24);
    assert_eq!(count(events::EventKind::RewardAssigned), 24);
    assert_eq!(count(events::EventKind::FilterDecided), 24);
    assert_eq!(count(events::EventKind::TrainingProgress), 6);
    let position = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred).unwrap();
    for t in 1..=2u32 {
        let e_end = position(
            &|e| matches!(e, Event::StageFinished { iteration, stage, .. } if *iteration == t && stage == "e-step"),
        );
        let j_start =
            position(&|e| matches!(e, Event::StageStarted { iteration, stage } if *iteration == t && stage == "judge"));
        let j_end = position(
            &|e| matches!(e, Event::StageFinished { iteration, stage, .. } if *iteration == t && stage == "judge"),
        );
        for (i, e) in events.iter().enumerate() {
            match e {
                Event::SampleGenerated { sample, .. } if sample.iteration == t => assert!(i < e_end),
                Event::RewardAssigned { sample, .. } if sample.iteration == t => assert!(j_start < i && i < j_end),
                Event::FilterDecided { sample, .. } if sample.iteration == t => assert!(j_end < i),
                _ => {}
            }
        }
        // and D_t rebuilt from the log alone matches the seal and the outcome
        let (digest, kept) = rebuilt_digest(&events, t);
        let sealed = events.iter().find_map(|e| match e {
            Event::DatasetSealed { iteration, count, digest } if *iteration == t => Some((*digest, *count)),
            _ => None,
        });
        assert_eq!(sealed, Some((digest, kept as u64)));
        let it = &outcome.iterations[t as usize - 1];
        assert_eq!((it.digest, it.kept, it.samples), (digest, kept as u64, 12));
    }

    // and the samples of iteration 2 come from the M-step checkpoint of 1
    let theta = |t: u32| {
        events
            .iter()
            .find_map(|e| match e {
                Event::CheckpointSaved { iteration, hash, .. } if *iteration == t => Some(*hash),
                _ => None,
            })
            .unwrap()
    };
    for e in &events {
        match e {
            Event::SampleGenerated { sample, checkpoint, temperature, engine, .. } => {
                assert_eq!(*checkpoint, theta(sample.iteration - 1), "{sample}");
                assert_eq!(*temperature, 0.7);
                // and each names the engine the policy reported
                assert_eq!(*engine, common::served(), "{sample}");
            }
            // and each reward the judge's engine and unseen mass
            Event::RewardAssigned { sample, engine, unseen_mass, .. } => {
                assert_eq!(engine.as_ref(), Some(&common::served()), "{sample}");
                assert_eq!(*unseen_mass, Some(common::JUDGE_UNSEEN_MASS), "{sample}");
            }
            _ => {}
        }
    }
    // and the M-step trained from the base (fresh) on the kept raw outputs, weighted by R
    let jobs = doubles.rec.jobs.lock().unwrap().clone();
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[0].iteration, 0);
    assert!(matches!(jobs[0].data[0].target, actors::capability::TrainTarget::ReasoningThenReference { .. }));
    for job in &jobs[1..] {
        assert_eq!(job.init, base());
        assert_eq!(job.data.len() as u64, outcome.iterations[job.iteration as usize - 1].kept);
        for item in &job.data {
            assert!(item.weight >= 0.5);
            assert!(
                matches!(&item.target, actors::capability::TrainTarget::Generated { raw } if raw.contains("<sep>"))
            );
        }
    }
    assert_eq!(outcome.final_checkpoint.hash, theta(2));
    assert_eq!(outcome.evaluations.len(), 4);
    assert!(!outcome.resumed);
    assert_eq!(outcome.generated_samples, 24);
}

#[test]
fn the_sft_method_trains_once_and_never_samples() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan("run-sft", Method::Sft, 2);
    let doubles = Doubles::new();
    let outcome = run_pipeline(plan, open_log(dir.path(), "run-sft"), doubles.capabilities()).unwrap();
    let events = read_events(dir.path());
    assert_eq!(
        skeleton(&events),
        lines(
            "start 0 reward-check
             checked 4
             end 0 reward-check
             start 0 retrieve
             end 0 retrieve
             start 0 sft
             checkpoint 0 sft
             end 0 sft
             start 0 eval-validation
             eval 0 validation
             end 0 eval-validation
             start 0 eval-test
             eval 0 test
             end 0 eval-test
             finished"
        )
    );
    assert!(events.iter().all(|e| !matches!(e, Event::SampleGenerated { .. } | Event::ReasoningGenerated { .. })));
    let jobs = doubles.rec.jobs.lock().unwrap().clone();
    assert!(jobs[0].data.iter().all(|i| i.target == actors::capability::TrainTarget::Reference));
    assert_eq!(outcome.final_checkpoint, outcome.sft_checkpoint);
    assert!(outcome.iterations.is_empty());
}

#[test]
fn the_coordinator_opens_the_log_with_run_started_and_the_base_checkpoint_once() {
    // Given a plan that carries its RunStarted record
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan("run-o", Method::Sft, 1);
    plan.run_started = Some(Event::RunStarted {
        method: "sft".into(),
        config_toml: "seed = 42\n".into(),
        config_digest: events::digest(b"seed = 42\n"),
        code_version: "test".into(),
        seed: 42,
        dataset_digest: events::digest(b"data"),
        settings: None,
    });
    // When it runs, and is then resumed on the same log
    let first = run_pipeline(plan.clone(), open_log(dir.path(), "run-o"), Doubles::new().capabilities()).unwrap();
    let again = run_pipeline(plan, open_log(dir.path(), "run-o"), Doubles::new().capabilities()).unwrap();
    // Then the log opens with RunStarted and θ⁰, each written once
    let events = read_events(dir.path());
    assert!(matches!(&events[0], Event::RunStarted { seed: 42, .. }), "{:?}", events[0]);
    assert!(
        matches!(&events[1], Event::CheckpointSaved { iteration: 0, role, hash, .. } if role == "base" && *hash == base().hash),
        "{:?}",
        events[1]
    );
    assert_eq!(events.iter().filter(|e| matches!(e, Event::RunStarted { .. })).count(), 1);
    let bases = events.iter().filter(|e| matches!(e, Event::CheckpointSaved { role, .. } if role == "base"));
    assert_eq!(bases.count(), 1);
    // and the first run was a new one, the second a resume
    assert!(!first.resumed && again.resumed);
}

/// Each of the m × |train| × T samples is in the log exactly once.
fn assert_every_sample_once(events: &[Event], inputs: usize, m: u32, iterations: u32) {
    let counts = sample_counts(events);
    let expected: BTreeSet<SampleId> = (1..=iterations)
        .flat_map(|t| {
            (0..inputs).flat_map(move |i| {
                (0..m).map(move |index| SampleId { iteration: t, input_id: format!("train-{i}"), index })
            })
        })
        .collect();
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
}

fn run_with_fault(fault: FaultPlan) -> (actors::RunOutcome, Vec<Event>, Doubles) {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan("run-fault", Method::RestPg, 3);
    plan.fault = Some(fault);
    let doubles = Doubles::new();
    let outcome = run_pipeline(plan, open_log(dir.path(), "run-fault"), doubles.capabilities()).unwrap();
    (outcome, read_envelopes(dir.path()).into_iter().map(|e| e.payload).collect(), doubles)
}

#[test]
fn a_sampler_that_panics_once_is_rebuilt_and_its_batch_reissued() {
    // Batch 3 is an E-step batch (batches 0–1 generate reasoning).
    let (outcome, events, doubles) = run_with_fault(FaultPlan {
        sampler_fail_once_at_batch: 3,
        panic: true,
        crash_after_samples: None,
        hang_ms: None,
    });
    assert_eq!(outcome.reissued_batches, 1);
    assert_every_sample_once(&events, 3, 4, 2);
    assert!(events.iter().all(|e| !matches!(e, Event::RunFailed { .. })));
    // and the panicking worker built a fresh policy, in its own thread
    assert_eq!(doubles.rec.rebuilds(), (1, 1));
}

#[test]
fn a_sampler_that_errors_once_is_rebuilt_and_its_batch_reissued() {
    let (outcome, events, doubles) = run_with_fault(FaultPlan {
        sampler_fail_once_at_batch: 4,
        panic: false,
        crash_after_samples: None,
        hang_ms: None,
    });
    assert_eq!(outcome.reissued_batches, 1);
    assert_every_sample_once(&events, 3, 4, 2);
    assert_eq!(doubles.rec.rebuilds(), (1, 1));
}

#[test]
fn a_sampler_that_hangs_is_timed_out_and_its_batch_reissued() {
    // Given two samplers, one of which hangs for 4 s on an E-step batch, and
    // a batch timeout of 1 s
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan("run-hang", Method::RestPg, 3);
    plan.sampler_workers = 2;
    plan.batch_timeout = std::time::Duration::from_secs(1);
    plan.fault =
        Some(FaultPlan { sampler_fail_once_at_batch: 3, panic: false, crash_after_samples: None, hang_ms: Some(4000) });
    let doubles = Doubles::new();
    let started = std::time::Instant::now();
    // when the run goes on
    let outcome = run_pipeline(plan, open_log(dir.path(), "run-hang"), doubles.capabilities()).unwrap();
    // then the hung batch was re-issued to the other worker and every sample
    // is logged once
    assert!(outcome.reissued_batches >= 1, "{outcome:?}");
    let events: Vec<Event> = read_envelopes(dir.path()).into_iter().map(|e| e.payload).collect();
    assert_every_sample_once(&events, 3, 4, 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn a_capability_that_panics_or_fails_retryably_is_survived() {
    // Given a policy that panics on its 2nd call and a judge that fails on its 3rd
    let dir = tempfile::tempdir().unwrap();
    let mut doubles = Doubles::new();
    doubles.policy_fail = Fail::PanicAt(1);
    doubles.judge_fail = Fail::RetryableAt(2);
    let outcome =
        run_pipeline(plan("run-b", Method::RestEm, 3), open_log(dir.path(), "run-b"), doubles.capabilities()).unwrap();
    // then the run completes with every sample exactly once
    assert_eq!(outcome.reissued_batches, 2);
    assert_eq!(doubles.rec.rebuilds(), (1, 1));
    assert_every_sample_once(&read_events(dir.path()), 3, 4, 2);
    let judged = doubles.rec.judged.lock().unwrap().clone();
    assert_eq!(judged.len(), judged.iter().collect::<BTreeSet<_>>().len(), "a sample was judged twice");
}

#[test]
fn a_fatal_error_stops_the_run_with_run_failed_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut doubles = Doubles::new();
    doubles.judge_fail = Fail::FatalAt(1);
    let err = run_pipeline(plan("run-c", Method::RestPg, 3), open_log(dir.path(), "run-c"), doubles.capabilities())
        .unwrap_err();
    assert!(
        matches!(&err, RunError::Worker { stage, source, .. } if stage == "judge 1" && !source.retryable),
        "{err:?}"
    );
    let events = read_events(dir.path());
    let last = skeleton(&events).pop().unwrap();
    assert!(last.starts_with("failed judge 1: batch t1/") && last.contains("bad input at call 1"), "{last}");
    assert!(events.iter().all(|e| !matches!(e, Event::DatasetSealed { .. })));
}

#[test]
fn a_batch_that_keeps_failing_fails_the_run_after_bounded_retries() {
    let dir = tempfile::tempdir().unwrap();
    let mut doubles = Doubles::new();
    doubles.policy_fail = Fail::AlwaysRetryable;
    let mut plan = plan("run-d", Method::RestEm, 2);
    plan.max_attempts = 3;
    let err = run_pipeline(plan, open_log(dir.path(), "run-d"), doubles.capabilities()).unwrap_err();
    assert!(matches!(&err, RunError::RetriesExhausted { attempts: 3, stage, .. } if stage == "e-step 1"), "{err:?}");
    let last = skeleton(&read_events(dir.path())).pop().unwrap();
    assert!(last.starts_with("failed e-step 1") && last.contains("failed 3 times"), "{last}");
}

#[test]
fn in_flight_batches_never_exceed_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan("run-e", Method::RestEm, 6);
    plan.sampler_workers = 4;
    plan.max_in_flight = 2;
    plan.batch_size = 1;
    let doubles = Doubles::new();
    let outcome = run_pipeline(plan, open_log(dir.path(), "run-e"), doubles.capabilities()).unwrap();
    assert_eq!(outcome.peak_in_flight, 2);
    assert!(doubles.rec.peak_concurrent.load(std::sync::atomic::Ordering::SeqCst) <= 2);
}

#[test]
fn a_run_stopped_mid_e_step_resumes_to_the_same_d_t_without_regenerating_logged_samples() {
    // Given an uninterrupted run
    let clean = tempfile::tempdir().unwrap();
    let reference =
        run_pipeline(plan("run-r", Method::RestPg, 3), open_log(clean.path(), "run-r"), Doubles::new().capabilities())
            .unwrap();

    // and the same run stopped after 6 samples of the first E-step
    let dir = tempfile::tempdir().unwrap();
    let mut crashing = plan("run-r", Method::RestPg, 3);
    crashing.fault = Some(FaultPlan {
        sampler_fail_once_at_batch: usize::MAX,
        panic: false,
        crash_after_samples: Some(6),
        hang_ms: None,
    });
    let err = run_pipeline(crashing, open_log(dir.path(), "run-r"), Doubles::new().capabilities()).unwrap_err();
    assert_eq!(err, RunError::InjectedCrash(6));
    let before = read_events(dir.path());
    let logged: BTreeSet<SampleId> = sample_counts(&before).into_keys().collect();
    assert_eq!(logged.len(), 6);
    assert!(before.iter().all(|e| !matches!(e, Event::RunFailed { .. } | Event::RewardAssigned { .. })));

    // When it is resumed on the same log
    let doubles = Doubles::new();
    let resumed =
        run_pipeline(plan("run-r", Method::RestPg, 3), open_log(dir.path(), "run-r"), doubles.capabilities()).unwrap();

    // then no logged sample was generated again, nor was reasoning or SFT redone
    let regenerated: Vec<SampleId> = doubles.rec.generated.lock().unwrap().clone();
    assert_eq!(regenerated.len(), 24 - 6);
    assert!(regenerated.iter().all(|s| !logged.contains(s)));
    assert!(doubles.rec.reasoning.lock().unwrap().is_empty());
    assert!(doubles.rec.jobs.lock().unwrap().iter().all(|j| j.iteration > 0));
    // nor the reward check: the log holds it once
    assert!(doubles.rec.reward_checks.lock().unwrap().is_empty());
    let checks = read_events(dir.path()).iter().filter(|e| matches!(e, Event::RewardChecked { .. })).count();
    assert_eq!(checks, 1);
    // and every D_t and the final model equal the uninterrupted run's
    assert!(resumed.resumed);
    assert_eq!(resumed.iterations, reference.iterations);
    assert_eq!(resumed.final_checkpoint, reference.final_checkpoint);
    assert_every_sample_once(&read_events(dir.path()), 3, 4, 2);

    // and resuming a finished run does nothing new
    let again = Doubles::new();
    let third =
        run_pipeline(plan("run-r", Method::RestPg, 3), open_log(dir.path(), "run-r"), again.capabilities()).unwrap();
    assert_eq!(third.iterations, reference.iterations);
    assert_eq!(third.generated_samples, 0);
    assert!(again.rec.judged.lock().unwrap().is_empty());
    assert!(again.rec.jobs.lock().unwrap().is_empty());
}

#[test]
fn a_log_of_another_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    run_pipeline(plan("run-x", Method::Sft, 1), open_log(dir.path(), "run-x"), Doubles::new().capabilities()).unwrap();
    // (the store refuses a mismatched id when given one; opened without
    // one, the coordinator still checks every record's run id)
    let log = store::EventLog::open(dir.path(), None).unwrap();
    let err = run_pipeline(plan("run-y", Method::Sft, 1), log, Doubles::new().capabilities()).unwrap_err();
    assert!(err.to_string().contains("belongs to run \"run-x\""), "{err}");
}

#[test]
fn samples_cut_at_the_token_limit_are_dropped_as_unfinished_and_never_trained_on() {
    // Given a run whose policy runs every other E-step sample to the token
    // limit, with a τ every sample clears
    let cut = |s: &events::SampleId| s.index.is_multiple_of(2);
    let run = |drop_unfinished: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan("run-cut", Method::RestEm, 3);
        plan.tau = 0.0;
        plan.max_kept_per_input = 4;
        plan.drop_unfinished = drop_unfinished;
        let mut doubles = Doubles::new();
        doubles.unfinished = cut;
        let outcome = run_pipeline(plan, open_log(dir.path(), "run-cut"), doubles.capabilities()).unwrap();
        let jobs = doubles.rec.jobs.lock().unwrap().clone();
        (outcome, read_events(dir.path()), jobs)
    };
    // When the pipeline runs with the default rule
    let (outcome, events, jobs) = run(true);
    // Then every cut sample is decided unfinished, and only those
    let mut decided = 0;
    for e in &events {
        if let Event::FilterDecided { sample, decision, reward, .. } = e {
            decided += 1;
            if cut(sample) {
                assert_eq!(*decision, Decision::Unfinished, "{sample}");
            } else {
                assert!(*decision == Decision::Kept || *reward == 0.0, "{sample}: {decision}");
            }
        }
    }
    assert_eq!(decided, 24);
    // and D_t, rebuilt from the log alone, holds none of them, matching
    // the seal, and the M-steps trained on exactly D_t
    for t in 1..=2u32 {
        let (digest, kept) = rebuilt_digest(&events, t);
        let it = &outcome.iterations[t as usize - 1];
        assert_eq!((it.digest, it.kept), (digest, kept as u64));
        assert!(kept > 0 && kept <= 6, "iteration {t}: {kept} kept of 6 finished samples");
        let job = jobs.iter().find(|j| j.iteration == t).expect("an M-step");
        assert_eq!(job.data.len(), kept);
    }
    // and a run that allows unfinished samples keeps some of them, as every
    // run before schema version 7 did
    let (_, events, _) = run(false);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::FilterDecided { sample, decision: Decision::Kept, .. } if cut(sample)
    )));
    assert!(!events.iter().any(|e| matches!(e, Event::FilterDecided { decision: Decision::Unfinished, .. })));
}
