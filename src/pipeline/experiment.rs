//! `restpg experiment`: the paper's comparison (Table 1 of Salemi et al.
//! 2025) as one command. The systems (by default SFT, SFT with reasoning,
//! ReST-EM and REST-PG) run from one base configuration with the same seed
//! and data, each in its own run directory `<out>/<method>` with its own
//! event log, so an interrupted experiment continues with `restpg experiment`
//! again (finished runs are read back from their logs, unfinished ones
//! resumed). Each system's final checkpoint is evaluated on the test split by
//! its own run; the experiment reads those evaluations from the logs and
//! writes Table 1 for every metric the reports hold
//! ([`crate::eval::table1`]) to `<out>/table1.{md,json}`.
//!
//! The experiment file (TOML, every key checked):
//!
//! ```toml
//! base = "demo.toml"          # run configuration, relative to this file
//! systems = ["sft", "sft-reasoning", "rest-em", "rest-pg"]   # table order
//! seed = 0
//! validation = false         # optional: skip the validation evaluations
//! [data]
//! source = "demo"             # build the demo data set into <out>/data
//! train_users = 10            # (demo) training users per task
//! # source = "dir", dir = "data/longlamp"   # a built data set instead
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use events::{Method, Split};
use serde::{Deserialize, Serialize};

use super::run::{run, RunOptions};
use crate::config::RunConfig;
use crate::eval::table1::{table1, SystemRow, Table1};
use crate::eval::EvalReport;

/// Where the experiment's data comes from.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ExperimentData {
    /// The demo data set (as `restpg demo` builds it), built once into
    /// `<out>/data`.
    Demo {
        /// Training users per task (`None`: every training user).
        #[serde(default)]
        train_users: Option<usize>,
        /// Users per task (`None`: every eligible user).
        #[serde(default)]
        users: Option<usize>,
    },
    /// A data set already built (`restpg data build`), relative to the
    /// experiment file.
    Dir {
        /// Its directory.
        dir: PathBuf,
    },
}

/// An experiment file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The run configuration every system starts from (its `method`, `seed`
    /// and `data` are replaced), relative to the experiment file.
    pub base: PathBuf,
    /// The systems, in Table 1's row order.
    #[serde(default = "paper_systems", with = "methods")]
    pub systems: Vec<Method>,
    /// The seed shared by every system.
    #[serde(default)]
    pub seed: u64,
    /// Evaluate every checkpoint on validation too (`None`: as the base
    /// configuration says). Table 1 needs only each system's final test
    /// evaluation, which every system gets.
    #[serde(default)]
    pub validation: Option<bool>,
    /// The data.
    pub data: ExperimentData,
}

fn paper_systems() -> Vec<Method> {
    vec![Method::Sft, Method::SftReasoning, Method::RestEm, Method::RestPg]
}

mod methods {
    use events::Method;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[Method], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(|m| m.as_str()).collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Method>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names.iter().map(|n| n.parse::<Method>().map_err(serde::de::Error::custom)).collect()
    }
}

impl ExperimentConfig {
    /// Reads and checks an experiment file.
    ///
    /// # Errors
    /// An unreadable file, a TOML error (with its line), an unknown key, no
    /// systems or a system listed twice, naming the file and key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: Self = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if cfg.systems.is_empty() {
            bail!("{}: `systems` is empty", path.display());
        }
        for (i, m) in cfg.systems.iter().enumerate() {
            if cfg.systems[..i].contains(m) {
                bail!("{}: `systems` lists {m} twice", path.display());
            }
        }
        Ok(cfg)
    }
}

/// One system's outcome.
#[derive(Clone, Debug)]
pub struct SystemOutcome {
    /// The method.
    pub method: Method,
    /// Its run directory.
    pub run_dir: PathBuf,
    /// Whether it ran (or resumed) in this invocation, rather than being
    /// read back finished.
    pub ran: bool,
    /// The run's wall time as its log records it, in seconds.
    pub wall_s: f64,
    /// Its final checkpoint's test evaluation.
    pub report: EvalReport,
}

/// What [`run_experiment`] produced.
#[derive(Clone, Debug)]
pub struct ExperimentSummary {
    /// The experiment directory.
    pub out: PathBuf,
    /// Each system, in row order.
    pub systems: Vec<SystemOutcome>,
    /// Table 1 per metric.
    pub tables: Vec<Table1>,
}

