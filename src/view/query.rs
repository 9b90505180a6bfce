//! The sample table's query: which samples of an iteration to list (task,
//! input, decision, reward range), in which order (sample, reward, rank),
//! and which page. Parsed from the URL's query string into typed values;
//! every bad value is an error naming its parameter.
//!
//! A page is cut from the filtered, sorted list of the iteration's sample
//! records (references into the folded state), so only the page's rows are
//! ever rendered, whatever the iteration's size.

use std::collections::BTreeMap;

use events::Decision;
use replay::{IterationState, RunState, SampleRecord};

/// Rows per page unless `per` says otherwise.
pub const DEFAULT_PER_PAGE: usize = 100;
/// The most rows one page lists.
pub const MAX_PER_PAGE: usize = 1000;

/// Which decisions the table lists.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DecisionFilter {
    /// One decision.
    Is(Decision),
    /// Every sample not kept (any decision but kept, or none).
    Rejected,
    /// Samples with no filter decision logged.
    Undecided,
}

impl DecisionFilter {
    /// Every value the `decision` parameter takes, as written in URLs.
    pub const NAMES: [&'static str; 8] =
        ["kept", "below-threshold", "over-cap", "no-reasoning", "zero-reward", "unfinished", "rejected", "undecided"];

    fn parse(s: &str) -> Option<Self> {
        if let Some(d) = Decision::ALL.into_iter().find(|d| d.as_str() == s) {
            return Some(Self::Is(d));
        }
        match s {
            "rejected" => Some(Self::Rejected),
            "undecided" => Some(Self::Undecided),
            _ => None,
        }
    }

    fn admits(self, decision: Option<Decision>) -> bool {
        match self {
            Self::Is(d) => decision == Some(d),
            Self::Rejected => decision != Some(Decision::Kept),
            Self::Undecided => decision.is_none(),
        }
    }
}

/// The order of the table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Canonical sample order (input id, index): the audit's.
    Sample,
    /// By reward (samples without a reward last).
    Reward,
    /// By rank among the input's samples (undecided last), then sample.
    Rank,
}

/// The table's query string, as received (every field optional text).
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct RawSampleQuery {
    /// Task name.
    pub task: Option<String>,
    /// Input id.
    pub input: Option<String>,
    /// One of [`DecisionFilter::NAMES`].
    pub decision: Option<String>,
    /// Smallest reward listed (inclusive).
    pub min: Option<String>,
    /// Largest reward listed (inclusive).
    pub max: Option<String>,
    /// `sample`, `reward` or `rank`.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub order: Option<String>,
    /// Page number, from 1.
    pub page: Option<String>,
    /// Rows per page, 1..=[`MAX_PER_PAGE`].
    pub per: Option<String>,
}

/// A validated query.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleQuery {
    /// Only this task's inputs.
    pub task: Option<String>,
    /// Only this input's samples.
    pub input: Option<String>,
    /// Only these decisions.
    pub decision: Option<DecisionFilter>,
    /// Reward at least this.
    pub min: Option<f32>,
    /// Reward at most this.
    pub max: Option<f32>,
    /// The order.
    pub sort: SortKey,
    /// Descending when true.
    pub desc: bool,
    /// Page, from 1.
    pub page: usize,
    /// Rows per page.
    pub per: usize,
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl RawSampleQuery {
    /// Validates every parameter.
    ///
    /// # Errors
    /// A message naming the parameter and the value it could not use.
    pub fn parse(&self) -> Result<SampleQuery, String> {
        let float = |name: &str, v: &Option<String>| -> Result<Option<f32>, String> {
            blank(v)
                .map(|s| {
                    s.parse::<f32>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| format!("parameter `{name}`: {s:?} is not a number"))
                })
                .transpose()
        };
        let count = |name: &str, v: &Option<String>, max: usize| -> Result<Option<usize>, String> {
            blank(v)
                .map(|s| {
                    s.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=max).contains(n))
                        .ok_or_else(|| format!("parameter `{name}`: {s:?} is not a whole number from 1 to {max}"))
                })
                .transpose()
        };
        let decision = blank(&self.decision)
            .map(|s| {
                DecisionFilter::parse(s).ok_or_else(|| {
                    format!("parameter `decision`: {s:?} is none of {}", DecisionFilter::NAMES.join(", "))
                })
            })
            .transpose()?;
        let sort = match blank(&self.sort) {
            None | Some("sample") => SortKey::Sample,
            Some("reward") => SortKey::Reward,
            Some("rank") => SortKey::Rank,
            Some(s) => return Err(format!("parameter `sort`: {s:?} is none of sample, reward, rank")),
        };
        let desc = match blank(&self.order) {
            None => sort == SortKey::Reward,
            Some("asc") => false,
            Some("desc") => true,
            Some(s) => return Err(format!("parameter `order`: {s:?} is neither asc nor desc")),
        };
        let (min, max) = (float("min", &self.min)?, float("max", &self.max)?);
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return Err(format!("parameters `min` and `max`: {lo} is above {hi}"));
            }
        }
        Ok(SampleQuery {
            task: blank(&self.task).map(str::to_owned),
            input: blank(&self.input).map(str::to_owned),
            decision,
            min,
            max,
            sort,
            desc,
            page: count("page", &self.page, usize::MAX)?.unwrap_or(1),
            per: count("per", &self.per, MAX_PER_PAGE)?.unwrap_or(DEFAULT_PER_PAGE),
        })
    }
}

