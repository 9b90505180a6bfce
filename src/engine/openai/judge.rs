//! [`OpenAiScorer`]: the LLM judge's model on an OpenAI-compatible server,
//! as the [`ScoreModel`] the judge ([`crate::reward::Judge`]) reads scores
//! from.
//!
//! Each position the judge reads is one completion request of one token at
//! temperature 0 with `logprobs = top_logprobs`: the prompt (and, for the
//! second digit of "10", the prompt followed by "1") gives the returned top
//! log-probabilities, which are mapped back to the judge tokenizer's ids.
//! Everything else in the vocabulary is `-inf`: a score outside the top k
//! gets probability 0, and the mass outside them is recorded as unseen (the
//! largest over the positions read since [`OpenAiScorer::take_unseen`]). A
//! reply without log-probabilities is an error naming the URL with an
//! excerpt of the reply, never a score of 0.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context as _, Result};

use super::client::{CompletionRequest, Prompt};
use super::parallel;
use super::served::ServedModel;
use super::server::Servers;
use super::session::Session;
use crate::engine::config::{RoleEngine, ServedRole};
use crate::lm::ChatTokenizer;
use crate::reward::judge::ScoreModel;

/// The judge's model behind a server.
pub struct OpenAiScorer {
    session: Session,
    tokenizer: ChatTokenizer,
    format: events::PromptFormat,
    top_logprobs: u32,
    extra: serde_json::Map<String, serde_json::Value>,
    /// Vocabulary size of the rows returned (the tokenizer's).
    vocab: usize,
    unseen: Arc<Mutex<Option<f32>>>,
}

impl OpenAiScorer {
    /// A scorer asking `session`'s server, mapping tokens with the judge's
    /// own `tokenizer` (the model the server serves must share it).
    pub fn new(
        session: Session,
        tokenizer: ChatTokenizer,
        format: events::PromptFormat,
        top_logprobs: u32,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let vocab = tokenizer.vocab_size();
        // Special tokens banned from the one generated token: a server that
        // generates an end-of-turn token (llama-cpp-python) drops it from the
        // reply with its log-probabilities. Servers compute the returned top
        // log-probabilities before the bias, so they are unchanged.
        let mut bias = serde_json::Map::new();
        for (id, t) in tokenizer.inner().get_added_tokens_decoder() {
            if t.special {
                bias.insert(id.to_string(), serde_json::json!(-100));
            }
        }
        let mut all = serde_json::Map::new();
        if !bias.is_empty() {
            all.insert("logit_bias".into(), serde_json::Value::Object(bias));
        }
        all.extend(extra);
        Self { session, tokenizer, format, top_logprobs, extra: all, vocab, unseen: Arc::default() }
    }

    /// The judge model at `judge_path` on the server `cfg` names
    /// (`[engine.judge]`: launched, its `{gguf}` being `judge_path` itself,
    /// or at `url`), its tokens mapped through `judge_path`'s own tokenizer.
    /// Servers launched for it are shared through `servers`; `run_dir`
    /// holds their logs.
    ///
    /// # Errors
    /// A tokenizer that does not load, or what [`Session::connect`] returns
    /// (a launch that fails, a server that does not answer, naming the URL).
    pub fn connect(cfg: &RoleEngine, judge_path: &Path, servers: &Servers, run_dir: &Path, seed: u64) -> Result<Self> {
        let tokenizer = crate::lm::LanguageModel::load_tokenizer(judge_path)?;
        let served = ServedModel {
            key: events::digest(judge_path.to_string_lossy().as_bytes()),
            path: judge_path.to_owned(),
            gguf_base: None,
        };
        let session = Session::connect(ServedRole::Judge, cfg, &served, servers, run_dir, seed)?;
        Ok(Self::new(session, tokenizer, cfg.prompt_format, cfg.top_logprobs, cfg.request_extra.clone()))
    }

    /// What the log records of this engine.
    pub fn engine(&self) -> &events::EngineInfo {
        &self.session.engine
    }

    /// A handle to the unseen mass: the largest probability mass outside
    /// the returned top log-probabilities at any position read since the
    /// last take (`None`: nothing read).
    pub fn unseen_handle(&self) -> Arc<Mutex<Option<f32>>> {
        Arc::clone(&self.unseen)
    }

    /// The next-token log-probability row `[V]` after `prefix`, and the
    /// mass outside it.
    fn row(&self, prefix: &[u32]) -> Result<(Vec<f32>, f32)> {
        let prompt = match self.format {
            events::PromptFormat::Tokens => Prompt::Tokens(prefix.to_vec()),
            events::PromptFormat::Text => Prompt::Text(self.tokenizer.decode(prefix)?),
        };
        let req = CompletionRequest {
            prompt,
            max_tokens: 1,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: vec![],
            logprobs: Some(self.top_logprobs),
            penalties: events::Penalties::default(),
            extra: self.extra.clone(),
        };
        let c = self.session.client.complete(&self.session.model, &req)?;
        let top = c.top_logprobs.as_ref().and_then(|t| t.first()).context("no top log-probabilities")?;
        let mut row = vec![f32::NEG_INFINITY; self.vocab];
        let mut seen = 0f64;
        for (text, &lp) in top {
            // A returned token maps back when our tokenizer spells it as one
            // token; a piece it does not (a partial UTF-8 byte) stays unseen.
            let ids = self.tokenizer.encode(text)?;
            if let [id] = ids[..] {
                if let Some(slot) = row.get_mut(id as usize) {
                    if *slot == f32::NEG_INFINITY {
                        *slot = lp;
                        seen += f64::from(lp).exp();
                    }
                }
            }
        }
        Ok((row, (1.0 - seen).max(0.0) as f32))
    }
}

impl ScoreModel for OpenAiScorer {
    fn tail_logprobs(&mut self, seqs: &[Vec<u32>], tails: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
        ensure!(seqs.len() == tails.len(), "{} sequences with {} tails", seqs.len(), tails.len());
        let mut prefixes = Vec::new();
        for (s, &t) in seqs.iter().zip(tails) {
            ensure!(t >= 1 && t <= s.len(), "tail {t} of a sequence of {} tokens", s.len());
            for j in 0..t {
                prefixes.push(&s[..s.len() - t + 1 + j]);
            }
        }
        let rows = parallel::map(&prefixes, self.session.concurrency, |p| self.row(p));
        let mut it = rows.into_iter();
        let mut out = Vec::with_capacity(seqs.len());
        let mut worst: Option<f32> = None;
        for &t in tails {
            let mut positions = Vec::with_capacity(t);
            for _ in 0..t {
                let (row, unseen) = it.next().context("rows ran out")?.context("judging through the server")?;
                worst = Some(worst.map_or(unseen, |w| w.max(unseen)));
                positions.push(row);
            }
            out.push(positions);
        }
        if let Some(w) = worst {
            let mut u = self.unseen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *u = Some(u.map_or(w, |x| x.max(w)));
        }
        Ok(out)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids)
    }

    fn chat_prompt_ids(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.chat(system, user)?.ids)
    }
}
