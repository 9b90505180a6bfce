//! Who has a log open: an exclusive `flock` on `log/owner.lock`, with the
//! holder's pid, role and start time written inside for error messages.
//! Readers never open the database itself: they hold the lock *shared*
//! while they copy the database into a private directory, and write
//! nothing, so that reading never changes a byte of a run directory.
//!
//! sled 0.34 already locks its database file, but its error says only
//! "could not acquire lock"; this lock comes first and names the holder. A
//! `flock` belongs to an open file description, so two opens in the same
//! process conflict just as two processes do.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fs2::FileExt;

/// What the holder of a log does with it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum LockRole {
    /// An [`EventLog`](crate::EventLog): appends.
    Writer,
    /// A [`LogReader`](crate::LogReader) taking a private copy of the
    /// database (it holds the lock shared, and only while it copies).
    Reader,
}

impl LockRole {
    fn as_str(self) -> &'static str {
        match self {
            LockRole::Writer => "writer",
            LockRole::Reader => "reader",
        }
    }
}

/// The process that holds a log, as its lock file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    /// Its process id (0 when the lock file was unreadable).
    pub pid: u32,
    /// `writer` or `reader` (empty when unknown).
    pub role: String,
    /// When it took the lock (RFC 3339), as it wrote.
    pub since: String,
}

impl LockHolder {
    /// Whether the holder is this very process.
    pub fn is_this_process(&self) -> bool {
        self.pid == std::process::id()
    }

    /// Whether the holder appends.
    pub fn is_writer(&self) -> bool {
        self.role == LockRole::Writer.as_str()
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pid == 0 && self.role == LockRole::Reader.as_str() {
            return f.write_str("readers taking a copy of the log");
        }
        if self.pid == 0 {
            return f.write_str("another process (its lock file says nothing more)");
        }
        write!(f, "a {} in pid {}", if self.role.is_empty() { "holder" } else { &self.role }, self.pid)?;
        if self.is_this_process() {
            f.write_str(" (this process)")?;
        }
        if !self.since.is_empty() {
            write!(f, " since {}", self.since)?;
        }
        Ok(())
    }
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct OwnerLock {
    _file: fs::File,
}

pub(crate) fn lock_path(log_dir: &Path) -> PathBuf {
    log_dir.join("owner.lock")
}

/// Who holds the lock when only readers do: they take it shared, write
/// nothing into the file, and say nothing more about themselves.
fn readers() -> LockHolder {
    LockHolder { pid: 0, role: LockRole::Reader.as_str().to_owned(), since: String::new() }
}

impl OwnerLock {
    /// Takes the lock exclusively as a writer (creating the file `0600`
    /// and writing this process's pid, role and time into it), or says
    /// who holds it: a writer as its file says, or readers taking a copy.
    pub fn try_acquire(log_dir: &Path, role: LockRole) -> std::io::Result<Result<OwnerLock, LockHolder>> {
        let path = lock_path(log_dir);
        let mut file =
            fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path)?;
        if file.try_lock_exclusive().is_err() {
            // Shared holders are readers: a second look tells them apart
            // from a writer, whose exclusive lock refuses a shared one too.
            let probe = fs::File::open(&path)?;
            if probe.try_lock_shared().is_ok() {
                return Ok(Err(readers()));
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Ok(Err(parse_holder(&text)));
        }
        file.set_len(0)?;
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        writeln!(file, "pid={} role={} since={}", std::process::id(), role.as_str(), since)?;
        file.flush()?;
        Ok(Ok(OwnerLock { _file: file }))
    }

    /// Takes the lock shared, as a reader copying the log, without writing
    /// anything: `Ok(None)` when the log has no lock file (no writer ever
    /// opened it), or the writer that holds it exclusively.
    pub fn try_shared(log_dir: &Path) -> std::io::Result<Result<Option<OwnerLock>, LockHolder>> {
        let path = lock_path(log_dir);
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(None)),
            Err(e) => return Err(e),
        };
        if file.try_lock_shared().is_err() {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Ok(Err(parse_holder(&text)));
        }
        Ok(Ok(Some(OwnerLock { _file: file })))
    }
}

fn parse_holder(text: &str) -> LockHolder {
    let mut h = LockHolder { pid: 0, role: String::new(), since: String::new() };
    for part in text.split_whitespace() {
        match part.split_once('=') {
            Some(("pid", v)) => h.pid = v.parse().unwrap_or(0),
            Some(("role", v)) => h.role = v.to_owned(),
            Some(("since", v)) => h.since = v.to_owned(),
            _ => {}
        }
    }
    h
}
