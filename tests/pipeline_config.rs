//! Bad configurations are refused before any work starts, with an error
//! naming the key (through the real binary).

use std::path::Path;
use std::process::Command;

fn train_with(config: &str, dir: &Path) -> (bool, String) {
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_restpg"))
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .output()
        .expect("run restpg");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_configurations_name_the_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let data = data.display().to_string().replace('\\', "/");
    let cases: &[(String, &str)] = &[
        (format!("data = \"{data}\"\nbogus_key = 1\n"), "bogus_key"),
        (format!("data = \"{data}\"\n[sampling]\nm = 0\n"), "sampling.m"),
        (format!("data = \"{data}\"\n[reward]\ntau = 1.5\n"), "reward.tau"),
        (format!("data = \"{data}\"\n[reward]\nname = \"bleu\"\n"), "reward.name"),
        (format!("data = \"{data}\"\n[sampling]\ntop_p = 0.0\n"), "sampling.top_p"),
        (format!("data = \"{data}\"\nmethod = \"reinforce\"\n"), "method"),
        ("data = \"/nonexistent/restpg-data\"\n".to_string(), "data"),
        (format!("data = \"{data}\"\n[train]\nlearning_rate = -1.0\n"), "learning_rate"),
        (format!("data = \"{data}\"\n[model]\njudge = \"/nonexistent/judge.gguf\"\n"), "model.judge"),
    ];
    for (config, key) in cases {
        let (ok, stderr) = train_with(config, tmp.path());
        assert!(!ok, "config was accepted:\n{config}");
        assert!(stderr.contains(key), "error for\n{config}\ndoes not name `{key}`: {stderr}");
        assert!(!tmp.path().join("run").join("log").exists(), "work started for a bad config:\n{config}");
    }
}

/// `restpg demo` run again on its directory resumes the run there; what is
/// not a demo run, or one with another seed, is refused before any work
/// (nothing is removed without `--force`).
#[test]
fn demo_again_resumes_or_refuses_naming_why() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = |out: &Path, seed: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_restpg"))
            .args(["demo", "--quiet", "--seed", seed, "--out"])
            .arg(out)
            .output()
            .expect("run restpg");
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    // A directory with something else in it.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).expect("dir");
    std::fs::write(other.join("notes.txt"), "mine").expect("file");
    let (ok, err) = demo(&other, "0");
    assert!(!ok && err.contains("holds no demo run to resume") && err.contains("--force"), "{err}");
    assert!(other.join("notes.txt").is_file(), "the directory was touched");
    // A demo run started with seed 3, asked again with seed 0.
    let out = tmp.path().join("demo");
    std::fs::create_dir_all(out.join("run")).expect("dir");
    let data = tmp.path().display().to_string().replace('\\', "/");
    std::fs::write(out.join("run/config.toml"), format!("data = \"{data}\"\nseed = 3\n")).expect("config");
    let (ok, err) = demo(&out, "0");
    assert!(!ok && err.contains("with seed 3, not 0"), "{err}");
    // The same seed but no log yet: nothing to resume.
    let (ok, err) = demo(&out, "3");
    assert!(!ok && err.contains("holds no demo run to resume"), "{err}");
}
