//! `restpg log …`: verify, export, tail and salvage a run's event log.
//!
//! Each takes a run directory (its log is `RUN_DIR/log`) or the log
//! directory itself. They read while the run is writing: the store then
//! reads through the writing process (see `store`'s `remote.rs`). None of
//! them changes a byte of the run directory it reads.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use events::{digest_hex, Envelope, Event, EventKind};
use store::{LogReader, RunDir};

/// Arguments of `restpg log`.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: LogCommand,
}

/// `restpg log` subcommands.
#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Walk the hash chain; report the first bad record's sequence number
    /// and why (exit status 1).
    Verify {
        /// The run directory (or its `log/` directory).
        run_dir: PathBuf,
    },
    /// Write the records, one JSON object per line, exactly as stored (the
    /// schema's field values: decisions as `Kept`, ranks from 0); `restpg
    /// audit` is the user-facing view (`kept`, ranks from 1).
    Export {
        /// The run directory (or its `log/` directory).
        run_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Write here (mode 0600) instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Only records of this kind (`sample-generated`, `filter-decided`, …).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Show the last records, one line each; with `--follow`, keep showing
    /// new ones (across restarts of the run) until interrupted.
    Tail {
        /// The run directory (or its `log/` directory).
        run_dir: PathBuf,
        /// How many of the last records to show first.
        #[arg(long, short = 'n', default_value_t = 10)]
        lines: u64,
        /// Keep following the log.
        #[arg(long, short)]
        follow: bool,
        /// Only records of this kind (`sample-generated`, `filter-decided`, …).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Print the wall time of every finished stage as a Markdown table, one
    /// column per run directory given: runs of one configuration on two
    /// engines side by side (a stage a resume finished counts the wall time
    /// of the attempt that finished it).
    Stages {
        /// The run directories.
        #[arg(required = true)]
        run_dirs: Vec<PathBuf>,
    },
    /// Copy the intact records of a damaged log (every record up to the
    /// first one `verify` rejects), byte for byte, into a new run
    /// directory with the rest of the run (configuration, checkpoints,
    /// reports), which `restpg train --resume NEW` continues. The original
    /// is left as it is.
    Salvage {
        /// The damaged run directory.
        run_dir: PathBuf,
        /// The new run directory (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Formats of `restpg log export`.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum ExportFormat {
    /// One envelope per line: seq, time, run id, schema version, event id,
    /// payload, hashes (digests in hex).
    Jsonl,
}

/// Runs `restpg log …`.
///
/// # Errors
/// No log at the path, a log that cannot be read, or (for `verify`) a chain
/// that does not verify, naming the sequence number.
pub fn run(args: LogArgs) -> anyhow::Result<()> {
    match args.command {
        LogCommand::Verify { run_dir } => verify(&log_dir(&run_dir)?),
        LogCommand::Export { run_dir, format: ExportFormat::Jsonl, output, kind } => {
            export(&log_dir(&run_dir)?, output.as_deref(), parse_kind(kind)?)
        }
        LogCommand::Tail { run_dir, lines, follow, kind } => {
            tail(&log_dir(&run_dir)?, lines, follow, parse_kind(kind)?)
        }
        LogCommand::Salvage { run_dir, out } => salvage(&run_dir, &out),
        LogCommand::Stages { run_dirs } => {
            print!("{}", stage_table(&run_dirs)?);
            Ok(())
        }
    }
}

/// The Markdown table of `restpg log stages`: a row per (iteration, stage)
/// in the order the runs first finished them, a column of seconds per run
/// directory (or its `log/`), named by the path as given (`–` where a run
/// did not finish that stage), and the whole run's wall time last.
///
/// # Errors
/// A directory without a readable log, or a log whose chain breaks.
pub fn stage_table(run_dirs: &[PathBuf]) -> anyhow::Result<String> {
    let mut rows: Vec<(u32, events::Stage)> = Vec::new();
    let mut columns = Vec::with_capacity(run_dirs.len());
    for dir in run_dirs {
        let log = store::EventLog::open_read_only(log_dir(dir)?)
            .with_context(|| format!("opening the event log of {}", dir.display()))?;
        let state = replay::Replay::new()
            .without_text()
            .fold_log(&log)
            .with_context(|| format!("reading the event log of {}", dir.display()))?;
        let mut ms: Vec<((u32, events::Stage), u64)> = Vec::new();
        for s in &state.stages {
            let Some(wall) = s.wall_ms else { continue };
            let key = (s.iteration, s.stage);
            if !rows.contains(&key) {
                rows.push(key);
            }
            // The log holds one finish per stage (its records are
            // idempotent by event id).
            ms.push((key, wall));
        }
        let run_ms = state.ends.iter().rev().find_map(|e| match e {
            replay::RunEnd::Finished { wall_ms, .. } => Some(*wall_ms),
            replay::RunEnd::Failed { .. } => None,
        });
        columns.push((ms, run_ms));
    }
    let secs = |v: Option<u64>| v.map_or_else(|| "–".to_owned(), |ms| format!("{:.1}", ms as f64 / 1000.0));
    // Each column is named by the path as given (two runs may share a
    // folder name), `|` escaped for the table.
    let names: Vec<String> = run_dirs.iter().map(|d| d.display().to_string().replace('|', "\\|")).collect();
    let mut out = format!(
        "| iteration | stage | {} |\n",
        names.iter().map(|n| format!("{n} (s)")).collect::<Vec<_>>().join(" | ")
    );
    out.push_str(&format!("|---|---|{}\n", "---:|".repeat(names.len())));
    for key in &rows {
        let cells: Vec<String> =
            columns.iter().map(|(ms, _)| secs(ms.iter().find(|(k, _)| k == key).map(|(_, v)| *v))).collect();
        out.push_str(&format!("| {} | {} | {} |\n", key.0, key.1, cells.join(" | ")));
    }
    let totals: Vec<String> = columns.iter().map(|(_, run)| secs(*run)).collect();
    out.push_str(&format!("| | **run** | {} |\n", totals.join(" | ")));
    Ok(out)
}

/// The log directory of `path`: `path/log` for a run directory, or `path`
/// when it is a log directory itself.
fn log_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.exists() {
        bail!("{} does not exist: give a run directory (or its log/ directory)", path.display());
    }
    if !path.is_dir() {
        bail!("{} is a file, not a run directory (or its log/ directory)", path.display());
    }
    let in_run = RunDir::new(path).log();
    if in_run.join("db").is_file() {
        Ok(in_run)
    } else if path.join("db").is_file() {
        Ok(path.to_path_buf())
    } else {
        bail!("no event log in {} (expected {})", path.display(), in_run.display())
    }
}

fn parse_kind(kind: Option<String>) -> anyhow::Result<Option<EventKind>> {
    Ok(kind.map(|k| k.parse::<EventKind>()).transpose()?)
}

fn open(dir: &Path) -> anyhow::Result<LogReader> {
    LogReader::open(dir, None).with_context(|| format!("opening the event log in {}", dir.display()))
}

fn verify(dir: &Path) -> anyhow::Result<()> {
    // A damaged log opens as what is left of it, and the report says what
    // is wrong; only a database of which nothing opens is an error here.
    let reader = match LogReader::open_damaged(dir, None) {
        Ok(r) => r,
        Err(e @ store::StoreError::Corrupt { .. }) => {
            println!("{e}");
            bail!("the event log in {} does not verify: {e}", dir.display())
        }
        Err(e) => return Err(e).with_context(|| format!("opening the event log in {}", dir.display())),
    };
    let report = reader.verify()?;
    for note in &report.notes {
        println!("note: {note}");
    }
    match report.problem {
        None => {
            println!(
                "run {}: {} records, hash chain intact (last hash {})",
                report.run_id,
                report.valid,
                digest_hex(&report.last_hash)
            );
            Ok(())
        }
        Some(problem) => {
            match report.valid.checked_sub(1) {
                Some(last) => println!(
                    "run {}: records 0 to {last} verify (the last intact record is seq {last}); then",
                    report.run_id
                ),
                None => println!("run {}: no record verifies; then", report.run_id),
            }
            println!("{problem}");
            bail!("the event log in {} does not verify: {problem}", dir.display())
        }
    }
}

fn export(dir: &Path, output: Option<&Path>, kind: Option<EventKind>) -> anyhow::Result<()> {
    let reader = open(dir)?;
    let sink: Box<dyn Write> = match output {
        Some(path) => {
            Box::new(store::create_private_file(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    let records = match kind {
        Some(k) => reader.by_kind(k),
        None => reader.iter(),
    };
    for env in records {
        let line = serde_json::to_string(&env?)?;
        if let Err(e) = writeln!(out, "{line}") {
            return quiet_broken_pipe(e);
        }
    }
    out.flush().or_else(quiet_broken_pipe)
}

fn tail(dir: &Path, lines: u64, follow: bool, kind: Option<EventKind>) -> anyhow::Result<()> {
    let reader = open(dir)?;
    // Everything before `upto` is "the past": its last `lines` records (of
    // the kind) are shown, and following starts at `upto`.
    let upto = reader.len()?;
    let past = match kind {
        Some(k) => reader.by_kind(k),
        None => reader.read_range(upto.saturating_sub(lines)..upto),
    };
    let mut last = std::collections::VecDeque::new();
    for env in past {
        let env = env?;
        if env.seq >= upto {
            break;
        }
        last.push_back(env);
        if last.len() as u64 > lines {
            last.pop_front();
        }
    }
    let mut out = io::stdout().lock();
    let mut show = |env: &Envelope| -> io::Result<()> {
        if kind.is_none_or(|k| env.payload.kind() == k) {
            writeln!(out, "{}", line(env))?;
            out.flush()?;
        }
        Ok(())
    };
    for env in &last {
        if let Err(e) = show(env) {
            return quiet_broken_pipe(e);
        }
    }
    if !follow {
        return Ok(());
    }
    let expected = reader.run_id().to_owned();
    drop(reader); // a writer may start while we follow
    for env in store::follow(dir, Some(&expected), upto)? {
        if let Err(e) = show(&env?) {
            return quiet_broken_pipe(e);
        }
    }
    Ok(())
}

/// `restpg log salvage RUN --out NEW`: everything of RUN but its log is
/// copied as it is; the log gets the intact records.
fn salvage(run_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let from_log = log_dir(run_dir)?;
    let from_root = if from_log == RunDir::new(run_dir).log() { run_dir.to_path_buf() } else { from_log.join("..") };
    if out.exists() && std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?.next().is_some() {
        bail!("{} is not empty: salvage writes a new run directory", out.display());
    }
    let new = RunDir::create(out).with_context(|| format!("creating {}", out.display()))?;
    copy_run_files(&from_root, new.path(), true)?;
    let done = store::salvage(&from_log, new.log())
        .with_context(|| format!("salvaging the event log of {} into {}", run_dir.display(), out.display()))?;
    println!(
        "run {}: copied records 0 to {} ({} records) into {}",
        done.run_id,
        done.copied as i128 - 1,
        done.copied,
        out.display()
    );
    if let Some(problem) = &done.stopped_at {
        println!("stopped at {problem}");
    }
    if let Some(written) = done.written.filter(|&w| w > done.copied) {
        println!("{} records of the {written} written are lost", written - done.copied);
    }
    println!("{} is unchanged; continue with `restpg train --resume {}`", run_dir.display(), out.display());
    Ok(())
}

/// Copies the files and directories of a run directory `from` into `to`
/// (private modes), but not its log (`log/` at the top).
fn copy_run_files(from: &Path, to: &Path, top: bool) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if top && entry.file_name() == "log" {
            continue;
        }
        let meta = std::fs::symlink_metadata(&src).with_context(|| format!("reading {}", src.display()))?;
        if meta.is_dir() {
            store::create_private_dir(&dst).with_context(|| format!("creating {}", dst.display()))?;
            copy_run_files(&src, &dst, false)?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).with_context(|| format!("reading the link {}", src.display()))?;
            std::os::unix::fs::symlink(&target, &dst).with_context(|| format!("linking {}", dst.display()))?;
        }
    }
    Ok(())
}

/// `restpg log export | head` is not an error.
fn quiet_broken_pipe(e: io::Error) -> anyhow::Result<()> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e.into())
    }
}

