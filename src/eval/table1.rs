//! The paper's Table 1 for one experiment: one row per system (SFT, SFT with
//! reasoning, ReST-EM, REST-PG, in that order), one column per task and the
//! macro average (mean of the per-task means), for one metric on one split.
//!
//! Significance follows the paper's Table 1 (Salemi et al. 2025, §5.2): a
//! two-tailed paired t-test with p < 0.05. Rows are numbered from 1; a cell
//! of row i carries the superscript j for every row j above it that it beats
//! significantly on that column (higher mean, p < 0.05), so `0.4554¹²³` reads
//! "significantly better than rows 1, 2 and 3". A task column pairs that
//! task's examples by id; the macro column pairs all examples (the test of
//! the pooled mean, since the macro average itself is not a mean over pairs).

use std::collections::{BTreeMap, BTreeSet};

use super::ttest::{self, TTest};
use super::EvalReport;
use crate::reward::Metric;

/// One system's evaluation, a row of the table.
#[derive(Clone, Debug)]
pub struct SystemRow {
    /// The system's label (`sft`, `rest-pg (t=2)`, …).
    pub system: String,
    /// Its evaluation report (per-example scores).
    pub report: EvalReport,
}

/// One cell: the mean, its n, and the rows above it (1-based) that it beats
/// with p < 0.05.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Cell {
    /// Mean of the metric over the column's examples (the macro average in
    /// the macro column).
    pub mean: f64,
    /// Examples in the column.
    pub n: usize,
    /// 1-based numbers of the rows above that this row beats significantly.
    pub beats: Vec<usize>,
    /// Every test against a row above: (row number, test), in row order.
    pub tests: Vec<(usize, TTest)>,
}

/// Table 1 for one metric.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Table1 {
    /// The metric.
    pub metric: Metric,
    /// The split the systems were evaluated on.
    pub split: String,
    /// Task names (columns before the macro average).
    pub tasks: Vec<String>,
    /// System labels, in row order.
    pub systems: Vec<String>,
    /// `cells[row][column]`, the macro column last.
    pub cells: Vec<Vec<Cell>>,
}

/// Errors of [`table1`].
#[derive(Debug, thiserror::Error)]
pub enum Table1Error {
    /// No rows.
    #[error("Table 1 needs at least one system")]
    Empty,
    /// Two systems were evaluated on different examples.
    #[error("systems {a:?} and {b:?} were evaluated on different examples ({na} and {nb} ids, {common} in common)")]
    DifferentExamples {
        /// The first system.
        a: String,
        /// The second.
        b: String,
        /// Its example count.
        na: usize,
        /// The other's.
        nb: usize,
        /// Ids both hold.
        common: usize,
    },
    /// A report lacks the metric for an example.
    #[error("system {system:?}: example {id:?} has no {metric} score")]
    MissingScore {
        /// The system.
        system: String,
        /// The example id.
        id: String,
        /// The metric.
        metric: Metric,
    },
}

/// The superscript digits of `n` (`12` → `¹²`).
pub fn superscript(n: usize) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    n.to_string().chars().map(|c| DIGITS[c.to_digit(10).unwrap_or(0) as usize]).collect()
}

/// Per-example values of `metric` in `row`, by (task, id).
fn values(row: &SystemRow, metric: Metric) -> Result<BTreeMap<(String, String), f64>, Table1Error> {
    let mut out = BTreeMap::new();
    for e in &row.report.examples {
        let v = e.scores.get(&metric).copied().ok_or_else(|| Table1Error::MissingScore {
            system: row.system.clone(),
            id: e.id.clone(),
            metric,
        })?;
        out.insert((e.task.name().to_string(), e.id.clone()), v);
    }
    Ok(out)
}

