//! ROUGE and METEOR throughput on the real pairs of the parity fixture.
//! Run: `cargo bench --bench reward_lexical`.

use restpg::reward::meteor::Meteor;
use restpg::reward::rouge;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/lexical.jsonl");
    let pairs: Vec<(String, String)> = std::fs::read_to_string(p)?
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok((v["reference"].as_str().unwrap_or("").to_string(), v["prediction"].as_str().unwrap_or("").to_string()))
        })
        .collect::<anyhow::Result<_>>()?;
    let words: usize = pairs.iter().map(|(r, p)| r.split_whitespace().count() + p.split_whitespace().count()).sum();
    let t = Instant::now();
    let meteor = Meteor::load_default()?;
    println!("METEOR data load: {:.2} s", t.elapsed().as_secs_f64());
    let mut rouge_rates = Vec::new();
    let mut meteor_rates = Vec::new();
    let mut sink = 0.0;
    for _ in 0..5 {
        let t = Instant::now();
        for (r, p) in &pairs {
            let s = rouge::rouge(r, p);
            sink += s.rouge1.fmeasure + s.rouge2.fmeasure + s.rouge_l.fmeasure;
        }
        rouge_rates.push(pairs.len() as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for (r, p) in &pairs {
            sink += meteor.score(r, p);
        }
        meteor_rates.push(pairs.len() as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "{} pairs ({:.0} words/pair on average), 5 rounds: ROUGE-1+2+L median {:.0} pairs/s; METEOR median {:.0} pairs/s (checksum {sink:.3})",
        pairs.len(),
        words as f64 / pairs.len() as f64 / 2.0,
        median(rouge_rates),
        median(meteor_rates)
    );
    Ok(())
}
