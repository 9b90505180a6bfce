//! Training examples, their length limits, and padded batches.
//!
//! An example becomes one causal sequence `prompt ⊕ target`; position `t`
//! predicts token `t + 1`, and only positions whose next token belongs to the
//! target carry loss (the last prompt position predicts the first target
//! token). Batches are right-padded: with a causal mask, padding after a
//! sequence cannot influence its positions, and the padded positions carry
//! neither attention (mask 0) nor loss.

use tch::{Device, Kind, Tensor};

/// Token id written into padded positions (never attended, never scored).
pub const PAD_ID: i64 = 0;

/// One training example: a prompt, a target and the target's weight.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainExample {
    /// Stable id (used in errors and in the data digest).
    pub id: String,
    /// The prompt tokens: the input x with the retrieved profile, already in
    /// the chat template (the prompt module builds and shortens it).
    pub prompt_ids: Vec<u32>,
    /// The target tokens: y, or reasoning ⊕ y; include the end-of-turn token
    /// if the model should learn to stop (the trainer appends nothing).
    pub target_ids: Vec<u32>,
    /// The example's weight in the loss: the reward R for an M-step, 1 for
    /// SFT. Finite and ≥ 0; examples of weight 0 are removed before training
    /// and counted.
    pub weight: f32,
}

/// An example that the trainer refuses.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrainDataError {
    /// The prompt is longer than `max_input_tokens`; shorten it by trimming
    /// retrieved profile items (the prompt module's job), never the user's
    /// own input.
    #[error("example `{id}`: prompt has {len} tokens, over the limit of {max} (trim retrieved profile items)")]
    PromptTooLong {
        /// Example id.
        id: String,
        /// Prompt length in tokens.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The prompt is empty: the first target token would have no position to
    /// be predicted from.
    #[error("example `{id}`: empty prompt")]
    EmptyPrompt {
        /// Example id.
        id: String,
    },
    /// The target is empty: nothing to learn.
    #[error("example `{id}`: empty target")]
    EmptyTarget {
        /// Example id.
        id: String,
    },
    /// The weight is negative, NaN or infinite.
    #[error("example `{id}`: weight {weight} is not finite and >= 0")]
    BadWeight {
        /// Example id.
        id: String,
        /// The weight given.
        weight: f32,
    },
}

/// An example checked against the limits, with its target cut to at most
/// `max_output_tokens`.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedExample {
    /// Example id.
    pub id: String,
    /// `prompt ⊕ target` (target already cut).
    pub ids: Vec<u32>,
    /// Prompt length in tokens (≥ 1).
    pub prompt_len: usize,
    /// Target length in tokens after the cut (≥ 1); the loss covers exactly
    /// these tokens.
    pub target_len: usize,
    /// Loss weight.
    pub weight: f32,
    /// Whether the target was cut.
    pub truncated: bool,
}

impl PreparedExample {
    /// Checks `ex` and cuts its target to `max_output` tokens.
    ///
    /// # Errors
    /// [`TrainDataError`] naming the example.
    pub fn new(ex: &TrainExample, max_input: usize, max_output: usize) -> Result<Self, TrainDataError> {
        let id = || ex.id.clone();
        if !(ex.weight.is_finite() && ex.weight >= 0.0) {
            return Err(TrainDataError::BadWeight { id: id(), weight: ex.weight });
        }
        if ex.prompt_ids.is_empty() {
            return Err(TrainDataError::EmptyPrompt { id: id() });
        }
        if ex.target_ids.is_empty() {
            return Err(TrainDataError::EmptyTarget { id: id() });
        }
        if ex.prompt_ids.len() > max_input {
            return Err(TrainDataError::PromptTooLong { id: id(), len: ex.prompt_ids.len(), max: max_input });
        }
        let target_len = ex.target_ids.len().min(max_output);
        let mut ids = Vec::with_capacity(ex.prompt_ids.len() + target_len);
        ids.extend_from_slice(&ex.prompt_ids);
        ids.extend_from_slice(&ex.target_ids[..target_len]);
        Ok(Self {
            id: id(),
            ids,
            prompt_len: ex.prompt_ids.len(),
            target_len,
            weight: ex.weight,
            truncated: target_len < ex.target_ids.len(),
        })
    }
}

/// A right-padded micro-batch as tensors on one device.
#[derive(Debug)]
pub struct Batch {
    /// `[B, T]` i64 token ids, [`PAD_ID`] after each sequence's end.
    pub input_ids: Tensor,
    /// `[B, T]` i64, 1 on real tokens, 0 on padding.
    pub attention_mask: Tensor,
    /// `[B, T]` i64 next-token labels: `labels[b, t] = input_ids[b, t + 1]`
    /// where that is a target token; the value elsewhere is never read (it is
    /// [`PAD_ID`] here; tests perturb it).
    pub labels: Tensor,
    /// `[B, T]` bool, true where `labels` is a target token, i.e. for
    /// `t ∈ [prompt_len − 1, prompt_len + target_len − 1)`.
    pub loss_mask: Tensor,
    /// `[B]` f32 example weights.
    pub weights: Tensor,
    /// Number of positions carrying loss (`loss_mask.sum()`).
    pub target_tokens: usize,
    /// Number of real (non-padding) tokens.
    pub tokens: usize,
}

