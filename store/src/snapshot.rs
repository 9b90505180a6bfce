//! Reading a log that no process has open: from a private copy.
//!
//! sled 0.34 recovers a database as it opens it, and recovery writes: on a
//! damaged `db` file it zeroes everything after the damage, or extends the
//! file and writes a new snapshot, and some damage makes it panic half way.
//! A reader therefore never opens sled on a run's own files. Under the
//! owner lock taken *shared* (so that no writer appends meanwhile) it copies
//! the log directory into a private temporary directory (`0700`, removed
//! when the reader goes) and opens the copy; the run directory is only read.
//!
//! When the copy does not open, the reader still wants the intact records:
//! it tries a copy without sled's snapshot files (sled then rebuilds its
//! state from the log alone), then copies of ever shorter prefixes of `db`,
//! keeping the longest one sled opens. What it found is a [`Recovery`].

use std::fs;
use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::flushed;
use crate::lock::lock_path;
use crate::remote::socket_path;
use crate::StoreError;

/// What sled did with a damaged copy, as far as it lets us know.
#[derive(Clone, Debug)]
pub(crate) struct Recovery {
    /// The database file, in the run's log directory.
    pub file: PathBuf,
    /// A byte offset in it: where sled found the damage, or the first
    /// byte it changed while recovering.
    pub offset: Option<u64>,
    /// What sled said or did.
    pub detail: String,
    /// Whether the copy opened only after falling back (without snapshots
    /// or on a prefix of `db`), not as it was.
    pub fell_back: bool,
}

/// An opened private copy.
pub(crate) struct Opened {
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub dir: tempfile::TempDir,
    pub recovery: Option<Recovery>,
}

thread_local! {
    /// Whether a panic on this thread is one [`quietly`] catches and reports.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic (sled 0.34 panics on some damaged
/// databases) without the panic hook printing it: it becomes an error
/// that names the file instead. The hook in place the first time stays in
/// charge of every other panic.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let out = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    out
}

/// Opens sled in `dir` the way a log is opened, turning a panic into an
/// error.
pub(crate) fn open_sled(dir: &Path) -> Result<(sled::Db, sled::Tree), String> {
    let attempt = quietly(|| -> sled::Result<(sled::Db, sled::Tree)> {
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open()?;
        let tree = db.open_tree("events")?;
        Ok((db, tree))
    });
    match attempt {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(describe(&e)),
        Err(panic) => Err(format!("sled panicked: {}", panic_message(&*panic))),
    }
}

/// sled's error, with the offset it names if any.
pub(crate) fn describe(e: &sled::Error) -> String {
    match e {
        sled::Error::Corruption { at: Some(ptr), .. } => format!("sled found corrupted data at offset {}", ptr.lid()),
        sled::Error::Corruption { at: None, .. } => "sled found corrupted data (it does not say where)".to_owned(),
        e => format!("sled: {e}"),
    }
}

