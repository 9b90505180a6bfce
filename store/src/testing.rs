//! Tampering with a stored log, for tests of
//! [`LogReader::verify`](crate::LogReader::verify) and of `restpg log verify`
//! in other crates.
//! Compiled only with the `test-util` feature.

use std::path::Path;

use crate::keys;
use crate::lock::{LockRole, OwnerLock};
use crate::reader::Core;
use crate::rundir::existing_log_dir;
use crate::StoreError;

/// Rewrites the stored bytes of record `seq` in the log in `dir` with
/// `f`, bypassing hashes and chain, as a bad disk or an editor would. The log
/// must not be open elsewhere.
///
/// # Errors
/// [`StoreError::Locked`] when it is open; [`StoreError::MissingRecord`]
/// when there is no record `seq`; sled errors.
pub fn tamper_record(dir: impl AsRef<Path>, seq: u64, f: impl FnOnce(&mut Vec<u8>)) -> Result<(), StoreError> {
    let log_dir = existing_log_dir(dir.as_ref())?;
    let lock = OwnerLock::try_acquire(&log_dir, LockRole::Writer)
        .map_err(|e| StoreError::io(&log_dir, e))?
        .map_err(|holder| StoreError::Locked { dir: log_dir.clone(), holder })?;
    let core = Core::open(log_dir, lock)?;
    let mut bytes = core.raw(seq)?.ok_or(StoreError::MissingRecord { seq })?.to_vec();
    f(&mut bytes);
    core.tree.insert(&keys::record(seq)[..], bytes).map_err(|e| core.sled_err(e))?;
    core.db.flush().map_err(|e| core.sled_err(e))?;
    Ok(())
}

/// Removes records `from_seq` and later (with their index entries) from
/// the log in `dir`, as sled's recovery does after damage, leaving
/// `log/flushed` as the writer left it. The log must not be open elsewhere.
///
/// # Errors
/// [`StoreError::Locked`] when it is open; sled errors.
pub fn cut_records(dir: impl AsRef<Path>, from_seq: u64) -> Result<(), StoreError> {
    let log_dir = existing_log_dir(dir.as_ref())?;
    let lock = OwnerLock::try_acquire(&log_dir, LockRole::Writer)
        .map_err(|e| StoreError::io(&log_dir, e))?
        .map_err(|holder| StoreError::Locked { dir: log_dir.clone(), holder })?;
    let core = Core::open(log_dir, lock)?;
    let mut batch = sled::Batch::default();
    for item in core.tree.iter() {
        let (key, value) = item.map_err(|e| core.sled_err(e))?;
        let seq = match key.first() {
            Some(b'r' | b'k' | b's') => keys::trailing_seq(&key),
            Some(b'i') => keys::seq_value(&value),
            _ => None,
        };
        if seq.is_some_and(|s| s >= from_seq) {
            batch.remove(key);
        }
    }
    core.tree.apply_batch(batch).map_err(|e| core.sled_err(e))?;
    core.db.flush().map_err(|e| core.sled_err(e))?;
    Ok(())
}
