//! METEOR as LongLaMP computes it: Hugging Face `evaluate`'s `meteor`
//! metric, i.e. NLTK 3.9.2's
//! `single_meteor_score(word_tokenize(reference), word_tokenize(prediction),
//! alpha=0.9, beta=3, gamma=0.5)` (Lavie & Agarwal 2007).
//!
//! Both sides are tokenized by [`tokenize::WordTokenizer`] (NLTK's
//! `word_tokenize`) and lowercased (`str.lower`). Words are aligned in three
//! stages, each on what the previous left unmatched, scanning hypothesis and
//! reference from the end as NLTK does: exact match; Porter stem match
//! ([`porter`], NLTK's extended Porter); WordNet synonym match ([`wordnet`]).
//! Faithful to NLTK, the synonym stage compares the *stems* left over by the
//! stem stage: a reference stem matches when it is a lemma name of a synset
//! of the hypothesis stem, or equals it. Then with m matches, hypothesis
//! length h and reference length r: P = m/h, R = m/r,
//! Fmean = P·R / (α·P + (1−α)·R), chunks = fewest runs of matches adjacent
//! in both strings, penalty = γ·(chunks/m)^β, score = (1 − penalty)·Fmean;
//! 0 when m, h or r is 0.

pub mod porter;
pub mod tokenize;
pub mod wordnet;

use anyhow::Result;
use std::collections::HashSet;

/// METEOR parameters (NLTK's and `evaluate`'s defaults).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeteorParams {
    /// Weight of precision vs recall in Fmean (0.9).
    pub alpha: f64,
    /// Shape of the fragmentation penalty (3).
    pub beta: f64,
    /// Maximum fragmentation penalty (0.5).
    pub gamma: f64,
}

impl Default for MeteorParams {
    fn default() -> Self {
        MeteorParams { alpha: 0.9, beta: 3.0, gamma: 0.5 }
    }
}

/// A METEOR scorer holding its data: WordNet and the Punkt parameters.
#[derive(Debug)]
pub struct Meteor {
    tokenizer: tokenize::WordTokenizer,
    wordnet: wordnet::WordNet,
    params: MeteorParams,
}

type Enum = Vec<(usize, String)>;

/// NLTK's `_match_enums`: scanning hypothesis words from the end, each
/// matches the last still-unmatched reference word equal to it.
fn match_enums(
    mut hyp: Enum,
    mut reference: Enum,
    eq: impl Fn(&str, &str) -> bool,
) -> (Vec<(usize, usize)>, Enum, Enum) {
    let mut matches = Vec::new();
    let mut i = hyp.len();
    while i > 0 {
        i -= 1;
        let mut j = reference.len();
        while j > 0 {
            j -= 1;
            if eq(&hyp[i].1, &reference[j].1) {
                matches.push((hyp[i].0, reference[j].0));
                hyp.remove(i);
                reference.remove(j);
                break;
            }
        }
    }
    (matches, hyp, reference)
}

/// NLTK's `_count_chunks` over matches sorted by hypothesis index.
fn count_chunks(matches: &[(usize, usize)]) -> usize {
    let mut chunks = 1;
    for w in matches.windows(2) {
        if !(w[1].0 == w[0].0 + 1 && w[1].1 == w[0].1 + 1) {
            chunks += 1;
        }
    }
    chunks
}

impl Meteor {
    /// Loads WordNet from Debian's `wordnet-base` and the Punkt parameters
    /// from the set-up cache.
    ///
    /// # Errors
    /// Missing or malformed data files, with a hint to run `scripts/setup.sh`.
    pub fn load_default() -> Result<Self> {
        Ok(Meteor {
            tokenizer: tokenize::WordTokenizer::load_default()?,
            wordnet: wordnet::WordNet::load_default()?,
            params: MeteorParams::default(),
        })
    }

    /// Builds a scorer from loaded parts.
    pub fn new(tokenizer: tokenize::WordTokenizer, wordnet: wordnet::WordNet, params: MeteorParams) -> Self {
        Meteor { tokenizer, wordnet, params }
    }

    /// The tokenizer (NLTK `word_tokenize`).
    pub fn tokenizer(&self) -> &tokenize::WordTokenizer {
        &self.tokenizer
    }

    /// The WordNet used by the synonym stage.
    pub fn wordnet(&self) -> &wordnet::WordNet {
        &self.wordnet
    }

    /// METEOR of `prediction` against `reference` (raw text, in [0, 1]).
    pub fn score(&self, reference: &str, prediction: &str) -> f64 {
        let r = self.tokenizer.tokenize(reference);
        let h = self.tokenizer.tokenize(prediction);
        self.score_tokens(&r, &h)
    }

    /// METEOR on already tokenized text (NLTK's `single_meteor_score`).
    pub fn score_tokens(&self, reference: &[String], hypothesis: &[String]) -> f64 {
        let hyp: Enum = hypothesis.iter().map(|w| w.to_lowercase()).enumerate().collect();
        let refs: Enum = reference.iter().map(|w| w.to_lowercase()).enumerate().collect();
        let (h_len, r_len) = (hyp.len(), refs.len());
        let (mut matches, hyp, refs) = match_enums(hyp, refs, |a, b| a == b);
        let stem = |e: Enum| -> Enum { e.into_iter().map(|(i, w)| (i, porter::stem(&w))).collect() };
        let (stem_matches, hyp, refs) = match_enums(stem(hyp), stem(refs), |a, b| a == b);
        matches.extend(stem_matches);
        // Synonym stage: synonyms of each remaining hypothesis stem.
        let syn_sets: Vec<HashSet<String>> = hyp
            .iter()
            .map(|(_, w)| {
                let mut s: HashSet<String> = self.wordnet.synonyms(w).into_iter().collect();
                s.insert(w.clone());
                s
            })
            .collect();
        let mut hyp_idx: Vec<(usize, usize)> = hyp.iter().enumerate().map(|(k, (i, _))| (*i, k)).collect();
        let mut refs = refs;
        let mut i = hyp_idx.len();
        while i > 0 {
            i -= 1;
            let syns = &syn_sets[hyp_idx[i].1];
            let mut j = refs.len();
            while j > 0 {
                j -= 1;
                if syns.contains(&refs[j].1) {
                    matches.push((hyp_idx[i].0, refs[j].0));
                    hyp_idx.remove(i);
                    refs.remove(j);
                    break;
                }
            }
        }
        matches.sort_by_key(|m| m.0);
        let m = matches.len();
        if m == 0 || h_len == 0 || r_len == 0 {
            return 0.0;
        }
        let MeteorParams { alpha, beta, gamma } = self.params;
        let precision = m as f64 / h_len as f64;
        let recall = m as f64 / r_len as f64;
        let fmean = (precision * recall) / (alpha * precision + (1.0 - alpha) * recall);
        let frag = count_chunks(&matches) as f64 / m as f64;
        let penalty = gamma * frag.powf(beta);
        (1.0 - penalty) * fmean
    }
}
