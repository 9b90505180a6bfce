//! `restpg write`: use a trained policy for what it is for. Given a run, a
//! task, one user's profile and a request, it retrieves from that profile
//! with the run's retriever and k, renders the run's method template (the
//! reasoning template for REST-PG, SFT with reasoning and ReST-EM with
//! reasoning; the plain one otherwise), fits it to the run's input budget,
//! generates with the run's evaluation decoding, and prints the reasoning
//! and the response separately.
//!
//! The profile file is a JSON array of items (or an object with a `profile`
//! array), each carrying the task's profile fields (`subject`/`text` for
//! e-mails, `summary`/`content` for topic writing, …): flat as LongLaMP
//! writes them, or under `fields` as a restpg data set file holds them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::config::RunConfig;
use crate::data::{Example, Task};
use crate::lm::{GenerationRequest, LanguageModel};

/// Arguments of `restpg write`.
#[derive(Args, Debug, Clone)]
pub struct WriteArgs {
    /// The run directory whose configuration (method, retriever, k, input
    /// budget, decoding) is used.
    #[arg(long)]
    pub run: PathBuf,
    /// The checkpoint directory to write with (default: the run's last
    /// trained checkpoint, an M-step's or SFT's).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The task (`email-completion`, `topic-writing`, `abstract-generation`,
    /// `review-writing`).
    #[arg(long)]
    pub task: Task,
    /// The user's profile: a JSON array of profile items with the task's
    /// fields.
    #[arg(long)]
    pub profile: PathBuf,
    /// The request x, as the task words it.
    #[arg(long)]
    pub input: String,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the full prompt to stderr.
    #[arg(long)]
    pub show_prompt: bool,
}

/// What `restpg write` produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The reasoning part (`None` for a plain template, or when the model
    /// wrote no separator).
    pub reasoning: Option<String>,
    /// The response.
    pub response: String,
    /// Why generation ended.
    pub finish: crate::lm::FinishReason,
}

/// Reads a profile file into the items of an example for `task`.
///
/// # Errors
/// A file that cannot be read or is not JSON, not an array of objects, or an
/// item without one of the task's fields (naming `profile[i].field`).
pub fn read_profile(path: &Path, task: Task, input: &str) -> anyhow::Result<Example> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
    let profile = match value {
        serde_json::Value::Array(items) => serde_json::Value::Array(items),
        serde_json::Value::Object(mut obj) => obj
            .remove("profile")
            .with_context(|| format!("{}: an object must have a `profile` array", path.display()))?,
        _ => anyhow::bail!("{}: expected a JSON array of profile items", path.display()),
    };
    // Items as a restpg data set file holds them (`{"id", "fields": {…}}`)
    // are read like LongLaMP's flat items.
    let profile = match profile {
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::Object(mut obj) => {
                        if let Some(serde_json::Value::Object(fields)) = obj.remove("fields") {
                            for (k, v) in fields {
                                obj.entry(k).or_insert(v);
                            }
                        }
                        serde_json::Value::Object(obj)
                    }
                    other => other,
                })
                .collect(),
        ),
        other => other,
    };
    anyhow::ensure!(!input.trim().is_empty(), "--input is empty");
    let record = serde_json::json!({ "id": "write", "input": input, "output": "", "profile": profile });
    let ex = crate::data::record_to_example(&record, task, path, crate::data::Location::Record(1), "write")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ex)
}

/// The run's configuration and its last trained checkpoint, from its log.
///
/// # Errors
/// A run directory without a readable log or without a `RunStarted` record.
pub fn run_config(run_dir: &Path) -> anyhow::Result<(RunConfig, Option<PathBuf>)> {
    let reader = store::LogReader::open(store::RunDir::new(run_dir).log(), None)
        .with_context(|| format!("{} is not a readable run directory", run_dir.display()))?;
    let state = replay::Replay::new().without_text().fold_log(&reader)?;
    let started =
        state.run.as_ref().with_context(|| format!("{}: the log has no RunStarted record", run_dir.display()))?;
    let config = RunConfig::from_toml(&started.config_toml, &run_dir.join("config.toml"))?;
    let last = state
        .checkpoints
        .iter()
        .filter(|c| c.role != events::Role::Base)
        .max_by_key(|c| c.seq)
        .map(|c| run_dir.join(&c.path));
    Ok((config, last))
}

