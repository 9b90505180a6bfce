//! The data set splits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A data set split. Ordered `Train < Val < Test`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// Training examples.
    Train,
    /// Validation examples (LongLaMP calls the split `val`).
    Val,
    /// Test examples.
    Test,
}

impl Split {
    /// All splits in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The file-name stem: `train`, `val`, `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "val" | "dev" | "validation" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            other => anyhow::bail!("unknown split {other:?}: expected train, val or test"),
        }
    }
}
