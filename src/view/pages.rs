//! What each page shows, as a template name and its context, built from a
//! run's snapshot alone (plus its data set and reports for the texts and
//! evaluation numbers). Rendering and HTTP live in `server.rs`.
//!
//! Every text from a user or a model goes into the context as a plain
//! string; the templates are `.html`, so minijinja escapes it on output.
//! Only the server-drawn SVG charts (numbers and fixed words) are marked
//! safe.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use events::{digest_hex, Decision, SampleId, Split};
use replay::RunState;
use serde_json::{json, Value};

use super::charts::{self, RewardClass};
use super::live::{LiveRun, RunData, Snapshot};
use super::query::RawSampleQuery;
use crate::eval::table::paired_on;
use crate::eval::EvalReport;
use crate::reward::Metric;

/// A page that cannot be shown: its HTTP status and why.
#[derive(Debug)]
pub struct PageError {
    /// 400 for a bad query, 404 for something the log does not have, 500
    /// for a failure reading what should be there.
    pub status: u16,
    /// The message, naming the parameter, run, iteration or sample.
    pub message: String,
}

impl PageError {
    fn not_found(message: impl Into<String>) -> Self {
        Self { status: 404, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self { status: 400, message: message.into() }
    }
}

/// A template to render and its context.
pub type Page = (&'static str, Value);

/// A path segment, percent-encoded for a URL.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn short(d: &events::Digest) -> String {
    digest_hex(d)[..12].to_owned()
}

fn seconds(ms: u64) -> String {
    if ms >= 600_000 {
        format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The banners every page of a run carries: the record the log stops at,
/// a problem following it, records that repeat a fact.
fn banners(run: &LiveRun, snap: &Snapshot) -> Vec<Value> {
    let mut out = Vec::new();
    let name = run.dir.display();
    if let Some(p) = &snap.problem {
        let at = p.seq.map_or_else(|| "a record".to_owned(), |s| format!("seq {s}"));
        out.push(json!({"level": "error", "text": format!(
            "The log of {name} cannot be read past {at}: {}. Pages show the {} records before it.",
            p.message, snap.state.records
        )}));
    }
    if let Some(w) = &snap.follow_warning {
        out.push(json!({"level": "warn", "text": format!("Following the log of {name}: {w}")}));
    }
    if !snap.state.anomalies.is_empty() {
        let seqs: Vec<String> = snap
            .state
            .anomalies
            .iter()
            .take(5)
            .map(|a| match a {
                replay::Anomaly::Duplicate { kind, subject, seq, first_seq, .. } => {
                    format!("{kind} {subject} at seq {seq} (first at seq {first_seq})")
                }
            })
            .collect();
        out.push(json!({"level": "warn", "text": format!(
            "{} records repeat a fact already logged: {}", snap.state.anomalies.len(), seqs.join("; ")
        )}));
    }
    out
}

/// Whether the run is going, finished or failed, in words, and whether a
/// process is writing its log now.
fn run_state_words(run: &LiveRun, snap: &Snapshot) -> (String, bool) {
    let state = &snap.state;
    let problem = snap.problem.as_ref().map(|p| p.seq);
    if let Some(seq) = problem {
        let at = seq.map_or_else(|| "its start".to_owned(), |s| format!("seq {s}"));
        return (format!("unknown: the log cannot be read past {at} (see the banner)"), false);
    }
    let holder = store::log_holder(&store::RunDir::new(&run.dir).log()).ok().flatten();
    let writing = holder.as_ref().is_some_and(|h| h.is_writer());
    let last_start = state.stages.iter().filter(|s| s.wall_ms.is_none()).map(|s| s.seq).max();
    let end = state.ends.last();
    let words = match (end, &holder) {
        (Some(e), _) if last_start.is_none_or(|s| s < e.seq()) => match e {
            replay::RunEnd::Finished { wall_ms, .. } => format!("finished in {}", seconds(*wall_ms)),
            replay::RunEnd::Failed { reason, .. } => format!("failed: {reason}"),
        },
        _ if writing => {
            format!(
                "running (pid {}, writing since {})",
                holder.as_ref().map_or(0, |h| h.pid),
                holder.as_ref().map_or("", |h| h.since.as_str())
            )
        }
        _ => "stopped without an end record (resume it with `restpg train --resume`)".to_owned(),
    };
    (words, writing)
}

fn run_or_404(runs: &[std::sync::Arc<LiveRun>], r: usize) -> Result<&LiveRun, PageError> {
    runs.get(r).map(|a| &**a).ok_or_else(|| {
        PageError::not_found(format!(
            "there is no run {r}: this view serves runs 0 to {}",
            runs.len().saturating_sub(1)
        ))
    })
}

/// `/`: every run served, one line each.
pub fn index(runs: &[std::sync::Arc<LiveRun>]) -> Page {
    let rows: Vec<Value> = runs
        .iter()
        .map(|run| {
            let snap = run.read();
            let (state_words, writing) = run_state_words(run, &snap);
            let s = &snap.state;
            json!({
                "index": run.index,
                "dir": run.dir.display().to_string(),
                "run_id": s.run_id,
                "method": s.run.as_ref().map(|r| r.method.clone()),
                "state": state_words,
                "writing": writing,
                "records": s.records,
                "iterations": s.iterations.len(),
                "checkpoints": s.checkpoints.len(),
                "evaluations": s.evaluations.len(),
                "problem": snap.problem.is_some(),
            })
        })
        .collect();
    let banners: Vec<Value> = runs.iter().flat_map(|r| banners(r, &r.read())).collect();
    let live = rows.iter().any(|r| r["writing"] == json!(true));
    ("index.html", json!({"title": "runs", "runs": rows, "banners": banners, "live": live}))
}

/// One evaluation report's per-task means, and its tests against a
/// baseline report (same split): `mean (Δ, p)` per task and metric.
fn eval_rows(run: &LiveRun, state: &RunState) -> (Vec<Value>, Vec<String>, Vec<Value>) {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut metrics: Vec<Metric> = Vec::new();
    let loaded: Vec<(&replay::EvaluationRecord, Result<std::sync::Arc<EvalReport>, String>)> =
        state.evaluations.iter().map(|e| (e, run.report(&e.report_path))).collect();
    for (_, r) in &loaded {
        if let Ok(r) = r {
            for m in r.metrics() {
                if !metrics.contains(&m) {
                    metrics.push(m);
                }
            }
        }
    }
    metrics.sort_by_key(|m| Metric::ALL.iter().position(|x| x == m));
    for (e, report) in &loaded {
        let report = match report {
            Ok(r) => r,
            Err(msg) => {
                problems.push(json!({"level": "error", "text": format!(
                    "evaluation at seq {} (iteration {}, {}): {msg}", e.seq, e.iteration, e.split
                )}));
                continue;
            }
        };
        // The baseline: the first evaluation of iteration 0 on the split.
        let base = loaded
            .iter()
            .find(|(b, r)| b.iteration == 0 && b.split == e.split && r.is_ok() && b.seq != e.seq)
            .and_then(|(_, r)| r.as_ref().ok());
        let mut tasks: Vec<(String, Option<crate::data::Task>)> =
            report.per_task.keys().map(|t| (t.clone(), t.parse::<crate::data::Task>().ok())).collect();
        tasks.push(("macro average".to_owned(), None));
        for (task, parsed) in tasks {
            let cells: Vec<Value> = metrics
                .iter()
                .map(|m| {
                    let mean = if parsed.is_none() {
                        report.macro_average.get(m).copied()
                    } else {
                        report.per_task.get(&task).and_then(|s| s.means.get(m).copied())
                    };
                    let test = base
                        .filter(|_| e.iteration > 0)
                        .map(|b| paired_on(b, report, *m, parsed).map_err(|err| format!("{err:#}")));
                    match test {
                        Some(Ok(t)) => json!({
                            "mean": mean, "delta": t.mean_diff, "p": t.p, "n": t.n,
                            "significant": t.significant(),
                        }),
                        Some(Err(why)) => json!({"mean": mean, "untested": why}),
                        None => json!({"mean": mean}),
                    }
                })
                .collect();
            let n =
                if parsed.is_none() { report.examples.len() } else { report.per_task.get(&task).map_or(0, |s| s.n) };
            rows.push(json!({
                "iteration": e.iteration, "split": e.split.as_str(), "system": e.system,
                "task": task, "n": n, "cells": cells, "report": e.report_path, "seq": e.seq,
            }));
        }
    }
    (rows, metrics.iter().map(|m| m.name().to_owned()).collect(), problems)
}

/// `/runs/{r}`: the run.
///
/// # Errors
/// No run `r`.
pub fn run_page(runs: &[std::sync::Arc<LiveRun>], r: usize) -> Result<Page, PageError> {
    let run = run_or_404(runs, r)?;
    let snap = run.read();
    let s = &snap.state;
    let (state_words, writing) = run_state_words(run, &snap);
    let mut banners = banners(run, &snap);

    // Stages: each start with its end, when logged.
    let mut stages: Vec<Value> = Vec::new();
    let mut open: BTreeMap<(u32, events::Stage), usize> = BTreeMap::new();
    for st in &s.stages {
        match st.wall_ms {
            None => {
                open.insert((st.iteration, st.stage), stages.len());
                stages.push(json!({"iteration": st.iteration, "stage": st.stage.as_str(), "started": st.seq,
                    "finished": null, "wall": null}));
            }
            Some(ms) => match open.remove(&(st.iteration, st.stage)) {
                Some(i) => {
                    stages[i]["finished"] = json!(st.seq);
                    stages[i]["wall"] = json!(seconds(ms));
                }
                None => stages.push(json!({"iteration": st.iteration, "stage": st.stage.as_str(),
                    "started": null, "finished": st.seq, "wall": seconds(ms)})),
            },
        }
    }
    let current = s
        .stages
        .last()
        .filter(|st| st.wall_ms.is_none() && snap.problem.is_none())
        .map(|st| format!("{} of iteration {} (started at seq {})", st.stage, st.iteration, st.seq));

    let iterations: Vec<Value> = s
        .iterations
        .iter()
        .map(|(t, it)| {
            let rewarded = it.samples.values().filter(|x| !x.rewards.is_empty()).count();
            let decided = it.samples.values().filter(|x| x.filter.is_some()).count();
            let kept = it.samples.values().filter(|x| x.filter.is_some_and(|f| f.decision == Decision::Kept)).count();
            json!({
                "t": t, "samples": it.samples.len(), "rewarded": rewarded, "decided": decided, "kept": kept,
                "seal": it.seal.as_ref().map(|x| json!({"count": x.count, "digest": short(&x.digest), "seq": x.seq})),
                "steps": s.training.get(t).map_or(0, Vec::len),
            })
        })
        .collect();
    let checkpoints: Vec<Value> = s
        .checkpoints
        .iter()
        .map(|c| {
            json!({"seq": c.seq, "iteration": c.iteration, "step": c.step, "role": c.role.as_str(),
            "hash": digest_hex(&c.hash), "path": c.path, "validation": c.validation_score})
        })
        .collect();
    let has_validation = s.checkpoints.iter().any(|c| c.validation_score.is_some());
    let (evaluations, metrics, problems) = eval_rows(run, s);
    banners.extend(problems);
    let checks: Vec<Value> = s
        .reward_checks
        .iter()
        .map(|c| {
            json!({"seq": c.seq, "reward": c.reward_name, "examples": c.examples, "per_task": c.per_task,
            "counts": c.counts, "auc_own_other": c.auc_own_other, "auc_own_degenerate": c.auc_own_degenerate,
            "auc_other_degenerate": c.auc_other_degenerate, "means": c.means})
        })
        .collect();
    let sft_curve = s
        .training
        .get(&0)
        .filter(|p| !p.is_empty())
        .and_then(|p| charts::training_curve(&p.iter().map(|x| (x.step, x.loss)).collect::<Vec<_>>()).ok());
    let info = s.run.as_ref().map(|x| {
        json!({"method": x.method, "seed": x.seed, "code_version": x.code_version, "tau": x.tau, "cap": x.cap,
            "config": x.config_toml, "seq": x.seq, "dataset_digest": short(&x.dataset_digest)})
    });
    let last = s.last.map(|(seq, h)| json!({"seq": seq, "hash": digest_hex(&h)}));
    let kinds: Vec<Value> = s.kinds.iter().map(|(k, n)| json!({"kind": k.as_str(), "n": n})).collect();
    Ok((
        "run.html",
        json!({
            "title": format!("run {}", s.run_id.clone().unwrap_or_default()),
            "r": r, "dir": run.dir.display().to_string(), "run_id": s.run_id, "info": info,
            "state": state_words, "writing": writing, "live": writing, "current": current,
            "records": s.records, "last": last, "kinds": kinds, "stages": stages, "iterations": iterations,
            "checkpoints": checkpoints, "has_validation": has_validation, "evaluations": evaluations, "metrics": metrics, "checks": checks,
            "sft_curve": sft_curve, "banners": banners,
        }),
    ))
}

/// `/runs/{r}/iterations/{t}`: one E-step and its M-step.
///
/// # Errors
/// No run `r`, or no iteration `t` in its log.
pub fn iteration_page(runs: &[std::sync::Arc<LiveRun>], r: usize, t: u32) -> Result<Page, PageError> {
    let run = run_or_404(runs, r)?;
    let snap = run.read();
    let s = &snap.state;
    let it = s.iteration(t).map_err(|e| PageError::not_found(e.to_string()))?;
    let tau = s.run.as_ref().and_then(|x| x.tau);
    let last = s.last.map_or(0, |(seq, _)| seq);
    let facts = run.iteration_facts(t, last, || iteration_facts(s, t))?;
    let curve = s.training.get(&t).filter(|p| !p.is_empty());
    let curve_svg =
        curve.and_then(|p| charts::training_curve(&p.iter().map(|x| (x.step, x.loss)).collect::<Vec<_>>()).ok());
    let curve_last = curve.and_then(|p| p.last()).map(|x| json!({"step": x.step, "loss": x.loss, "tokens": x.tokens}));
    let checkpoint = s
        .checkpoints
        .iter()
        .rfind(|c| c.iteration == t && c.role == events::Role::MStep)
        .map(|c| json!({"hash": digest_hex(&c.hash), "seq": c.seq, "step": c.step}));
    Ok((
        "iteration.html",
        json!({
            "title": format!("iteration {t}"), "r": r, "t": t, "run_id": s.run_id, "dir": run.dir.display().to_string(),
            "samples": it.samples.len(), "tau": tau, "cap": s.run.as_ref().and_then(|x| x.cap),
            "histogram": facts["histogram"], "classes": facts["classes"], "kept": facts["kept"],
            "seal": it.seal.as_ref().map(|x| json!({"count": x.count, "digest": digest_hex(&x.digest), "seq": x.seq})),
            "verification": facts["verification"], "spread": facts["spread"], "summaries": facts["summaries"],
            "curve": curve_svg, "curve_last": curve_last, "checkpoint": checkpoint,
            "banners": banners(run, &snap), "live": it.finished_seq.is_none() && run_state_words(run, &snap).1,
        }),
    ))
}

/// What an iteration's page shows that takes a pass over all its samples
/// (the histogram, the decision counts, D_t's verification, the per-task
/// summary, kept per input): computed once per state of the log and cached
/// by the run ([`LiveRun::iteration_facts`]).
///
/// # Errors
/// No iteration `t`, or a chart that cannot be drawn.
pub fn iteration_facts(s: &RunState, t: u32) -> Result<Value, PageError> {
    let it = s.iteration(t).map_err(|e| PageError::not_found(e.to_string()))?;
    let tau = s.run.as_ref().and_then(|x| x.tau);
    let mut classes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut rewards = Vec::with_capacity(it.samples.len());
    for sample in it.samples.values() {
        let class = RewardClass::of(sample.filter.map(|f| f.decision));
        *classes.entry(class.label()).or_default() += 1;
        if let Some(r) = sample.shown_reward() {
            rewards.push((r, class));
        }
    }
    let histogram = if rewards.is_empty() {
        None
    } else {
        Some(
            charts::reward_histogram(&rewards, tau, 20)
                .map_err(|e| PageError { status: 500, message: format!("{e:#}") })?,
        )
    };
    let class_rows: Vec<Value> = RewardClass::ALL
        .iter()
        .map(|c| {
            json!({"label": c.label(), "n": classes.get(c.label()).copied().unwrap_or(0),
            "color": format!("rgb({},{},{})", c.color().0, c.color().1, c.color().2)})
        })
        .collect();
    let verification = match s.verify_iteration(t) {
        Ok(v) => json!({"ok": true, "count": v.count, "digest": digest_hex(&v.digest), "seal_seq": v.seal_seq,
            "decided": v.decided, "inputs_kept": v.inputs_kept}),
        Err(e) => json!({"ok": false, "violations":
            e.violations.iter().take(50).map(|v| json!({"text": v.to_string(), "seqs": v.seqs()})).collect::<Vec<_>>(),
            "more": e.violations.len().saturating_sub(50)}),
    };
    // Kept per input: how many inputs kept 0, 1, 2, … samples.
    let mut kept_by_input: BTreeMap<&str, u32> = BTreeMap::new();
    for sample in it.samples.values() {
        let k = kept_by_input.entry(sample.id.input_id.as_str()).or_default();
        if sample.filter.is_some_and(|f| f.decision == Decision::Kept) {
            *k += 1;
        }
    }
    let mut spread: BTreeMap<u32, usize> = BTreeMap::new();
    for k in kept_by_input.values() {
        *spread.entry(*k).or_default() += 1;
    }
    let spread: Vec<Value> = spread.iter().map(|(k, n)| json!({"kept": k, "inputs": n})).collect();
    let summaries: Vec<Value> = replay::audit::summarize(s, t, None)
        .map(|v| {
            v.iter()
                .map(|x| {
                    json!({"task": x.task, "inputs": x.inputs, "samples": x.samples, "decided": x.decided,
                    "passed": x.passed, "kept": x.kept, "pass_rate": x.pass_rate(), "kept_mean": x.kept_mean(),
                    "kept_min": x.kept_min, "kept_max": x.kept_max})
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "histogram": histogram, "classes": class_rows, "kept": classes.get(RewardClass::Kept.label()).copied().unwrap_or(0),
        "verification": verification, "spread": spread, "summaries": summaries,
    }))
}

/// `/runs/{r}/iterations/{t}/samples`: the filtered, sorted, paged table.
///
/// # Errors
/// No run `r` or iteration `t`, or a bad query parameter (400, naming it).
pub fn samples_page(
    runs: &[std::sync::Arc<LiveRun>],
    r: usize,
    t: u32,
    raw: &RawSampleQuery,
) -> Result<Page, PageError> {
    let run = run_or_404(runs, r)?;
    let query = raw.parse().map_err(PageError::bad_request)?;
    let snap = run.read();
    let s = &snap.state;
    let it = s.iteration(t).map_err(|e| PageError::not_found(e.to_string()))?;
    if let Some(task) = &query.task {
        if !s.tasks.values().any(|t| t == task) {
            let mut known: Vec<&str> = s.tasks.values().map(String::as_str).collect();
            known.sort_unstable();
            known.dedup();
            return Err(PageError::bad_request(format!(
                "parameter `task`: {task:?} is none of this run's tasks ({})",
                known.join(", ")
            )));
        }
    }
    let page = query.page(s, it);
    if query.page > page.pages {
        return Err(PageError::bad_request(format!(
            "parameter `page`: {} is past the last page, {} ({} samples match, {} per page)",
            query.page, page.pages, page.matching, query.per
        )));
    }
    let rows: Vec<Value> = page
        .rows
        .iter()
        .map(|x| {
            let reward = x.reward();
            json!({
                "id": x.id.to_string(), "input": x.id.input_id, "index": x.id.index,
                "href": format!("/runs/{r}/samples/{t}/{}/{}", enc(&x.id.input_id), x.id.index),
                "task": s.task_of(&x.id.input_id), "reward": x.shown_reward(),
                "decision": x.filter.map(|f| f.decision.as_str()),
                "reason": replay::audit::reason(x.filter.map(|f| f.decision)),
                "rank": x.filter.map(|f| f.rank + 1),
                "of": page.decided.get(x.id.input_id.as_str()).copied().unwrap_or(0),
                "judge": reward.map(|w| replay::audit::compact_distribution(&w.judge_distribution)),
                "tokens": x.generated.as_ref().map(|g| g.output_tokens),
                "finish": x.generated.as_ref().and_then(|g| g.finish).map(|f| f.to_string()),
                "reasoning": x.generated.as_ref().map(|g| g.has_reasoning),
            })
        })
        .collect();
    // Links keep the query and change one parameter.
    let link = |changes: &[(&str, String)]| -> String {
        let mut params: Vec<(String, String)> = serde_json::to_value(raw)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().filter(|s| !s.is_empty()).map(|s| (k, s.to_owned())))
            .collect();
        for (k, v) in changes {
            params.retain(|(pk, _)| pk != k);
            params.push(((*k).to_owned(), v.clone()));
        }
        let mut out = format!("/runs/{r}/iterations/{t}/samples?");
        for (i, (k, v)) in params.iter().enumerate() {
            let _ = write!(out, "{}{}={}", if i > 0 { "&" } else { "" }, k, enc(v));
        }
        out
    };
    let prev = (query.page > 1).then(|| link(&[("page", (query.page - 1).min(page.pages).to_string())]));
    let next = (query.page < page.pages).then(|| link(&[("page", (query.page + 1).to_string())]));
    let sort_link = |key: &str| link(&[("sort", key.to_owned()), ("page", "1".to_owned()), ("order", String::new())]);
    let tasks: Vec<&str> = {
        let mut v: Vec<&str> = s.tasks.values().map(String::as_str).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    Ok((
        "samples.html",
        json!({
            "title": format!("iteration {t}: samples"), "r": r, "t": t, "run_id": s.run_id,
            "rows": rows, "matching": page.matching, "total": it.samples.len(), "page": query.page,
            "pages": page.pages, "per": query.per, "prev": prev, "next": next,
            "first": (page.matching > 0).then(|| (query.page - 1) * query.per + 1),
            "last": (query.page - 1) * query.per + page.rows.len(),
            "q": raw, "decisions": super::query::DecisionFilter::NAMES, "tasks": tasks,
            "sort_sample": sort_link("sample"), "sort_reward": sort_link("reward"), "sort_rank": sort_link("rank"),
            "banners": banners(run, &snap), "live": it.finished_seq.is_none() && run_state_words(run, &snap).1,
        }),
    ))
}

/// `/runs/{r}/samples/{t}/{input}/{index}`: one sample with everything
/// behind it.
///
/// # Errors
/// No run `r`, or no such sample in its log.
pub fn sample_page(
    runs: &[std::sync::Arc<LiveRun>],
    r: usize,
    t: u32,
    input: &str,
    index: u32,
) -> Result<Page, PageError> {
    let run = run_or_404(runs, r)?;
    let id = SampleId { iteration: t, input_id: input.to_owned(), index };
    let snap = run.read();
    let s = &snap.state;
    let sample = s.sample(&id).ok_or_else(|| PageError::not_found(format!("the log has no records of sample {id}")))?;
    let explain = replay::audit::explain(s, &id).unwrap_or_else(|e| e.to_string());
    let reward = sample.reward();
    let distribution = reward.filter(|w| !w.judge_distribution.is_empty()).map(|w| {
        let svg = charts::score_distribution(&w.judge_distribution).ok();
        let bars: Vec<Value> =
            w.judge_distribution.iter().enumerate().map(|(i, p)| json!({"score": i, "p": p})).collect();
        json!({"svg": svg, "bars": bars})
    });
    let generated = sample.generated.as_ref().map(|g| {
        json!({
            "seq": g.seq, "seed": g.seed, "reasoning": g.text.as_ref().and_then(|x| x.reasoning.clone()),
            "response": g.text.as_ref().map(|x| x.response.clone()), "prompt_tokens": g.prompt_tokens,
            "output_tokens": g.output_tokens, "checkpoint": digest_hex(&g.checkpoint),
            "prompt_digest": digest_hex(&g.prompt_digest), "temperature": g.temperature, "top_p": g.top_p,
            "finish": g.finish.map(|f| f.to_string()), "engine": replay::audit::engine_label(&g.engine),
            "precision": format!("{:?}", g.precision), "has_reasoning": g.has_reasoning,
        })
    });
    let rewards: Vec<Value> = sample
        .rewards
        .iter()
        .map(|w| {
            json!({"seq": w.seq, "name": w.reward_name, "reward": w.reward,
            "engine": w.engine.as_ref().map(replay::audit::engine_label), "unseen": w.unseen_mass})
        })
        .collect();
    let filter = sample.filter.map(|f| {
        json!({"seq": f.seq, "decision": f.decision.as_str(), "reason": replay::audit::reason(Some(f.decision)),
            "reward": f.reward, "tau": f.tau, "rank": f.rank + 1})
    });
    // The records behind it, with their hashes, read from the log.
    let mut seqs: Vec<u64> = sample.generated.iter().map(|g| g.seq).collect();
    seqs.extend(sample.rewards.iter().map(|w| w.seq));
    seqs.extend(sample.filter.iter().map(|f| f.seq));
    if let Some(x) = s.retrievals.get(input) {
        seqs.push(x.seq);
    }
    seqs.sort_unstable();
    let records: Vec<Value> = seqs
        .iter()
        .map(|&seq| match run.record(seq) {
            Ok(env) => json!({"seq": seq, "kind": env.payload.kind().as_str(), "hash": digest_hex(&env.hash),
                "prev": digest_hex(&env.prev_hash), "event_id": digest_hex(&env.event_id), "time": env.time.to_rfc3339()}),
            Err(e) => json!({"seq": seq, "error": e}),
        })
        .collect();
    // The input, its profile and the expected output come from the data set.
    let mut notes = Vec::new();
    let (example, profile) = match run.data() {
        RunData::Loaded { dataset, path, changed } => {
            if *changed {
                notes.push(format!(
                    "the data set at {} has changed since the run (its digest differs from the logged one): \
                     the texts below may not be what the run saw",
                    path.display()
                ));
            }
            match dataset.find(input) {
                Some((split, ex)) => {
                    let retrieved = s.retrievals.get(input);
                    let items: Vec<Value> = match retrieved {
                        Some(rec) => rec
                            .items
                            .iter()
                            .enumerate()
                            .map(|(rank, (i, score))| match ex.profile.get(*i as usize) {
                                Some(item) => json!({"rank": rank + 1, "index": i, "score": score, "id": item.id,
                                    "fields": item.fields.iter().map(|(k, v)| json!({"k": k, "v": v})).collect::<Vec<_>>()}),
                                None => json!({"rank": rank + 1, "index": i, "score": score, "missing": true}),
                            })
                            .collect(),
                        None => Vec::new(),
                    };
                    (
                        Some(json!({"split": split.as_str(), "user": ex.user_id, "task": ex.task.name(),
                            "input": ex.input, "output": ex.output, "profile_size": ex.profile.len()})),
                        json!({"retriever": retrieved.map(|x| x.retriever.clone()), "k": retrieved.map(|x| x.k), "items": items}),
                    )
                }
                None => {
                    notes.push(format!("the data set at {} has no input {input:?}", path.display()));
                    (None, Value::Null)
                }
            }
        }
        RunData::Missing(why) => {
            notes.push(why.clone());
            (None, Value::Null)
        }
    };
    let retrieval_only = s.retrievals.get(input).map(|x| {
        x.items
            .iter()
            .enumerate()
            .map(|(rank, (i, score))| json!({"rank": rank + 1, "index": i, "score": score}))
            .collect::<Vec<_>>()
    });
    Ok((
        "sample.html",
        json!({
            "title": format!("sample {id}"), "r": r, "t": t, "id": id.to_string(), "input": input,
            "input_href": format!("/runs/{r}/iterations/{t}/samples?input={}", enc(input)),
            "task": s.task_of(input), "run_id": s.run_id, "explain": explain, "generated": generated,
            "rewards": rewards, "filter": filter, "distribution": distribution, "records": records,
            "example": example, "profile": profile, "retrieval_only": retrieval_only, "notes": notes,
            "banners": banners(run, &snap),
        }),
    ))
}

/// One side of a comparison: a run and one of its evaluations.
struct Side<'a> {
    label: String,
    report: std::sync::Arc<EvalReport>,
    _run: &'a LiveRun,
}

fn side<'a>(runs: &'a [std::sync::Arc<LiveRun>], spec: &str, split: Split) -> Result<Side<'a>, PageError> {
    let (r, t) = match spec.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (spec, None),
    };
    let r: usize = r.trim().parse().map_err(|_| {
        PageError::bad_request(format!("{spec:?}: a side is RUN or RUN:ITERATION (run numbers as on the front page)"))
    })?;
    let run = run_or_404(runs, r)?;
    let t: Option<u32> = t
        .map(|t| {
            t.trim().parse().map_err(|_| PageError::bad_request(format!("{spec:?}: iteration {t:?} is no number")))
        })
        .transpose()?;
    let snap = run.read();
    let e = snap
        .state
        .evaluations
        .iter()
        .filter(|e| e.split == split && t.is_none_or(|t| e.iteration == t))
        .max_by_key(|e| (e.iteration, e.seq))
        .ok_or_else(|| {
            PageError::not_found(format!(
                "run {r} has no {split} evaluation{}",
                t.map_or_else(String::new, |t| format!(" of iteration {t}"))
            ))
        })?;
    let report = run.report(&e.report_path).map_err(|m| PageError { status: 500, message: m })?;
    let label = format!("run {r} ({}) iteration {}", snap.state.run_id.clone().unwrap_or_default(), e.iteration);
    Ok(Side { label, report, _run: run })
}

