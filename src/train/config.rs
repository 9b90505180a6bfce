//! Training configuration: the serde form found in config files, with the
//! paper's defaults (REST-PG, Salemi et al. 2025, Appendix B), and its range
//! checks.

use serde::{Deserialize, Serialize};

/// Which optimiser updates the weights.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adafactor (Shazeer & Stern 2018), the paper's optimiser.
    #[default]
    Adafactor,
    /// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.
    Adamw,
}

/// Where an M-step (or SFT) starts from.
///
/// The trainer itself trains whatever model the caller passes; this setting
/// tells the coordinator which checkpoint an M-step's job starts from
/// before [`crate::train::Trainer::train`] is called.
pub use events::InitMode;

use crate::lm::placement::DtypeChoice;

/// AdamW hyper-parameters (PyTorch's defaults).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWParams {
    /// First-moment decay β1, in [0, 1).
    pub beta1: f64,
    /// Second-moment decay β2, in [0, 1).
    pub beta2: f64,
    /// Denominator ε, > 0.
    pub eps: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Adafactor hyper-parameters, named as in Shazeer & Stern (2018),
/// Algorithms 4 and 5 and Section 7.2.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdafactorParams {
    /// c in the second-moment decay schedule β̂2_t = 1 − t^(−c) (paper: 0.8).
    pub decay_rate: f64,
    /// ε1, added to the squared gradient (paper: 1e-30).
    pub eps1: f64,
    /// ε2, the floor of the parameter scale RMS(X) (paper: 1e-3); only used
    /// when `scale_parameter` is on.
    pub eps2: f64,
    /// d, the update-clipping threshold on RMS(U) (paper: 1.0).
    pub clip_threshold: f64,
    /// Multiply the step by max(ε2, RMS(X_{t−1})) (the paper's relative
    /// step size α_t). Off by default: the learning rate given by the
    /// schedule is the absolute step, as for a fine-tune with a fixed lr.
    pub scale_parameter: bool,
}

impl Default for AdafactorParams {
    fn default() -> Self {
        Self { decay_rate: 0.8, eps1: 1e-30, eps2: 1e-3, clip_threshold: 1.0, scale_parameter: false }
    }
}

/// Everything the trainer needs to know, with every value decided.
///
/// Defaults are the paper's (Appendix B): Adafactor, lr 5e-6, 250 warm-up
/// steps then linear decay to 0.1×, at most 10,000 steps, batch 64, weight
/// decay 0.01, gradient clipping at global norm 1.0, a checkpoint scored every
/// 1,000 steps, inputs ≤ 5,120 tokens and outputs ≤ 1,536 tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Peak learning rate (reached at the end of warm-up).
    pub learning_rate: f64,
    /// Linear warm-up steps from 0 to `learning_rate`.
    pub warmup_steps: u64,
    /// The learning rate at `max_steps` as a fraction of the peak (0.1).
    pub final_lr_fraction: f64,
    /// Number of optimiser steps.
    pub max_steps: u64,
    /// Examples per optimiser step (the effective batch).
    pub batch_size: usize,
    /// Examples per micro-batch; gradients are accumulated over
    /// `ceil(batch_size / micro_batch_size)` micro-batches. A micro-batch of
    /// more padded tokens than [`crate::train::trainer::FORWARD_TOKEN_BUDGET`]
    /// runs as several forward/backward passes of fewer rows (the same
    /// gradient, less memory).
    pub micro_batch_size: usize,
    /// Decoupled weight decay coefficient (not applied to 1-D tensors:
    /// norm gains and biases).
    pub weight_decay: f64,
    /// Global gradient-norm clipping threshold (L2 over all parameters).
    pub grad_clip_norm: f64,
    /// Write the resume state every this many steps.
    pub checkpoint_every: u64,
    /// Longest prompt (x plus the retrieved profile), in tokens; a longer
    /// prompt is an error.
    pub max_input_tokens: usize,
    /// Longest target (y, or reasoning ⊕ y), in tokens; a longer target is cut
    /// and counted.
    pub max_output_tokens: usize,
    /// Seed of the data order.
    pub seed: u64,
    /// Where each M-step starts from (used by the caller).
    pub init: InitMode,
    /// AdamW settings (used when `optimizer` is `adamw`).
    pub adamw: AdamWParams,
    /// Adafactor settings (used when `optimizer` is `adafactor`).
    pub adafactor: AdafactorParams,
    /// The precision of the forward and backward matrix products: `f32`
    /// (the default), `bf16` (mixed precision: f32 master weights,
    /// gradients, optimizer state, norms, attention and loss; bf16 products,
    /// as `torch.autocast(dtype=torch.bfloat16)` runs linear layers), or
    /// `auto` (bf16 on a GPU or on a CPU that multiplies bf16 natively,
    /// AVX512-BF16 or AMX; else f32). A run resolves `auto` before it logs
    /// its configuration, so a retrain uses the precision the run used.
    /// Left out of the canonical form when `f32`.
    #[serde(skip_serializing_if = "is_f32")]
    pub precision: DtypeChoice,
}

