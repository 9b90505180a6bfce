//! Algorithm 1 line 11: the M-step, reward-weighted training on D_t.

use std::sync::Arc;

use events::{Event, Role, Stage};

use super::seal::Kept;
use super::sft::checkpoint_saved;
use super::{train_seed, Run, RunError};
use crate::capability::{CheckpointRef, TrainItem, TrainJob, TrainTarget};
use crate::plan::InitMode;
use crate::workers::Trained;

impl Run {
    /// Trains θ_{t+1} on D_t with loss −R·log p(ŷ | x, P), from the base or
    /// from θ_t as the plan says; reused when already logged.
    pub(super) async fn m_step(
        &mut self,
        t: u32,
        theta: &CheckpointRef,
        kept: &[Kept],
    ) -> Result<CheckpointRef, RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(t, Stage::MStep).await?;
        if let Some(c) = self.state.checkpoints.get(&(t, Role::MStep)) {
            let c = c.checkpoint.clone();
            self.stage_finished(t, Stage::MStep, since).await?;
            return Ok(c);
        }
        let trained = if kept.is_empty() {
            // Nothing is trainable: training from the base on nothing would
            // throw away θ_t, so θ_t carries over as θ_{t+1}, with the reason logged.
            let reason = format!(
                "D_{t} is empty: no sample of iteration {t} was kept (τ = {}, zero rewards, samples without reasoning and samples cut at the token limit are never training data, unless the run allows them); θ_{t} carries over",
                plan.tau
            );
            tracing::warn!(iteration = t, "{reason}");
            self.append(vec![Event::MStepSkipped { iteration: t, reason }]).await?;
            Trained { checkpoint: theta.clone(), steps: 0 }
        } else {
            let data = kept
                .iter()
                .map(|k| TrainItem {
                    input_id: k.sample.input_id.clone(),
                    prompt: plan.method.policy_prompt(),
                    target: TrainTarget::Generated { raw: self.caps.targets.join(k.reasoning.as_deref(), &k.response) },
                    weight: k.reward,
                })
                .collect();
            let init = match plan.init {
                InitMode::Fresh => plan.base.clone(),
                InitMode::Continue => theta.clone(),
            };
            let job = TrainJob { iteration: t, init, data, seed: train_seed(plan.seed, t) };
            self.train(&format!("{} {t}", Stage::MStep), job).await?
        };
        self.append(vec![checkpoint_saved(t, Role::MStep, &trained)]).await?;
        self.flush().await?;
        self.stage_finished(t, Stage::MStep, since).await?;
        Ok(trained.checkpoint)
    }
}