/// The offset a sled error names, if any.
pub(crate) fn offset_of(e: &sled::Error) -> Option<u64> {
    match e {
        sled::Error::Corruption { at: Some(ptr), .. } => Some(ptr.lid()),
        _ => None,
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// How a copy is made.
#[derive(Copy, Clone)]
struct Plan {
    snapshots: bool,
    db_len: Option<u64>,
}

/// Copies the sled files of `log_dir` (not the lock, socket or `flushed`)
/// into a new private temporary directory.
fn copy(log_dir: &Path, plan: Plan) -> Result<tempfile::TempDir, StoreError> {
    let tmp = tempfile::Builder::new()
        .prefix("restpg-log-copy-")
        .tempdir()
        .map_err(|e| StoreError::io(&std::env::temp_dir(), e))?;
    let skip = [lock_path(log_dir), socket_path(log_dir), flushed::path(log_dir), log_dir.join("flushed.tmp")];
    let entries = fs::read_dir(log_dir).map_err(|e| StoreError::io(log_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(log_dir, e))?;
        let from = entry.path();
        let name = entry.file_name();
        if skip.contains(&from) || (!plan.snapshots && name.to_string_lossy().starts_with("snap.")) {
            continue;
        }
        let to = tmp.path().join(&name);
        let meta = entry.metadata().map_err(|e| StoreError::io(&from, e))?;
        if meta.is_dir() {
            copy_tree(&from, &to)?;
        } else if meta.is_file() {
            match plan.db_len {
                Some(len) if name == "db" => copy_prefix(&from, &to, len)?,
                _ => {
                    fs::copy(&from, &to).map_err(|e| StoreError::io(&from, e))?;
                }
            }
        }
    }
    Ok(tmp)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), StoreError> {
    crate::rundir::create_private_dir(to).map_err(|e| StoreError::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| StoreError::io(from, e))? {
        let entry = entry.map_err(|e| StoreError::io(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = entry.metadata().map_err(|e| StoreError::io(&src, e))?;
        if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else if meta.is_file() {
            fs::copy(&src, &dst).map_err(|e| StoreError::io(&src, e))?;
        }
    }
    Ok(())
}

fn copy_prefix(from: &Path, to: &Path, len: u64) -> Result<(), StoreError> {
    let mut src = fs::File::open(from).map_err(|e| StoreError::io(from, e))?;
    let mut dst = crate::rundir::create_private_file(to).map_err(|e| StoreError::io(to, e))?;
    io::copy(&mut (&mut src).take(len), &mut dst).map_err(|e| StoreError::io(to, e))?;
    Ok(())
}

/// Where the copy differs from the original within the original's length
/// (bytes sled appended are not a change of what was there): the first and
/// last differing offsets and how many bytes differ.
fn differences(original: &Path, copy: &Path) -> io::Result<Option<(u64, u64, u64)>> {
    let (mut a, mut b) = (io::BufReader::new(fs::File::open(original)?), io::BufReader::new(fs::File::open(copy)?));
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut at = 0u64;
    let mut found: Option<(u64, u64, u64)> = None;
    loop {
        let n = read_full(&mut a, &mut x)?;
        if n == 0 {
            return Ok(found);
        }
        let m = read_full(&mut b, &mut y[..n])?;
        for i in (0..n).filter(|&i| i >= m || x[i] != y[i]) {
            let off = at + i as u64;
            found = Some(found.map_or((off, off, 1), |(f, _, c)| (f, off, c + 1)));
        }
        at += n as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Whether an opened copy holds a log whose records all read.
fn usable(db: &sled::Db, tree: &sled::Tree) -> bool {
    quietly(|| matches!(db.get(crate::reader::META_RUN_ID), Ok(Some(_))) && tree.iter().all(|r| r.is_ok()))
        .unwrap_or(false)
}

/// Copies the log in `log_dir` and opens the copy, falling back as the
/// module docs say when it does not open. The caller holds the owner lock
/// shared (or there is no lock file).
///
/// # Errors
/// [`StoreError::Corrupt`] when no copy opens at all; I/O errors.
pub(crate) fn open(log_dir: &Path) -> Result<Opened, StoreError> {
    let db_file = log_dir.join("db");
    let full = Plan { snapshots: true, db_len: None };
    let dir = copy(log_dir, full)?;
    let first = match open_sled(dir.path()) {
        Ok((db, tree)) => {
            let changed = differences(&db_file, &dir.path().join("db")).map_err(|e| StoreError::io(&db_file, e))?;
            let recovery = changed.map(|(first, last, count)| Recovery {
                file: db_file.clone(),
                offset: Some(first),
                detail: format!(
                    "recovering it (in a private copy), sled changed {count} bytes between offsets {first} and {last}: it drops what it cannot read"
                ),
                fell_back: false,
            });
            return Ok(Opened { db, tree, dir, recovery });
        }
        Err(detail) => detail,
    };
    drop(dir);
    let recovery = |offset| Recovery { file: db_file.clone(), offset, detail: first.clone(), fell_back: true };
    // sled's own offset, when it gave one.
    let named = first.rsplit_once("at offset ").and_then(|(_, n)| n.parse::<u64>().ok());

    let dir = copy(log_dir, Plan { snapshots: false, db_len: None })?;
    if let Ok((db, tree)) = open_sled(dir.path()) {
        if usable(&db, &tree) {
            return Ok(Opened { db, tree, dir, recovery: Some(recovery(named)) });
        }
    }
    drop(dir);

    // The longest prefix of `db` that opens: bisect on its length, 512
    // bytes at a time.
    let len = fs::metadata(&db_file).map_err(|e| StoreError::io(&db_file, e))?.len();
    let (mut lo, mut hi) = (0u64, len / 512 + 1); // prefix of lo*512 bytes opens (or lo = 0); hi*512 does not
    let mut best: Option<(u64, tempfile::TempDir, sled::Db, sled::Tree)> = None;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let dir = copy(log_dir, Plan { snapshots: false, db_len: Some(mid * 512) })?;
        match open_sled(dir.path()) {
            Ok((db, tree)) if usable(&db, &tree) => {
                lo = mid;
                best = Some((mid * 512, dir, db, tree));
            }
            _ => hi = mid,
        }
    }
    match best {
        Some((cut, dir, db, tree)) => {
            let mut r = recovery(named.or(Some(cut)));
            r.detail = format!("{}; the first {cut} bytes of it open", r.detail);
            Ok(Opened { db, tree, dir, recovery: Some(r) })
        }
        None => Err(StoreError::Corrupt {
            dir: log_dir.to_path_buf(),
            file: db_file,
            offset: named,
            last_intact: None,
            detail: format!("{first}; no prefix of it opens either"),
        }),
    }
}
