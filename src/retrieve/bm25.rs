//! Okapi BM25 as `rank_bm25.BM25Okapi` computes it (github.com/dorianbrown/
//! rank_bm25, `rank_bm25.py`), the implementation LongLaMP's baseline calls.

use std::collections::{HashMap, HashSet};

use super::{document_text, query_text, top_k, Retriever};
use crate::data::Example;

/// BM25 parameters. Defaults are `BM25Okapi`'s: k1 = 1.5, b = 0.75,
/// ε = 0.25.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Bm25Params {
    /// Term-frequency saturation.
    pub k1: f64,
    /// Length normalisation.
    pub b: f64,
    /// Floor for negative idfs, as a fraction of the mean idf.
    pub epsilon: f64,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params { k1: 1.5, b: 0.75, epsilon: 0.25 }
    }
}

/// BM25 over one example's profile, rebuilt per query (profiles are small;
/// LongLaMP builds one index per example too). Tokens are whitespace-split,
/// case kept, as `str.split()` in LongLaMP.
#[derive(Clone, Debug, Default)]
pub struct Bm25 {
    /// Parameters.
    pub params: Bm25Params,
}

impl Bm25 {
    /// BM25 with `params`.
    pub fn new(params: Bm25Params) -> Self {
        Bm25 { params }
    }

    /// Scores of every document for the query, in document order.
    ///
    /// Per `BM25Okapi`: idf(t) = ln(N − n_t + 0.5) − ln(n_t + 0.5); idfs below
    /// zero are replaced by ε · (mean idf over all corpus terms); a query term
    /// absent from the corpus contributes 0; score(d) = Σ over query tokens
    /// (repeats count) of idf(t) · tf·(k1 + 1) / (tf + k1·(1 − b + b·|d|/avgdl)).
    pub fn scores(&self, query: &[&str], docs: &[Vec<&str>]) -> Vec<f64> {
        let n_docs = docs.len();
        if n_docs == 0 {
            return Vec::new();
        }
        let Bm25Params { k1, b, epsilon } = self.params;
        let doc_freqs: Vec<HashMap<&str, usize>> = docs
            .iter()
            .map(|d| {
                let mut m = HashMap::new();
                for t in d {
                    *m.entry(*t).or_insert(0) += 1;
                }
                m
            })
            .collect();
        // Document frequencies in the order terms first appear in the corpus
        // (documents in order, tokens in order): the order of rank_bm25's
        // `nd` dict. The idf sum below adds in this order, never in a
        // HashMap's, so the ε floor (and every logged score) is the same
        // bits in every process.
        let mut df: Vec<(&str, usize)> = Vec::new();
        let mut position: HashMap<&str, usize> = HashMap::new();
        for d in docs {
            let mut counted: HashSet<&str> = HashSet::new();
            for t in d {
                if !counted.insert(*t) {
                    continue;
                }
                match position.get(t) {
                    Some(&i) => df[i].1 += 1,
                    None => {
                        position.insert(*t, df.len());
                        df.push((*t, 1));
                    }
                }
            }
        }
        let total_len: usize = docs.iter().map(Vec::len).sum();
        let avgdl = total_len as f64 / n_docs as f64;
        let n = n_docs as f64;
        let mut idf: HashMap<&str, f64> = HashMap::with_capacity(df.len());
        let mut idf_sum = 0.0;
        let mut negative = Vec::new();
        for &(t, f) in &df {
            let v = (n - f as f64 + 0.5).ln() - (f as f64 + 0.5).ln();
            idf.insert(t, v);
            idf_sum += v;
            if v < 0.0 {
                negative.push(t);
            }
        }
        let eps = if idf.is_empty() { 0.0 } else { epsilon * idf_sum / idf.len() as f64 };
        for t in negative {
            idf.insert(t, eps);
        }
        docs.iter()
            .zip(&doc_freqs)
            .map(|(d, freqs)| {
                // An empty corpus (all documents empty) has avgdl 0: no term
                // matches then, so the length factor is never used.
                let len_norm = if avgdl > 0.0 { 1.0 - b + b * d.len() as f64 / avgdl } else { 1.0 };
                query
                    .iter()
                    .map(|q| {
                        let tf = freqs.get(q).copied().unwrap_or(0) as f64;
                        let w = idf.get(q).copied().unwrap_or(0.0);
                        w * (tf * (k1 + 1.0)) / (tf + k1 * len_norm)
                    })
                    .sum()
            })
            .collect()
    }
}

