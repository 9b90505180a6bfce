//! What re-running an iteration needs from the log, as plain data: the
//! M-step's inputs and logged outcome ([`RetrainSpec`]) and a choice of
//! logged samples to draw again ([`ResampleSpec`]). The root package runs
//! them with its tch model; this crate only gathers and compares.

use events::{Digest, Role, SampleId};
use serde::Serialize;

use crate::completion::Completion;
use crate::state::{CheckpointRecord, ProgressPoint, RunState};
use crate::verify::{RebuildError, VerifyError};

/// Why a spec cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// D_t does not verify: re-running it would prove nothing.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// D_t cannot be rebuilt.
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
    /// The state was folded without texts.
    #[error("the log was folded without sample texts; fold it with texts to build a spec")]
    NoText,
    /// The log has no `RunStarted` record (no run seed, no configuration).
    #[error("the log has no RunStarted record")]
    NoRun,
    /// The iteration has no generated samples to draw again.
    #[error("iteration {0} has no generated samples")]
    NoSamples(u32),
}

/// One training example of D_t as a retrain replays it (the actors' own
/// training example is `actors::capability::TrainItem`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetrainItem {
    /// The sample.
    pub sample: SampleId,
    /// blake3 of its prompt (the root rebuilds the prompt and should check it).
    pub prompt_digest: Digest,
    /// The text trained on ([`Completion::text`](crate::Completion::text)).
    pub completion: String,
    /// Its loss weight, the reward.
    pub weight: f32,
}

/// Everything the log says about one iteration's M-step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetrainSpec {
    /// Iteration t.
    pub iteration: u32,
    /// The run seed.
    pub run_seed: u64,
    /// The M-step's training seed, [`events::train_seed`] of the run seed
    /// and `iteration`, as the coordinator derived it.
    pub train_seed: u64,
    /// The run's resolved configuration (training settings live there).
    pub config_toml: String,
    /// Where the M-step starts, as the run logged it (`None`: an old log
    /// that records it nowhere).
    pub init: Option<events::InitMode>,
    /// The checkpoint the M-step starts from, chosen by the rule of
    /// [`RunState::retrain_spec`]; `None` when the log has no candidate.
    pub start: Option<CheckpointRecord>,
    /// Every checkpoint logged before D_t's seal, in log order, for callers
    /// whose rule differs.
    pub checkpoints_before: Vec<CheckpointRecord>,
    /// The checkpoint that sampled D_t's samples (θ_t).
    pub sampled_from: Option<Digest>,
    /// D_t in canonical order.
    pub items: Vec<RetrainItem>,
    /// D_t's sealed digest (verified).
    pub dataset_digest: Digest,
    /// The logged loss curve of this M-step, in step order.
    pub loss_curve: Vec<ProgressPoint>,
    /// The M-step's last logged checkpoint (`m-step` role, highest step): the
    /// hash a retrain must reproduce.
    pub logged_checkpoint: Option<CheckpointRecord>,
}

/// One logged sample to draw again, with the text it must reproduce.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResampleItem {
    /// The sample.
    pub sample: SampleId,
    /// Its sampling seed.
    pub seed: u64,
    /// blake3 of its prompt.
    pub prompt_digest: Digest,
    /// The checkpoint that sampled it.
    pub checkpoint: Digest,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus mass.
    pub top_p: f32,
    /// The repetition guards it was drawn with: drawing again needs the same.
    pub penalties: events::Penalties,
    /// The precision the model ran in: drawing again needs the same.
    pub precision: events::Precision,
    /// The engine that drew it: only a deterministic one promises the same
    /// text again for the same request and seed.
    pub engine: events::EngineInfo,
    /// Generated length in tokens (a generation budget that reproduces it).
    pub output_tokens: u32,
    /// The logged reasoning.
    pub reasoning: Option<String>,
    /// The logged response.
    pub response: String,
}

/// Where a regenerated text first differs from the logged one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{sample}: the regenerated {part} differs from the logged one at byte {offset}: logged {logged:?}…, new {new:?}…"
)]
pub struct TextMismatch {
    /// The sample.
    pub sample: SampleId,
    /// `reasoning` or `response`.
    pub part: &'static str,
    /// Byte offset of the first difference.
    pub offset: usize,
    /// Up to 40 bytes of the logged text from there (lossy UTF-8).
    pub logged: String,
    /// Up to 40 bytes of the new text from there.
    pub new: String,
}

