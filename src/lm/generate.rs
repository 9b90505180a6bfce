//! Batched generation with a KV cache.
//!
//! Requests with identical prompts are grouped and each distinct prompt is
//! prefilled once, alone (`[1, T]`, no padding); its keys and values are
//! copied into the rows of the batch cache that share it (an E-step's `m`
//! samples of one input prefill their prompt once instead of `m` times).
//! Prompts of different lengths are left-aligned to one length in the
//! batch cache, so every row's next token is read from the last column;
//! each row carries its own RoPE position (`prompt_len + step`) and key mask
//! (the padding never attended). Rows that finish (stop token, stop string
//! or length) leave the batch: the live rows of the cache, the key mask, the
//! positions and the temperatures are index-selected, so later steps run on
//! live rows only. Results come back in request order.
//!
//! Each row has its own `ChaCha20Rng` seeded from the request, and sampling
//! happens on the CPU from that row's logits alone ([`super::sampling`]).
//! A row whose repetition guards change the logits
//! ([`events::Penalties::changes_logits`]) also has its own
//! [`TokenHistory`] (its prompt and the tokens it generated): its logits are
//! adjusted and its softmax computed on the CPU from that row alone, while
//! the other rows keep the batched softmax. A
//! prompt's prefill does not depend on the batch at all (it runs alone), so
//! the same (checkpoint, prompt, seed, settings) gives the same tokens
//! whatever else is in the batch or shares the prompt, up to float rounding
//! differences between batch shapes in the decode steps' matrix products
//! (which could only matter at an exact probability tie).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::penalties::TokenHistory;
use super::sampling::{sample_from_probs, sample_with_history, SamplingSettings};
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

/// How [`LanguageModel::generate_with`] runs a batch. The default (what
/// [`LanguageModel::generate`] uses) shares prefixes and compacts; the
/// switches exist to measure what each one buys (`restpg bench generate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Prefill each distinct prompt once, alone, and copy its cache to the
    /// rows that share it. Off: every row is prefilled in one left-padded
    /// batch `[B, T]`, identical prompts again each time.
    pub share_prefixes: bool,
    /// Drop finished rows from the batch. Off: they keep their slot until
    /// the longest row is done.
    pub compact: bool,
    /// Neither the tokenizer's end-of-sequence ids nor the requests'
    /// `stop_tokens` end a row; a sampled stop token is kept as a token. For
    /// benchmarks that need every row to run its full `max_new_tokens`.
    pub ignore_stop_tokens: bool,
}

impl Default for GenerateOptions {
    /// Prefix sharing and compaction on; stop tokens honoured.
    fn default() -> Self {
        GenerateOptions { share_prefixes: true, compact: true, ignore_stop_tokens: false }
    }
}

/// What one [`LanguageModel::generate_with`] call did and how long it took.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt forwards run: distinct prompts with prefix sharing, rows
    /// without.
    pub prefills: usize,
    /// Prompt tokens run through those forwards (padding not counted).
    pub prefill_tokens: usize,
    /// Wall time of the prefill forwards, in seconds.
    pub prefill_s: f64,
    /// Decode forwards run after the prefill (one per step).
    pub decode_steps: usize,
    /// Row-steps of those forwards: the sum over steps of the rows in the
    /// batch (finished rows included when compaction is off).
    pub decode_row_steps: usize,
    /// Tokens sampled, over all rows (stop tokens included).
    pub generated_tokens: usize,
    /// Wall time from the end of the prefill to the last sampled token
    /// (decode forwards, LM head, sampling), in seconds.
    pub decode_s: f64,
}

/// Requests grouped by identical prompt: each group lists the batch rows
/// (indices into `prompts`) that share one prompt, in order of first
/// appearance, rows ascending.
fn group_by_prompt(prompts: &[&[u32]]) -> Vec<Vec<usize>> {
    let mut index: HashMap<&[u32], usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (row, p) in prompts.iter().enumerate() {
        let g = *index.entry(p).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(row);
    }
    groups
}

