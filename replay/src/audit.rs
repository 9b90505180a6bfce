//! The audit of one iteration: per sample its reward, the judge's score
//! distribution, the filter's decision with its reason and the sample's rank
//! among its input's samples; per task a summary; and one-line explanations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use events::{Decision, SampleId};
use serde::Serialize;

use crate::state::{RunState, SampleRecord};
use crate::verify::RebuildError;

/// Which decisions an audit lists.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Selection {
    /// Every sample.
    #[default]
    All,
    /// Kept samples only (D_t).
    Kept,
    /// Samples not kept: below τ, over the cap, or never decided.
    Rejected,
}

/// What to audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    /// Iteration t.
    pub iteration: u32,
    /// Only this input's samples, when given.
    pub input: Option<String>,
    /// Which decisions to list (the per-task summary covers all of them).
    pub selection: Selection,
}

/// Output format of the per-sample rows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// A text table followed by the per-task summary.
    Table,
    /// One JSON object per sample; the judge distribution in full.
    Jsonl,
    /// CSV with a header row; the judge distribution in compact form.
    Csv,
}

/// Why an audit could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The iteration is not in the log.
    #[error(transparent)]
    Iteration(#[from] RebuildError),
    /// `--input` names an input without samples in the iteration.
    #[error("input {input:?} has no samples in iteration {iteration}")]
    NoSuchInput {
        /// The input asked for.
        input: String,
        /// Iteration t.
        iteration: u32,
    },
    /// `--sample` names a sample the log does not have.
    #[error("the log has no records of sample {0}")]
    NoSuchSample(SampleId),
    /// Writing the output failed.
    #[error("cannot write the audit: {0}")]
    Io(#[from] std::io::Error),
    /// CSV encoding failed.
    #[error("cannot write the audit as CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// One sample as the audit shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRow {
    /// The sample id, `t1/<input>/#3`.
    #[serde(serialize_with = "display")]
    pub sample: SampleId,
    /// The input's task, from `RetrievalDone` (`None` when not logged).
    pub task: Option<String>,
    /// The reward the filter used, else the first one assigned.
    pub reward: Option<f32>,
    /// Which reward it is.
    pub reward_name: Option<String>,
    /// The judge's probabilities over scores 0..=10 (empty for non-judges).
    pub judge_distribution: Vec<f32>,
    /// The engine that drew the sample (`None` when its `SampleGenerated`
    /// is not logged; tch in logs older than schema 6).
    pub engine: Option<events::EngineInfo>,
    /// The engine of the judge model behind the reward; `None` for a reward
    /// without a model, or no reward.
    pub judge_engine: Option<events::EngineInfo>,
    /// The probability mass, in [0, 1], the judge's engine did not return
    /// among its top log-probabilities (the largest over the score
    /// positions); `None` when the full distribution was read.
    pub unseen_mass: Option<f32>,
    /// The filter's decision, when logged; written in its kebab-case
    /// `Display` form (`kept`, `below-threshold`, `over-cap`) in JSON and
    /// CSV alike.
    #[serde(serialize_with = "display_opt")]
    pub decision: Option<Decision>,
    /// The decision in words: `kept`, `below τ`, `over the cap`, `undecided`.
    pub reason: &'static str,
    /// The threshold the decision used.
    pub tau: Option<f32>,
    /// Rank among the input's samples by reward, **from 1** (the best is 1)
    /// in every output of the audit; the `FilterDecided` record itself
    /// stores it from 0.
    pub rank: Option<u32>,
    /// Number of decided samples of the input in this iteration.
    pub of: u32,
    /// Sequence number of the `FilterDecided` record.
    pub filter_seq: Option<u64>,
    /// Sequence number of the `RewardAssigned` record.
    pub reward_seq: Option<u64>,
}

fn display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_opt<S: serde::Serializer, T: std::fmt::Display>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// A decision in words.
pub fn reason(decision: Option<Decision>) -> &'static str {
    match decision {
        Some(Decision::Kept) => "kept",
        Some(Decision::BelowThreshold) => "below τ",
        Some(Decision::OverCap) => "over the cap",
        Some(Decision::NoReasoning) => "no reasoning",
        Some(Decision::ZeroReward) => "zero reward",
        Some(Decision::Unfinished) => "unfinished",
        None => "undecided",
    }
}

