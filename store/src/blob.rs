//! Checkpoints named by content hash.
//!
//! A checkpoint is a safetensors file, or a Hugging Face-layout directory
//! (`model.safetensors`, `config.json`, tokenizer files) that serving
//! engines load unchanged. Either is stored once under `blobs/<hex>`, where
//! `<hex>` is:
//!
//! - for a file, the blake3 of its bytes (what `b3sum` prints);
//! - for a directory, the blake3 over its files sorted by relative path,
//!   each as (length-prefixed path, blake3 of its bytes): a tree digest that
//!   changes when any file is renamed, altered, added or removed.
//!
//! Weights never go into sled; the log records the hash and the path
//! (`CheckpointSaved`). [`BlobStore::get`] re-hashes on every read, so a
//! truncated or altered checkpoint is an error naming its hash and path
//! rather than a model that loads and quietly computes something else.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use events::{digest_hex, Digest};

use crate::rundir::{create_private_dir, create_private_file};
use crate::StoreError;

/// The checkpoint store of one run (`RUN_DIR/blobs`).
#[derive(Clone, Debug)]
pub struct BlobStore {
    dir: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl BlobStore {
    /// Opens (creating, mode `0700`) the store in `dir`.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn open(dir: impl AsRef<Path>) -> Result<BlobStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        create_private_dir(&dir).map_err(|e| StoreError::io(&dir, e))?;
        Ok(BlobStore { dir })
    }

    /// Where the blob `hash` lies (whether or not it is there).
    pub fn path_of(&self, hash: &Digest) -> PathBuf {
        self.dir.join(digest_hex(hash))
    }

    /// The path to record in `CheckpointSaved`: `blobs/<hex>`, relative to
    /// the run directory.
    pub fn relative_path(hash: &Digest) -> String {
        format!("blobs/{}", digest_hex(hash))
    }

    /// Whether a blob of that name exists (its content is not checked).
    pub fn contains(&self, hash: &Digest) -> bool {
        self.path_of(hash).exists()
    }

    /// Copies the file or directory `src` into the store and returns its
    /// content hash. The copy is hashed as it is written, then fsynced and
    /// renamed into place, so a crash never leaves a blob under a name it
    /// does not hash to. Storing content that is already there (and intact)
    /// writes nothing.
    ///
    /// # Errors
    /// [`StoreError::Io`] naming the file that could not be read or
    /// written (a symbolic link inside a directory is refused).
    pub fn put(&self, src: impl AsRef<Path>) -> Result<Digest, StoreError> {
        let src = src.as_ref();
        let tmp = self.tmp_path();
        let hash = copy_hashing(src, &tmp).inspect_err(|_| {
            let _ = remove_any(&tmp);
        })?;
        self.settle(&tmp, &hash)?;
        Ok(hash)
    }

    /// Stores `bytes` as a file blob and returns its hash.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let tmp = self.tmp_path();
        let write = || -> io::Result<()> {
            let mut f = create_private_file(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::io(&tmp, e)
        })?;
        let hash = events::digest(bytes);
        self.settle(&tmp, &hash)?;
        Ok(hash)
    }

    /// Moves the finished copy `tmp` to its name, unless an intact blob of
    /// that name is there already.
    fn settle(&self, tmp: &Path, hash: &Digest) -> Result<(), StoreError> {
        let dest = self.path_of(hash);
        if dest.exists() {
            if self.get(hash).is_ok() {
                return remove_any(tmp);
            }
            remove_any(&dest)?;
        }
        fs::rename(tmp, &dest).map_err(|e| StoreError::io(&dest, e))?;
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(&self.dir, e))
    }

    fn tmp_path(&self) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!(".tmp-{}-{n}", std::process::id()))
    }

    /// The path of blob `hash` after checking that its content still hashes
    /// to its name.
    ///
    /// # Errors
    /// [`StoreError::BlobMissing`], [`StoreError::BlobCorrupt`] (truncated,
    /// altered, a file of a directory missing or added), or an I/O error.
    pub fn get(&self, hash: &Digest) -> Result<PathBuf, StoreError> {
        let path = self.path_of(hash);
        if !path.exists() {
            return Err(StoreError::BlobMissing { hash: digest_hex(hash), path });
        }
        let computed = hash_path(&path)?;
        if &computed != hash {
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            return Err(StoreError::BlobCorrupt {
                hash: digest_hex(hash),
                path,
                computed: digest_hex(&computed),
                size,
            });
        }
        Ok(path)
    }
}

