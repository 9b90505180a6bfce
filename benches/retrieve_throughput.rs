//! Retrieval throughput on the real demo data: BM25 queries per second and
//! MiniLM dense encoding of profile documents per second (CPU).
//!
//! Run: `cargo bench --bench retrieve_throughput` (set `RESTPG_BENCH_DOCS`
//! to change the number of encoded documents, default 256).

use std::time::Instant;

use restpg::data::{build_demo, DemoOptions, Split};
use restpg::retrieve::{document_text, Bm25, DenseRetriever, Retriever, DEFAULT_K};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ds = build_demo(tmp.path(), &DemoOptions::default())?;
    let examples: Vec<_> = ds.iter().map(|(_, e)| e.clone()).collect();
    println!(
        "demo data: {} examples ({} train), {} profile items",
        examples.len(),
        ds.split(Split::Train).len(),
        examples.iter().map(|e| e.profile.len()).sum::<usize>()
    );

    // BM25: one query per example over its own profile (index built per
    // query, as LongLaMP does).
    let mut bm25 = Bm25::default();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0;
        for e in &examples {
            std::hint::black_box(bm25.retrieve(e, DEFAULT_K)?);
            n += 1;
        }
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    println!("bm25: median {:.0} queries/s over {} queries (5 runs)", median(rates), examples.len());

    // Dense: encode profile documents, no cache (fresh encoder calls).
    let n_docs: usize = std::env::var("RESTPG_BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let docs: Vec<String> =
        examples.iter().flat_map(|e| e.profile.iter().map(move |p| document_text(e.task, p))).take(n_docs).collect();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let r = DenseRetriever::minilm()?;
    r.encoder().encode(&refs[..8.min(refs.len())])?; // warm-up
    let mut rates = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        std::hint::black_box(r.encoder().encode(&refs)?);
        rates.push(refs.len() as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "dense minilm encode: median {:.1} docs/s over {} docs (max_len {}, batch 16, {} torch threads, 3 runs)",
        median(rates),
        refs.len(),
        r.encoder().max_len(),
        tch::get_num_threads()
    );
    // A full dense retrieval pass with the cache (second pass is all hits).
    let mut r = r;
    let subset = &examples[..examples.len().min(40)];
    let t = Instant::now();
    for e in subset {
        r.retrieve(e, DEFAULT_K)?;
    }
    let cold = subset.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for e in subset {
        r.retrieve(e, DEFAULT_K)?;
    }
    let warm = subset.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "dense retrieve: {cold:.1} queries/s cold cache, {warm:.1} queries/s warm cache ({} queries)",
        subset.len()
    );
    Ok(())
}
