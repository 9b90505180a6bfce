//! The event log's contract, given / when / then.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::{sample_event, tamper};
use events::{Decision, Event, EventKind, RecordError, SampleId, GENESIS_HASH, SCHEMA_VERSION};
use restpg_store::{AppendOutcome, EventLog, FlushPolicy, LogReader, ProblemReason, RunDir, StoreError};

fn stage(iteration: u32, name: &str) -> Event {
    Event::StageFinished { iteration, stage: name.parse().expect("a stage name"), wall_ms: 5 }
}

#[test]
fn appended_events_come_back_in_order_on_a_chain_that_verifies() {
    // Given a new log
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create(dir.path(), "run-1").unwrap();
    // When events are appended one at a time and in a batch
    assert_eq!(log.append(sample_event(0)).unwrap(), AppendOutcome::Appended(0));
    let outcomes = log.append_batch((1..5).map(sample_event)).unwrap();
    assert_eq!(outcomes, (1..5).map(AppendOutcome::Appended).collect::<Vec<_>>());
    // Then they read back in order, each linked to the one before
    let all: Vec<_> = log.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 5);
    let mut prev = GENESIS_HASH;
    for (i, env) in all.iter().enumerate() {
        assert_eq!(env.seq, i as u64);
        assert_eq!(env.run_id, "run-1");
        assert_eq!(env.payload, sample_event(i as u64));
        assert_eq!(env.prev_hash, prev);
        prev = env.hash;
    }
    assert_eq!(log.last_seq().unwrap(), Some(4));
    assert_eq!(log.read_range(2..4).map(|e| e.unwrap().seq).collect::<Vec<_>>(), [2, 3]);
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problem);
    assert_eq!(report.valid, 5);
    assert_eq!(report.last_hash, prev);
}

#[test]
fn appending_the_same_fact_twice_is_a_no_op_even_after_reopening() {
    // Given a log with three samples
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EventLog::create(dir.path(), "run-1").unwrap();
        log.append_batch((0..3).map(sample_event)).unwrap();
    }
    // When a resumed run re-appends them (one with other text), and a new one twice in a batch
    let log = EventLog::open(dir.path(), Some("run-1")).unwrap();
    let mut changed = sample_event(1);
    if let Event::SampleGenerated { response, .. } = &mut changed {
        *response = "a different draw".into();
    }
    assert_eq!(log.append(changed).unwrap(), AppendOutcome::Duplicate(1));
    let outcomes = log.append_batch([sample_event(0), sample_event(3), sample_event(3)]).unwrap();
    // Then the stored facts stay as first written and nothing is counted twice
    assert_eq!(outcomes, [AppendOutcome::Duplicate(0), AppendOutcome::Appended(3), AppendOutcome::Duplicate(3)]);
    assert_eq!(log.len().unwrap(), 4);
    assert_eq!(log.get(1).unwrap().unwrap().payload, sample_event(1));
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn indexes_find_events_by_sample_input_iteration_kind_and_id() {
    // Given a generated, rewarded and filtered sample among others
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create(dir.path(), "run-1").unwrap();
    log.append_batch((0..40).map(sample_event)).unwrap();
    let sample = SampleId { iteration: 1, input_id: "email/0".into(), index: 3 };
    log.append(Event::RewardAssigned {
        sample: sample.clone(),
        reward: 1.0,
        reward_name: "judge".into(),
        judge_distribution: vec![0.0; 11],
        engine: Some(events::EngineInfo::tch()),
        unseen_mass: None,
    })
    .unwrap();
    log.append(stage(1, "judge")).unwrap();
    log.append(Event::FilterDecided {
        sample: sample.clone(),
        decision: Decision::Kept,
        reward: 1.0,
        tau: 1.0,
        rank: 0,
    })
    .unwrap();
    // Then the sample's story is its three events
    let story: Vec<EventKind> = log.get_by_sample(&sample).unwrap().iter().map(|e| e.payload.kind()).collect();
    assert_eq!(story, [EventKind::SampleGenerated, EventKind::RewardAssigned, EventKind::FilterDecided]);
    // and an input has its 32 samples (plus the two later events of #3), another input 8
    assert_eq!(log.by_input(1, "email/0").count(), 34);
    assert_eq!(log.by_input(1, "email/1").count(), 8);
    assert_eq!(log.by_input(1, "email/").count(), 0);
    assert_eq!(log.by_iteration(1).count(), 42);
    assert_eq!(log.by_iteration(2).count(), 0);
    // and kinds and ids find their records
    let stages: Vec<_> = log.by_kind(EventKind::StageFinished).map(|e| e.unwrap().seq).collect();
    assert_eq!(stages, [41]);
    assert_eq!(log.seq_of(&sample_event(7).event_id("run-1")).unwrap(), Some(7));
    assert_eq!(log.seq_of(&sample_event(99).event_id("run-1")).unwrap(), None);
}

