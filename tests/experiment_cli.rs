//! `restpg experiment` end to end at tiny settings of the real pipeline:
//! two systems on the real demo corpora with the real SmolLM2 policy and
//! judge, each in its own run directory with its own log, Table 1 written,
//! and a second invocation reading both finished runs back from their logs.

use std::path::Path;

mod common;
use common::cli::{bin, run_ok};

const BASE: &str = r#"
method = "rest-pg"
[retrieval]
k = 1
[sampling]
m = 2
max_new_tokens = 12
batch_size = 4
[reward]
name = "meteor"
tau = 0.0
check_per_task = 0
[em]
iterations = 1
[train]
learning_rate = 1e-4
warmup_steps = 1
max_steps = 1
batch_size = 2
micro_batch_size = 2
max_input_tokens = 384
max_output_tokens = 32
[eval]
max_per_task = 2
max_new_tokens = 8
validation = false
"#;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn experiment_runs_each_system_in_its_own_run_and_writes_table_1() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "base.toml", BASE);
    let exp = write(
        tmp.path(),
        "exp.toml",
        "base = \"base.toml\"\nsystems = [\"sft\", \"rest-em\"]\nseed = 3\n[data]\nsource = \"demo\"\nusers = 8\ntrain_users = 2\n",
    );
    let out = tmp.path().join("out");
    let (stdout, stderr) = run_ok(bin().args(["experiment", "--quiet", "--config"]).arg(&exp).arg("--out").arg(&out));
    assert!(stderr.contains("running sft") && stderr.contains("running rest-em"), "{stderr}");
    for system in ["sft", "rest-em"] {
        let run = out.join(system);
        let (status, _) = run_ok(bin().arg("status").arg(&run));
        assert!(status.contains("finished in") && status.contains("eval") && status.contains("test"), "{status}");
        let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("method = \"{system}\"")) && cfg.contains("seed = 3"), "{cfg}");
    }
    // Table 1 for every evaluated metric, rows numbered in the file's order,
    // each with its n and the significance legend.
    let table = std::fs::read_to_string(out.join("table1.md")).unwrap();
    assert_eq!(table, stdout.split("experiment wall time").next().unwrap(), "printed = written");
    for metric in ["**judge** on test", "**meteor** on test", "**rouge-l** on test"] {
        assert!(table.contains(metric), "{metric}: {table}");
    }
    assert!(table.contains("| 1 | sft |") && table.contains("| 2 | rest-em (t=1) |"), "{table}");
    assert!(table.contains("email-completion") && table.contains("topic-writing") && table.contains("macro average"));
    assert!(table.contains("A superscript j: significantly better than row j"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("table1.json")).unwrap()).unwrap();
    let first = &json[0];
    assert_eq!(first["systems"].as_array().unwrap().len(), 2);
    // Row 2's macro cell carries its test against row 1.
    let macro2 = first["cells"][1].as_array().unwrap().last().unwrap().clone();
    assert_eq!(macro2["tests"][0][0], 1, "{macro2}");

    // Again: both runs are read back from their logs, nothing reruns, the
    // same table comes out.
    let (again, stderr) = run_ok(bin().args(["experiment", "--quiet", "--config"]).arg(&exp).arg("--out").arg(&out));
    assert!(stderr.contains("sft already finished") && stderr.contains("rest-em already finished"), "{stderr}");
    assert_eq!(again.split("experiment wall time").next().unwrap(), table);

    // Another experiment into the same directory is refused.
    let other = write(
        tmp.path(),
        "other.toml",
        "base = \"base.toml\"\nsystems = [\"sft\"]\nseed = 4\n[data]\nsource = \"demo\"\nusers = 8\n",
    );
    let o = bin().args(["experiment", "--quiet", "--config"]).arg(&other).arg("--out").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("holds a different experiment"), "{err}");
}
