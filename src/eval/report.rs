//! Writing an [`EvalReport`] to disk and flattening its scores for the log,
//! and the run's reward check report (`reports/reward-check.{json,md}`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::EvalReport;
use crate::reward::check::RewardCheck;

/// File stem of the reward check report in a run's `reports/`.
pub const REWARD_CHECK_STEM: &str = "reward-check";

/// Writes `check` as `<stem>.json` and `<stem>.md` in `dir` (created if
/// missing; owner-only files; the Markdown carries the warning when the
/// reward is weak) and returns the Markdown's path.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_reward_check(check: &RewardCheck, dir: &Path, stem: &str) -> Result<PathBuf> {
    store::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let md = dir.join(format!("{stem}.md"));
    for (path, text) in
        [(dir.join(format!("{stem}.json")), serde_json::to_string_pretty(check)?), (md.clone(), check.to_markdown())]
    {
        store::write_private_file(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(md)
}

impl EvalReport {
    /// Reads a report written by [`EvalReport::write`].
    ///
    /// # Errors
    /// A file that cannot be read or parsed, naming its path.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading report {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing report {}", path.display()))
    }

    /// Writes the report as `<stem>.json` and `<stem>.md` in `dir` (created
    /// if missing; owner-only files) and returns the JSON's path.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<PathBuf> {
        store::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = dir.join(format!("{stem}.json"));
        for (path, text) in
            [(json.clone(), serde_json::to_string_pretty(self)?), (dir.join(format!("{stem}.md")), self.to_markdown())]
        {
            store::write_private_file(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(json)
    }

    /// The scores as (`task/metric` or `macro/metric`, value): the macro
    /// averages first, then each task's means.
    pub fn flat_scores(&self) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> =
            self.macro_average.iter().map(|(m, v)| (format!("macro/{}", m.name()), *v)).collect();
        for (task, scores) in &self.per_task {
            for (m, v) in &scores.means {
                out.push((format!("{task}/{}", m.name()), *v));
            }
        }
        out
    }
}
