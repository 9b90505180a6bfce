//! Appending: [`EventLog`], the one writer of a run's log.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use events::{Digest, Envelope, Event, GENESIS_HASH};

use crate::flushed::Flushed;
use crate::keys;
use crate::lock::{LockRole, OwnerLock};
use crate::reader::{check_run, Core, LogReader, META_RUN_ID};
use crate::remote::Server;
use crate::rundir::{create_private_dir, existing_log_dir};
use crate::StoreError;

/// What an append did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The event is new and now stored at this sequence number.
    Appended(u64),
    /// An event with the same id was already stored at this sequence number;
    /// nothing was written (the stored record stays as it was).
    Duplicate(u64),
}

impl AppendOutcome {
    /// The sequence number of the stored event.
    pub fn seq(self) -> u64 {
        match self {
            AppendOutcome::Appended(s) | AppendOutcome::Duplicate(s) => s,
        }
    }

    /// Whether the event was already there.
    pub fn is_duplicate(self) -> bool {
        matches!(self, AppendOutcome::Duplicate(_))
    }
}

/// When appends are made durable with an fsync, besides explicit
/// [`EventLog::flush`] calls. sled also writes its buffers out every 500 ms
/// on its own (without the guarantee an fsync gives).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Flush once this many events were appended since the last flush.
    pub every_events: Option<u64>,
    /// Flush after every append that contains a step boundary
    /// ([`Event::is_step_boundary`]: a finished stage, a sealed D_t, a
    /// checkpoint, an evaluation, the end of an iteration or of the run).
    pub at_step_boundaries: bool,
}

impl Default for FlushPolicy {
    /// At step boundaries and every 1,000 events.
    fn default() -> Self {
        FlushPolicy { every_events: Some(1000), at_step_boundaries: true }
    }
}

impl FlushPolicy {
    /// Only explicit [`EventLog::flush`] calls fsync.
    pub fn manual() -> Self {
        FlushPolicy { every_events: None, at_step_boundaries: false }
    }
}

struct WriterState {
    next_seq: u64,
    prev_hash: Digest,
    unflushed: u64,
    policy: FlushPolicy,
    /// The last step boundary appended (seq, kind), for `log/flushed`.
    last_boundary: Option<(u64, String)>,
}

/// The writer of one run's log. At most one exists per run, across
/// processes and within one; it is `Send + Sync`, so actors share it behind
/// an `Arc`. It dereferences to a [`LogReader`] on the same database.
pub struct EventLog {
    reader: LogReader,
    core: Arc<Core>,
    state: Mutex<WriterState>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").field("run_id", &self.core.run_id).field("dir", &self.reader.log_dir()).finish()
    }
}

