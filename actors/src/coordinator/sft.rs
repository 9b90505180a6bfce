//! Training jobs: the trainer pool, one job sent to it, and SFT on (x, y)
//! or on D_reasoning (x, reasoning ⊕ y), which makes θ¹.

use std::sync::Arc;

use events::{Event, Role, Stage};

use super::{train_seed, Run, RunError};
use crate::capability::{CheckpointRef, Train, TrainItem, TrainJob, TrainTarget};
use crate::log::Append;
use crate::workers::{start_pool, TrainRun, Trained};

/// The `CheckpointSaved` of a finished training job.
pub(super) fn checkpoint_saved(iteration: u32, role: Role, trained: &Trained) -> Event {
    Event::CheckpointSaved {
        iteration,
        step: trained.steps,
        role,
        hash: trained.checkpoint.hash,
        path: trained.checkpoint.path.clone(),
        validation_score: None,
    }
}

impl Run {
    /// Runs one training job on a fresh trainer, whose progress reports go
    /// straight to the log writer.
    pub(super) async fn train(&mut self, stage: &str, job: TrainJob) -> Result<Trained, RunError> {
        let progress = self.log.clone().recipient::<Append>();
        let trainer = start_pool::<dyn Train>("trainer", 1, Arc::clone(&self.caps.trainer), None, Some(progress));
        let label = format!("iteration {}", job.iteration);
        self.single(stage, trainer.recipient(), (label, TrainRun { job }), None).await
    }

    /// SFT from the base checkpoint: θ¹ (reused when already logged).
    pub(super) async fn sft(&mut self) -> Result<CheckpointRef, RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(0, Stage::Sft).await?;
        if let Some(c) = self.state.checkpoints.get(&(0, Role::Sft)) {
            let c = c.checkpoint.clone();
            self.stage_finished(0, Stage::Sft, since).await?;
            return Ok(c);
        }
        let mut data = Vec::with_capacity(plan.train_ids.len());
        for id in &plan.train_ids {
            let target = if plan.method.uses_reasoning() {
                let reasoning =
                    self.state.reasoning.get(&(id.clone(), plan.generator_name.clone())).ok_or_else(|| {
                        RunError::Inconsistent(format!("no reasoning logged for train input {id:?} before SFT"))
                    })?;
                TrainTarget::ReasoningThenReference { reasoning: reasoning.clone() }
            } else {
                TrainTarget::Reference
            };
            data.push(TrainItem { input_id: id.clone(), prompt: plan.method.policy_prompt(), target, weight: 1.0 });
        }
        let job = TrainJob { iteration: 0, init: plan.base.clone(), data, seed: train_seed(plan.seed, 0) };
        let trained = self.train(Stage::Sft.as_str(), job).await?;
        self.append(vec![checkpoint_saved(0, Role::Sft, &trained)]).await?;
        self.flush().await?;
        self.stage_finished(0, Stage::Sft, since).await?;
        Ok(trained.checkpoint)
    }
}