impl Retriever for Bm25 {
    fn retrieve(&mut self, example: &Example, k: usize) -> anyhow::Result<Vec<(usize, f32)>> {
        let query = query_text(example);
        let q: Vec<&str> = query.split_whitespace().collect();
        let texts: Vec<String> = example.profile.iter().map(|p| document_text(example.task, p)).collect();
        let docs: Vec<Vec<&str>> = texts.iter().map(|t| t.split_whitespace().collect()).collect();
        let scores = self.scores(&q, &docs);
        Ok(top_k(scores.into_iter().enumerate().map(|(i, s)| (i, s as f32)), k))
    }

    fn name(&self) -> String {
        format!("bm25(k1={},b={},eps={})", self.params.k1, self.params.b, self.params.epsilon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed BM25Okapi values on a 3-document corpus.
    #[test]
    fn scores_match_rank_bm25_formula() {
        let docs: Vec<Vec<&str>> = vec![vec!["a", "b"], vec!["b", "c", "c"], vec!["d"]];
        let s = Bm25::default().scores(&["c"], &docs);
        // n_c = 1, N = 3: idf = ln(2.5) - ln(1.5); no negative idfs.
        let idf = 2.5f64.ln() - 1.5f64.ln();
        let avgdl = 2.0;
        let tf = 2.0;
        let expect = idf * tf * 2.5 / (tf + 1.5 * (1.0 - 0.75 + 0.75 * 3.0 / avgdl));
        assert_eq!(s[0], 0.0);
        assert!((s[1] - expect).abs() < 1e-12, "{} vs {expect}", s[1]);
        assert_eq!(s[2], 0.0);
    }

    /// The ε floor depends on the sum of every corpus term's idf. Summed in
    /// a HashMap's order it differed in the last bits between indexes (each
    /// `HashMap` draws its own hash seed, as each process does); summed in
    /// first-appearance order it is the same bits every time, and equal to
    /// the sum rank_bm25 computes in its dict's insertion order.
    #[test]
    fn scores_are_bit_identical_across_separately_built_indexes() {
        // Many terms with idfs of varied magnitude (so the order of the sum
        // matters in floating point), and a query term with a negative idf
        // (so the sum reaches the score through ε).
        let words: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
        let docs: Vec<Vec<&str>> = (0..23)
            .map(|d| {
                let mut doc = vec!["common"];
                doc.extend(
                    words.iter().enumerate().filter(|(i, _)| (i * 7 + d) % (2 + i % 11) == 0).map(|(_, w)| w.as_str()),
                );
                doc
            })
            .collect();
        let query = ["common", "w3", "w10", "common"];
        // The sum in rank_bm25's order: terms by first appearance.
        let mut order: Vec<&str> = Vec::new();
        for d in &docs {
            for t in d {
                if !order.contains(t) {
                    order.push(*t);
                }
            }
        }
        let n = docs.len() as f64;
        let mut idf_sum = 0.0;
        for t in &order {
            let f = docs.iter().filter(|d| d.contains(t)).count() as f64;
            idf_sum += (n - f + 0.5).ln() - (f + 0.5).ln();
        }
        let eps = 0.25 * idf_sum / order.len() as f64;
        let first = Bm25::default().scores(&query, &docs);
        let d0 = &docs[0];
        let avgdl = docs.iter().map(Vec::len).sum::<usize>() as f64 / n;
        let len_norm = 1.0 - 0.75 + 0.75 * d0.len() as f64 / avgdl;
        let term = |w: f64, tf: f64| w * (tf * 2.5) / (tf + 1.5 * len_norm);
        let idf_of = |t: &str| {
            let f = docs.iter().filter(|d| d.contains(&t)).count() as f64;
            let v = (n - f + 0.5).ln() - (f + 0.5).ln();
            if v < 0.0 {
                eps
            } else {
                v
            }
        };
        let tf = |t: &str| d0.iter().filter(|x| **x == t).count() as f64;
        let expect: f64 = query.iter().map(|&q| term(idf_of(q), tf(q))).sum();
        assert_eq!(first[0].to_bits(), expect.to_bits(), "{} vs {expect}", first[0]);
        for _ in 0..32 {
            let again = Bm25::default().scores(&query, &docs);
            assert_eq!(
                again.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                first.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn negative_idf_is_floored_to_eps_times_mean() {
        // "x" is in 2 of 3 docs: idf = ln(1.5) - ln(2.5) < 0.
        let docs: Vec<Vec<&str>> = vec![vec!["x"], vec!["x", "y"], vec!["z"]];
        let idf_x = 1.5f64.ln() - 2.5f64.ln();
        let idf_1 = 2.5f64.ln() - 1.5f64.ln();
        let mean = (idf_x + 2.0 * idf_1) / 3.0;
        let s = Bm25::default().scores(&["x"], &docs);
        let avgdl = 4.0 / 3.0;
        let expect = 0.25 * mean * 2.5 / (1.0 + 1.5 * (0.25 + 0.75 * 1.0 / avgdl));
        assert!((s[0] - expect).abs() < 1e-12);
    }
}
