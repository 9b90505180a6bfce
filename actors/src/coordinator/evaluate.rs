//! Evaluating a checkpoint on the validation or test split.

use std::sync::Arc;

use events::{Event, Split, Stage};

use super::{Evaluation, Run, RunError};
use crate::capability::{CheckpointRef, EvalSummary, Evaluate};
use crate::workers::{start_pool, EvaluateRun};

impl Run {
    /// Evaluates `checkpoint` on `split` (skipped when the split is empty;
    /// reused when already logged).
    pub(super) async fn evaluate(
        &mut self,
        t: u32,
        split: Split,
        checkpoint: &CheckpointRef,
    ) -> Result<Option<Evaluation>, RunError> {
        let plan = Arc::clone(&self.plan);
        let (ids, stage) = match split {
            Split::Test => (&plan.test_ids, Stage::EvalTest),
            _ => (&plan.val_ids, Stage::EvalValidation),
        };
        if ids.is_empty() {
            return Ok(None);
        }
        let system = plan.method.as_str().to_owned();
        let since = self.stage_started(t, stage).await?;
        let key = (t, split, system.clone());
        let summary = match self.state.evaluations.get(&key) {
            Some(s) => s.clone(),
            None => {
                let evaluator =
                    start_pool::<dyn Evaluate>("evaluator", 1, Arc::clone(&self.caps.evaluator), None, None);
                let job = EvaluateRun {
                    checkpoint: checkpoint.clone(),
                    split,
                    system: system.clone(),
                    prompt: plan.method.policy_prompt(),
                };
                let summary: EvalSummary =
                    self.single(stage.as_str(), evaluator.recipient(), (split.as_str().to_owned(), job), None).await?;
                self.append(vec![Event::EvaluationDone {
                    iteration: t,
                    split,
                    system,
                    scores: summary.scores.clone(),
                    report_path: summary.report_path.clone(),
                }])
                .await?;
                self.flush().await?;
                summary
            }
        };
        self.stage_finished(t, stage, since).await?;
        Ok(Some(Evaluation { iteration: t, split, summary }))
    }
}
