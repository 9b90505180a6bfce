//! One run as the view holds it: the log folded once, then kept up to date
//! by a thread that follows the log (through the writer's reader socket
//! while a run writes, `store::follow`), plus what pages need besides the
//! log: the run's data set and its evaluation reports, loaded on first use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::time::Duration;

use anyhow::Context as _;
use replay::{Replay, RunState};

use crate::data::Dataset;
use crate::eval::EvalReport;

/// Where and why the view stopped reading a run's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogProblem {
    /// The sequence number of the record that could not be used, when
    /// known.
    pub seq: Option<u64>,
    /// What is wrong, as the store or the replay said it.
    pub message: String,
}

/// A run's folded log at one moment, and what went wrong reading it.
pub struct Snapshot {
    /// Everything the log said, up to the last record applied.
    pub state: RunState,
    /// The record the view stopped at (corrupt, out of order, a damaged
    /// database); nothing after it is shown.
    pub problem: Option<LogProblem>,
    /// The last error following the log met (the writer's socket went
    /// away, say); following goes on, so it is shown as a warning.
    pub follow_warning: Option<String>,
}

/// The run's data set, as far as the view could load it.
pub enum RunData {
    /// Loaded; `changed` says whether its digest differs from the one the
    /// run logged (its texts then may not be what the run saw).
    Loaded {
        /// The data set.
        dataset: Box<Dataset>,
        /// Where it was read from.
        path: PathBuf,
        /// Whether its digest differs from the logged one.
        changed: bool,
    },
    /// Not loaded, and why (pages then show the logged indices only).
    Missing(String),
}

/// One run directory served by `restpg view`.
pub struct LiveRun {
    /// Its position on the command line (its URL is `/runs/{index}`).
    pub index: usize,
    /// The run directory as given.
    pub dir: PathBuf,
    snapshot: RwLock<Snapshot>,
    data: OnceLock<RunData>,
    reports: Mutex<HashMap<String, Result<Arc<EvalReport>, String>>>,
    reader: Mutex<Option<store::LogReader>>,
    facts: Mutex<HashMap<u32, (u64, Arc<serde_json::Value>)>>,
}

impl LiveRun {
    /// Opens the run in `dir`, folds its log and starts following it.
    ///
    /// A log whose database is damaged, that holds a record that cannot be
    /// read or breaks the chain, or that cannot be opened at all (a broken
    /// `log/flushed`, say) still opens: the state holds what came before
    /// and [`Snapshot::problem`] names the record or the error.
    ///
    /// # Errors
    /// `dir` does not exist, is a file, or is not a run directory (no
    /// `log/` with a database), naming the path; the follow thread cannot
    /// be started.
    pub fn open(index: usize, dir: &Path) -> anyhow::Result<Arc<LiveRun>> {
        if !dir.exists() {
            anyhow::bail!("{} does not exist", dir.display());
        }
        if !dir.is_dir() {
            anyhow::bail!("{} is a file, not a run directory", dir.display());
        }
        let log_dir = store::RunDir::new(dir).log();
        if !log_dir.join("db").is_file() {
            anyhow::bail!(
                "{} is not a run directory: it has no event log ({} missing); a run directory is what \
                 `restpg train --run-dir` or `restpg demo` creates",
                dir.display(),
                log_dir.join("db").display()
            );
        }
        // A log that cannot be opened at all is shown as such, beside the
        // other runs, rather than refusing them too.
        let (reader, state, problem) = match initial_fold(&log_dir) {
            Ok((reader, state, problem)) => (Some(reader), state, problem),
            Err(e) => (None, RunState::new(), Some(LogProblem { seq: None, message: format!("{e:#}") })),
        };
        let run = Arc::new(LiveRun {
            index,
            dir: dir.to_owned(),
            snapshot: RwLock::new(Snapshot { state, problem, follow_warning: None }),
            data: OnceLock::new(),
            reports: Mutex::new(HashMap::new()),
            reader: Mutex::new(reader),
            facts: Mutex::new(HashMap::new()),
        });
        if run.read().problem.is_none() {
            let follower = Arc::clone(&run);
            std::thread::Builder::new()
                .name(format!("view-follow-{index}"))
                .spawn(move || follower.follow(log_dir))
                .context("starting the thread that follows the log")?;
        }
        Ok(run)
    }

