//! [`Server`]: a model server restpg starts from a `launch` template
//! (`vllm serve {hf_dir} --port {port}`, `python -m llama_cpp.server --model
//! {gguf} --port {port}`), waits for until `/v1/models` answers, and stops
//! (its whole process group) when the last worker using it lets it go; and
//! [`Servers`], the one server per served checkpoint that a stage's workers
//! share.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use super::client::Client;

/// The line written into a server's log before each launch's output, then
/// the command in backquotes and its port.
pub const LAUNCH_MARK: &str = "restpg: launching";

/// What fills a template's placeholders.
#[derive(Debug, Clone, Default)]
pub struct Fill {
    /// `{hf_dir}`: the checkpoint as a Hugging Face directory.
    pub hf_dir: Option<PathBuf>,
    /// `{gguf}`: the checkpoint as a GGUF file.
    pub gguf: Option<PathBuf>,
    /// `{port}`.
    pub port: u16,
    /// `{seed}`: the run seed.
    pub seed: u64,
}

/// `s` quoted for `sh` (single quotes; a `'` inside becomes `'\''`).
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command line of `template` with its placeholders filled (paths
/// shell-quoted).
///
/// # Errors
/// A placeholder the template uses that `fill` has no value for.
pub fn fill_template(template: &str, fill: &Fill) -> Result<String> {
    let mut out = template.to_owned();
    for (name, value) in [("{hf_dir}", &fill.hf_dir), ("{gguf}", &fill.gguf)] {
        if out.contains(name) {
            let v =
                value.as_ref().with_context(|| format!("the launch template needs {name}, which is not available"))?;
            out = out.replace(name, &shell_quote(&v.to_string_lossy()));
        }
    }
    Ok(out.replace("{port}", &fill.port.to_string()).replace("{seed}", &fill.seed.to_string()))
}

/// A port nothing listens on now (the OS's pick for `127.0.0.1:0`).
///
/// # Errors
/// No socket can be bound.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free local port")?;
    Ok(l.local_addr()?.port())
}

/// The last `n` bytes of the file at `path`, as text (empty when unreadable).
pub(crate) fn file_tail(path: &Path, n: usize) -> String {
    file_tail_from(path, 0, n)
}

/// The last `n` bytes of the file at `path` after byte `from` (what one
/// launch appended to a log), as text (empty when unreadable).
fn file_tail_from(path: &Path, from: u64, n: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    let start = bytes.len().saturating_sub(n).max(from);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// A spawn request to the launcher thread, with where its answer goes.
type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from one thread that lives as long as the process: the
/// parent-death signal fires when the *thread* that forked the child ends,
/// and workers (which start servers) come and go.
fn spawn_from_launcher(cmd: Command) -> std::io::Result<Child> {
    static LAUNCHER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("server-launcher".into())
            .spawn(move || {
                for (mut cmd, answer) in rx {
                    let _ = answer.send(cmd.spawn());
                }
            })
            .expect("spawning the launcher thread");
        Mutex::new(tx)
    });
    let (answer, result) = mpsc::channel();
    tx.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send((cmd, answer))
        .map_err(|_| std::io::Error::other("the server launcher thread is gone"))?;
    result.recv().map_err(|_| std::io::Error::other("the server launcher thread is gone"))?
}

/// A running server that restpg started.
pub struct Server {
    child: Mutex<Child>,
    /// Base URL of its API (`http://127.0.0.1:<port>/v1`).
    pub base: String,
    /// The command line it was started with.
    pub command: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Where this launch's output starts in `log` (earlier launches' come
    /// before it).
    log_from: u64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("base", &self.base).field("command", &self.command).finish_non_exhaustive()
    }
}

