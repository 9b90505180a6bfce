//! Reading a log: the open database shared by a writer and its in-process
//! readers ([`Core`]), and [`LogReader`], which reads either from that
//! database or, when another process holds it, through that process's
//! socket.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use events::{Digest, Envelope, EventKind, SampleId};

use crate::flushed::Flushed;
use crate::keys;
use crate::lock::{LockHolder, OwnerLock};
use crate::remote::{self, Remote, Server};
use crate::rundir::{existing_log_dir, tighten_files};
use crate::snapshot::{self, Recovery};
use crate::verify::{self, VerifyReport};
use crate::StoreError;

/// Key of the run id in the database's default tree.
pub(crate) const META_RUN_ID: &[u8] = b"run_id";

/// The open database of one log, shared by its writer, its in-process
/// readers and its socket server; or a reader's private copy of it
/// (`snapshot.rs`). Dropping the last handle closes sled, releases the
/// owner lock and removes a private copy.
pub(crate) struct Core {
    /// The run's log directory (the copy's origin, for a private copy).
    pub log_dir: PathBuf,
    pub run_id: String,
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub feed: Feed,
    /// For a private copy: what `log/flushed` said when it was taken.
    pub flushed: Option<Flushed>,
    /// For a private copy: what sled did with a damaged database.
    pub recovery: Option<Recovery>,
    _lock: Option<OwnerLock>,
    /// Declared last so that sled has closed before its files go.
    _copy: Option<tempfile::TempDir>,
}

