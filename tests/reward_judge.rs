//! The LLM judge on the real SmolLM2-135M-Instruct (GGUF from the set-up):
//! score tokens, a distribution that sums to 1, and results that are
//! identical across runs and (to float tolerance) across batch compositions.

use restpg::lm::LanguageModel;
use restpg::reward::judge::{Judge, JudgeConfig, ScoreRule};

/// A short judge prompt keeps the test to seconds on two CPU cores (the
/// built-in template is ~300 tokens; the judging code path is the same).
fn config(batch_size: usize) -> JudgeConfig {
    JudgeConfig {
        batch_size,
        system: Some("You are a strict grader.".into()),
        template: Box::new(|i, e, g| {
            format!("Task: {i}\nReference: {e}\nCandidate: {g}\nRate the candidate from 0 to 10. Answer with the number only.")
        }),
        ..JudgeConfig::default()
    }
}
use restpg::reward::{Reward, RewardInput};

fn model() -> LanguageModel {
    let p = restpg::paths::require(restpg::paths::smollm2_gguf()).expect("SmolLM2 (run scripts/setup.sh)");
    LanguageModel::load(&p, tch::Device::Cpu).expect("load SmolLM2")
}

fn items() -> Vec<RewardInput> {
    vec![
        RewardInput {
            input: "Write an email to the list about the build failure.".into(),
            expected: "The nightly build failed again on the ARM box; I think the new linker flags are to blame."
                .into(),
            response: "The nightly build broke on ARM, probably the linker flags we added yesterday.".into(),
        },
        RewardInput {
            input: "Write an email about lunch.".into(),
            expected: "Shall we meet at noon at the usual place?".into(),
            response: "Quantum chromodynamics describes the strong force.".into(),
        },
        RewardInput { input: "Reply to Bob.".into(), expected: "Thanks Bob, will do.".into(), response: "   ".into() },
    ]
}

#[test]
fn real_judge_distribution_rules_and_determinism() {
    let m = model();
    let tk = m.tokenizer();
    let mut judge = Judge::new(&m, config(8)).expect("judge");
    // Every score has tokens that decode back to it; SmolLM2 splits "10" into digits.
    for (s, ids) in judge.score_tokens().iter().enumerate() {
        assert_eq!(tk.decode(ids).unwrap(), s.to_string());
    }
    let items = items();
    let a = judge.score(&items).expect("score");
    assert!(a[2].empty_response && a[2].reward == 0.0 && a[2].distribution.is_none());
    assert_eq!(judge.empty_responses(), 1);
    for (i, o) in a.iter().enumerate().filter(|(i, _)| *i != 2) {
        let d = o.distribution.as_ref().expect("distribution");
        assert_eq!(d.len(), 11);
        let sum: f32 = d.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "item {i}: sums to {sum}");
        assert!(d.iter().all(|p| (0.0..=1.0).contains(p)));
        assert_eq!(o.reward, ScoreRule::Argmax.apply(d), "item {i}");
        assert!((0.0..=1.0).contains(&o.reward));
        eprintln!("item {i}: reward {} distribution {d:?}", o.reward);
    }
    // Same inputs again: bitwise identical.
    let b = judge.score(&items).expect("score again");
    assert_eq!(a, b);
    // Other batch compositions: one at a time, and in reverse order mixed with
    // a different batch size.
    let mut single = Judge::new(&m, config(1)).expect("judge");
    let mut rev_items = items.clone();
    rev_items.reverse();
    let mut rev = single.score(&rev_items).expect("reversed");
    rev.reverse();
    for (x, y) in a.iter().zip(&rev) {
        assert_eq!(x.empty_response, y.empty_response);
        match (&x.distribution, &y.distribution) {
            (Some(p), Some(q)) => {
                for (u, v) in p.iter().zip(q) {
                    assert!((u - v).abs() < 1e-4, "{p:?} vs {q:?}");
                }
            }
            (None, None) => {}
            other => panic!("distribution presence differs: {other:?}"),
        }
    }
}
