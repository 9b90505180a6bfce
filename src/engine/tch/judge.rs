//! [`TchJudge`]: the reward R(x, y, ŷ) of the run, and the LLM judge on a
//! local model.

use std::path::Path;
use std::sync::Arc;

use actors::capability::{CapabilityError, JudgeRequest, Judgement};

use super::retryable;
use crate::lm::LanguageModel;
use crate::pipeline::RunContext;
use crate::reward::{Composite, Reward, RewardInput};

/// The reward R(x, y, ŷ): the configured reward spec (LLM judge, lexical
/// metrics or a mix) on the final response only.
pub struct TchJudge {
    ctx: Arc<RunContext>,
    reward: Composite<LanguageModel>,
    name: String,
}

impl TchJudge {
    /// Builds the configured reward; the LLM judge loads `judge_path`.
    ///
    /// # Errors
    /// A bad reward spec, a judge model that does not load or whose tokenizer
    /// has no score tokens.
    pub fn new(ctx: Arc<RunContext>, judge_path: &Path) -> anyhow::Result<Self> {
        let name = ctx.config.reward.name.clone();
        let spec: crate::reward::RewardSpec = name.parse()?;
        // The judge model is loaded only when the judge takes part.
        let judge = if spec.uses_judge() { Some(judge_model(&ctx, judge_path)?) } else { None };
        let reward = Composite::new(spec, judge)?;
        Ok(Self { ctx, reward, name })
    }
}

impl actors::capability::Judge for TchJudge {
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
        let outs = self.reward.score(&inputs).map_err(|e| retryable("judging", e))?;
        Ok(requests
            .iter()
            .zip(outs)
            .map(|(r, o)| {
                let distribution = o.distribution.unwrap_or_default();
                Judgement {
                    sample: r.sample.clone(),
                    reward: o.reward,
                    // A reward that read the judge model has its distribution;
                    // a lexical one (rouge-l, …) ran no model.
                    engine: (!distribution.is_empty()).then(events::EngineInfo::tch),
                    // tch reads the full distribution at every score position.
                    unseen_mass: None,
                    distribution,
                }
            })
            .collect())
    }
}

/// The LLM judge on the model at `path`, with the run's rule and templates.
pub(super) fn judge_model(ctx: &RunContext, path: &Path) -> anyhow::Result<crate::reward::Judge<LanguageModel>> {
    let model = super::load_inference_model(ctx, path, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = crate::reward::JudgeConfig {
        rule: ctx.config.reward.rule,
        batch_size: ctx.config.reward.batch_size,
        template: crate::reward::judge::templates_judge(ctx.templates.clone()),
        ..Default::default()
    };
    crate::reward::Judge::new(model, config)
}
