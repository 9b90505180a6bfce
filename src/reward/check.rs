//! The reward check: can a reward tell a user's own text from someone
//! else's, and from degenerate text, before a run trusts it to filter D_t?
//!
//! For up to K examples per task (validation examples, in data set order;
//! the training split when there are none) the reward scores three kinds of
//! response against the example's expected output y:
//!
//! - **(a) own**: y itself — the best a response can be;
//! - **(b) other**: the expected output of another user's example of the
//!   same task (the next example of the task with another user and another
//!   text, cyclically) — on topic, well written, but not this user's;
//! - **(c) degenerate**: an empty response; the reasoning/response
//!   separator line repeated ([`DEGENERATE_REPEATS`] times), as a looping
//!   policy writes it; and y's first sentence repeated
//!   [`DEGENERATE_REPEATS`] times. Each is split at the separator like a
//!   generation ([`super::response_of`]), so the reward sees what it would
//!   see in the E-step.
//!
//! The figures are the AUCs (Mann–Whitney U / (n·m): the probability that a
//! random score of the first group beats one of the second, ties counting
//! 1/2) of a over b, a over c and b over c, pooled over tasks, and each
//! group's mean. AUC(a over b) is the number that matters for REST-PG: D_t
//! keeps samples by reward, so a reward that scores someone else's text as
//! high as the user's own ([`WEAK_AUC`]) fills D_t with noise.

use std::collections::BTreeMap;

use anyhow::{ensure, Result};

use super::{response_of, Reward, RewardInput};
use crate::data::{Example, Task};

/// How often the degenerate texts repeat their unit.
pub const DEGENERATE_REPEATS: usize = 12;

/// Below this AUC(a over b), the check warns: the reward cannot tell this
/// user's text from someone else's.
pub const WEAK_AUC: f64 = 0.75;

/// The warning shown when AUC(a over b) is below [`WEAK_AUC`].
pub const WEAK_WARNING: &str = "the reward cannot tell this user's text from someone else's; D_t will be noise";

/// Which group a scored response belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// (a) The example's own expected output.
    Own,
    /// (b) Another user's expected output for the same task.
    Other,
    /// (c) A degenerate text.
    Degenerate,
}

/// The outcome of a reward check.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RewardCheck {
    /// The reward spec checked, as configured.
    pub reward: String,
    /// K: examples per task at most.
    pub per_task: usize,
    /// Examples checked (each gives one own, at most one other and three
    /// degenerate responses).
    pub examples: usize,
    /// Responses scored per group: own, other, degenerate.
    pub counts: [usize; 3],
    /// AUC of own over other; `None` when a group is empty.
    pub auc_own_other: Option<f64>,
    /// AUC of own over degenerate.
    pub auc_own_degenerate: Option<f64>,
    /// AUC of other over degenerate.
    pub auc_other_degenerate: Option<f64>,
    /// Mean reward per group: own, other, degenerate (`None` when empty).
    pub means: [Option<f64>; 3],
}

/// The AUC of `pos` over `neg`: the share of pairs (p, n) with p > n, ties
/// counting 1/2 (the Mann–Whitney U statistic over n·m). `None` when either
/// side is empty. O(n·m): a check scores tens of texts.
pub fn auc(pos: &[f64], neg: &[f64]) -> Option<f64> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut u = 0.0f64;
    for p in pos {
        for n in neg {
            u += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(u / (pos.len() * neg.len()) as f64)
}

/// The first sentence of `text` (up to and including the first `.`, `!` or
/// `?` followed by whitespace or the end), or its first 20 words when it
/// has no sentence end.
fn first_sentence(text: &str) -> String {
    let t = text.trim();
    let chars: Vec<(usize, char)> = t.char_indices().collect();
    for (k, (i, c)) in chars.iter().enumerate() {
        if matches!(c, '.' | '!' | '?') && chars.get(k + 1).is_none_or(|(_, n)| n.is_whitespace()) {
            return t[..i + c.len_utf8()].to_string();
        }
    }
    t.split_whitespace().take(20).collect::<Vec<_>>().join(" ")
}

/// The degenerate raw generations for an expected output `expected`, with
/// the reasoning/response separator line `separator`: empty, the separator
/// line repeated, the first sentence repeated.
pub fn degenerate_texts(expected: &str, separator: &str) -> [String; 3] {
    let sentence = first_sentence(expected);
    [String::new(), [separator; DEGENERATE_REPEATS].join("\n"), [sentence.as_str(); DEGENERATE_REPEATS].join(" ")]
}

/// The examples a check scores: up to `per_task` per task, in the order
/// given.
pub fn pick(examples: &[Example], per_task: usize) -> BTreeMap<Task, Vec<&Example>> {
    let mut by_task: BTreeMap<Task, Vec<&Example>> = BTreeMap::new();
    for ex in examples {
        let group = by_task.entry(ex.task).or_default();
        if group.len() < per_task {
            group.push(ex);
        }
    }
    by_task
}

/// One text a check scores: its group, the example whose expected output it
/// is scored against, and the response (already split at the separator).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckText<'a> {
    /// Own, other or degenerate.
    pub group: Group,
    /// The example (its input x and expected output y).
    pub example: &'a Example,
    /// The response the reward sees.
    pub response: String,
}

