//! Paired two-tailed Student t-test, as `scipy.stats.ttest_rel` computes it
//! and as the paper's Table 1 uses it (p < 0.05 marked with †).
//!
//! With differences dᵢ = aᵢ − bᵢ (n pairs): t = mean(d) / (s_d / √n), s_d the
//! sample standard deviation (n − 1 in the denominator), n − 1 degrees of
//! freedom, p = 2·P(T > |t|) from Student's t (`statrs`). When every
//! difference is equal, scipy's conventions are kept: identical samples give
//! t = NaN and p = NaN ("no evidence either way", never significant); a
//! constant non-zero difference gives t = ±∞ and p = 0.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The result of a paired t-test.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TTest {
    /// Number of pairs.
    pub n: usize,
    /// Mean of a − b.
    pub mean_diff: f64,
    /// The t statistic (NaN or ±∞ in the degenerate cases above).
    pub t: f64,
    /// Degrees of freedom (n − 1).
    pub df: f64,
    /// Two-tailed p-value (NaN when undefined).
    pub p: f64,
}

/// Significance level of the paper's Table 1 marker.
pub const ALPHA: f64 = 0.05;

impl TTest {
    /// Whether p < [`ALPHA`] (false when p is NaN).
    pub fn significant(&self) -> bool {
        self.p < ALPHA
    }

    /// The paper's marker: "†" when significant, else "".
    pub fn marker(&self) -> &'static str {
        if self.significant() {
            "†"
        } else {
            ""
        }
    }
}

/// Errors of [`paired_t_test`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TTestError {
    /// The two samples have different lengths.
    #[error("paired t-test needs samples of equal length, got {0} and {1}")]
    Length(usize, usize),
    /// Fewer than two pairs.
    #[error("paired t-test needs at least 2 pairs, got {0}")]
    TooFew(usize),
    /// A NaN or infinite value.
    #[error("paired t-test: non-finite value at position {0}")]
    NonFinite(usize),
}

/// Paired two-tailed t-test of `a` against `b` (same examples, same order).
///
/// # Errors
/// Unequal lengths, fewer than two pairs, or non-finite values.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Result<TTest, TTestError> {
    if a.len() != b.len() {
        return Err(TTestError::Length(a.len(), b.len()));
    }
    let n = a.len();
    if n < 2 {
        return Err(TTestError::TooFew(n));
    }
    let mut d = Vec::with_capacity(n);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if !x.is_finite() || !y.is_finite() {
            return Err(TTestError::NonFinite(i));
        }
        d.push(x - y);
    }
    let nf = n as f64;
    let mean = d.iter().sum::<f64>() / nf;
    let var = d.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (nf - 1.0);
    let df = nf - 1.0;
    let se = (var / nf).sqrt();
    let t = mean / se;
    let p = if t.is_nan() {
        f64::NAN
    } else if t.is_infinite() {
        0.0
    } else {
        match StudentsT::new(0.0, 1.0, df) {
            Ok(dist) => (2.0 * dist.sf(t.abs())).min(1.0),
            Err(_) => f64::NAN,
        }
    };
    Ok(TTest { n, mean_diff: mean, t, df, p })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_and_degenerate_cases() {
        // d = (1, 2, 3): mean 2, sd 1, t = 2/(1/√3) = 2√3, df 2.
        let r = paired_t_test(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((r.t - 2.0 * 3f64.sqrt()).abs() < 1e-12);
        // p for t=3.4641, df=2 (scipy: 0.07417990022744853).
        assert!((r.p - 0.07417990022744853).abs() < 1e-9, "{}", r.p);
        assert!(!r.significant());
        let same = paired_t_test(&[0.5, 0.5], &[0.5, 0.5]).unwrap();
        assert!(same.t.is_nan() && same.p.is_nan() && !same.significant());
        let shift = paired_t_test(&[1.0, 2.0], &[0.0, 1.0]).unwrap();
        assert!(shift.t.is_infinite() && shift.p == 0.0 && shift.marker() == "†");
        assert_eq!(paired_t_test(&[1.0], &[1.0]), Err(TTestError::TooFew(1)));
        assert_eq!(paired_t_test(&[1.0, 2.0], &[1.0]), Err(TTestError::Length(2, 1)));
    }
}
