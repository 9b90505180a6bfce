//! Parity of the lexical metrics with the Python references LongLaMP's
//! evaluation calls (`rouge_score` 0.1.2, NLTK 3.9.2 METEOR through
//! `evaluate`'s call), on the real-text pairs of
//! `tests/fixtures/parity/lexical.jsonl` (regenerate with
//! `scripts/make_parity_fixtures.py`).

use restpg::reward::meteor::{porter, Meteor};
use restpg::reward::rouge;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::OnceLock;

fn fixture(name: &str) -> Vec<serde_json::Value> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name} line {}: {e}", i + 1)))
        .collect()
}

#[derive(Deserialize)]
struct Pair {
    id: String,
    prediction: String,
    reference: String,
    rouge1: f64,
    rouge2: f64,
    #[serde(rename = "rougeL")]
    rouge_l: f64,
    meteor: f64,
    prediction_tokens: Vec<String>,
    reference_tokens: Vec<String>,
}

fn pairs() -> Vec<Pair> {
    fixture("lexical.jsonl").into_iter().map(|v| serde_json::from_value(v).expect("pair schema")).collect()
}

fn meteor() -> &'static Meteor {
    static M: OnceLock<Meteor> = OnceLock::new();
    M.get_or_init(|| Meteor::load_default().expect("METEOR data (run scripts/setup.sh)"))
}

#[test]
fn fixture_has_at_least_200_real_pairs() {
    let p = pairs();
    assert!(p.len() >= 200, "{} pairs", p.len());
    assert!(p.iter().filter(|x| x.id.starts_with("email:") || x.id.starts_with("essay:")).count() >= 200);
}

#[test]
fn rouge_matches_rouge_score_within_1e_6() {
    let mut worst = (0.0f64, String::new());
    for p in pairs() {
        let s = rouge::rouge(&p.reference, &p.prediction);
        for (name, ours, theirs) in [
            ("rouge1", s.rouge1.fmeasure, p.rouge1),
            ("rouge2", s.rouge2.fmeasure, p.rouge2),
            ("rougeL", s.rouge_l.fmeasure, p.rouge_l),
        ] {
            let d = (ours - theirs).abs();
            assert!(d <= 1e-6, "{} {name}: ours {ours} vs rouge_score {theirs}", p.id);
            if d > worst.0 {
                worst = (d, p.id.clone());
            }
        }
    }
    eprintln!("worst ROUGE difference {:.3e} ({})", worst.0, worst.1);
}

#[test]
fn word_tokenize_matches_nltk() {
    let tok = meteor().tokenizer();
    let mut bad = Vec::new();
    for p in pairs() {
        for (text, want) in [(&p.prediction, &p.prediction_tokens), (&p.reference, &p.reference_tokens)] {
            let got = tok.tokenize(text);
            if &got != want {
                let k = got.iter().zip(want.iter()).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
                bad.push(format!(
                    "{}: first difference at token {k}: ours {:?} vs nltk {:?}",
                    p.id,
                    &got[k.saturating_sub(2)..(k + 3).min(got.len())],
                    &want[k.saturating_sub(2)..(k + 3).min(want.len())]
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{} of the texts differ:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn porter_matches_nltk_on_every_fixture_word() {
    let mut bad = Vec::new();
    let rows = fixture("porter.jsonl");
    for v in &rows {
        let w = v["word"].as_str().expect("word");
        let s = v["stem"].as_str().expect("stem");
        let got = porter::stem(w);
        if got != s {
            bad.push(format!("{w:?}: ours {got:?} vs nltk {s:?}"));
        }
    }
    assert!(rows.len() > 5000);
    assert!(bad.is_empty(), "{} of {} stems differ:\n{}", bad.len(), rows.len(), bad[..bad.len().min(30)].join("\n"));
}

#[test]
fn wordnet_synonyms_match_nltk() {
    let wn = meteor().wordnet();
    let mut bad = Vec::new();
    let rows = fixture("wordnet.jsonl");
    for v in &rows {
        let w = v["word"].as_str().expect("word");
        let want: Vec<String> = serde_json::from_value(v["synonyms"].clone()).expect("synonyms");
        let got: Vec<String> = wn.synonyms(w).into_iter().collect();
        if got != want {
            bad.push(format!("{w:?}: ours {got:?} vs nltk {want:?}"));
        }
    }
    assert!(bad.is_empty(), "{} of {} differ:\n{}", bad.len(), rows.len(), bad[..bad.len().min(20)].join("\n"));
}

#[test]
fn meteor_matches_nltk_within_1e_3() {
    let m = meteor();
    let mut bad = Vec::new();
    let mut worst = 0.0f64;
    for p in pairs() {
        let ours = m.score(&p.reference, &p.prediction);
        let d = (ours - p.meteor).abs();
        worst = worst.max(d);
        if d > 1e-3 {
            bad.push(format!("{}: ours {ours} vs nltk {}", p.id, p.meteor));
        }
    }
    eprintln!("worst METEOR difference {worst:.3e}");
    assert!(bad.is_empty(), "{} pairs differ:\n{}", bad.len(), bad.join("\n"));
}