/// The label of a system's row: the method, and for self-training methods
/// the iteration of the evaluated checkpoint.
fn row_label(method: Method, iteration: u32) -> String {
    if method.self_trains() {
        format!("{} (t={iteration})", method.as_str())
    } else {
        method.as_str().to_string()
    }
}

/// The finished run's wall time and the test evaluation of its last
/// checkpoint, from its log; `None` when the run has not finished.
fn finished_test_eval(run_dir: &Path) -> anyhow::Result<Option<(f64, u32, EvalReport)>> {
    let reader = store::LogReader::open(store::RunDir::new(run_dir).log(), None)
        .with_context(|| format!("opening the log of {}", run_dir.display()))?;
    let state = replay::Replay::new().without_text().fold_log(&reader)?;
    let Some(replay::RunEnd::Finished { wall_ms, .. }) = state.ends.last() else { return Ok(None) };
    let e =
        state.evaluations.iter().filter(|e| e.split == Split::Test).max_by_key(|e| (e.iteration, e.seq)).with_context(
            || format!("{} finished without a test evaluation (is `eval.test` off?)", run_dir.display()),
        )?;
    let report = EvalReport::load(&store::RunDir::new(run_dir).resolve(&e.report_path))?;
    Ok(Some((*wall_ms as f64 / 1000.0, e.iteration, report)))
}

/// Runs (or continues) the experiment in `path` into `out` and writes
/// `<out>/table1.md` and `<out>/table1.json`.
///
/// # Errors
/// A bad experiment file or base configuration (before any run starts), a
/// failed run (its directory stays, and the next invocation resumes it), or
/// systems whose test evaluations cover different examples.
pub fn run_experiment(path: &Path, out: &Path, progress: bool) -> anyhow::Result<ExperimentSummary> {
    let cfg = ExperimentConfig::load(path)?;
    let here = path.parent().unwrap_or(Path::new("."));
    let (base, _) = RunConfig::load(&here.join(&cfg.base))
        .with_context(|| format!("{}: the base configuration `base`", path.display()))?;
    let data_dir = match &cfg.data {
        ExperimentData::Demo { .. } => out.join("data"),
        ExperimentData::Dir { dir } => here.join(dir),
    };
    let mut configs = Vec::new();
    for &method in &cfg.systems {
        let mut c = base.clone();
        c.method = method;
        c.seed = cfg.seed;
        c.data = data_dir.clone();
        // Table 1 is each system's final checkpoint on test (the paper's §4);
        // the intermediate checkpoints are not evaluated on test.
        c.eval.test = true;
        c.eval.test_every_iteration = false;
        if let Some(v) = cfg.validation {
            c.eval.validation = v;
        }
        configs.push(c);
    }
    store::create_private_dir(out).with_context(|| format!("creating {}", out.display()))?;
    let saved = out.join("experiment.toml");
    let text = toml::to_string(&cfg)?;
    match std::fs::read_to_string(&saved) {
        Ok(old) if old != text => {
            bail!("{} holds a different experiment ({}): use another output directory", out.display(), saved.display())
        }
        Ok(_) => {}
        Err(_) => store::write_private_file(&saved, text.as_bytes())
            .with_context(|| format!("writing {}", saved.display()))?,
    }
    if let ExperimentData::Demo { train_users, users } = &cfg.data {
        if !data_dir.join(crate::data::MANIFEST_FILE).exists() {
            let _ = std::fs::remove_dir_all(&data_dir);
            let opts = crate::data::DemoOptions::for_demo_run(*users, *train_users, cfg.seed);
            let stats = crate::data::build_demo_dataset(&data_dir, &opts)?;
            eprintln!("experiment data set: {}", data_dir.display());
            eprint!("{stats}");
        }
    }

    // Every system's configuration is checked (with the data in place)
    // before the first one runs.
    for (method, c) in cfg.systems.iter().zip(&configs) {
        c.validate().with_context(|| format!("{}: system {method}", path.display()))?;
    }
    let mut systems = Vec::new();
    for (method, config) in cfg.systems.iter().zip(configs) {
        let run_dir = out.join(method.as_str());
        let logged = store::RunDir::new(&run_dir).log().exists();
        let mut ran = false;
        let done = if logged { finished_test_eval(&run_dir)? } else { None };
        let (wall_s, iteration, report) = match done {
            Some(d) => {
                eprintln!("experiment: {method} already finished in {}", run_dir.display());
                d
            }
            None => {
                eprintln!(
                    "experiment: {} {method} in {}",
                    if logged { "resuming" } else { "running" },
                    run_dir.display()
                );
                ran = true;
                let opts = RunOptions { run_dir: run_dir.clone(), resume: logged, progress, fault: None };
                run(if logged { None } else { Some(config) }, &opts)
                    .with_context(|| format!("experiment system {method} ({})", run_dir.display()))?;
                finished_test_eval(&run_dir)?
                    .with_context(|| format!("{} returned without finishing its log", run_dir.display()))?
            }
        };
        let report = EvalReport { system: row_label(*method, iteration), ..report };
        systems.push(SystemOutcome { method: *method, run_dir, ran, wall_s, report });
    }

    let rows: Vec<SystemRow> =
        systems.iter().map(|s| SystemRow { system: s.report.system.clone(), report: s.report.clone() }).collect();
    let metrics = crate::eval::table::metrics_of(rows.iter().map(|r| &r.report));
    let tables: Vec<Table1> = metrics.iter().map(|m| table1(&rows, *m)).collect::<Result<_, _>>()?;
    let summary = ExperimentSummary { out: out.to_path_buf(), systems, tables };
    store::write_private_file(out.join("table1.md"), summary.to_markdown().as_bytes())
        .with_context(|| format!("writing {}/table1.md", out.display()))?;
    store::write_private_file(out.join("table1.json"), serde_json::to_string_pretty(&summary.tables)?.as_bytes())
        .with_context(|| format!("writing {}/table1.json", out.display()))?;
    Ok(summary)
}