impl Core {
    /// Opens sled in `log_dir` under an already taken owner lock; the run
    /// id is set once it has been read or written ([`Core::with_run_id`]).
    pub fn open(log_dir: PathBuf, lock: OwnerLock) -> Result<Core, StoreError> {
        // The log is append-heavy: sled's HighThroughput mode trades some
        // space for write speed (figures of the result in BENCHMARKS.md).
        let config = sled::Config::new().path(&log_dir).mode(sled::Mode::HighThroughput);
        // The owner lock is ours, so whoever still holds sled's own lock on
        // the `db` file is a handle that is closing (sled's I/O threads let
        // go of the file a little after the last handle drops): wait for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other.map_err(|e| StoreError::sled(&log_dir, e))?,
            }
        };
        let tree = db.open_tree("events").map_err(|e| StoreError::sled(&log_dir, e))?;
        tighten_files(&log_dir).map_err(|e| StoreError::io(&log_dir, e))?;
        Ok(Core {
            log_dir,
            run_id: String::new(),
            db,
            tree,
            feed: Feed::default(),
            flushed: None,
            recovery: None,
            _lock: Some(lock),
            _copy: None,
        })
    }

    /// Copies the log in `log_dir` into a private directory and opens the
    /// copy (`snapshot.rs`); the caller holds the owner lock shared, which
    /// can go once this returns.
    pub fn open_copy(log_dir: PathBuf) -> Result<Core, StoreError> {
        let flushed = crate::flushed::read(&log_dir)?;
        let opened = snapshot::open(&log_dir)?;
        Ok(Core {
            log_dir,
            run_id: String::new(),
            db: opened.db,
            tree: opened.tree,
            feed: Feed::default(),
            flushed,
            recovery: opened.recovery,
            _lock: None,
            _copy: Some(opened.dir),
        })
    }

    pub fn with_run_id(self, run_id: String) -> Core {
        Core { run_id, ..self }
    }

    pub fn sled_err(&self, e: sled::Error) -> StoreError {
        StoreError::sled(&self.log_dir, e)
    }

    /// A sled error met while reading, after record `last_ok`: damage of
    /// the database file is [`StoreError::Corrupt`].
    fn read_err(&self, e: sled::Error, last_ok: Option<u64>) -> StoreError {
        match e {
            sled::Error::Corruption { .. } => StoreError::Corrupt {
                dir: self.log_dir.clone(),
                file: self.log_dir.join("db"),
                offset: snapshot::offset_of(&e),
                last_intact: last_ok,
                detail: snapshot::describe(&e),
            },
            e => self.sled_err(e),
        }
    }

    fn bad_key(&self, what: &'static str, len: usize, seq: Option<u64>) -> StoreError {
        StoreError::BadEntry { dir: self.log_dir.clone(), tree: "events", what, len, expected: 8, seq }
    }

    /// The sequence number ending `key` (a record or index key).
    fn key_seq(&self, key: &[u8], what: &'static str) -> Result<u64, StoreError> {
        keys::trailing_seq(key).ok_or_else(|| self.bad_key(what, key.len(), None))
    }

    /// The run id stored in the database, if it has one.
    pub fn stored_run_id(db: &sled::Db) -> Result<Option<String>, sled::Error> {
        Ok(db.get(META_RUN_ID)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn last_seq(&self) -> Result<Option<u64>, StoreError> {
        let last = guard(|| self.tree.range(keys::record(0)..=keys::record(u64::MAX)).next_back())
            .map_err(|detail| self.panicked(detail, None))?;
        match last {
            None => Ok(None),
            Some(r) => Ok(Some(self.key_seq(&r.map_err(|e| self.read_err(e, None))?.0, "record key")?)),
        }
    }

    /// A panic inside sled while reading, as [`StoreError::Corrupt`].
    fn panicked(&self, detail: String, last_ok: Option<u64>) -> StoreError {
        StoreError::Corrupt {
            dir: self.log_dir.clone(),
            file: self.log_dir.join("db"),
            offset: None,
            last_intact: last_ok,
            detail,
        }
    }

    pub fn raw(&self, seq: u64) -> Result<Option<sled::IVec>, StoreError> {
        guard(|| self.tree.get(keys::record(seq)))
            .map_err(|d| self.panicked(d, seq.checked_sub(1)))?
            .map_err(|e| self.read_err(e, seq.checked_sub(1)))
    }

    pub fn get(&self, seq: u64) -> Result<Option<Envelope>, StoreError> {
        self.raw(seq)?.map(|bytes| decode(seq, &bytes)).transpose()
    }

    /// Raw records with keys in `[from, to]`, in order. A read that fails
    /// ends the iteration with an error naming the last record read.
    pub fn raw_range(self: &Arc<Self>, from: u64, to: u64) -> RawRecords {
        let core = Arc::clone(self);
        let mut iter = self.tree.range(keys::record(from)..=keys::record(to));
        let mut last_ok = from.checked_sub(1);
        let mut done = false;
        Box::new(std::iter::from_fn(move || {
            if done {
                return None;
            }
            let item = match guard(|| iter.next()) {
                Err(detail) => Some(Err(core.panicked(detail, last_ok))),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some(Err(core.read_err(e, last_ok))),
                Ok(Some(Ok((k, v)))) => Some(core.key_seq(&k, "record key").map(|seq| (seq, v))),
            };
            match &item {
                Some(Ok((seq, _))) => last_ok = Some(*seq),
                _ => done = true,
            }
            item
        }))
    }

    /// Records whose sequence numbers an index prefix lists, in order.
    pub fn indexed(self: &Arc<Self>, prefix: Vec<u8>) -> Records {
        let core = Arc::clone(self);
        Records(Box::new(self.tree.scan_prefix(prefix).map(move |r| {
            let seq = core.key_seq(&r.map_err(|e| core.read_err(e, None))?.0, "index key")?;
            core.get(seq)?.ok_or(StoreError::MissingRecord { seq })
        })))
    }

    pub fn seq_of(&self, event_id: &Digest) -> Result<Option<u64>, StoreError> {
        match self.tree.get(keys::event_id(event_id)).map_err(|e| self.read_err(e, None))? {
            None => Ok(None),
            Some(v) => keys::seq_value(&v).map(Some).ok_or_else(|| self.bad_key("event-id index value", v.len(), None)),
        }
    }

    /// What is wrong with a private copy as a whole, beyond its records:
    /// sled could open it only after falling back, it lost records that
    /// `log/flushed` says were written, or (with no `flushed` to tell) sled
    /// changed it while recovering.
    pub fn damage(&self) -> Result<(), StoreError> {
        let present = self.last_seq()?.map_or(0, |s| s + 1);
        let corrupt = |r: &Recovery| StoreError::Corrupt {
            dir: self.log_dir.clone(),
            file: r.file.clone(),
            offset: r.offset,
            last_intact: present.checked_sub(1),
            detail: r.detail.clone(),
        };
        if let Some(r) = self.recovery.as_ref().filter(|r| r.fell_back) {
            return Err(corrupt(r));
        }
        match (&self.flushed, &self.recovery) {
            (Some(f), r) if f.records > present => Err(StoreError::Truncated {
                dir: self.log_dir.clone(),
                flushed: crate::flushed::path(&self.log_dir),
                written: f.records,
                present,
                damage: r.as_ref().map(|r| {
                    format!(
                        "{}{}: {}",
                        r.file.display(),
                        r.offset.map_or(String::new(), |o| format!(" at offset {o}")),
                        r.detail
                    )
                }),
            }),
            (None, Some(r)) => Err(corrupt(r)),
            _ => Ok(()),
        }
    }
}

/// Runs a sled call, turning a panic (sled 0.34 panics on some damaged
/// databases) into its message.
fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    snapshot::quietly(f).map_err(|p| format!("sled panicked: {}", snapshot::panic_message(&*p)))
}

