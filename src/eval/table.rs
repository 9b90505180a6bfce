//! The results table of a run: one row per evaluated checkpoint and split,
//! each metric's macro average (mean of the per-task means, as the paper's
//! Table 1), the number of examples n, the format rate, and a paired
//! two-tailed t-test of every later checkpoint against θ¹ (the SFT
//! checkpoint, iteration 0) on the same split.
//!
//! The test pairs the two reports' examples by id across all tasks (n pairs,
//! the per-example metric values); a report pair over different examples or
//! settings gets no test and the row says why. "†" marks p < 0.05 as in the
//! paper.

use std::collections::BTreeMap;

use events::Split;

use super::{ttest, EvalReport};
use crate::reward::Metric;

/// One evaluated checkpoint on one split.
#[derive(Clone, Debug)]
pub struct TableRow {
    /// System label (`sft-reasoning`, `rest-pg (t=1)`, …).
    pub system: String,
    /// EM iteration of the checkpoint (0 = θ¹, the SFT checkpoint).
    pub iteration: u32,
    /// The split.
    pub split: Split,
    /// Its report (per-example scores).
    pub report: EvalReport,
}

/// The paired t-test of `b` against `a` on `metric` over the examples both
/// reports hold, by id.
///
/// # Errors
/// Reports over different example ids (naming the count on each side), an
/// example without a `metric` score (naming it; never read as 0), or the
/// t-test's own errors (fewer than two pairs).
pub fn paired_on_metric(a: &EvalReport, b: &EvalReport, metric: Metric) -> anyhow::Result<ttest::TTest> {
    paired_on(a, b, metric, None)
}

/// [`paired_on_metric`] over the examples of one `task` only, when given
/// (the per-task test of `restpg view`).
///
/// # Errors
/// As [`paired_on_metric`].
pub fn paired_on(
    a: &EvalReport,
    b: &EvalReport,
    metric: Metric,
    task: Option<crate::data::Task>,
) -> anyhow::Result<ttest::TTest> {
    let values = |r: &EvalReport| -> anyhow::Result<BTreeMap<String, f64>> {
        r.examples
            .iter()
            .filter(|e| task.is_none_or(|t| e.task == t))
            .map(|e| {
                let v = e.scores.get(&metric).copied();
                let v =
                    v.ok_or_else(|| anyhow::anyhow!("example {:?} of {:?} has no {metric} score", e.id, r.system))?;
                Ok((e.id.clone(), v))
            })
            .collect()
    };
    let (ia, ib) = (values(a)?, values(b)?);
    anyhow::ensure!(
        ia.len() == ib.len() && ia.keys().all(|k| ib.contains_key(k)),
        "the reports cover different examples ({} and {})",
        ia.len(),
        ib.len()
    );
    let (xb, xa): (Vec<f64>, Vec<f64>) = ia.iter().map(|(id, va)| (ib[id], *va)).unzip();
    Ok(ttest::paired_t_test(&xb, &xa)?)
}

/// Every metric any of `reports` holds, in [`Metric::ALL`] order.
pub fn metrics_of<'a>(reports: impl IntoIterator<Item = &'a EvalReport>) -> Vec<Metric> {
    let mut held = Vec::new();
    for r in reports {
        held.extend(r.metrics());
    }
    Metric::ALL.iter().copied().filter(|m| held.contains(m)).collect()
}