/// The content hash of a file or directory, as [`BlobStore`] names it.
///
/// # Errors
/// [`StoreError::Io`] naming the unreadable file.
pub fn hash_path(path: impl AsRef<Path>) -> Result<Digest, StoreError> {
    let path = path.as_ref();
    let meta = fs::symlink_metadata(path).map_err(|e| StoreError::io(path, e))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        list_files(path, Path::new(""), &mut files)?;
        let hashed = files
            .into_iter()
            .map(|rel| hash_file(&path.join(&rel), None).map(|h| (rel, h)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tree_digest(&hashed))
    } else {
        hash_file(path, None)
    }
}

/// Hashes the file at `src`, writing its bytes to `copy_to` as it goes.
fn hash_file(src: &Path, mut copy_to: Option<&mut fs::File>) -> Result<Digest, StoreError> {
    let mut f = fs::File::open(src).map_err(|e| StoreError::io(src, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| StoreError::io(src, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(out) = copy_to.as_mut() {
            out.write_all(&buf[..n]).map_err(|e| StoreError::io(src, e))?;
        }
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Every regular file under `root/rel`, as paths relative to `root`,
/// sorted. Symbolic links are refused: a blob must hold its bytes.
fn list_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    let dir = root.join(rel);
    let mut entries =
        fs::read_dir(&dir).and_then(|rd| rd.collect::<io::Result<Vec<_>>>()).map_err(|e| StoreError::io(&dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = rel.join(entry.file_name());
        let ty = entry.file_type().map_err(|e| StoreError::io(&entry.path(), e))?;
        if ty.is_dir() {
            list_files(root, &rel, out)?;
        } else if ty.is_file() {
            out.push(rel);
        } else {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file or directory");
            return Err(StoreError::io(&entry.path(), e));
        }
    }
    out.sort();
    Ok(())
}

fn tree_digest(files: &[(PathBuf, Digest)]) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(b"restpg.blob-tree.v1\0");
    h.update(&(files.len() as u64).to_le_bytes());
    for (rel, d) in files {
        let p = rel.to_string_lossy();
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
        h.update(d);
    }
    *h.finalize().as_bytes()
}

/// Copies `src` (file or directory) to `dst`, returning the hash of what
/// was copied; every file is fsynced.
fn copy_hashing(src: &Path, dst: &Path) -> Result<Digest, StoreError> {
    let meta = fs::metadata(src).map_err(|e| StoreError::io(src, e))?;
    let copy_one = |from: &Path, to: &Path| -> Result<Digest, StoreError> {
        let mut out = create_private_file(to).map_err(|e| StoreError::io(to, e))?;
        let h = hash_file(from, Some(&mut out))?;
        out.sync_all().map_err(|e| StoreError::io(to, e))?;
        Ok(h)
    };
    if !meta.is_dir() {
        return copy_one(src, dst);
    }
    let mut files = Vec::new();
    list_files(src, Path::new(""), &mut files)?;
    create_private_dir(dst).map_err(|e| StoreError::io(dst, e))?;
    let mut hashed = Vec::with_capacity(files.len());
    for rel in files {
        let to = dst.join(&rel);
        if let Some(parent) = to.parent() {
            create_private_dir(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        let h = copy_one(&src.join(&rel), &to)?;
        hashed.push((rel, h));
    }
    Ok(tree_digest(&hashed))
}

fn remove_any(path: &Path) -> Result<(), StoreError> {
    let r = if path.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(path, e)),
        _ => Ok(()),
    }
}
