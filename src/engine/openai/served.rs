//! The files a launched server loads for a model: `{hf_dir}` (the Hugging
//! Face layout vLLM and SGLang read) and `{gguf}` (llama.cpp), made from a
//! checkpoint once and kept under `RUN_DIR/engines/` by content hash, so a
//! resumed stage serves the same file without converting again.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::lm::gguf::{write_gguf, ExportDtype, GgufFile};
use crate::lm::LanguageModel;

/// A model a server is asked to load.
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// Content hash naming the converted files (a checkpoint's hash, or the
    /// blake3 of a fixed model's path).
    pub key: events::Digest,
    /// The model as restpg stores it: a checkpoint's blob directory (HF
    /// layout) or a GGUF file (the judge, the base).
    pub path: PathBuf,
    /// The GGUF whose metadata, tokenizer and chat template an exported GGUF
    /// takes (`[model] policy`), when there is one.
    pub gguf_base: Option<PathBuf>,
}

impl ServedModel {
    /// The GGUF the run's policy checkpoints descend from (`[model] policy`,
    /// or the set-up's default), whose metadata an exported `{gguf}` takes;
    /// `None` when the policy is a Hugging Face directory.
    ///
    /// # Errors
    /// The default model missing ([`crate::paths::model_or_default`]).
    pub fn policy_gguf_base(config: &crate::config::RunConfig) -> Result<Option<PathBuf>> {
        Ok(Some(crate::paths::model_or_default(&config.model.policy)?).filter(|p| p.is_file()))
    }

    /// `{hf_dir}`: the directory itself, or the GGUF converted to
    /// `engines/<hash>/` under `run_dir`.
    ///
    /// # Errors
    /// A model that does not load, or I/O errors naming the file.
    pub fn hf_dir(&self, run_dir: &Path) -> Result<PathBuf> {
        if self.path.is_dir() {
            return Ok(self.path.clone());
        }
        let out = run_dir.join("engines").join(events::digest_hex(&self.key));
        if out.join("config.json").exists() {
            return Ok(out);
        }
        let model = LanguageModel::load(&self.path, tch::Device::Cpu)?;
        let tmp = out.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        model.save(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
        Ok(out)
    }

    /// `{gguf}`: the file itself, or the checkpoint exported as F32 GGUF
    /// (exact) to `engines/<hash>.gguf` under `run_dir`.
    ///
    /// # Errors
    /// A checkpoint with no GGUF base to take the metadata from, one that
    /// does not load or does not match its base, or I/O errors.
    pub fn gguf(&self, run_dir: &Path) -> Result<PathBuf> {
        if self.path.is_file() {
            return Ok(self.path.clone());
        }
        let Some(base) = &self.gguf_base else {
            bail!(
                "{} is a Hugging Face directory and [model] policy is not a GGUF file to take the metadata from: \
                 serve it with {{hf_dir}}",
                self.path.display()
            );
        };
        let out = run_dir.join("engines").join(format!("{}.gguf", events::digest_hex(&self.key)));
        if out.exists() {
            return Ok(out);
        }
        std::fs::create_dir_all(out.parent().expect("has a parent"))
            .with_context(|| format!("creating {}", run_dir.join("engines").display()))?;
        let model = LanguageModel::load(&self.path, tch::Device::Cpu)?;
        let base = GgufFile::open(base)?;
        // write_gguf writes `<out>.partial` and renames it when complete.
        write_gguf(&out, &base, &model, ExportDtype::F32)?;
        Ok(out)
    }
}