impl Server {
    /// Starts `command` through `sh -c` in its own process group, output to
    /// `log`, and waits until `GET {base}/models` answers 200 (`probe`
    /// asks), at most `startup`.
    ///
    /// # Errors
    /// The command does not start, exits before it answers (with the tail
    /// of its output), or does not answer within `startup` (it is stopped).
    pub fn start(command: &str, port: u16, log: &Path, startup: Duration, probe: &Client) -> Result<Server> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Appended: a server launched again for the same model (after a
        // crash, or for evaluation and then the E-step) keeps the output of
        // the one before it, each after a line naming its command.
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let log_from = out.metadata().with_context(|| format!("reading {}", log.display()))?.len();
        writeln!(out, "{LAUNCH_MARK} `{command}` on port {port}")
            .with_context(|| format!("writing {}", log.display()))?;
        let err = out.try_clone().with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = Command::new("sh");
        // `exec`: the server replaces the shell, so it is our child and the
        // death signal below reaches it.
        cmd.arg("-c").arg(format!("exec {command}")).stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of
        // ours; it runs in the child between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // Killed when restpg dies, even by SIGKILL: no server
                // outlives the run that started it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawn_from_launcher(cmd).with_context(|| format!("starting the server `{command}`"))?;
        let server = Server {
            child: Mutex::new(child),
            base: format!("http://127.0.0.1:{port}/v1"),
            command: command.to_owned(),
            log: log.to_owned(),
            log_from,
        };
        let t0 = Instant::now();
        loop {
            if let Some(status) = server.exited() {
                bail!(
                    "the server `{command}` exited ({status}) before it answered on port {port}; the end of its output ({}):\n{}",
                    log.display(),
                    file_tail_from(log, log_from, 2000)
                );
            }
            if probe.answers() {
                return Ok(server);
            }
            if t0.elapsed() > startup {
                drop(server);
                bail!(
                    "the server `{command}` did not answer {}/models within {} s (engine startup_timeout_s); the end of its output ({}):\n{}",
                    probe.base(),
                    startup.as_secs(),
                    log.display(),
                    file_tail_from(log, log_from, 2000)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The exit status, when the process has ended.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.try_wait().ok().flatten()
    }

    /// The process group id (the `sh` started it).
    fn pgid(&self) -> i32 {
        self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner).id() as i32
    }

    /// The end of the server's output, for errors.
    pub fn output_tail(&self) -> String {
        file_tail_from(&self.log, self.log_from, 2000)
    }
}

impl Drop for Server {
    /// SIGTERM to the whole group, up to 10 s to exit, then SIGKILL.
    fn drop(&mut self) {
        let pgid = self.pgid();
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created; it touches no memory of ours.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let t0 = Instant::now();
        while self.exited().is_none() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; the group may hold children of the shell.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let mut c = self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = c.wait();
    }
}

/// The servers of one role, one per served checkpoint, shared by the
/// stage's workers: the first worker to need a checkpoint starts its
/// server, the others wait for it and use the same one, and it stops when
/// the last of them lets go (the stage's workers are dropped with the
/// stage).
#[derive(Clone, Default)]
pub struct Servers {
    slots: Arc<Mutex<BTreeMap<events::Digest, Weak<Server>>>>,
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Servers").finish_non_exhaustive()
    }
}

impl Servers {
    /// The running server of `checkpoint`, or the one `start` starts. A
    /// server whose process has exited is not handed out again: the next
    /// call starts a new one.
    ///
    /// # Errors
    /// What `start` returns.
    pub fn get_or_start(
        &self,
        checkpoint: events::Digest,
        start: impl FnOnce() -> Result<Server>,
    ) -> Result<Arc<Server>> {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.retain(|_, w| w.strong_count() > 0);
        if let Some(s) = slots.get(&checkpoint).and_then(Weak::upgrade) {
            if s.exited().is_none() {
                return Ok(s);
            }
        }
        let s = Arc::new(start()?);
        slots.insert(checkpoint, Arc::downgrade(&s));
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_filled_with_quoted_paths() {
        let fill = Fill { gguf: Some("/a b/it's.gguf".into()), port: 8123, seed: 7, hf_dir: None };
        let cmd = fill_template("serve --model {gguf} --port {port} --seed {seed}", &fill).unwrap();
        assert_eq!(cmd, r"serve --model '/a b/it'\''s.gguf' --port 8123 --seed 7");
        let err = fill_template("vllm serve {hf_dir}", &fill).unwrap_err().to_string();
        assert!(err.contains("{hf_dir}"), "{err}");
    }

    #[test]
    fn a_launch_that_exits_early_fails_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let probe = Client::new("http://127.0.0.1:9/v1", Duration::from_secs(1), 0, None);
        let log = dir.path().join("server.log");
        // A log that already holds an earlier launch's output,
        std::fs::write(&log, format!("{LAUNCH_MARK} `old`\nearlier server output\n")).unwrap();
        let err = Server::start("echo 'no such model file' >&2; exit 3", 9, &log, Duration::from_secs(20), &probe)
            .unwrap_err()
            .to_string();
        // whose lines the error does not show as this launch's.
        assert!(err.contains("exited") && err.contains("no such model file"), "{err}");
        assert!(!err.contains("earlier server output"), "{err}");
        assert!(std::fs::read_to_string(&log).unwrap().contains("earlier server output"), "the log was truncated");
    }

    #[test]
    fn a_server_that_never_answers_is_stopped_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port().unwrap();
        let probe = Client::new(&format!("http://127.0.0.1:{port}/v1"), Duration::from_secs(1), 0, None);
        let pidfile = dir.path().join("pid");
        // The shell starts a child that would outlive a plain kill of `sh`.
        let cmd = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let err =
            Server::start(&cmd, port, &dir.path().join("log"), Duration::from_secs(1), &probe).unwrap_err().to_string();
        assert!(err.contains("did not answer") && err.contains("startup_timeout_s"), "{err}");
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // Gone, or a zombie waiting for init to reap it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')) && !stat.is_empty();
        assert!(!alive, "the server's child {pid} outlived it");
    }
}
