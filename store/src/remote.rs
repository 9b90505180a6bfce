//! Reading a log that another process has open.
//!
//! sled 0.34 lets one process at a time open a database, so the process
//! that holds a log (its writer, or a reader that opened it while nobody
//! else had) serves it to the others on a Unix socket, `log/reader.sock`,
//! inside the `0700` log directory. The protocol is small and one-way:
//!
//! ```text
//! client: "RPGL" proto:u8 request:u8 from:u64        request 0 = range, 1 = follow, 2 = info
//! server: "RPGL" proto:u8 len:u16 run_id
//!   info:          has_last:u8 last:u64
//!   range, follow: frames until the end frame
//!     1 seq:u64 len:u32 record     a stored record, bytes as on disk
//!     0                            end: caught up (range) or no writer left (follow)
//!     2 len:u32 message            the server could not read its log
//! ```
//! Records travel as stored, so the reader checks their hashes and the
//! chain itself; the server is trusted with nothing but the bytes. Nor with
//! lengths: a record frame may announce at most [`MAX_RECORD_FRAME`] bytes
//! and an error message at most [`MAX_MESSAGE_FRAME`]; a larger length is
//! [`StoreError::FrameTooLarge`] before anything is allocated.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::reader::{Core, RawRecords};
use crate::StoreError;

const MAGIC: &[u8; 4] = b"RPGL";
const PROTO: u8 = 1;
const REQ_RANGE: u8 = 0;
const REQ_FOLLOW: u8 = 1;
const REQ_INFO: u8 = 2;
const TAG_END: u8 = 0;
const TAG_RECORD: u8 = 1;
const TAG_ERROR: u8 = 2;

/// The largest record a reader accepts through the socket: 256 MiB, far
/// above any record restpg writes (a sample's text and metadata are
/// kilobytes; weights never go into the log), far below an allocation that
/// could take a machine down.
pub(crate) const MAX_RECORD_FRAME: u64 = 256 << 20;
/// The largest error message a reader accepts through the socket: 1 MiB.
pub(crate) const MAX_MESSAGE_FRAME: u64 = 1 << 20;

/// The socket of the log in `log_dir`.
pub(crate) fn socket_path(log_dir: &Path) -> PathBuf {
    log_dir.join("reader.sock")
}

/// Runs `f` with an address for the socket that fits in `sun_path` (108
/// bytes): the path itself when short, else the same file reached through
/// `/proc/self/fd/N` of an open handle on the directory.
fn with_addr<T>(log_dir: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    let full = socket_path(log_dir);
    if full.as_os_str().len() < 100 {
        return f(&full);
    }
    let dir = fs::File::open(log_dir)?;
    f(Path::new(&format!("/proc/self/fd/{}/reader.sock", dir.as_raw_fd())))
}

/// Whether `e` means nobody listens on the socket (yet, or any more).
pub(crate) fn is_not_listening(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. }
        if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused))
}

/// The connections a server has open, with their threads.
type Connections = Arc<Mutex<Vec<(UnixStream, JoinHandle<()>)>>>;

/// The serving side, owned by whoever opened the database. Dropping it
/// stops accepting, ends every connection and removes the socket.
pub(crate) struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Connections,
}

