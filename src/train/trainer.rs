//! The training loop: seeded data order, gradient accumulation (micro-batches
//! cut to a token budget per forward pass), clipping, the schedule, the
//! optimiser, and resume checkpoints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batch::{Batch, PreparedExample, TrainExample};
use super::checkpoint::{
    config_digest, load_vars, read_resume_state, resume_dir, save_vars, write_dir_atomically, ResumeState,
    RESUME_FORMAT,
};
use super::config::TrainConfig;
use super::loss::model_weighted_loss;
use super::optim::{clip_grad_norm, zero_grads, Optimizer};
use super::schedule::LinearSchedule;
use crate::lm::LanguageModel;

/// Reported after every optimiser step (the pipeline logs each as an event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainProgress {
    /// The step just taken (1-based).
    pub step: u64,
    /// The step's loss (see [`crate::train::loss`] for the normalisation).
    pub loss: f64,
    /// The learning rate used for the step.
    pub learning_rate: f64,
    /// Non-padding tokens in the step's effective batch.
    pub tokens: usize,
    /// Target (loss-carrying) tokens in the step's effective batch.
    pub target_tokens: usize,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// What a call to [`Trainer::train`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Optimiser steps completed in total (including those before a resume).
    pub steps: u64,
    /// The loss of the last step.
    pub final_loss: f64,
    /// Examples trained on (weight > 0).
    pub examples: usize,
    /// Examples of weight 0, removed before training (they cannot change the
    /// weights).
    pub zero_weight_examples: usize,
    /// Trained examples whose target was cut to `max_output_tokens`.
    pub truncated_outputs: usize,
    /// Non-padding tokens processed (including before a resume).
    pub tokens_seen: u64,
    /// The step this call resumed from, if it found a resume checkpoint.
    pub resumed_from: Option<u64>,
    /// Whether the call stopped at [`Trainer::stop_after`] before `max_steps`.
    pub stopped_early: bool,
}

/// Padded tokens (rows × longest row) above which a micro-batch is run as
/// several forward/backward passes of fewer rows.
///
/// The activations a backward pass needs grow with the padded tokens of its
/// forward pass (≈ 0.65 MiB per token for SmolLM2-135M in f32), so a
/// micro-batch of 4 × 512 tokens in one pass peaks above 7 GiB; as four
/// passes of one row it stays under 4 GiB. The gradients summed over the
/// passes are the micro-batch's (each pass's loss carries the step's
/// normaliser), so the update is the same up to the rounding of the sum;
/// the split depends only on the rows' lengths, so it is the same in a
/// fresh, a resumed and a replayed run.
pub const FORWARD_TOKEN_BUDGET: usize = 512;

/// `micro` (sorted by length) cut into consecutive forward passes of at
/// most [`FORWARD_TOKEN_BUDGET`] padded tokens each (at least one row per
/// pass).
fn forward_passes<'a, 'e>(micro: &'a [&'e PreparedExample]) -> Vec<&'a [&'e PreparedExample]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < micro.len() {
        let mut end = start + 1;
        // Rows are sorted by length, so the last row of a pass is its longest.
        while end < micro.len() && (end + 1 - start) * micro[end].ids.len() <= FORWARD_TOKEN_BUDGET {
            end += 1;
        }
        out.push(&micro[start..end]);
        start = end;
    }
    out
}

/// The data order: a seeded ChaCha8 RNG reshuffles the examples at the start
/// of every epoch; an effective batch takes the next `batch_size` indices,
/// crossing into the next epoch when needed.
#[derive(Debug)]
struct DataOrder {
    rng: ChaCha8Rng,
    order: Vec<u32>,
    cursor: usize,
    epoch: u64,
    len: usize,
}

impl DataOrder {
    fn new(seed: u64, len: usize) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed), order: Vec::new(), cursor: 0, epoch: 0, len }
    }

    fn next_batch(&mut self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.cursor >= self.order.len() {
                self.order = (0..self.len as u32).collect();
                self.order.shuffle(&mut self.rng);
                self.cursor = 0;
                self.epoch += 1;
            }
            out.push(self.order[self.cursor] as usize);
            self.cursor += 1;
        }
        out
    }
}

