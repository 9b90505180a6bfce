//! [`RunReward`]: the run's reward R(x, y, ŷ) as the judge capability, on
//! any [`ScoreModel`]: the configured reward spec (LLM judge, lexical
//! metrics or a mix) on the final response only. The tch engine gives it a
//! local model; the OpenAI-compatible engine a server
//! ([`crate::engine::openai::OpenAiScorer`]).

use std::sync::{Arc, Mutex};

use actors::capability::{CapabilityError, JudgeRequest, Judgement};

use crate::pipeline::RunContext;
use crate::reward::judge::ScoreModel;
use crate::reward::{Composite, Reward, RewardInput};

/// The judge settings of the run: `[reward] rule` and `batch_size`, and the
/// run's judge template.
pub fn judge_config(ctx: &RunContext) -> crate::reward::JudgeConfig {
    crate::reward::JudgeConfig {
        rule: ctx.config.reward.rule,
        batch_size: ctx.config.reward.batch_size,
        template: crate::reward::judge::templates_judge(ctx.templates.clone()),
        ..Default::default()
    }
}

/// The reward of a run over the judge model `M`.
pub struct RunReward<M: ScoreModel> {
    ctx: Arc<RunContext>,
    reward: Composite<M>,
    name: String,
    /// The judge model's engine, when the reward uses the judge.
    engine: Option<events::EngineInfo>,
    /// Where the judge model reports the mass outside what it returned
    /// (a server's top log-probabilities); `None` when it reads whole
    /// distributions.
    unseen: Option<Arc<Mutex<Option<f32>>>>,
}

impl<M: ScoreModel> RunReward<M> {
    /// The configured reward (`[reward] name`, rule and templates), with
    /// `judge` as the LLM judge's model: `make_judge` is called only when
    /// the spec uses the judge. `engine` names that model's engine;
    /// `unseen` is its unseen-mass handle, if it has one.
    ///
    /// # Errors
    /// A bad reward spec, a judge model that does not build, or a
    /// tokenizer without score tokens.
    pub fn new(
        ctx: Arc<RunContext>,
        make_judge: impl FnOnce() -> anyhow::Result<(M, events::EngineInfo, Option<Arc<Mutex<Option<f32>>>>)>,
    ) -> anyhow::Result<Self> {
        let name = ctx.config.reward.name.clone();
        let spec: crate::reward::RewardSpec = name.parse()?;
        let (judge, engine, unseen) = if spec.uses_judge() {
            let (model, engine, unseen) = make_judge()?;
            (Some(crate::reward::Judge::new(model, judge_config(&ctx))?), Some(engine), unseen)
        } else {
            (None, None, None)
        };
        let reward = Composite::new(spec, judge)?;
        Ok(Self { ctx, reward, name, engine, unseen })
    }

    /// The judge model's engine, when the reward uses the judge.
    pub fn engine(&self) -> Option<&events::EngineInfo> {
        self.engine.as_ref()
    }

    fn score(
        &mut self,
        inputs: &[RewardInput],
    ) -> Result<Vec<(crate::reward::RewardOutput, Option<f32>)>, CapabilityError> {
        let fail = |e: anyhow::Error| CapabilityError::retryable(format!("judging: {e:#}"));
        match &self.unseen {
            None => Ok(self.reward.score(inputs).map_err(fail)?.into_iter().map(|o| (o, None)).collect()),
            Some(handle) => {
                // One item at a time, so each reward carries its own unseen mass.
                let handle = Arc::clone(handle);
                let mut out = Vec::with_capacity(inputs.len());
                for input in inputs {
                    *handle.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                    let o = self.reward.score(std::slice::from_ref(input)).map_err(fail)?;
                    let unseen = handle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                    out.extend(o.into_iter().map(|o| (o, unseen)));
                }
                Ok(out)
            }
        }
    }
}

impl<M: ScoreModel + Send> actors::capability::Judge for RunReward<M> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn judge(&mut self, requests: &[JudgeRequest]) -> Result<Vec<Judgement>, CapabilityError> {
        let mut inputs = Vec::with_capacity(requests.len());
        for r in requests {
            let ex = self.ctx.example(&r.sample.input_id)?;
            inputs.push(RewardInput {
                input: ex.input.clone(),
                expected: ex.output.clone(),
                response: r.response.clone(),
            });
        }
        let outs = self.score(&inputs)?;
        Ok(requests
            .iter()
            .zip(outs)
            .map(|(r, (o, unseen))| {
                let distribution = o.distribution.unwrap_or_default();
                // A reward that read the judge model has its distribution;
                // a lexical one (rouge-l, …) or an empty response ran none.
                let used = !distribution.is_empty();
                Judgement {
                    sample: r.sample.clone(),
                    reward: o.reward,
                    engine: if used { self.engine.clone() } else { None },
                    unseen_mass: if used { unseen } else { None },
                    distribution,
                }
            })
            .collect())
    }
}
