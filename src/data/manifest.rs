//! `manifest.json`: what a saved data set records about itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Task;

/// What `manifest.json` of a saved data set records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of the directory layout (currently 1).
    pub format: u32,
    /// Free-text description of where the data came from.
    pub description: String,
    /// Hex blake3 digest ([`Dataset::digest`]).
    pub digest: String,
    /// Examples per split name.
    pub counts: BTreeMap<String, usize>,
    /// Tasks present.
    pub tasks: Vec<Task>,
}

/// Name of the manifest file inside a data set directory.
pub const MANIFEST_FILE: &str = "manifest.json";
