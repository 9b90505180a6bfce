//! Following a log across writer sessions, as `restpg log tail --follow`
//! does: a run may be stopped and resumed while someone watches it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use events::Envelope;

use crate::reader::{holder, LogReader, Records};
use crate::rundir::existing_log_dir;
use crate::StoreError;

/// Follows the log in `dir` from `from_seq` on, forever:
/// what is there, then every record appended later, by this writer or by
/// the next one (see [`Follow`]).
///
/// # Errors
/// [`StoreError::NoLog`] when `dir` has no log.
pub fn follow(dir: impl AsRef<Path>, expected_run_id: Option<&str>, from_seq: u64) -> Result<Follow, StoreError> {
    Ok(Follow {
        log_dir: existing_log_dir(dir.as_ref())?,
        expected: expected_run_id.map(str::to_owned),
        next: from_seq,
        current: None,
        first: true,
        seen: None,
        poll: Duration::from_millis(250),
    })
}

/// An endless iterator over a log's records (see [`follow`]).
///
/// While a process has the log open it reads through that process (which
/// pushes new records at once); while nobody does, it holds nothing open, so
/// that a writer can start, and looks every 250 ms for a process holding
/// the log or a database file that changed. After an error the next call
/// tries again; a caller that prints records usually stops instead.
pub struct Follow {
    log_dir: PathBuf,
    expected: Option<String>,
    next: u64,
    current: Option<Records>,
    first: bool,
    seen: Option<SystemTime>,
    poll: Duration,
}

impl Follow {
    /// The sequence number of the next record it will yield.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    fn db_mtime(&self) -> Option<SystemTime> {
        std::fs::metadata(self.log_dir.join("db")).and_then(|m| m.modified()).ok()
    }

    /// Whether something may have changed since the last pass.
    fn worth_a_look(&self) -> Result<bool, StoreError> {
        Ok(holder(&self.log_dir)?.is_some() || self.db_mtime() != self.seen)
    }
}

impl Iterator for Follow {
    type Item = Result<Envelope, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(current) = self.current.as_mut() {
                match current.next() {
                    Some(Ok(env)) if env.seq < self.next => continue,
                    Some(Ok(env)) => {
                        self.next = env.seq + 1;
                        return Some(Ok(env));
                    }
                    Some(Err(e)) => {
                        self.current = None;
                        return Some(Err(e));
                    }
                    None => {
                        self.current = None;
                        self.seen = self.db_mtime();
                    }
                }
            }
            if !self.first {
                std::thread::sleep(self.poll);
                match self.worth_a_look() {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(e) => return Some(Err(e)),
                }
            }
            self.first = false;
            match LogReader::open(&self.log_dir, self.expected.as_deref()) {
                Ok(reader) => self.current = Some(reader.subscribe(self.next)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
