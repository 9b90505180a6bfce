//! Crash safety with a real process: a child appends in a loop and
//! acknowledges each flushed batch on stdout; the test kills it with SIGKILL
//! at a random moment, reopens the log and checks that every acknowledged
//! event is there, exactly as written, on a chain that verifies. Then it
//! lets the next child resume the same log, several times over.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{random_u64, sample_event};
use restpg_store::{AppendOutcome, EventLog, FlushPolicy};

const CHILD_DIR: &str = "RESTPG_TEST_CRASH_CHILD_DIR";
const RUN: &str = "crash-run";

/// Not a test of its own: the child process, run as this test binary with
/// `CHILD_DIR` set. It resumes the log as a restarted run would (re-appending
/// its last few events, which must come back as duplicates), then appends
/// batches of 1 to 64 events until killed, printing `ack <last seq>` after
/// each flush.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let log = EventLog::open_or_create(&dir, RUN).unwrap();
    log.set_flush_policy(FlushPolicy::manual());
    let mut next = log.len().unwrap();
    let replay_from = next.saturating_sub(5);
    for n in replay_from..next {
        assert_eq!(log.append(sample_event(n)).unwrap(), AppendOutcome::Duplicate(n));
    }
    let mut out = std::io::stdout().lock();
    let mut rng = random_u64() | 1;
    loop {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let size = 1 + rng % 64;
        if size == 1 {
            log.append(sample_event(next)).unwrap();
        } else {
            log.append_batch((next..next + size).map(sample_event)).unwrap();
        }
        next += size;
        log.flush().unwrap();
        writeln!(out, "\nack {}", next - 1).unwrap();
        out.flush().unwrap();
    }
}

/// Runs one child until it has acknowledged a random number of batches and
/// a random few milliseconds more, kills it, and returns the highest
/// sequence number it acknowledged.
fn run_and_kill(dir: &std::path::Path) -> Option<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let acks_before_kill = 1 + random_u64() % 40;
    let extra = Duration::from_micros(random_u64() % 20_000);
    let mut acked = None;
    let mut line = String::new();
    let started = Instant::now();
    let mut seen = 0;
    while seen < acks_before_kill {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("the child ended on its own after {seen} acks: {}", child.wait().unwrap());
        }
        if let Some(seq) = line.trim().strip_prefix("ack ") {
            acked = Some(seq.parse().unwrap());
            seen += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the child is too slow");
    }
    std::thread::sleep(extra);
    child.kill().unwrap(); // SIGKILL
                           // Acks written before the kill may still sit in the pipe: they count.
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(seq) = line.trim().strip_prefix("ack ") {
            acked = Some(seq.parse().unwrap());
        }
    }
    child.wait().unwrap();
    acked
}

#[test]
fn every_acknowledged_event_survives_sigkill_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut previously_acked = None;
    for round in 0..4 {
        // Given a child appending and acknowledging flushed batches
        // When it is killed at a random moment
        let acked = run_and_kill(dir.path()).expect("at least one ack");
        assert!(Some(acked) >= previously_acked);
        // Then reopening finds every acknowledged event, as written
        let log = EventLog::open(dir.path(), Some(RUN)).unwrap();
        let last = log.last_seq().unwrap().expect("records");
        assert!(last >= acked, "round {round}: acknowledged up to {acked}, found only up to {last}");
        for env in log.read_range(..=acked) {
            let env = env.unwrap();
            assert_eq!(env.payload, sample_event(env.seq), "round {round}: record {}", env.seq);
        }
        // and the whole chain, unacknowledged tail included, verifies
        let report = log.verify().unwrap();
        assert!(report.is_ok(), "round {round}: {}", report.problem.unwrap());
        assert_eq!(report.valid, last + 1);
        // and a duplicate check still sees everything that is there
        assert!(log.append(sample_event(acked)).unwrap().is_duplicate());
        previously_acked = Some(acked);
    }
}
