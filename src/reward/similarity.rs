//! `similarity`: how close a response is in meaning to the expected output.
//!
//! The score is the cosine similarity of the two texts' sentence
//! embeddings: all-MiniLM-L6-v2 (Reimers & Gurevych 2019, the
//! sentence-transformers model), mean-pooled over non-padding tokens — the
//! dense retriever's encoder, [`crate::retrieve::BertEncoder`], reused as
//! it is — mapped to [0, 1] by `max(cos, 0)` (then capped at 1 against
//! rounding).
//!
//! Why `max(cos, 0)` and not `(cos + 1) / 2`: both keep the order of
//! positive cosines, so they rank (and AUC) alike, but MiniLM's cosines of
//! unrelated English texts sit near 0–0.2 and hardly ever below 0, so
//! `(cos + 1) / 2` would put every response, the unrelated ones included, in
//! [0.5, 0.6] and above: the filter's τ and a mix like
//! `0.5*similarity+0.5*meteor` would see a floor of ~0.5 that carries no
//! information, and halve the spread that does. `max(cos, 0)` keeps the
//! whole spread, puts "unrelated" at about 0 like the lexical metrics, and
//! loses only the order among negative cosines (anti-related texts, which
//! are all equally wrong for a reward). An empty response scores 0 without
//! encoding, as every reward does.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::retrieve::{BertEncoder, DenseOptions};

/// The `similarity` metric on one sentence encoder (see the module docs).
pub struct Similarity {
    encoder: BertEncoder,
}

impl std::fmt::Debug for Similarity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Similarity").field("dim", &self.encoder.dim()).finish_non_exhaustive()
    }
}

/// Maps a cosine in [-1, 1] to the metric's [0, 1]: `max(cos, 0)`, capped
/// at 1 (see the module docs for why); NaN maps to 0.
pub fn cosine_to_score(cos: f64) -> f64 {
    if cos.is_nan() {
        0.0
    } else {
        cos.clamp(0.0, 1.0)
    }
}

/// Cosine similarity of two equal-length vectors; 0 when either is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

impl Similarity {
    /// The metric on an already loaded encoder.
    pub fn new(encoder: BertEncoder) -> Self {
        Similarity { encoder }
    }

    /// The metric on the sentence encoder in `dir` (see
    /// [`BertEncoder::load`]), mean-pooled and L2-normalised.
    ///
    /// # Errors
    /// As [`BertEncoder::load`].
    pub fn load(dir: &Path) -> Result<Self> {
        let encoder = BertEncoder::load(dir, DenseOptions::default())
            .with_context(|| format!("loading the similarity encoder {}", dir.display()))?;
        Ok(Self::new(encoder))
    }

    /// The metric on all-MiniLM-L6-v2 from the set-up
    /// ([`crate::paths::minilm_dir`]).
    ///
    /// # Errors
    /// The model is missing (run `scripts/setup.sh`), or as
    /// [`BertEncoder::load`].
    pub fn load_default() -> Result<Self> {
        Self::load(&crate::paths::require(crate::paths::minilm_dir())?)
    }

    /// The score in [0, 1] of each `(reference, prediction)` pair, in order;
    /// a blank prediction scores 0 without being encoded. Texts are encoded
    /// in the encoder's batches, each distinct text once.
    ///
    /// # Errors
    /// Tokenizer or tensor errors of the encoder.
    pub fn scores(&self, pairs: &[(&str, &str)]) -> Result<Vec<f64>> {
        let mut texts: Vec<&str> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (r, p) in pairs {
            if p.trim().is_empty() {
                continue;
            }
            for t in [*r, *p] {
                index.entry(t).or_insert_with(|| {
                    texts.push(t);
                    texts.len() - 1
                });
            }
        }
        let embeddings = if texts.is_empty() { Vec::new() } else { self.encoder.encode(&texts)? };
        Ok(pairs
            .iter()
            .map(|(r, p)| {
                if p.trim().is_empty() {
                    0.0
                } else {
                    cosine_to_score(cosine(&embeddings[index[r]], &embeddings[index[p]]))
                }
            })
            .collect())
    }

    /// The score of one pair (see [`Similarity::scores`]).
    ///
    /// # Errors
    /// As [`Similarity::scores`].
    pub fn score(&self, reference: &str, prediction: &str) -> Result<f64> {
        Ok(self.scores(&[(reference, prediction)])?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosines_map_to_zero_one_by_clamping() {
        assert_eq!(cosine_to_score(0.8), 0.8);
        assert_eq!(cosine_to_score(-0.3), 0.0);
        assert_eq!(cosine_to_score(1.0000001), 1.0);
        assert_eq!(cosine_to_score(f64::NAN), 0.0);
    }

    #[test]
    fn cosine_is_scale_free_and_zero_for_a_zero_vector() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[0.0, 3.0])).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