impl Server {
    pub fn start(core: Arc<Core>) -> io::Result<Server> {
        let path = socket_path(&core.log_dir);
        // Whoever serves holds the owner lock, so a socket file left here is
        // stale (its process died).
        let _ = fs::remove_file(&path);
        let listener = with_addr(&core.log_dir, |p| UnixListener::bind(p))?;
        listener.set_nonblocking(true)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Connections = Arc::default();
        let accept = {
            let (stop, conns) = (Arc::clone(&stop), Arc::clone(&conns));
            std::thread::Builder::new().name("restpg-log-serve".into()).spawn(move || {
                // Non-blocking accepts polled every 20 ms: the loop sees
                // `stop` without needing a wake-up connection.
                while !stop.load(Ordering::SeqCst) {
                    let stream = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        Err(_) => continue,
                    };
                    let Ok(handle) = stream.try_clone() else { continue };
                    let (core, stop2) = (Arc::clone(&core), Arc::clone(&stop));
                    let thread = std::thread::Builder::new().name("restpg-log-conn".into()).spawn(move || {
                        let _ = serve(&core, stream, &stop2);
                    });
                    if let Ok(t) = thread {
                        let mut list = conns.lock().unwrap_or_else(|p| p.into_inner());
                        list.retain(|(_, t)| !t.is_finished());
                        list.push((handle, t));
                    }
                }
            })?
        };
        Ok(Server { path, stop, accept: Some(accept), conns })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for (stream, thread) in conns {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            let _ = thread.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

fn serve(core: &Arc<Core>, stream: UnixStream, stop: &AtomicBool) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut req = [0u8; 14];
    (&stream).read_exact(&mut req)?;
    if &req[..4] != MAGIC || req[4] != PROTO {
        return Ok(());
    }
    let request = req[5];
    let mut from = [0u8; 8];
    from.copy_from_slice(&req[6..14]);
    let mut next = u64::from_be_bytes(from);
    let mut w = BufWriter::with_capacity(1 << 16, &stream);
    w.write_all(MAGIC)?;
    w.write_all(&[PROTO])?;
    w.write_all(&(core.run_id.len() as u16).to_be_bytes())?;
    w.write_all(core.run_id.as_bytes())?;
    match request {
        REQ_INFO => {
            match core.last_seq() {
                Ok(last) => {
                    w.write_all(&[u8::from(last.is_some())])?;
                    w.write_all(&last.unwrap_or(0).to_be_bytes())?;
                }
                Err(e) => write_error(&mut w, &e)?,
            }
            w.flush()
        }
        REQ_RANGE | REQ_FOLLOW => {
            let mut last_pass = request == REQ_RANGE;
            loop {
                for item in core.raw_range(next, u64::MAX) {
                    match item {
                        Ok((seq, bytes)) => {
                            w.write_all(&[TAG_RECORD])?;
                            w.write_all(&seq.to_be_bytes())?;
                            w.write_all(&(bytes.len() as u32).to_be_bytes())?;
                            w.write_all(&bytes)?;
                            next = seq + 1;
                        }
                        Err(e) => {
                            write_error(&mut w, &e)?;
                            return w.flush();
                        }
                    }
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                }
                if last_pass {
                    break;
                }
                w.flush()?;
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                // `false`: no writer left; one more pass picks up what it
                // appended last.
                last_pass = !core.feed.wait_for(next, Duration::from_millis(200));
            }
            w.write_all(&[TAG_END])?;
            w.flush()
        }
        _ => Ok(()),
    }
}

fn write_error(w: &mut impl Write, e: &StoreError) -> io::Result<()> {
    let msg = e.to_string();
    w.write_all(&[TAG_ERROR])?;
    w.write_all(&(msg.len() as u32).to_be_bytes())?;
    w.write_all(msg.as_bytes())
}

/// The reading side: a handle on another process's log.
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    log_dir: PathBuf,
    run_id: String,
}