enum Intent<'a> {
    Create(&'a str),
    Open(Option<&'a str>),
    OpenOrCreate(&'a str),
}

/// How long a writer waits for a reader process to let go of the log.
const READER_PATIENCE: Duration = Duration::from_secs(10);

impl EventLog {
    /// Creates a new, empty log for run `run_id` in `dir` (a run's
    /// [`RunDir::log`](crate::RunDir::log)), making `dir` and any missing
    /// parent mode `0700`.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] when `dir` has a log already;
    /// [`StoreError::InvalidRunId`]; [`StoreError::Locked`]; I/O or sled
    /// errors.
    pub fn create(dir: impl AsRef<Path>, run_id: &str) -> Result<EventLog, StoreError> {
        Self::open_as(dir.as_ref(), Intent::Create(run_id))
    }

    /// Opens the existing log in `dir` to append to it. With
    /// `expected_run_id`, a log of another run is an error naming both.
    /// Waits up to 10 s for a reader process that has the log open.
    ///
    /// # Errors
    /// [`StoreError::NoLog`], [`StoreError::OtherRun`],
    /// [`StoreError::Locked`] (another writer, or a reader that stayed),
    /// [`StoreError::CorruptTail`]; I/O or sled errors.
    pub fn open(dir: impl AsRef<Path>, expected_run_id: Option<&str>) -> Result<EventLog, StoreError> {
        Self::open_as(dir.as_ref(), Intent::Open(expected_run_id))
    }

    /// [`EventLog::open`] with `Some(run_id)` when `dir` has a log,
    /// [`EventLog::create`] otherwise: what a resumable run calls.
    ///
    /// # Errors
    /// As those two.
    pub fn open_or_create(dir: impl AsRef<Path>, run_id: &str) -> Result<EventLog, StoreError> {
        Self::open_as(dir.as_ref(), Intent::OpenOrCreate(run_id))
    }

    fn open_as(dir: &Path, intent: Intent<'_>) -> Result<EventLog, StoreError> {
        let log_dir = match intent {
            Intent::Create(id) | Intent::OpenOrCreate(id) => {
                validate_run_id(id)?;
                create_private_dir(dir).map_err(|e| StoreError::io(dir, e))?;
                dir.to_path_buf()
            }
            Intent::Open(_) => existing_log_dir(dir)?,
        };
        let lock = writer_lock(&log_dir)?;
        let core = Core::open(log_dir.clone(), lock)?;
        let stored = Core::stored_run_id(&core.db).map_err(|e| core.sled_err(e))?;
        let run_id = match (intent, stored) {
            (Intent::Create(_), Some(found)) => {
                return Err(StoreError::AlreadyExists { dir: dir.to_path_buf(), run_id: found })
            }
            (Intent::Open(_), None) => return Err(StoreError::NoLog { dir: dir.to_path_buf() }),
            (Intent::Open(expected), Some(found)) => {
                check_run(dir, expected, &found)?;
                found
            }
            (Intent::OpenOrCreate(id), Some(found)) => {
                check_run(dir, Some(id), &found)?;
                found
            }
            (Intent::Create(id) | Intent::OpenOrCreate(id), None) => {
                core.db.insert(META_RUN_ID, id.as_bytes()).map_err(|e| core.sled_err(e))?;
                core.db.flush().map_err(|e| core.sled_err(e))?;
                id.to_owned()
            }
        };
        let core = Arc::new(core.with_run_id(run_id));

        let last = core.last_seq()?;
        let (next_seq, prev_hash) = match last {
            None => (0, GENESIS_HASH),
            Some(seq) => {
                let bytes = core.raw(seq)?.ok_or(StoreError::MissingRecord { seq })?;
                let env = Envelope::decode(&bytes).map_err(|source| StoreError::CorruptTail {
                    run_id: core.run_id.clone(),
                    seq,
                    source,
                })?;
                (seq + 1, env.hash)
            }
        };
        // A log that lost records at its end must not grow a new end: the
        // chain would continue as if nothing were missing.
        let flushed = crate::flushed::read(&log_dir)?;
        if let Some(f) = flushed.as_ref().filter(|f| f.records > next_seq) {
            return Err(StoreError::Truncated {
                dir: log_dir.clone(),
                flushed: crate::flushed::path(&log_dir),
                written: f.records,
                present: next_seq,
                damage: None,
            });
        }
        let last_boundary = flushed.and_then(|f| f.last_boundary);
        crate::flushed::write(
            &log_dir,
            &Flushed { records: next_seq, last_hash: prev_hash, last_boundary: last_boundary.clone() },
        )?;
        core.feed.open_writer(last);
        // Other processes read through this socket while the log is open;
        // a log that cannot serve them still records, so a failure here is
        // not the writer's.
        let server = Server::start(Arc::clone(&core)).ok().map(Arc::new);
        Ok(EventLog {
            reader: LogReader::local(Arc::clone(&core), server, log_dir),
            core,
            state: Mutex::new(WriterState {
                next_seq,
                prev_hash,
                unflushed: 0,
                policy: FlushPolicy::default(),
                last_boundary,
            }),
        })
    }

    /// Opens the log in `dir` for reading only: [`LogReader::open`] with no
    /// expected run.
    ///
    /// # Errors
    /// As [`LogReader::open`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<LogReader, StoreError> {
        LogReader::open(dir, None)
    }

    /// A reader sharing this writer's database; it sees every append at
    /// once and can [`subscribe`](LogReader::subscribe) to them.
    pub fn reader(&self) -> LogReader {
        self.reader.clone()
    }

    /// Replaces the flush policy (default: [`FlushPolicy::default`]).
    pub fn set_flush_policy(&self, policy: FlushPolicy) {
        self.state().policy = policy;
    }

    /// Appends one event; a no-op returning [`AppendOutcome::Duplicate`] when
    /// an event with the same [`Event::event_id`] is already in the log.
    ///
    /// # Errors
    /// sled errors (nothing was appended then).
    pub fn append(&self, event: Event) -> Result<AppendOutcome, StoreError> {
        Ok(self.append_batch([event])?.remove(0))
    }

    /// Appends events in order as one atomic write: after a crash either
    /// all of the batch's new events are in the log or none. Duplicates,
    /// of stored events or within the batch, are skipped. The events of a
    /// batch share one time stamp.
    ///
    /// # Errors
    /// sled errors (nothing was appended then).
    pub fn append_batch(&self, events: impl IntoIterator<Item = Event>) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut st = self.state();
        let run_id = self.core.run_id.as_str();
        let now = Utc::now();
        let mut batch = sled::Batch::default();
        let mut in_batch: HashMap<Digest, u64> = HashMap::new();
        let mut outcomes = Vec::new();
        let (mut seq, mut prev) = (st.next_seq, st.prev_hash);
        let mut boundary = false;
        let mut last_boundary = None;
        for event in events {
            let event_id = event.event_id(run_id);
            if let Some(&s) = in_batch.get(&event_id) {
                outcomes.push(AppendOutcome::Duplicate(s));
                continue;
            }
            if let Some(s) = self.core.seq_of(&event_id)? {
                outcomes.push(AppendOutcome::Duplicate(s));
                continue;
            }
            let kind = event.kind();
            if event.is_step_boundary() {
                boundary = true;
                last_boundary = Some((seq, kind.as_str().to_owned()));
            }
            let sample_key = event.sample().map(|s| keys::sample(s, seq));
            let env = Envelope::seal(seq, now, run_id, event, prev);
            batch.insert(&keys::record(seq)[..], env.encode());
            batch.insert(&keys::event_id(&event_id)[..], &seq.to_be_bytes()[..]);
            batch.insert(&keys::kind(kind, seq)[..], &[][..]);
            if let Some(k) = sample_key {
                batch.insert(k, &[][..]);
            }
            in_batch.insert(event_id, seq);
            outcomes.push(AppendOutcome::Appended(seq));
            prev = env.hash;
            seq += 1;
        }
        let appended = seq - st.next_seq;
        if appended == 0 {
            return Ok(outcomes);
        }
        self.core.tree.apply_batch(batch).map_err(|e| self.core.sled_err(e))?;
        st.next_seq = seq;
        st.prev_hash = prev;
        st.unflushed += appended;
        if last_boundary.is_some() {
            st.last_boundary = last_boundary;
        }
        self.core.feed.published(seq - 1);
        let due =
            (boundary && st.policy.at_step_boundaries) || st.policy.every_events.is_some_and(|n| st.unflushed >= n);
        if due {
            self.flush_locked(&mut st)?;
        }
        Ok(outcomes)
    }

    /// Makes every append so far durable (sled flush, which fsyncs), then
    /// records in `log/flushed` how many records that makes, so that a
    /// reader can tell when records went missing. Returns the bytes sled
    /// wrote.
    ///
    /// # Errors
    /// sled errors; [`StoreError::Io`] naming `log/flushed`.
    pub fn flush(&self) -> Result<usize, StoreError> {
        self.flush_locked(&mut self.state())
    }

    fn flush_locked(&self, st: &mut WriterState) -> Result<usize, StoreError> {
        let n = self.core.db.flush().map_err(|e| self.core.sled_err(e))?;
        st.unflushed = 0;
        let f = Flushed { records: st.next_seq, last_hash: st.prev_hash, last_boundary: st.last_boundary.clone() };
        crate::flushed::write(&self.core.log_dir, &f)?;
        Ok(n)
    }

    /// Stores records exactly as `records` holds them (bytes already
    /// verified to continue this log's chain, as [`crate::salvage`] does),
    /// with their index entries, in batches, then flushes.
    pub(crate) fn import(&self, records: impl IntoIterator<Item = (sled::IVec, Envelope)>) -> Result<u64, StoreError> {
        let mut st = self.state();
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        let mut imported = 0;
        for (bytes, env) in records {
            if env.seq != st.next_seq || env.prev_hash != st.prev_hash {
                return Err(StoreError::Record {
                    seq: env.seq,
                    source: events::RecordError::Decode {
                        version: env.schema_version,
                        message: "does not continue the chain it is imported into".to_owned(),
                    },
                });
            }
            let seq = env.seq;
            batch.insert(&keys::record(seq)[..], bytes);
            batch.insert(&keys::event_id(&env.event_id)[..], &seq.to_be_bytes()[..]);
            batch.insert(&keys::kind(env.payload.kind(), seq)[..], &[][..]);
            if let Some(s) = env.payload.sample() {
                batch.insert(keys::sample(s, seq), &[][..]);
            }
            if env.payload.is_step_boundary() {
                st.last_boundary = Some((seq, env.payload.kind().as_str().to_owned()));
            }
            st.next_seq = seq + 1;
            st.prev_hash = env.hash;
            pending += 1;
            imported += 1;
            if pending == 512 {
                self.core.tree.apply_batch(std::mem::take(&mut batch)).map_err(|e| self.core.sled_err(e))?;
                pending = 0;
            }
        }
        self.core.tree.apply_batch(batch).map_err(|e| self.core.sled_err(e))?;
        if let Some(last) = st.next_seq.checked_sub(1) {
            self.core.feed.published(last);
        }
        self.flush_locked(&mut st)?;
        Ok(imported)
    }

    /// Bytes the database takes on disk (sled's estimate).
    ///
    /// # Errors
    /// sled errors.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.core.db.size_on_disk().map_err(|e| self.core.sled_err(e))
    }

    fn state(&self) -> MutexGuard<'_, WriterState> {
        // A panic while holding the lock happens before the batch is applied
        // (the state is updated only after), so the state is still right.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Deref for EventLog {
    type Target = LogReader;
    fn deref(&self) -> &LogReader {
        &self.reader
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = self.flush();
        self.core.feed.close_writer();
    }
}

fn writer_lock(log_dir: &Path) -> Result<OwnerLock, StoreError> {
    let deadline = Instant::now() + READER_PATIENCE;
    loop {
        match OwnerLock::try_acquire(log_dir, LockRole::Writer).map_err(|e| StoreError::io(log_dir, e))? {
            Ok(lock) => return Ok(lock),
            Err(holder) if !holder.is_writer() && !holder.is_this_process() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(holder) => return Err(StoreError::Locked { dir: log_dir.to_path_buf(), holder }),
        }
    }
}

fn validate_run_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidRunId(id.to_owned()))
    }
}
