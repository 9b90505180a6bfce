//! What a finished run shows: its evaluation reports loaded back as table
//! rows, the format rates of each E-step's samples folded from the log, the
//! plots, and the printed results.

use std::collections::BTreeMap;
use std::path::Path;

use super::run::RunSummary;
use crate::config::RunConfig;
use crate::eval::format::{FormatCheck, FormatRates};
use crate::eval::plots::{ci95, Point, Series};
use crate::eval::table::TableRow;
use crate::eval::EvalReport;

/// The system label of an evaluation row: the SFT checkpoint θ¹ is the SFT
/// (or SFT with reasoning) baseline; later ones are the self-trained system
/// after iteration t.
pub fn system_label(method: actors::Method, iteration: u32) -> String {
    match (iteration, method.uses_reasoning()) {
        (0, true) => actors::Method::SftReasoning.to_string(),
        (0, false) => actors::Method::Sft.to_string(),
        (t, _) => format!("{} (t={t})", method.as_str()),
    }
}

/// Loads the report behind every evaluation of `outcome` (the JSON each
/// `EvaluationDone` names, resolved by [`store::RunDir::resolve`]).
///
/// # Errors
/// A report that cannot be read or parsed, naming its path.
pub fn table_rows(
    run_dir: &Path,
    method: actors::Method,
    outcome: &actors::RunOutcome,
) -> anyhow::Result<Vec<TableRow>> {
    let mut rows = Vec::new();
    for e in &outcome.evaluations {
        let report = EvalReport::load(&store::RunDir::new(run_dir).resolve(&e.summary.report_path))?;
        rows.push(TableRow {
            system: system_label(method, e.iteration),
            iteration: e.iteration,
            split: e.split,
            report,
        });
    }
    Ok(rows)
}

/// The run's log at `run_dir` folded by [`replay`] with the sample texts:
/// what the summary's format rates, filter counts and reward plots read,
/// folded once for all three.
///
/// # Errors
/// A log that cannot be opened or folded.
pub fn fold_run_log(run_dir: &Path) -> anyhow::Result<replay::RunState> {
    let reader = store::LogReader::open(store::RunDir::new(run_dir).log(), None)?;
    Ok(replay::Replay::new().fold_log(&reader)?)
}

/// The format rates of each iteration's E-step samples, from the run's
/// folded log ([`fold_run_log`]; samples logged without a finish reason,
/// before schema 3, are not counted).
pub fn e_step_format(state: &replay::RunState, reasoning: bool) -> BTreeMap<u32, FormatRates> {
    let mut out = BTreeMap::new();
    for (t, it) in &state.iterations {
        let mut rates = FormatRates::new(reasoning);
        for g in it.samples.values().filter_map(|s| s.generated.as_ref()) {
            let (Some(text), Some(finish)) = (&g.text, g.finish) else { continue };
            rates.add(FormatCheck::of_sample(text.reasoning.as_deref(), &text.response, finish), finish);
        }
        if rates.n > 0 {
            out.insert(*t, rates);
        }
    }
    out
}

/// How many samples of each iteration the filter gave each decision, from
/// the run's folded log ([`fold_run_log`]), in [`events::Decision::ALL`]'s
/// order; decisions no sample got are left out.
pub fn filter_decisions(state: &replay::RunState) -> BTreeMap<u32, Vec<(events::Decision, u64)>> {
    let mut out = BTreeMap::new();
    for (t, it) in &state.iterations {
        let decided: Vec<events::Decision> = it.samples.values().filter_map(|s| s.filter.map(|f| f.decision)).collect();
        let counts: Vec<(events::Decision, u64)> = events::Decision::ALL
            .into_iter()
            .map(|d| (d, decided.iter().filter(|x| **x == d).count() as u64))
            .filter(|(_, n)| *n > 0)
            .collect();
        if !counts.is_empty() {
            out.insert(*t, counts);
        }
    }
    out
}

