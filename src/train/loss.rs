//! The loss of Algorithm 1, line 11 of REST-PG (the ReST-EM M-step, Singh et
//! al. 2024): reward-weighted token cross-entropy on the target tokens only.
//!
//! **Normalisation.** For one optimiser step over an effective batch `E`
//!
//! ```text
//! L = Σ_{i∈E} w_i · Σ_{t∈target(i)} −log p(y_{i,t} | y_{i,<t}, x_i, P_i)  /  N_E
//! ```
//!
//! where `N_E = Σ_{i∈E} |target(i)|` is the number of target tokens in the
//! whole effective batch (not weighted). Each micro-batch contributes its part
//! of the numerator divided by the same `N_E`, so the accumulated gradient is
//! the gradient of `L` whatever the micro-batch size. With all weights 1 (SFT,
//! or the paper's τ = 1 filter) `L` is the mean token cross-entropy; with
//! rewards the scale of `w` is kept (a batch of R = 0.5 gets half the
//! gradient), as in the M-step objective `E[R · log p]`.

use anyhow::Result;
use tch::{Kind, Tensor};

use super::batch::Batch;
use crate::lm::LanguageModel;

/// Rows of a `[B, T, X]` tensor at the `N = batch.target_tokens` positions
/// where `batch.loss_mask` is true (row-major order): `[N, X]`.
///
/// # Errors
/// Shape mismatches between `t` and `batch`, or a tch error.
pub fn pick_target_positions(t: &Tensor, batch: &Batch) -> Result<Tensor> {
    let (b, len) = batch.input_ids.size2()?;
    let (tb, tl, x) = t.size3()?;
    anyhow::ensure!((tb, tl) == (b, len), "tensor is [{tb}, {tl}, {x}] but the batch is [{b}, {len}]");
    let idx = batch.loss_mask.f_flatten(0, -1)?.f_nonzero()?.f_squeeze_dim(1)?;
    Ok(t.f_reshape([b * len, x])?.f_index_select(0, &idx)?)
}

/// `(nll, token_weights)`, both `[N]` f32, from the logits `[N, V]` at the
/// target positions (as picked by [`pick_target_positions`]).
///
/// # Errors
/// Shape mismatches, or a tch error.
pub fn nll_at_targets(picked_logits: &Tensor, batch: &Batch) -> Result<(Tensor, Tensor)> {
    let (b, t) = batch.input_ids.size2()?;
    let idx = batch.loss_mask.f_flatten(0, -1)?.f_nonzero()?.f_squeeze_dim(1)?;
    let logp = picked_logits.f_log_softmax(-1, Kind::Float)?;
    let labels = batch.labels.f_flatten(0, -1)?.f_index_select(0, &idx)?;
    let nll = logp.f_gather(1, &labels.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?.f_neg()?;
    let weights = batch.weights.f_unsqueeze(1)?.f_expand([b, t], false)?.f_reshape([b * t])?.f_index_select(0, &idx)?;
    Ok((nll, weights))
}

/// Per-token negative log-likelihood of the target tokens.
///
/// `logits`: `[B, T, V]` f32 from the model on `batch.input_ids`. Returns
/// `(nll, token_weights)`, both `[N]` f32 over the `N = batch.target_tokens`
/// positions where `batch.loss_mask` is true (row-major order); every other
/// position — prompt, padding, and the last real token — is never read.
///
/// # Errors
/// Shape mismatches between `logits` and `batch`, or a tch error.
pub fn target_token_nll(logits: &Tensor, batch: &Batch) -> Result<(Tensor, Tensor)> {
    nll_at_targets(&pick_target_positions(logits, batch)?, batch)
}

/// As [`target_token_nll`], straight from the model: the LM head runs only on
/// the target positions' hidden states (prompt positions would cost a
/// `d × V` product per token for nothing), so it equals
/// `target_token_nll(&model.forward(..)?, batch)` without the full `[B, T, V]`
/// logits.
///
/// # Errors
/// Model, shape or tch errors.
pub fn model_target_nll(model: &LanguageModel, batch: &Batch) -> Result<(Tensor, Tensor)> {
    let hidden = model.hidden_states(&batch.input_ids, &batch.attention_mask)?;
    let picked = pick_target_positions(&hidden, batch)?;
    let logits = model.transformer().logits(&picked)?;
    nll_at_targets(&logits, batch)
}

/// As [`weighted_loss`], straight from the model (see [`model_target_nll`]).
///
/// # Errors
/// Model, shape or tch errors; `normaliser` must be > 0.
pub fn model_weighted_loss(model: &LanguageModel, batch: &Batch, normaliser: usize) -> Result<Tensor> {
    anyhow::ensure!(normaliser > 0, "loss normaliser must be > 0");
    let (nll, w) = model_target_nll(model, batch)?;
    Ok(nll.f_mul(&w)?.f_sum(Kind::Float)?.f_div_scalar(normaliser as f64)?)
}

/// This micro-batch's share of the step loss: `Σ w_i Σ_t nll / normaliser`,
/// a differentiable f32 scalar, where `normaliser` is the number of target
/// tokens in the whole effective batch (see the module docs).
///
/// # Errors
/// As [`target_token_nll`]; `normaliser` must be > 0.
pub fn weighted_loss(logits: &Tensor, batch: &Batch, normaliser: usize) -> Result<Tensor> {
    anyhow::ensure!(normaliser > 0, "loss normaliser must be > 0");
    let (nll, w) = target_token_nll(logits, batch)?;
    Ok(nll.f_mul(&w)?.f_sum(Kind::Float)?.f_div_scalar(normaliser as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::batch::{PreparedExample, TrainExample};
    use tch::Device;

    fn prepared(p: &[u32], t: &[u32], w: f32) -> PreparedExample {
        let ex = TrainExample { id: "x".into(), prompt_ids: p.to_vec(), target_ids: t.to_vec(), weight: w };
        PreparedExample::new(&ex, 64, 64).expect("valid")
    }

    #[test]
    fn matches_hand_computed_weighted_mean() {
        let a = prepared(&[1, 2], &[3, 4], 1.0);
        let b = prepared(&[5], &[6], 0.5);
        let batch = Batch::new(&[&a, &b], Device::Cpu).expect("batch");
        tch::manual_seed(0);
        let logits = Tensor::randn([2, 4, 8], (Kind::Float, Device::Cpu));
        let logp = logits.log_softmax(-1, Kind::Float);
        let lp = |r: i64, t: i64, y: i64| logp.double_value(&[r, t, y]);
        // a: positions 1→3, 2→4; b: position 0→6.
        let want = (-(lp(0, 1, 3) + lp(0, 2, 4)) - 0.5 * lp(1, 0, 6)) / 3.0;
        let got = weighted_loss(&logits, &batch, 3).expect("loss").double_value(&[]);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}
