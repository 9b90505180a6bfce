//! Reading damaged logs: readers change nothing, damage is named, records
//! missing at the end are noticed, intact records can be salvaged, and bad
//! keys or socket peers are errors, not panics. Given / when / then, on
//! real sled files.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use common::sample_event;
use events::Event;
use restpg_store::{salvage, EventLog, LogReader, ProblemReason, StoreError};

const RECORDS: u64 = 274;

/// A closed log of 274 records of about 2 KB, flushed now and then.
fn log(dir: &Path) -> PathBuf {
    let log_dir = dir.join("log");
    let log = EventLog::create(&log_dir, "run-i").unwrap();
    for n in 0..RECORDS {
        log.append(sample_event(n)).unwrap();
        if n % 50 == 0 {
            log.flush().unwrap();
        }
    }
    log_dir
}

/// Every file under `dir` with the blake3 of its bytes.
fn hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), blake3::hash(&std::fs::read(&path).unwrap()).to_hex().to_string());
            }
        }
    }
    out
}

/// Flips one byte of record `n`'s text wherever `log_dir/db` holds it
/// (sled leaves superseded copies of a page behind, and which one is live
/// depends on timing), so that its live copy is damaged: in the middle of
/// the file for `n` = 137.
fn flip(log_dir: &Path, n: u64) {
    let path = log_dir.join("db");
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = format!("Sample {n}: thanks");
    let at: Vec<usize> =
        bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle.as_bytes()).map(|(i, _)| i).collect();
    assert!(!at.is_empty(), "record {n}'s text is in db");
    for i in at {
        bytes[i + 3] ^= 0x01;
    }
    std::fs::write(&path, bytes).unwrap();
}

/// Everything a read-only command does with a log.
fn read_everything(log_dir: &Path) {
    let _ = LogReader::open(log_dir, None).map(|r| r.iter().count());
    if let Ok(r) = LogReader::open_damaged(log_dir, None) {
        let _ = r.verify();
        let _ = r.iter().count();
        let _ = r.by_kind(events::EventKind::SampleGenerated).count();
        let _ = r.by_input(1, "email/2").count();
        let _ = r.subscribe(0).count();
        let _ = r.last_seq();
    }
}

#[test]
fn reading_a_healthy_or_a_damaged_log_changes_no_byte_of_it() {
    // Given a healthy log and copies of it with a byte flipped at various places
    let dir = tempfile::tempdir().unwrap();
    let healthy = log(&dir.path().join("healthy"));
    let mut logs = vec![healthy.clone()];
    for (i, frac) in [137, 200, 260].into_iter().enumerate() {
        let d = dir.path().join(format!("flipped-{i}/log"));
        std::fs::create_dir_all(&d).unwrap();
        for f in std::fs::read_dir(&healthy).unwrap() {
            let f = f.unwrap();
            if f.path().is_file() {
                std::fs::copy(f.path(), d.join(f.file_name())).unwrap();
            }
        }
        flip(&d, frac);
        logs.push(d);
    }
    for log_dir in logs {
        let before = hashes(log_dir.parent().unwrap());
        // When everything that reads reads it, twice
        read_everything(&log_dir);
        read_everything(&log_dir);
        // Then not one byte of its directory changed
        assert_eq!(hashes(log_dir.parent().unwrap()), before, "{}", log_dir.display());
    }
}

#[test]
fn a_flipped_byte_in_the_database_is_named_with_the_file_and_the_last_intact_record() {
    for frac in [137, 200, 260] {
        // Given a log whose db had one byte flipped where live data lies
        let dir = tempfile::tempdir().unwrap();
        let log_dir = log(dir.path());
        flip(&log_dir, frac);
        // When it is verified
        let report = LogReader::open_damaged(&log_dir, None).unwrap().verify().unwrap();
        // Then verify fails at the end of what is intact, naming the db file or the count
        let problem = report.problem.clone().unwrap_or_else(|| panic!("{frac}: {report:?}"));
        assert!(report.valid < RECORDS && problem.seq == report.valid, "{frac}: {problem}");
        let text = problem.to_string();
        assert!(text.contains("db") || text.contains("flushed says 274 records were written"), "{frac}: {text}");
        // and a plain open refuses it, naming the last intact record
        let err = LogReader::open(&log_dir, None).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. } | StoreError::Truncated { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("the last intact record is seq {}", report.valid - 1)), "{frac}: {text}");
        assert!(text.contains(&log_dir.join("db").display().to_string()), "{frac}: {text}");
    }
}

