//! `log/flushed`: how many records the writer had made durable at its last
//! flush, kept beside the sled database rather than in it.
//!
//! sled 0.34 recovers a damaged database by dropping everything after the
//! damage, and what it keeps is a valid, shorter chain: nothing inside the
//! database can tell that records are missing at its end. This file can.
//! The writer rewrites it after every flush (write `flushed.tmp`, fsync,
//! rename over `flushed`, fsync the directory), so it always holds a
//! complete earlier or current state, never a torn one:
//!
//! ```text
//! restpg-log-flushed 1
//! records 274
//! last_hash <64 hex digits: hash of record 273>
//! last_boundary 270 dataset-sealed      (optional: the last step boundary)
//! ```
//! A log may hold more records than it says (sled writes on its own between
//! flushes); fewer means records were lost.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use events::{digest_hex, parse_digest_hex, Digest};

use crate::rundir::create_private_file;
use crate::StoreError;

const MAGIC: &str = "restpg-log-flushed 1";

/// The file's name in a log directory.
pub(crate) const FILE: &str = "flushed";

/// What `log/flushed` says the writer had made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flushed {
    /// Records 0 to `records - 1` were durable at the last flush.
    pub records: u64,
    /// The hash of record `records - 1` (the genesis hash for none).
    pub last_hash: Digest,
    /// The last step boundary among them (a finished stage, a sealed D_t,
    /// a checkpoint…): its sequence number and kind.
    pub last_boundary: Option<(u64, String)>,
}

/// `log_dir/flushed`.
pub(crate) fn path(log_dir: &Path) -> PathBuf {
    log_dir.join(FILE)
}

/// Reads `log_dir/flushed`; `None` when there is none (a log written
/// before the file existed).
pub(crate) fn read(log_dir: &Path) -> Result<Option<Flushed>, StoreError> {
    let path = path(log_dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    parse(&text).map(Some).map_err(|message| StoreError::BadFlushed { path, message })
}

fn parse(text: &str) -> Result<Flushed, String> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("line 1: expected {MAGIC:?}"));
    }
    let (mut records, mut last_hash, mut last_boundary) = (None, None, None);
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some("records"), Some(v), None) => {
                records = Some(v.parse::<u64>().map_err(|e| format!("line {n}: field records: {e}"))?)
            }
            (Some("last_hash"), Some(v), None) => {
                last_hash = Some(parse_digest_hex(v).map_err(|e| format!("line {n}: field last_hash: {e}"))?)
            }
            (Some("last_boundary"), Some(seq), Some(kind)) => {
                let seq = seq.parse::<u64>().map_err(|e| format!("line {n}: field last_boundary: {e}"))?;
                last_boundary = Some((seq, kind.to_owned()));
            }
            (None, ..) => {}
            _ => return Err(format!("line {n}: unexpected {line:?}")),
        }
    }
    Ok(Flushed {
        records: records.ok_or("field records is missing")?,
        last_hash: last_hash.ok_or("field last_hash is missing")?,
        last_boundary,
    })
}

/// Replaces `log_dir/flushed` atomically and durably.
pub(crate) fn write(log_dir: &Path, f: &Flushed) -> Result<(), StoreError> {
    let mut text = format!("{MAGIC}\nrecords {}\nlast_hash {}\n", f.records, digest_hex(&f.last_hash));
    if let Some((seq, kind)) = &f.last_boundary {
        text.push_str(&format!("last_boundary {seq} {kind}\n"));
    }
    let tmp = log_dir.join("flushed.tmp");
    let mut file = create_private_file(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| StoreError::io(&tmp, e))?;
    let dest = path(log_dir);
    fs::rename(&tmp, &dest).map_err(|e| StoreError::io(&dest, e))?;
    fs::File::open(log_dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(log_dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_and_a_bad_one_names_its_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let f = Flushed { records: 274, last_hash: [7; 32], last_boundary: Some((270, "dataset-sealed".into())) };
        write(dir.path(), &f).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(f));
        fs::write(path(dir.path()), format!("{MAGIC}\nrecords many\n")).unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("flushed") && err.contains("line 2: field records"), "{err}");
        fs::remove_file(path(dir.path())).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
    }
}
