//! [`TchRewardCheck`]: the reward check of a run ([`crate::reward::check`])
//! on the run's own reward, through the same [`super::TchJudge`] capability the
//! judge stage uses, so the check scores exactly what the run will. The
//! run's report of it is `reports/reward-check.md` (and `.json`).

use std::path::Path;
use std::sync::Arc;

use actors::capability::{CapabilityError, CheckReward, JudgeRequest, RewardCheckSummary};
use events::SampleId;

use crate::data::Split;
use crate::pipeline::RunContext;
use crate::reward::check::{check_with, RewardCheck};

/// The run's reward, checked on its validation examples (its training
/// examples when it has none).
pub struct TchRewardCheck {
    ctx: Arc<RunContext>,
    judge: Box<dyn actors::capability::Judge>,
}

impl TchRewardCheck {
    /// Builds the run's reward as [`super::tch_judge`] does.
    ///
    /// # Errors
    /// As [`super::tch_judge`].
    pub fn new(ctx: Arc<RunContext>, judge_path: &Path) -> anyhow::Result<Self> {
        let judge = super::tch_judge(Arc::clone(&ctx), judge_path)?;
        Ok(Self { ctx, judge: Box::new(judge) })
    }

    /// The check on `judge`, the run's reward on whichever engine runs it.
    pub fn with_judge(ctx: Arc<RunContext>, judge: Box<dyn actors::capability::Judge>) -> Self {
        Self { ctx, judge }
    }

    /// Runs the check with at most `per_task` examples per task of the
    /// validation split (the training split when it is empty).
    ///
    /// # Errors
    /// No examples, K of 0, or the reward's failures.
    pub fn run(&mut self, per_task: usize) -> anyhow::Result<RewardCheck> {
        let split = if self.ctx.dataset.split(Split::Validation).is_empty() { Split::Train } else { Split::Validation };
        self.run_on(split, per_task)
    }

    /// Runs the check on the examples of `split`.
    ///
    /// # Errors
    /// As [`TchRewardCheck::run`].
    pub fn run_on(&mut self, split: Split, per_task: usize) -> anyhow::Result<RewardCheck> {
        let examples = self.ctx.dataset.split(split);
        let name = self.judge.name();
        let judge = &mut self.judge;
        check_with(&name, examples, per_task, crate::prompt::RESPONSE_SEPARATOR, &mut |texts| {
            let requests: Vec<JudgeRequest> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| JudgeRequest {
                    sample: SampleId { iteration: 0, input_id: t.example.id.clone(), index: i as u32 },
                    response: t.response.clone(),
                })
                .collect();
            let judged = judge.judge(&requests).map_err(|e| anyhow::anyhow!("{}", e.what))?;
            Ok(judged.into_iter().map(|j| j.reward).collect())
        })
    }
}

impl CheckReward for TchRewardCheck {
    fn check(&mut self, per_task: usize) -> Result<RewardCheckSummary, CapabilityError> {
        let c = self.run(per_task).map_err(|e| CapabilityError::retryable(format!("reward check: {e:#}")))?;
        // The run's report of it; the log's `RewardChecked` is the record.
        let reports = store::RunDir::new(&self.ctx.run_dir).reports();
        crate::eval::report::write_reward_check(&c, &reports, crate::eval::report::REWARD_CHECK_STEM)
            .map_err(|e| CapabilityError::fatal(format!("{e:#}")))?;
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(RewardCheckSummary {
            reward_name: c.reward,
            examples: n(c.examples),
            counts: c.counts.map(n),
            auc_own_other: c.auc_own_other,
            auc_own_degenerate: c.auc_own_degenerate,
            auc_other_degenerate: c.auc_other_degenerate,
            means: c.means,
        })
    }
}
