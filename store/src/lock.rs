//! Who has a log open: an exclusive `flock` on `log/owner.lock`, with the
//! holder's pid, role and start time written inside for error messages.
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
pub(crate) enum Role {
    /// An [`EventLog`](crate::EventLog): appends.
    Writer,
    /// A [`LogReader`](crate::LogReader) that opened the database itself.
    Reader,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
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
        self.role == Role::Writer.as_str()
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

impl OwnerLock {
    /// Takes the lock, or says who holds it.
    pub fn try_acquire(log_dir: &Path, role: Role) -> std::io::Result<Result<OwnerLock, LockHolder>> {
        let path = lock_path(log_dir);
        let mut file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path)?;
        if file.try_lock_exclusive().is_err() {
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