/// The row indices `rows` as an i64 tensor `[n]` on `dev` (for
/// [`super::transformer::KvCache::fill_rows`] and `select_rows`).
pub(super) fn index_tensor(rows: &[usize], dev: Device) -> Result<Tensor> {
    let v: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Ok(Tensor::f_from_slice(&v)?.f_to_device(dev)?)
}

impl LanguageModel {
    /// Continues each request; results are in request order. All rows run in
    /// one batch (callers choose the batch size), identical prompts are
    /// prefilled once and rows that finish leave the batch (see the module
    /// docs). The same as [`Self::generate_with`] with the default options.
    ///
    /// # Errors
    /// An empty prompt, invalid settings, ids outside the vocabulary, or a
    /// model that produces NaN or infinite logits (named with the request
    /// and step).
    pub fn generate(&self, reqs: &[GenerationRequest]) -> Result<Vec<Generation>> {
        Ok(self.generate_with(reqs, GenerateOptions::default())?.0)
    }

    /// [`Self::generate`] under `options`, with what the call did and how
    /// long its prefill and decode took. The texts do not depend on the
    /// options, except that `ignore_stop_tokens` lets rows run past a stop
    /// token.
    ///
    /// # Errors
    /// As [`Self::generate`].
    pub fn generate_with(
        &self,
        reqs: &[GenerationRequest],
        options: GenerateOptions,
    ) -> Result<(Vec<Generation>, GenerationStats)> {
        if reqs.is_empty() {
            return Ok((vec![], GenerationStats::default()));
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
        tch::no_grad(|| self.generate_inner(reqs, options))
    }

    /// Prefills the prompts of `rows` (request indices) into a new batch
    /// cache of `capacity` positions whose row `i` is request `rows[i]`,
    /// prompts right-aligned at `t0`, the longest prompt's length. Returns
    /// the cache, the key mask `[n, t0]` (i64, 0 on padding) and the last
    /// hidden state of each row `[n, d]`.
    fn prefill(
        &self,
        reqs: &[GenerationRequest],
        rows: &[usize],
        capacity: i64,
        options: GenerateOptions,
        stats: &mut GenerationStats,
    ) -> Result<(super::transformer::KvCache, Tensor, Tensor)> {
        let dev = self.device();
        let n = rows.len() as i64;
        let prompts: Vec<Vec<u32>> = rows.iter().map(|&r| reqs[r].prompt_ids.clone()).collect();
        let (ids, mask) = pad_batch(&prompts, true)?;
        let t0 = ids.size()[1];
        let key_mask = mask.f_to_device(dev)?;
        if !options.share_prefixes {
            let mut cache = self.model.new_cache(n, capacity)?;
            let positions = super::positions_from_mask(&key_mask)?;
            let h = self.model.hidden(&ids.f_to_device(dev)?, &positions, &key_mask, Some(&mut cache))?;
            let last = h.f_narrow(1, t0 - 1, 1)?.f_squeeze_dim(1)?;
            stats.prefills += rows.len();
            stats.prefill_tokens += prompts.iter().map(Vec::len).sum::<usize>();
            return Ok((cache, key_mask, last));
        }
        let mut cache = self.model.new_cache(n, capacity)?;
        let d = self.config().hidden_size as i64;
        let mut last = Tensor::f_zeros([n, d], (self.model.kind(), dev))?;
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        for group in group_by_prompt(&refs) {
            let prompt = refs[group[0]];
            let len = prompt.len() as i64;
            let one: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
            let one = Tensor::f_from_slice(&one)?.f_view([1, len])?.f_to_device(dev)?;
            let positions = Tensor::f_arange(len, (Kind::Int64, dev))?.f_view([1, len])?;
            let ones = Tensor::f_ones([1, len], (Kind::Int64, dev))?;
            let mut own = self.model.new_cache(1, len)?;
            let h = self.model.hidden(&one, &positions, &ones, Some(&mut own))?;
            let idx = index_tensor(&group, dev)?;
            cache.fill_rows(&idx, &own, t0 - len)?;
            let m = group.len() as i64;
            let h_last = h.f_narrow(1, len - 1, 1)?.f_view([1, d])?.f_expand([m, d], false)?;
            let _ = last.f_index_copy_(0, &idx, &h_last)?;
            stats.prefills += 1;
            stats.prefill_tokens += prompt.len();
        }
        cache.set_len(t0)?;
        Ok((cache, key_mask, last))
    }

    fn generate_inner(
        &self,
        reqs: &[GenerationRequest],
        options: GenerateOptions,
    ) -> Result<(Vec<Generation>, GenerationStats)> {
        let dev = self.device();
        let b = reqs.len();
        let mut stats = GenerationStats::default();
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
        let mut finish: Vec<Option<FinishReason>> =
            reqs.iter().map(|r| (r.settings.max_new_tokens == 0).then_some(FinishReason::Length)).collect();
        // `live[slot]` is the request in batch row `slot`.
        let mut live: Vec<usize> = (0..b).filter(|&r| finish[r].is_none()).collect();
        // Longest prompts first: rows with the same left padding sit side by
        // side (and stay so as finished rows leave), so a decode step attends
        // in one call per prompt length (`KeyRun`).
        live.sort_by_key(|&r| std::cmp::Reverse(reqs[r].prompt_ids.len()));
        if !live.is_empty() {
            let max_new = live.iter().map(|&r| reqs[r].settings.max_new_tokens).max().unwrap_or(0);
            let mut rngs: Vec<ChaCha20Rng> = reqs.iter().map(|r| ChaCha20Rng::seed_from_u64(r.seed)).collect();
            // The token history of each row whose guards change its logits.
            let mut histories: Vec<Option<TokenHistory>> = reqs
                .iter()
                .map(|r| {
                    let p = r.settings.penalties;
                    p.changes_logits().then(|| TokenHistory::new(&r.prompt_ids, p))
                })
                .collect();
            let stops: Vec<Vec<u32>> = reqs
                .iter()
                .map(|r| match options.ignore_stop_tokens {
                    true => vec![],
                    false => r.settings.stop_tokens.iter().chain(self.tokenizer().eos_ids()).copied().collect(),
                })
                .collect();
            let t_prefill = Instant::now();
            let t0 = live.iter().map(|&r| reqs[r].prompt_ids.len()).max().unwrap_or(0) as i64;
            let (mut cache, mut key_mask, mut last) =
                self.prefill(reqs, &live, t0 + max_new as i64, options, &mut stats)?;
            stats.prefill_s = t_prefill.elapsed().as_secs_f64();
            let t_decode = Instant::now();
            let mut pos: Vec<i64> = live.iter().map(|&r| reqs[r].prompt_ids.len() as i64).collect();
            let vocab = self.config().vocab_size;
            // Per-row temperatures for the batched softmax (greedy rows use 1; they read logits).
            let temps: Vec<f32> = live
                .iter()
                .map(|&r| {
                    let s = &reqs[r].settings;
                    if s.is_greedy() {
                        1.0
                    } else {
                        s.temperature as f32
                    }
                })
                .collect();
            let mut temps = Tensor::f_from_slice(&temps)?.f_view([live.len() as i64, 1])?.f_to_device(dev)?;
            let mut flat = vec![0f32; live.len() * vocab];
            let mut probs = vec![0f32; live.len() * vocab];
            loop {
                let n = live.len();
                let logits = self.model.logits(&last)?.f_to_kind(Kind::Float)?;
                // Row-wise softmax: each row's result depends on that row only.
                let p = logits.f_div(&temps)?.f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
                logits.f_to_device(Device::Cpu)?.f_contiguous()?.f_copy_data(&mut flat, n * vocab)?;
                p.f_copy_data(&mut probs, n * vocab)?;
                let mut next = vec![0i64; n];
                for (slot, &r) in live.iter().enumerate() {
                    if finish[r].is_some() {
                        continue;
                    }
                    let row = slot * vocab..(slot + 1) * vocab;
                    let picked = match &histories[r] {
                        Some(h) => sample_with_history(&flat[row], h, &reqs[r].settings, &mut rngs[r]),
                        None => sample_from_probs(&flat[row.clone()], &probs[row], &reqs[r].settings, &mut rngs[r]),
                    };
                    let tok =
                        picked.map_err(|e| anyhow::anyhow!("generate: request {r}, step {}: {e}", out[r].len()))?;
                    if let Some(h) = &mut histories[r] {
                        h.push(tok);
                    }
                    stats.generated_tokens += 1;
                    next[slot] = tok as i64;
                    if stops[r].contains(&tok) {
                        finish[r] = Some(FinishReason::StopToken);
                    } else {
                        out[r].push(tok);
                        let st = &reqs[r].settings;
                        let cut = if !st.stop_strings.is_empty() || st.separator.is_some() {
                            stop_offset(&self.tokenizer().decode(&out[r])?, &st.stop_strings, st.separator.as_deref())
                        } else {
                            None
                        };
                        if let Some((_, rule)) = cut {
                            finish[r] = Some(rule.finish_reason());
                        } else if out[r].len() >= st.max_new_tokens {
                            finish[r] = Some(FinishReason::Length);
                        }
                    }
                }
                if live.iter().all(|&r| finish[r].is_some()) {
                    break;
                }
                if options.compact && live.iter().any(|&r| finish[r].is_some()) {
                    let keep: Vec<usize> = (0..n).filter(|&slot| finish[live[slot]].is_none()).collect();
                    let idx = index_tensor(&keep, dev)?;
                    cache.select_rows(&idx)?;
                    key_mask = key_mask.f_index_select(0, &idx)?;
                    temps = temps.f_index_select(0, &idx)?;
                    live = keep.iter().map(|&slot| live[slot]).collect();
                    next = keep.iter().map(|&slot| next[slot]).collect();
                    pos = keep.iter().map(|&slot| pos[slot]).collect();
                }
                let n = live.len() as i64;
                let step_ids = Tensor::f_from_slice(&next)?.f_view([n, 1])?.f_to_device(dev)?;
                let step_pos = Tensor::f_from_slice(&pos)?.f_view([n, 1])?.f_to_device(dev)?;
                pos.iter_mut().for_each(|p| *p += 1);
                key_mask = Tensor::f_cat(&[&key_mask, &Tensor::f_ones([n, 1], (Kind::Int64, dev))?], 1)?;
                let h = self.model.hidden(&step_ids, &step_pos, &key_mask, Some(&mut cache))?;
                last = h.f_squeeze_dim(1)?;
                stats.decode_steps += 1;
                stats.decode_row_steps += live.len();
            }
            stats.decode_s = t_decode.elapsed().as_secs_f64();
        }
        let mut gens = Vec::with_capacity(b);
        for (r, ids) in out.into_iter().enumerate() {
            let mut text = self.tokenizer().decode(&ids)?;
            if matches!(finish[r], Some(FinishReason::StopString | FinishReason::Separator)) {
                let st = &reqs[r].settings;
                if let Some((cut, _)) = stop_offset(&text, &st.stop_strings, st.separator.as_deref()) {
                    text.truncate(cut);
                }
            }
            gens.push(Generation { token_ids: ids, text, finish: finish[r].unwrap_or(FinishReason::Length) });
        }
        Ok((gens, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_prompts_share_one_group_in_order_of_first_appearance() {
        let (a, b, c) = (vec![1, 2, 3], vec![1, 2], vec![1, 2, 3, 4]);
        let prompts: Vec<&[u32]> = vec![&a, &b, &a, &c, &b, &a];
        assert_eq!(group_by_prompt(&prompts), vec![vec![0, 2, 5], vec![1, 4], vec![3]]);
        assert_eq!(group_by_prompt(&[&a[..]]), vec![vec![0]]);
    }
}
