//! The run directory: where one run's log and checkpoints live, readable by
//! their owner only.
//!
//! ```text
//! RUN_DIR/          0700
//!   log/            0700   the sled database of the event log
//!     owner.lock    0600   who has the log open (pid, role, since)
//!     reader.sock          where other processes read while it is open
//!   blobs/          0700   checkpoints named by content hash
//! ```
//!
//! A run directory holds users' personal text (profiles, prompts, generated
//! emails and reviews), so every directory is created `0700` and every file
//! this crate writes `0600`; opening an existing directory tightens wider
//! modes back to `0700`.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::blob::BlobStore;
use crate::StoreError;

/// A run directory (see the module docs for its layout).
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates `path` (and missing parents), `log/` and `blobs/`, all `0700`.
    /// An existing directory is accepted and tightened.
    ///
    /// # Errors
    /// [`StoreError::Io`] naming the directory that could not be made.
    pub fn create(path: impl AsRef<Path>) -> Result<RunDir, StoreError> {
        let dir = RunDir { root: path.as_ref().to_path_buf() };
        for d in [dir.root.clone(), dir.log_dir(), dir.blobs_dir()] {
            create_private_dir(&d).map_err(|e| StoreError::io(&d, e))?;
        }
        Ok(dir)
    }

    /// An existing run directory; its directories are tightened to `0700`.
    ///
    /// # Errors
    /// [`StoreError::NoLog`] when `path/log` does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<RunDir, StoreError> {
        let dir = RunDir { root: path.as_ref().to_path_buf() };
        if !dir.log_dir().is_dir() {
            return Err(StoreError::NoLog { dir: dir.root });
        }
        for d in [dir.root.clone(), dir.log_dir(), dir.blobs_dir()] {
            create_private_dir(&d).map_err(|e| StoreError::io(&d, e))?;
        }
        Ok(dir)
    }

    /// The run directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `RUN_DIR/log`, the sled database.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// `RUN_DIR/blobs`, the checkpoint store.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The checkpoint store of this run.
    ///
    /// # Errors
    /// As [`BlobStore::open`].
    pub fn blobs(&self) -> Result<BlobStore, StoreError> {
        BlobStore::open(self.blobs_dir())
    }
}

/// `mkdir -p` with mode `0700` for what it creates, then `0700` on `path`
/// itself whatever it was.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens `path` for writing (created `0600`, truncated).
pub(crate) fn create_private_file(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

/// Sets every regular file directly in `dir` to `0600` (sled creates its
/// files with the process umask; the `0700` directory already keeps others
/// out, this keeps a copied directory private too).
pub(crate) fn tighten_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}