impl CheckText<'_> {
    /// The reward's input for this text.
    pub fn reward_input(&self) -> RewardInput {
        RewardInput {
            input: self.example.input.clone(),
            expected: self.example.output.clone(),
            response: self.response.clone(),
        }
    }
}

/// The texts a check scores: for each picked example, its own output,
/// another user's (when its task has one) and the three degenerate texts
/// split as generations are.
pub fn check_items<'a>(examples: &'a [Example], per_task: usize, separator: &str) -> Vec<CheckText<'a>> {
    let mut out = Vec::new();
    for group in pick(examples, per_task).values() {
        for (i, ex) in group.iter().enumerate() {
            let text = |group: Group, response: String| CheckText { group, example: ex, response };
            out.push(text(Group::Own, ex.output.clone()));
            let other = (1..group.len())
                .map(|d| group[(i + d) % group.len()])
                .find(|o| o.user_id != ex.user_id && o.output.trim() != ex.output.trim());
            if let Some(o) = other {
                out.push(text(Group::Other, o.output.clone()));
            }
            for raw in degenerate_texts(&ex.output, separator) {
                out.push(text(Group::Degenerate, response_of(&raw).unwrap_or_default()));
            }
        }
    }
    out
}

/// A scorer of check texts: one reward per text, in order.
pub type ScoreTexts<'s> = dyn FnMut(&[CheckText<'_>]) -> Result<Vec<f32>> + 's;

