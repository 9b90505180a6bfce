//! `restpg replay` (verifying D_t), `restpg audit` and `restpg export`: the
//! log of a finished or running run read back through [`replay`].
//!
//! `restpg replay DIR --iteration T` rebuilds D_t from the log alone and
//! checks it against its seal; a mismatch is an error, so the exit status is
//! non-zero. Re-running the M-step (`--retrain`) and redrawing samples
//! (`--resample`) need the tch model and are wired by the pipeline on top of
//! [`fold_iteration`], [`replay::RunState::retrain_spec`] and
//! [`replay::RunState::resample_spec`]: add their flags to [`ReplayArgs`]
//! and their handling after the verification in [`replay`] only together
//! with code that does the work.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use events::{digest_hex, SampleId};
use replay::audit::{self, AuditQuery, Selection};
use replay::{Completion, PromptBuilder, Replay, RunState, VerifiedIteration};

use crate::pipeline::reproduce::{PromptRebuilder, ResampleEngine};

/// Arguments of `restpg replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The E-step iteration whose D_t to rebuild and verify.
    #[arg(long)]
    pub iteration: u32,
    /// Also re-run the iteration's M-step from the logged starting
    /// checkpoint, seed and D_t, and compare the new checkpoint's hash with
    /// the logged one (on mismatch: the step where the loss curves part).
    #[arg(long)]
    pub retrain: bool,
    /// Also regenerate N logged samples of the iteration from their seeds
    /// and checkpoint, and confirm the text is identical (samples drawn by
    /// an engine that promises no identical text are reported as matching
    /// or differing instead).
    #[arg(long, value_name = "N")]
    pub resample: Option<usize>,
    /// With `--resample`: redraw each sample on the engine that drew it
    /// (`logged`: a served sample through the run's `[engine.policy]`,
    /// launched again for its checkpoint) or on the embedded engine (`tch`).
    #[arg(long, value_enum, default_value_t = ResampleEngine::Logged)]
    pub engine: ResampleEngine,
}

/// Output format of `restpg audit`.
#[derive(Copy, Clone, Debug, Default, ValueEnum)]
pub enum AuditFormat {
    /// A table, then a summary per task.
    #[default]
    Table,
    /// One JSON object per sample.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// Arguments of `restpg audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The E-step iteration to audit.
    #[arg(long, required_unless_present = "sample")]
    pub iteration: Option<u32>,
    /// Only this input's samples (the summary covers the same input).
    #[arg(long, value_name = "ID")]
    pub input: Option<String>,
    /// Only kept samples (D_t).
    #[arg(long, conflicts_with = "rejected")]
    pub kept: bool,
    /// Only samples that were not kept.
    #[arg(long)]
    pub rejected: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: AuditFormat,
    /// Explain one sample's decision in one line, e.g. `t1/email-u03/#5`.
    #[arg(long, value_name = "ID", conflicts_with_all = ["iteration", "input", "kept", "rejected"])]
    pub sample: Option<SampleId>,
}

/// Arguments of `restpg export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The E-step iteration whose D_t to export.
    #[arg(long)]
    pub iteration: u32,
    /// Write here (mode 0600) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Leave the `prompt` field out instead of rebuilding each prompt from
    /// the run's data set, configuration and tokenizer (for a log whose data
    /// set is gone; the lines are then not TRL's prompt-completion shape).
    #[arg(long)]
    pub no_prompt: bool,
}

/// What replay needs from the root package's templates: how reasoning and
/// response join into the completion trained on, and, optionally, how to
/// rebuild an input's exact prompt.
pub struct Hooks<'a> {
    /// Joins a logged sample's reasoning and response.
    pub completion: Completion,
    /// Rebuilds the prompt of an input id; `None` lets [`export`] rebuild
    /// the run's own prompts ([`PromptRebuilder`]) unless `--no-prompt`.
    pub prompt: Option<PromptBuilder<'a>>,
}

