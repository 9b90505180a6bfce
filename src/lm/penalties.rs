//! The repetition guards of one sequence: its token history and how it
//! changes a row of logits before a token is chosen
//! ([`events::Penalties`] has the definitions and their sources).
//!
//! Each row of a batch has its own [`TokenHistory`], built from its prompt
//! and fed every token it generates, so a row's adjusted logits depend on
//! that row's own tokens only (never on what else shares the batch).
//!
//! Which tokens each guard looks at, as in Hugging Face `generate` (whose
//! `input_ids` hold the prompt and the tokens generated so far) and vLLM:
//!
//! | guard | context |
//! |---|---|
//! | `repetition_penalty` | prompt + generated (HF and vLLM) |
//! | `frequency_penalty`, `presence_penalty` | generated only (OpenAI, vLLM) |
//! | `no_repeat_ngram_size` | prompt + generated (HF) |
//!
//! A stop token that ends the row is never added (no step follows it).

use std::collections::{HashMap, HashSet};

use events::Penalties;

/// What the guards need to know about one sequence so far.
#[derive(Clone, Debug)]
pub struct TokenHistory {
    penalties: Penalties,
    /// Prompt and generated tokens, in order (kept only for n-grams).
    tokens: Vec<u32>,
    /// Distinct ids of the prompt and the generated tokens.
    seen: HashSet<u32>,
    /// Occurrences of each id among the generated tokens.
    counts: HashMap<u32, u32>,
    /// For `no_repeat_ngram_size` n: each (n−1)-token prefix in `tokens`
    /// → the tokens that followed it.
    ngrams: HashMap<Vec<u32>, HashSet<u32>>,
}

impl TokenHistory {
    /// The history of a sequence that starts with `prompt` (no token
    /// generated yet), for `penalties`.
    pub fn new(prompt: &[u32], penalties: Penalties) -> Self {
        let mut h = TokenHistory {
            penalties,
            tokens: Vec::with_capacity(prompt.len() + 64),
            seen: HashSet::new(),
            counts: HashMap::new(),
            ngrams: HashMap::new(),
        };
        for &t in prompt {
            h.append(t);
        }
        h
    }

    /// The guards this history applies.
    pub fn penalties(&self) -> &Penalties {
        &self.penalties
    }

    /// Records a generated token.
    pub fn push(&mut self, token: u32) {
        *self.counts.entry(token).or_insert(0) += 1;
        self.append(token);
    }

    fn append(&mut self, token: u32) {
        let p = &self.penalties;
        if p.repetition_penalty != 1.0 {
            self.seen.insert(token);
        }
        let n = p.no_repeat_ngram_size as usize;
        self.tokens.push(token);
        if n > 0 && self.tokens.len() >= n {
            let gram = &self.tokens[self.tokens.len() - n..];
            self.ngrams.entry(gram[..n - 1].to_vec()).or_default().insert(gram[n - 1]);
        }
    }