impl Batch {
    /// Pads `examples` to the longest one and builds the tensors on `device`.
    ///
    /// # Errors
    /// An empty slice, or a tch error.
    pub fn new(examples: &[&PreparedExample], device: Device) -> anyhow::Result<Self> {
        anyhow::ensure!(!examples.is_empty(), "a batch needs at least one example");
        let b = examples.len();
        let t = examples.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let mut ids = vec![PAD_ID; b * t];
        let mut mask = vec![0i64; b * t];
        let mut labels = vec![PAD_ID; b * t];
        let mut loss_mask = vec![false; b * t];
        let mut target_tokens = 0;
        let mut tokens = 0;
        for (row, e) in examples.iter().enumerate() {
            let base = row * t;
            for (i, &tok) in e.ids.iter().enumerate() {
                ids[base + i] = i64::from(tok);
                mask[base + i] = 1;
            }
            for pos in e.prompt_len - 1..e.prompt_len + e.target_len - 1 {
                labels[base + pos] = i64::from(e.ids[pos + 1]);
                loss_mask[base + pos] = true;
            }
            target_tokens += e.target_len;
            tokens += e.ids.len();
        }
        let shape = [b as i64, t as i64];
        let weights: Vec<f32> = examples.iter().map(|e| e.weight).collect();
        Ok(Self {
            input_ids: Tensor::from_slice(&ids).f_view(shape)?.f_to(device)?,
            attention_mask: Tensor::from_slice(&mask).f_view(shape)?.f_to(device)?,
            labels: Tensor::from_slice(&labels).f_view(shape)?.f_to(device)?,
            loss_mask: Tensor::from_slice(&loss_mask).f_view(shape)?.f_to(device)?,
            weights: Tensor::from_slice(&weights).f_to_kind(Kind::Float)?.f_to(device)?,
            target_tokens,
            tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, p: &[u32], t: &[u32], w: f32) -> TrainExample {
        TrainExample { id: id.into(), prompt_ids: p.to_vec(), target_ids: t.to_vec(), weight: w }
    }

    #[test]
    fn limits_are_enforced_and_named() {
        let e = PreparedExample::new(&ex("a", &[1, 2, 3], &[4], 1.0), 2, 10).unwrap_err();
        assert_eq!(e, TrainDataError::PromptTooLong { id: "a".into(), len: 3, max: 2 });
        assert!(e.to_string().contains("`a`"));
        assert!(matches!(
            PreparedExample::new(&ex("b", &[], &[4], 1.0), 8, 8),
            Err(TrainDataError::EmptyPrompt { .. })
        ));
        assert!(matches!(
            PreparedExample::new(&ex("c", &[1], &[], 1.0), 8, 8),
            Err(TrainDataError::EmptyTarget { .. })
        ));
        assert!(matches!(
            PreparedExample::new(&ex("d", &[1], &[2], -0.5), 8, 8),
            Err(TrainDataError::BadWeight { .. })
        ));
        assert!(matches!(
            PreparedExample::new(&ex("e", &[1], &[2], f32::NAN), 8, 8),
            Err(TrainDataError::BadWeight { .. })
        ));
        let p = PreparedExample::new(&ex("f", &[1, 2], &[3, 4, 5, 6], 0.5), 2, 3).expect("ok");
        assert_eq!((p.ids.clone(), p.prompt_len, p.target_len, p.truncated), (vec![1, 2, 3, 4, 5], 2, 3, true));
    }

    #[test]
    fn batch_layout() {
        let a = PreparedExample::new(&ex("a", &[10, 11], &[12, 13], 1.0), 8, 8).expect("a");
        let b = PreparedExample::new(&ex("b", &[20], &[21], 0.5), 8, 8).expect("b");
        let batch = Batch::new(&[&a, &b], Device::Cpu).expect("batch");
        let v = |t: &Tensor| Vec::<i64>::try_from(t.flatten(0, -1).to_kind(Kind::Int64)).expect("i64");
        assert_eq!(v(&batch.input_ids), vec![10, 11, 12, 13, 20, 21, 0, 0]);
        assert_eq!(v(&batch.attention_mask), vec![1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(v(&batch.loss_mask), vec![0, 1, 1, 0, 1, 0, 0, 0]);
        assert_eq!(v(&batch.labels), vec![0, 12, 13, 0, 21, 0, 0, 0]);
        assert_eq!((batch.target_tokens, batch.tokens), (3, 6));
    }
}