impl ResampleItem {
    /// Checks a regenerated output against the logged one, byte for byte.
    ///
    /// # Errors
    /// [`TextMismatch`] naming the part and the first differing byte.
    pub fn check(&self, reasoning: Option<&str>, response: &str) -> Result<(), TextMismatch> {
        let logged_reasoning = self.reasoning.as_deref();
        if logged_reasoning != reasoning {
            return Err(self.mismatch("reasoning", logged_reasoning.unwrap_or(""), reasoning.unwrap_or("")));
        }
        if self.response != response {
            return Err(self.mismatch("response", &self.response, response));
        }
        Ok(())
    }

    fn mismatch(&self, part: &'static str, logged: &str, new: &str) -> TextMismatch {
        let offset = logged.bytes().zip(new.bytes()).take_while(|(a, b)| a == b).count();
        let cut = |s: &str| {
            String::from_utf8_lossy(&s.as_bytes()[offset.min(s.len())..(offset + 40).min(s.len())]).into_owned()
        };
        TextMismatch { sample: self.sample.clone(), part, offset, logged: cut(logged), new: cut(new) }
    }
}

/// Samples of one iteration to draw again.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResampleSpec {
    /// Iteration t.
    pub iteration: u32,
    /// The run seed.
    pub run_seed: u64,
    /// The samples, in canonical order.
    pub items: Vec<ResampleItem>,
}

/// The step at which two loss curves part: the first position where the
/// steps differ or the losses differ in any bit, or where one curve ends
/// before the other (then the step of the first extra point). `None` when
/// they are identical.
pub fn compare_loss_curves(logged: &[ProgressPoint], new: &[ProgressPoint]) -> Option<u64> {
    compare_loss_curves_within(logged, new, 0.0)
}

/// As [`compare_loss_curves`], with losses equal when they differ by at most
/// `tolerance` relative to the logged loss's magnitude (0 means bit-equal).
pub fn compare_loss_curves_within(logged: &[ProgressPoint], new: &[ProgressPoint], tolerance: f32) -> Option<u64> {
    for (a, b) in logged.iter().zip(new) {
        let same_loss = if tolerance == 0.0 {
            a.loss.to_bits() == b.loss.to_bits()
        } else {
            (a.loss - b.loss).abs() <= tolerance * a.loss.abs().max(f32::MIN_POSITIVE)
        };
        if a.step != b.step || !same_loss {
            return Some(a.step.min(b.step));
        }
    }
    let n = logged.len().min(new.len());
    logged.get(n).or(new.get(n)).map(|p| p.step)
}

impl RunState {
    /// What re-running iteration `t`'s M-step needs, after verifying D_t;
    /// `completion` joins each sample's reasoning and response into the
    /// text trained on.
    ///
    /// The starting checkpoint: with `init = continue` θ_t, the logged
    /// checkpoint that sampled D_t (the previous M-step's, or SFT's for
    /// t = 1); otherwise (`fresh`, the default) the last checkpoint with
    /// role `base` logged before the seal. Callers with another rule choose
    /// from `checkpoints_before`.
    ///
    /// # Errors
    /// [`SpecError`]: D_t does not verify, texts were not kept, or the log
    /// has no `RunStarted`.
    pub fn retrain_spec(&self, t: u32, completion: &Completion) -> Result<RetrainSpec, SpecError> {
        let verified = self.verify_iteration(t)?;
        let run = self.run.as_ref().ok_or(SpecError::NoRun)?;
        let mut items = Vec::new();
        let mut sampled_from = None;
        for s in self.kept(t)? {
            let f = s.filter.expect("kept samples are decided");
            let g = s.generated.as_ref().expect("verified: every kept sample was generated");
            let text = g.text.as_ref().ok_or(SpecError::NoText)?;
            sampled_from.get_or_insert(g.checkpoint);
            items.push(RetrainItem {
                sample: s.id.clone(),
                prompt_digest: g.prompt_digest,
                completion: completion.text(text.reasoning.as_deref(), &text.response),
                weight: f.reward,
            });
        }
        let checkpoints_before: Vec<CheckpointRecord> =
            self.checkpoints.iter().filter(|c| c.seq < verified.seal_seq).cloned().collect();
        let start = if run.init == Some(events::InitMode::Continue) {
            checkpoints_before
                .iter()
                .rev()
                .find(|c| Some(c.hash) == sampled_from)
                .or(checkpoints_before.last())
                .cloned()
        } else {
            checkpoints_before.iter().rev().find(|c| c.role == Role::Base).cloned()
        };
        let mut loss_curve = self.training.get(&t).cloned().unwrap_or_default();
        loss_curve.sort_by_key(|p| p.step);
        let logged_checkpoint = self
            .checkpoints
            .iter()
            .filter(|c| c.iteration == t && c.role == Role::MStep)
            .max_by_key(|c| (c.step, c.seq))
            .cloned();
        Ok(RetrainSpec {
            iteration: t,
            run_seed: run.seed,
            train_seed: events::train_seed(run.seed, t),
            config_toml: run.config_toml.clone(),
            init: run.init,
            start,
            checkpoints_before,
            sampled_from,
            items,
            dataset_digest: verified.digest,
            loss_curve,
            logged_checkpoint,
        })
    }

