//! The run directory: where one run's log and checkpoints live, readable by
//! their owner only.
//!
//! ```text
//! RUN_DIR/          0700
//!   log/            0700   the sled database of the event log
//!     owner.lock    0600   who has the log open (pid, role, since)
//!     reader.sock          where other processes read while it is open
//!     flushed       0600   records the writer had made durable at its last flush
//!   blobs/          0700   checkpoints named by content hash
//!   reports/        0700   evaluation and reward check reports (the log names
//!                          them relative to RUN_DIR)
//! ```
//!
//! A run directory holds users' personal text (profiles, prompts, generated
//! emails and reviews), so every directory is created `0700` and every file
//! this crate writes `0600`; opening an existing log tightens its directory
//! back to `0700`.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::blob::BlobStore;
use crate::StoreError;

/// The name of the reports directory in a run directory.
pub const REPORTS: &str = "reports";

/// A run directory (see the module docs for its layout): where things go.
/// [`EventLog`](crate::EventLog) takes [`RunDir::log`], [`BlobStore`] takes
/// [`RunDir::blobs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The layout of the run directory at `path` (nothing is touched).
    pub fn new(path: impl AsRef<Path>) -> RunDir {
        RunDir { root: path.as_ref().to_path_buf() }
    }

    /// Creates `path` (and missing parents), `log/` and `blobs/`, all `0700`.
    /// An existing directory is accepted and tightened to `0700`.
    ///
    /// # Errors
    /// [`StoreError::Io`] naming the directory that could not be made.
    pub fn create(path: impl AsRef<Path>) -> Result<RunDir, StoreError> {
        let dir = RunDir::new(path);
        for d in [dir.root.clone(), dir.log(), dir.blobs()] {
            create_private_dir(&d).map_err(|e| StoreError::io(&d, e))?;
        }
        Ok(dir)
    }

    /// The run directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `RUN_DIR/log`, the event log's sled database.
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }

    /// `RUN_DIR/blobs`, the checkpoint store.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `RUN_DIR/reports`, where evaluations and the reward check write
    /// their reports.
    pub fn reports(&self) -> PathBuf {
        self.root.join(REPORTS)
    }

    /// A report path as the log holds it (`EvaluationDone::report_path`,
    /// relative to the run directory, e.g. `reports/x.json`) as a path to
    /// open: an absolute path is kept, a relative one is taken from the run
    /// directory. Logs written before reports were named relative to the
    /// run directory hold the path the evaluator was handed, the run
    /// directory joined with `reports/…` as given on the command line; that
    /// leading run directory is dropped before joining.
    pub fn resolve(&self, logged: &str) -> PathBuf {
        let path = Path::new(logged);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        let within = match path.strip_prefix(&self.root) {
            Ok(rest) if !self.root.as_os_str().is_empty() && rest.starts_with(REPORTS) => rest,
            _ => path,
        };
        self.root.join(within)
    }

    /// The checkpoint store of this run (created if missing).
    ///
    /// # Errors
    /// As [`BlobStore::open`].
    pub fn blob_store(&self) -> Result<BlobStore, StoreError> {
        BlobStore::open(self.blobs())
    }
}

/// Checks that `dir` holds a log (sled's `db` file) before anything opens
/// sled there, which would create a database in any directory, and
/// tightens the directory to `0700`.
pub(crate) fn existing_log_dir(dir: &Path) -> Result<PathBuf, StoreError> {
    if !dir.join("db").is_file() {
        return Err(StoreError::NoLog { dir: dir.to_path_buf() });
    }
    create_private_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    Ok(dir.to_path_buf())
}

/// Writes `bytes` to a new or truncated file at `path`, mode `0600`, and
/// fsyncs it: for configuration copies and reports in a run directory.
///
/// # Errors
/// The I/O error.
pub fn write_private_file(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let path = path.as_ref();
    let mut f = create_private_file(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// `mkdir -p` with mode `0700` for every directory it creates, then `0700`
/// on `path` itself whatever it was.
///
/// # Errors
/// The I/O error.
pub fn create_private_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens `path` for writing, created `0600` and truncated; an existing file
/// is set to `0600` too (`open` keeps an existing file's mode). The one way
/// restpg opens a file it streams users' text into (exports, reports).
///
/// # Errors
/// The I/O error.
pub fn create_private_file(path: impl AsRef<Path>) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path.as_ref())?;
    if f.metadata()?.permissions().mode() & 0o777 != 0o600 {
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Sets every regular file under `dir` to `0600` and every directory under
/// it to `0700`, recursively (sled creates its files and its `blobs/`
/// directory with the process umask; the `0700` log directory already
/// keeps others out, this keeps a copied directory private too).
pub(crate) fn tighten_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))?;
        } else if meta.is_dir() {
            if meta.permissions().mode() & 0o777 != 0o700 {
                fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700))?;
            }
            tighten_files(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_report_path_resolves_from_the_run_directory() {
        let dir = RunDir::new("runs/demo/run");
        // The contract: relative to the run directory.
        assert_eq!(dir.resolve("reports/a.json"), Path::new("runs/demo/run/reports/a.json"));
        assert_eq!(dir.resolve("/abs/reports/a.json"), Path::new("/abs/reports/a.json"));
        // A log from before the contract was kept names the run directory
        // as it was given; it is not joined twice.
        assert_eq!(dir.resolve("runs/demo/run/reports/a.json"), Path::new("runs/demo/run/reports/a.json"));
        // A run directory that merely shares a prefix is not stripped.
        assert_eq!(RunDir::new("runs").resolve("runs/x.json"), Path::new("runs/runs/x.json"));
        assert_eq!(dir.reports(), Path::new("runs/demo/run/reports"));
    }
}
