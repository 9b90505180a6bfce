//! REST-PG §3 step 2: the generator summarizes each train user
//! (D_reasoning).

use std::sync::Arc;

use events::{Event, Stage};

use super::{reasoning_sample, Run, RunError};
use crate::capability::{Generate, PromptKind, SampleOutput, SampleRequest};
use crate::workers::{start_pool, GenerateBatch};

impl Run {
    /// Generates the reasoning of every train input that has none logged by
    /// this generator.
    pub(super) async fn reasoning(&mut self) -> Result<(), RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(0, Stage::Reasoning).await?;
        let requests: Vec<SampleRequest> = plan
            .train_ids
            .iter()
            .filter(|id| !self.state.reasoning.contains_key(&((*id).clone(), plan.generator_name.clone())))
            .map(|id| {
                let sample = reasoning_sample(id);
                SampleRequest {
                    seed: sample.seed(plan.seed),
                    sample,
                    sampling: plan.reasoning,
                    prompt: PromptKind::ReasoningGeneration,
                }
            })
            .collect();
        let (generator, fault) = (Arc::clone(&self.caps.generator), self.fault.clone());
        self.fan_out(
            Stage::Reasoning.to_string(),
            &requests,
            || start_pool::<dyn Generate>("generator", plan.sampler_workers, generator, fault, None).recipient(),
            |chunk| {
                let msg = GenerateBatch { checkpoint: plan.generator_checkpoint.clone(), requests: chunk.to_vec() };
                (chunk[0].sample.input_id.clone(), msg)
            },
            |msg, outputs: Vec<SampleOutput>| {
                outputs
                    .into_iter()
                    .zip(msg.requests)
                    .map(|(out, req)| Event::ReasoningGenerated {
                        input_id: req.sample.input_id,
                        generator: plan.generator_name.clone(),
                        seed: req.seed,
                        // The reasoning-generation template has no separator:
                        // the whole response is the summary, unless the
                        // implementation split one out.
                        reasoning: out.reasoning.unwrap_or(out.response),
                    })
                    .collect()
            },
        )
        .await?;
        self.stage_finished(0, Stage::Reasoning, since).await
    }
}
