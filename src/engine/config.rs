//! `[engine.*]`: which engine runs each role's model.
//!
//! ```toml
//! [engine.policy]        # E-step sampling
//! backend = "openai"
//! launch = "python -m llama_cpp.server --model {gguf} --host 127.0.0.1 --port {port} --seed {seed}"
//! concurrency = 1
//!
//! [engine.judge]         # the LLM judge of the reward
//! backend = "openai"
//! url = "http://judge-host:8000/v1"
//! model = "judge-7b"
//! api_key_env = "JUDGE_API_KEY"
//!
//! [engine.trainer]       # SFT and the M-step
//! backend = "command"
//! command = "python scripts/trl_sft.py --dataset {dataset} --init {init} --out {out} --seed {seed}"
//! ```
//!
//! `backend = "tch"` (every role's default) is the embedded engine. A role
//! on `"openai"` talks to a server with the OpenAI-compatible completions
//! API: one someone else runs (`url`), or one restpg starts for each
//! checkpoint it must serve (`launch`, a command template) and stops when
//! the stage ends. [`EngineSection::validate`] refuses, naming the key, an
//! unknown backend, both or neither of `url`/`launch`, a `launch` without
//! `{port}` or without the model placeholder its role needs, and unknown
//! placeholders. An API key is never in the configuration: `api_key_env`
//! names the environment variable that holds it.

use serde::{Deserialize, Serialize};

pub use events::{Backend, PromptFormat, TrainerBackend};

use crate::config::{invalid, ConfigError};

/// The placeholders a `launch` template may use.
pub const LAUNCH_PLACEHOLDERS: &[&str] = &["{hf_dir}", "{gguf}", "{port}", "{seed}"];

/// The placeholders a trainer `command` template may use.
pub const TRAINER_PLACEHOLDERS: &[&str] = &["{dataset}", "{init}", "{out}", "{seed}"];

/// One role's engine (`[engine.policy]`, `[engine.generator]`,
/// `[engine.judge]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleEngine {
    /// `tch` (default) or `openai`.
    #[serde(with = "crate::config::by_name")]
    pub backend: Backend,
    /// Base URL of a running server, ending in `/v1`
    /// (`http://host:8000/v1`).
    pub url: Option<String>,
    /// A command template restpg runs (through `sh -c`) to serve a
    /// checkpoint: `{hf_dir}` (its Hugging Face directory), `{gguf}` (its
    /// GGUF, exported when needed), `{port}` (a free local port), `{seed}`
    /// (the run seed). restpg waits until `/v1/models` answers.
    pub launch: Option<String>,
    /// The model name sent in requests; default: the first id the server's
    /// `/v1/models` lists.
    pub model: Option<String>,
    /// Requests in flight at once per worker.
    pub concurrency: usize,
    /// Seconds one request may take before it counts as failed.
    pub timeout_s: u64,
    /// Retries of a failed request (with exponential backoff from 0.5 s)
    /// before the stage fails.
    pub retries: u32,
    /// Seconds a launched server may take until `/v1/models` answers.
    pub startup_timeout_s: u64,
    /// Name of the environment variable holding the API key (sent as
    /// `Authorization: Bearer …`; never logged or written).
    pub api_key_env: Option<String>,
    /// Token ids or text prompts.
    pub prompt_format: PromptFormat,
    /// Log-probabilities requested at the judge's score position (the
    /// scores outside them count as unseen).
    pub top_logprobs: u32,
    /// Whether the server samples deterministically (the same request and
    /// seed give the same text), as its operator declares; recorded with
    /// every sample, and `replay --resample` claims bit-exactness only then.
    pub deterministic: bool,
    /// Fields merged last into every request body (a TOML table), for what
    /// one engine spells its own way, e.g. `request_extra = { top_k = -1 }`
    /// for SGLang, which refuses the `top_k = 0` restpg sends to turn top-k
    /// off. Empty by default.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub request_extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for RoleEngine {
    fn default() -> Self {
        Self {
            backend: Backend::Tch,
            url: None,
            launch: None,
            model: None,
            concurrency: 4,
            timeout_s: 600,
            retries: 3,
            startup_timeout_s: 300,
            api_key_env: None,
            prompt_format: PromptFormat::Tokens,
            top_logprobs: 20,
            deterministic: false,
            request_extra: serde_json::Map::new(),
        }
    }
}

