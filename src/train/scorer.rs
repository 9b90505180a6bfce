//! The loss of a held-out set: how a caller measures what training did
//! (the trainer itself scores nothing; checkpoints are evaluated by
//! [`crate::eval`]).

use anyhow::{Context, Result};
use tch::Kind;

use super::batch::{Batch, PreparedExample, TrainExample};
use super::config::TrainConfig;
use super::loss::model_target_nll;
use crate::lm::LanguageModel;

/// The mean token cross-entropy (nats per target token, unweighted) of the
/// targets of a fixed validation set, computed without gradients.
#[derive(Debug)]
pub struct ValidationLossScorer {
    examples: Vec<PreparedExample>,
    micro_batch_size: usize,
}

impl ValidationLossScorer {
    /// Checks and cuts `examples` with `config`'s length limits; batches of
    /// `config.micro_batch_size`. Example weights are ignored (every target
    /// token counts once).
    ///
    /// # Errors
    /// An empty set, or an example the trainer would refuse (named).
    pub fn new(examples: &[TrainExample], config: &TrainConfig) -> Result<Self> {
        anyhow::ensure!(!examples.is_empty(), "the validation set is empty");
        let mut prepared = Vec::with_capacity(examples.len());
        for ex in examples {
            let mut p = PreparedExample::new(ex, config.max_input_tokens, config.max_output_tokens)
                .context("validation set")?;
            p.weight = 1.0;
            prepared.push(p);
        }
        prepared.sort_by_key(|p| p.ids.len());
        Ok(Self { examples: prepared, micro_batch_size: config.micro_batch_size })
    }

    /// Mean token negative log-likelihood (nats) of the validation targets.
    ///
    /// # Errors
    /// Model or tch errors.
    pub fn mean_loss(&self, model: &LanguageModel) -> Result<f64> {
        let _guard = tch::no_grad_guard();
        let device = model.var_store().device();
        let mut total = 0.0f64;
        let mut count = 0usize;
        for chunk in self.examples.chunks(self.micro_batch_size) {
            let refs: Vec<&PreparedExample> = chunk.iter().collect();
            let batch = Batch::new(&refs, device)?;
            let (nll, _) = model_target_nll(model, &batch)?;
            total += nll.f_sum(Kind::Double)?.f_double_value(&[])?;
            count += batch.target_tokens;
        }
        Ok(total / count as f64)
    }
}
