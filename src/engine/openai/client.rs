//! [`Client`]: the OpenAI-compatible completions API (`POST /v1/completions`,
//! `GET /v1/models`) as vLLM, SGLang and llama.cpp's servers speak it, with
//! retries, backoff and timeouts, and errors that name the URL, the status
//! and an excerpt of the reply.
//!
//! Reference: the legacy completions API of OpenAI (request fields `prompt`,
//! `max_tokens`, `temperature`, `top_p`, `seed`, `stop`, `logprobs`; reply
//! `choices[].text`, `finish_reason`, `logprobs.top_logprobs`, `usage`),
//! which vLLM (`vllm/entrypoints/openai/protocol.py`, `CompletionRequest`)
//! and llama-cpp-python (`llama_cpp/server/types.py`,
//! `CreateCompletionRequest`) implement.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

/// Why a request failed, after its retries.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No reply (connection refused, reset, timed out) after every try.
    #[error("{url}: no answer after {tries} tries: {last}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// Tries made.
        tries: u32,
        /// The last transport error.
        last: String,
    },
    /// An HTTP error status (after retries for 429 and 5xx).
    #[error("{url}: HTTP {status} after {tries} tries: {excerpt}")]
    Status {
        /// The URL asked.
        url: String,
        /// The last status.
        status: u16,
        /// Tries made.
        tries: u32,
        /// The start of the reply body.
        excerpt: String,
    },
    /// A reply that is not the JSON shape the API defines.
    #[error("{url}: malformed reply ({what}): {excerpt}")]
    Malformed {
        /// The URL asked.
        url: String,
        /// What is wrong with it.
        what: String,
        /// The start of the reply body.
        excerpt: String,
    },
}

impl ClientError {
    /// Whether a later try (a rebuilt worker, a restarted server) may
    /// succeed: a server that did not answer or failed on its side, not one
    /// that refused the request or replied with garbage.
    pub fn retryable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Status { status, .. } => *status == 429 || *status >= 500,
            ClientError::Malformed { .. } => false,
        }
    }
}

/// At most this many characters of a reply body go into an error.
const EXCERPT: usize = 300;

fn excerpt(body: &str) -> String {
    let mut s: String = body.chars().take(EXCERPT).collect();
    if body.chars().nth(EXCERPT).is_some() {
        s.push('…');
    }
    s
}

/// The prompt of a request: our token ids or the prompt text.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Token ids (`"prompt": [1, 2, …]`).
    Tokens(Vec<u32>),
    /// Text (`"prompt": "…"`).
    Text(String),
}

/// One `POST /v1/completions` request (always `n = 1`: one request per
/// sample, so each sample has its own seed).
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// The prompt.
    pub prompt: Prompt,
    /// Generation budget in tokens.
    pub max_tokens: u32,
    /// Softmax temperature (0 = greedy).
    pub temperature: f32,
    /// Nucleus mass in (0, 1].
    pub top_p: f32,
    /// The sample's seed.
    pub seed: u64,
    /// Stop strings (the server stops before them).
    pub stop: Vec<String>,
    /// Top log-probabilities to return per generated token (`None`: none).
    pub logprobs: Option<u32>,
    /// The repetition guards: `repetition_penalty` (vLLM, SGLang) and
    /// `repeat_penalty` (llama.cpp), `frequency_penalty`,
    /// `presence_penalty`, `min_p`.
    pub penalties: events::Penalties,
    /// Fields merged into the body last (`[engine.*] request_extra`), to
    /// spell what one engine names differently.
    pub extra: serde_json::Map<String, Value>,
}

impl CompletionRequest {
    /// The JSON body for `model`. `top_k` is sent as 0 (off, our engine's
    /// nucleus sampling has none; llama.cpp's default is 40) unless
    /// `extra` says otherwise.
    pub fn body(&self, model: &str) -> Value {
        let prompt = match &self.prompt {
            Prompt::Tokens(ids) => json!(ids),
            Prompt::Text(t) => json!(t),
        };
        let p = self.penalties;
        let mut body = json!({
            "model": model,
            "prompt": prompt,
            "n": 1,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": 0,
            "min_p": p.min_p,
            "seed": self.seed,
            "stop": self.stop,
            "frequency_penalty": p.frequency_penalty,
            "presence_penalty": p.presence_penalty,
            "repetition_penalty": p.repetition_penalty,
            "repeat_penalty": p.repetition_penalty,
            "stream": false,
        });
        let map = body.as_object_mut().expect("an object");
        if let Some(k) = self.logprobs {
            map.insert("logprobs".into(), json!(k));
        }
        for (k, v) in &self.extra {
            map.insert(k.clone(), v.clone());
        }
        body
    }
}

