//! Data set statistics in the shape of the REST-PG paper's Table 2 (per
//! task: users, examples per split, input/output/profile lengths in tokens as
//! mean ± standard deviation).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::{Dataset, Split, Task};

/// Mean, sample standard deviation (n − 1 in the denominator; 0 for n < 2),
/// minimum and maximum of a list of lengths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LengthStats {
    /// Number of values.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
    /// Smallest value.
    pub min: usize,
    /// Largest value.
    pub max: usize,
}

impl LengthStats {
    /// Statistics of `values` (all zero when empty).
    pub fn of(values: &[usize]) -> Self {
        let n = values.len();
        if n == 0 {
            return LengthStats::default();
        }
        let mean = values.iter().sum::<usize>() as f64 / n as f64;
        let var =
            if n > 1 { values.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        LengthStats {
            n,
            mean,
            std: var.sqrt(),
            min: values.iter().copied().min().unwrap_or(0),
            max: values.iter().copied().max().unwrap_or(0),
        }
    }
}

impl fmt::Display for LengthStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} ± {:.1}", self.mean, self.std)
    }
}

/// Serializes per-split counts keyed by each split's file stem (`train`,
/// `val`, `test`), as the data set's files and manifest name them.
fn by_file_stem<S: serde::Serializer>(counts: &BTreeMap<Split, usize>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(counts.iter().map(|(split, n)| (split.file_stem(), n)))
}

/// Statistics of one task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskStats {
    /// The task.
    pub task: Task,
    /// Distinct users over all splits.
    pub users: usize,
    /// Examples per split (keyed by the split's file stem in JSON: `val`).
    #[serde(serialize_with = "by_file_stem")]
    pub examples: BTreeMap<Split, usize>,
    /// Input length in tokens.
    pub input_tokens: LengthStats,
    /// Output length in tokens.
    pub output_tokens: LengthStats,
    /// Profile size in items.
    pub profile_items: LengthStats,
    /// Length of one profile item (all its task fields, concatenated as the
    /// retriever's document text) in tokens.
    pub profile_item_tokens: LengthStats,
}

/// Statistics of a data set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetStats {
    /// Name of the token counter used.
    pub tokenizer: String,
    /// One entry per task present, in [`Task`] order.
    pub tasks: Vec<TaskStats>,
}

/// Whitespace token count: the fallback counter when no model tokenizer is
/// at hand (it undercounts BPE tokens by roughly 1.3× on English prose).
pub fn whitespace_tokens(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Computes [`DatasetStats`] with `count` as the token counter, reported as
/// `tokenizer`.
pub fn dataset_stats(ds: &Dataset, count: &dyn Fn(&str) -> usize, tokenizer: &str) -> DatasetStats {
    let mut tasks = Vec::new();
    for task in ds.tasks() {
        let mut users = BTreeSet::new();
        let mut examples = BTreeMap::new();
        let (mut inp, mut out, mut items, mut item_len) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for s in Split::ALL {
            let mut n = 0;
            for e in ds.split(s).iter().filter(|e| e.task == task) {
                n += 1;
                users.insert(e.user_id.as_str());
                inp.push(count(&e.input));
                out.push(count(&e.output));
                items.push(e.profile.len());
                for p in &e.profile {
                    item_len.push(count(&crate::retrieve::document_text(task, p)));
                }
            }
            examples.insert(s, n);
        }
        tasks.push(TaskStats {
            task,
            users: users.len(),
            examples,
            input_tokens: LengthStats::of(&inp),
            output_tokens: LengthStats::of(&out),
            profile_items: LengthStats::of(&items),
            profile_item_tokens: LengthStats::of(&item_len),
        });
    }
    DatasetStats { tokenizer: tokenizer.to_string(), tasks }
}

impl fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "token counts: {}", self.tokenizer)?;
        writeln!(
            f,
            "{:<20} {:>6} {:>6} {:>5} {:>5} {:>16} {:>16} {:>14} {:>16}",
            "task", "users", "train", "val", "test", "input", "output", "#profile", "profile item"
        )?;
        for t in &self.tasks {
            let n = |s| t.examples.get(&s).copied().unwrap_or(0);
            writeln!(
                f,
                "{:<20} {:>6} {:>6} {:>5} {:>5} {:>16} {:>16} {:>14} {:>16}",
                t.task.name(),
                t.users,
                n(Split::Train),
                n(Split::Validation),
                n(Split::Test),
                t.input_tokens.to_string(),
                t.output_tokens.to_string(),
                t.profile_items.to_string(),
                t.profile_item_tokens.to_string()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_stats_match_hand_computation() {
        let s = LengthStats::of(&[2, 4, 4, 4, 5, 5, 7, 9]);
        assert_eq!(s.n, 8);
        assert!((s.mean - 5.0).abs() < 1e-12);
        // Sample variance = 32 / 7.
        assert!((s.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (2, 9));
    }
}
