//! The paired t-test against `scipy.stats.ttest_rel` (values stored in
//! `tests/fixtures/parity/ttest.jsonl` by `scripts/make_parity_fixtures.py`).

use restpg::eval::ttest::paired_t_test;

#[test]
fn matches_scipy_ttest_rel() {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/ttest.jsonl");
    let text = std::fs::read_to_string(&p).expect("t-test fixture");
    let mut cases = 0;
    let mut significant = 0;
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let a: Vec<f64> = serde_json::from_value(v["a"].clone()).expect("a");
        let b: Vec<f64> = serde_json::from_value(v["b"].clone()).expect("b");
        let t = v["statistic"].as_f64().expect("statistic");
        let pv = v["pvalue"].as_f64().expect("pvalue");
        let r = paired_t_test(&a, &b).expect("test");
        assert!((r.t - t).abs() <= 1e-9 * t.abs().max(1.0), "case {i}: t {} vs scipy {t}", r.t);
        assert!((r.p - pv).abs() <= 1e-9 + 1e-6 * pv, "case {i}: p {} vs scipy {pv}", r.p);
        assert_eq!(r.significant(), pv < 0.05, "case {i}");
        significant += usize::from(r.significant());
        cases += 1;
    }
    assert!(cases >= 5);
    // The fixture holds both significant and non-significant cases.
    assert!(significant > 0 && significant < cases, "{significant} of {cases} significant");
}
