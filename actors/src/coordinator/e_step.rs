//! Algorithm 1 line 5: m samples per train input from θ_t (the iteration's
//! inputs: every train input, or the subset the plan names).

use std::sync::Arc;

use events::{Event, SampleId, Stage};

use super::{Run, RunError};
use crate::capability::{CheckpointRef, Generate, SampleOutput, SampleRequest};
use crate::workers::{start_pool, GenerateBatch};

impl Run {
    /// Samples m outputs per input of iteration t from θ_t, skipping the samples
    /// already logged; every sample of the iteration must then be in the log,
    /// and all of them from θ_t.
    pub(super) async fn e_step(&mut self, t: u32, theta: &CheckpointRef) -> Result<(), RunError> {
        let plan = Arc::clone(&self.plan);
        let stage = Stage::EStep;
        let since = self.stage_started(t, stage).await?;
        if let Some((id, s)) = self.state.samples_of(t).find(|(_, s)| s.checkpoint != theta.hash) {
            return Err(RunError::Inconsistent(format!(
                "sample {id} was logged from checkpoint {}, but θ_{t} is {}",
                events::digest_hex(&s.checkpoint),
                events::digest_hex(&theta.hash)
            )));
        }
        let mut requests = Vec::new();
        for input in plan.e_step_inputs(t) {
            for index in 0..plan.m {
                let sample = SampleId { iteration: t, input_id: input.clone(), index };
                if self.state.samples.contains_key(&sample) {
                    continue;
                }
                requests.push(SampleRequest {
                    seed: sample.seed(plan.seed),
                    sample,
                    sampling: plan.e_step,
                    prompt: plan.method.policy_prompt(),
                });
            }
        }
        tracing::info!(iteration = t, missing = requests.len(), "E-step");
        let (policy, fault) = (Arc::clone(&self.caps.policy), self.fault.clone());
        self.fan_out(
            format!("{stage} {t}"),
            &requests,
            || start_pool::<dyn Generate>("sampler", plan.sampler_workers, policy, fault, None).recipient(),
            |chunk| {
                (chunk[0].sample.to_string(), GenerateBatch { checkpoint: theta.clone(), requests: chunk.to_vec() })
            },
            |msg, outputs: Vec<SampleOutput>| {
                outputs
                    .into_iter()
                    .zip(msg.requests)
                    .map(|(out, req)| Event::SampleGenerated {
                        sample: out.sample,
                        seed: req.seed,
                        prompt_digest: out.prompt_digest,
                        reasoning: out.reasoning,
                        response: out.response,
                        prompt_tokens: out.prompt_tokens,
                        output_tokens: out.output_tokens,
                        checkpoint: theta.hash,
                        temperature: req.sampling.temperature,
                        top_p: req.sampling.top_p,
                        finish: Some(out.finish),
                        penalties: req.sampling.penalties,
                        precision: out.precision,
                        engine: out.engine,
                    })
                    .collect()
            },
        )
        .await?;
        let have = self.state.samples_of(t).count();
        let want = plan.e_step_inputs(t).len() * plan.m as usize;
        if have != want {
            return Err(RunError::Inconsistent(format!("iteration {t}: {have} samples logged, expected {want}")));
        }
        self.stage_finished(t, stage, since).await
    }
}