/// One page of the table.
pub struct SamplePage<'a> {
    /// Samples that match the query, on all pages.
    pub matching: usize,
    /// The page's samples, in order.
    pub rows: Vec<&'a SampleRecord>,
    /// Pages in all (at least 1).
    pub pages: usize,
    /// Decided samples of each input on the page (the "of" of a rank).
    pub decided: BTreeMap<&'a str, u32>,
}

impl SampleQuery {
    fn admits(&self, state: &RunState, s: &SampleRecord) -> bool {
        if self.input.as_deref().is_some_and(|i| s.id.input_id != i) {
            return false;
        }
        if let Some(task) = &self.task {
            if state.task_of(&s.id.input_id) != Some(task.as_str()) {
                return false;
            }
        }
        if self.decision.is_some_and(|d| !d.admits(s.filter.map(|f| f.decision))) {
            return false;
        }
        if self.min.is_some() || self.max.is_some() {
            let Some(r) = s.shown_reward() else { return false };
            if self.min.is_some_and(|lo| r < lo) || self.max.is_some_and(|hi| r > hi) {
                return false;
            }
        }
        true
    }

    /// The page this query asks for from `it` (a page past the last is
    /// empty, with the right counts).
    pub fn page<'a>(&self, state: &RunState, it: &'a IterationState) -> SamplePage<'a> {
        let mut rows: Vec<&SampleRecord> = match &self.input {
            // One input's samples are one range of the canonical order.
            Some(input) => it.samples_of(input).filter(|s| self.admits(state, s)).collect(),
            None => it.samples.values().filter(|s| self.admits(state, s)).collect(),
        };
        match self.sort {
            SortKey::Sample => {
                if self.desc {
                    rows.reverse();
                }
            }
            SortKey::Reward => {
                // Samples without a reward go last either way; ties keep
                // sample order.
                rows.sort_by(|a, b| match (a.shown_reward(), b.shown_reward()) {
                    (Some(x), Some(y)) if self.desc => y.total_cmp(&x),
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                });
            }
            SortKey::Rank => {
                rows.sort_by(|a, b| match (a.filter.map(|f| f.rank), b.filter.map(|f| f.rank)) {
                    (Some(x), Some(y)) if self.desc => y.cmp(&x),
                    (Some(x), Some(y)) => x.cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                });
            }
        }
        let matching = rows.len();
        let pages = matching.div_ceil(self.per).max(1);
        let start = (self.page - 1).saturating_mul(self.per).min(matching);
        let end = start.saturating_add(self.per).min(matching);
        let rows = rows[start..end].to_vec();
        // The "of" of each row's rank: its input's decided samples.
        let mut decided = BTreeMap::new();
        for s in &rows {
            let input = s.id.input_id.as_str();
            if !decided.contains_key(input) {
                decided.insert(input, it.samples_of(input).filter(|x| x.filter.is_some()).count() as u32);
            }
        }
        SamplePage { matching, rows, pages, decided }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay::synthetic::SyntheticRun;

    fn state() -> RunState {
        let run = SyntheticRun { inputs: 6, m: 8, cap: 2, ..SyntheticRun::default() };
        let mut state = RunState::new();
        let replay = replay::Replay::new();
        for (seq, e) in run.events().into_iter().enumerate() {
            let prev = state.last.map_or(events::GENESIS_HASH, |(_, h)| h);
            let time = chrono::DateTime::from_timestamp(0, 0).expect("epoch");
            let env = events::Envelope::seal(seq as u64, time, "run-q", e, prev);
            replay.apply_next(&mut state, env).expect("in order");
        }
        state
    }

    fn q(pairs: &[(&str, &str)]) -> Result<SampleQuery, String> {
        let json: serde_json::Map<String, serde_json::Value> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned()))).collect();
        serde_json::from_value::<RawSampleQuery>(json.into()).expect("raw").parse()
    }

    #[test]
    fn every_bad_parameter_is_named() {
        for (pairs, named) in [
            (vec![("decision", "maybe")], "`decision`"),
            (vec![("min", "high")], "`min`"),
            (vec![("max", "NaN")], "`max`"),
            (vec![("min", "0.9"), ("max", "0.1")], "`min` and `max`"),
            (vec![("sort", "size")], "`sort`"),
            (vec![("order", "up")], "`order`"),
            (vec![("page", "0")], "`page`"),
            (vec![("per", "5000")], "`per`"),
        ] {
            let e = q(&pairs).expect_err("refused");
            assert!(e.contains(named), "{e}");
        }
        assert_eq!(q(&[]).unwrap().per, DEFAULT_PER_PAGE);
    }

    #[test]
    fn filters_sort_and_pages_agree_with_the_audit() {
        let state = state();
        let it = &state.iterations[&1];
        let audit = |sel| {
            replay::audit::audit_rows(&state, &replay::audit::AuditQuery { iteration: 1, input: None, selection: sel })
                .unwrap()
        };
        let kept = audit(replay::audit::Selection::Kept).len();
        let rejected = audit(replay::audit::Selection::Rejected).len();
        assert_eq!(q(&[("decision", "kept")]).unwrap().page(&state, it).matching, kept);
        assert_eq!(q(&[("decision", "rejected")]).unwrap().page(&state, it).matching, rejected);
        assert_eq!(q(&[]).unwrap().page(&state, it).matching, kept + rejected);

        // Pages of 5 cover every sample once, in order.
        let pages = q(&[("per", "5")]).unwrap().page(&state, it).pages;
        assert_eq!(pages, it.samples.len().div_ceil(5));
        let mut seen = Vec::new();
        for page in 1..=pages {
            let p = q(&[("per", "5"), ("page", &page.to_string())]).unwrap().page(&state, it);
            assert!(p.rows.len() <= 5);
            seen.extend(p.rows.iter().map(|s| s.id.clone()));
        }
        assert_eq!(seen, it.samples.keys().cloned().collect::<Vec<_>>());
        assert!(q(&[("page", "999")]).unwrap().page(&state, it).rows.is_empty());

        // By reward, descending by default; the reward range holds.
        let p = q(&[("sort", "reward"), ("min", "0.5"), ("per", "1000")]).unwrap().page(&state, it);
        let r: Vec<f32> = p.rows.iter().map(|s| s.shown_reward().unwrap()).collect();
        assert!(!r.is_empty() && r.windows(2).all(|w| w[0] >= w[1]) && r.iter().all(|x| *x >= 0.5), "{r:?}");

        // One task, one input.
        let input = it.samples.keys().next().unwrap().input_id.clone();
        let task = state.task_of(&input).unwrap().to_owned();
        let p = q(&[("task", &task), ("per", "1000")]).unwrap().page(&state, it);
        assert!(p.rows.iter().all(|s| state.task_of(&s.id.input_id) == Some(task.as_str())));
        assert!(p.matching > 0 && p.matching < it.samples.len());
        let p = q(&[("input", &input)]).unwrap().page(&state, it);
        assert_eq!(p.matching, 8);
        // By rank: ranks ascend.
        let p = q(&[("sort", "rank"), ("per", "1000")]).unwrap().page(&state, it);
        let ranks: Vec<u32> = p.rows.iter().filter_map(|s| s.filter.map(|f| f.rank)).collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]));
    }
}
