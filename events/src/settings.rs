//! The decided settings of a run that replay needs to redo or check its
//! work, logged as typed fields of `RunStarted` (never re-parsed from the
//! configuration text).

use serde::{Deserialize, Serialize};

use crate::vocab::InitMode;

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
    /// Whether samples that ran to `max_new_tokens` without stopping are
    /// dropped (`unfinished`). Added in schema version 7; every run logged
    /// before kept them, so older settings upcast to `false`.
    pub drop_unfinished: bool,
}
