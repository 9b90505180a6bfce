//! Event log throughput: `cargo bench -p restpg-store --bench log`.
//!
//! Sample events of about 2 KB (a long-form response, as in the E-step) are
//! appended one at a time and in batches of 1,000 with an fsync per batch;
//! then the log is reopened and scanned in full (decode and per-record hash
//! check), verified (the whole chain), and queried by sample. Prints one
//! Markdown table row per figure, for BENCHMARKS.md.
//!
//! `RESTPG_BENCH_EVENTS` sets the size of the big log (default 1,000,000,
//! about 2.5 GB on disk); `RESTPG_BENCH_DIR` where it is written (default
//! the system's temporary directory).

use std::path::Path;
use std::time::{Duration, Instant};

use events::{digest, Event, EventKind, SampleId};
use restpg_store::{EventLog, FlushPolicy, LogReader};

fn sample_id(n: u64) -> SampleId {
    SampleId { iteration: 1, input_id: format!("email/{}", n / 32), index: (n % 32) as u32 }
}

fn sample_event(n: u64) -> Event {
    let sample = sample_id(n);
    let line = format!("Sample {n}: thanks for the notes on the draft, I will send the figures tomorrow. ");
    Event::SampleGenerated {
        seed: sample.seed(7),
        sample,
        prompt_digest: digest(format!("prompt {}", n / 32).as_bytes()),
        reasoning: None,
        response: line.repeat(2000 / line.len() + 1)[..2000].to_owned(),
        prompt_tokens: 900,
        output_tokens: 480,
        checkpoint: digest(b"sft"),
        temperature: 0.7,
        top_p: 0.95,
        finish: Some(events::FinishReason::StopToken),
        penalties: events::Penalties::default(),
        precision: events::Precision::F32,
        engine: events::EngineInfo::tch(),
    }
}

/// Bytes the files under `dir` occupy on disk (allocated blocks).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() { disk_bytes(&entry.path()) } else { meta.blocks() * 512 };
    }
    total
}

/// CPU time of this process so far (all threads, user and system), from
/// `/proc/self/stat`: on a shared machine it says what the work costs when
/// wall time also counts other processes.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// A phase's wall-clock and CPU time.
struct Timer(Instant, Duration);

impl Timer {
    fn start() -> Timer {
        Timer(Instant::now(), cpu_time())
    }
}

fn row(what: &str, n: u64, t: Timer, bytes: u64) {
    let (wall, cpu) = (t.0.elapsed().as_secs_f64(), (cpu_time() - t.1).as_secs_f64());
    println!(
        "| {what} | {n} | {wall:.2} s | {:.0} | {:.1} | {:.1} µs | {:.1} µs |",
        n as f64 / wall,
        bytes as f64 / wall / 1e6,
        wall * 1e6 / n as f64,
        cpu * 1e6 / n as f64
    );
}

fn main() {
    let big: u64 = std::env::var("RESTPG_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let root = std::env::var_os("RESTPG_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let tmp = tempfile::tempdir_in(root).unwrap();
    let record_bytes =
        events::Envelope::seal(0, chrono::Utc::now(), "bench-run", sample_event(0), [0; 32]).encode().len() as u64;
    println!("sample event record: {record_bytes} bytes encoded\n");
    println!("| measurement | events | wall time | events/s | MB/s of records | wall per event | CPU per event |");
    println!("|---|---|---|---|---|---|---|");

    // One at a time, fsync only at the end: the cost an actor pays per append.
    let one = 20_000;
    {
        let log = EventLog::create(tmp.path().join("one"), "bench-run").unwrap();
        log.set_flush_policy(FlushPolicy::manual());
        let t = Timer::start();
        for n in 0..one {
            log.append(sample_event(n)).unwrap();
        }
        log.flush().unwrap();
        row("append one at a time, one fsync at the end", one, t, one * record_bytes);
    }
    // One at a time with the default policy (fsync every 1,000 events).
    {
        let log = EventLog::create(tmp.path().join("one-default"), "bench-run").unwrap();
        let t = Timer::start();
        for n in 0..one {
            log.append(sample_event(n)).unwrap();
        }
        log.flush().unwrap();
        row("append one at a time, default policy (fsync per 1,000)", one, t, one * record_bytes);
    }
    // Re-appending what is there: a resumed run's duplicates.
    {
        let log = EventLog::open(tmp.path().join("one"), None).unwrap();
        let t = Timer::start();
        for n in 0..one {
            assert!(log.append(sample_event(n)).unwrap().is_duplicate());
        }
        row("re-append (duplicate, no-op)", one, t, 0);
    }

    // Batches of 1,000 with an fsync per batch: the big log.
    let dir = tmp.path().join("big");
    {
        let log = EventLog::create(&dir, "bench-run").unwrap();
        log.set_flush_policy(FlushPolicy::manual());
        let t = Timer::start();
        let mut n = 0;
        while n < big {
            let end = (n + 1000).min(big);
            log.append_batch((n..end).map(sample_event)).unwrap();
            log.flush().unwrap();
            n = end;
        }
        row("append in batches of 1,000, fsync per batch", big, t, big * record_bytes);
    }
    let on_disk = disk_bytes(&dir);
    let t = Instant::now();
    let reader = LogReader::open(&dir, Some("bench-run")).unwrap();
    let open_took = t.elapsed();

    let t = Timer::start();
    let mut count = 0u64;
    for env in reader.iter() {
        let env = env.unwrap();
        debug_assert_eq!(env.seq, count);
        count += 1;
    }
    assert_eq!(count, big);
    row("full scan: read, hash-check and decode every record", big, t, big * record_bytes);

    let t = Timer::start();
    let report = reader.verify().unwrap();
    assert!(report.is_ok() && report.valid == big);
    row("verify: the whole chain", big, t, big * record_bytes);

    let t = Timer::start();
    let kinds = reader.by_kind(EventKind::SampleGenerated).take(100_000).count() as u64;
    row("by kind (index scan, first 100,000)", kinds, t, kinds * record_bytes);

    let queries = 10_000;
    let t = Timer::start();
    let step = (big / queries).max(1);
    for q in 0..queries.min(big) {
        let found = reader.get_by_sample(&sample_id(q * step)).unwrap();
        assert_eq!(found.len(), 1);
    }
    row("get_by_sample (random samples)", queries.min(big), t, 0);

    drop(reader);
    let t = Instant::now();
    let reader = LogReader::open(&dir, Some("bench-run")).unwrap();
    let reopen_took = t.elapsed();
    assert_eq!(reader.len().unwrap(), big);

    println!();
    println!(
        "open of the {big}-event log: {:.2} s the first time after it was written (sled replays its log since \
         the last open), {:.2} s the next time",
        open_took.as_secs_f64(),
        reopen_took.as_secs_f64()
    );
    println!(
        "bytes on disk: {on_disk} for {big} sample events = {:.0} bytes per sample (record {record_bytes} bytes, ×{:.2})",
        on_disk as f64 / big as f64,
        on_disk as f64 / (big * record_bytes) as f64
    );
}
