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

/// Three responses to one request (their prompts share the request and the
/// reference, more than `MIN_SHARED_PREFIX` tokens) and one to another.
fn e_step_items() -> Vec<RewardInput> {
    let input = "Write an email to the list about the build failure.";
    let expected = "Hi all, the nightly build failed again on the ARM box last night. I looked at the logs this \
                    morning and I think the new linker flags we merged on Tuesday are to blame: the link step runs \
                    out of memory. I will revert them today unless someone objects. Cheers, Dan";
    let mut items: Vec<RewardInput> = [
        "The nightly build broke on ARM, probably the linker flags we added yesterday.",
        "Hello team, ARM nightly failed. Linker flags from Tuesday ran the link out of memory; reverting today.",
        "I like turtles.",
    ]
    .iter()
    .map(|r| RewardInput { input: input.into(), expected: expected.into(), response: (*r).into() })
    .collect();
    items.push(RewardInput {
        input: "Write an email about lunch.".into(),
        expected: "Shall we meet at noon at the usual place?".into(),
        response: "Lunch at noon? Usual spot.".into(),
    });
    items
}

fn max_abs_diff(a: &[restpg::reward::RewardOutput], b: &[restpg::reward::RewardOutput]) -> f32 {
    let mut worst = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        let (p, q) = (x.distribution.as_ref().unwrap(), y.distribution.as_ref().unwrap());
        assert_eq!(p.len(), 11);
        for (u, v) in p.iter().zip(q) {
            worst = worst.max((u - v).abs());
        }
    }
    worst
}

#[test]
fn one_pass_with_shared_prefixes_equals_a_pass_per_prefix_on_real_judge_prompts() {
    use restpg::lm::ScoreOptions;
    use restpg::reward::judge::ScoreWith;
    // Given the real SmolLM2, the built-in judge template and E-step-like prompts
    let m = model();
    let items = e_step_items();
    // The judge before single-pass scoring: a forward per score prefix, every row whole.
    let unshared = ScoreWith { model: &m, options: ScoreOptions { share_prefixes: false } };
    let mut before = Judge::new(unshared, JudgeConfig { pass_per_prefix: true, ..JudgeConfig::default() }).unwrap();
    let mut after = Judge::new(&m, JudgeConfig::default()).unwrap();
    let prompt_len = after.prompt_ids(&items[0].input, &items[0].expected, &items[0].response).unwrap().len();
    assert!(prompt_len > 300, "a real-sized judge prompt: {prompt_len} tokens");
    // When both judge them
    let old = before.score(&items).unwrap();
    let new = after.score(&items).unwrap();
    // Then the distributions agree to float tolerance, as do the rewards
    let d = max_abs_diff(&old, &new);
    eprintln!("max |p_before - p_after| = {d:e}");
    assert!(d < 1e-4, "max abs diff {d}");
    for (x, y) in old.iter().zip(&new) {
        assert!((x.reward - y.reward).abs() < 1e-4, "{} vs {}", x.reward, y.reward);
    }
    // and the result does not depend on chunking (one prompt per forward: nothing shared)
    let mut single = Judge::new(&m, JudgeConfig { batch_size: 1, ..JudgeConfig::default() }).unwrap();
    let one_by_one = single.score(&items).unwrap();
    let d1 = max_abs_diff(&new, &one_by_one);
    assert!(d1 < 1e-4, "batch 8 vs batch 1: {d1}");
    // nor on prefix sharing alone.
    let mut no_share = Judge::new(unshared, JudgeConfig::default()).unwrap();
    let d2 = max_abs_diff(&new, &no_share.score(&items).unwrap());
    assert!(d2 < 1e-4, "shared vs unshared prefixes: {d2}");
}

#[test]
fn tail_logprobs_read_the_next_token_distribution_at_each_of_the_last_positions() {
    use restpg::lm::ScoreOptions;
    // Given two rows that share a long prefix, and a short one
    let m = model();
    let tk = m.tokenizer();
    let base = tk.chat(None, &"The quick brown fox jumps over the lazy dog. ".repeat(8)).unwrap().ids;
    let a: Vec<u32> = base.iter().copied().chain(tk.encode("Yes, 1").unwrap()).collect();
    let b: Vec<u32> = base.iter().copied().chain(tk.encode("No").unwrap()).collect();
    let c = tk.chat(None, "Hi").unwrap().ids;
    let seqs = vec![a.clone(), b.clone(), c.clone()];
    let tails = [3, 1, 2];
    // When the last positions are read with and without prefix sharing
    let shared = m.tail_logprobs(&seqs, &tails).unwrap();
    let whole = m.tail_logprobs_with(&seqs, &tails, ScoreOptions { share_prefixes: false }).unwrap();
    // Then position j of row r is the next-token distribution after its prefix
    for (r, (s, &k)) in seqs.iter().zip(&tails).enumerate() {
        assert_eq!(shared[r].len(), k);
        let prefixes: Vec<Vec<u32>> = (0..k).map(|j| s[..s.len() - k + 1 + j].to_vec()).collect();
        let next = m.next_token_logprobs(&prefixes).unwrap();
        for (j, want) in next.iter().enumerate() {
            for (x, (y, z)) in shared[r][j].iter().zip(whole[r][j].iter().zip(want)) {
                assert!((x - z).abs() < 1e-3 && (y - z).abs() < 1e-3, "row {r} position {j}: {x} {y} {z}");
            }
        }
    }
    // and bad tails are refused with the row named.
    let e = m.tail_logprobs(std::slice::from_ref(&c), &[c.len() + 1]).unwrap_err().to_string();
    assert!(e.contains("row 0"), "{e}");
    assert!(m.tail_logprobs(&[c], &[0]).is_err());
}
