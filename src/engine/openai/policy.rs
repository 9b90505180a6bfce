//! [`OpenAiPolicy`]: the policy sampler (and the reasoning generator) on an
//! OpenAI-compatible server: one completion request per sample (n = 1) with
//! that sample's own seed, our prompt as token ids or text, the run's stop
//! strings, and the reasoning template's separator rule applied to the
//! reply as our engine applies it.

use std::sync::Arc;

use actors::capability::{CapabilityError, CheckpointRef, Generate, PromptKind, SampleOutput, SampleRequest};

use super::client::{Completion, CompletionRequest, Prompt, ServerFinish};
use super::failure;
use super::served::ServedModel;
use super::server::Servers;
use super::session::Session;
use crate::engine::config::{RoleEngine, ServedRole};
use crate::lm::{ChatTokenizer, LanguageModel};
use crate::pipeline::RunContext;
use crate::prompt::parse_output;

/// A policy whose samples a server draws.
pub struct OpenAiPolicy {
    ctx: Arc<RunContext>,
    role: ServedRole,
    cfg: RoleEngine,
    servers: Servers,
    gguf_base: Option<std::path::PathBuf>,
    loaded: Option<Loaded>,
    /// Whether a prompt-length disagreement with the server was reported.
    warned_prompt_tokens: bool,
}

struct Loaded {
    checkpoint: CheckpointRef,
    tokenizer: ChatTokenizer,
    session: Session,
}

impl OpenAiPolicy {
    /// A sampler for `role` (`Policy` or `Generator`) configured by `cfg`;
    /// it connects when the first checkpoint is loaded. Workers of one
    /// stage share `servers`. `gguf_base` is the GGUF the checkpoints
    /// descend from, whose metadata an exported `{gguf}` takes.
    pub fn new(
        ctx: Arc<RunContext>,
        role: ServedRole,
        cfg: RoleEngine,
        servers: Servers,
        gguf_base: Option<std::path::PathBuf>,
    ) -> Self {
        Self { ctx, role, cfg, servers, gguf_base, loaded: None, warned_prompt_tokens: false }
    }
}

/// The text of a reply and why it ended, as our engine would have ended
/// it: a server's `stop` is a stop string where it says so (vLLM, SGLang),
/// else a stop token (llama-cpp-python does not say which); with a
/// `separator` ([`crate::prompt::separator_stop`]) the text is cut at its
/// second separator line, which no server can stop at.
pub(super) fn reply_text(c: Completion, separator: Option<&str>) -> (String, events::FinishReason) {
    let mut raw = c.text;
    let mut finish = match c.finish {
        ServerFinish::Stop => events::FinishReason::StopToken,
        ServerFinish::StopString => events::FinishReason::StopString,
        ServerFinish::Length => events::FinishReason::Length,
    };
    if separator.is_some() {
        if let Some((cut, rule)) = crate::lm::stop::stop_offset(&raw, &[], separator) {
            raw.truncate(cut);
            finish = rule.finish_reason();
        }
    }
    (raw, finish)
}

impl Generate for OpenAiPolicy {
    fn load(&mut self, checkpoint: &CheckpointRef) -> Result<(), CapabilityError> {
        if self.loaded.as_ref().is_some_and(|l| l.checkpoint == *checkpoint) {
            return Ok(());
        }
        self.loaded = None;
        let path = self.ctx.checkpoint_path(checkpoint);
        let tokenizer = LanguageModel::load_tokenizer(&path)
            .map_err(|e| CapabilityError::fatal(format!("loading the tokenizer of {}: {e:#}", path.display())))?;
        let served = ServedModel { key: checkpoint.hash, path, gguf_base: self.gguf_base.clone() };
        let session =
            Session::connect(self.role, &self.cfg, &served, &self.servers, &self.ctx.run_dir, self.ctx.config.seed)
                .map_err(|e| {
                    failure::from_anyhow(format!("serving checkpoint {}", events::digest_hex(&checkpoint.hash)), &e)
                })?;
        self.loaded = Some(Loaded { checkpoint: checkpoint.clone(), tokenizer, session });
        Ok(())
    }