#[test]
fn a_flipped_byte_is_reported_with_its_sequence_number() {
    // Given a log of ten records
    let dir = tempfile::tempdir().unwrap();
    EventLog::create(dir.path(), "run-1").unwrap().append_batch((0..10).map(sample_event)).unwrap();
    // When one byte in the middle of record 6 is flipped on disk
    tamper(dir.path(), 6, |b| {
        let mid = b.len() / 2;
        b[mid] ^= 0x20;
    });
    // Then verify names record 6 and a hash mismatch, and the six before it pass
    let reader = LogReader::open(dir.path(), None).unwrap();
    let report = reader.verify().unwrap();
    let problem = report.problem.clone().expect("a problem");
    assert_eq!(problem.seq, 6);
    assert!(matches!(problem.reason, ProblemReason::Record(RecordError::HashMismatch { .. })), "{problem}");
    assert!(problem.to_string().starts_with("seq 6: hash mismatch"), "{problem}");
    assert_eq!(report.valid, 6);
    // and reading it is an error naming it
    let err = reader.get(6).unwrap_err();
    assert!(matches!(err, StoreError::Record { seq: 6, .. }), "{err}");
}

#[test]
fn a_removed_record_breaks_the_chain_where_it_was() {
    // Given a log whose record 3 was replaced by record 4's bytes
    let dir = tempfile::tempdir().unwrap();
    EventLog::create(dir.path(), "run-1").unwrap().append_batch((0..6).map(sample_event)).unwrap();
    let four = LogReader::open(dir.path(), None).unwrap().get(4).unwrap().unwrap().encode();
    tamper(dir.path(), 3, |b| *b = four);
    // Then verify reports record 3 as saying it is another
    let report = LogReader::open(dir.path(), None).unwrap().verify().unwrap();
    let problem = report.problem.unwrap();
    assert_eq!((problem.seq, problem.reason), (3, ProblemReason::SeqMismatch { stored: 4 }));
}

#[test]
fn a_record_of_an_unknown_schema_version_is_a_clear_error() {
    // Given a log whose record 2 claims the version after this build's
    let future = SCHEMA_VERSION + 1;
    let dir = tempfile::tempdir().unwrap();
    EventLog::create(dir.path(), "run-1").unwrap().append_batch((0..4).map(sample_event)).unwrap();
    tamper(dir.path(), 2, |b| b[..2].copy_from_slice(&future.to_le_bytes()));
    // When it is read
    let reader = LogReader::open(dir.path(), None).unwrap();
    let err = reader.get(2).unwrap_err();
    // Then the error says which record and which version
    let text = err.to_string();
    assert!(text.contains("record 2") && text.contains(&format!("unknown schema version {future}")), "{text}");
    let problem = reader.verify().unwrap().problem.unwrap();
    assert_eq!(problem.seq, 2);
    assert_eq!(problem.reason, ProblemReason::Record(RecordError::UnknownSchemaVersion { found: future }));
}

#[test]
fn a_writer_refuses_to_chain_after_a_corrupt_last_record() {
    let dir = tempfile::tempdir().unwrap();
    EventLog::create(dir.path(), "run-1").unwrap().append_batch((0..3).map(sample_event)).unwrap();
    tamper(dir.path(), 2, |b| b[10] ^= 1);
    let err = EventLog::open(dir.path(), None).unwrap_err();
    assert!(matches!(err, StoreError::CorruptTail { seq: 2, .. }), "{err}");
    assert!(err.to_string().contains("restpg log verify"), "{err}");
}

