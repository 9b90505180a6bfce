//! `restpg bench view`: how fast `restpg view` answers over a big log (a
//! measurement, not a test; BENCHMARKS.md keeps its figures).
//!
//! It writes a synthetic REST-PG run of about `--events` records through the
//! real store (one iteration, 32 samples per input, ~600-byte responses:
//! three sample events per sample, `replay::synthetic`), or reuses the one
//! in `--log`; opens it in an in-process view (the initial fold is timed
//! and reported as `open_s`); then GETs each page `--runs` times over HTTP
//! on the loopback and reports, per page, the median and the largest
//! wall time in milliseconds, and the process's peak resident memory.
//! The target of the view issue: every page under 1 s on a 1M-event log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Args;

use super::bench::{median, peak_rss_mib};

/// Arguments of `restpg bench view`.
#[derive(Args, Debug, Clone)]
pub struct ViewBenchArgs {
    /// Records in the synthetic log (approximately: whole inputs of 32 samples).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Requests per page.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// A run directory to keep the synthetic log in and reuse on the next call (default: a temporary one).
    #[arg(long)]
    pub log: Option<PathBuf>,
}

/// Writes the synthetic run into run directory `dir` unless a log is there.
fn ensure_log(dir: &Path, events: u64) -> Result<(u64, f64)> {
    let log_dir = store::RunDir::new(dir).log();
    if let Ok(reader) = store::LogReader::open(&log_dir, None) {
        return Ok((reader.len()?, 0.0));
    }
    // Nearly all records of a run this size are sample events.
    let run = replay::synthetic::SyntheticRun::large(events);
    let t = Instant::now();
    let log = store::EventLog::create(&log_dir, "bench-view").context("creating the synthetic log")?;
    log.set_flush_policy(store::FlushPolicy::manual());
    let mut batch = Vec::with_capacity(1000);
    let mut failed = None;
    let mut n = 0u64;
    run.for_each_event(|e| {
        n += 1;
        batch.push(e);
        if batch.len() == 1000 && failed.is_none() {
            failed = log.append_batch(batch.drain(..)).err();
        }
    });
    if let Some(e) = failed {
        return Err(e).context("appending the synthetic log");
    }
    log.append_batch(batch.drain(..))?;
    log.flush()?;
    Ok((n, t.elapsed().as_secs_f64()))
}

/// Runs the benchmark and prints its table.
///
/// # Errors
/// The log cannot be written or opened, the view cannot be bound, or a page
/// does not answer 200.
pub fn run(args: &ViewBenchArgs) -> Result<()> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    let temp = tempfile::tempdir()?;
    let dir = args.log.clone().unwrap_or_else(|| temp.path().join("run"));
    let (records, wrote_s) = ensure_log(&dir, args.events)?;
    if wrote_s > 0.0 {
        println!("wrote {records} records in {wrote_s:.1} s to {}", dir.display());
    } else {
        println!("reusing {records} records in {}", dir.display());
    }
    let options = crate::view::ViewOptions { runs: vec![dir.clone()], bind: [127, 0, 0, 1].into(), port: 0 };
    let (tx, rx) = std::sync::mpsc::channel::<Result<(std::net::SocketAddr, actix_web::dev::ServerHandle), String>>();
    let t = Instant::now();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match crate::view::bind(&options) {
                Ok(bound) => {
                    let _ = tx.send(Ok((bound.addr, bound.server.handle())));
                    if let Err(e) = bound.serve().await {
                        eprintln!("restpg bench view: the view stopped: {e}");
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:#}")));
                }
            }
        });
    });
    let (addr, handle) = rx.recv().context("the view thread ended before binding")?.map_err(anyhow::Error::msg)?;
    let open_s = t.elapsed().as_secs_f64();

    // A sample in the middle of the log, for its page and its input's.
    let reader = store::LogReader::open(store::RunDir::new(&dir).log(), None)?;
    let middle = reader
        .read_range(records / 2..)
        .find_map(|r| match r.map(|e| e.payload) {
            Ok(events::Event::SampleGenerated { sample, .. }) => Some(Ok(sample)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .context("no sample in the second half of the log")??;
    drop(reader);
    let input = crate::view::enc(&middle.input_id);
    let pages = [
        ("runs", "/".to_owned()),
        ("run", "/runs/0".to_owned()),
        ("iteration (histogram, verify D_t)", "/runs/0/iterations/1".to_owned()),
        ("samples, page 1", "/runs/0/iterations/1/samples".to_owned()),
        ("samples by reward, page 1000", "/runs/0/iterations/1/samples?sort=reward&page=1000".to_owned()),
        ("samples kept, reward ≥ 0.9", "/runs/0/iterations/1/samples?decision=kept&min=0.9".to_owned()),
        ("samples of one input", format!("/runs/0/iterations/1/samples?input={input}")),
        ("sample", format!("/runs/0/samples/1/{input}/{}", middle.index)),
    ];
    println!("view opened (log folded) in {open_s:.2} s; {} requests per page", args.runs);
    println!("{:<36} {:>10} {:>10} {:>10}", "page", "median_ms", "max_ms", "kB");
    for (name, path) in pages {
        let url = format!("http://{addr}{path}");
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..args.runs {
            let t = Instant::now();
            let resp =
                ureq::get(&url).timeout(Duration::from_secs(60)).call().with_context(|| format!("GET {path}"))?;
            let body = resp.into_string()?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            size = body.len();
        }
        let max = times.iter().copied().fold(0.0, f64::max);
        println!("{name:<36} {:>10.1} {max:>10.1} {:>10.0}", median(times), size as f64 / 1000.0);
    }
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    // Stop the view so that it lets go of its copy of the log.
    actix_web::rt::System::new().block_on(handle.stop(true));
    let _ = thread.join();
    Ok(())
}
