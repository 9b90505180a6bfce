//! The [`LogWriter`]: the single owner of the run's [`store::EventLog`].
//!
//! It runs in its own [`SyncArbiter`] thread because sled's appends and
//! fsyncs block. Everything that is appended in a run goes through its
//! mailbox, in order: the coordinator's events and the trainer's progress
//! reports. A result "counts" only once the writer has answered its
//! [`Append`]; step boundaries are followed by a [`Flush`].

use std::sync::Arc;

use actix::prelude::*;
use events::{Envelope, Event};

use crate::resume::LoggedRun;

/// An error of an [`EventSink`], as its own type.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// What the [`LogWriter`] needs of a log: idempotent appends, fsync, and a
/// full read. Implemented for [`store::EventLog`] (the real, sled-backed
/// log); the trait keeps the store's API in one place, and lets a remote or
/// in-memory log plug in the same way.
pub trait EventSink: Send + 'static {
    /// Appends `event`; `Ok(false)` when an event with its id was already in
    /// the log (a no-op).
    ///
    /// # Errors
    /// The store's write error.
    fn append_event(&mut self, event: Event) -> Result<bool, SinkError>;
    /// Appends `events` in order, ideally as one atomic write; one flag per
    /// event, `false` for a duplicate. The default appends one by one.
    ///
    /// # Errors
    /// The store's write error.
    fn append_events(&mut self, events: Vec<Event>) -> Result<Vec<bool>, SinkError> {
        events.into_iter().map(|e| self.append_event(e)).collect()
    }
    /// Makes every appended event durable.
    ///
    /// # Errors
    /// The store's flush error.
    fn flush_events(&mut self) -> Result<(), SinkError>;
    /// Every record, in sequence order.
    ///
    /// # Errors
    /// A record that cannot be read or fails its hash.
    fn read_all(&self) -> Result<Vec<Envelope>, SinkError>;
}

impl EventSink for store::EventLog {
    fn append_event(&mut self, event: Event) -> Result<bool, SinkError> {
        Ok(!self.append(event)?.is_duplicate())
    }
    fn append_events(&mut self, events: Vec<Event>) -> Result<Vec<bool>, SinkError> {
        Ok(self.append_batch(events)?.into_iter().map(|o| !o.is_duplicate()).collect())
    }
    fn flush_events(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        Ok(())
    }
    fn read_all(&self) -> Result<Vec<Envelope>, SinkError> {
        Ok(self.iter().collect::<Result<Vec<_>, _>>()?)
    }
}

/// Called by the writer for each event newly appended (not for duplicates),
/// in log order, on the writer's thread: the root package drives its
/// progress bars from it. Must be cheap.
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// A failure of the event log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The store refused an operation.
    #[error("event log {op} failed: {message}")]
    Store {
        /// `append`, `flush` or `read`.
        op: &'static str,
        /// The store's error, as text.
        message: String,
    },
    /// The log was already closed.
    #[error("event log is closed")]
    Closed,
    /// The log holds events of another run.
    #[error("the event log belongs to run {found:?}, not {expected:?}")]
    WrongRun {
        /// The plan's run id.
        expected: String,
        /// The run id found in the log.
        found: String,
    },
}

/// Appends events in order. Duplicates (an event id already in the log) are
/// no-ops, so re-appending after a resume is harmless.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<AppendReport, LogError>")]
pub struct Append(pub Vec<Event>);

/// What an [`Append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendReport {
    /// Events written.
    pub appended: usize,
    /// Events whose id was already in the log.
    pub duplicates: usize,
}

/// Makes every appended event durable (fsync).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), LogError>")]
pub struct Flush;

/// Reads the whole log and folds the events of `run_id` into a
/// [`LoggedRun`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<LoggedRun, LogError>")]
pub struct LoadRun {
    /// The run whose events are folded; an event of another run is an error.
    pub run_id: String,
}

/// Flushes and drops the log (releasing sled's lock on its directory), so
/// the caller can reopen it as soon as the reply arrives.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), LogError>")]
pub struct Close;

/// The single writer of the event log. See the module documentation.
pub struct LogWriter {
    log: Option<Box<dyn EventSink>>,
    observer: Option<Observer>,
    /// An error from a fire-and-forget [`Append`] (trainer progress), handed
    /// to the next caller that waits for an answer so it is never lost.
    deferred: Option<LogError>,
}

impl LogWriter {
    /// Starts the writer in its own thread.
    pub fn start(log: Box<dyn EventSink>, observer: Option<Observer>) -> Addr<LogWriter> {
        // SyncArbiter's factory is `Fn`, the log can be moved out once: the
        // writer thread is started with one worker and never restarted
        // (it does not stop itself), so the factory runs exactly once.
        let slot = std::sync::Mutex::new(Some(log));
        SyncArbiter::start(1, move || {
            let log = slot.lock().ok().and_then(|mut s| s.take());
            LogWriter { log, observer: observer.clone(), deferred: None }
        })
    }

    fn log(&mut self) -> Result<&mut (dyn EventSink + 'static), LogError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        self.log.as_deref_mut().ok_or(LogError::Closed)
    }
}

impl Actor for LogWriter {
    type Context = SyncContext<Self>;
}

impl Handler<Append> for LogWriter {
    type Result = Result<AppendReport, LogError>;

    fn handle(&mut self, msg: Append, _: &mut SyncContext<Self>) -> Self::Result {
        let result = append_all(self, msg.0);
        if let Err(e) = &result {
            // Nobody may be waiting for this answer (do_send): keep it.
            self.deferred.get_or_insert_with(|| e.clone());
        }
        result
    }
}

fn append_all(w: &mut LogWriter, events: Vec<Event>) -> Result<AppendReport, LogError> {
    let observer = w.observer.clone();
    let log = w.log()?;
    let mut report = AppendReport::default();
    let flags =
        log.append_events(events.clone()).map_err(|e| LogError::Store { op: "append", message: e.to_string() })?;
    for (event, new) in events.iter().zip(flags) {
        if !new {
            report.duplicates += 1;
        } else {
            report.appended += 1;
            if let Some(o) = &observer {
                o(event);
            }
        }
    }
    Ok(report)
}

impl Handler<Flush> for LogWriter {
    type Result = Result<(), LogError>;

    fn handle(&mut self, _: Flush, _: &mut SyncContext<Self>) -> Self::Result {
        self.log()?.flush_events().map_err(|e| LogError::Store { op: "flush", message: e.to_string() })?;
        Ok(())
    }
}

impl Handler<LoadRun> for LogWriter {
    type Result = Result<LoggedRun, LogError>;

    fn handle(&mut self, msg: LoadRun, _: &mut SyncContext<Self>) -> Self::Result {
        let log = self.log()?;
        let mut state = LoggedRun::default();
        let records = log.read_all().map_err(|e| LogError::Store { op: "read", message: e.to_string() })?;
        for env in records {
            if env.run_id != msg.run_id {
                return Err(LogError::WrongRun { expected: msg.run_id, found: env.run_id });
            }
            state.apply(&env.payload);
        }
        Ok(state)
    }
}

impl Handler<Close> for LogWriter {
    type Result = Result<(), LogError>;

    fn handle(&mut self, _: Close, _: &mut SyncContext<Self>) -> Self::Result {
        let deferred = self.deferred.take();
        if let Some(mut log) = self.log.take() {
            log.flush_events().map_err(|e| LogError::Store { op: "flush", message: e.to_string() })?;
            drop(log);
        }
        deferred.map_or(Ok(()), Err)
    }
}
