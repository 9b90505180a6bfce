//! The tch engine: the capability traits on local [`LanguageModel`]s.
//!
//! - [`TchPolicy`]: the policy sampler and reasoning generator.
//! - [`TchJudge`]: the reward R(x, y, ŷ) on the final response only.
//! - [`TchRewardCheck`]: the run's first stage, the reward check, on the
//!   same [`TchJudge`].
//! - [`TchTrainer`]: SFT and the reward-weighted M-step, saving each
//!   checkpoint into the run's content-addressed blob store.
//! - [`TchEvaluator`]: generation at the inference temperature on a split,
//!   scored by the judge and LongLaMP's lexical metrics, through
//!   [`evaluate_checkpoint`], the one evaluation path of the run and of
//!   `restpg eval`.
//!
//! Each value holds its own [`LanguageModel`]: tch tensors are `Send` but
//! not `Sync`, so a model is never shared.

mod evaluator;
mod judge;
mod policy;
mod reward_check;
mod trainer;

use std::path::Path;

use actors::capability::CapabilityError;

pub use evaluator::{evaluate_checkpoint, inference_sampling, TchEvaluator};
pub use judge::TchJudge;
pub use policy::TchPolicy;
pub use reward_check::TchRewardCheck;
pub use trainer::TchTrainer;

use crate::lm::LanguageModel;

/// Turns an `anyhow` error from the model side into a capability error that
/// a rebuilt worker may not repeat.
fn retryable(what: &str, e: anyhow::Error) -> CapabilityError {
    CapabilityError::retryable(format!("{what}: {e:#}"))
}

/// Loads a checkpoint (a GGUF file or a Hugging Face-layout directory) on
/// the CPU with the configured thread count.
fn load_model(path: &Path) -> Result<LanguageModel, CapabilityError> {
    LanguageModel::load(path, ::tch::Device::Cpu)
        .map_err(|e| CapabilityError::fatal(format!("loading checkpoint {}: {e:#}", path.display())))
}