/// Writes one response for `ex` with `model` under `config`.
///
/// # Errors
/// Retrieval, prompt fitting or generation failures.
pub fn write_one(
    config: &RunConfig,
    model: &LanguageModel,
    ex: &Example,
    seed: u64,
    show_prompt: bool,
) -> anyhow::Result<Written> {
    let mut retriever = crate::pipeline::build_retriever(config)?;
    let ranked = retriever.retrieve(ex, config.retrieval.k)?;
    let kind = config.method.policy_prompt();
    let templates = crate::prompt::Templates::builtin();
    let (prompt, ids) = crate::pipeline::fit_prompt(config, &templates, model.tokenizer(), ex, &ranked, kind)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if show_prompt {
        eprintln!("{prompt}");
    }
    let settings = crate::engine::evaluator::inference_sampling(config, model.tokenizer(), kind);
    let gens = model.generate(&[GenerationRequest { prompt_ids: ids, seed, settings }])?;
    let g = gens.into_iter().next().context("the generator returned nothing")?;
    let (reasoning, response) = if config.method.uses_reasoning() {
        let parsed = crate::prompt::parse_output(&g.text);
        (parsed.reasoning, parsed.response)
    } else {
        (None, g.text.trim().to_owned())
    };
    Ok(Written { reasoning, response, finish: g.finish })
}

/// Runs `restpg write`.
///
/// # Errors
/// A run, checkpoint, profile or input that does not load, or a failed
/// generation.
pub fn run(args: WriteArgs) -> anyhow::Result<()> {
    let (config, last) = run_config(&args.run)?;
    let ex = read_profile(&args.profile, args.task, &args.input)?;
    let ckpt = match (&args.model, last) {
        (Some(m), _) => m.clone(),
        (None, Some(l)) => l,
        (None, None) => anyhow::bail!("{} has no trained checkpoint yet: pass --model", args.run.display()),
    };
    crate::config::apply_torch_threads(None, config.model.threads)?;
    let model = LanguageModel::load_placed(&ckpt, config.model.device, config.model.dtype)
        .with_context(|| format!("loading checkpoint {}", ckpt.display()))?;
    let w = write_one(&config, &model, &ex, args.seed, args.show_prompt)?;
    if config.method.uses_reasoning() {
        println!("## Reasoning\n\n{}\n", w.reasoning.as_deref().unwrap_or("(none: the model wrote no separator)"));
    }
    println!("## Response\n\n{}\n", w.response);
    eprintln!("(checkpoint {}; ended by {})", ckpt.display(), w.finish);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_reads_flat_and_as_a_data_set_file_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        for text in [
            r#"[{"subject": "Razor", "text": "Servers down."}]"#,
            r#"[{"id": "u-d0", "fields": {"subject": "Razor", "text": "Servers down."}}]"#,
            r#"{"profile": [{"subject": "Razor", "text": "Servers down."}]}"#,
        ] {
            std::fs::write(&p, text).unwrap();
            let ex = read_profile(&p, Task::EmailCompletion, "Finish it").unwrap();
            assert_eq!(ex.profile[0].field("text"), "Servers down.", "{text}");
            assert_eq!(ex.profile[0].field("subject"), "Razor", "{text}");
        }
        std::fs::write(&p, r#"[{"fields": {"subject": "no text"}}]"#).unwrap();
        let err = read_profile(&p, Task::EmailCompletion, "x").unwrap_err().to_string();
        assert!(err.contains("profile[0].text"), "{err}");
        std::fs::write(&p, "[").unwrap();
        assert!(read_profile(&p, Task::EmailCompletion, "x").unwrap_err().to_string().contains("p.json"));
    }
}