/// Builds Table 1 of `metric` over `rows` (in row order).
///
/// # Errors
/// No rows, systems evaluated on different example sets, or an example
/// without the metric (naming the system and example).
pub fn table1(rows: &[SystemRow], metric: Metric) -> Result<Table1, Table1Error> {
    let first = rows.first().ok_or(Table1Error::Empty)?;
    let vals: Vec<BTreeMap<(String, String), f64>> =
        rows.iter().map(|r| values(r, metric)).collect::<Result<_, _>>()?;
    for (r, v) in rows.iter().zip(&vals).skip(1) {
        if v.keys().ne(vals[0].keys()) {
            let common = v.keys().filter(|k| vals[0].contains_key(*k)).count();
            return Err(Table1Error::DifferentExamples {
                a: first.system.clone(),
                b: r.system.clone(),
                na: vals[0].len(),
                nb: v.len(),
                common,
            });
        }
    }
    let tasks: Vec<String> = vals[0].keys().map(|(t, _)| t.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let column = |v: &BTreeMap<(String, String), f64>, task: Option<&str>| -> Vec<f64> {
        v.iter().filter(|((t, _), _)| task.is_none_or(|task| t == task)).map(|(_, x)| *x).collect()
    };
    let mut cells = Vec::with_capacity(rows.len());
    for (i, v) in vals.iter().enumerate() {
        let mut row_cells = Vec::with_capacity(tasks.len() + 1);
        let columns: Vec<Option<&str>> = tasks.iter().map(|t| Some(t.as_str())).chain([None]).collect();
        for col in columns {
            let x = column(v, col);
            let mean = match col {
                Some(_) => x.iter().sum::<f64>() / x.len() as f64,
                None => {
                    let means: Vec<f64> = tasks
                        .iter()
                        .map(|t| {
                            let c = column(v, Some(t));
                            c.iter().sum::<f64>() / c.len() as f64
                        })
                        .collect();
                    means.iter().sum::<f64>() / means.len() as f64
                }
            };
            let mut tests = Vec::new();
            let mut beats = Vec::new();
            for (j, above) in vals.iter().enumerate().take(i) {
                // Too few pairs: no test, no superscript.
                if let Ok(t) = ttest::paired_t_test(&x, &column(above, col)) {
                    if t.significant() && t.mean_diff > 0.0 {
                        beats.push(j + 1);
                    }
                    tests.push((j + 1, t));
                }
            }
            row_cells.push(Cell { mean, n: x.len(), beats, tests });
        }
        cells.push(row_cells);
    }
    Ok(Table1 {
        metric,
        split: first.report.split.clone(),
        tasks,
        systems: rows.iter().map(|r| r.system.clone()).collect(),
        cells,
    })
}

impl Table1 {
    /// The table as Markdown: a numbered row per system, a column per task
    /// and the macro average, superscripts as in the module docs, and n.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("**{}** on {}\n\n| # | system |", self.metric.name(), self.split);
        for t in &self.tasks {
            out.push_str(&format!(" {t} |"));
        }
        out.push_str(" macro average |\n|---:|---|");
        out.push_str(&"---:|".repeat(self.tasks.len() + 1));
        out.push('\n');
        for (i, (system, row)) in self.systems.iter().zip(&self.cells).enumerate() {
            out.push_str(&format!("| {} | {system} |", i + 1));
            for c in row {
                let sup: String = c.beats.iter().map(|&j| superscript(j)).collect::<Vec<_>>().join("˒");
                out.push_str(&format!(" {:.4}{sup} |", c.mean));
            }
            out.push('\n');
        }
        let n: Vec<String> = self
            .tasks
            .iter()
            .chain([&"all".to_string()])
            .zip(self.cells.first().into_iter().flatten())
            .map(|(t, c)| format!("{t} {}", c.n))
            .collect();
        out.push_str(&format!(
            "\nn (examples, same for every row): {}. A superscript j: significantly better than row j \
             (paired two-tailed t-test, p < 0.05; the macro column pairs all examples).\n",
            n.join(", ")
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Task;
    use crate::eval::{summarize, EvalSettings, ExampleScore};

    fn report(vals: &[(Task, f64)]) -> EvalReport {
        let examples = vals
            .iter()
            .enumerate()
            .map(|(i, (task, v))| ExampleScore {
                id: format!("e{i}"),
                task: *task,
                generated: "x".into(),
                response: "x".into(),
                empty_response: false,
                scores: [(Metric::Meteor, *v)].into_iter().collect(),
                judge_distribution: None,
                finish: Some(events::FinishReason::StopToken),
            })
            .collect();
        summarize("x", "test", EvalSettings { metrics: vec![Metric::Meteor], ..Default::default() }, examples)
    }

    fn row(name: &str, offset: f64, noise: &[f64]) -> SystemRow {
        let vals: Vec<(Task, f64)> = noise
            .iter()
            .enumerate()
            .map(|(i, n)| (if i % 2 == 0 { Task::EmailCompletion } else { Task::TopicWriting }, 0.2 + offset + n))
            .collect();
        SystemRow { system: name.into(), report: report(&vals) }
    }

    const NOISE: [f64; 8] = [0.01, -0.02, 0.03, 0.0, -0.01, 0.02, 0.015, -0.005];
    const OTHER: [f64; 8] = [-0.01, 0.02, 0.0, 0.01, 0.02, -0.02, 0.005, 0.01];

    #[test]
    fn superscripts_name_the_rows_beaten() {
        let rows = vec![row("sft", 0.0, &NOISE), row("sft-reasoning", 0.0, &OTHER), row("rest-pg", 0.2, &NOISE)];
        let t = table1(&rows, Metric::Meteor).unwrap();
        assert_eq!(t.tasks, ["email-completion", "topic-writing"]);
        // row 2 is noise around row 1: no superscript; row 3 beats both.
        assert!(t.cells[1].iter().all(|c| c.beats.is_empty()), "{:?}", t.cells[1]);
        assert_eq!(t.cells[2][2].beats, [1, 2]);
        assert_eq!(t.cells[0][2].tests.len(), 0);
        assert_eq!(t.cells[2][2].n, 8);
        let md = t.to_markdown();
        assert!(md.contains("| 3 | rest-pg |") && md.contains("¹˒²"), "{md}");
        assert!((t.cells[2][2].mean - (0.4 + NOISE.iter().sum::<f64>() / 8.0)).abs() < 1e-12);
    }

    #[test]
    fn a_worse_row_gets_no_superscript() {
        let rows = vec![row("a", 0.2, &NOISE), row("b", 0.0, &NOISE)];
        let t = table1(&rows, Metric::Meteor).unwrap();
        assert!(t.cells[1][2].tests[0].1.significant());
        assert!(t.cells[1][2].beats.is_empty());
    }

    #[test]
    fn different_examples_and_missing_metrics_are_named() {
        let rows = vec![row("a", 0.0, &NOISE), row("b", 0.0, &NOISE[..6])];
        let e = table1(&rows, Metric::Meteor).unwrap_err().to_string();
        assert!(e.contains("\"a\" and \"b\"") && e.contains("8 and 6"), "{e}");
        let e = table1(&rows[..1], Metric::Judge).unwrap_err().to_string();
        assert!(e.contains("has no judge score"), "{e}");
        assert_eq!(superscript(12), "¹²");
    }
}