/// Decodes the record stored under `seq`.
pub(crate) fn decode(seq: u64, bytes: &[u8]) -> Result<Envelope, StoreError> {
    Envelope::decode(bytes).map_err(|source| StoreError::Record { seq, source })
}

/// Raw `(key seq, record bytes)` pairs.
pub(crate) type RawRecords = Box<dyn Iterator<Item = Result<(u64, sled::IVec), StoreError>> + Send>;

/// Where the writer tells its in-process subscribers about new records.
#[derive(Default)]
pub(crate) struct Feed {
    state: Mutex<FeedState>,
    changed: Condvar,
}

#[derive(Default)]
struct FeedState {
    /// Highest sequence number appended through this process's writer.
    last: Option<u64>,
    /// Whether a writer in this process may still append.
    writing: bool,
}

impl Feed {
    pub fn open_writer(&self, last: Option<u64>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.last = last;
        s.writing = true;
    }

    pub fn published(&self, last: u64) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).last = Some(last);
        self.changed.notify_all();
    }

    pub fn close_writer(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).writing = false;
        self.changed.notify_all();
    }

    /// Waits until a record at `seq` or later was published, no writer is
    /// left, or `timeout` passed. `false` only when no writer is left and
    /// `seq` was never published; `true` means "look again".
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.last.is_some_and(|l| l >= seq) {
                return true;
            }
            if !s.writing {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            s = self.changed.wait_timeout(s, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// Envelopes read from a log, in sequence order. Each record's own hash is
/// checked as it is decoded; [`LogReader::verify`] also checks the chain.
pub struct Records(pub(crate) Box<dyn Iterator<Item = Result<Envelope, StoreError>> + Send>);

impl Iterator for Records {
    type Item = Result<Envelope, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl Records {
    fn from_raw(raw: RawRecords) -> Records {
        Records(Box::new(raw.map(|r| r.and_then(|(seq, bytes)| decode(seq, &bytes)))))
    }
}

#[derive(Clone)]
pub(crate) enum Backend {
    Local { core: Arc<Core>, _server: Option<Arc<Server>> },
    Remote(Remote),
}

/// Reads a run's log. Any number of readers may exist at once.
///
/// A reader either shares an open database (one made by
/// [`EventLog::reader`](crate::EventLog::reader)), or a private copy it
/// made because no process had the log open, or, when another process holds the
/// log, reads through that process's socket `log/reader.sock`. Both give
/// the same records; index queries through a socket scan the log.
#[derive(Clone)]
pub struct LogReader {
    pub(crate) backend: Backend,
    run_id: String,
    dir: PathBuf,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let via = match &self.backend {
            Backend::Local { .. } => "local",
            Backend::Remote(_) => "socket",
        };
        f.debug_struct("LogReader").field("run_id", &self.run_id).field("dir", &self.dir).field("via", &via).finish()
    }
}

/// How long a reader keeps trying a holder's socket that does not answer
/// yet (a writer that has just started).
const CONNECT_PATIENCE: Duration = Duration::from_secs(3);

impl LogReader {
    pub(crate) fn local(core: Arc<Core>, server: Option<Arc<Server>>, dir: PathBuf) -> LogReader {
        LogReader { run_id: core.run_id.clone(), backend: Backend::Local { core, _server: server }, dir }
    }

    /// Opens the log in `dir` (a run's [`RunDir::log`](crate::RunDir::log))
    /// for reading. With `expected_run_id`, a log of another run is an
    /// error naming both.
    ///
    /// Reading never changes a byte of the run directory. When no process
    /// has the log open, this reader copies the database into a private
    /// temporary directory (holding the owner lock shared while it copies,
    /// so a writer starting then waits for it) and reads the copy, which is
    /// removed when the reader goes; otherwise it reads through the
    /// holder's socket. A damaged or cut-off log is an error here (see
    /// [`LogReader::open_damaged`] to read what is left of it).
    ///
    /// # Errors
    /// [`StoreError::NoLog`], [`StoreError::OtherRun`],
    /// [`StoreError::Unreachable`]; [`StoreError::Corrupt`] when sled cannot
    /// read the database as it is, [`StoreError::Truncated`] when it holds
    /// fewer records than the writer's `log/flushed` says were written,
    /// both naming the file and the last intact record;
    /// [`StoreError::BadFlushed`]; or an I/O or sled error.
    pub fn open(dir: impl AsRef<Path>, expected_run_id: Option<&str>) -> Result<LogReader, StoreError> {
        let reader = Self::open_damaged(dir, expected_run_id)?;
        if let Backend::Local { core, .. } = &reader.backend {
            core.damage()?;
        }
        Ok(reader)
    }

    /// [`LogReader::open`], but a damaged or cut-off log opens too, as
    /// what sled can still read of it: for `verify`, which reports the
    /// damage ([`LogReader::verify`]), and for salvaging the intact
    /// records ([`salvage`](crate::salvage)).
    ///
    /// # Errors
    /// As [`LogReader::open`], except that [`StoreError::Truncated`] is not
    /// one and [`StoreError::Corrupt`] only when no part of the database
    /// opens.
    pub fn open_damaged(dir: impl AsRef<Path>, expected_run_id: Option<&str>) -> Result<LogReader, StoreError> {
        let log_dir = existing_log_dir(dir.as_ref())?;
        let deadline = Instant::now() + CONNECT_PATIENCE;
        loop {
            let holder = match OwnerLock::try_shared(&log_dir).map_err(|e| StoreError::io(&log_dir, e))? {
                Ok(lock) => {
                    let core = Core::open_copy(log_dir.clone());
                    drop(lock);
                    return Self::from_copy(log_dir, core?, expected_run_id);
                }
                Err(holder) => holder,
            };
            match Remote::connect(&log_dir) {
                Ok(remote) => {
                    check_run(&log_dir, expected_run_id, remote.run_id())?;
                    return Ok(LogReader {
                        run_id: remote.run_id().to_owned(),
                        backend: Backend::Remote(remote),
                        dir: log_dir,
                    });
                }
                Err(e) if Instant::now() < deadline && remote::is_not_listening(&e) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) if remote::is_not_listening(&e) => {
                    return Err(StoreError::Unreachable {
                        dir: log_dir.clone(),
                        holder,
                        socket: remote::socket_path(&log_dir),
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn from_copy(log_dir: PathBuf, core: Core, expected: Option<&str>) -> Result<LogReader, StoreError> {
        let found = guard(|| Core::stored_run_id(&core.db))
            .map_err(|d| core.panicked(d, None))?
            .map_err(|e| core.read_err(e, None))?
            .ok_or_else(|| StoreError::NoLog { dir: log_dir.clone() })?;
        check_run(&log_dir, expected, &found)?;
        // A private copy serves nobody: its socket would be a change to
        // the run directory, and other readers make their own copies.
        Ok(LogReader::local(Arc::new(core.with_run_id(found)), None, log_dir))
    }

    /// The run this log belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The log's directory.
    pub fn log_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this reader goes through another process's socket.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Remote(_))
    }

    /// The last sequence number, or `None` for an empty log.
    ///
    /// # Errors
    /// sled or socket errors.
    pub fn last_seq(&self) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Local { core, .. } => core.last_seq(),
            Backend::Remote(r) => r.last_seq(),
        }
    }

    /// The number of records (sequence numbers have no gaps).
    ///
    /// # Errors
    /// As [`LogReader::last_seq`].
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.last_seq()?.map_or(0, |s| s + 1))
    }

    /// Whether the log has no records.
    ///
    /// # Errors
    /// As [`LogReader::last_seq`].
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.last_seq()?.is_none())
    }

    /// The record at `seq`.
    ///
    /// # Errors
    /// [`StoreError::Record`] when it does not decode; sled or socket errors.
    pub fn get(&self, seq: u64) -> Result<Option<Envelope>, StoreError> {
        match &self.backend {
            Backend::Local { core, .. } => core.get(seq),
            Backend::Remote(_) => self.read_range(seq..=seq).next().transpose(),
        }
    }

    pub(crate) fn raw_range(&self, range: impl RangeBounds<u64>) -> Result<RawRecords, StoreError> {
        let from = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&0) => return Ok(Box::new(std::iter::empty())),
            Bound::Excluded(&s) => s - 1,
            Bound::Unbounded => u64::MAX,
        };
        if from > to {
            return Ok(Box::new(std::iter::empty()));
        }
        match &self.backend {
            Backend::Local { core, .. } => Ok(core.raw_range(from, to)),
            Backend::Remote(r) => {
                let stream = r.stream(from, false)?;
                Ok(Box::new(stream.take_while(move |item| !matches!(item, Ok((seq, _)) if *seq > to))))
            }
        }
    }

    /// The records with sequence numbers in `range`, in order.
    pub fn read_range(&self, range: impl RangeBounds<u64>) -> Records {
        match self.raw_range(range) {
            Ok(raw) => Records::from_raw(raw),
            Err(e) => Records(Box::new(std::iter::once(Err(e)))),
        }
    }

    /// Every record, in order.
    pub fn iter(&self) -> Records {
        self.read_range(..)
    }

    /// The events about one sample (generated, rewarded, filtered), in
    /// order.
    ///
    /// # Errors
    /// As [`LogReader::get`].
    pub fn get_by_sample(&self, sample: &SampleId) -> Result<Vec<Envelope>, StoreError> {
        match &self.backend {
            Backend::Local { core, .. } => core
                .indexed(keys::sample_prefix(sample.iteration, Some(&sample.input_id), Some(sample.index)))
                .collect(),
            Backend::Remote(_) => {
                self.iter().filter(|r| r.as_ref().map_or(true, |e| e.payload.sample() == Some(sample))).collect()
            }
        }
    }

    /// The sample events of one input in iteration `iteration`, ordered by
    /// sample index, then sequence number.
    pub fn by_input(&self, iteration: u32, input_id: &str) -> Records {
        match &self.backend {
            Backend::Local { core, .. } => core.indexed(keys::sample_prefix(iteration, Some(input_id), None)),
            Backend::Remote(_) => {
                let input_id = input_id.to_owned();
                self.filtered(move |e| {
                    e.payload.sample().is_some_and(|s| s.iteration == iteration && s.input_id == input_id)
                })
            }
        }
    }

    /// All sample events of iteration `iteration` (grouped by input, then
    /// by sample index).
    pub fn by_iteration(&self, iteration: u32) -> Records {
        match &self.backend {
            Backend::Local { core, .. } => core.indexed(keys::sample_prefix(iteration, None, None)),
            Backend::Remote(_) => self.filtered(move |e| e.payload.sample().is_some_and(|s| s.iteration == iteration)),
        }
    }

    /// The events of one kind, in order.
    pub fn by_kind(&self, kind: EventKind) -> Records {
        match &self.backend {
            Backend::Local { core, .. } => core.indexed(keys::kind_prefix(kind).to_vec()),
            Backend::Remote(_) => self.filtered(move |e| e.payload.kind() == kind),
        }
    }

    fn filtered(&self, keep: impl Fn(&Envelope) -> bool + Send + 'static) -> Records {
        Records(Box::new(self.iter().filter(move |r| r.as_ref().map_or(true, &keep))))
    }

    /// The sequence number of the event with this id, if it was appended.
    ///
    /// # Errors
    /// As [`LogReader::get`].
    pub fn seq_of(&self, event_id: &Digest) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Local { core, .. } => core.seq_of(event_id),
            Backend::Remote(_) => {
                for r in self.iter() {
                    let e = r?;
                    if &e.event_id == event_id {
                        return Ok(Some(e.seq));
                    }
                }
                Ok(None)
            }
        }
    }

    /// Follows the log from `from_seq`: yields every record from there on,
    /// waiting for new ones while a writer in this process (or, through the
    /// socket, in another) is appending; ends when no writer is left.
    /// For a log whose writer comes and goes, see [`follow`](crate::follow).
    pub fn subscribe(&self, from_seq: u64) -> Records {
        match &self.backend {
            Backend::Local { core, .. } => {
                let core = Arc::clone(core);
                let mut next = from_seq;
                let mut writer_gone = false;
                Records(Box::new(std::iter::from_fn(move || loop {
                    match core.raw(next) {
                        Err(e) => return Some(Err(e)),
                        Ok(Some(bytes)) => {
                            next += 1;
                            return Some(decode(next - 1, &bytes));
                        }
                        // The writer closed and a last look found nothing new.
                        Ok(None) if writer_gone => return None,
                        Ok(None) => writer_gone = !core.feed.wait_for(next, Duration::from_secs(1)),
                    }
                })))
            }
            Backend::Remote(r) => match r.stream(from_seq, true) {
                Ok(raw) => Records::from_raw(raw),
                Err(e) => Records(Box::new(std::iter::once(Err(e)))),
            },
        }
    }

    /// Walks the whole chain: every record decodes, hashes to its stored
    /// hash, belongs to this run, follows the one before without a gap and
    /// links to its hash. Stops at the first bad record and says which and
    /// why. Then checks the end: the log must hold every record the
    /// writer's `log/flushed` says was written, the record it names last
    /// must hash as it says, and sled must have read the database as it
    /// was (a private copy that opened only after falling back, or that
    /// sled changed with no `flushed` to say nothing was lost, is damage).
    ///
    /// # Errors
    /// Only failures to read at all (socket, I/O, a `log/flushed` that does
    /// not parse); a bad record, a database sled cannot read past some
    /// record, or missing records are a [`VerifyReport::problem`].
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let (flushed, recovery) = match &self.backend {
            Backend::Local { core, .. } if core._copy.is_some() => (core.flushed.clone(), core.recovery.clone()),
            _ => (crate::flushed::read(&self.dir)?, None),
        };
        verify::walk(&self.run_id, &self.dir, self.raw_range(..)?, flushed, recovery)
    }
}
pub(crate) fn check_run(dir: &Path, expected: Option<&str>, found: &str) -> Result<(), StoreError> {
    match expected {
        Some(exp) if exp != found => {
            Err(StoreError::OtherRun { dir: dir.to_path_buf(), expected: exp.to_owned(), found: found.to_owned() })
        }
        _ => Ok(()),
    }
}

/// The writer that holds the log in `dir` right now, if any (takes and
/// drops the lock shared when it is free; writes nothing).
/// The process holding the log in `log_dir` open (a writer, or a reader
/// that serves it), or `None` when nobody does: whether a run is writing
/// now. It takes the owner lock shared for an instant, so a writer that
/// starts at that moment waits that instant.
///
/// # Errors
/// An I/O error on `log/owner.lock`, naming it.
pub fn log_holder(log_dir: &Path) -> Result<Option<LockHolder>, StoreError> {
    holder(log_dir)
}

pub(crate) fn holder(log_dir: &Path) -> Result<Option<LockHolder>, StoreError> {
    match OwnerLock::try_shared(log_dir).map_err(|e| StoreError::io(log_dir, e))? {
        Ok(_) => Ok(None),
        Err(h) => Ok(Some(h)),
    }
}
