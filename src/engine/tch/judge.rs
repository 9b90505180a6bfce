//! [`TchJudge`]: the run's reward R(x, y, ŷ) with its LLM judge on a local
//! tch model.

use std::path::Path;
use std::sync::Arc;

use crate::engine::run_reward::RunReward;
use crate::lm::LanguageModel;
use crate::pipeline::RunContext;

/// The run's reward with the judge model in tch.
pub type TchJudge = RunReward<LanguageModel>;

/// Builds the configured reward; the LLM judge loads `judge_path` (only
/// when the spec uses the judge).
///
/// # Errors
/// A bad reward spec, a judge model that does not load or whose tokenizer
/// has no score tokens.
pub fn tch_judge(ctx: Arc<RunContext>, judge_path: &Path) -> anyhow::Result<TchJudge> {
    let c = Arc::clone(&ctx);
    RunReward::new(ctx, move || {
        let model = super::load_inference_model(&c, judge_path, None).map_err(|e| anyhow::anyhow!("{e}"))?;
        // tch reads the whole distribution: nothing is unseen.
        Ok((model, events::EngineInfo::tch(), None))
    })
}
