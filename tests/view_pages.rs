//! `restpg view` on a tiny real run (the demo data with HTML and script in
//! one user's input and profile, the real model and judge, the real log):
//! every page answers over HTTP and agrees with `restpg audit` and the
//! log; filters and paging work; text shows as text; a corrupt record is a
//! banner naming its sequence number; a directory that is no run is
//! refused; a log a writer is appending to is followed live; and headless
//! Chromium loads the pages, draws the charts and pages the table.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{bin, demo_data, events_of, run_ok};
use events::Event;

const SCRIPT: &str = "<script>alert(\"view-xss\")</script>";
const IMG: &str = "<img src=x onerror=alert(1)>";

/// A served view; killed when dropped.
struct View {
    child: Child,
    base: String,
    exited: bool,
}

impl View {
    fn start(dirs: &[&Path]) -> View {
        Self::start_with_tmp(dirs, None)
    }

    /// Starts it with `TMPDIR` set to `tmp`, when given (where a reader's
    /// private copy of a log goes).
    fn start_with_tmp(dirs: &[&Path], tmp: Option<&Path>) -> View {
        let mut cmd = bin();
        if let Some(tmp) = tmp {
            cmd.env("TMPDIR", tmp);
        }
        cmd.arg("view").args(dirs).args(["--port", "0"]).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn restpg view");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read the first line");
        let start = line.find("http://").unwrap_or_else(|| panic!("no address in {line:?}"));
        let url = line[start..].split_whitespace().next().expect("url").trim_end_matches('/').to_owned();
        assert!(line.contains("loopback"), "the default binding is not announced: {line}");
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        View { child, base: url, exited: false }
    }

    /// GET `path`: (status, body).
    fn get(&self, path: &str) -> (u16, String) {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) };
        match ureq::get(&url).timeout(Duration::from_secs(30)).call() {
            Ok(r) => (r.status(), r.into_string().expect("body")),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("GET {url}: {e}"),
        }
    }

    fn ok(&self, path: &str) -> String {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

impl View {
    /// Stops it as a user does (SIGTERM; Ctrl-C's SIGINT likewise) and
    /// waits for it to exit; true when it exited by itself within 20 s.
    fn stop(&mut self) -> bool {
        if self.exited {
            return true;
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid, which has not been waited
        // for, so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.exited = true;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if !self.stop() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Entries of `dir` whose names start with `prefix`.
fn entries(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// What minijinja's HTML escaping makes of `s` (it escapes `/` too).
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// The number inside `<span id="matching-count">…</span>`.
fn matching(body: &str) -> usize {
    let at = body.find("id=\"matching-count\">").expect("matching count") + "id=\"matching-count\">".len();
    body[at..].split('<').next().unwrap().parse().expect("a count")
}

/// Hrefs of the sample rows, entity-decoded.
fn sample_links(body: &str) -> Vec<String> {
    body.match_indices("<tr class=\"sample-row\"><td class=\"mono\"><a href=\"")
        .map(|(i, m)| {
            let rest = &body[i + m.len()..];
            rest[..rest.find('"').unwrap()].replace("&#x2f;", "/").replace("&amp;", "&")
        })
        .collect()
}

/// The demo data with the first train example's input and every one of its
/// profile items carrying HTML and script.
fn hostile_data(dir: &Path) -> (PathBuf, String) {
    let data = demo_data(dir);
    let ds = restpg::data::Dataset::load(&data).expect("demo data");
    let mut splits = ds.into_splits();
    let train = splits.get_mut(&restpg::data::Split::Train).expect("train split");
    let ex = &mut train[0];
    ex.input.push_str(&format!(" {SCRIPT}"));
    for item in &mut ex.profile {
        for v in item.fields.values_mut() {
            v.push_str(&format!(" {IMG} {SCRIPT}"));
        }
    }
    let id = ex.id.clone();
    let ds = restpg::data::Dataset::from_splits("demo with hostile text", splits).expect("valid");
    let out = dir.join("hostile");
    ds.save(&out).expect("save");
    (out, id)
}

fn config(data: &Path) -> String {
    format!(
        r#"
method = "rest-em"
seed = 11
data = "{data}"

[retrieval]
k = 2

[sampling]
m = 4
max_new_tokens = 16
batch_size = 4

[reward]
name = "judge"
tau = 0.0
max_kept_per_input = 2
check_per_task = 2

[em]
iterations = 1
# The tiny token limits cut most samples: keep them, as the tiny run
# needs a D_t (the default drops them as `unfinished`).
allow_unfinished_samples = true

[train]
learning_rate = 1e-4
warmup_steps = 1
max_steps = 2
batch_size = 2
micro_batch_size = 2
max_input_tokens = 384
max_output_tokens = 48

[eval]
max_per_task = 2
max_new_tokens = 8
"#,
        data = data.display()
    )
}

fn audit_count(run: &Path, extra: &[&str]) -> usize {
    let (stdout, _) = run_ok(bin().args(["audit", "--iteration", "1", "--format", "jsonl"]).args(extra).arg(run));
    stdout.lines().filter(|l| !l.trim().is_empty()).count()
}

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("chromium")).find(|c| c.is_file()));
    found.expect("chromium is not on PATH: `bash scripts/setup.sh --browser` installs Debian's package")
}

/// Headless Chromium: the DOM after the page's load, and a screenshot.
fn browse(url: &str, shot: &Path) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let common = |c: &mut Command| {
        c.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stderr(Stdio::null());
    };
    let mut dump = Command::new(chromium());
    common(&mut dump);
    let out = dump.args(["--virtual-time-budget=3000", "--dump-dom", url]).output().expect("run chromium");
    assert!(out.status.success(), "chromium --dump-dom {url} failed");
    let mut snap = Command::new(chromium());
    common(&mut snap);
    let status = snap
        .arg(format!("--screenshot={}", shot.display()))
        .args(["--window-size=1280,1600", url])
        .status()
        .expect("run chromium");
    assert!(status.success(), "chromium --screenshot {url} failed");
    let png = std::fs::read(shot).expect("screenshot written");
    // RESTPG_VIEW_SHOTS=DIR keeps the screenshots for a person to look at.
    if let Some(keep) = std::env::var_os("RESTPG_VIEW_SHOTS") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).expect("screenshot folder");
        std::fs::copy(shot, keep.join(shot.file_name().expect("a file name"))).expect("keep the screenshot");
    }
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} is no real screenshot", shot.display());
    String::from_utf8(out.stdout).expect("utf-8 DOM")
}

