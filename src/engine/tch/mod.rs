//! The tch engine: the capability traits on local [`LanguageModel`]s.
//!
//! - [`TchPolicy`]: the policy sampler and reasoning generator.
//! - [`TchJudge`]: the reward R(x, y, ŷ) on the final response only.
//! - [`TchRewardCheck`]: the run's first stage, the reward check, on the
//!   same [`TchJudge`].
//! - [`TchTrainer`]: SFT and the reward-weighted M-step, saving each
//!   checkpoint into the run's content-addressed blob store.
//! - [`inference_model`]: a checkpoint loaded for inference the way the
//!   run's settings say (evaluation, [`crate::engine::evaluator`], loads
//!   its tch models with it).
//!
//! Each value holds its own [`LanguageModel`]: tch tensors are `Send` but
//! not `Sync`, so a model is never shared.

mod judge;
mod policy;
mod reward_check;
mod trainer;

use std::path::Path;

use actors::capability::CapabilityError;

pub use judge::{tch_judge, TchJudge};
pub use policy::TchPolicy;
pub use reward_check::TchRewardCheck;
pub use trainer::TchTrainer;

use crate::lm::LanguageModel;
use crate::pipeline::RunContext;

/// Turns an `anyhow` error from the model side into a capability error that
/// a rebuilt worker may not repeat.
fn retryable(what: &str, e: anyhow::Error) -> CapabilityError {
    CapabilityError::retryable(format!("{what}: {e:#}"))
}

/// The device of the run's models (`[model] device`).
///
/// # Errors
/// A fatal capability error for `cuda` when libtorch sees no GPU.
fn device(ctx: &RunContext) -> Result<::tch::Device, CapabilityError> {
    ctx.config.model.device.resolve().map_err(|e| CapabilityError::fatal(format!("[model] {e}")))
}

/// Loads a checkpoint (a GGUF file or a Hugging Face-layout directory) in
/// f32 on the run's device, for training.
fn load_model(ctx: &RunContext, path: &Path) -> Result<LanguageModel, CapabilityError> {
    LanguageModel::load(path, device(ctx)?)
        .map_err(|e| CapabilityError::fatal(format!("loading checkpoint {}: {e:#}", path.display())))
}

/// Loads a checkpoint for inference on the run's device in `precision`, or
/// when `None`, the configured `[model] dtype` resolved on that device.
fn load_inference_model(
    ctx: &RunContext,
    path: &Path,
    precision: Option<events::Precision>,
) -> Result<LanguageModel, CapabilityError> {
    let device = device(ctx)?;
    let precision = precision.unwrap_or_else(|| ctx.config.model.dtype.resolve(device));
    LanguageModel::load_in(path, device, precision)
        .map_err(|e| CapabilityError::fatal(format!("loading checkpoint {}: {e:#}", path.display())))
}

/// A checkpoint (a GGUF file or a Hugging Face-layout directory) loaded for
/// inference on the run's device (`[model] device`) in the run's
/// `[model] dtype`.
///
/// # Errors
/// A fatal capability error naming the file when it does not load, or for
/// `cuda` when libtorch sees no GPU.
pub fn inference_model(ctx: &RunContext, path: &Path) -> Result<LanguageModel, CapabilityError> {
    load_inference_model(ctx, path, None)
}
