//! ROUGE-N and ROUGE-L F1 exactly as Google's `rouge_score` 0.1.2 computes
//! them with its default tokenizer and no stemmer — the way LongLaMP's
//! evaluation calls it through Hugging Face `evaluate`
//! (`RougeScorer(types, use_stemmer=False).score(reference, prediction)`).
//!
//! Tokenizer (`rouge_score/tokenize.py`): lowercase (Unicode, like Python's
//! `str.lower`), replace every run of characters outside `[a-z0-9]` by a
//! space, split on whitespace, drop empty tokens. The result is the list of
//! maximal `[a-z0-9]+` runs of the lowercased text, which is how it is
//! computed here.
//!
//! Scores (`rouge_scorer.py`): ROUGE-N counts clipped n-gram overlaps,
//! `precision = overlap / max(#prediction n-grams, 1)`, `recall = overlap /
//! max(#reference n-grams, 1)`; ROUGE-L uses the longest common subsequence,
//! and is 0 when either side has no token. F1 = `2pr / (p + r)`, or 0 when
//! `p + r = 0`. Arithmetic is in `f64` in the same order as Python, so values
//! agree to the last bits (tested against fixtures to 1e-6).

use std::collections::HashMap;

/// Precision, recall and F1 of one ROUGE variant (all in [0, 1]).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RougeScore {
    /// Matched units / units in the prediction.
    pub precision: f64,
    /// Matched units / units in the reference.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fmeasure: f64,
}

impl RougeScore {
    fn from_pr(precision: f64, recall: f64) -> Self {
        let fmeasure = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        RougeScore { precision, recall, fmeasure }
    }
}

/// `rouge_score`'s default tokenizer: the maximal `[a-z0-9]+` runs of the
/// Unicode-lowercased text.
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// ROUGE-N between already tokenized reference (`target`) and prediction.
///
/// # Panics
/// Never; `n = 0` yields a zero score (the Python raises; the reward spec
/// only builds n ≥ 1).
pub fn rouge_n_tokens(target: &[String], prediction: &[String], n: usize) -> RougeScore {
    if n == 0 {
        return RougeScore::default();
    }
    let t = ngrams(target, n);
    let p = ngrams(prediction, n);
    let overlap: usize = t.iter().map(|(g, c)| (*c).min(p.get(g).copied().unwrap_or(0))).sum();
    let t_count: usize = t.values().sum();
    let p_count: usize = p.values().sum();
    let precision = overlap as f64 / p_count.max(1) as f64;
    let recall = overlap as f64 / t_count.max(1) as f64;
    RougeScore::from_pr(precision, recall)
}

/// Counts of the n-grams of `toks` (empty when shorter than n).
fn ngrams(toks: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    if toks.len() >= n {
        for w in toks.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// Length of the longest common subsequence of two token lists
/// (O(|a|·|b|) time, O(|b|) memory).
pub fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L (sentence-level LCS) between tokenized reference and prediction.
pub fn rouge_l_tokens(target: &[String], prediction: &[String]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_len(target, prediction) as f64;
    RougeScore::from_pr(lcs / prediction.len() as f64, lcs / target.len() as f64)
}

/// ROUGE-1, ROUGE-2 and ROUGE-L of one pair, tokenizing once.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RougeScores {
    /// Unigram overlap.
    pub rouge1: RougeScore,
    /// Bigram overlap.
    pub rouge2: RougeScore,
    /// Longest common subsequence.
    pub rouge_l: RougeScore,
}

/// Scores `prediction` against `reference` (argument order as in
/// `rouge_score`: reference first).
pub fn rouge(reference: &str, prediction: &str) -> RougeScores {
    let t = tokenize(reference);
    let p = tokenize(prediction);
    RougeScores {
        rouge1: rouge_n_tokens(&t, &p, 1),
        rouge2: rouge_n_tokens(&t, &p, 2),
        rouge_l: rouge_l_tokens(&t, &p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_drops_non_alphanumerics_and_non_ascii() {
        assert_eq!(tokenize("Hello, World! It's 3.5 café"), vec!["hello", "world", "it", "s", "3", "5", "caf"]);
        assert!(tokenize("!!! ...").is_empty());
    }

    #[test]
    fn rouge_hand_computed() {
        // reference: the cat sat on the mat; prediction: the cat on the mat
        let s = rouge("the cat sat on the mat", "the cat on the mat");
        assert!((s.rouge1.precision - 1.0).abs() < 1e-12);
        assert!((s.rouge1.recall - 5.0 / 6.0).abs() < 1e-12);
        // bigrams: ref {the cat, cat sat, sat on, on the, the mat}; pred {the cat, cat on, on the, the mat}
        assert!((s.rouge2.precision - 3.0 / 4.0).abs() < 1e-12);
        assert!((s.rouge2.recall - 3.0 / 5.0).abs() < 1e-12);
        assert!((s.rouge_l.fmeasure - 2.0 * (5.0 / 5.0) * (5.0 / 6.0) / (1.0 + 5.0 / 6.0)).abs() < 1e-12);
        assert_eq!(rouge("", "x").rouge_l.fmeasure, 0.0);
        assert_eq!(rouge("x", "").rouge1.fmeasure, 0.0);
    }
}