fn is_f32(d: &DtypeChoice) -> bool {
    *d == DtypeChoice::F32
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Adafactor,
            learning_rate: 5e-6,
            warmup_steps: 250,
            final_lr_fraction: 0.1,
            max_steps: 10_000,
            batch_size: 64,
            micro_batch_size: 4,
            weight_decay: 0.01,
            grad_clip_norm: 1.0,
            checkpoint_every: 1_000,
            max_input_tokens: 5_120,
            max_output_tokens: 1_536,
            seed: 0,
            init: InitMode::Fresh,
            adamw: AdamWParams::default(),
            adafactor: AdafactorParams::default(),
            precision: DtypeChoice::F32,
        }
    }
}

/// A configuration value out of its range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("train config: `{field}` = {value} is invalid: {reason}")]
pub struct ConfigError {
    /// The field's path, e.g. `adamw.beta1`.
    pub field: &'static str,
    /// The offending value, printed.
    pub value: String,
    /// The allowed range.
    pub reason: &'static str,
}

fn check(ok: bool, field: &'static str, value: impl ToString, reason: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError { field, value: value.to_string(), reason })
    }
}

impl TrainConfig {
    /// Checks every range.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let lr = self.learning_rate;
        check(lr.is_finite() && lr > 0.0, "learning_rate", lr, "must be finite and > 0")?;
        check(self.max_steps >= 1, "max_steps", self.max_steps, "must be >= 1")?;
        check(self.warmup_steps <= self.max_steps, "warmup_steps", self.warmup_steps, "must be <= max_steps")?;
        let f = self.final_lr_fraction;
        check((0.0..=1.0).contains(&f), "final_lr_fraction", f, "must be in [0, 1]")?;
        check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")?;
        check(self.micro_batch_size >= 1, "micro_batch_size", self.micro_batch_size, "must be >= 1")?;
        check(
            self.micro_batch_size <= self.batch_size,
            "micro_batch_size",
            self.micro_batch_size,
            "must be <= batch_size",
        )?;
        let wd = self.weight_decay;
        check(wd.is_finite() && wd >= 0.0, "weight_decay", wd, "must be finite and >= 0")?;
        let c = self.grad_clip_norm;
        check(c.is_finite() && c > 0.0, "grad_clip_norm", c, "must be finite and > 0")?;
        check(self.checkpoint_every >= 1, "checkpoint_every", self.checkpoint_every, "must be >= 1")?;
        check(self.max_input_tokens >= 1, "max_input_tokens", self.max_input_tokens, "must be >= 1")?;
        check(self.max_output_tokens >= 1, "max_output_tokens", self.max_output_tokens, "must be >= 1")?;
        let a = &self.adamw;
        check((0.0..1.0).contains(&a.beta1), "adamw.beta1", a.beta1, "must be in [0, 1)")?;
        check((0.0..1.0).contains(&a.beta2), "adamw.beta2", a.beta2, "must be in [0, 1)")?;
        check(a.eps.is_finite() && a.eps > 0.0, "adamw.eps", a.eps, "must be finite and > 0")?;
        let f = &self.adafactor;
        check(f.decay_rate > 0.0 && f.decay_rate <= 1.0, "adafactor.decay_rate", f.decay_rate, "must be in (0, 1]")?;
        check(f.eps1.is_finite() && f.eps1 > 0.0, "adafactor.eps1", f.eps1, "must be finite and > 0")?;
        check(f.eps2.is_finite() && f.eps2 >= 0.0, "adafactor.eps2", f.eps2, "must be finite and >= 0")?;
        check(
            f.clip_threshold.is_finite() && f.clip_threshold > 0.0,
            "adafactor.clip_threshold",
            f.clip_threshold,
            "must be finite and > 0",
        )?;
        Ok(())
    }

    /// Micro-batches per optimiser step.
    pub fn accumulation_steps(&self) -> usize {
        self.batch_size.div_ceil(self.micro_batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_and_valid() {
        let c = TrainConfig::default();
        c.validate().expect("defaults valid");
        assert_eq!(c.optimizer, OptimizerKind::Adafactor);
        assert_eq!(c.learning_rate, 5e-6);
        assert_eq!((c.warmup_steps, c.max_steps, c.batch_size), (250, 10_000, 64));
        assert_eq!((c.max_input_tokens, c.max_output_tokens), (5_120, 1_536));
        assert_eq!(c.accumulation_steps(), 16);
    }

    #[test]
    fn errors_name_the_field() {
        let c = TrainConfig { micro_batch_size: 128, ..TrainConfig::default() };
        assert_eq!(c.validate().unwrap_err().field, "micro_batch_size");
        let c = TrainConfig { adamw: AdamWParams { beta2: 1.0, ..Default::default() }, ..TrainConfig::default() };
        assert_eq!(c.validate().unwrap_err().field, "adamw.beta2");
        let c = TrainConfig { warmup_steps: 11, max_steps: 10, ..TrainConfig::default() };
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "warmup_steps");
        assert!(e.to_string().contains("warmup_steps"));
    }

    #[test]
    fn toml_round_trip_with_partial_fields() {
        let c: TrainConfig =
            toml::from_str("optimizer = \"adamw\"\nlearning_rate = 1e-4\n[adafactor]\neps1 = 1e-29\n").expect("parse");
        assert_eq!(c.optimizer, OptimizerKind::Adamw);
        assert_eq!(c.learning_rate, 1e-4);
        assert_eq!(c.adafactor.eps1, 1e-29);
        assert_eq!(c.batch_size, 64);
        assert!(toml::from_str::<TrainConfig>("learning_rat = 1.0").is_err());
    }
}
