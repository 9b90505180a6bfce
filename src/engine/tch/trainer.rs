//! [`TchTrainer`]: SFT and the reward-weighted M-step.

use std::sync::Arc;

use actors::capability::{CapabilityError, CheckpointRef, Train, TrainJob, TrainProgressReport};

use super::{load_model, retryable};
use crate::pipeline::RunContext;

/// SFT and the M-step: trains from `job.init`, saves the checkpoint in
/// Hugging Face layout into the run's blob store.
pub struct TchTrainer {
    ctx: Arc<RunContext>,
    blobs: store::BlobStore,
}

impl TchTrainer {
    /// A trainer writing checkpoints into `blobs`.
    pub fn new(ctx: Arc<RunContext>, blobs: store::BlobStore) -> Self {
        Self { ctx, blobs }
    }
}

impl Train for TchTrainer {
    fn train(
        &mut self,
        job: &TrainJob,
        progress: &mut dyn FnMut(TrainProgressReport),
    ) -> Result<CheckpointRef, CapabilityError> {
        let mut model = load_model(&self.ctx, &self.ctx.checkpoint_path(&job.init))?;
        let tok = model.tokenizer().clone();
        let mut data = Vec::with_capacity(job.data.len());
        for item in &job.data {
            let (_, prompt_ids) = self.ctx.prompt_ids(&tok, &item.input_id, item.prompt)?;
            let target = self.ctx.target_text(item)?;
            let mut target_ids = tok
                .encode(&target)
                .map_err(|e| CapabilityError::fatal(format!("tokenizing the target of {}: {e:#}", item.input_id)))?;
            // The model must learn to stop: the chat template closes the
            // assistant turn with its end-of-turn token.
            target_ids.push(tok.end_of_turn_id());
            data.push(crate::train::TrainExample {
                id: item.input_id.clone(),
                prompt_ids,
                target_ids,
                weight: item.weight,
            });
        }
        let mut config = self.ctx.config.train.clone();
        config.seed = job.seed;
        let work = self.ctx.run_dir.join("work").join(format!("train-{}", job.iteration));
        let mut trainer =
            crate::train::Trainer::new(config, &work).map_err(|e| CapabilityError::fatal(format!("{e:#}")))?;
        let mut report = |p: crate::train::TrainProgress| {
            progress(TrainProgressReport {
                step: p.step,
                loss: p.loss as f32,
                learning_rate: p.learning_rate as f32,
                tokens: p.target_tokens as u64,
            })
        };
        // Training is deterministic: a failure would fail again, so it is fatal
        // (never retried as if the worker were at fault).
        trainer
            .train(&mut model, &data, &mut report)
            .map_err(|e| CapabilityError::fatal(format!("training iteration {}: {e:#}", job.iteration)))?;
        let out = work.join("final");
        let _ = std::fs::remove_dir_all(&out);
        model.save(&out).map_err(|e| retryable("saving the checkpoint", e))?;
        let hash = self
            .blobs
            .put(&out)
            .map_err(|e| CapabilityError::retryable(format!("storing checkpoint {}: {e}", out.display())))?;
        let _ = std::fs::remove_dir_all(&work);
        Ok(CheckpointRef { hash, path: store::BlobStore::relative_path(&hash) })
    }
}
