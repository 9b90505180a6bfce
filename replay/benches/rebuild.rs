//! Time to rebuild and verify D_t from a log of one million sample events
//! (`SampleGenerated`, `RewardAssigned`, `FilterDecided`), written through the
//! real store. Target: under 10 s.
//!
//! ```text
//! cargo bench -p restpg-replay --bench rebuild
//! REPLAY_BENCH_SAMPLE_EVENTS=100000 cargo bench -p restpg-replay --bench rebuild   # smaller
//! REPLAY_BENCH_LOG=/tmp/replay-1m cargo bench -p restpg-replay --bench rebuild       # keep and reuse the log
//! ```
//!
//! Prints the time to generate and append the log (reported, not the
//! target), then three timed replays of each kind and their medians: a scoped
//! fold of iteration 1 without texts plus `verify_iteration(1)` (what
//! `restpg replay` does), and a full fold keeping every text plus
//! `rebuild_dataset(1)`.

use std::time::{Duration, Instant};

use restpg_replay::synthetic::SyntheticRun;
use restpg_replay::Replay;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let target: u64 =
        std::env::var("REPLAY_BENCH_SAMPLE_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let run = SyntheticRun::large(target);
    let (inputs, m) = (run.inputs, run.m);
    let samples = u64::from(inputs) * u64::from(m);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var_os("REPLAY_BENCH_LOG").map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);
    if store::LogReader::open(&dir, None).is_ok() {
        println!("reusing the log in {}", dir.display());
    } else {
        generate(&run, &dir, samples);
    }
    replay(&dir, samples);
}

fn generate(run: &SyntheticRun, dir: &std::path::Path, samples: u64) {
    // Generate and append (through the real store, batches of 1,000, one flush at the end).
    let t0 = Instant::now();
    let log = store::EventLog::create(dir, "bench-replay").expect("create log");
    log.set_flush_policy(store::FlushPolicy::manual());
    let mut batch = Vec::with_capacity(1000);
    let mut total = 0u64;
    run.for_each_event(|e| {
        batch.push(e);
        if batch.len() == 1000 {
            total += batch.len() as u64;
            log.append_batch(batch.drain(..)).expect("append");
        }
    });
    total += batch.len() as u64;
    log.append_batch(batch.drain(..)).expect("append");
    log.flush().expect("flush");
    let size = log.size_on_disk().expect("size");
    drop(log);
    let generate = t0.elapsed();
    println!(
        "generated {samples} samples = {} sample events ({total} records in all) in {:.2} s ({:.0} records/s), {:.0} MB on disk",
        samples * 3,
        generate.as_secs_f64(),
        total as f64 / generate.as_secs_f64(),
        size as f64 / 1e6
    );
}

fn replay(dir: &std::path::Path, samples: u64) {
    let mut scan_times = Vec::new();
    let mut verify_times = Vec::new();
    let mut full_times = Vec::new();
    for round in 0..3 {
        let t = Instant::now();
        let reader = store::LogReader::open(dir, None).expect("open");
        let mut n = 0u64;
        for r in reader.iter() {
            r.expect("read");
            n += 1;
        }
        let took = t.elapsed();
        drop(reader);
        println!("round {round}: store scan alone ({n} records decoded) in {:.2} s", took.as_secs_f64());
        scan_times.push(took);

        let t = Instant::now();
        let reader = store::LogReader::open(dir, None).expect("open");
        let state = Replay::new().only_iteration(1).without_text().fold_log(&reader).expect("fold");
        let v = state.verify_iteration(1).unwrap_or_else(|e| panic!("{e}"));
        let took = t.elapsed();
        drop(state);
        drop(reader);
        println!("round {round}: scoped fold + verify D_1 ({} kept) in {:.2} s", v.count, took.as_secs_f64());
        verify_times.push(took);

        let t = Instant::now();
        let reader = store::LogReader::open(dir, None).expect("open");
        let state = Replay::new().fold_log(&reader).expect("fold");
        let (entries, _) = state.rebuild_dataset(1).expect("rebuild");
        let took = t.elapsed();
        println!(
            "round {round}: full fold with texts + rebuild D_1 ({} entries) in {:.2} s",
            entries.len(),
            took.as_secs_f64()
        );
        full_times.push(took);
    }
    let ms = median(scan_times);
    let mv = median(verify_times);
    let mf = median(full_times);
    println!(
        "median: store scan alone {:.2} s; replay --iteration 1 (fold + verify) {:.2} s = {:.0} sample events/s; \
         full fold + rebuild {:.2} s; target < 10 s: {}",
        ms.as_secs_f64(),
        mv.as_secs_f64(),
        (samples * 3) as f64 / mv.as_secs_f64(),
        mf.as_secs_f64(),
        if mv.as_secs_f64() < 10.0 { "met" } else { "MISSED" }
    );
}
