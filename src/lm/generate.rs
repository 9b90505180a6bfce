//! Batched generation with a KV cache.
//!
//! Prompts are left-padded to one length so that every row's next token is
//! read from the last column. Each row carries its own RoPE position
//! (`prompt_len + step`), its key mask (padding never attended) and its own
//! `ChaCha20Rng` seeded from the request, and sampling happens on the CPU
//! from that row's logits alone ([`super::sampling`]). So the same
//! (checkpoint, prompt, seed, settings) gives the same tokens whatever else
//! is in the batch, up to float rounding differences between batch shapes in
//! the matrix products (which could only matter at an exact probability
//! tie).

use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::sampling::{sample_from_probs, SamplingSettings};
use super::stop::stop_offset;
use super::{pad_batch, LanguageModel};

/// One sequence to continue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationRequest {
    /// The prompt's token ids (non-empty), e.g. from
    /// `tokenizer.chat(..)?.ids`.
    pub prompt_ids: Vec<u32>,
    /// Seed of this sequence's `ChaCha20Rng`.
    pub seed: u64,
    /// How to pick tokens.
    pub settings: SamplingSettings,
}

pub use events::FinishReason;

/// A generated continuation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Generated ids, without the stop token (all generated ids when a stop
    /// string ended the sequence: the string may end inside a token).
    pub token_ids: Vec<u32>,
    /// `token_ids` decoded, cut before the stop string or repeated separator
    /// line when one ended the sequence.
    pub text: String,
    /// Why generation ended.
    pub finish: FinishReason,
}

impl LanguageModel {
    /// Continues each request; results are in request order. All rows run in
    /// one batch (callers choose the batch size); rows that finish early
    /// keep their slot until the longest row is done.
    ///
    /// # Errors
    /// An empty prompt, invalid settings, ids outside the vocabulary, or a
    /// model that produces NaN or infinite logits (named with the request
    /// and step).
    pub fn generate(&self, reqs: &[GenerationRequest]) -> Result<Vec<Generation>> {
        if reqs.is_empty() {
            return Ok(vec![]);
        }
        let vocab = self.config().vocab_size as u32;
        for (i, r) in reqs.iter().enumerate() {
            if r.prompt_ids.is_empty() {
                bail!("generate: request {i} has an empty prompt");
            }
            if let Some(&bad) = r.prompt_ids.iter().find(|&&t| t >= vocab) {
                bail!("generate: request {i}: token id {bad} >= vocab size {vocab}");
            }
            r.settings.validate().map_err(|e| anyhow::anyhow!("generate: request {i}: {e}"))?;
        }
        tch::no_grad(|| self.generate_inner(reqs))
    }

    fn generate_inner(&self, reqs: &[GenerationRequest]) -> Result<Vec<Generation>> {
        let dev = self.device();
        let b = reqs.len();
        let prompts: Vec<Vec<u32>> = reqs.iter().map(|r| r.prompt_ids.clone()).collect();
        let (ids, mask) = pad_batch(&prompts, true)?;
        let t0 = ids.size()[1];
        let max_new = reqs.iter().map(|r| r.settings.max_new_tokens).max().unwrap_or(0);
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
        let mut finish: Vec<Option<FinishReason>> =
            reqs.iter().map(|r| (r.settings.max_new_tokens == 0).then_some(FinishReason::Length)).collect();
        if max_new > 0 {
            let mut rngs: Vec<ChaCha20Rng> = reqs.iter().map(|r| ChaCha20Rng::seed_from_u64(r.seed)).collect();
            let stops: Vec<Vec<u32>> = reqs
                .iter()
                .map(|r| r.settings.stop_tokens.iter().chain(self.tokenizer().eos_ids()).copied().collect())
                .collect();
            let mut cache = self.model.new_cache(b as i64, t0 + max_new as i64)?;
            let mut key_mask = mask.f_to_device(dev)?;
            let mut pos: Vec<i64> = prompts.iter().map(|p| p.len() as i64).collect();
            let positions = super::positions_from_mask(&key_mask)?;
            let h = self.model.hidden(&ids.f_to_device(dev)?, &positions, &key_mask, Some(&mut cache))?;
            let mut last = h.f_narrow(1, t0 - 1, 1)?.f_squeeze_dim(1)?;
            let vocab = self.config().vocab_size;
            // Per-row temperatures for the batched softmax (greedy rows use 1; they read logits).
            let temps: Vec<f32> =
                reqs.iter().map(|r| if r.settings.is_greedy() { 1.0 } else { r.settings.temperature as f32 }).collect();
            let temps = Tensor::f_from_slice(&temps)?.f_view([b as i64, 1])?.f_to_device(dev)?;
            let mut flat = vec![0f32; b * vocab];
            let mut probs = vec![0f32; b * vocab];
            for _step in 0..max_new {
                let logits = self.model.logits(&last)?.f_to_kind(Kind::Float)?;
                // Row-wise softmax: each row's result depends on that row only.
                let p = logits.f_div(&temps)?.f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
                logits.f_to_device(Device::Cpu)?.f_contiguous()?.f_copy_data(&mut flat, b * vocab)?;
                p.f_copy_data(&mut probs, b * vocab)?;
                let mut next = vec![0i64; b];
                for r in 0..b {
                    if finish[r].is_some() {
                        continue;
                    }
                    let row = r * vocab..(r + 1) * vocab;
                    let tok = sample_from_probs(&flat[row.clone()], &probs[row], &reqs[r].settings, &mut rngs[r])
                        .map_err(|e| anyhow::anyhow!("generate: request {r}, step {}: {e}", out[r].len()))?;
                    next[r] = tok as i64;
                    if stops[r].contains(&tok) {
                        finish[r] = Some(FinishReason::StopToken);
                    } else {
                        out[r].push(tok);
                        let st = &reqs[r].settings;
                        if (!st.stop_strings.is_empty() || st.separator.is_some())
                            && stop_offset(
                                &self.tokenizer().decode(&out[r])?,
                                &st.stop_strings,
                                st.separator.as_deref(),
                            )
                            .is_some()
                        {
                            finish[r] = Some(FinishReason::StopString);
                        } else if out[r].len() >= st.max_new_tokens {
                            finish[r] = Some(FinishReason::Length);
                        }
                    }
                }
                if finish.iter().all(Option::is_some) {
                    break;
                }
                let step_ids = Tensor::f_from_slice(&next)?.f_view([b as i64, 1])?.f_to_device(dev)?;
                let step_pos = Tensor::f_from_slice(&pos)?.f_view([b as i64, 1])?.f_to_device(dev)?;
                pos.iter_mut().for_each(|p| *p += 1);
                key_mask = Tensor::f_cat(&[&key_mask, &Tensor::f_ones([b as i64, 1], (Kind::Int64, dev))?], 1)?;
                let h = self.model.hidden(&step_ids, &step_pos, &key_mask, Some(&mut cache))?;
                last = h.f_squeeze_dim(1)?;
            }
        }
        let mut gens = Vec::with_capacity(b);
        for (r, ids) in out.into_iter().enumerate() {
            let mut text = self.tokenizer().decode(&ids)?;
            if finish[r] == Some(FinishReason::StopString) {
                let st = &reqs[r].settings;
                if let Some(cut) = stop_offset(&text, &st.stop_strings, st.separator.as_deref()) {
                    text.truncate(cut);
                }
            }
            gens.push(Generation { token_ids: ids, text, finish: finish[r].unwrap_or(FinishReason::Length) });
        }
        Ok(gens)
    }
}
