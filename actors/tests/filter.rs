//! The filter's decisions, given / when / then (REST-PG Algorithm 1 line 9:
//! keep R ≥ τ, at most the cap per input, best first).

extern crate restpg_actors as actors;

use actors::filter::{decide, FilterError, FilterRule, Scored, Verdict, FIRST_RANK};
use events::{Decision, SampleId};

fn scored(input: &str, rewards: &[f32]) -> Vec<Scored> {
    rewards
        .iter()
        .enumerate()
        .map(|(i, &reward)| Scored {
            sample: SampleId { iteration: 1, input_id: input.into(), index: i as u32 },
            reward,
            has_reasoning: true,
            finish: Some(events::FinishReason::StopToken),
        })
        .collect()
}

/// The filter with threshold τ and cap, reasoning not required, unfinished
/// samples dropped (none of these is unfinished).
fn rule(tau: f32, cap: u32) -> FilterRule {
    FilterRule { tau, cap, require_reasoning: false, drop_unfinished: true }
}

/// (index, decision, rank) of each verdict, in sample order.
fn table(verdicts: &[Verdict]) -> Vec<(u32, Decision, u32)> {
    verdicts.iter().map(|v| (v.sample.index, v.decision, v.rank - FIRST_RANK)).collect()
}

use Decision::{BelowThreshold as Below, Kept, OverCap as Over};

#[test]
fn samples_at_or_above_tau_are_kept_up_to_the_cap_best_first() {
    // Given rewards 0.2, 0.9, 1.0, 0.9, 0.5 for one input, τ = 0.5, cap 2
    let samples = scored("a", &[0.2, 0.9, 1.0, 0.9, 0.5]);
    // When the filter decides
    let v = decide(&samples, &rule(0.5, 2)).unwrap();
    // Then the best (#2) and the first of the tied 0.9s (#1) are kept, the
    // other 0.9 and the 0.5 (= τ, passing) are over the cap, 0.2 is below τ
    assert_eq!(table(&v), vec![(0, Below, 4), (1, Kept, 1), (2, Kept, 0), (3, Over, 2), (4, Over, 3)]);
    assert!(v.iter().all(|x| x.reward == samples[x.sample.index as usize].reward));
}

#[test]
fn ties_are_broken_by_sample_index_whatever_the_input_order() {
    let mut samples = scored("a", &[1.0, 1.0, 1.0]);
    samples.reverse();
    let v = decide(&samples, &rule(1.0, 1)).unwrap();
    assert_eq!(table(&v), vec![(0, Kept, 0), (1, Over, 1), (2, Over, 2)]);
}

#[test]
fn each_input_has_its_own_cap_and_ranks() {
    let mut samples = scored("a", &[1.0, 1.0]);
    samples.extend(scored("b", &[0.5, 1.0]));
    let v = decide(&samples, &rule(1.0, 1)).unwrap();
    let by_input: Vec<(&str, u32, Decision, u32)> =
        v.iter().map(|x| (x.sample.input_id.as_str(), x.sample.index, x.decision, x.rank - FIRST_RANK)).collect();
    assert_eq!(by_input, vec![("a", 0, Kept, 0), ("a", 1, Over, 1), ("b", 0, Below, 1), ("b", 1, Kept, 0)]);
}

#[test]
fn nothing_passes_when_every_reward_is_below_tau() {
    let v = decide(&scored("a", &[0.1, 0.99]), &rule(1.0, 10)).unwrap();
    assert!(v.iter().all(|x| x.decision == Below));
}

#[test]
fn a_cap_of_zero_keeps_nothing() {
    let v = decide(&scored("a", &[1.0]), &rule(0.0, 0)).unwrap();
    assert_eq!(table(&v), vec![(0, Over, 0)]);
}

#[test]
fn unorderable_rewards_and_duplicates_are_refused() {
    let err = decide(&scored("a", &[0.5, f32::NAN]), &rule(0.5, 1)).unwrap_err();
    assert!(matches!(&err, FilterError::NotFinite { sample, .. } if sample == "t1/a/#1"), "{err}");
    let mut dup = scored("a", &[0.5]);
    dup.extend(scored("a", &[0.7]));
    assert!(matches!(decide(&dup, &rule(0.5, 1)), Err(FilterError::Duplicate { .. })));
    assert!(matches!(decide(&scored("a", &[0.5]), &rule(f32::INFINITY, 1)), Err(FilterError::BadThreshold(_))));
}
