//! Training: supervised fine-tuning (SFT, SFT with reasoning) and the
//! reward-weighted M-step of REST-PG (Salemi et al. 2025, Algorithm 1,
//! line 11; the ReST-EM M-step of Singh et al. 2024).
//!
//! The caller hands the [`Trainer`] a [`crate::lm::LanguageModel`] and a
//! slice of [`TrainExample`]s: token ids of the prompt (x with the retrieved
//! profile, in the chat template) and of the target (y, or reasoning ⊕ y),
//! with a weight (the reward R for the M-step, 1 for SFT). The trainer
//!
//! * checks the length limits ([`PreparedExample`]): a prompt over
//!   `max_input_tokens` is an error naming the example — shortening it by
//!   trimming retrieved profile items is the prompt module's job — and a
//!   target over `max_output_tokens` is cut and counted in the
//!   [`TrainSummary`];
//! * draws effective batches of `batch_size` examples in a seeded order
//!   (ChaCha8, reshuffled every epoch), splits each into micro-batches of
//!   `micro_batch_size` and accumulates gradients of the loss in [`loss`]
//!   (weighted token cross-entropy on target tokens only, normalised by the
//!   effective batch's target-token count, so the micro-batch size does not
//!   change the update);
//! * clips the global gradient norm, takes the [`schedule`]'s learning rate
//!   (linear warm-up, linear decay to 0.1×) and updates with our own
//!   [`optim::Optimizer`] (Adafactor, the paper's, or AdamW), whose state is
//!   plain tensors;
//! * every `checkpoint_every` steps writes a resume checkpoint
//!   ([`checkpoint`]) with the weights, the optimiser state, the step, the
//!   data-order position and RNG state, so that a stopped run continues to
//!   the very same weights.
//!
//! The trainer returns the last step's weights; checkpoints are scored by
//! the run's evaluation ([`crate::eval`]), not here. Whether an M-step
//! starts from the base weights (`InitMode::Fresh`, the paper's default) or
//! from the previous iteration's (`Continue`) is decided by the
//! coordinator, which names the starting checkpoint in the job.
//!
//! Determinism: same data, configuration (seed included) and torch thread
//! count give the same weights bit for bit. There is no dropout in the
//! policy model, so the data order is the only randomness.
pub mod adamw_fused;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod loss;
pub mod optim;
pub mod schedule;
pub mod scorer;
pub mod trainer;

pub use batch::{PreparedExample, TrainDataError, TrainExample};
pub use config::{AdafactorParams, AdamWParams, ConfigError, InitMode, OptimizerKind, TrainConfig};
pub use scorer::ValidationLossScorer;
pub use trainer::{TrainProgress, TrainSummary, Trainer};
