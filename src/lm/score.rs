//! Scoring: the next-token log-distributions at the last `k` positions of
//! each sequence, in one forward per batch ([`LanguageModel::tail_logprobs`]),
//! for the LLM judge (`crate::reward::judge`: the prompt's last position gives
//! the first score token's distribution, the positions after it the
//! distributions that follow a multi-token score's prefix).
//!
//! **Prefix sharing.** Judge prompts of one input share a long prefix (the
//! chat preamble, the instructions, the request and the reference text
//! before the judged response). Rows are grouped by shared prefix (see
//! [`group_by_shared_prefix`]); each group's prefix is run once, alone
//! (`[1, P]`, no padding), and its keys and values are copied into the
//! group's rows of one batch cache with [`super::transformer::KvCache::fill_rows`],
//! as the generator does for identical prompts (`super::generate`). Prefixes
//! are right-aligned at the longest one, `P_max`; the rest of each row
//! (at least its last `k` tokens) then runs as one left-padded batch after
//! the cache, with its own RoPE positions (`P + i`) and a key mask that
//! hides both kinds of padding. The result equals the unshared forward up to
//! float rounding between the two computation orders.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::generate::index_tensor;
use super::{pad_batch, positions_from_mask, LanguageModel};

/// How [`LanguageModel::tail_logprobs_with`] runs a batch; the default
/// shares prefixes, the switch exists to measure what that buys
/// (`restpg bench judge --no-prefix-sharing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreOptions {
    /// Run each group's shared prefix once (see the module docs). Off:
    /// every row runs whole in one left-padded batch `[B, T]`.
    pub share_prefixes: bool,
}

impl Default for ScoreOptions {
    /// Prefix sharing on.
    fn default() -> Self {
        ScoreOptions { share_prefixes: true }
    }
}

/// The fewest tokens two rows must share for the prefix to be run once for
/// both (below it, the chat preamble alone, sharing is not worth a separate
/// forward).
pub const MIN_SHARED_PREFIX: usize = 64;

/// Length of the longest common prefix of `a` and `b`.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Groups rows by shared prefix: `(rows, prefix_len)` per group, rows
/// ascending, groups in order of their first row. `caps[r]` is the longest
/// prefix row `r` may share (its length minus the positions read from it).
/// A row joins the first group whose first row shares at least
/// [`MIN_SHARED_PREFIX`] tokens with it, and — once the group has two rows —
/// at least the group's prefix, so a group's prefix never shrinks after it
/// is set. A row that joins no group starts one whose prefix is the row up to
/// its cap (it runs alone; the batch then holds only its last positions).
pub fn group_by_shared_prefix(seqs: &[&[u32]], caps: &[usize]) -> Vec<(Vec<usize>, usize)> {
    let mut groups: Vec<(Vec<usize>, usize)> = Vec::new();
    for (r, seq) in seqs.iter().enumerate() {
        let cap = caps[r].min(seq.len());
        let joined = groups.iter_mut().find_map(|(rows, plen)| {
            let shared = common_prefix(seqs[rows[0]], seq).min(cap);
            let enough = shared >= MIN_SHARED_PREFIX && (rows.len() == 1 || shared >= *plen);
            enough.then(|| {
                *plen = shared.min(*plen);
                rows.push(r);
            })
        });
        if joined.is_none() {
            groups.push((vec![r], cap));
        }
    }
    groups
}

impl LanguageModel {
    /// The next-token log-distributions (log-softmax, f32) at the last
    /// `tails[r]` positions of each `seqs[r]`: `[B][tails[r]][V]`, in
    /// position order, so the last entry is the distribution after the whole
    /// sequence and entry `j` the one after `seqs[r][..len - tails[r] + 1 + j]`.
    /// All rows run in one batch (callers choose its size), with prefix
    /// sharing; the same as [`Self::tail_logprobs_with`] with the default
    /// options.
    ///
    /// # Errors
    /// `seqs` and `tails` of different lengths, a tail of 0 or longer than
    /// its sequence, ids outside the vocabulary.
    pub fn tail_logprobs(&self, seqs: &[Vec<u32>], tails: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
        self.tail_logprobs_with(seqs, tails, ScoreOptions::default())
    }

    /// [`Self::tail_logprobs`] under `options`; the results do not depend on
    /// the options beyond float rounding.
    ///
    /// # Errors
    /// As [`Self::tail_logprobs`].
    pub fn tail_logprobs_with(
        &self,
        seqs: &[Vec<u32>],
        tails: &[usize],
        options: ScoreOptions,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        if seqs.len() != tails.len() {
            bail!("tail_logprobs: {} sequences but {} tail lengths", seqs.len(), tails.len());
        }
        if seqs.is_empty() {
            return Ok(vec![]);
        }
        let vocab = self.config().vocab_size as u32;
        for (r, (s, &k)) in seqs.iter().zip(tails).enumerate() {
            if k == 0 || k > s.len() {
                bail!("tail_logprobs: row {r} asks for the last {k} positions of a {}-token sequence", s.len());
            }
            if let Some(&bad) = s.iter().find(|&&t| t >= vocab) {
                bail!("tail_logprobs: row {r}: token id {bad} >= vocab size {vocab}");
            }
        }
        tch::no_grad(|| {
            let h = match options.share_prefixes {
                true => self.tail_hidden_shared(seqs, tails)?,
                false => {
                    let (ids, mask) = pad_batch(seqs, true)?;
                    self.hidden_states(&ids, &mask)?
                }
            };
            self.tail_rows(&h, tails)
        })
    }