#[test]
fn records_missing_at_the_end_fail_verify_and_refuse_a_writer() {
    // Given a log whose last 100 records are gone, as sled's recovery leaves it
    let dir = tempfile::tempdir().unwrap();
    let log_dir = log(dir.path());
    let db = sled::open(&log_dir).unwrap();
    let tree = db.open_tree("events").unwrap();
    for seq in 174..RECORDS {
        let mut key = vec![b'r'];
        key.extend_from_slice(&seq.to_be_bytes());
        tree.remove(key).unwrap();
    }
    db.flush().unwrap();
    drop((tree, db));
    std::thread::sleep(std::time::Duration::from_millis(200));
    // When it is verified
    let report = LogReader::open_damaged(&log_dir, None).unwrap().verify().unwrap();
    // Then the chain that is left is valid, but the count says more was written
    assert_eq!(report.valid, 174);
    let problem = report.problem.unwrap();
    assert_eq!(problem.seq, 174);
    assert!(matches!(problem.reason, ProblemReason::Truncated { written: 274, .. }), "{problem}");
    // and a plain reader and a writer refuse it
    let err = LogReader::open(&log_dir, None).unwrap_err();
    assert!(err.to_string().contains("says 274 records were written, the database holds 174"), "{err}");
    let err = EventLog::open(&log_dir, None).unwrap_err();
    assert!(matches!(err, StoreError::Truncated { written: 274, present: 174, .. }), "{err}");
}

#[test]
fn the_writer_counts_flushed_records_beside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create(dir.path(), "run-c").unwrap();
    log.append_batch((0..3).map(sample_event)).unwrap();
    log.append(Event::StageFinished { iteration: 1, stage: events::Stage::Judge, wall_ms: 3 }).unwrap();
    let text = std::fs::read_to_string(dir.path().join("flushed")).unwrap();
    assert!(text.contains("records 4\n") && text.contains("last_boundary 3 stage-finished"), "{text}");
    log.append(sample_event(3)).unwrap();
    drop(log);
    let text = std::fs::read_to_string(dir.path().join("flushed")).unwrap();
    assert!(text.contains("records 5\n"), "{text}");
    // and an intact log verifies against it
    assert!(LogReader::open(dir.path(), None).unwrap().verify().unwrap().is_ok());
}

#[test]
fn salvage_copies_the_intact_prefix_into_a_log_that_appends_continue() {
    for frac in [137, 200] {
        // Given a damaged log
        let dir = tempfile::tempdir().unwrap();
        let log_dir = log(&dir.path().join("old"));
        flip(&log_dir, frac);
        let before = hashes(&log_dir);
        let intact = LogReader::open_damaged(&log_dir, None).unwrap().verify().unwrap().valid;
        // When it is salvaged
        let new = dir.path().join("new/log");
        let done = salvage(&log_dir, &new).unwrap();
        // Then the new log holds the intact records, verifies, and the old one is unchanged
        assert_eq!((done.copied, done.written, done.run_id.as_str()), (intact, Some(RECORDS), "run-i"));
        assert_eq!(hashes(&log_dir), before);
        let reader = LogReader::open(&new, Some("run-i")).unwrap();
        let report = reader.verify().unwrap();
        assert!(report.is_ok() && report.valid == intact, "{report:?}");
        let old = LogReader::open_damaged(&log_dir, None).unwrap();
        assert_eq!(reader.get(intact - 1).unwrap(), old.get(intact - 1).unwrap(), "byte for byte");
        drop((reader, old));
        // and a writer continues the chain there
        let log = EventLog::open(&new, Some("run-i")).unwrap();
        assert_eq!(log.append(sample_event(intact)).unwrap().seq(), intact);
        assert_eq!(log.append(sample_event(0)).unwrap().seq(), 0, "indexes came along: a duplicate is found");
        drop(log);
        let report = LogReader::open(&new, None).unwrap().verify().unwrap();
        assert!(report.is_ok() && report.valid == intact + 1, "{report:?}");
    }
}

