//! The resume state written with each checkpoint: the weights and the
//! optimiser state as safetensors, and a JSON sidecar with the step, the data
//! order position and the data-order RNG state.
//!
//! Layout of a trainer's work directory:
//!
//! ```text
//! <work_dir>/resume/weights.safetensors     every VarStore variable, by name
//! <work_dir>/resume/optimizer.safetensors   `<param>/<slot>` state tensors
//! <work_dir>/resume/trainer_state.json      ResumeState
//! ```
//!
//! Each directory is written under a `.tmp` name and renamed into place, so a
//! crash mid-write leaves the previous state intact.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Tensor};

use super::config::TrainConfig;

/// Version of the sidecar format: 2 since the configuration lost
/// `eval_every` and the sidecar the best checkpoint (the trainer no longer
/// scores validation sets), so a format-1 sidecar is refused by its format.
pub const RESUME_FORMAT: u32 = 2;

/// The sidecar of a resume checkpoint. Floats that must survive exactly are
/// stored as their IEEE-754 bits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    /// [`RESUME_FORMAT`].
    pub format: u32,
    /// Optimiser steps completed (the schedule position: the next step is
    /// `step + 1`).
    pub step: u64,
    /// The configuration the run started with (for people: JSON floats need
    /// not parse back to the same bits, so resumes compare `config_digest`).
    pub config: TrainConfig,
    /// [`config_digest`] of the configuration; a resume must use the same.
    pub config_digest: String,
    /// blake3 of the training examples (hex); a resume must use the same data.
    pub data_digest: String,
    /// The current epoch's example order (indices into the kept examples).
    pub order: Vec<u32>,
    /// Next position in `order`.
    pub cursor: usize,
    /// Epochs started so far.
    pub epoch: u64,
    /// The data-order RNG (ChaCha8, seeded with `config.seed`): its word
    /// position, as a decimal u128.
    pub rng_word_pos: String,
    /// The loss of the last step, as `f64::to_bits`.
    pub last_loss_bits: u64,
    /// Non-padding tokens processed so far.
    pub tokens_seen: u64,
    /// `tch::get_num_threads()` when written (results are bit-identical only
    /// with the same thread count).
    pub torch_threads: i32,
}

/// blake3 (hex) of the configuration's JSON, computed from the in-memory
/// values on both sides of a resume.
///
/// # Errors
/// Serialisation errors (none for a plain config).
pub fn config_digest(config: &TrainConfig) -> Result<String> {
    let json = serde_json::to_string(config).context("serialising the training configuration")?;
    Ok(blake3::hash(json.as_bytes()).to_hex().to_string())
}

/// Writes every variable of `vs` (sorted by name) to a safetensors file.
///
/// # Errors
/// I/O or tch errors, naming the path.
pub fn save_vars(vs: &VarStore, path: &Path) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&named, path).with_context(|| format!("writing {}", path.display()))
}

/// Copies the tensors of a [`save_vars`] file into `vs`.
///
/// # Errors
/// A variable missing from the file, a shape mismatch (named), or I/O errors.
pub fn load_vars(vs: &VarStore, path: &Path) -> Result<()> {
    let tensors = Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?;
    let mut map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    let _guard = tch::no_grad_guard();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut dst) in vars {
        let src = map.remove(&name).with_context(|| format!("{}: variable `{name}` is missing", path.display()))?;
        if src.size() != dst.size() {
            bail!("{}: variable `{name}` has shape {:?}, the model has {:?}", path.display(), src.size(), dst.size());
        }
        dst.f_copy_(&src).with_context(|| format!("{}: restoring `{name}`", path.display()))?;
    }
    Ok(())
}

/// The `resume/` directory of a work directory.
pub fn resume_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("resume")
}

/// Writes `dir` crash-safely: `fill` writes into `<dir>.tmp`; every file
/// of it and the folder are fsynced; the old `dir` is renamed to
/// `<dir>.old`, the new one into place, and the parent folder fsynced after
/// each rename; then `<dir>.old` is removed. A crash at any point leaves
/// either the old or the new directory complete under `dir` or `<dir>.old`,
/// and [`recover_dir`] (called here first and by every reader) puts it back.
///
/// # Errors
/// I/O errors naming the directory, or `fill`'s error.
pub fn write_dir_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    recover_dir(dir)?;
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    store::create_private_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    fill(&tmp)?;
    for entry in std::fs::read_dir(&tmp).with_context(|| format!("listing {}", tmp.display()))? {
        let path = entry.with_context(|| format!("listing {}", tmp.display()))?.path();
        if path.is_file() {
            fsync(&path)?;
        }
    }
    fsync(&tmp)?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let old = dir.with_extension("old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        std::fs::rename(dir, &old).with_context(|| format!("moving {} aside", dir.display()))?;
        fsync(parent)?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("renaming {} into place", tmp.display()))?;
    fsync(parent)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