#[test]
fn opening_another_runs_log_by_mistake_names_both_runs() {
    // Given the log of run-a
    let dir = tempfile::tempdir().unwrap();
    drop(EventLog::create(dir.path(), "run-a").unwrap());
    // When it is opened as run-b's, for writing or for reading
    let w = EventLog::open(dir.path(), Some("run-b")).unwrap_err();
    let r = LogReader::open(dir.path(), Some("run-b")).unwrap_err();
    let c = EventLog::open_or_create(dir.path(), "run-b").unwrap_err();
    // Then each error names both
    for err in [w, r, c] {
        let text = err.to_string();
        assert!(matches!(err, StoreError::OtherRun { .. }), "{text}");
        assert!(text.contains("\"run-a\"") && text.contains("\"run-b\""), "{text}");
    }
    // and creating over it is refused too
    let err = EventLog::create(dir.path(), "run-b").unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { ref run_id, .. } if run_id == "run-a"), "{err}");
    // while a directory without a log says so, and is left as it was
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(LogReader::open(empty.path(), None).unwrap_err(), StoreError::NoLog { .. }));
    assert!(matches!(EventLog::open(empty.path(), None).unwrap_err(), StoreError::NoLog { .. }));
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[test]
fn a_second_writer_in_the_same_process_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let _log = EventLog::create(dir.path(), "run-1").unwrap();
    let err = EventLog::open(dir.path(), Some("run-1")).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Locked { .. }), "{text}");
    assert!(text.contains(&format!("a writer in pid {} (this process)", std::process::id())), "{text}");
    assert!(text.contains("one writer at a time"), "{text}");
}

#[test]
fn run_directories_are_private_to_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("runs/r1");
    let log = EventLog::create(RunDir::create(&run).unwrap().log(), "r1").unwrap();
    log.append(sample_event(0)).unwrap();
    log.flush().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // (`log/blobs` is sled's own directory, made with the process umask.)
    for d in [dir.path().join("runs"), run.clone(), run.join("log"), run.join("blobs"), run.join("log").join("blobs")] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for f in ["owner.lock", "db", "conf"] {
        assert_eq!(mode(&run.join("log").join(f)), 0o600, "{f}");
    }
}

#[test]
fn an_in_process_subscriber_sees_appends_as_they_happen() {
    // Given a writer with two events and a subscriber from seq 1
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create(dir.path(), "run-1").unwrap();
    log.append_batch((0..2).map(sample_event)).unwrap();
    let sub = log.reader().subscribe(1);
    let seen = std::thread::spawn(move || sub.map(|e| e.unwrap().seq).collect::<Vec<_>>());
    // When three more are appended from another thread and the writer closes
    for n in 2..5 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        log.append(sample_event(n)).unwrap();
    }
    drop(log);
    // Then the subscriber got 1 to 4 and ended
    assert_eq!(seen.join().unwrap(), [1, 2, 3, 4]);
}

#[test]
fn the_flush_policy_counts_events_and_step_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create(dir.path(), "run-1").unwrap();
    log.set_flush_policy(FlushPolicy { every_events: Some(3), at_step_boundaries: true });
    log.append_batch((0..2).map(sample_event)).unwrap();
    log.append(stage(1, "e-step")).unwrap();
    log.append_batch((2..9).map(sample_event)).unwrap();
    assert_eq!(log.len().unwrap(), 10);
}

// ---- across processes -------------------------------------------------

const CHILD_DIR: &str = "RESTPG_TEST_WRITER_CHILD_DIR";

/// Not a test of its own: the writer process of the tests below, run as
/// this test binary with `CHILD_DIR` set. It appends 5 events, says
/// `ready`, appends 5 more for each line it reads on stdin, and closes the
/// log when stdin closes.
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let log = EventLog::open_or_create(&dir, "run-x").unwrap();
    log.append_batch((0..5).map(sample_event)).unwrap();
    println!("ready {}", std::process::id());
    std::io::stdout().flush().unwrap();
    let mut next = 5;
    for line in std::io::stdin().lock().lines() {
        line.unwrap();
        log.append_batch((next..next + 5).map(sample_event)).unwrap();
        next += 5;
        println!("appended {next}");
        std::io::stdout().flush().unwrap();
    }
}