impl AuditRow {
    fn of(state: &RunState, s: &SampleRecord, of: u32) -> Self {
        let reward = s.reward();
        let f = s.filter;
        AuditRow {
            sample: s.id.clone(),
            task: state.task_of(&s.id.input_id).map(str::to_owned),
            reward: s.shown_reward(),
            reward_name: reward.map(|r| r.reward_name.clone()),
            judge_distribution: reward.map(|r| r.judge_distribution.clone()).unwrap_or_default(),
            engine: s.generated.as_ref().map(|g| g.engine.clone()),
            judge_engine: reward.and_then(|r| r.engine.clone()),
            unseen_mass: reward.and_then(|r| r.unseen_mass),
            decision: f.map(|f| f.decision),
            reason: reason(f.map(|f| f.decision)),
            tau: f.map(|f| f.tau),
            rank: f.map(|f| f.rank + 1),
            of,
            filter_seq: f.map(|f| f.seq),
            reward_seq: reward.map(|r| r.seq),
        }
    }

    /// Whether the row belongs to `selection`.
    pub fn selected(&self, selection: Selection) -> bool {
        match selection {
            Selection::All => true,
            Selection::Kept => self.decision == Some(Decision::Kept),
            Selection::Rejected => self.decision != Some(Decision::Kept),
        }
    }

    /// The sample's engine in a few words ([`engine_label`]); `-` when not
    /// logged.
    pub fn engine_label(&self) -> String {
        self.engine.as_ref().map_or_else(|| "-".to_owned(), engine_label)
    }

    /// The judge distribution in a few characters: the three most probable
    /// scores with their probabilities, most probable first (`10:.82 9:.11
    /// 8:.05`); `-` when there is none.
    pub fn judge_compact(&self) -> String {
        compact_distribution(&self.judge_distribution)
    }

    /// One line that explains the decision, e.g. `t1/email-u03/#5: reward
    /// 0.70 < τ 1.00 → rejected (below τ); rank 7 of 8 for its input`.
    pub fn explain(&self, kept_for_input: u32) -> String {
        let mut line = format!("{}: ", self.sample);
        match (self.reward, self.decision, self.tau) {
            (Some(r), Some(d), Some(tau)) => {
                let cmp = if r >= tau { "≥" } else { "<" };
                let _ = write!(line, "reward {r:.2} {cmp} τ {tau:.2} → ");
                let _ = match d {
                    Decision::Kept => write!(line, "kept (weight {r:.2})"),
                    Decision::BelowThreshold => write!(line, "rejected (below τ)"),
                    Decision::OverCap => {
                        write!(line, "rejected (over the cap: {kept_for_input} kept for its input)")
                    }
                    Decision::NoReasoning => write!(line, "rejected (no reasoning: the output has no separator line)"),
                    Decision::ZeroReward => write!(line, "rejected (zero reward: no gradient)"),
                    Decision::Unfinished => {
                        write!(line, "rejected (unfinished: the text ran to the token limit without stopping)")
                    }
                };
            }
            (Some(r), None, _) => {
                let _ = write!(line, "reward {r:.2}, no filter decision logged");
            }
            _ => line.push_str("no reward and no filter decision logged"),
        }
        if let Some(rank) = self.rank {
            let _ = write!(line, "; rank {rank} of {} for its input", self.of);
        }
        if !self.judge_distribution.is_empty() {
            let _ = write!(line, "; judge {}", self.judge_compact());
        }
        if let Some(mass) = self.unseen_mass {
            let _ = write!(line, " ({:.1}% unseen)", f64::from(mass) * 100.0);
        }
        if let Some(engine) = &self.engine {
            let _ = write!(line, "; drawn by {}", engine_label(engine));
            if !engine.deterministic {
                line.push_str(" (not deterministic)");
            }
        }
        if let Some(engine) = &self.judge_engine {
            let _ = write!(line, "; judged by {}", engine_label(engine));
        }
        line
    }
}

/// An engine in a few words: its backend, and the served model when there
/// is one (`tch`, `openai Qwen/Qwen2.5-7B-Instruct`).
pub fn engine_label(engine: &events::EngineInfo) -> String {
    match &engine.server_model {
        Some(model) => format!("{} {model}", engine.backend),
        None => engine.backend.to_string(),
    }
}

