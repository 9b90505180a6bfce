//! E-step throughput through the actor machinery versus calling the policy
//! directly, with a zero-cost policy double: what the actors (batching,
//! backpressure, supervision, one log append per batch) cost per sample.
//!
//! `cargo bench -p restpg-actors --bench e_step`; prints medians of 5 runs.

extern crate restpg_actors as actors;

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actors::capability::*;
use actors::{run_pipeline, Method};
use events::{digest, Event};

/// A policy that costs nothing: one small output per request.
struct ZeroPolicy;

impl Generate for ZeroPolicy {
    fn load(&mut self, _: &CheckpointRef) -> Result<(), CapabilityError> {
        Ok(())
    }
    fn generate(&mut self, requests: &[SampleRequest]) -> Result<Vec<SampleOutput>, CapabilityError> {
        Ok(requests
            .iter()
            .map(|r| SampleOutput {
                sample: r.sample.clone(),
                prompt_digest: [0; 32],
                reasoning: None,
                response: format!("r{}", r.seed % 1000),
                raw: String::new(),
                finish: events::FinishReason::StopToken,
                prompt_tokens: 1,
                output_tokens: 1,
                precision: events::Precision::F32,
                engine: events::EngineInfo::tch(),
            })
            .collect())
    }
}

const INPUTS: usize = 256;
const M: u32 = 8;
const BATCH: usize = 16;
const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn requests() -> Vec<SampleRequest> {
    (0..INPUTS)
        .flat_map(|i| {
            (0..M).map(move |index| {
                let sample = events::SampleId { iteration: 1, input_id: format!("train-{i}"), index };
                SampleRequest {
                    seed: sample.seed(42),
                    sample,
                    sampling: events::Sampling {
                        temperature: 0.7,
                        top_p: 0.95,
                        max_new_tokens: 16,
                        penalties: events::Penalties::default(),
                    },
                    prompt: PromptKind::Plain,
                }
            })
        })
        .collect()
}

/// Seconds to generate every sample by calling the double directly.
fn direct() -> f64 {
    let reqs = requests();
    let mut policy = ZeroPolicy;
    let ckpt = CheckpointRef { hash: digest(b"x"), path: "x".into() };
    let start = Instant::now();
    let mut n = 0;
    for chunk in reqs.chunks(BATCH) {
        policy.load(&ckpt).unwrap();
        n += std::hint::black_box(policy.generate(chunk).unwrap()).len();
    }
    assert_eq!(n, INPUTS * M as usize);
    start.elapsed().as_secs_f64()
}

/// Seconds of the E-step stage of a real run (`StageFinished` wall time of
/// `e-step` 1, logged by the coordinator), every sample appended to the log.
fn through_actors() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = common::plan("bench", Method::RestEm, INPUTS);
    plan.val_ids.clear();
    plan.test_ids.clear();
    plan.m = M;
    plan.iterations = 1;
    plan.batch_size = BATCH;
    plan.sampler_workers = 2;
    plan.max_in_flight = 4;
    let mut caps = common::Doubles::new().capabilities();
    caps.policy = Arc::new(|| Ok(Box::new(ZeroPolicy) as Box<dyn Generate>));
    let wall = Arc::new(Mutex::new(None));
    let w = Arc::clone(&wall);
    caps.observer = Some(Arc::new(move |e: &Event| {
        if let Event::StageFinished { iteration: 1, stage, wall_ms } = e {
            if stage == "e-step" {
                *w.lock().unwrap() = Some(*wall_ms);
            }
        }
    }));
    let outcome = run_pipeline(plan, common::open_log(dir.path(), "bench"), caps).unwrap();
    assert_eq!(outcome.generated_samples, INPUTS * M as usize);
    let ms = wall.lock().unwrap().expect("e-step finished");
    ms as f64 / 1000.0
}

fn main() {
    let n = (INPUTS * M as usize) as f64;
    let direct: Vec<f64> = (0..RUNS).map(|_| direct()).collect();
    let actors: Vec<f64> = (0..RUNS).map(|_| through_actors()).collect();
    let (d, a) = (median(direct), median(actors));
    println!(
        "E-step, {} samples ({INPUTS} inputs × m = {M}), batches of {BATCH}, 2 sampler workers, ≤ 4 in flight",
        n as usize
    );
    println!("direct calls:     median {:.4} s  ({:.0} samples/s)", d, n / d);
    println!("through actors:   median {:.4} s  ({:.0} samples/s)", a, n / a);
    println!("actor + log overhead per sample: {:.1} µs", (a - d) / n * 1e6);
}