    fn generate(&mut self, requests: &[SampleRequest]) -> Result<Vec<SampleOutput>, CapabilityError> {
        let loaded = self
            .loaded
            .as_ref()
            .ok_or_else(|| CapabilityError::fatal("generate called before a checkpoint was loaded"))?;
        let mut jobs = Vec::with_capacity(requests.len());
        for r in requests {
            let (text, ids) = self.ctx.prompt_ids(&loaded.tokenizer, &r.sample.input_id, r.prompt)?;
            let prompt = match self.cfg.prompt_format {
                events::PromptFormat::Tokens => Prompt::Tokens(ids.clone()),
                events::PromptFormat::Text => Prompt::Text(text.clone()),
            };
            let request = CompletionRequest {
                prompt,
                max_tokens: r.sampling.max_new_tokens,
                temperature: r.sampling.temperature,
                top_p: r.sampling.top_p,
                seed: r.seed,
                stop: self.ctx.config.sampling.stop_strings.clone(),
                logprobs: None,
                penalties: r.sampling.penalties,
                extra: self.cfg.request_extra.clone(),
            };
            jobs.push((r, text, ids.len(), request));
        }
        let session = &loaded.session;
        let replies = super::parallel::map(&jobs, session.concurrency, |(r, _, _, req)| {
            session
                .client
                .complete(&session.model, req)
                .map_err(|e| failure::from_client(format!("sample {}", r.sample), &e))
        });
        let mut out = Vec::with_capacity(jobs.len());
        for ((r, text, prompt_tokens, _), reply) in jobs.into_iter().zip(replies) {
            let c = reply?;
            // The server's count of the prompt it read: a text prompt it
            // re-tokenized differently from us (or ids it changed) shows here.
            if let Some(theirs) = c.prompt_tokens.filter(|n| *n as usize != prompt_tokens) {
                if !self.warned_prompt_tokens {
                    self.warned_prompt_tokens = true;
                    tracing::warn!(
                        sample = %r.sample,
                        restpg = prompt_tokens,
                        server = theirs,
                        prompt_format = %self.cfg.prompt_format,
                        "the server counts a different number of prompt tokens than restpg built (reported once per \
                         worker): it tokenized the prompt another way, so its samples were drawn from another prompt"
                    );
                }
            }
            let completion_tokens = c.completion_tokens;
            let (raw, finish) = reply_text(c, crate::prompt::separator_stop(r.prompt).as_deref());
            let output_tokens = match completion_tokens {
                Some(n) => n,
                None => loaded
                    .tokenizer
                    .encode(&raw)
                    .map(|ids| ids.len() as u32)
                    .map_err(|e| CapabilityError::fatal(format!("sample {}: {e:#}", r.sample)))?,
            };
            let (reasoning, response) = match r.prompt {
                PromptKind::Reasoning => {
                    let parsed = parse_output(&raw);
                    (parsed.reasoning, parsed.response)
                }
                PromptKind::Plain => (None, raw.trim().to_owned()),
                PromptKind::ReasoningGeneration => (Some(raw.trim().to_owned()), String::new()),
            };
            out.push(SampleOutput {
                sample: r.sample.clone(),
                prompt_digest: events::prompt_digest(&text),
                reasoning,
                response,
                raw,
                // Our count: the server's may add a BOS or re-tokenize a text prompt.
                prompt_tokens: prompt_tokens as u32,
                output_tokens,
                finish,
                // What `replay --resample` on our engine would run in: the
                // served weights are the checkpoint's f32 ones (an F32 GGUF
                // export, or the blob directory itself).
                precision: events::Precision::F32,
                engine: loaded.session.engine.clone(),
            });
        }
        Ok(out)
    }
}
