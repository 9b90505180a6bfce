//! Prefill and decode throughput of the tch language model on the real
//! SmolLM2-135M-Instruct at batch 1, 8 and 32, and peak resident memory.
//!
//! Run: `cargo bench --bench lm_generate` (release build; `LM_BENCH_THREADS`
//! sets torch's intra-op threads, `LM_BENCH_NEW` the decode length). Prompts are
//! distinct ~60-token chat prompts; decoding samples at temperature 1.0 so
//! rows rarely stop early; decode tokens/s counts the tokens actually
//! generated, divided by the time after prefill.

use restpg::lm::{GenerationRequest, LanguageModel, SamplingSettings};
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    if let Some(n) = std::env::var("LM_BENCH_THREADS").ok().and_then(|v| v.parse().ok()) {
        tch::set_num_threads(n);
    }
    let path = restpg::paths::require(restpg::paths::smollm2_gguf())?;
    let t = Instant::now();
    let m = LanguageModel::load(&path, tch::Device::Cpu)?;
    println!(
        "load: {:.2}s, rss after load {:.0} MiB, torch threads {}",
        t.elapsed().as_secs_f64(),
        peak_rss_mib(),
        tch::get_num_threads()
    );
    let new_tokens: usize = std::env::var("LM_BENCH_NEW").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let topics = ["the sea", "a mountain village", "bread", "trains", "the moon", "a library", "winter", "bees"];
    let reqs = |b: usize, max_new: usize| -> anyhow::Result<Vec<GenerationRequest>> {
        (0..b)
            .map(|i| {
                let user = format!(
                    "Write a short story of about one hundred words about {} for a child who is {} years old. Use simple words and a happy ending.",
                    topics[i % topics.len()],
                    4 + i
                );
                let tk = m.tokenizer();
                Ok(GenerationRequest {
                    prompt_ids: tk.chat(None, &user)?.ids,
                    seed: i as u64,
                    settings: SamplingSettings { temperature: 1.0, top_p: 1.0, top_k: None, max_new_tokens: max_new, ..Default::default() },
                })
            })
            .collect()
    };
    println!("| batch | prompt tokens | prefill tok/s | decode tok/s | decode ms/step | peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    for b in [1usize, 8, 32] {
        let r1 = reqs(b, 1)?;
        let prompt_tokens: usize = r1.iter().map(|r| r.prompt_ids.len()).sum();
        let _ = m.generate(&r1)?; // warm-up
        let mut prefill = vec![];
        for _ in 0..3 {
            let t = Instant::now();
            let _ = m.generate(&r1)?;
            prefill.push(t.elapsed().as_secs_f64());
        }
        let prefill = median(prefill);
        let rn = reqs(b, new_tokens)?;
        let mut decode_rates = vec![];
        let mut step_ms = vec![];
        for _ in 0..if b == 32 { 1 } else { 2 } {
            let t = Instant::now();
            let g = m.generate(&rn)?;
            let total = t.elapsed().as_secs_f64();
            let generated: usize = g.iter().map(|g| g.token_ids.len()).sum();
            let steps = g.iter().map(|g| g.token_ids.len()).max().unwrap_or(1).max(1);
            decode_rates.push(generated as f64 / (total - prefill));
            step_ms.push((total - prefill) * 1000.0 / steps as f64);
        }
        println!(
            "| {b} | {prompt_tokens} | {:.0} | {:.1} | {:.1} | {:.0} |",
            prompt_tokens as f64 / prefill,
            median(decode_rates),
            median(step_ms),
            peak_rss_mib()
        );
    }
    Ok(())
}