    /// Final hidden states `[B, T, d]` of a left-padded batch whose last
    /// `tails[r]` positions are row `r`'s last positions, with each group's
    /// shared prefix run once (see the module docs).
    fn tail_hidden_shared(&self, seqs: &[Vec<u32>], tails: &[usize]) -> Result<Tensor> {
        let dev = self.device();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let caps: Vec<usize> = seqs.iter().zip(tails).map(|(s, k)| s.len() - k).collect();
        let groups = group_by_shared_prefix(&refs, &caps);
        let mut plen = vec![0usize; seqs.len()];
        for (rows, p) in &groups {
            for &r in rows {
                plen[r] = *p;
            }
        }
        let p_max = groups.iter().map(|(_, p)| *p).max().unwrap_or(0) as i64;
        let suffixes: Vec<Vec<u32>> = seqs.iter().zip(&plen).map(|(s, &p)| s[p..].to_vec()).collect();
        let (ids, smask) = pad_batch(&suffixes, true)?;
        let ts = ids.size()[1];
        let b = seqs.len() as i64;
        let mut cache = self.model.new_cache(b, p_max + ts)?;
        let mut prefix_mask = vec![0i64; seqs.len() * p_max as usize];
        for (rows, p) in &groups {
            let len = *p as i64;
            for &r in rows {
                for j in (p_max - len)..p_max {
                    prefix_mask[r * p_max as usize + j as usize] = 1;
                }
            }
            if len == 0 {
                continue;
            }
            let one: Vec<i64> = seqs[rows[0]][..*p].iter().map(|&t| i64::from(t)).collect();
            let one = Tensor::f_from_slice(&one)?.f_view([1, len])?.f_to_device(dev)?;
            let positions = Tensor::f_arange(len, (Kind::Int64, dev))?.f_view([1, len])?;
            let ones = Tensor::f_ones([1, len], (Kind::Int64, dev))?;
            let mut own = self.model.new_cache(1, len)?;
            let _ = self.model.hidden(&one, &positions, &ones, Some(&mut own))?;
            cache.fill_rows(&index_tensor(rows, dev)?, &own, p_max - len)?;
        }
        cache.set_len(p_max)?;
        let smask = smask.f_to_device(dev)?;
        let prefix_mask = Tensor::f_from_slice(&prefix_mask)?.f_view([b, p_max])?.f_to_device(dev)?;
        let key_mask = Tensor::f_cat(&[&prefix_mask, &smask], 1)?;
        let offsets: Vec<i64> = plen.iter().map(|&p| p as i64).collect();
        let offsets = Tensor::f_from_slice(&offsets)?.f_view([b, 1])?.f_to_device(dev)?;
        let positions = positions_from_mask(&smask)?.f_add(&offsets)?;
        self.model.hidden(&ids.f_to_device(dev)?, &positions, &key_mask, Some(&mut cache))
    }

    /// Log-softmax of the LM head at the last `tails[r]` positions of row
    /// `r` of `h [B, T, d]`, on the CPU.
    fn tail_rows(&self, h: &Tensor, tails: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
        let t = h.size()[1];
        let k_max = tails.iter().copied().max().unwrap_or(1) as i64;
        let last = h.f_narrow(1, t - k_max, k_max)?;
        let lp = self.model.logits(&last)?.f_log_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?;
        let mut out = Vec::with_capacity(tails.len());
        for (r, &k) in tails.iter().enumerate() {
            let row = lp.f_get(r as i64)?;
            let mut per_pos = Vec::with_capacity(k);
            for j in (k_max - k as i64)..k_max {
                per_pos.push(Vec::<f32>::try_from(&row.f_get(j)?)?);
            }
            out.push(per_pos);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_group_by_a_long_shared_prefix_that_never_shrinks() {
        let base: Vec<u32> = (0..100).collect();
        let with = |tail: &[u32]| -> Vec<u32> { base.iter().chain(tail).copied().collect() };
        let (a, b, c) = (with(&[1, 2]), with(&[3]), with(&[4, 5, 6]));
        // Shares only 70 tokens with `a` and `b`.
        let d: Vec<u32> = base[..70].iter().chain(&[9, 9, 9]).copied().collect();
        let e: Vec<u32> = (500..520).collect();
        let seqs: Vec<&[u32]> = vec![&a, &b, &d, &c, &e];
        let caps: Vec<usize> = seqs.iter().map(|s| s.len() - 1).collect();
        let g = group_by_shared_prefix(&seqs, &caps);
        assert_eq!(g, vec![(vec![0, 1, 3], 100), (vec![2], 72), (vec![4], 19)]);
        // The cap holds the shared prefix short of the positions read.
        let caps = vec![101, 50, 72, 102, 19];
        // (`b` may share only 50 tokens: alone; `d` then sets the first group's prefix to 70.)
        let g = group_by_shared_prefix(&seqs, &caps);
        assert_eq!(g, vec![(vec![0, 2, 3], 70), (vec![1], 50), (vec![4], 19)]);
    }
}