/// Trains a [`LanguageModel`] on [`TrainExample`]s (SFT: weights 1; M-step:
/// weights R), writing resume checkpoints under a work directory.
#[derive(Debug)]
pub struct Trainer {
    config: TrainConfig,
    work_dir: PathBuf,
    stop_after: Option<u64>,
}

impl Trainer {
    /// A trainer with a validated configuration, keeping its checkpoints in
    /// `work_dir` (created if missing). If `work_dir` holds a resume
    /// checkpoint, [`Self::train`] continues from it.
    ///
    /// # Errors
    /// A configuration field out of range (named), or `work_dir` cannot be
    /// created.
    pub fn new(config: TrainConfig, work_dir: impl Into<PathBuf>) -> Result<Self> {
        config.validate()?;
        let work_dir = work_dir.into();
        store::create_private_dir(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
        Ok(Self { config, work_dir, stop_after: None })
    }

    /// Stops after `step` (writing a resume checkpoint there), as if the run
    /// were interrupted or out of time; a later `train` on the same work
    /// directory continues to the same weights as an uninterrupted run.
    pub fn stop_after(mut self, step: u64) -> Self {
        self.stop_after = Some(step);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The work directory.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Trains `model` for `config.max_steps` steps (or up to
    /// [`Self::stop_after`]), calling `progress` after every step.
    ///
    /// Examples are checked against the length limits first (a prompt over
    /// `max_input_tokens` is an error naming the example; a target over
    /// `max_output_tokens` is cut and counted). Every `checkpoint_every`
    /// steps and at the last step, the resume state is written to
    /// `<work_dir>/resume/`; on return `model` holds the last step's weights.
    ///
    /// Determinism: the same data, configuration (seed included) and torch
    /// thread count give the same weights, bit for bit, including across a
    /// stop and resume.
    ///
    /// # Errors
    /// Bad examples, no example of weight > 0, a resume checkpoint written
    /// with another configuration or other data, non-finite gradients, model,
    /// I/O or tch errors.
    pub fn train(
        &mut self,
        model: &mut LanguageModel,
        data: &[TrainExample],
        progress: &mut dyn FnMut(TrainProgress),
    ) -> Result<TrainSummary> {
        let cfg = self.config.clone();
        let mut examples = Vec::with_capacity(data.len());
        let mut zero_weight = 0;
        for ex in data {
            let p = PreparedExample::new(ex, cfg.max_input_tokens, cfg.max_output_tokens)?;
            if p.weight == 0.0 {
                zero_weight += 1;
            } else {
                examples.push(p);
            }
        }
        if examples.is_empty() {
            bail!("no training example has a weight > 0 ({} given, {zero_weight} of weight 0)", data.len());
        }
        let truncated_outputs = examples.iter().filter(|e| e.truncated).count();
        let data_digest = digest(&examples);
        let device = model.var_store().device();
        model.set_training_precision(cfg.precision.resolve(device))?;
        let mut opt = Optimizer::new(&cfg, model.var_store())?;
        let schedule = LinearSchedule {
            peak: cfg.learning_rate,
            warmup_steps: cfg.warmup_steps,
            max_steps: cfg.max_steps,
            final_fraction: cfg.final_lr_fraction,
        };
        let mut order = DataOrder::new(cfg.seed, examples.len());
        let mut last_loss = f64::NAN;
        let mut tokens_seen = 0u64;
        let mut resumed_from = None;

        if let Some(state) = read_resume_state(&self.work_dir)? {
            self.restore(&state, &data_digest, model, &mut opt, &mut order)?;
            last_loss = f64::from_bits(state.last_loss_bits);
            tokens_seen = state.tokens_seen;
            resumed_from = Some(state.step);
            tracing::info!(step = state.step, dir = %self.work_dir.display(), "resuming training");
        }

        let mut stopped_early = false;
        let mut step = opt.steps_taken();
        while step < cfg.max_steps {
            step += 1;
            let mut chosen: Vec<&PreparedExample> =
                order.next_batch(cfg.batch_size).into_iter().map(|i| &examples[i]).collect();
            // Similar lengths together: less padding; a stable sort keeps it
            // deterministic.
            chosen.sort_by_key(|e| e.ids.len());
            let normaliser: usize = chosen.iter().map(|e| e.target_len).sum();
            zero_grads(opt.params_mut());
            let mut step_loss = 0.0;
            let mut step_tokens = 0;
            for micro in chosen.chunks(cfg.micro_batch_size).flat_map(forward_passes) {
                let batch = Batch::new(micro, device)?;
                let loss = model_weighted_loss(model, &batch, normaliser)
                    .with_context(|| format!("forward pass at step {step}"))?;
                loss.f_backward().with_context(|| format!("backward pass at step {step}"))?;
                step_loss += loss.f_double_value(&[])?;
                step_tokens += batch.tokens;
            }
            let grad_norm = clip_grad_norm(opt.params(), cfg.grad_clip_norm).with_context(|| format!("step {step}"))?;
            let lr = schedule.lr(step);
            opt.step(lr)?;
            last_loss = step_loss;
            tokens_seen += step_tokens as u64;

            let last = step == cfg.max_steps;
            progress(TrainProgress {
                step,
                loss: step_loss,
                learning_rate: lr,
                tokens: step_tokens,
                target_tokens: normaliser,
                grad_norm,
            });
            let stop_here = self.stop_after == Some(step) && !last;
            if step % cfg.checkpoint_every == 0 || last || stop_here {
                let state = ResumeState {
                    format: RESUME_FORMAT,
                    step,
                    config: cfg.clone(),
                    config_digest: config_digest(&cfg)?,
                    data_digest: data_digest.clone(),
                    order: order.order.clone(),
                    cursor: order.cursor,
                    epoch: order.epoch,
                    rng_word_pos: order.rng.get_word_pos().to_string(),
                    last_loss_bits: last_loss.to_bits(),
                    tokens_seen,
                    torch_threads: tch::get_num_threads(),
                };
                self.save_resume(&state, model, &opt)?;
            }
            if stop_here {
                stopped_early = true;
                break;
            }
        }

        Ok(TrainSummary {
            steps: step,
            final_loss: last_loss,
            examples: examples.len(),
            zero_weight_examples: zero_weight,
            truncated_outputs,
            tokens_seen,
            resumed_from,
            stopped_early,
        })
    }

    fn save_resume(&self, state: &ResumeState, model: &LanguageModel, opt: &Optimizer) -> Result<()> {
        let json = serde_json::to_string_pretty(state).context("serialising the resume state")?;
        write_dir_atomically(&resume_dir(&self.work_dir), |d| {
            save_vars(model.var_store(), &d.join("weights.safetensors"))?;
            let path = d.join("optimizer.safetensors");
            tch::Tensor::write_safetensors(&opt.state_tensors(), &path)
                .with_context(|| format!("writing {}", path.display()))?;
            store::write_private_file(d.join("trainer_state.json"), json.as_bytes())
                .context("writing trainer_state.json")?;
            Ok(())
        })
    }

    fn restore(
        &self,
        state: &ResumeState,
        data_digest: &str,
        model: &mut LanguageModel,
        opt: &mut Optimizer,
        order: &mut DataOrder,
    ) -> Result<()> {
        let dir = resume_dir(&self.work_dir);
        if state.config_digest != config_digest(&self.config)? {
            bail!(
                "{}: the resume checkpoint was written with another training configuration; \
                 use the same configuration or a fresh work directory",
                dir.display()
            );
        }
        if state.data_digest != data_digest {
            bail!(
                "{}: the resume checkpoint was written for other training data (digest {} vs {data_digest})",
                dir.display(),
                state.data_digest
            );
        }
        if state.torch_threads != tch::get_num_threads() {
            tracing::warn!(
                saved = state.torch_threads,
                now = tch::get_num_threads(),
                "torch thread count differs from the interrupted run: weights may differ in the last bits"
            );
        }
        if state.order.len() != order.len || state.cursor > state.order.len() {
            bail!(
                "{}: data order of {} examples does not fit {} examples",
                dir.display(),
                state.order.len(),
                order.len
            );
        }
        load_vars(model.var_store(), &dir.join("weights.safetensors"))?;
        let path = dir.join("optimizer.safetensors");
        let tensors = tch::Tensor::read_safetensors(&path).with_context(|| format!("reading {}", path.display()))?;
        opt.load_state(tensors, state.step).with_context(|| format!("restoring {}", path.display()))?;
        order.order = state.order.clone();
        order.cursor = state.cursor;
        order.epoch = state.epoch;
        let pos: u128 = state
            .rng_word_pos
            .parse()
            .with_context(|| format!("{}: rng_word_pos `{}`", dir.display(), state.rng_word_pos))?;
        order.rng.set_word_pos(pos);
        Ok(())
    }
}

/// blake3 over the kept examples (id, tokens, lengths, weight bits), hex.
fn digest(examples: &[PreparedExample]) -> String {
    let mut h = blake3::Hasher::new();
    for e in examples {
        h.update(&(e.id.len() as u64).to_le_bytes());
        h.update(e.id.as_bytes());
        h.update(&(e.prompt_len as u64).to_le_bytes());
        h.update(&(e.ids.len() as u64).to_le_bytes());
        for t in &e.ids {
            h.update(&t.to_le_bytes());
        }
        h.update(&e.weight.to_bits().to_le_bytes());
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(len: usize) -> PreparedExample {
        let ex = TrainExample { id: format!("l{len}"), prompt_ids: vec![1], target_ids: vec![2; len - 1], weight: 1.0 };
        PreparedExample::new(&ex, 8, 4096).expect("valid")
    }

    #[test]
    fn micro_batches_are_cut_to_the_token_budget() {
        let rows: Vec<PreparedExample> = [100, 120, 128, 200, 300, 600].into_iter().map(example).collect();
        let refs: Vec<&PreparedExample> = rows.iter().collect();
        let lens = |passes: Vec<&[&PreparedExample]>| -> Vec<Vec<usize>> {
            passes.iter().map(|p| p.iter().map(|e| e.ids.len()).collect()).collect()
        };
        // 4 × 128 = 512 fits; 2 × 300 does not; a row over the budget runs alone.
        assert_eq!(lens(forward_passes(&refs)), vec![vec![100, 120, 128], vec![200], vec![300], vec![600]]);
        assert_eq!(lens(forward_passes(&refs[..2])), vec![vec![100, 120]]);
        let four: Vec<PreparedExample> = (0..4).map(|_| example(512)).collect();
        let four: Vec<&PreparedExample> = four.iter().collect();
        assert_eq!(forward_passes(&four).len(), 4);
        let small: Vec<PreparedExample> = (0..4).map(|_| example(64)).collect();
        let small: Vec<&PreparedExample> = small.iter().collect();
        assert_eq!(forward_passes(&small).len(), 1);
    }

    #[test]
    fn data_order_is_seeded_and_resumable() {
        let mut a = DataOrder::new(3, 5);
        let first: Vec<usize> = (0..4).flat_map(|_| a.next_batch(3)).collect();
        // Every epoch is a permutation.
        let mut e1 = first[..5].to_vec();
        e1.sort_unstable();
        assert_eq!(e1, vec![0, 1, 2, 3, 4]);
        let mut b = DataOrder::new(3, 5);
        let _ = b.next_batch(7);
        let mut c = DataOrder::new(3, 5);
        c.order = b.order.clone();
        c.cursor = b.cursor;
        c.epoch = b.epoch;
        c.rng.set_word_pos(b.rng.get_word_pos());
        assert_eq!(b.next_batch(5), c.next_batch(5));
        assert_eq!(b.next_batch(9), c.next_batch(9));
        assert_eq!(
            &first[7..12],
            &{
                let mut d = DataOrder::new(3, 5);
                let _ = d.next_batch(7);
                d.next_batch(5)
            }[..]
        );
        assert_ne!(DataOrder::new(4, 5).next_batch(5), DataOrder::new(3, 5).next_batch(5));
    }
}