/// `[engine.trainer]`: who runs SFT and the M-step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerEngine {
    /// `tch` (default) or `command`.
    #[serde(with = "crate::config::by_name")]
    pub backend: TrainerBackend,
    /// The command template (through `sh -c`): `{dataset}` (D_t as JSONL,
    /// TRL's prompt-completion shape with `weight`), `{init}` (the start
    /// checkpoint's Hugging Face directory), `{out}` (the directory to
    /// write), `{seed}` (the job's seed).
    pub command: Option<String>,
}

/// `[engine]`: every role's engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// E-step sampling from θ_t.
    pub policy: RoleEngine,
    /// The reasoning generator (REST-PG §3.1), a fixed model.
    pub generator: RoleEngine,
    /// The LLM judge of the reward, a fixed model.
    pub judge: RoleEngine,
    /// SFT and the M-step.
    pub trainer: TrainerEngine,
}

/// The roles of `[engine.*]` that serve a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedRole {
    /// `[engine.policy]`.
    Policy,
    /// `[engine.generator]`.
    Generator,
    /// `[engine.judge]`.
    Judge,
}

impl ServedRole {
    /// The section's key, `engine.policy` etc.
    pub fn key(self) -> &'static str {
        match self {
            ServedRole::Policy => "engine.policy",
            ServedRole::Generator => "engine.generator",
            ServedRole::Judge => "engine.judge",
        }
    }
}

/// The `{…}` placeholders of `template` that are not in `known`.
fn unknown_placeholders(template: &str, known: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else { break };
        let name = &rest[start..=start + len];
        if !known.contains(&name) {
            out.push(name.to_owned());
        }
        rest = &rest[start + len + 1..];
    }
    out
}

impl RoleEngine {
    /// Checks one role's keys.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key (`engine.judge.url`, …).
    pub fn validate(&self, role: ServedRole) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{}.{k}", role.key());
        if self.backend == Backend::Tch {
            for (k, set) in [("url", self.url.is_some()), ("launch", self.launch.is_some())] {
                if set {
                    return Err(invalid(&key(k), "is only for backend = \"openai\" (this role runs on tch)"));
                }
            }
            return Ok(());
        }
        match (&self.url, &self.launch) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    &key("url"),
                    "and `launch` are both set: give `url` for a running server or `launch` for one restpg starts",
                ))
            }
            (None, None) => return Err(invalid(
                &key("url"),
                "is missing: backend = \"openai\" needs `url` (a running server) or `launch` (a command restpg runs)",
            )),
            (Some(url), None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(&key("url"), format!("must start with http:// or https://, not {url:?}")));
                }
            }
            (None, Some(launch)) => {
                if let Some(bad) = unknown_placeholders(launch, LAUNCH_PLACEHOLDERS).first() {
                    return Err(invalid(
                        &key("launch"),
                        format!("has the unknown placeholder {bad} (known: {})", LAUNCH_PLACEHOLDERS.join(", ")),
                    ));
                }
                if !launch.contains("{port}") {
                    return Err(invalid(&key("launch"), "needs {port}: restpg picks the port the server listens on"));
                }
                if !launch.contains("{gguf}") && !launch.contains("{hf_dir}") {
                    return Err(invalid(
                        &key("launch"),
                        "needs {gguf} or {hf_dir}: the model restpg serves (θ_t changes every iteration)",
                    ));
                }
            }
        }
        for (k, v) in [
            ("concurrency", self.concurrency as u64),
            ("timeout_s", self.timeout_s),
            ("startup_timeout_s", self.startup_timeout_s),
            ("top_logprobs", u64::from(self.top_logprobs)),
        ] {
            if v == 0 {
                return Err(invalid(&key(k), "must be at least 1"));
            }
        }
        if let Some(var) = &self.api_key_env {
            let ok = !var.is_empty()
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !var.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(invalid(
                    &key("api_key_env"),
                    format!("must name an environment variable (letters, digits, _), not {var:?}"),
                ));
            }
        }
        if self.model.as_deref() == Some("") {
            return Err(invalid(&key("model"), "is empty: leave it out to use the server's first model"));
        }
        Ok(())
    }
}