    /// The tokens that would complete an n-gram already in the sequence
    /// (HF `_get_generated_ngrams`: those that followed the last n−1 tokens
    /// before); none when the guard is off or the sequence is shorter than
    /// n−1 tokens.
    pub fn banned(&self) -> impl Iterator<Item = u32> + '_ {
        let n = self.penalties.no_repeat_ngram_size as usize;
        let prefix = (n > 0 && self.tokens.len() + 1 >= n).then(|| &self.tokens[self.tokens.len() + 1 - n..]);
        prefix.and_then(|p| self.ngrams.get(p)).into_iter().flatten().copied()
    }

    /// Adjusts one row of logits (`[V]`, token id order) in place, in f32 as
    /// HF and vLLM do, in their order: repetition penalty, frequency and
    /// presence penalties, then −∞ for the banned n-gram completions. Ids at
    /// or beyond `logits.len()` are ignored.
    pub fn apply(&self, logits: &mut [f32]) {
        let p = &self.penalties;
        if p.repetition_penalty != 1.0 {
            for &t in &self.seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l < 0.0 { *l * p.repetition_penalty } else { *l / p.repetition_penalty };
                }
            }
        }
        if p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 {
            for (&t, &c) in &self.counts {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l -= p.frequency_penalty * c as f32;
                    *l -= p.presence_penalty;
                }
            }
        }
        for t in self.banned() {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: Penalties = Penalties {
        repetition_penalty: 1.0,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        no_repeat_ngram_size: 0,
        min_p: 0.0,
    };

    #[test]
    fn the_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_the_whole_context() {
        // Given a prompt [0, 3] and a generated token 1 (HF's input_ids: [0, 3, 1])
        let mut h = TokenHistory::new(&[0, 3], Penalties { repetition_penalty: 2.0, ..OFF });
        h.push(1);
        let mut logits = [4.0f32, -1.5, 2.0, 0.0, 7.0];
        // When the CTRL penalty 2 is applied
        h.apply(&mut logits);
        // Then seen positive logits are halved, seen negative ones doubled,
        // 0 stays 0, unseen ones are untouched (HF
        // RepetitionPenaltyLogitsProcessor: where(l < 0, l·p, l/p))
        assert_eq!(logits, [2.0, -3.0, 2.0, 0.0, 7.0]);
        // and a token repeated many times is penalized once, not per occurrence
        let mut h = TokenHistory::new(&[2, 2, 2], Penalties { repetition_penalty: 1.25, ..OFF });
        h.push(2);
        let mut logits = [1.0f32, 1.0, 5.0];
        h.apply(&mut logits);
        assert_eq!(logits, [1.0, 1.0, 4.0]);
    }

    #[test]
    fn frequency_and_presence_count_the_generated_tokens_only() {
        // Given a prompt that holds token 0, and generated tokens 1, 1, 2
        let p = Penalties { frequency_penalty: 0.5, presence_penalty: 0.25, ..OFF };
        let mut h = TokenHistory::new(&[0, 0, 0], p);
        for t in [1, 1, 2] {
            h.push(t);
        }
        let mut logits = [1.0f32, 1.0, 1.0, 1.0];
        h.apply(&mut logits);
        // Then l − f·count − r·[count > 0] (vLLM, OpenAI): token 1 seen twice,
        // token 2 once, the prompt's token 0 and the unseen 3 untouched
        assert_eq!(logits, [1.0, 1.0 - 1.0 - 0.25, 1.0 - 0.5 - 0.25, 1.0]);
        // and negative values reward repetition
        let h = {
            let mut h = TokenHistory::new(&[], Penalties { frequency_penalty: -1.0, ..OFF });
            h.push(0);
            h
        };
        let mut logits = [0.0f32, 0.0];
        h.apply(&mut logits);
        assert_eq!(logits, [1.0, 0.0]);
    }

    #[test]
    fn no_repeat_ngram_bans_completions_of_ngrams_in_the_prompt_and_the_output() {
        // Given n = 3 and the sequence [5, 6, 7, 5] (prompt [5, 6, 7], then 5)
        let p = Penalties { no_repeat_ngram_size: 3, ..OFF };
        let mut h = TokenHistory::new(&[5, 6, 7], p);
        // nothing is banned yet: the last two tokens (6, 7) never had a successor
        assert_eq!(h.banned().count(), 0);
        h.push(5);
        assert_eq!(h.banned().count(), 0, "(7, 5) is new");
        h.push(6);
        // When the last two are (5, 6), which the prompt followed with 7
        let mut logits = [0.5f32; 9];
        h.apply(&mut logits);
        // Then 7 is banned (HF NoRepeatNGramLogitsProcessor: −∞), nothing else
        let banned: Vec<usize> = (0..9).filter(|&i| logits[i] == f32::NEG_INFINITY).collect();
        assert_eq!(banned, [7]);
        // and every token that ever followed a prefix is banned after it
        let mut h = TokenHistory::new(&[1, 2, 3, 1, 2, 4, 1], p);
        h.push(2);
        let mut b: Vec<u32> = h.banned().collect();
        b.sort();
        assert_eq!(b, [3, 4]);
        // n = 1 bans every token of the sequence (HF semantics)
        let h = TokenHistory::new(&[0, 2], Penalties { no_repeat_ngram_size: 1, ..OFF });
        let mut b: Vec<u32> = h.banned().collect();
        b.sort();
        assert_eq!(b, [0, 2]);
    }

    #[test]
    fn neutral_guards_leave_the_logits_bit_for_bit() {
        let mut h = TokenHistory::new(&[0, 1, 2, 0, 1], OFF);
        h.push(2);
        let before = [0.3f32, -0.7, 1.1e-8, 9.0];
        let mut after = before;
        h.apply(&mut after);
        assert_eq!(before.map(f32::to_bits), after.map(f32::to_bits));
    }
}
