//! `restpg score`: LongLaMP's lexical evaluation as a drop-in command.
//!
//! Reads predictions and references as JSONL lines `{"id", "output"}` (the
//! layout LongLaMP's evaluation reads), pairs them by id — every id must
//! appear exactly once on each side, or the command fails naming the
//! offending ids — and writes one JSONL line per example
//! (`{"id", "rouge-1": …, …}`, in the references' order) plus the means
//! (printed as JSON on stdout). The metrics are exact ports of `rouge_score`
//! and NLTK METEOR (see [`crate::reward`]). Per-example means are plain
//! arithmetic means; Hugging Face `evaluate`'s ROUGE default aggregates with a
//! bootstrap (the median of resampled means), which only approximates this.

use crate::reward::{Metric, Scorers};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `restpg score`.
#[derive(Args, Debug, Clone)]
pub struct ScoreArgs {
    /// Comma-separated metrics: rouge-1, rouge-2, rouge-l, meteor, similarity.
    #[arg(long, default_value = "rouge-1,rouge-l,meteor")]
    pub metrics: String,
    /// Predictions, JSONL lines {"id", "output"}.
    #[arg(long)]
    pub predictions: PathBuf,
    /// References, JSONL lines {"id", "output"}.
    #[arg(long)]
    pub references: PathBuf,
    /// Per-example scores (JSONL); stdout gets only the means when given.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Parses the `--metrics` list (no judge: this command has no model).
///
/// # Errors
/// An unknown or duplicate name, or `judge`.
pub fn parse_metrics(list: &str) -> Result<Vec<Metric>> {
    let mut out = Vec::new();
    for tok in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let m: Metric = tok.parse()?;
        if m == Metric::Judge {
            bail!("metric \"judge\" needs a model: use `restpg eval`");
        }
        if out.contains(&m) {
            bail!("metric {tok:?} given twice");
        }
        out.push(m);
    }
    if out.is_empty() {
        bail!("no metrics given");
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct Line {
    id: serde_json::Value,
    output: String,
}

/// Reads `{"id", "output"}` lines (ids may be strings or numbers), failing
/// on malformed lines and duplicate ids with the file and line number.
///
/// # Errors
/// I/O, JSON or duplicate-id errors.
pub fn read_outputs(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: Line = serde_json::from_str(line).with_context(|| {
            format!("{} line {}: expected a JSON object {{\"id\", \"output\"}}", path.display(), i + 1)
        })?;
        let id = match rec.id {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => bail!("{} line {}: id must be a string or number, got {other}", path.display(), i + 1),
        };
        if let Some(first) = seen.insert(id.clone(), i + 1) {
            bail!("{}: duplicate id {id:?} on lines {first} and {}", path.display(), i + 1);
        }
        out.push((id, rec.output));
    }
    Ok(out)
}

/// One pair's id and its score per metric.
pub type PairScores = (String, BTreeMap<Metric, f64>);

/// Scores every reference's prediction; returns per-example rows (in the
/// references' order) and the means.
///
/// # Errors
/// Ids present on one side only (up to ten of each named); a metric whose
/// scorer `scorers` lacks.
pub fn score_pairs(
    predictions: &[(String, String)],
    references: &[(String, String)],
    metrics: &[Metric],
    scorers: &Scorers,
) -> Result<(Vec<PairScores>, BTreeMap<Metric, f64>)> {
    let preds: HashMap<&str, &str> = predictions.iter().map(|(i, o)| (i.as_str(), o.as_str())).collect();
    let refs: HashMap<&str, &str> = references.iter().map(|(i, o)| (i.as_str(), o.as_str())).collect();
    let missing: Vec<&str> =
        references.iter().map(|(i, _)| i.as_str()).filter(|i| !preds.contains_key(i)).take(10).collect();
    let extra: Vec<&str> =
        predictions.iter().map(|(i, _)| i.as_str()).filter(|i| !refs.contains_key(i)).take(10).collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!("predictions and references must have the same ids: no prediction for {missing:?}; no reference for {extra:?}");
    }
    let pairs: Vec<(&str, &str)> = references.iter().map(|(id, r)| (r.as_str(), preds[id.as_str()])).collect();
    let mut columns: BTreeMap<Metric, Vec<f64>> = BTreeMap::new();
    for m in metrics {
        columns.insert(*m, scorers.values(*m, &pairs)?);
    }
    let mut rows = Vec::with_capacity(references.len());
    let mut sums: BTreeMap<Metric, f64> = BTreeMap::new();
    for (k, (id, _)) in references.iter().enumerate() {
        let mut scores = BTreeMap::new();
        for m in metrics {
            let v = columns[m][k];
            *sums.entry(*m).or_insert(0.0) += v;
            scores.insert(*m, v);
        }
        rows.push((id.clone(), scores));
    }
    let n = references.len().max(1) as f64;
    let means = sums.into_iter().map(|(m, s)| (m, s / n)).collect();
    Ok((rows, means))
}

/// Runs `restpg score`.
///
/// # Errors
/// Bad metrics, unreadable or mismatched files, missing METEOR data or
/// similarity encoder.
pub fn run(args: ScoreArgs) -> Result<()> {
    let metrics = parse_metrics(&args.metrics)?;
    let preds = read_outputs(&args.predictions)?;
    let refs = read_outputs(&args.references)?;
    let scorers = Scorers::for_metrics(&metrics)?;
    let (rows, means) = score_pairs(&preds, &refs, &metrics, &scorers)?;
    let row_json = |id: &str, s: &BTreeMap<Metric, f64>| {
        let mut o = serde_json::Map::new();
        o.insert("id".into(), serde_json::Value::String(id.to_string()));
        for (m, v) in s {
            o.insert(m.name().into(), serde_json::json!(v));
        }
        serde_json::Value::Object(o)
    };
    let mut summary = serde_json::Map::new();
    summary.insert("n".into(), serde_json::json!(rows.len()));
    for (m, v) in &means {
        summary.insert(m.name().into(), serde_json::json!(v));
    }
    match &args.out {
        Some(p) => {
            let f = store::create_private_file(p).with_context(|| format!("creating {}", p.display()))?;
            let mut w = std::io::BufWriter::new(f);
            for (id, s) in &rows {
                writeln!(w, "{}", row_json(id, s)).with_context(|| format!("writing {}", p.display()))?;
            }
            w.flush().with_context(|| format!("writing {}", p.display()))?;
        }
        None => {
            for (id, s) in &rows {
                println!("{}", row_json(id, s));
            }
        }
    }
    println!("{}", serde_json::Value::Object(summary));
    Ok(())
}