    /// The current snapshot, read-locked while the caller renders it.
    pub fn read(&self) -> RwLockReadGuard<'_, Snapshot> {
        // A poisoned lock means a panic while applying a record; the state
        // is still plain data, so reading it is safe.
        self.snapshot.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An iteration's page facts for the log as of record `last`: the
    /// cached ones when the log has not moved since, else `compute()`'s
    /// (then cached).
    ///
    /// # Errors
    /// `compute`'s.
    pub fn iteration_facts<E>(
        &self,
        t: u32,
        last: u64,
        compute: impl FnOnce() -> Result<serde_json::Value, E>,
    ) -> Result<Arc<serde_json::Value>, E> {
        let mut cache = self.facts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seq, facts)) = cache.get(&t) {
            if *seq == last {
                return Ok(Arc::clone(facts));
            }
        }
        let facts = Arc::new(compute()?);
        cache.insert(t, (last, Arc::clone(&facts)));
        Ok(facts)
    }

    /// Computes every iteration's page facts once, so that the first visit
    /// to an iteration of a big finished log is as fast as the next.
    fn warm(&self) {
        let s = self.read();
        let last = s.state.last.map_or(0, |(seq, _)| seq);
        for t in s.state.iterations.keys().copied().collect::<Vec<_>>() {
            let _ = self.iteration_facts(t, last, || super::pages::iteration_facts(&s.state, t));
        }
    }

    fn follow(&self, log_dir: PathBuf) {
        self.warm();
        let (run_id, next) = {
            let s = self.read();
            (s.state.run_id.clone(), s.state.last.map_or(0, |(seq, _)| seq + 1))
        };
        let records = match store::follow(&log_dir, run_id.as_deref(), next) {
            Ok(f) => f,
            Err(e) => return self.warn(e.to_string()),
        };
        let replay = Replay::new();
        for record in records {
            match record {
                Ok(env) => {
                    let mut s = self.snapshot.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                    s.follow_warning = None;
                    if let Err(e) = replay.apply_next(&mut s.state, env) {
                        s.problem = Some(LogProblem { seq: e.seq(), message: e.to_string() });
                        return;
                    }
                }
                Err(e @ (store::StoreError::Record { .. } | store::StoreError::MissingRecord { .. })) => {
                    let seq = match &e {
                        store::StoreError::Record { seq, .. } | store::StoreError::MissingRecord { seq } => Some(*seq),
                        _ => None,
                    };
                    let mut s = self.snapshot.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                    s.problem = Some(LogProblem { seq, message: e.to_string() });
                    return;
                }
                Err(e) => {
                    // The writer went away, or is starting: follow tries
                    // again on the next call.
                    self.warn(e.to_string());
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    fn warn(&self, message: String) {
        let mut s = self.snapshot.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.follow_warning = Some(message);
    }

    /// The run's data set (the `data` of its logged configuration), loaded
    /// on the first call.
    pub fn data(&self) -> &RunData {
        self.data.get_or_init(|| {
            let run = self.read().state.run.clone();
            let Some(run) = run else {
                return RunData::Missing("the log has no RunStarted record yet".into());
            };
            match load_data(&self.dir, &run.config_toml) {
                Ok((dataset, path)) => {
                    let changed = dataset.digest() != run.dataset_digest;
                    RunData::Loaded { dataset: Box::new(dataset), path, changed }
                }
                Err(e) => RunData::Missing(format!("{e:#}")),
            }
        })
    }

    /// The record at `seq`, read from the log (for a sample's hashes). The
    /// reader the view opened first is kept; a record it does not have
    /// (appended since, or its writer went away) opens the log again once.
    ///
    /// # Errors
    /// The store's error, or no record at `seq`, as text naming it.
    pub fn record(&self, seq: u64) -> Result<events::Envelope, String> {
        let mut reader = self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = reader.as_ref() {
            if let Ok(Some(env)) = r.get(seq) {
                return Ok(env);
            }
        }
        let log_dir = store::RunDir::new(&self.dir).log();
        let fresh = store::LogReader::open_damaged(&log_dir, None).map_err(|e| e.to_string())?;
        let found = fresh.get(seq).map_err(|e| e.to_string())?;
        *reader = Some(fresh);
        found.ok_or_else(|| format!("the log has no record at seq {seq}"))
    }

    /// Lets go of the log reader the view keeps for record lookups. A
    /// reader of a log nobody else holds reads a private copy of the
    /// database in the temporary directory, removed when the reader goes;
    /// the follow thread never ends, so the view's shutdown calls this
    /// rather than wait for the last reference. A later lookup opens the
    /// log again.
    pub fn release(&self) {
        let mut reader = self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *reader = None;
    }

    /// The evaluation report at `logged` (a path as `EvaluationDone`
    /// names it, relative to the run directory), read and cached.
    ///
    /// # Errors
    /// The report cannot be read or parsed; the message names its path.
    pub fn report(&self, logged: &str) -> Result<Arc<EvalReport>, String> {
        let mut cache = self.reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(logged.to_owned())
            .or_insert_with(|| {
                let path = store::RunDir::new(&self.dir).resolve(logged);
                EvalReport::load(&path).map(Arc::new).map_err(|e| format!("{e:#}"))
            })
            .clone()
    }
}

/// Folds the log in `log_dir` as it is now: the fast parallel fold when
/// the log is sound; else, record by record, what comes before the first
/// record that cannot be used, with that record named.
fn initial_fold(log_dir: &Path) -> anyhow::Result<(store::LogReader, RunState, Option<LogProblem>)> {
    let (reader, damage) = match store::LogReader::open(log_dir, None) {
        Ok(r) => (r, None),
        Err(e @ (store::StoreError::Corrupt { .. } | store::StoreError::Truncated { .. })) => {
            (store::LogReader::open_damaged(log_dir, None)?, Some(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    if damage.is_none() {
        if let Ok(state) = Replay::new().fold_log(&reader) {
            return Ok((reader, state, None));
        }
    }
    let replay = Replay::new();
    let mut state = RunState::new();
    for record in reader.iter() {
        let after = state.last.map(|(s, _)| s);
        let problem = match record {
            Ok(env) => match replay.apply_next(&mut state, env) {
                Ok(()) => continue,
                Err(e) => LogProblem { seq: e.seq(), message: e.to_string() },
            },
            Err(e) => {
                let e = replay::ReplayError::Store { after_seq: after, source: Box::new(e) };
                LogProblem { seq: e.seq(), message: e.to_string() }
            }
        };
        return Ok((reader, state, Some(problem)));
    }
    let problem = damage.map(|message| LogProblem { seq: state.last.map(|(s, _)| s + 1), message });
    Ok((reader, state, problem))
}

fn load_data(run_dir: &Path, config_toml: &str) -> anyhow::Result<(Dataset, PathBuf)> {
    let config = crate::config::RunConfig::from_toml(config_toml, &run_dir.join("config.toml"))
        .context("reading the run's logged configuration")?;
    let path = config.data.clone();
    let dataset = Dataset::load(&path).with_context(|| {
        format!("loading the run's data set {} (inputs, profiles and expected outputs are not shown)", path.display())
    })?;
    Ok((dataset, path))
}