impl EngineSection {
    /// The engine of `role`.
    pub fn role(&self, role: ServedRole) -> &RoleEngine {
        match role {
            ServedRole::Policy => &self.policy,
            ServedRole::Generator => &self.generator,
            ServedRole::Judge => &self.judge,
        }
    }

    /// Whether every role runs on the embedded engines (the default; the
    /// canonical configuration then leaves `[engine]` out, so the
    /// configuration text of runs from before it is unchanged).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Refuses, naming the key, what this build cannot run as configured:
    /// the policy at a fixed `url` (θ_t changes every iteration, so only a
    /// `launch`ed server can serve it), a repetition guard the completions
    /// API has no field for (`no_repeat_ngram_size`) in the E-step's
    /// `sampling` guards on a served policy or generator, or in the `eval`
    /// guards on a served policy (evaluation generates on its engine).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first such key.
    pub fn check_supported(&self, sampling: &events::Penalties, eval: &events::Penalties) -> Result<(), ConfigError> {
        if self.policy.backend == Backend::OpenAi && self.policy.url.is_some() {
            return Err(invalid(
                "engine.policy.url",
                "cannot serve the policy: θ_t changes every iteration, so give `launch`, a command restpg runs for \
                 each checkpoint (`url` is for a fixed judge or generator)",
            ));
        }
        for role in [ServedRole::Policy, ServedRole::Generator] {
            if self.role(role).backend == Backend::OpenAi && sampling.no_repeat_ngram_size > 0 {
                return Err(invalid(
                    "sampling.no_repeat_ngram_size",
                    format!(
                        "is {}, but the completions API has no such field and {} is served: set it to 0",
                        sampling.no_repeat_ngram_size,
                        role.key()
                    ),
                ));
            }
        }
        // Evaluation generates on the policy's engine too.
        if self.policy.backend == Backend::OpenAi && eval.no_repeat_ngram_size > 0 {
            return Err(invalid(
                "eval.no_repeat_ngram_size",
                format!(
                    "is {}, but the completions API has no such field and evaluation generates on the served \
                     engine.policy: set it to 0",
                    eval.no_repeat_ngram_size
                ),
            ));
        }
        Ok(())
    }

