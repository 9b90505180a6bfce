//! [`Session`]: one role's connection to its OpenAI-compatible server for
//! one served model: the server restpg launched for it (or the one at
//! `url`), the client, the model id the requests name, and the
//! [`events::EngineInfo`] every sample or reward it produces records.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::client::Client;
use super::served::ServedModel;
use super::server::{fill_template, free_port, Fill, Server, Servers};
use crate::engine::config::{RoleEngine, ServedRole};

/// A live connection to the server of one model.
#[derive(Debug)]
pub struct Session {
    /// The client (its base URL is the server's).
    pub client: Client,
    /// The model id sent with each request.
    pub model: String,
    /// What the log records of this engine.
    pub engine: events::EngineInfo,
    /// Concurrent requests at most.
    pub concurrency: usize,
    /// Keeps a launched server running while this session lives.
    _server: Option<Arc<Server>>,
}

/// The key named in errors: `engine.<role>`.
fn section(role: ServedRole) -> &'static str {
    role.key()
}

impl Session {
    /// Connects `role` to the server that serves `model`: the configured
    /// `url`, or a server launched from the `launch` template (shared by the
    /// role's workers through `servers`; its output goes to
    /// `RUN_DIR/engines/<role>-<hash>.log`). Reads the model id (the
    /// configured `model`, which the server must list, or the first one it
    /// lists) and the server's version where it reports one.
    ///
    /// # Errors
    /// The API key's variable unset, a launch that fails (with its output),
    /// a server that does not answer (naming the URL) or does not list the
    /// configured model.
    pub fn connect(
        role: ServedRole,
        cfg: &RoleEngine,
        model: &ServedModel,
        servers: &Servers,
        run_dir: &Path,
        seed: u64,
    ) -> Result<Session> {
        let api_key = match &cfg.api_key_env {
            Some(var) => Some(std::env::var(var).with_context(|| {
                format!("{}.api_key_env names {var}, which is not set in the environment", section(role))
            })?),
            None => None,
        };
        let timeout = Duration::from_secs(cfg.timeout_s);
        let (client, server) = match (&cfg.url, &cfg.launch) {
            (Some(url), _) => (Client::new(url, timeout, cfg.retries, api_key), None),
            (None, Some(template)) => {
                let server = servers.get_or_start(model.key, || {
                    let port = free_port()?;
                    let mut fill = Fill { port, seed, ..Fill::default() };
                    if template.contains("{gguf}") {
                        fill.gguf = Some(model.gguf(run_dir)?);
                    }
                    if template.contains("{hf_dir}") {
                        fill.hf_dir = Some(model.hf_dir(run_dir)?);
                    }
                    let command = fill_template(template, &fill)?;
                    let hex = events::digest_hex(&model.key);
                    let name = role.key().trim_start_matches("engine.");
                    let log = run_dir.join("engines").join(format!("{name}-{}.log", &hex[..12]));
                    let probe = Client::new(&format!("http://127.0.0.1:{port}/v1"), timeout, 0, api_key.clone());
                    tracing::info!(role = role.key(), %command, "starting the model server");
                    Server::start(&command, port, &log, Duration::from_secs(cfg.startup_timeout_s), &probe)
                        .with_context(|| format!("{}.launch", section(role)))
                })?;
                (Client::new(&server.base, timeout, cfg.retries, api_key), Some(server))
            }
            (None, None) => bail!("{}: neither url nor launch is set", section(role)),
        };
        let listed = client.models().with_context(|| format!("{}: listing the served models", section(role)))?;
        let model_id = match &cfg.model {
            Some(m) if listed.iter().any(|l| l == m) => m.clone(),
            Some(m) => bail!("{}.model is {m:?}, but {} serves only {listed:?}", section(role), client.base()),
            None => listed
                .first()
                .cloned()
                .with_context(|| format!("{}: {}/models lists no model", section(role), client.base()))?,
        };
        let engine = events::EngineInfo {
            backend: events::Backend::OpenAi,
            server_model: Some(model_id.clone()),
            server_version: server_version(client.base()),
            url: cfg.url.clone(),
            prompt_format: Some(cfg.prompt_format),
            deterministic: cfg.deterministic,
        };
        Ok(Session { client, model: model_id, engine, concurrency: cfg.concurrency.max(1), _server: server })
    }
}

/// The server's version, where it reports one: vLLM's `GET /version`
/// (`{"version": …}`), or the OpenAPI document's `info` (llama-cpp-python:
/// title and version). One short try each; `None` when neither answers.
fn server_version(base: &str) -> Option<String> {
    let root = base.trim_end_matches('/').trim_end_matches("/v1");
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
    let get = |path: &str| -> Option<serde_json::Value> {
        let r = agent.get(&format!("{root}{path}")).call().ok()?;
        serde_json::from_str(&r.into_string().ok()?).ok()
    };
    if let Some(v) = get("/version").and_then(|j| j.get("version").and_then(|v| v.as_str()).map(str::to_owned)) {
        return Some(v);
    }
    let info = get("/openapi.json")?.get("info")?.clone();
    let title = info.get("title").and_then(|t| t.as_str()).unwrap_or("");
    let version = info.get("version").and_then(|t| t.as_str())?;
    Some(format!("{title} {version}").trim().to_owned())
}