#[test]
fn the_view_serves_a_tiny_real_run_to_http_and_to_a_real_browser() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, hostile_input) = hostile_data(tmp.path());
    let cfg = tmp.path().join("run.toml");
    std::fs::write(&cfg, config(&data)).expect("config");
    let run = tmp.path().join("run");
    run_ok(bin().args(["train", "--quiet", "--config"]).arg(&cfg).arg("--run-dir").arg(&run));
    let events = events_of(&run);

    let private_tmp = tmp.path().join("tmp");
    std::fs::create_dir_all(&private_tmp).unwrap();
    let mut view = View::start_with_tmp(&[&run], Some(&private_tmp));
    // The finished run's log is read from a private copy while it serves.
    assert!(!entries(&private_tmp, "restpg-log-copy").is_empty(), "no private copy of the log");

    // The front page lists the run, finished.
    assert!(matches!(events[0], Event::RunStarted { .. }));
    let index = view.ok("/");
    assert!(index.contains("rest-em") && index.contains("finished in"), "{index}");

    // The run page: every checkpoint hash of the log, the evaluations with
    // their tests, the stages.
    let page = view.ok("/runs/0");
    for e in &events {
        if let Event::CheckpointSaved { hash, .. } = e {
            assert!(page.contains(&events::digest_hex(hash)), "checkpoint {} missing", events::digest_hex(hash));
        }
    }
    assert!(page.contains("id=\"evaluations\"") && page.contains("macro average"), "no evaluations");
    assert!(page.contains(", p "), "no t-test of iteration 1 against θ¹");
    assert!(page.contains("e-step") && page.contains("m-step"), "stages missing");
    assert!(page.contains("id=\"reward-check\""), "no reward check");

    // The iteration page: the histogram, the seal's digest, verified.
    let it = view.ok("/runs/0/iterations/1");
    let (count, digest) = events
        .iter()
        .find_map(|e| match e {
            Event::DatasetSealed { iteration: 1, count, digest } => Some((*count, *digest)),
            _ => None,
        })
        .expect("D_1 sealed");
    assert!(it.contains("<figure id=\"reward-histogram\"><svg"), "no histogram");
    assert!(it.contains(&events::digest_hex(&digest)), "seal digest missing");
    assert!(it.contains("Verified: D_1"), "D_1 not shown as verified");
    assert!(it.contains(&format!("{count} samples kept")), "D_t size missing");

    // The sample table agrees with `restpg audit` for every selection.
    let all = audit_count(&run, &[]);
    let kept = audit_count(&run, &["--kept"]);
    let rejected = audit_count(&run, &["--rejected"]);
    assert_eq!(all, kept + rejected);
    assert!(kept > 0 && rejected > 0, "the tiny run should keep some samples and reject others ({kept}/{rejected})");
    assert_eq!(matching(&view.ok("/runs/0/iterations/1/samples")), all);
    assert_eq!(matching(&view.ok("/runs/0/iterations/1/samples?decision=kept")), kept);
    assert_eq!(matching(&view.ok("/runs/0/iterations/1/samples?decision=rejected")), rejected);
    let one = audit_count(&run, &["--input", &hostile_input]);
    let by_input = view.ok(&format!("/runs/0/iterations/1/samples?input={hostile_input}"));
    assert_eq!(matching(&by_input), one);
    // A reward range and a task filter narrow it; sorting by reward orders it.
    let high = matching(&view.ok("/runs/0/iterations/1/samples?min=0.05"));
    assert!(high >= kept && high <= all, "{high}");
    let email = matching(&view.ok("/runs/0/iterations/1/samples?task=email-completion"));
    assert!(email > 0 && email < all, "{email} of {all}");
    // Pages of one row cover every sample once.
    let mut seen = Vec::new();
    let mut next = Some("/runs/0/iterations/1/samples?per=1".to_owned());
    while let Some(path) = next {
        let body = view.ok(&path);
        seen.extend(sample_links(&body));
        next = body.find("id=\"next\" href=\"").map(|i| {
            let rest = &body[i + "id=\"next\" href=\"".len()..];
            rest[..rest.find('"').unwrap()].replace("&#x2f;", "/").replace("&amp;", "&")
        });
    }
    assert_eq!(seen.len(), all);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), all, "a sample was listed twice");
    // A bad parameter is a 400 naming it.
    let (status, body) = view.get("/runs/0/iterations/1/samples?decision=maybe");
    assert_eq!(status, 400);
    assert!(body.contains("parameter `decision`"), "{body}");

    // The hostile sample's page shows its input and profile as text.
    let link = sample_links(&by_input).into_iter().next().expect("a sample of the hostile input");
    let sample = view.ok(&link);
    assert!(!sample.contains(SCRIPT) && !sample.contains(IMG), "hostile text reached the page unescaped");
    assert!(sample.contains(&escaped(SCRIPT)) && sample.contains(&escaped(IMG)), "hostile text not shown as text");
    assert!(sample.contains("id=\"response\"") && sample.contains("id=\"expected\""));
    assert!(sample.contains("id=\"distribution\""), "no judge distribution on the sample page");
    assert!(sample.contains("SampleGenerated") || sample.contains("sample-generated"), "no records behind it");

    // Compare: the run's θ¹ against its iteration 1; the run page's Δ of the
    // macro average is the same later-minus-θ¹ difference (equal task sizes).
    let cmp = view.ok("/compare?a=0:0&b=0:1&split=validation");
    assert!(cmp.contains("id=\"comparison\"") && cmp.contains("macro average"), "{cmp}");
    // The signed differences `(+0.012` of the one table row that starts with `start`.
    let deltas = |html: &str, start: &str| -> Vec<String> {
        let row = html.split("<tr>").find(|r| r.starts_with(start) && r.contains("macro average")).expect("the row");
        let row = &row[..row.find("</tr>").unwrap_or(row.len())];
        row.match_indices(" (")
            .map(|(i, _)| &row[i + 2..])
            .filter(|r| r.starts_with('+') || r.starts_with('-'))
            .map(|r| r[..6].to_owned())
            .collect()
    };
    let run_delta = deltas(&page, "<td class=\"num\">1</td><td>validation</td>");
    let cmp_delta = deltas(&cmp, "<td>macro average</td>");
    assert!(!cmp_delta.is_empty(), "no differences on the compare page");
    assert_eq!(run_delta, cmp_delta, "the run page and compare disagree on Δ");
    // Refusals are the view's own pages, naming what is wrong.
    let (status, body) = view.get("/runs/0/iterations/1/samples?page=999");
    assert_eq!(status, 400);
    assert!(body.contains("parameter `page`") && body.contains("past the last page"), "{body}");
    let (status, body) = view.get("/runs/0/iterations/1/samples?task=a&task=b");
    assert_eq!(status, 400);
    assert!(body.contains("class=\"banner error\"") && body.contains("duplicate field"), "{body}");
    let (status, body) = view.get("/runs/0/iterations/1/samples?task=bogus");
    assert_eq!(status, 400);
    assert!(body.contains("parameter `task`") && body.contains("email-completion"), "{body}");
    let (status, body) = view.get("/runs/abc");
    assert_eq!(status, 404);
    assert!(body.contains("class=\"banner error\"") && body.contains("whole numbers"), "{body}");

    // Nothing that is not there, nothing that writes.
    assert_eq!(view.get("/runs/7").0, 404);
    assert_eq!(view.get("/runs/0/iterations/9").0, 404);
    let post = ureq::post(&format!("{}/runs/0", view.base)).call();
    assert!(matches!(post, Err(ureq::Error::Status(404 | 405, _))), "a POST was answered: {post:?}");

    // A real browser: the histogram is drawn, the table pages, the sample
    // page shows its distribution as bars, the hostile text is text.
    let shots = tmp.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let dom = browse(&format!("{}/runs/0/iterations/1", view.base), &shots.join("iteration.png"));
    let svg = dom.split("id=\"reward-histogram\"").nth(1).expect("histogram in the DOM");
    assert!(svg.contains("<svg") && svg.matches("<rect").count() > 3, "the histogram has no bars");
    let dom = browse(&format!("{}/runs/0/iterations/1/samples?per=2", view.base), &shots.join("samples.png"));
    assert_eq!(dom.matches("class=\"sample-row\"").count(), 2);
    let next =
        dom.split("id=\"next\" href=\"").nth(1).expect("a next link").split('"').next().unwrap().replace("&amp;", "&");
    let dom2 = browse(&format!("{}{next}", view.base), &shots.join("samples-2.png"));
    assert!(dom2.contains("page 2 of"), "the next link did not reach page 2");
    assert_ne!(sample_links(&dom), sample_links(&dom2), "page 2 lists page 1's samples");
    let dom = browse(&format!("{}{link}", view.base), &shots.join("sample.png"));
    assert!(!dom.contains("<script>alert") && !dom.contains("<img src=\"x\""), "the browser built hostile elements");
    assert!(dom.contains("&lt;script&gt;alert"), "hostile text is not on the page as text");
    let bars = dom.split("id=\"score-distribution\"").nth(1).expect("the judge's distribution in the DOM");
    let bars = &bars[..bars.find("</figure>").expect("its figure ends")];
    assert!(bars.contains("<svg") && bars.matches("<rect").count() >= 11, "the distribution has no bar per score");
    // Stopped as a user stops it, it exits and leaves no copy of the log.
    assert!(view.stop(), "the view did not exit on SIGTERM");
    assert_eq!(entries(&private_tmp, "restpg-log-copy"), Vec::<String>::new(), "a copy of the log outlived the view");
    drop(view);

    // A corrupt record: a copy of the run with one record's bytes flipped
    // opens, and every page names the record in a banner.
    let bad = tmp.path().join("bad");
    copy_dir(&run, &bad);
    let seq = events.len() as u64 / 2;
    store::testing::tamper_record(store::RunDir::new(&bad).log(), seq, |b| {
        let i = b.len() / 2;
        b[i] ^= 0x01;
    })
    .unwrap();
    // And a run whose log cannot be opened at all is shown beside a good
    // one rather than refusing both.
    let broken = tmp.path().join("broken");
    copy_dir(&run, &broken);
    std::fs::write(store::RunDir::new(&broken).log().join("flushed"), "garbage\n").unwrap();
    let view = View::start(&[&bad, &broken, &run]);
    for path in ["/", "/runs/0"] {
        let body = view.ok(path);
        assert!(body.contains("class=\"banner error\"") && body.contains(&format!("seq {seq}")), "{path}: {body}");
    }
    let body = view.ok("/runs/0");
    assert!(body.contains("cannot be read past") && !body.contains("resume it"), "{body}");
    let body = view.ok("/runs/1");
    assert!(body.contains("class=\"banner error\"") && body.contains("flushed"), "{body}");
    assert!(view.ok("/runs/2").contains("finished in"));
    drop(view);

    // A directory that is no run is refused before anything is served.
    let out = bin().args(["view"]).arg(tmp.path()).args(["--port", "0"]).output().expect("run restpg view");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is not a run directory") && stderr.contains(&tmp.path().display().to_string()),
        "{stderr}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "reader.sock" && entry.file_name() != "owner.lock" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_log_being_written_is_followed_live_through_the_writers_socket() {
    // Given a writer that holds a run's log open (and so serves it on its
    // socket), with the first iteration's records appended
    let run = replay::synthetic::SyntheticRun { inputs: 4, m: 4, cap: 2, iterations: 2, ..Default::default() };
    let events = run.events();
    let split = events.iter().position(|e| matches!(e, Event::IterationFinished { iteration: 1 })).unwrap() + 1;
    let dir = tempfile::tempdir().unwrap();
    let log = store::EventLog::create(store::RunDir::new(dir.path()).log(), "run-live").expect("create");
    log.append_batch(events[..split].to_vec()).expect("append");
    log.flush().expect("flush");

    let view = View::start(&[dir.path()]);
    let page = view.ok("/runs/0");
    assert!(page.contains("running (pid"), "a held log is not shown as running");
    assert_eq!(view.get("/runs/0/iterations/2").0, 404);

    // When the writer appends the second iteration
    log.append_batch(events[split..].to_vec()).expect("append");
    log.flush().expect("flush");

    // Then the view shows it without a restart
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = view.get("/runs/0/iterations/2");
        if status == 200 {
            assert!(body.contains("Verified: D_2"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "iteration 2 never appeared: {status} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let index = view.ok("/");
    assert!(index.contains(&format!("<td class=\"num\">{}</td>", events.len())), "record count not current: {index}");
}