impl Hooks<'static> {
    /// The built-in templates' completion rule (as
    /// [`Templates::reasoning_target`](crate::prompt::Templates::reasoning_target)
    /// writes it), and the run's own prompts.
    pub fn builtin() -> Self {
        Hooks { completion: builtin_completion(), prompt: None }
    }
}

/// `reasoning.trim() ⊕ "\n\n" ⊕ RESPONSE_SEPARATOR ⊕ "\n" ⊕ response.trim()`.
fn builtin_completion() -> Completion {
    Completion::new(format!("\n\n{}\n", crate::prompt::RESPONSE_SEPARATOR)).trimmed()
}

/// Folds the log of `run_dir`, keeping iteration `t`'s samples (with their
/// texts when `keep_text`).
///
/// # Errors
/// The log cannot be opened, or a record cannot be read or breaks the chain
/// (the error names its sequence number).
pub fn fold_iteration(run_dir: &Path, t: u32, keep_text: bool) -> anyhow::Result<RunState> {
    let log_dir = store::RunDir::new(run_dir).log();
    let reader = store::LogReader::open(&log_dir, None)
        .with_context(|| format!("cannot open the event log of {}", run_dir.display()))?;
    let mut how = Replay::new().only_iteration(t);
    if !keep_text {
        how = how.without_text();
    }
    let state = how.fold_log(&reader).with_context(|| format!("cannot replay the log of {}", run_dir.display()))?;
    Ok(state)
}

/// Runs `restpg replay`: verifies D_t and prints its count and digest.
///
/// # Errors
/// The log cannot be read, or D_t does not verify (every violation listed,
/// each naming its records by sequence number).
pub fn replay(args: &ReplayArgs) -> anyhow::Result<VerifiedIteration> {
    let state = fold_iteration(&args.run_dir, args.iteration, args.retrain || args.resample.is_some())?;
    let verified = state.verify_iteration(args.iteration)?;
    println!("{}", verified_line(&verified));
    if args.retrain || args.resample.is_some() {
        let config_toml =
            state.run.as_ref().map(|r| r.config_toml.clone()).context("the log has no RunStarted record")?;
        if let Some(n) = args.resample {
            let spec = state.resample_spec(args.iteration, n)?;
            let report = crate::pipeline::reproduce::resample(&args.run_dir, &config_toml, &spec, args.engine)?;
            for line in report.lines(args.iteration) {
                println!("{line}");
            }
        }
        if args.retrain {
            let spec = state.retrain_spec(args.iteration, &builtin_completion())?;
            let out = crate::pipeline::reproduce::retrain(&args.run_dir, &spec)?;
            if out.new_hash != out.logged_hash {
                let parted = out.parted_at.map_or_else(
                    || "the loss curves agree at every logged step".to_owned(),
                    |s| format!("the loss curves part at step {s}"),
                );
                anyhow::bail!(
                    "retrained checkpoint {} differs from the logged {}; {parted}",
                    digest_hex(&out.new_hash),
                    digest_hex(&out.logged_hash)
                );
            }
            println!(
                "retrained iteration {}: checkpoint {} equals the logged one",
                args.iteration,
                digest_hex(&out.new_hash)
            );
        }
    }
    Ok(verified)
}

/// The one-line report of a verified D_t.
pub fn verified_line(v: &VerifiedIteration) -> String {
    format!(
        "D_{t} verified: {count} samples kept ({decided} decided, {inputs} inputs with kept samples), digest {digest} \
         equals the seal at seq {seq}; τ {tau}, cap {cap}",
        t = v.iteration,
        count = v.count,
        decided = v.decided,
        inputs = v.inputs_kept,
        digest = digest_hex(&v.digest),
        seq = v.seal_seq,
        tau = v.tau.map_or_else(|| "unknown".to_owned(), |t| format!("{t:.2}")),
        cap = v.cap,
    )
}