/// Why a completion ended, as the API says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFinish {
    /// An end-of-sequence or stop token; also a stop the server does not
    /// attribute (llama-cpp-python says only `"stop"`, whether a token or
    /// a stop string ended it).
    Stop,
    /// One of the request's stop strings, where the server says so: vLLM's
    /// `stop_reason` or SGLang's `matched_stop` is the string.
    StopString,
    /// The token budget.
    Length,
}

/// A completion's reply, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The generated text (without the stop string that ended it).
    pub text: String,
    /// Why it ended.
    pub finish: ServerFinish,
    /// `usage.prompt_tokens`, where reported.
    pub prompt_tokens: Option<u32>,
    /// `usage.completion_tokens`, where reported.
    pub completion_tokens: Option<u32>,
    /// Per generated token, the returned top log-probabilities (token text
    /// → natural-log probability), when asked for.
    pub top_logprobs: Option<Vec<BTreeMap<String, f32>>>,
    /// The `Server` header of the reply (e.g. `uvicorn`), where sent.
    pub server_header: Option<String>,
}

#[derive(Deserialize)]
struct RawReply {
    choices: Vec<RawChoice>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct RawChoice {
    text: String,
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<RawLogprobs>,
    /// vLLM: the stop string or token id that ended it (null: end of sequence).
    #[serde(default)]
    stop_reason: Option<Value>,
    /// SGLang: the same, named so.
    #[serde(default)]
    matched_stop: Option<Value>,
}

#[derive(Deserialize)]
struct RawUsage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

/// One position's top log-probabilities as sent: a server may send `null`
/// for a position or for a value.
type RawTop = Option<BTreeMap<String, Option<f32>>>;

#[derive(Deserialize)]
struct RawLogprobs {
    #[serde(default)]
    top_logprobs: Option<Vec<RawTop>>,
}

#[derive(Deserialize)]
struct RawModels {
    data: Vec<RawModel>,
}

#[derive(Deserialize)]
struct RawModel {
    id: String,
}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    api_key: Option<String>,
    retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        f.debug_struct("Client").field("base", &self.base).field("retries", &self.retries).finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8000/v1`;
    /// a trailing `/` is dropped). Each request may take `timeout`; a
    /// failed one is tried again `retries` times, waiting 0.5 s, 1 s, 2 s, …
    /// (at most 30 s) between tries. `api_key` is sent as a bearer token.
    pub fn new(base: &str, timeout: Duration, retries: u32, api_key: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
            api_key,
            retries,
            backoff: Duration::from_millis(500),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The ids `GET /models` lists, in its order.
    ///
    /// # Errors
    /// [`ClientError`]: no answer, an error status, or a reply without
    /// `data[].id`.
    pub fn models(&self) -> Result<Vec<String>, ClientError> {
        let url = format!("{}/models", self.base);
        let (body, _) = self.call(&url, None)?;
        let raw: RawModels = serde_json::from_str(&body).map_err(|e| ClientError::Malformed {
            url: url.clone(),
            what: format!("not a model list: {e}"),
            excerpt: excerpt(&body),
        })?;
        Ok(raw.data.into_iter().map(|m| m.id).collect())
    }

    /// One `GET /models`, no retries: whether the server answers yet.
    pub fn answers(&self) -> bool {
        let url = format!("{}/models", self.base);
        let mut req = self.agent.get(&url).timeout(Duration::from_secs(5));
        if let Some(k) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        matches!(req.call(), Ok(r) if r.status() == 200)
    }

    /// `POST /completions` for `model`.
    ///
    /// # Errors
    /// [`ClientError`]: no answer, an error status, a reply that is not a
    /// completion with one choice, an unknown finish reason, or (when
    /// log-probabilities were asked for) a reply without them.
    pub fn complete(&self, model: &str, request: &CompletionRequest) -> Result<Completion, ClientError> {
        let url = format!("{}/completions", self.base);
        let (body, server_header) = self.call(&url, Some(&request.body(model)))?;
        parse_completion(&url, &body, request.logprobs.is_some()).map(|mut c| {
            c.server_header = server_header;
            c
        })
    }

    /// GET (`body` = None) or POST `url`, with the retries; the reply body
    /// and its `Server` header.
    fn call(&self, url: &str, body: Option<&Value>) -> Result<(String, Option<String>), ClientError> {
        let tries = self.retries + 1;
        let mut last_err = None;
        for attempt in 0..tries {
            if attempt > 0 {
                let wait = self.backoff * 2u32.saturating_pow(attempt - 1);
                std::thread::sleep(wait.min(Duration::from_secs(30)));
            }
            let mut req = match body {
                Some(_) => self.agent.post(url),
                None => self.agent.get(url),
            };
            if let Some(k) = &self.api_key {
                req = req.set("Authorization", &format!("Bearer {k}"));
            }
            let result = match body {
                Some(b) => req.send_json(b),
                None => req.call(),
            };
            match result {
                Ok(resp) => {
                    let server = resp.header("server").map(str::to_owned);
                    return resp.into_string().map(|b| (b, server)).map_err(|e| ClientError::Malformed {
                        url: url.to_owned(),
                        what: format!("reading the reply: {e}"),
                        excerpt: String::new(),
                    });
                }
                Err(ureq::Error::Status(status, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    let err = ClientError::Status {
                        url: url.to_owned(),
                        status,
                        tries: attempt + 1,
                        excerpt: excerpt(&text),
                    };
                    if !err.retryable() {
                        return Err(err);
                    }
                    last_err = Some(err);
                }
                Err(ureq::Error::Transport(t)) => {
                    last_err =
                        Some(ClientError::Unreachable { url: url.to_owned(), tries: attempt + 1, last: t.to_string() });
                }
            }
        }
        Err(last_err.expect("at least one try"))
    }
}

/// Checks a completions reply body.
///
/// # Errors
/// [`ClientError::Malformed`] naming what is missing, with an excerpt.
pub fn parse_completion(url: &str, body: &str, want_logprobs: bool) -> Result<Completion, ClientError> {
    let bad = |what: String| ClientError::Malformed { url: url.to_owned(), what, excerpt: excerpt(body) };
    let raw: RawReply = serde_json::from_str(body).map_err(|e| bad(format!("not a completion: {e}")))?;
    let [choice] = <[RawChoice; 1]>::try_from(raw.choices)
        .map_err(|c| bad(format!("{} choices where one was asked for", c.len())))?;
    let by_string = [&choice.stop_reason, &choice.matched_stop].iter().any(|v| matches!(v, Some(Value::String(_))));
    let finish = match choice.finish_reason.as_deref() {
        Some("stop") if by_string => ServerFinish::StopString,
        Some("stop") | Some("eos") => ServerFinish::Stop,
        Some("length") => ServerFinish::Length,
        other => return Err(bad(format!("finish_reason {other:?} is not \"stop\" or \"length\""))),
    };
    let top_logprobs = if want_logprobs {
        let rows = choice
            .logprobs
            .and_then(|l| l.top_logprobs)
            .ok_or_else(|| bad("no logprobs.top_logprobs although log-probabilities were asked for".into()))?;
        let mut out = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let row = row.ok_or_else(|| bad(format!("top_logprobs[{i}] is null")))?;
            let mut m = BTreeMap::new();
            for (tok, lp) in row {
                let lp = lp
                    .filter(|v| v.is_finite() || *v == f32::NEG_INFINITY)
                    .ok_or_else(|| bad(format!("top_logprobs[{i}][{tok:?}] is not a number")))?;
                if lp > 1e-3 {
                    return Err(bad(format!("top_logprobs[{i}][{tok:?}] = {lp} is not a log-probability")));
                }
                m.insert(tok, lp);
            }
            out.push(m);
        }
        if out.is_empty() {
            return Err(bad("top_logprobs is empty although log-probabilities were asked for".into()));
        }
        Some(out)
    } else {
        None
    };
    Ok(Completion {
        text: choice.text,
        finish,
        prompt_tokens: raw.usage.as_ref().and_then(|u| u.prompt_tokens),
        completion_tokens: raw.usage.as_ref().and_then(|u| u.completion_tokens),
        top_logprobs,
        server_header: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://x/v1/completions";

    #[test]
    fn a_completion_reply_is_read_and_broken_ones_are_named() {
        let ok = r#"{"choices":[{"text":"7","finish_reason":"length","logprobs":{"tokens":["7"],"top_logprobs":[{"7":-0.1,"8":-2.5}]}}],"usage":{"prompt_tokens":15,"completion_tokens":1}}"#;
        let c = parse_completion(URL, ok, true).unwrap();
        assert_eq!(
            (c.text.as_str(), c.finish, c.prompt_tokens, c.completion_tokens),
            ("7", ServerFinish::Length, Some(15), Some(1))
        );
        assert_eq!(c.top_logprobs.unwrap()[0]["8"], -2.5);

        let no_lp = r#"{"choices":[{"text":"7","finish_reason":"stop"}]}"#;
        let err = parse_completion(URL, no_lp, true).unwrap_err().to_string();
        assert!(err.contains(URL) && err.contains("no logprobs") && err.contains("\"text\":\"7\""), "{err}");
        assert_eq!(parse_completion(URL, no_lp, false).unwrap().finish, ServerFinish::Stop);
        // A stop string, where vLLM or SGLang say it was one; a token id or
        // null is a stop token.
        for (field, value, finish) in [
            ("stop_reason", r#""\n\n###""#, ServerFinish::StopString),
            ("matched_stop", r#""</s>""#, ServerFinish::StopString),
            ("stop_reason", "2", ServerFinish::Stop),
            ("stop_reason", "null", ServerFinish::Stop),
        ] {
            let body = format!(r#"{{"choices":[{{"text":"7","finish_reason":"stop","{field}":{value}}}]}}"#);
            assert_eq!(parse_completion(URL, &body, false).unwrap().finish, finish, "{body}");
        }

        let err = parse_completion(URL, "<html>502 Bad Gateway</html>", false).unwrap_err().to_string();
        assert!(err.contains("not a completion") && err.contains("502 Bad Gateway"), "{err}");
        let err = parse_completion(URL, r#"{"choices":[]}"#, false).unwrap_err().to_string();
        assert!(err.contains("0 choices"), "{err}");
        let err = parse_completion(URL, r#"{"choices":[{"text":"","finish_reason":"abort"}]}"#, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"abort\""), "{err}");
        let bad_lp = r#"{"choices":[{"text":"7","finish_reason":"stop","logprobs":{"top_logprobs":[{"7":0.9}]}}]}"#;
        let err = parse_completion(URL, bad_lp, true).unwrap_err().to_string();
        assert!(err.contains("not a log-probability"), "{err}");
        let long = format!(r#"{{"error": "{}"}}"#, "x".repeat(1000));
        let err = parse_completion(URL, &long, false).unwrap_err().to_string();
        assert!(err.len() < 600 && err.ends_with('…'), "{err}");
    }

    #[test]
    fn the_request_body_carries_the_seed_the_guards_and_the_extras() {
        let mut extra = serde_json::Map::new();
        extra.insert("top_k".into(), json!(-1));
        let r = CompletionRequest {
            prompt: Prompt::Tokens(vec![1, 2, 3]),
            max_tokens: 16,
            temperature: 0.7,
            top_p: 0.95,
            seed: 42,
            stop: vec!["\n\n".into()],
            logprobs: Some(5),
            penalties: events::Penalties { repetition_penalty: 1.2, ..Default::default() },
            extra,
        };
        let b = r.body("m");
        assert_eq!(b["prompt"], json!([1, 2, 3]));
        assert_eq!((b["seed"].as_u64(), b["n"].as_u64(), b["logprobs"].as_u64()), (Some(42), Some(1), Some(5)));
        assert_eq!(b["top_k"], json!(-1));
        assert!((b["repeat_penalty"].as_f64().unwrap() - 1.2).abs() < 1e-6);
        assert_eq!(b["stop"], json!(["\n\n"]));
    }

    #[test]
    fn a_server_that_is_not_there_is_named_after_its_tries() {
        // A port nobody listens on: bind one, learn it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = Client::new(&format!("http://127.0.0.1:{port}/v1/"), Duration::from_secs(2), 2, None);
        c.backoff = Duration::from_millis(10);
        let err = c.models().unwrap_err();
        assert!(err.retryable());
        let msg = err.to_string();
        assert!(msg.contains(&format!("http://127.0.0.1:{port}/v1/models")) && msg.contains("3 tries"), "{msg}");
    }
}
