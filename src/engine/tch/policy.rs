//! [`TchPolicy`]: the policy sampler and the reasoning generator.

use std::sync::Arc;

use actors::capability::{CapabilityError, CheckpointRef, Generate, PromptKind, SampleOutput, SampleRequest};

use super::{load_inference_model, retryable};
use crate::lm::{GenerationRequest, LanguageModel, SamplingSettings};
use crate::pipeline::RunContext;
use crate::prompt::parse_output;

/// The policy sampler and reasoning generator on a local tch model.
pub struct TchPolicy {
    ctx: Arc<RunContext>,
    loaded: Option<(CheckpointRef, LanguageModel)>,
    /// The precision to run in instead of the configured `dtype`.
    precision: Option<events::Precision>,
}

impl TchPolicy {
    /// A sampler with no weights loaded yet (they come with the first
    /// batch's checkpoint), in the run's configured precision.
    pub fn new(ctx: Arc<RunContext>) -> Self {
        Self { ctx, loaded: None, precision: None }
    }

    /// Runs in `precision` from the next [`Generate::load`] on, whatever
    /// the configuration's `dtype` resolves to here: `replay --resample`
    /// regenerates each sample in the precision it logged.
    pub fn set_precision(&mut self, precision: events::Precision) {
        if self.precision != Some(precision) {
            self.precision = Some(precision);
            self.loaded = None;
        }
    }

    fn model(&self) -> Result<&LanguageModel, CapabilityError> {
        self.loaded
            .as_ref()
            .map(|(_, m)| m)
            .ok_or_else(|| CapabilityError::fatal("generate called before a checkpoint was loaded"))
    }
}

impl Generate for TchPolicy {
    fn load(&mut self, checkpoint: &CheckpointRef) -> Result<(), CapabilityError> {
        if self.loaded.as_ref().is_some_and(|(c, _)| c == checkpoint) {
            return Ok(());
        }
        self.loaded = None;
        let model = load_inference_model(&self.ctx, &self.ctx.checkpoint_path(checkpoint), self.precision)?;
        self.loaded = Some((checkpoint.clone(), model));
        Ok(())
    }

    fn generate(&mut self, requests: &[SampleRequest]) -> Result<Vec<SampleOutput>, CapabilityError> {
        let model = self.model()?;
        let tok = model.tokenizer();
        let mut prompts = Vec::with_capacity(requests.len());
        let mut reqs = Vec::with_capacity(requests.len());
        for r in requests {
            let (text, ids) = self.ctx.prompt_ids(tok, &r.sample.input_id, r.prompt)?;
            reqs.push(GenerationRequest {
                prompt_ids: ids.clone(),
                seed: r.seed,
                settings: SamplingSettings {
                    temperature: f64::from(r.sampling.temperature),
                    top_p: f64::from(r.sampling.top_p),
                    top_k: None,
                    max_new_tokens: r.sampling.max_new_tokens as usize,
                    stop_tokens: tok.eos_ids().to_vec(),
                    stop_strings: self.ctx.config.sampling.stop_strings.clone(),
                    separator: crate::prompt::separator_stop(r.prompt),
                    penalties: r.sampling.penalties,
                },
            });
            prompts.push((text, ids.len()));
        }
        let gens = model.generate(&reqs).map_err(|e| retryable("generation", e))?;
        Ok(requests
            .iter()
            .zip(gens)
            .zip(prompts)
            .map(|((r, g), (text, prompt_tokens))| {
                let (reasoning, response) = match r.prompt {
                    PromptKind::Reasoning => {
                        let parsed = parse_output(&g.text);
                        (parsed.reasoning, parsed.response)
                    }
                    PromptKind::Plain => (None, g.text.trim().to_owned()),
                    PromptKind::ReasoningGeneration => (Some(g.text.trim().to_owned()), String::new()),
                };
                SampleOutput {
                    sample: r.sample.clone(),
                    prompt_digest: events::prompt_digest(&text),
                    reasoning,
                    response,
                    raw: g.text.clone(),
                    prompt_tokens: prompt_tokens as u32,
                    output_tokens: g.token_ids.len() as u32,
                    finish: g.finish,
                    precision: model.precision(),
                    engine: events::EngineInfo::tch(),
                }
            })
            .collect())
    }
}
