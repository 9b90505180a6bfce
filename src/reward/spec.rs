//! Rewards and metrics configured by name.
//!
//! Grammar (whitespace ignored): `term ('+' term)*`, `term = [weight '*'] name`,
//! `name ∈ {judge, rouge-1, rouge-2, rouge-l, meteor, similarity}`
//! (case-insensitive;
//! `rouge1`, `rougeL`, `rouge_l` are accepted aliases), `weight` a
//! non-negative decimal. `rouge-l` alone means weight 1. A mix's weights need
//! not sum to 1; the reward is Σ wᵢ·metricᵢ. Unknown names, bad weights and
//! duplicate metrics are errors naming the offending token.

use std::fmt;
use std::str::FromStr;

/// One metric usable as a reward or evaluation score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// The LLM judge (score 0..10 / 10).
    #[serde(rename = "judge")]
    Judge,
    /// ROUGE-1 F1.
    #[serde(rename = "rouge-1")]
    Rouge1,
    /// ROUGE-2 F1.
    #[serde(rename = "rouge-2")]
    Rouge2,
    /// ROUGE-L F1.
    #[serde(rename = "rouge-l")]
    RougeL,
    /// METEOR.
    #[serde(rename = "meteor")]
    Meteor,
    /// Cosine similarity of mean-pooled all-MiniLM-L6-v2 sentence
    /// embeddings, clamped to [0, 1] (see [`crate::reward::similarity`]).
    #[serde(rename = "similarity")]
    Similarity,
}

impl Metric {
    /// Canonical name (`judge`, `rouge-1`, `rouge-2`, `rouge-l`, `meteor`,
    /// `similarity`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Judge => "judge",
            Metric::Rouge1 => "rouge-1",
            Metric::Rouge2 => "rouge-2",
            Metric::RougeL => "rouge-l",
            Metric::Meteor => "meteor",
            Metric::Similarity => "similarity",
        }
    }

    /// The range `(lowest, highest)` of the metric's value. Every metric
    /// here lies in [0, 1]: the judge's score / 10, the F-measures, METEOR,
    /// and the clamped cosine of [`Metric::Similarity`].
    pub fn range(self) -> (f64, f64) {
        match self {
            Metric::Judge | Metric::Rouge1 | Metric::Rouge2 | Metric::RougeL | Metric::Meteor | Metric::Similarity => {
                (0.0, 1.0)
            }
        }
    }

    /// All metrics in canonical order.
    pub const ALL: [Metric; 6] =
        [Metric::Judge, Metric::Rouge1, Metric::Rouge2, Metric::RougeL, Metric::Meteor, Metric::Similarity];
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a metric, or a malformed reward spec.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// Unknown metric name.
    #[error("unknown metric {0:?} (expected one of judge, rouge-1, rouge-2, rouge-l, meteor, similarity)")]
    UnknownMetric(String),
    /// A weight that is not a finite non-negative number.
    #[error("bad weight {0:?} in reward spec (expected a non-negative number, as in 0.5*judge)")]
    BadWeight(String),
    /// Empty spec or empty term.
    #[error("empty term in reward spec {0:?}")]
    Empty(String),
    /// The same metric twice.
    #[error("metric {0:?} appears twice in reward spec")]
    Duplicate(String),
}

impl FromStr for Metric {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let k = s.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match k.as_str() {
            "judge" => Metric::Judge,
            "rouge-1" | "rouge1" => Metric::Rouge1,
            "rouge-2" | "rouge2" => Metric::Rouge2,
            "rouge-l" | "rougel" => Metric::RougeL,
            "meteor" => Metric::Meteor,
            "similarity" => Metric::Similarity,
            _ => return Err(SpecError::UnknownMetric(s.trim().to_string())),
        })
    }
}

/// A weighted mix of metrics: the reward is Σ weight·metric.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RewardSpec {
    /// (weight, metric) terms, in the order written; metrics are distinct.
    pub terms: Vec<(f64, Metric)>,
}

impl RewardSpec {
    /// A single metric with weight 1.
    pub fn single(metric: Metric) -> Self {
        RewardSpec { terms: vec![(1.0, metric)] }
    }