/// One line for a record: sequence number, time, kind and what happened.
fn line(env: &Envelope) -> String {
    format!(
        "{:>7} {} {:<19} {}",
        env.seq,
        env.time.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        env.payload.kind().as_str(),
        summary(&env.payload)
    )
}

fn short(d: &events::Digest) -> String {
    digest_hex(d)[..12].to_owned()
}

/// The first `n` characters of `text` on one line.
fn clip(text: &str, n: usize) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut it = one_line.chars();
    let head: String = it.by_ref().take(n).collect();
    if it.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

fn summary(event: &Event) -> String {
    match event {
        Event::MStepSkipped { iteration, reason } => format!("iteration {iteration}: {reason}"),
        Event::RunStarted { method, config_digest, code_version, seed, dataset_digest, .. } => format!(
            "{method} seed={seed} config={} data={} ({code_version})",
            short(config_digest),
            short(dataset_digest)
        ),
        Event::RetrievalDone { input_id, task, retriever, item_indices, .. } => {
            format!("{input_id} ({task}) {retriever} → {item_indices:?}")
        }
        Event::ReasoningGenerated { input_id, generator, reasoning, .. } => {
            format!("{input_id} by {generator}: {}", clip(reasoning, 60))
        }
        Event::StageStarted { iteration, stage } => format!("t{iteration} {stage}"),
        Event::StageFinished { iteration, stage, wall_ms } => {
            format!("t{iteration} {stage} in {:.1} s", *wall_ms as f64 / 1000.0)
        }
        Event::SampleGenerated { sample, prompt_tokens, output_tokens, response, .. } => {
            format!("{sample} {prompt_tokens}+{output_tokens} tokens: {}", clip(response, 60))
        }
        Event::RewardAssigned { sample, reward, reward_name, .. } => format!("{sample} {reward_name}={reward:.3}"),
        Event::FilterDecided { sample, decision, reward, tau, rank } => {
            // Ranks are shown from 1, as `restpg audit` shows them (the
            // record stores them from 0).
            format!("{sample} {decision} (reward {reward:.3}, τ {tau}, rank {})", rank + 1)
        }
        Event::DatasetSealed { iteration, count, digest } => {
            format!("D_{iteration}: {count} samples, digest {}", short(digest))
        }
        Event::TrainingProgress { iteration, step, loss, learning_rate, tokens } => {
            format!("t{iteration} step {step} loss {loss:.4} lr {learning_rate:.2e} tokens {tokens}")
        }
        Event::CheckpointSaved { iteration, step, role, hash, path, validation_score } => {
            let score = validation_score.map_or(String::new(), |s| format!(" validation {s:.4}"));
            format!("t{iteration} {role} step {step} {} at {path}{score}", short(hash))
        }
        Event::EvaluationDone { iteration, split, system, scores, .. } => {
            let s: Vec<String> = scores.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
            format!("t{iteration} {system} on {split}: {}", s.join(" "))
        }
        Event::IterationFinished { iteration } => format!("t{iteration}"),
        Event::RunFinished { wall_ms } => format!("in {:.1} s", *wall_ms as f64 / 1000.0),
        Event::RunFailed { reason } => clip(reason, 120),
        e @ Event::RewardChecked { .. } => {
            crate::reward::check::RewardCheck::from_event(e).map(|c| c.summary_line()).unwrap_or_default()
        }
    }
}