struct Child {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Child {
    fn spawn(dir: &std::path::Path) -> (Child, u32) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["writer_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut c = Child { out: BufReader::new(child.stdout.take().unwrap()), child };
        let pid = c.wait_for("ready ").parse().unwrap();
        (c, pid)
    }

    fn wait_for(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "child ended before {prefix:?}");
            // libtest prints `test writer_child ... ` before the child's first line.
            if let Some((_, rest)) = line.trim_end().split_once(prefix) {
                return rest.to_owned();
            }
        }
    }
}

#[test]
fn while_another_process_writes_a_second_writer_is_refused_and_readers_read_through_it() {
    // Given a child process writing run-x
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pid) = Child::spawn(dir.path());
    // When this process tries to write the same run
    let err = EventLog::open(dir.path(), Some("run-x")).unwrap_err();
    // Then it is refused, naming the writer's pid
    let text = err.to_string();
    assert!(text.contains(&format!("a writer in pid {pid} since")), "{text}");
    // When this process reads instead
    let reader = LogReader::open(dir.path(), Some("run-x")).unwrap();
    assert!(reader.is_remote());
    // Then it reads, verifies, queries and follows through the writer
    assert_eq!(reader.last_seq().unwrap(), Some(4));
    assert!(reader.verify().unwrap().is_ok());
    assert_eq!(reader.get(3).unwrap().unwrap().payload, sample_event(3));
    assert_eq!(reader.by_input(1, "email/0").count(), 5);
    let follower = reader.subscribe(2);
    let stdin = child.child.stdin.as_mut().unwrap();
    writeln!(stdin, "more").unwrap();
    child.wait_for("appended 10");
    drop(child.child.stdin.take());
    let seqs: Vec<u64> = follower.map(|e| e.unwrap().seq).collect();
    assert_eq!(seqs, (2..10).collect::<Vec<_>>());
    assert!(child.child.wait().unwrap().success());
    // and once the writer is gone, this process may write
    let log = EventLog::open(dir.path(), Some("run-x")).unwrap();
    assert_eq!(log.len().unwrap(), 10);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn follow_keeps_following_across_writer_sessions() {
    // Given a log written and closed by one process
    let dir = tempfile::tempdir().unwrap();
    drop(EventLog::create(dir.path(), "run-x").unwrap());
    let follower = restpg_store::follow(dir.path(), Some("run-x"), 0).unwrap();
    let seen = std::thread::spawn(move || follower.take(15).map(|e| e.unwrap().seq).collect::<Vec<_>>());
    // When two writer sessions, one in another process, append in turn
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (mut child, _) = Child::spawn(dir.path());
    writeln!(child.child.stdin.as_mut().unwrap(), "more").unwrap();
    child.wait_for("appended 10");
    drop(child.child.stdin.take());
    assert!(child.child.wait().unwrap().success());
    let log = EventLog::open(dir.path(), Some("run-x")).unwrap();
    log.append_batch((10..15).map(sample_event)).unwrap();
    // Then the follower saw all fifteen records, in order, once each
    assert_eq!(seen.join().unwrap(), (0..15).collect::<Vec<_>>());
}

#[test]
fn a_log_can_be_reopened_as_soon_as_it_was_closed() {
    // Given a log closed and reopened, for writing and reading, in quick succession
    let dir = tempfile::tempdir().unwrap();
    drop(EventLog::create(dir.path(), "run-1").unwrap());
    for n in 0..30 {
        let log = EventLog::open(dir.path(), Some("run-1")).unwrap();
        log.append(sample_event(n)).unwrap();
        drop(log);
        // Then every open succeeds and sees what the one before wrote
        let reader = LogReader::open(dir.path(), Some("run-1")).unwrap();
        assert_eq!(reader.len().unwrap(), n + 1);
    }
}
