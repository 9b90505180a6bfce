//! Algorithm 1 line 7: the reward of each sample's final response.

use std::sync::Arc;

use events::{Event, Stage};

use super::{Run, RunError};
use crate::capability::{Judge, JudgeRequest, Judgement};
use crate::workers::{start_pool, JudgeBatch, JudgeName};

impl Run {
    /// Rewards every sample of iteration `t` not yet rewarded by this judge;
    /// returns the reward's name.
    pub(super) async fn judge(&mut self, t: u32) -> Result<String, RunError> {
        let plan = Arc::clone(&self.plan);
        let stage = format!("{} {t}", Stage::Judge);
        let since = self.stage_started(t, Stage::Judge).await?;
        let addr = start_pool::<dyn Judge>("judge", plan.judge_workers, Arc::clone(&self.caps.judge), None, None);
        let name: String =
            self.single(&stage, addr.clone().recipient(), ("name".into(), JudgeName), Some(plan.batch_timeout)).await?;
        let requests: Vec<JudgeRequest> = self
            .state
            .samples_of(t)
            .filter(|(id, _)| !self.state.rewards.contains_key(&((*id).clone(), name.clone())))
            .map(|(id, s)| JudgeRequest { sample: id.clone(), response: s.response.clone() })
            .collect();
        self.fan_out(
            stage,
            &requests,
            || addr.recipient(),
            |chunk| (chunk[0].sample.to_string(), JudgeBatch { requests: chunk.to_vec() }),
            |_, judgements: Vec<Judgement>| {
                judgements
                    .into_iter()
                    .map(|j| Event::RewardAssigned {
                        sample: j.sample,
                        reward: j.reward,
                        reward_name: name.clone(),
                        judge_distribution: j.distribution,
                        engine: j.engine,
                        unseen_mass: j.unseen_mass,
                    })
                    .collect()
            },
        )
        .await?;
        self.stage_finished(t, Stage::Judge, since).await?;
        Ok(name)
    }
}