#[test]
fn keys_and_values_of_the_wrong_length_are_named_errors() {
    // Given a log with a record key too short for a sequence number, and
    // one with an event-id index entry whose value is not a u64
    let (bad_key, bad_value) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&bad_key, &bad_value] {
        drop(EventLog::create(dir.path(), "run-k").unwrap().append_batch((0..3).map(sample_event)).unwrap());
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("events").unwrap();
        if dir.path() == bad_key.path() {
            tree.insert(b"r\x01", b"x".to_vec()).unwrap();
        } else {
            let mut key = vec![b'i'];
            key.extend_from_slice(&sample_event(7).event_id("run-k"));
            tree.insert(key, b"abc".to_vec()).unwrap();
        }
        db.flush().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // When they are read, Then the bad key is named instead of a panic
    let reader = LogReader::open_damaged(bad_key.path(), None).unwrap();
    let err = reader.iter().find_map(Result::err).expect("an error");
    assert!(err.to_string().contains("tree \"events\": record key is 2 bytes, expected 8"), "{err}");
    assert!(err.to_string().contains(&bad_key.path().display().to_string()), "{err}");
    drop(reader);
    let err = EventLog::open(bad_key.path(), None).unwrap_err();
    assert!(matches!(err, StoreError::BadEntry { what: "record key", len: 2, .. }), "{err}");
    // and appending the event whose index value is bad names it too
    let log = EventLog::open(bad_value.path(), None).unwrap();
    let err = log.append(sample_event(7)).unwrap_err();
    assert!(err.to_string().contains("event-id index value is 3 bytes, expected 8"), "{err}");
}

#[test]
fn a_socket_peer_announcing_a_4_gib_frame_is_a_named_error() {
    // Given a log "held" by a process that answers on its socket with a
    // record frame of u32::MAX bytes
    let dir = tempfile::tempdir().unwrap();
    drop(EventLog::create(dir.path(), "run-s").unwrap());
    let lock = std::fs::OpenOptions::new().read(true).write(true).open(dir.path().join("owner.lock")).unwrap();
    fs2::FileExt::try_lock_exclusive(&lock).unwrap();
    lock.set_len(0).unwrap();
    writeln!(&lock, "pid=1 role=writer since=now").unwrap();
    let listener = UnixListener::bind(dir.path().join("reader.sock")).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            let mut req = [0u8; 14];
            s.read_exact(&mut req).unwrap();
            let mut out = b"RPGL\x01".to_vec();
            out.extend_from_slice(&5u16.to_be_bytes());
            out.extend_from_slice(b"run-s");
            match req[5] {
                2 => out.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 9]),
                _ if req[13] == 0 => {
                    out.push(1);
                    out.extend_from_slice(&0u64.to_be_bytes());
                    out.extend_from_slice(&u32::MAX.to_be_bytes());
                }
                _ => {
                    out.push(2);
                    out.extend_from_slice(&u32::MAX.to_be_bytes());
                }
            }
            let _ = s.write_all(&out);
        }
    });
    // When this process reads through it
    let reader = LogReader::open(dir.path(), None).unwrap();
    assert!(reader.is_remote());
    // Then the record frame is refused by name, before any allocation
    let err = reader.iter().next().unwrap().unwrap_err();
    assert!(matches!(err, StoreError::FrameTooLarge { what: "record", len: 4294967295, .. }), "{err}");
    assert!(err.to_string().contains("over the 268435456-byte limit"), "{err}");
    // and so is an error frame of that size
    let err = reader.read_range(1..).next().unwrap().unwrap_err();
    assert!(matches!(err, StoreError::FrameTooLarge { what: "error message", .. }), "{err}");
    drop(lock);
}