/// Runs the check of the reward named `name` on `examples` with at most
/// `per_task` examples per task, scoring with `score`; `separator` is the
/// reasoning/response separator line.
///
/// # Errors
/// `per_task` of 0, no examples, a score count that does not match, or the
/// scorer's failures.
pub fn check_with(
    name: &str,
    examples: &[Example],
    per_task: usize,
    separator: &str,
    score: &mut ScoreTexts<'_>,
) -> Result<RewardCheck> {
    ensure!(per_task > 0, "the reward check needs at least 1 example per task (K = 0)");
    ensure!(!examples.is_empty(), "the reward check has no examples to score");
    let items = check_items(examples, per_task, separator);
    let outs = score(&items)?;
    ensure!(outs.len() == items.len(), "the reward returned {} scores for {} texts", outs.len(), items.len());
    let mut scores: [Vec<f64>; 3] = Default::default();
    for (t, o) in items.iter().zip(&outs) {
        scores[t.group as usize].push(f64::from(*o));
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    Ok(RewardCheck {
        reward: name.to_string(),
        per_task,
        examples: pick(examples, per_task).values().map(Vec::len).sum(),
        counts: [scores[0].len(), scores[1].len(), scores[2].len()],
        auc_own_other: auc(&scores[0], &scores[1]),
        auc_own_degenerate: auc(&scores[0], &scores[2]),
        auc_other_degenerate: auc(&scores[1], &scores[2]),
        means: [mean(&scores[0]), mean(&scores[1]), mean(&scores[2])],
    })
}

/// [`check_with`] scoring with `reward`.
///
/// # Errors
/// As [`check_with`].
pub fn check(
    reward: &mut dyn Reward,
    name: &str,
    examples: &[Example],
    per_task: usize,
    separator: &str,
) -> Result<RewardCheck> {
    check_with(name, examples, per_task, separator, &mut |texts| {
        let inputs: Vec<RewardInput> = texts.iter().map(CheckText::reward_input).collect();
        Ok(reward.score(&inputs)?.into_iter().map(|o| o.reward).collect())
    })
}

/// A number or `n/a`.
pub fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

impl RewardCheck {
    /// The check a `RewardChecked` event logged; `None` for other events.
    pub fn from_event(event: &events::Event) -> Option<Self> {
        match event {
            events::Event::RewardChecked {
                reward_name,
                per_task,
                examples,
                counts,
                auc_own_other,
                auc_own_degenerate,
                auc_other_degenerate,
                means,
            } => Some(RewardCheck {
                reward: reward_name.clone(),
                per_task: *per_task as usize,
                examples: *examples as usize,
                counts: counts.map(|c| c as usize),
                auc_own_other: *auc_own_other,
                auc_own_degenerate: *auc_own_degenerate,
                auc_other_degenerate: *auc_other_degenerate,
                means: *means,
            }),
            _ => None,
        }
    }

    /// The check as replay folded it from the log.
    pub fn from_record(r: &replay::RewardCheckRecord) -> Self {
        RewardCheck {
            reward: r.reward_name.clone(),
            per_task: r.per_task as usize,
            examples: r.examples as usize,
            counts: r.counts.map(|c| c as usize),
            auc_own_other: r.auc_own_other,
            auc_own_degenerate: r.auc_own_degenerate,
            auc_other_degenerate: r.auc_other_degenerate,
            means: r.means,
        }
    }

    /// Whether AUC(a over b) is below [`WEAK_AUC`] (or could not be
    /// computed): the reward cannot tell users apart.
    pub fn is_weak(&self) -> bool {
        self.auc_own_other.is_none_or(|a| a < WEAK_AUC)
    }

    /// The warning when [`RewardCheck::is_weak`].
    pub fn warning(&self) -> Option<String> {
        self.is_weak().then(|| {
            format!(
                "warning: reward `{}`: AUC(own over other) = {}: {WEAK_WARNING}",
                self.reward,
                fmt_opt(self.auc_own_other)
            )
        })
    }

    /// A Markdown table of the AUCs and means, and the warning when weak.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "## Reward check: `{}`\n\n{} examples (at most {} per task): {} own, {} other, {} degenerate texts scored.\n\n\
             | AUC own > other | AUC own > degenerate | AUC other > degenerate | mean own | mean other | mean degenerate |\n\
             |---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {} |\n",
            self.reward,
            self.examples,
            self.per_task,
            self.counts[0],
            self.counts[1],
            self.counts[2],
            fmt_opt(self.auc_own_other),
            fmt_opt(self.auc_own_degenerate),
            fmt_opt(self.auc_other_degenerate),
            fmt_opt(self.means[0]),
            fmt_opt(self.means[1]),
            fmt_opt(self.means[2]),
        );
        if let Some(w) = self.warning() {
            s.push_str(&format!("\n**{w}**\n"));
        }
        s
    }

    /// One line: the three AUCs and the means.
    pub fn summary_line(&self) -> String {
        format!(
            "reward check `{}` (K = {}, {} examples): AUC own>other {}, own>degenerate {}, other>degenerate {}; \
             means own {}, other {}, degenerate {}",
            self.reward,
            self.per_task,
            self.examples,
            fmt_opt(self.auc_own_other),
            fmt_opt(self.auc_own_degenerate),
            fmt_opt(self.auc_other_degenerate),
            fmt_opt(self.means[0]),
            fmt_opt(self.means[1]),
            fmt_opt(self.means[2]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::{RewardOutput, Scorers};

    #[test]
    fn auc_counts_ties_as_half() {
        assert_eq!(auc(&[1.0, 2.0], &[0.0]), Some(1.0));
        assert_eq!(auc(&[0.0], &[1.0, 2.0]), Some(0.0));
        assert_eq!(auc(&[1.0], &[1.0]), Some(0.5));
        // 3 > {1, 2}, 2 > 1 and ties 2, 1 ties 1: (2 + 1 + 0.5 + 0.5) / 6
        assert_eq!(auc(&[3.0, 2.0, 1.0], &[1.0, 2.0]), Some((2.0 + 1.5 + 0.5) / 6.0));
        assert_eq!(auc(&[], &[1.0]), None);
        assert_eq!(auc(&[1.0], &[]), None);
    }

    #[test]
    fn auc_matches_the_rank_sum_form_of_mann_whitney() {
        // U = R₁ − n₁(n₁+1)/2 with mid-ranks for ties, on a fixed sample.
        let pos = [0.9, 0.4, 0.4, 0.7, 0.1];
        let neg = [0.4, 0.2, 0.8, 0.0];
        let mut all: Vec<(f64, bool)> = pos.iter().map(|v| (*v, true)).chain(neg.iter().map(|v| (*v, false))).collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut r1 = 0.0;
        let mut i = 0;
        while i < all.len() {
            let j = (i..all.len()).find(|&j| all[j].0 != all[i].0).unwrap_or(all.len());
            let mid = (i + 1 + j) as f64 / 2.0;
            r1 += all[i..j].iter().filter(|x| x.1).count() as f64 * mid;
            i = j;
        }
        let n1 = pos.len() as f64;
        let u = r1 - n1 * (n1 + 1.0) / 2.0;
        let expected = u / (pos.len() * neg.len()) as f64;
        assert!((auc(&pos, &neg).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn degenerate_texts_are_empty_separators_and_a_repeated_sentence() {
        let [e, s, r] = degenerate_texts("Hello there. More text follows!", "### Response:");
        assert!(e.is_empty());
        assert_eq!(s.lines().count(), DEGENERATE_REPEATS);
        assert!(s.lines().all(|l| l == "### Response:"));
        assert_eq!(r.matches("Hello there.").count(), DEGENERATE_REPEATS);
        assert!(!r.contains("More"));
        assert_eq!(first_sentence("no end here"), "no end here");
        assert_eq!(first_sentence("v1.2 is out. Yes"), "v1.2 is out.");
    }

    fn example(id: &str, user: &str, task: Task, output: &str) -> Example {
        Example {
            id: id.into(),
            task,
            user_id: user.into(),
            input: format!("input of {id}"),
            output: output.into(),
            profile: Vec::new(),
        }
    }

    /// ROUGE-1 as a reward, through the real scorer.
    struct Rouge1;
    impl Reward for Rouge1 {
        fn score(&mut self, items: &[RewardInput]) -> Result<Vec<RewardOutput>> {
            let s = Scorers::default();
            items
                .iter()
                .map(|i| {
                    let v = if i.response.trim().is_empty() {
                        0.0
                    } else {
                        s.value(crate::reward::Metric::Rouge1, &i.expected, &i.response)?
                    };
                    Ok(RewardOutput { reward: v as f32, ..Default::default() })
                })
                .collect()
        }
    }

    #[test]
    fn a_lexical_reward_separates_own_other_and_degenerate() {
        let t = Task::TopicWriting;
        let examples = vec![
            example("a", "u1", t, "The harbour was quiet at dawn. Boats rocked gently while gulls circled overhead."),
            example("b", "u2", t, "Quarterly revenue grew by ten percent. Marketing costs fell sharply this year."),
            example("c", "u3", t, "My grandmother baked bread every Sunday. The kitchen smelled of yeast and butter."),
            example("d", "u4", t, "extra example beyond K"),
        ];
        let items = check_items(&examples, 3, "### Response:");
        // 3 picked examples, each: own, other, 3 degenerate.
        assert_eq!(items.len(), 3 * 5);
        let c = check(&mut Rouge1, "rouge-1", &examples, 3, "### Response:").unwrap();
        assert_eq!((c.examples, c.counts), (3, [3, 3, 9]));
        assert_eq!(c.auc_own_other, Some(1.0));
        assert_eq!(c.auc_own_degenerate, Some(1.0));
        assert_eq!(c.means[0], Some(1.0));
        assert!(!c.is_weak() && c.warning().is_none());
        assert!(c.to_markdown().contains("| 1.000 | 1.000 |"), "{}", c.to_markdown());
    }

    /// A reward that scores every text the same.
    struct Constant;
    impl Reward for Constant {
        fn score(&mut self, items: &[RewardInput]) -> Result<Vec<RewardOutput>> {
            Ok(items.iter().map(|_| RewardOutput { reward: 0.3, ..Default::default() }).collect())
        }
    }

    #[test]
    fn a_constant_reward_is_weak_and_says_so() {
        let t = Task::TopicWriting;
        let examples = vec![example("a", "u1", t, "One text."), example("b", "u2", t, "Another text.")];
        let c = check(&mut Constant, "constant", &examples, 8, "### Response:").unwrap();
        assert_eq!(c.auc_own_other, Some(0.5));
        let w = c.warning().expect("weak");
        assert!(w.contains(WEAK_WARNING), "{w}");
        assert!(c.to_markdown().contains(WEAK_WARNING));
        assert!(check(&mut Constant, "constant", &examples, 0, "### Response:").is_err());
    }
}