/// The compare page's query string.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct CompareQuery {
    /// `RUN` or `RUN:ITERATION`.
    pub a: Option<String>,
    /// `RUN` or `RUN:ITERATION`.
    pub b: Option<String>,
    /// `validation` or `test` (default validation).
    pub split: Option<String>,
}

/// `/compare?a=R[:T]&b=R[:T]&split=…`: two evaluations side by side, per
/// task and metric the means, Δ = b − a and the paired t-test's p.
///
/// # Errors
/// A side that is not `RUN[:ITERATION]`, a run or evaluation that is not
/// there, a split that is neither validation nor test.
pub fn compare_page(runs: &[std::sync::Arc<LiveRun>], q: &CompareQuery) -> Result<Page, PageError> {
    let choices: Vec<Value> = runs
        .iter()
        .flat_map(|run| {
            let snap = run.read();
            let mut seen = Vec::new();
            for e in &snap.state.evaluations {
                let v = format!("{}:{}", run.index, e.iteration);
                if !seen.contains(&v) {
                    seen.push(v);
                }
            }
            seen.into_iter().map(|v| json!({"value": v})).collect::<Vec<_>>()
        })
        .collect();
    let (a, b) = (q.a.as_deref().filter(|s| !s.is_empty()), q.b.as_deref().filter(|s| !s.is_empty()));
    let (Some(a), Some(b)) = (a, b) else {
        let banners: Vec<Value> = match (a, b) {
            (Some(_), None) => vec![json!({"level": "warn", "text": "choose side b as well (parameter `b`)"})],
            (None, Some(_)) => vec![json!({"level": "warn", "text": "choose side a as well (parameter `a`)"})],
            _ => Vec::new(),
        };
        return Ok((
            "compare.html",
            json!({"title": "compare", "choices": choices, "q": q, "rows": null, "banners": banners}),
        ));
    };
    let split = match q.split.as_deref().unwrap_or("validation") {
        "validation" | "val" => Split::Validation,
        "test" => Split::Test,
        other => {
            return Err(PageError::bad_request(format!("parameter `split`: {other:?} is neither validation nor test")))
        }
    };
    let (sa, sb) = (side(runs, a, split)?, side(runs, b, split)?);
    let metrics = crate::eval::table::metrics_of([&*sa.report, &*sb.report]);
    let mut tasks: Vec<String> = sa.report.per_task.keys().chain(sb.report.per_task.keys()).cloned().collect();
    tasks.sort();
    tasks.dedup();
    let mut rows = Vec::new();
    for task in tasks.iter().map(|t| Some(t.as_str())).chain([None]) {
        let parsed = task.and_then(|t| t.parse::<crate::data::Task>().ok());
        let mean = |rep: &EvalReport, m: &Metric| match task {
            Some(t) => rep.per_task.get(t).and_then(|x| x.means.get(m).copied()),
            None => rep.macro_average.get(m).copied(),
        };
        let cells: Vec<Value> = metrics
            .iter()
            .map(|m| {
                let (ma, mb) = (mean(&sa.report, m), mean(&sb.report, m));
                let test = paired_on(&sa.report, &sb.report, *m, parsed);
                json!({
                    "metric": m.name(), "a": ma, "b": mb,
                    "delta": ma.zip(mb).map(|(x, y)| y - x),
                    "p": test.as_ref().ok().map(|x| x.p), "n": test.as_ref().ok().map(|x| x.n),
                    "significant": test.as_ref().is_ok_and(|x| x.significant()),
                    "untested": test.err().map(|e| format!("{e:#}")),
                })
            })
            .collect();
        rows.push(json!({"task": task.unwrap_or("macro average"), "cells": cells}));
    }
    Ok((
        "compare.html",
        json!({"title": "compare", "choices": choices, "q": q, "a": sa.label, "b": sb.label,
            "split": split.as_str(), "rows": rows}),
    ))
}
