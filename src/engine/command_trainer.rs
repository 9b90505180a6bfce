//! [`CommandTrainer`]: SFT and the M-step by an external trainer
//! (`[engine.trainer] backend = "command"`): TRL (`scripts/trl_sft.py`),
//! accelerate or torchrun scripts.
//!
//! restpg writes the training set as JSON Lines in the TRL/OpenRLHF
//! prompt-completion shape with weights (the lines `restpg export` writes:
//! `prompt`, `completion`, `weight`, `input_id`, `prompt_digest`), runs the
//! command template with `{dataset}`, `{init}` (the start checkpoint's
//! Hugging Face directory), `{out}` and `{seed}` filled in, checks that
//! `{out}` is a checkpoint our engine loads, and stores it in the blob store
//! by content hash. The command's output is kept in
//! `RUN_DIR/engines/trainer-<iteration>.log`; the run's configuration (in
//! `RunStarted`) records the command.

use std::path::Path;
use std::sync::Arc;

use actors::capability::{CapabilityError, CheckpointRef, Train, TrainJob, TrainProgressReport};

use super::openai::server::{file_tail, shell_quote};
use crate::lm::LanguageModel;
use crate::pipeline::RunContext;

/// The trainer that runs a command.
pub struct CommandTrainer {
    ctx: Arc<RunContext>,
    blobs: store::BlobStore,
    command: String,
}

impl CommandTrainer {
    /// A trainer running `command` (validated: it names `{dataset}`,
    /// `{init}` and `{out}`), writing checkpoints into `blobs`.
    pub fn new(ctx: Arc<RunContext>, blobs: store::BlobStore, command: String) -> Self {
        Self { ctx, blobs, command }
    }
}

impl Train for CommandTrainer {
    fn train(
        &mut self,
        job: &TrainJob,
        progress: &mut dyn FnMut(TrainProgressReport),
    ) -> Result<CheckpointRef, CapabilityError> {
        let fatal = |what: String| CapabilityError::fatal(what);
        let init = self.ctx.checkpoint_path(&job.init);
        let tok = LanguageModel::load_tokenizer(&init)
            .map_err(|e| fatal(format!("loading the tokenizer of {}: {e:#}", init.display())))?;
        let work = self.ctx.run_dir.join("work").join(format!("train-{}-command", job.iteration));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| fatal(format!("creating {}: {e}", work.display())))?;
        let dataset = work.join("dataset.jsonl");
        let mut lines = String::new();
        for item in &job.data {
            let (prompt, _) = self.ctx.prompt_ids(&tok, &item.input_id, item.prompt)?;
            let line = serde_json::json!({
                "prompt": prompt,
                "completion": self.ctx.target_text(item)?,
                "weight": item.weight,
                "input_id": item.input_id,
                "prompt_digest": events::digest_hex(&events::prompt_digest(&prompt)),
            });
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
        std::fs::write(&dataset, lines).map_err(|e| fatal(format!("writing {}: {e}", dataset.display())))?;
        let out = work.join("out");
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        let command = self
            .command
            .replace("{dataset}", &shell_quote(&abs(&dataset).to_string_lossy()))
            .replace("{init}", &shell_quote(&abs(&init).to_string_lossy()))
            .replace("{out}", &shell_quote(&abs(&out).to_string_lossy()))
            .replace("{seed}", &job.seed.to_string());
        let log = self.ctx.run_dir.join("engines").join(format!("trainer-{}.log", job.iteration));
        std::fs::create_dir_all(log.parent().expect("has a parent"))
            .map_err(|e| fatal(format!("creating {}: {e}", log.display())))?;
        let log_file = std::fs::File::create(&log).map_err(|e| fatal(format!("creating {}: {e}", log.display())))?;
        tracing::info!(iteration = job.iteration, %command, "running the trainer command");
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::null())
            .stderr(log_file)
            .output()
            .map_err(|e| fatal(format!("starting the trainer `{command}`: {e}")))?;
        if !output.status.success() {
            return Err(fatal(format!(
                "the trainer `{command}` failed ({}); the end of its output ({}):\n{}",
                output.status,
                log.display(),
                file_tail(&log, 2000)
            )));
        }
        // The trainer's summary, when it prints one (scripts/trl_sft.py
        // does): the last JSON object on stdout.
        let stdout = String::from_utf8_lossy(&output.stdout);
        if let Some(summary) =
            stdout.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        {
            let steps = summary.get("steps").and_then(serde_json::Value::as_u64);
            let loss = summary.get("final_loss").and_then(serde_json::Value::as_f64);
            if let (Some(step), Some(loss)) = (steps, loss) {
                // The command reports no learning rate or token count: 0.
                progress(TrainProgressReport { step, loss: loss as f32, learning_rate: 0.0, tokens: 0 });
            }
        }
        // What the trainer wrote must be a checkpoint our engine loads: the
        // next E-step and replay read it.
        LanguageModel::load(&out, tch::Device::Cpu).map_err(|e| {
            fatal(format!(
                "the trainer `{command}` exited 0, but its {{out}} {} is not a checkpoint: {e:#}",
                out.display()
            ))
        })?;
        let hash = self
            .blobs
            .put(&out)
            .map_err(|e| CapabilityError::retryable(format!("storing checkpoint {}: {e}", out.display())))?;
        let _ = std::fs::remove_dir_all(&work);
        Ok(CheckpointRef { hash, path: store::BlobStore::relative_path(&hash) })
    }
}