/// Renders `rows` as Markdown: per split, θ¹ first, then the later
/// iterations; every cell of a later row reads `mean (Δ vs θ¹, p)`.
pub fn results_table(rows: &[TableRow]) -> String {
    let metrics = metrics_of(rows.iter().map(|r| &r.report));
    let mut out = String::from("| system | split | n |");
    for m in &metrics {
        out.push_str(&format!(" {} |", m.name()));
    }
    out.push_str(" well formed |\n|---|---|---:|");
    out.push_str(&"---:|".repeat(metrics.len()));
    out.push_str("---:|\n");
    let mut sorted: Vec<&TableRow> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.split != Split::Validation, r.split.as_str(), r.iteration));
    for r in &sorted {
        let base = rows.iter().find(|b| b.split == r.split && b.iteration == 0 && r.iteration > 0);
        let n = r.report.examples.len();
        out.push_str(&format!("| {} | {} | {n} |", r.system, r.split));
        for m in &metrics {
            let mean = r.report.macro_average.get(m);
            let cell = match (mean, base) {
                (None, _) => "–".to_string(),
                (Some(v), None) => format!("{v:.4}"),
                (Some(v), Some(b)) => match paired_on_metric(&b.report, &r.report, *m) {
                    Ok(t) if t.p.is_nan() => format!("{v:.4} (±0, p n/a)"),
                    Ok(t) => format!("{v:.4} ({:+.4}, p={:.3}){}", t.mean_diff, t.p, t.marker()),
                    Err(e) => format!("{v:.4} (no test: {e})"),
                },
            };
            out.push_str(&format!(" {cell} |"));
        }
        let format = match &r.report.format {
            Some(f) => f.well_formed_cell(),
            None => "–".into(),
        };
        out.push_str(&format!(" {format} |\n"));
    }
    out.push_str(
        "\nn = examples per row (all tasks). Later rows: (mean difference vs θ¹, p of a paired two-tailed t-test \
         over the same examples); † p < 0.05. Well formed: non-empty reasoning, one separator, ended by a stop.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{summarize, EvalSettings, ExampleScore};

    fn report(vals: &[f64]) -> EvalReport {
        let examples = vals
            .iter()
            .enumerate()
            .map(|(i, v)| ExampleScore {
                id: format!("e{i}"),
                task: crate::data::Task::EmailCompletion,
                generated: "- r\n### Response:\nx".into(),
                response: "x".into(),
                empty_response: false,
                scores: [(Metric::Meteor, *v)].into_iter().collect(),
                judge_distribution: None,
                finish: Some(events::FinishReason::StopToken),
            })
            .collect();
        let mut s = EvalSettings { metrics: vec![Metric::Meteor], ..Default::default() };
        s.sampling.separator = Some("### Response:".into());
        summarize("x", "validation", s, examples)
    }

    #[test]
    fn later_rows_are_tested_against_theta_one_on_their_split() {
        let rows = vec![
            TableRow {
                system: "sft-reasoning".into(),
                iteration: 0,
                split: Split::Validation,
                report: report(&[0.1, 0.2, 0.3, 0.2]),
            },
            TableRow {
                system: "rest-pg (t=1)".into(),
                iteration: 1,
                split: Split::Validation,
                report: report(&[0.3, 0.4, 0.5, 0.45]),
            },
            TableRow { system: "rest-pg (t=1)".into(), iteration: 1, split: Split::Test, report: report(&[0.3, 0.4]) },
        ];
        let t = results_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[2].starts_with("| sft-reasoning | validation | 4 | 0.2000 |"), "{t}");
        assert!(lines[3].contains("0.4125 (+0.2125, p=0.00") && lines[3].contains('†'), "{t}");
        // no θ¹ on test: no test, just the mean
        assert!(lines[4].contains("| 2 | 0.3500 |"), "{t}");
        assert!(lines[2].ends_with("| 4/4 (100%) |"), "{t}");
    }

    #[test]
    fn reports_over_different_examples_get_no_test() {
        let err = paired_on_metric(&report(&[0.1, 0.2, 0.3]), &report(&[0.1, 0.2]), Metric::Meteor).unwrap_err();
        assert!(err.to_string().contains("different examples"), "{err}");
        // A missing score is named, never read as 0.
        let err = paired_on_metric(&report(&[0.1, 0.2]), &report(&[0.1, 0.2]), Metric::Judge).unwrap_err();
        assert!(err.to_string().contains("example \"e0\" of \"x\" has no judge score"), "{err}");
    }
}