impl Remote {
    /// Connects once to learn the run id (and that someone answers).
    pub fn connect(log_dir: &Path) -> Result<Remote, StoreError> {
        let mut remote = Remote { log_dir: log_dir.to_path_buf(), run_id: String::new() };
        let (_, run_id) = remote.request(REQ_INFO, 0, false)?;
        remote.run_id = run_id;
        Ok(remote)
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn socket(&self) -> PathBuf {
        socket_path(&self.log_dir)
    }

    fn protocol_error(&self, message: impl Into<String>) -> StoreError {
        StoreError::Remote { socket: self.socket(), message: message.into() }
    }

    fn request(&self, request: u8, from: u64, follow: bool) -> Result<(BufReader<UnixStream>, String), StoreError> {
        let io_err = |e| StoreError::io(&self.socket(), e);
        let stream = with_addr(&self.log_dir, |p| UnixStream::connect(p)).map_err(io_err)?;
        stream.set_read_timeout(if follow { None } else { Some(Duration::from_secs(60)) }).map_err(io_err)?;
        let mut req = Vec::with_capacity(14);
        req.extend_from_slice(MAGIC);
        req.extend_from_slice(&[PROTO, request]);
        req.extend_from_slice(&from.to_be_bytes());
        (&stream).write_all(&req).map_err(io_err)?;
        let mut r = BufReader::with_capacity(1 << 16, stream);
        let mut head = [0u8; 7];
        r.read_exact(&mut head).map_err(|e| self.protocol_error(format!("no greeting: {e}")))?;
        if &head[..4] != MAGIC || head[4] != PROTO {
            return Err(self.protocol_error("not a restpg log server, or another protocol version"));
        }
        let mut run_id = vec![0; usize::from(u16::from_be_bytes([head[5], head[6]]))];
        r.read_exact(&mut run_id).map_err(|e| self.protocol_error(e.to_string()))?;
        let run_id = String::from_utf8_lossy(&run_id).into_owned();
        if !self.run_id.is_empty() && run_id != self.run_id {
            return Err(self.protocol_error(format!("now serves run {run_id:?}, not {:?}", self.run_id)));
        }
        Ok((r, run_id))
    }

    pub fn last_seq(&self) -> Result<Option<u64>, StoreError> {
        let (mut r, _) = self.request(REQ_INFO, 0, false)?;
        let mut tag = [0u8; 1];
        r.read_exact(&mut tag).map_err(|e| self.protocol_error(e.to_string()))?;
        if tag[0] == TAG_ERROR {
            return Err(self.read_error(&mut r));
        }
        let mut last = [0u8; 8];
        r.read_exact(&mut last).map_err(|e| self.protocol_error(e.to_string()))?;
        Ok((tag[0] == 1).then(|| u64::from_be_bytes(last)))
    }

    fn too_large(&self, what: &'static str, len: u64, cap: u64) -> StoreError {
        StoreError::FrameTooLarge { socket: self.socket(), what, len, cap }
    }

    fn read_error(&self, r: &mut impl Read) -> StoreError {
        let mut len = [0u8; 4];
        if let Err(e) = r.read_exact(&mut len) {
            return self.protocol_error(e.to_string());
        }
        let len = u64::from(u32::from_be_bytes(len));
        if len > MAX_MESSAGE_FRAME {
            return self.too_large("error message", len, MAX_MESSAGE_FRAME);
        }
        let mut msg = vec![0; len as usize];
        match r.read_exact(&mut msg) {
            Ok(()) => self.protocol_error(format!("the serving process reports: {}", String::from_utf8_lossy(&msg))),
            Err(e) => self.protocol_error(e.to_string()),
        }
    }

    /// Records from `from` on; with `follow`, also those appended later,
    /// until the writer closes (or dies).
    pub fn stream(&self, from: u64, follow: bool) -> Result<RawRecords, StoreError> {
        let (mut r, _) = self.request(if follow { REQ_FOLLOW } else { REQ_RANGE }, from, follow)?;
        let this = self.clone();
        let mut done = false;
        Ok(Box::new(std::iter::from_fn(move || {
            if done {
                return None;
            }
            let mut tag = [0u8; 1];
            if let Err(e) = r.read_exact(&mut tag) {
                done = true;
                // A follower whose writer died just ends; a range must be whole.
                return (!follow).then(|| Err(this.protocol_error(format!("the serving process went away: {e}"))));
            }
            let item = match tag[0] {
                TAG_END => {
                    done = true;
                    return None;
                }
                TAG_RECORD => this.read_record(&mut r),
                TAG_ERROR => Err(this.read_error(&mut r)),
                t => Err(this.protocol_error(format!("unknown frame tag {t}"))),
            };
            done = item.is_err();
            Some(item)
        })))
    }

    fn read_record(&self, r: &mut impl Read) -> Result<(u64, sled::IVec), StoreError> {
        let mut head = [0u8; 12];
        r.read_exact(&mut head).map_err(|e| self.protocol_error(e.to_string()))?;
        let (mut seq, mut len) = ([0u8; 8], [0u8; 4]);
        seq.copy_from_slice(&head[..8]);
        len.copy_from_slice(&head[8..]);
        let (seq, len) = (u64::from_be_bytes(seq), u64::from(u32::from_be_bytes(len)));
        if len > MAX_RECORD_FRAME {
            return Err(self.too_large("record", len, MAX_RECORD_FRAME));
        }
        let mut bytes = vec![0; len as usize];
        r.read_exact(&mut bytes).map_err(|e| self.protocol_error(e.to_string()))?;
        Ok((seq, bytes.into()))
    }
}
