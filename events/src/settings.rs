//! The decided settings of a run that replay needs to redo or check its
//! work, logged as typed fields of `RunStarted` (never re-parsed from the
//! configuration text).

use serde::{Deserialize, Serialize};

/// Where each M-step starts (REST-PG §3.3; ReST-EM restarts from the base).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitMode {
    /// Every M-step trains from the base checkpoint (the paper's default, as
    /// in ReST-EM: "fine-tune the base model" at each M-step).
    #[default]
    Fresh,
    /// The M-step of iteration t trains from θ_t, the checkpoint that
    /// sampled D_t.
    Continue,
}

impl InitMode {
    /// The configuration's spelling: `fresh` or `continue`.
    pub fn as_str(self) -> &'static str {
        match self {
            InitMode::Fresh => "fresh",
            InitMode::Continue => "continue",
        }
    }
}

impl std::fmt::Display for InitMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What replay needs to rebuild and check a run's E-steps and M-steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The filter threshold τ.
    pub tau: f32,
    /// Most samples kept per input.
    pub max_kept_per_input: u32,
    /// Whether samples without reasoning are dropped (`no reasoning`).
    pub require_reasoning: bool,
    /// Where each M-step starts.
    pub init: InitMode,
    /// The reasoning/response separator line of the method's template, for
    /// the reasoning methods.
    pub separator: Option<String>,
    /// The reward specification as configured (`judge`, `0.5*rouge-l +
    /// 0.5*meteor`, …).
    pub reward: String,
}
