//! The `similarity` metric on the real all-MiniLM-L6-v2, and `restpg reward
//! check` through the built binary on the real demo data with the real
//! SmolLM2 judge, at tiny scale.

use std::path::Path;

use restpg::reward::{Metric, Scorers, Similarity};

mod common;
use common::cli::{bin, run_ok};

fn similarity() -> Similarity {
    Similarity::load_default().expect("all-MiniLM-L6-v2 (run scripts/setup.sh)")
}

#[test]
fn similarity_ranks_a_light_paraphrase_above_an_unrelated_text() {
    let s = similarity();
    let text = "The meeting has been moved to Thursday afternoon because the projector in room four is broken.";
    let paraphrase = "We moved the meeting to Thursday afternoon, since room four's projector is broken.";
    let unrelated = "Preheat the oven, then knead the dough for ten minutes until it is smooth and elastic.";
    let scores = s.scores(&[(text, paraphrase), (text, unrelated), (text, text), (text, "  ")]).unwrap();
    let (para, other, same, blank) = (scores[0], scores[1], scores[2], scores[3]);
    assert!(para > other + 0.3, "paraphrase {para} vs unrelated {other}");
    assert!((same - 1.0).abs() < 1e-4, "a text against itself: {same}");
    assert_eq!(blank, 0.0, "a blank response scores 0");
    assert!(scores.iter().all(|v| (0.0..=1.0).contains(v)), "{scores:?}");
    // Through the scorers, as a reward, eval and `restpg score` use it.
    let scorers = Scorers::for_metrics(&[Metric::Similarity]).unwrap();
    let v = scorers.value(Metric::Similarity, text, paraphrase).unwrap();
    assert!((v - para).abs() < 1e-6, "{v} vs {para}");
}

/// The AUC in the column `col` (0-based) of the check's table row.
fn auc(table: &str, col: usize) -> Option<f64> {
    let row = table.lines().skip_while(|l| !l.starts_with("|---:")).nth(1).expect("table row");
    row.trim_matches('|').split('|').nth(col).and_then(|c| c.trim().parse().ok())
}

fn demo_config(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    run_ok(bin().args(["data", "demo", "--users", "4", "--max-words", "40", "--out"]).arg(&data));
    let cfg = dir.join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "method = \"rest-pg\"\ndata = \"{}\"\n[retrieval]\nk = 1\n[reward]\nrule = \"expected\"\ntau = 0.3\n",
            data.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn reward_check_prints_the_aucs_of_lexical_similarity_and_judge_rewards() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = demo_config(tmp.path());
    // The demo's 4 users per task leave 2 training users per task: each has
    // another user's text to be told from.
    let check = |reward: &str| {
        let out = tmp.path().join(reward.replace('*', "x").replace('+', "_"));
        let (stdout, stderr) = run_ok(
            bin()
                .args(["reward", "check", "--split", "train", "--per-task", "8", "--reward", reward, "--config"])
                .arg(&cfg)
                .arg("--out")
                .arg(&out),
        );
        assert!(stdout.contains(&format!("Reward check: `{reward}`")), "{stdout}");
        assert!(out.join("reward-check.json").exists() && out.join("reward-check.md").exists());
        (stdout, stderr)
    };
    // A lexical reward gives the user's own text 1 and the empty text 0.
    let (meteor, _) = check("meteor");
    assert!(meteor.contains("4 examples"), "{meteor}");
    assert!(auc(&meteor, 0).is_some_and(|a| a > 0.75), "{meteor}");
    assert_eq!(auc(&meteor, 1), Some(1.0), "{meteor}");
    let (sim, _) = check("0.5*similarity+0.5*meteor");
    assert!(auc(&sim, 0).is_some_and(|a| a > 0.75), "{sim}");
    assert_eq!(auc(&sim, 1), Some(1.0), "{sim}");
    // The real judge runs through the run's own capability; its AUCs are
    // whatever they are, but they are printed, and a weak one is warned of.
    let (judge, stderr) = check("judge");
    let a = auc(&judge, 0).expect("AUC own > other");
    assert!((0.0..=1.0).contains(&a), "{judge}");
    if a < 0.75 {
        assert!(stderr.contains("the reward cannot tell this user's text from someone else's"), "{stderr}");
        assert!(judge.contains("D_t will be noise"), "{judge}");
    }
}