    /// Checks every role's keys and the trainer's command.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for role in [ServedRole::Policy, ServedRole::Generator, ServedRole::Judge] {
            self.role(role).validate(role)?;
        }
        let t = &self.trainer;
        match (t.backend, &t.command) {
            (TrainerBackend::Tch, Some(_)) => {
                Err(invalid("engine.trainer.command", "is only for backend = \"command\""))
            }
            (TrainerBackend::Tch, None) => Ok(()),
            (TrainerBackend::Command, None) => Err(invalid(
                "engine.trainer.command",
                "is missing: backend = \"command\" needs the command template to run",
            )),
            (TrainerBackend::Command, Some(cmd)) => {
                if let Some(bad) = unknown_placeholders(cmd, TRAINER_PLACEHOLDERS).first() {
                    return Err(invalid(
                        "engine.trainer.command",
                        format!("has the unknown placeholder {bad} (known: {})", TRAINER_PLACEHOLDERS.join(", ")),
                    ));
                }
                for p in ["{dataset}", "{init}", "{out}"] {
                    if !cmd.contains(p) {
                        return Err(invalid("engine.trainer.command", format!("needs {p}")));
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai() -> RoleEngine {
        RoleEngine { backend: Backend::OpenAi, ..RoleEngine::default() }
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("not an invalid key: {other}"),
        }
    }

    #[test]
    fn url_and_launch_exactly_one() {
        let mut e = openai();
        assert_eq!(key_of(e.validate(ServedRole::Judge).unwrap_err()), "engine.judge.url");
        e.url = Some("http://127.0.0.1:8000/v1".into());
        e.validate(ServedRole::Judge).unwrap();
        e.launch = Some("serve {gguf} --port {port}".into());
        let err = e.validate(ServedRole::Judge).unwrap_err().to_string();
        assert!(err.contains("both set"), "{err}");
        e.url = Some("127.0.0.1:8000".into());
        e.launch = None;
        assert!(e.validate(ServedRole::Judge).unwrap_err().to_string().contains("http://"));
    }

    #[test]
    fn launch_needs_port_and_model_and_known_placeholders() {
        let mut e = openai();
        for (launch, want) in [
            ("serve {gguf}", "needs {port}"),
            ("serve --port {port}", "needs {gguf} or {hf_dir}"),
            ("serve {gguf} --port {port} --x {checkpoint}", "unknown placeholder {checkpoint}"),
        ] {
            e.launch = Some(launch.into());
            let err = e.validate(ServedRole::Policy).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("engine.policy.launch") && text.contains(want), "{launch}: {text}");
        }
        e.launch = Some("vllm serve {hf_dir} --port {port} --seed {seed}".into());
        e.validate(ServedRole::Policy).unwrap();
    }

    #[test]
    fn tch_refuses_server_keys_and_trainer_needs_its_placeholders() {
        let e = RoleEngine { url: Some("http://x/v1".into()), ..RoleEngine::default() };
        assert_eq!(key_of(e.validate(ServedRole::Generator).unwrap_err()), "engine.generator.url");
        let mut s = EngineSection::default();
        assert!(s.is_default());
        s.validate().unwrap();
        s.trainer.backend = TrainerBackend::Command;
        assert!(s.validate().unwrap_err().to_string().contains("is missing"));
        s.trainer.command = Some("train {dataset} {init}".into());
        assert!(s.validate().unwrap_err().to_string().contains("needs {out}"));
        s.trainer.command = Some("train {dataset} {init} {out} {seed}".into());
        s.validate().unwrap();
        let neutral = events::Penalties::default();
        s.check_supported(&neutral, &neutral).unwrap();
        let judge = RoleEngine { url: Some("http://127.0.0.1:9/v1".into()), ..openai() };
        let s = EngineSection { judge: judge.clone(), ..EngineSection::default() };
        s.validate().unwrap();
        s.check_supported(&neutral, &neutral).unwrap();
        // The policy cannot be a fixed server, nor run a guard the API lacks.
        let s = EngineSection { policy: judge, ..EngineSection::default() };
        s.validate().unwrap();
        assert_eq!(key_of(s.check_supported(&neutral, &neutral).unwrap_err()), "engine.policy.url");
        let launched = RoleEngine { url: None, launch: Some("serve {gguf} --port {port}".into()), ..openai() };
        let s = EngineSection { generator: launched, ..EngineSection::default() };
        s.check_supported(&neutral, &neutral).unwrap();
        let guarded = events::Penalties { no_repeat_ngram_size: 4, ..neutral };
        let err = s.check_supported(&guarded, &neutral).unwrap_err();
        assert!(err.to_string().contains("engine.generator"), "{err}");
        assert_eq!(key_of(err), "sampling.no_repeat_ngram_size");
        // A served generator does not evaluate; a served policy does.
        s.check_supported(&neutral, &guarded).unwrap();
        let s = EngineSection { policy: s.generator.clone(), ..EngineSection::default() };
        let err = s.check_supported(&neutral, &guarded).unwrap_err();
        assert_eq!(key_of(err), "eval.no_repeat_ngram_size");
    }

    #[test]
    fn api_key_env_is_a_variable_name() {
        let mut e = openai();
        e.url = Some("https://h/v1".into());
        e.api_key_env = Some("sk-123 secret".into());
        assert_eq!(key_of(e.validate(ServedRole::Judge).unwrap_err()), "engine.judge.api_key_env");
        e.api_key_env = Some("JUDGE_KEY".into());
        e.validate(ServedRole::Judge).unwrap();
    }

    #[test]
    fn the_shipped_scaling_configurations_parse_and_are_supported() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for (name, prompt_format) in [
            ("llamacpp.toml", PromptFormat::Text),
            ("vllm.toml", PromptFormat::Tokens),
            ("sglang.toml", PromptFormat::Tokens),
        ] {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let run = crate::config::RunConfig::from_toml(&text, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
            run.engine.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            run.engine
                .check_supported(&run.sampling.penalties(), &run.eval.penalties())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(run.engine.policy.backend, Backend::OpenAi, "{name}");
            assert!(run.engine.policy.launch.is_some(), "{name}");
            assert_eq!((run.engine.judge.backend, run.engine.policy.prompt_format), (Backend::OpenAi, prompt_format));
        }
    }
}
