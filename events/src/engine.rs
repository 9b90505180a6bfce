//! [`EngineInfo`]: which engine produced a sample or a reward, as the log
//! records it with each `SampleGenerated` and `RewardAssigned` (schema
//! version 6).

use serde::{Deserialize, Serialize};

use crate::{Backend, PromptFormat};

/// The engine behind one sample or one reward: enough to tell, from the log
/// alone, whether `replay --resample` can claim the same text again.
///
/// The checkpoint served, the seed, the request settings and the finish
/// reason are fields of the records themselves; this names the machinery.
/// An API key is never part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EngineInfo {
    /// The embedded tch engine or an OpenAI-compatible server.
    pub backend: Backend,
    /// The model id the server's `/v1/models` reported and the request
    /// named; `None` for tch.
    pub server_model: Option<String>,
    /// The server's own version where it reports one (the `Server` header of
    /// its replies, or the `version` of `/version`); `None` when it reports
    /// none, and for tch.
    pub server_version: Option<String>,
    /// The base URL of a server someone else runs (`[engine.*] url`);
    /// `None` for a server restpg launched (its address is a free local
    /// port, meaningless later; the launch template is in the run's
    /// configuration) and for tch.
    pub url: Option<String>,
    /// How the prompt was sent; `None` for tch (token ids, in process).
    pub prompt_format: Option<PromptFormat>,
    /// Whether the same request and seed give the same text: always true
    /// for tch (batch-invariant decoding); for a server, what its operator
    /// declared (`[engine.*] deterministic`).
    pub deterministic: bool,
}

impl EngineInfo {
    /// The embedded tch engine: what every record before schema version 6
    /// was produced by.
    pub fn tch() -> Self {
        Self { backend: Backend::Tch, deterministic: true, ..Self::default() }
    }
}
