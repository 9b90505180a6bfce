//! Before the first stage: does the reward tell a user's own text from
//! another user's and from degenerate text? Logged once as `RewardChecked`.

use std::sync::Arc;

use events::{Event, Stage};

use super::{Run, RunError};
use crate::capability::{CheckReward, RewardCheckSummary};
use crate::workers::{start_pool, RewardCheckRun};

impl Run {
    /// Runs the reward check with the plan's K and logs its figures, unless
    /// K is 0 or the log already holds a check with this K (a resumed run
    /// never checks again).
    pub(super) async fn reward_check(&mut self) -> Result<(), RunError> {
        let plan = Arc::clone(&self.plan);
        let k = plan.reward_check_per_task;
        if k == 0 || self.state.reward_checks.iter().any(|(_, per_task)| *per_task as usize == k) {
            return Ok(());
        }
        let since = self.stage_started(0, Stage::RewardCheck).await?;
        let checker = start_pool::<dyn CheckReward>("reward check", 1, Arc::clone(&self.caps.reward_check), None, None);
        let summary: RewardCheckSummary = self
            .single(
                Stage::RewardCheck.as_str(),
                checker.recipient(),
                ("check".into(), RewardCheckRun { per_task: k }),
                None,
            )
            .await?;
        if summary.auc_own_other.is_none_or(|a| a < 0.75) {
            tracing::warn!(
                reward = %summary.reward_name,
                auc_own_other = ?summary.auc_own_other,
                "the reward cannot tell this user's text from someone else's; D_t will be noise"
            );
        }
        self.append(vec![Event::RewardChecked {
            reward_name: summary.reward_name,
            per_task: k as u32,
            examples: summary.examples,
            counts: summary.counts,
            auc_own_other: summary.auc_own_other,
            auc_own_degenerate: summary.auc_own_degenerate,
            auc_other_degenerate: summary.auc_other_degenerate,
            means: summary.means,
        }])
        .await?;
        self.stage_finished(0, Stage::RewardCheck, since).await
    }
}