/// The three most probable scores of a judge distribution (`10:.82 9:.11
/// 8:.05`), `-` when empty.
pub fn compact_distribution(p: &[f32]) -> String {
    if p.is_empty() {
        return "-".to_owned();
    }
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    idx.iter()
        .take(3)
        .map(|&i| {
            let v = format!("{:.2}", p[i]);
            let v = v.strip_prefix('0').unwrap_or(&v).to_owned();
            format!("{i}:{v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rows of an audit, in canonical sample order. The selection applies to the
/// rows; the input filter applies to the rows and to the summary.
///
/// # Errors
/// [`AuditError::Iteration`] or [`AuditError::NoSuchInput`].
pub fn audit_rows(state: &RunState, query: &AuditQuery) -> Result<Vec<AuditRow>, AuditError> {
    let rows = all_rows(state, query.iteration, query.input.as_deref())?;
    Ok(rows.into_iter().filter(|r| r.selected(query.selection)).collect())
}

/// Every row of the iteration (or of one input), whatever the decision.
fn all_rows(state: &RunState, t: u32, input: Option<&str>) -> Result<Vec<AuditRow>, AuditError> {
    let it = state.iteration(t)?;
    // One input's samples are one range of the canonical order.
    let samples: Vec<&SampleRecord> = match input {
        Some(i) => it.samples_of(i).collect(),
        None => it.samples.values().collect(),
    };
    let mut decided: BTreeMap<&str, u32> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.filter.is_some()) {
        *decided.entry(s.id.input_id.as_str()).or_default() += 1;
    }
    let rows: Vec<AuditRow> = samples
        .iter()
        .map(|s| AuditRow::of(state, s, decided.get(s.id.input_id.as_str()).copied().unwrap_or(0)))
        .collect();
    if let (Some(input), true) = (input, rows.is_empty()) {
        return Err(AuditError::NoSuchInput { input: input.to_owned(), iteration: t });
    }
    Ok(rows)
}

/// Explains one sample's decision in one line (see [`AuditRow::explain`]).
///
/// # Errors
/// [`AuditError::NoSuchSample`] when the log has nothing about it.
pub fn explain(state: &RunState, sample: &SampleId) -> Result<String, AuditError> {
    state.sample(sample).ok_or_else(|| AuditError::NoSuchSample(sample.clone()))?;
    let rows = all_rows(state, sample.iteration, Some(&sample.input_id))?;
    let kept = rows.iter().filter(|r| r.decision == Some(Decision::Kept)).count() as u32;
    let row = rows.iter().find(|r| r.sample == *sample).ok_or_else(|| AuditError::NoSuchSample(sample.clone()))?;
    Ok(row.explain(kept))
}

/// Number of reward histogram bins: [0, 0.1), [0.1, 0.2), …, [0.9, 1.0].
pub const HISTOGRAM_BINS: usize = 10;

/// One task's figures in an iteration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskSummary {
    /// The task (`(unknown)` for inputs without a `RetrievalDone` record).
    pub task: String,
    /// Inputs with samples.
    pub inputs: u32,
    /// Samples.
    pub samples: u64,
    /// Samples with a filter decision.
    pub decided: u64,
    /// Decided samples with R ≥ τ.
    pub passed: u64,
    /// Samples kept.
    pub kept: u64,
    /// Fewest samples kept for one input.
    pub kept_min: u32,
    /// Most samples kept for one input.
    pub kept_max: u32,
    /// Rewards per bin of width 0.1 (rewards outside [0, 1] go to the end
    /// bins).
    pub histogram: [u64; HISTOGRAM_BINS],
}

impl TaskSummary {
    /// Decided samples with R ≥ τ, as a fraction of the decided ones.
    pub fn pass_rate(&self) -> f64 {
        if self.decided == 0 {
            0.0
        } else {
            self.passed as f64 / self.decided as f64
        }
    }

    /// Mean samples kept per input.
    pub fn kept_mean(&self) -> f64 {
        if self.inputs == 0 {
            0.0
        } else {
            self.kept as f64 / f64::from(self.inputs)
        }
    }
}

/// The per-task summary of an iteration (or of one input).
///
/// # Errors
/// As [`audit_rows`].
pub fn summarize(state: &RunState, t: u32, input: Option<&str>) -> Result<Vec<TaskSummary>, AuditError> {
    let rows = all_rows(state, t, input)?;
    let mut per_task: BTreeMap<String, (TaskSummary, BTreeMap<&str, u32>)> = BTreeMap::new();
    for r in &rows {
        let task = r.task.clone().unwrap_or_else(|| "(unknown)".to_owned());
        let (s, inputs) = per_task.entry(task.clone()).or_insert_with(|| {
            let s = TaskSummary {
                task,
                inputs: 0,
                samples: 0,
                decided: 0,
                passed: 0,
                kept: 0,
                kept_min: 0,
                kept_max: 0,
                histogram: [0; HISTOGRAM_BINS],
            };
            (s, BTreeMap::new())
        });
        s.samples += 1;
        let kept = inputs.entry(r.sample.input_id.as_str()).or_insert(0);
        if let (Some(d), Some(reward), Some(tau)) = (r.decision, r.reward, r.tau) {
            s.decided += 1;
            if reward >= tau {
                s.passed += 1;
            }
            if d == Decision::Kept {
                s.kept += 1;
                *kept += 1;
            }
        }
        if let Some(reward) = r.reward {
            let bin = (f64::from(reward) * HISTOGRAM_BINS as f64).floor().clamp(0.0, (HISTOGRAM_BINS - 1) as f64);
            s.histogram[bin as usize] += 1;
        }
    }
    Ok(per_task
        .into_values()
        .map(|(mut s, inputs)| {
            s.inputs = inputs.len() as u32;
            s.kept_min = inputs.values().copied().min().unwrap_or(0);
            s.kept_max = inputs.values().copied().max().unwrap_or(0);
            s
        })
        .collect())
}

/// Writes rows in `format`. `Table` writes only the table; call
/// [`write_summary`] after it for the per-task summary.
///
/// # Errors
/// [`AuditError::Io`] or [`AuditError::Csv`].
pub fn write_rows(rows: &[AuditRow], format: Format, out: &mut dyn Write) -> Result<(), AuditError> {
    match format {
        Format::Table => {
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(["sample", "task", "engine", "reward", "judge (top 3)", "decision", "τ", "rank"]);
            for r in rows {
                table.add_row([
                    r.sample.to_string(),
                    r.task.clone().unwrap_or_else(|| "-".to_owned()),
                    r.engine_label(),
                    r.reward.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                    r.judge_compact(),
                    // The decision's one spelling, as in JSONL and CSV.
                    r.decision.map_or_else(|| "undecided".to_owned(), |d| d.to_string()),
                    r.tau.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                    r.rank.map_or_else(|| "-".to_owned(), |k| format!("{k} of {}", r.of)),
                ]);
            }
            writeln!(out, "{table}")?;
        }
        Format::Jsonl => {
            for r in rows {
                serde_json::to_writer(&mut *out, r).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "sample",
                "input_id",
                "task",
                "reward",
                "reward_name",
                "judge",
                "decision",
                "reason",
                "tau",
                "rank",
                "of",
                "filter_seq",
                "engine",
                "deterministic",
                "judge_engine",
                "unseen_mass",
            ])?;
            let opt = |v: Option<String>| v.unwrap_or_default();
            for r in rows {
                w.write_record([
                    r.sample.to_string(),
                    r.sample.input_id.clone(),
                    opt(r.task.clone()),
                    opt(r.reward.map(|v| v.to_string())),
                    opt(r.reward_name.clone()),
                    r.judge_compact(),
                    opt(r.decision.map(|d| d.to_string())),
                    r.reason.to_owned(),
                    opt(r.tau.map(|v| v.to_string())),
                    opt(r.rank.map(|v| v.to_string())),
                    r.of.to_string(),
                    opt(r.filter_seq.map(|v| v.to_string())),
                    opt(r.engine.as_ref().map(engine_label)),
                    opt(r.engine.as_ref().map(|e| e.deterministic.to_string())),
                    opt(r.judge_engine.as_ref().map(engine_label)),
                    opt(r.unseen_mass.map(|v| v.to_string())),
                ])?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// Writes the per-task summary as text: counts, pass rate, kept per input
/// and a reward histogram drawn with bars.
///
/// # Errors
/// [`AuditError::Io`].
pub fn write_summary(summaries: &[TaskSummary], out: &mut dyn Write) -> Result<(), AuditError> {
    const WIDTH: u64 = 40;
    for s in summaries {
        writeln!(
            out,
            "task {}: {} inputs, {} samples, {} decided, pass rate {:.1}% (R ≥ τ), {} kept; \
             kept per input: mean {:.2}, min {}, max {}",
            s.task,
            s.inputs,
            s.samples,
            s.decided,
            100.0 * s.pass_rate(),
            s.kept,
            s.kept_mean(),
            s.kept_min,
            s.kept_max
        )?;
        let most = s.histogram.iter().copied().max().unwrap_or(0).max(1);
        for (i, &n) in s.histogram.iter().enumerate() {
            let lo = i as f64 / HISTOGRAM_BINS as f64;
            let hi = (i + 1) as f64 / HISTOGRAM_BINS as f64;
            let close = if i + 1 == HISTOGRAM_BINS { ']' } else { ')' };
            let bar = "█".repeat(((n * WIDTH).div_ceil(most)) as usize);
            writeln!(out, "  [{lo:.1}, {hi:.1}{close} {bar:<40} {n}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_distribution_shows_the_three_most_probable_scores() {
        let mut p = vec![0.0; 11];
        p[10] = 0.82;
        p[9] = 0.11;
        p[8] = 0.05;
        p[0] = 0.02;
        assert_eq!(compact_distribution(&p), "10:.82 9:.11 8:.05");
        assert_eq!(compact_distribution(&[]), "-");
        assert_eq!(compact_distribution(&[1.0]), "0:1.00");
    }
}
