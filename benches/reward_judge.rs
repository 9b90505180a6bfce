//! LLM-judge throughput on SmolLM2-135M-Instruct for ~600-token judge
//! prompts (the built-in judge template around ~250-word texts), batched.
//! Run: `cargo bench --bench reward_judge` (CPU; uses CUDA when present).
//! `restpg bench judge` measures the same workload on the demo's texts.

use restpg::lm::LanguageModel;
use restpg::reward::judge::{Judge, JudgeConfig};
use restpg::reward::{Reward, RewardInput};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let path = restpg::paths::require(restpg::paths::smollm2_gguf())?;
    let device = tch::Device::cuda_if_available();
    let model = LanguageModel::load(&path, device)?;
    let fixture = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/lexical.jsonl");
    let pairs: Vec<serde_json::Value> =
        std::fs::read_to_string(fixture)?.lines().take(32).map(serde_json::from_str).collect::<Result<_, _>>()?;
    let items: Vec<RewardInput> = pairs
        .iter()
        .map(|v| {
            // ~120 words each side keeps the whole prompt near 600 tokens.
            let cut = |s: &str| s.split_whitespace().take(120).collect::<Vec<_>>().join(" ");
            RewardInput {
                input: "Write the next email to the mailing list.".into(),
                expected: cut(v["reference"].as_str().unwrap_or("")),
                response: cut(v["prediction"].as_str().unwrap_or("")),
            }
        })
        .collect();
    let n: usize = std::env::var("JUDGE_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let items = &items[..n.min(items.len())];
    for batch in [1usize, 4, 8] {
        let mut judge = Judge::new(&model, JudgeConfig { batch_size: batch, ..JudgeConfig::default() })?;
        let lens: Vec<usize> = items
            .iter()
            .map(|it| judge.prompt_ids(&it.input, &it.expected, &it.response).map(|v| v.len()))
            .collect::<anyhow::Result<_>>()?;
        let t = Instant::now();
        let out = judge.score(items)?;
        let dt = t.elapsed().as_secs_f64();
        println!(
            "device {device:?}: {} judge calls, prompts {:.0} tokens on average (one forward row each: prompt + \"1\", read at its last two positions), {batch} calls per forward batch: {:.3} calls/s ({:.2} s/call); mean reward {:.3}",
            items.len(),
            lens.iter().sum::<usize>() as f64 / lens.len() as f64,
            items.len() as f64 / dt,
            dt / items.len() as f64,
            out.iter().map(|o| o.reward).sum::<f32>() / out.len() as f32
        );
    }
    Ok(())
}