/// Runs `restpg audit`.
///
/// # Errors
/// The log cannot be read, the iteration, input or sample is not in it, or
/// writing fails.
pub fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if let Some(sample) = &args.sample {
        let state = fold_iteration(&args.run_dir, sample.iteration, false)?;
        writeln!(out, "{}", audit::explain(&state, sample)?)?;
        out.flush()?;
        return Ok(());
    }
    let t = args.iteration.context("--iteration is required without --sample")?;
    let state = fold_iteration(&args.run_dir, t, false)?;
    let selection = match (args.kept, args.rejected) {
        (true, _) => Selection::Kept,
        (_, true) => Selection::Rejected,
        _ => Selection::All,
    };
    let query = AuditQuery { iteration: t, input: args.input.clone(), selection };
    let rows = audit::audit_rows(&state, &query)?;
    let format = match args.format {
        AuditFormat::Table => audit::Format::Table,
        AuditFormat::Jsonl => audit::Format::Jsonl,
        AuditFormat::Csv => audit::Format::Csv,
    };
    audit::write_rows(&rows, format, &mut out)?;
    if let AuditFormat::Table = args.format {
        writeln!(out)?;
        audit::write_summary(&audit::summarize(&state, t, args.input.as_deref())?, &mut out)?;
        if let Err(e) = state.verify_iteration(t) {
            writeln!(out, "\nwarning: {e}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The run's own prompt rebuilder for D_t: its logged configuration and the
/// tokenizer of the checkpoint that sampled D_t.
fn run_prompts(run_dir: &Path, state: &RunState, t: u32) -> anyhow::Result<PromptRebuilder> {
    let config_toml = state.run.as_ref().map(|r| r.config_toml.as_str()).context("the log has no RunStarted record")?;
    let sampled_by = state
        .iteration(t)?
        .samples
        .values()
        .find_map(|s| s.generated.as_ref().map(|g| g.checkpoint))
        .with_context(|| format!("iteration {t} has no generated samples"))?;
    PromptRebuilder::new(run_dir, config_toml, &sampled_by).with_context(|| {
        format!(
            "cannot rebuild the prompts of D_{t} from the run's data set and checkpoint \
             (pass --no-prompt to export without the prompt field)"
        )
    })
}

/// Runs `restpg export` with the given hooks; returns the number of lines.
/// Each line carries the prompt the policy saw, rebuilt and checked against
/// the logged `prompt_digest` (a mismatch is
/// [`ExportError::PromptDiffers`](replay::ExportError::PromptDiffers)),
/// unless `--no-prompt`.
///
/// # Errors
/// The log cannot be read, D_t does not verify, a prompt cannot be rebuilt
/// exactly, or writing fails.
pub fn export(args: ExportArgs, hooks: &Hooks<'_>) -> anyhow::Result<usize> {
    let state = fold_iteration(&args.run_dir, args.iteration, true)?;
    let rebuilder;
    let rebuild;
    let prompt: Option<PromptBuilder<'_>> = match hooks.prompt {
        Some(p) => Some(p),
        None if args.no_prompt => None,
        None => {
            rebuilder = run_prompts(&args.run_dir, &state, args.iteration)?;
            rebuild = |input_id: &str| match rebuilder.prompt(input_id) {
                Ok(text) => Some(text),
                Err(e) => {
                    tracing::error!(input_id, error = %e, "cannot rebuild the prompt");
                    None
                }
            };
            Some(&rebuild)
        }
    };
    let n = match &args.out {
        Some(path) => {
            let file = store::create_private_file(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = BufWriter::new(file);
            let n = state.export_jsonl(args.iteration, &hooks.completion, prompt, &mut w)?;
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {n} samples of D_{} to {}", args.iteration, path.display());
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            state.export_jsonl(args.iteration, &hooks.completion, prompt, &mut w)?
        }
    };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_completion_is_the_reasoning_templates_target() {
        let templates = crate::prompt::Templates::default();
        for (r, y) in [("- terse\n- formal", "See you Monday."), ("  padded \n", "\n body \n"), ("", "y")] {
            assert_eq!(builtin_completion().text(Some(r), y), templates.reasoning_target(r, y), "{r:?} {y:?}");
        }
    }
}