/// The dropped part of `counts` in words: `20 below-threshold, 12
/// unfinished`; empty when every sample was kept.
fn dropped_words(counts: &[(events::Decision, u64)]) -> String {
    counts
        .iter()
        .filter(|(d, _)| *d != events::Decision::Kept)
        .map(|(d, n)| format!("{n} {d}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Draws `reports/rewards.svg` (the reward histogram of each iteration with
/// τ marked, from the rewards of the run's folded log, [`fold_run_log`]) and, per
/// validation metric, `reports/<metric>-per-iteration.svg`: one line per
/// task, each point the task's mean with its n and 95% confidence interval
/// from the report's per-example scores.
///
/// # Errors
/// A plot that cannot be written.
pub fn plot_run(run_dir: &Path, state: &replay::RunState, config: &RunConfig, rows: &[TableRow]) -> anyhow::Result<()> {
    let reports = store::RunDir::new(run_dir).reports();
    store::create_private_dir(&reports)?;
    let rewards: Vec<(u32, Vec<f32>)> = state
        .iterations
        .iter()
        .map(|(t, it)| (*t, it.samples.values().flat_map(|s| s.rewards.iter().map(|r| r.reward)).collect()))
        .filter(|(_, r): &(u32, Vec<f32>)| !r.is_empty())
        .collect();
    // Histograms need rewards in [0, 1]: a weighted mix may exceed it.
    let in_range = rewards.iter().flat_map(|(_, r)| r).all(|r| (0.0..=1.0).contains(r));
    if !rewards.is_empty() && in_range {
        crate::eval::plots::plot_reward_histograms(&reports.join("rewards.svg"), &rewards, config.reward.tau, 20)?;
    }
    // metric → task → points
    let mut per_metric: BTreeMap<String, BTreeMap<String, Vec<Point>>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.split == events::Split::Validation) {
        for m in row.report.metrics() {
            let mut by_task: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for ex in &row.report.examples {
                by_task.entry(ex.task.name().to_owned()).or_default().push(ex.scores.get(&m).copied().unwrap_or(0.0));
            }
            for (task, values) in by_task {
                let (mean, half) = ci95(&values);
                per_metric.entry(m.name().to_owned()).or_default().entry(task).or_default().push(Point {
                    iteration: row.iteration,
                    mean,
                    ci95: half,
                    n: values.len(),
                });
            }
        }
    }
    for (metric, tasks) in per_metric {
        let series: Vec<Series> = tasks.into_iter().map(|(label, points)| Series { label, points }).collect();
        crate::eval::plots::plot_metric_per_iteration(
            &reports.join(format!("{metric}-per-iteration.svg")),
            &metric,
            &series,
        )?;
    }
    Ok(())
}

/// The printed results of a finished run: the table of
/// [`crate::eval::table::results_table`], the format rates of every
/// evaluation and E-step, and each D_t's size and digest.
pub fn results_text(summary: &RunSummary) -> String {
    let mut out = format!("\nrun {} finished in {:.1} s\n\n", summary.run_id, summary.wall_s);
    out.push_str(&crate::eval::table::results_table(&summary.rows));
    out.push_str("\nFormat of what the policy wrote:\n");
    for r in &summary.rows {
        if let Some(f) = &r.report.format {
            out.push_str(&format!("  eval {} on {}: {}\n", r.system, r.split, f.summary()));
        }
    }
    for (t, f) in &summary.e_step_format {
        out.push_str(&format!("  E-step samples, iteration {t}: {}\n", f.summary()));
    }
    if let Some(check) = &summary.reward_check {
        out.push_str(&format!("\n{}", check.summary_line()));
        if let Some(w) = check.warning() {
            out.push_str(&format!("\n{w}"));
        }
        out.push('\n');
    }
    for it in &summary.outcome.iterations {
        out.push_str(&format!(
            "\nD_{}: {} of {} samples kept (R ≥ τ), digest {}",
            it.iteration,
            it.kept,
            it.samples,
            events::digest_hex(&it.digest)
        ));
        let dropped = summary.decisions.get(&it.iteration).map(|c| dropped_words(c)).unwrap_or_default();
        if !dropped.is_empty() {
            out.push_str(&format!("; dropped: {dropped}"));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::Decision;

    #[test]
    fn the_dropped_samples_are_named_by_reason_and_kept_ones_are_not() {
        let counts = [(Decision::Kept, 3), (Decision::BelowThreshold, 2), (Decision::Unfinished, 1)];
        assert_eq!(dropped_words(&counts), "2 below-threshold, 1 unfinished");
        assert_eq!(dropped_words(&[(Decision::Kept, 4)]), "");
    }
}