    /// `n` logged samples of iteration `t` to draw again, spread evenly over
    /// the iteration's samples in canonical order (all of them when `n` is at
    /// least their number).
    ///
    /// # Errors
    /// [`SpecError`]: no such iteration, no samples, no texts, no run.
    pub fn resample_spec(&self, t: u32, n: usize) -> Result<ResampleSpec, SpecError> {
        let run = self.run.as_ref().ok_or(SpecError::NoRun)?;
        let it = self.iteration(t)?;
        let generated: Vec<_> = it.samples.values().filter_map(|s| s.generated.as_ref().map(|g| (s, g))).collect();
        if generated.is_empty() {
            return Err(SpecError::NoSamples(t));
        }
        let n = n.min(generated.len());
        let mut items = Vec::with_capacity(n);
        for k in 0..n {
            let (s, g) = generated[k * generated.len() / n];
            let text = g.text.as_ref().ok_or(SpecError::NoText)?;
            items.push(ResampleItem {
                sample: s.id.clone(),
                seed: g.seed,
                prompt_digest: g.prompt_digest,
                checkpoint: g.checkpoint,
                temperature: g.temperature,
                top_p: g.top_p,
                penalties: g.penalties,
                precision: g.precision,
                engine: g.engine.clone(),
                output_tokens: g.output_tokens,
                reasoning: text.reasoning.clone(),
                response: text.response.clone(),
            });
        }
        Ok(ResampleSpec { iteration: t, run_seed: run.seed, items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(losses: &[f32]) -> Vec<ProgressPoint> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| ProgressPoint { seq: 0, step: i as u64 + 1, loss, learning_rate: 1e-5, tokens: 0 })
            .collect()
    }

    #[test]
    fn loss_curves_part_where_the_first_loss_differs() {
        let a = curve(&[2.0, 1.5, 1.2, 1.0]);
        assert_eq!(compare_loss_curves(&a, &a), None);
        assert_eq!(compare_loss_curves(&a, &curve(&[2.0, 1.5, 1.3, 1.0])), Some(3));
        assert_eq!(compare_loss_curves(&a, &curve(&[2.0, 1.5])), Some(3), "a shorter curve parts where it ends");
        assert_eq!(compare_loss_curves(&curve(&[2.0]), &a), Some(2));
        assert_eq!(compare_loss_curves_within(&a, &curve(&[2.0, 1.5000001, 1.2, 1.0]), 1e-5), None);
        assert_eq!(compare_loss_curves(&[], &[]), None);
    }

    #[test]
    fn a_text_mismatch_names_the_part_and_the_offset() {
        let item = ResampleItem {
            sample: SampleId { iteration: 1, input_id: "x".into(), index: 0 },
            seed: 1,
            prompt_digest: [0; 32],
            checkpoint: [0; 32],
            temperature: 0.7,
            top_p: 0.95,
            penalties: events::Penalties::default(),
            precision: events::Precision::F32,
            engine: events::EngineInfo::tch(),
            output_tokens: 3,
            reasoning: Some("terse".into()),
            response: "See you Monday.".into(),
        };
        assert!(item.check(Some("terse"), "See you Monday.").is_ok());
        let e = item.check(Some("terse"), "See you Tuesday.").unwrap_err();
        assert_eq!((e.part, e.offset), ("response", 8));
        assert_eq!(item.check(None, "See you Monday.").unwrap_err().part, "reasoning");
    }
}