impl ExperimentSummary {
    /// Every metric's Table 1, then each system's run directory, format rate
    /// and wall time.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# Table 1\n\n");
        for t in &self.tables {
            out.push_str(&t.to_markdown());
            out.push('\n');
        }
        out.push_str("| system | run directory | well formed | run wall time |\n|---|---|---:|---:|\n");
        for s in &self.systems {
            let format = match &s.report.format {
                Some(f) => f.well_formed_cell(),
                None => "–".into(),
            };
            out.push_str(&format!(
                "| {} | {} | {format} | {:.1} min |\n",
                s.report.system,
                s.run_dir.display(),
                s.wall_s / 60.0
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<ExperimentConfig> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.toml");
        std::fs::write(&p, text).unwrap();
        ExperimentConfig::load(&p)
    }

    #[test]
    fn the_shipped_experiments_and_their_base_configurations_parse() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for name in ["experiment-cpu.toml", "experiment-gpu.toml"] {
            let e = ExperimentConfig::load(&configs.join(name)).unwrap();
            assert_eq!(e.systems, paper_systems(), "{name}");
            let base = configs.join(&e.base);
            let text = std::fs::read_to_string(&base).unwrap();
            let run = crate::config::RunConfig::from_toml(&text, &base).unwrap_or_else(|e| panic!("{name}: {e}"));
            if name.contains("gpu") {
                assert_eq!(run.model.device, crate::config::DeviceChoice::Cuda);
            }
        }
    }

    #[test]
    fn experiment_files_are_checked() {
        let c = parse("base = \"demo.toml\"\n[data]\nsource = \"demo\"\ntrain_users = 3\n").unwrap();
        assert_eq!(c.systems, paper_systems());
        assert_eq!(c.data, ExperimentData::Demo { train_users: Some(3), users: None });
        let c = parse("base = \"b.toml\"\nsystems = [\"rest-pg\", \"sft\"]\n[data]\nsource = \"dir\"\ndir = \"d\"\n")
            .unwrap();
        assert_eq!(c.systems, [Method::RestPg, Method::Sft]);
        for (bad, says) in [
            ("base = \"b\"\nsystems = [\"sft\", \"sft\"]\n[data]\nsource = \"demo\"\n", "lists sft twice"),
            ("base = \"b\"\nsystems = [\"dpo\"]\n[data]\nsource = \"demo\"\n", "dpo"),
            ("base = \"b\"\nsystems = []\n[data]\nsource = \"demo\"\n", "`systems` is empty"),
            ("base = \"b\"\n[data]\nsource = \"demo\"\ndir = \"x\"\n", "unknown field `dir`"),
            ("base = \"b\"\n[data]\nsource = \"hub\"\n", "hub"),
            ("base = \"b\"\nseeds = 1\n[data]\nsource = \"demo\"\n", "unknown field `seeds`"),
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(says) && e.contains("e.toml"), "{bad:?}: {e}");
        }
    }
}