/// Undoes an interrupted [`write_dir_atomically`]: when `dir` is missing
/// but `<dir>.old` holds the previous complete copy (a crash between the
/// two renames), it is renamed back. A leftover `<dir>.tmp` is incomplete
/// and left for the next write to remove.
///
/// # Errors
/// I/O errors naming the directory.
pub fn recover_dir(dir: &Path) -> Result<()> {
    let old = dir.with_extension("old");
    if !dir.exists() && old.is_dir() {
        tracing::warn!(dir = %dir.display(), "restoring the previous copy after an interrupted write");
        std::fs::rename(&old, dir).with_context(|| format!("restoring {} from {}", dir.display(), old.display()))?;
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fsync(parent)?;
    }
    Ok(())
}

/// fsyncs a file or a folder.
fn fsync(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).with_context(|| format!("syncing {} to disk", path.display()))
}

/// Reads `resume/trainer_state.json` if the work directory has one.
///
/// # Errors
/// A sidecar that exists but cannot be read or parsed, or of another format.
pub fn read_resume_state(work_dir: &Path) -> Result<Option<ResumeState>> {
    recover_dir(&resume_dir(work_dir))?;
    let path = resume_dir(work_dir).join("trainer_state.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    // The format is read on its own first: an older sidecar's configuration
    // need not parse as today's.
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let Format { format } = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if format != RESUME_FORMAT {
        bail!("{}: format {format} is not the supported {RESUME_FORMAT}", path.display());
    }
    let state: ResumeState = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn vars_round_trip_exactly_and_mismatch_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let vs = VarStore::new(Device::Cpu);
        let _a = vs.root().sub("a").randn_standard("weight", &[3, 4]);
        let _b = vs.root().randn_standard("b", &[5]);
        let path = dir.path().join("w.safetensors");
        save_vars(&vs, &path).expect("save");
        let vs2 = VarStore::new(Device::Cpu);
        let a2 = vs2.root().sub("a").zeros("weight", &[3, 4]);
        let _b2 = vs2.root().zeros("b", &[5]);
        load_vars(&vs2, &path).expect("load");
        assert!(a2.equal(&vs.variables()["a.weight"]));
        let vs3 = VarStore::new(Device::Cpu);
        let _c = vs3.root().zeros("c", &[1]);
        let err = format!("{:#}", load_vars(&vs3, &path).unwrap_err());
        assert!(err.contains("`c`"), "{err}");
    }

    #[test]
    fn atomic_dir_replaces_previous() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("resume");
        write_dir_atomically(&target, |d| Ok(std::fs::write(d.join("x"), "1")?)).expect("first");
        write_dir_atomically(&target, |d| Ok(std::fs::write(d.join("y"), "2")?)).expect("second");
        assert!(!target.join("x").exists());
        assert_eq!(std::fs::read_to_string(target.join("y")).expect("y"), "2");
        assert!(!dir.path().join("resume.tmp").exists());
    }

    #[test]
    fn a_crash_between_the_renames_leaves_the_previous_copy_readable() {
        // Given a complete resume/ that a second write had moved aside when it crashed
        let dir = tempfile::tempdir().expect("tmp");
        let target = resume_dir(dir.path());
        write_dir_atomically(&target, |d| Ok(std::fs::write(d.join("trainer_state.json"), "{}")?)).expect("first");
        std::fs::rename(&target, target.with_extension("old")).expect("simulate the crash");
        std::fs::create_dir_all(target.with_extension("tmp")).expect("half-written tmp");
        // when the work directory is read again
        let err = read_resume_state(dir.path()).unwrap_err();
        // then the previous copy is back in place (and read, here failing to parse as a state)
        assert!(format!("{err:#}").contains("parsing"), "{err:#}");
        assert!(target.join("trainer_state.json").exists());
        assert!(!target.with_extension("old").exists());
        // and the next write succeeds over the leftover tmp
        write_dir_atomically(&target, |d| Ok(std::fs::write(d.join("z"), "3")?)).expect("third");
        assert!(target.join("z").exists() && !target.with_extension("tmp").exists());
    }
}
