//! [`Scorers`]: what the metrics other than the judge need loaded — METEOR's
//! WordNet data and the `similarity` sentence encoder — and the one function
//! that scores pairs with any of them ([`Scorers::values`]), used by the
//! configured reward ([`super::Composite`]), evaluation and `restpg score`.

use anyhow::{bail, Result};

use super::meteor::Meteor;
use super::similarity::Similarity;
use super::{rouge, Metric};

/// The loaded resources of the non-judge metrics; a metric whose resource is
/// not loaded is an error when asked for, never a silent 0.
#[derive(Debug, Default)]
pub struct Scorers {
    /// METEOR's data, for [`Metric::Meteor`].
    pub meteor: Option<Meteor>,
    /// The sentence encoder, for [`Metric::Similarity`].
    pub similarity: Option<Similarity>,
}

impl Scorers {
    /// Loads what `metrics` need: METEOR's data when METEOR is among them,
    /// all-MiniLM-L6-v2 when `similarity` is.
    ///
    /// # Errors
    /// METEOR data or the encoder missing or not loading.
    pub fn for_metrics(metrics: &[Metric]) -> Result<Self> {
        Ok(Scorers {
            meteor: if metrics.contains(&Metric::Meteor) { Some(Meteor::load_default()?) } else { None },
            similarity: if metrics.contains(&Metric::Similarity) { Some(Similarity::load_default()?) } else { None },
        })
    }

    /// The value of `metric` for each `(reference, prediction)` pair, in
    /// order, each in [0, 1]. Predictions are scored as given (callers pass
    /// the response part, already split and trimmed).
    ///
    /// # Errors
    /// [`Metric::Judge`] (a model, scored by [`super::Judge`]); METEOR or
    /// `similarity` asked for without its resource loaded; encoder failures.
    pub fn values(&self, metric: Metric, pairs: &[(&str, &str)]) -> Result<Vec<f64>> {
        let each = |f: &dyn Fn(&str, &str) -> f64| pairs.iter().map(|(r, p)| f(r, p)).collect::<Vec<f64>>();
        Ok(match metric {
            Metric::Rouge1 => each(&|r, p| rouge::rouge_n_tokens(&rouge::tokenize(r), &rouge::tokenize(p), 1).fmeasure),
            Metric::Rouge2 => each(&|r, p| rouge::rouge_n_tokens(&rouge::tokenize(r), &rouge::tokenize(p), 2).fmeasure),
            Metric::RougeL => each(&|r, p| rouge::rouge_l_tokens(&rouge::tokenize(r), &rouge::tokenize(p)).fmeasure),
            Metric::Meteor => match &self.meteor {
                Some(m) => each(&|r, p| m.score(r, p)),
                None => bail!("METEOR was requested but its data is not loaded"),
            },
            Metric::Similarity => match &self.similarity {
                Some(s) => s.scores(pairs)?,
                None => bail!("similarity was requested but its sentence encoder is not loaded"),
            },
            Metric::Judge => bail!("the judge is a model: score it with the LLM judge, not a lexical scorer"),
        })
    }

    /// The value of `metric` for one pair (see [`Scorers::values`]).
    ///
    /// # Errors
    /// As [`Scorers::values`].
    pub fn value(&self, metric: Metric, reference: &str, prediction: &str) -> Result<f64> {
        Ok(self.values(metric, &[(reference, prediction)])?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_without_its_resource_is_an_error_not_zero() {
        let s = Scorers::default();
        assert!(s.value(Metric::Meteor, "a b", "a b").unwrap_err().to_string().contains("METEOR"));
        assert!(s.value(Metric::Similarity, "a b", "a b").unwrap_err().to_string().contains("similarity"));
        assert!(s.value(Metric::Judge, "a", "a").is_err());
        assert_eq!(s.value(Metric::Rouge1, "the cat sat", "the cat sat").unwrap(), 1.0);
        assert_eq!(s.values(Metric::RougeL, &[("a b", "c d"), ("a b", "a b")]).unwrap(), vec![0.0, 1.0]);
    }
}
