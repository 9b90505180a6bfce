//! [`ServedGenerator`]: evaluation's text generator
//! ([`crate::eval::TextGenerator`]) on an OpenAI-compatible server, so a run
//! whose `[engine.policy]` is served evaluates θ_t on the engine that
//! sampled its E-step. Each request is one completion (n = 1) with the
//! request's own seed, decoding settings and stop strings, its prompt sent
//! as our token ids or as their text; the reply is ended as the policy's
//! samples are ([`super::policy::reply_text`]: the second separator line of
//! a reasoning prompt cuts it).

use anyhow::Result;

use super::client::{CompletionRequest, Prompt};
use super::policy::reply_text;
use super::session::Session;
use crate::lm::{ChatTokenizer, FinishReason, GenerationRequest};

/// A model behind a server, writing evaluation texts.
pub struct ServedGenerator {
    session: Session,
    tokenizer: ChatTokenizer,
    format: events::PromptFormat,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl ServedGenerator {
    /// A generator asking `session`'s server; `tokenizer` is the served
    /// model's (a text prompt is our prompt ids decoded with their special
    /// tokens), `format` how prompts are sent, `extra` fields merged into
    /// every request body (`[engine.policy] request_extra`).
    pub fn new(
        session: Session,
        tokenizer: ChatTokenizer,
        format: events::PromptFormat,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self { session, tokenizer, format, extra }
    }

    /// The engine the texts come from.
    pub fn engine(&self) -> &events::EngineInfo {
        &self.session.engine
    }

    /// The served model's tokenizer (prompts are built with it).
    pub fn tokenizer(&self) -> &ChatTokenizer {
        &self.tokenizer
    }

    fn request(&self, r: &GenerationRequest) -> Result<CompletionRequest> {
        let prompt = match self.format {
            events::PromptFormat::Tokens => Prompt::Tokens(r.prompt_ids.clone()),
            events::PromptFormat::Text => Prompt::Text(self.tokenizer.decode(&r.prompt_ids)?),
        };
        let s = &r.settings;
        Ok(CompletionRequest {
            prompt,
            max_tokens: u32::try_from(s.max_new_tokens).unwrap_or(u32::MAX),
            temperature: s.temperature as f32,
            top_p: s.top_p as f32,
            seed: r.seed,
            stop: s.stop_strings.clone(),
            logprobs: None,
            penalties: s.penalties,
            extra: self.extra.clone(),
        })
    }
}

impl crate::eval::TextGenerator for ServedGenerator {
    fn generate_texts(&mut self, reqs: &[GenerationRequest]) -> Result<Vec<String>> {
        Ok(self.generate_finished(reqs)?.into_iter().map(|(t, _)| t).collect())
    }

    /// # Errors
    /// A request the server fails (after its retries) or answers with a
    /// malformed reply, naming the URL; the first such error is returned.
    fn generate_finished(&mut self, reqs: &[GenerationRequest]) -> Result<Vec<(String, Option<FinishReason>)>> {
        let jobs = reqs.iter().map(|r| self.request(r)).collect::<Result<Vec<_>>>()?;
        let session = &self.session;
        let replies =
            super::parallel::map(&jobs, session.concurrency, |req| session.client.complete(&session.model, req));
        let mut out = Vec::with_capacity(reqs.len());
        for (r, reply) in reqs.iter().zip(replies) {
            let c = reply?;
            let (text, finish) = reply_text(c, r.settings.separator.as_deref());
            out.push((text, Some(finish)));
        }
        Ok(out)
    }
}