    /// Whether the judge takes part.
    pub fn uses_judge(&self) -> bool {
        self.terms.iter().any(|(_, m)| *m == Metric::Judge)
    }

    /// Whether METEOR takes part (its data must be loaded).
    pub fn uses_meteor(&self) -> bool {
        self.terms.iter().any(|(_, m)| *m == Metric::Meteor)
    }

    /// The metrics of the spec, in the order written.
    pub fn metrics(&self) -> Vec<Metric> {
        self.terms.iter().map(|(_, m)| *m).collect()
    }

    /// The range `(lowest, highest)` of the mix Σ wᵢ·metricᵢ, from each
    /// metric's [`Metric::range`] (weights are non-negative).
    pub fn range(&self) -> (f64, f64) {
        self.terms.iter().fold((0.0, 0.0), |(lo, hi), (w, m)| {
            let (a, b) = m.range();
            (lo + w * a, hi + w * b)
        })
    }
}

impl FromStr for RewardSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.is_empty() {
            return Err(SpecError::Empty(s.to_string()));
        }
        let mut terms: Vec<(f64, Metric)> = Vec::new();
        for term in compact.split('+') {
            if term.is_empty() {
                return Err(SpecError::Empty(s.to_string()));
            }
            let (w, name) = match term.split_once('*') {
                Some((w, name)) => {
                    let v: f64 = w.parse().map_err(|_| SpecError::BadWeight(w.to_string()))?;
                    if !v.is_finite() || v < 0.0 {
                        return Err(SpecError::BadWeight(w.to_string()));
                    }
                    (v, name)
                }
                None => (1.0, term),
            };
            let m: Metric = name.parse()?;
            if terms.iter().any(|(_, x)| *x == m) {
                return Err(SpecError::Duplicate(name.to_string()));
            }
            terms.push((w, m));
        }
        Ok(RewardSpec { terms })
    }
}

impl fmt::Display for RewardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [(w, m)] = self.terms.as_slice() {
            if *w == 1.0 {
                return write!(f, "{m}");
            }
        }
        let parts: Vec<String> = self.terms.iter().map(|(w, m)| format!("{w}*{m}")).collect();
        f.write_str(&parts.join("+"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_mixes() {
        assert_eq!("judge".parse::<RewardSpec>().unwrap(), RewardSpec::single(Metric::Judge));
        let s: RewardSpec = " 0.5*judge + 0.5 * rouge-L".parse().unwrap();
        assert_eq!(s.terms, vec![(0.5, Metric::Judge), (0.5, Metric::RougeL)]);
        assert_eq!(s.to_string(), "0.5*judge+0.5*rouge-l");
        assert_eq!("rougeL".parse::<Metric>().unwrap(), Metric::RougeL);
        let s: RewardSpec = "0.5*similarity+0.5*meteor".parse().unwrap();
        assert_eq!(s.terms, vec![(0.5, Metric::Similarity), (0.5, Metric::Meteor)]);
        assert_eq!(s.to_string(), "0.5*similarity+0.5*meteor");
    }

    #[test]
    fn a_mix_ranges_over_its_weighted_metric_ranges() {
        let s: RewardSpec = "0.5*similarity+2*meteor".parse().unwrap();
        assert_eq!(s.range(), (0.0, 2.5));
        assert_eq!(RewardSpec::single(Metric::Similarity).range(), (0.0, 1.0));
    }

    #[test]
    fn errors_name_the_token() {
        let e = "0.5*judge+0.5*bleu".parse::<RewardSpec>().unwrap_err();
        assert!(e.to_string().contains("\"bleu\""), "{e}");
        let e = "x*judge".parse::<RewardSpec>().unwrap_err();
        assert!(e.to_string().contains("\"x\""), "{e}");
        assert!(matches!("-1*judge".parse::<RewardSpec>(), Err(SpecError::BadWeight(_))));
        assert!(matches!("judge+judge".parse::<RewardSpec>(), Err(SpecError::Duplicate(_))));
        assert!(matches!("judge+".parse::<RewardSpec>(), Err(SpecError::Empty(_))));
        assert!(matches!("".parse::<RewardSpec>(), Err(SpecError::Empty(_))));
    }
}
