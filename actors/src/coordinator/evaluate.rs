//! Evaluating a checkpoint on the validation or test split.

use std::sync::Arc;

use events::Event;

use super::{Evaluation, Run, RunError};
use crate::capability::{CheckpointRef, EvalSummary, Evaluate};
use crate::workers::{start_pool, EvaluateRun};

impl Run {
    /// Evaluates `checkpoint` on `split` (skipped when the split is empty;
    /// reused when already logged).
    pub(super) async fn evaluate(
        &mut self,
        t: u32,
        split: &str,
        checkpoint: &CheckpointRef,
    ) -> Result<Option<Evaluation>, RunError> {
        let plan = Arc::clone(&self.plan);
        let ids = if split == "test" { &plan.test_ids } else { &plan.val_ids };
        if ids.is_empty() {
            return Ok(None);
        }
        let system = plan.method.as_str().to_owned();
        let stage = format!("eval-{split}");
        let since = self.stage_started(t, &stage).await?;
        let key = (t, split.to_owned(), system.clone());
        let summary = match self.state.evaluations.get(&key) {
            Some(s) => s.clone(),
            None => {
                let evaluator =
                    start_pool::<dyn Evaluate>("evaluator", 1, Arc::clone(&self.caps.evaluator), None, None);
                let job = EvaluateRun {
                    checkpoint: checkpoint.clone(),
                    split: split.to_owned(),
                    system: system.clone(),
                    prompt: plan.method.policy_prompt(),
                };
                let summary: EvalSummary =
                    self.single(&stage, evaluator.recipient(), (split.to_owned(), job), None).await?;
                self.append(vec![Event::EvaluationDone {
                    iteration: t,
                    split: split.to_owned(),
                    system,
                    scores: summary.scores.clone(),
                    report_path: summary.report_path.clone(),
                }])
                .await?;
                self.flush().await?;
                summary
            }
        };
        self.stage_finished(t, &stage, since).await?;
        Ok(Some(Evaluation { iteration: t, split: split.to_owned(), summary }))
    }
}
