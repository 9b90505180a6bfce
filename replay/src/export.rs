//! D_t as JSON Lines for other trainers.
//!
//! One object per kept sample, in canonical order:
//!
//! ```json
//! {"prompt": "...", "completion": "...", "weight": 1.0,
//!  "sample_id": "t1/email-u03/#5", "input_id": "email-u03", "prompt_digest": "ab12…",
//!  "engine": {"backend": "tch", "server_model": null, …, "deterministic": true}}
//! ```
//!
//! `prompt` and `completion` are the field names of TRL's prompt-completion
//! data sets (`SFTTrainer` reads them as they are) and the ones to pass to
//! OpenRLHF as `--input_key prompt --output_key completion`. `weight` is the
//! sample's reward, the factor of its loss term in the M-step (−R·log p);
//! trainers without per-sample weights ignore it, which for τ = 1.0 and a
//! judge reward loses nothing (every kept weight is 1). `completion` is the
//! text the M-step trained on ([`Completion`](crate::Completion)). The log
//! holds only the prompt's digest: `prompt` is present when the caller
//! supplies a prompt builder (`restpg export` supplies one that rebuilds the
//! run's prompts from its data set, configuration and tokenizer), and each
//! built prompt must hash to the logged digest
//! ([`ExportError::PromptDiffers`] otherwise). `engine` is the
//! [`EngineInfo`](events::EngineInfo) that drew the sample, as logged (tch
//! for logs older than schema version 6): which machinery wrote the
//! completion a trainer learns from.

use std::io::Write;

use events::{digest_hex, Digest, SampleId};
use serde::Serialize;

use crate::completion::Completion;
use crate::state::RunState;
use crate::verify::{RebuildError, VerifyError};

/// Builds the exact prompt text of an input, as the sampler saw it.
pub type PromptBuilder<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One line of the export.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportRecord {
    /// The prompt text, when a prompt builder was supplied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The text the M-step trains on (reasoning ⊕ separator ⊕ response, or
    /// the response alone).
    pub completion: String,
    /// The loss weight: the sample's reward.
    pub weight: f32,
    /// The sample, `t1/<input>/#3`.
    pub sample_id: String,
    /// The input.
    pub input_id: String,
    /// blake3 of the prompt text, hex.
    pub prompt_digest: String,
    /// The engine that drew the sample.
    pub engine: events::EngineInfo,
}

/// Why D_t cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// D_t does not verify; only a D_t that reproduces its seal is exported.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// D_t cannot be rebuilt.
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
    /// The state was folded without texts.
    #[error("the log was folded without sample texts; fold it with texts to export")]
    NoText,
    /// The prompt builder knows no prompt for an input.
    #[error("{sample}: the prompt builder has no prompt for input {input_id:?}")]
    NoPrompt {
        /// The sample.
        sample: SampleId,
        /// Its input.
        input_id: String,
    },
    /// A rebuilt prompt does not hash to the logged digest: the template,
    /// the retrieval or the data changed since the run.
    #[error("{sample}: the rebuilt prompt hashes to {actual}, the log says {expected} (template or data changed since the run?)")]
    PromptDiffers {
        /// The sample.
        sample: SampleId,
        /// The logged digest, hex.
        expected: String,
        /// The rebuilt prompt's digest, hex.
        actual: String,
    },
    /// Writing failed.
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
}

impl RunState {
    /// The export records of D_t, after verifying it; `completion` joins
    /// each sample's reasoning and response.
    ///
    /// # Errors
    /// [`ExportError`]: D_t does not verify, texts were not kept, or a
    /// prompt cannot be rebuilt exactly.
    pub fn export_records(
        &self,
        t: u32,
        completion: &Completion,
        prompt: Option<PromptBuilder<'_>>,
    ) -> Result<Vec<ExportRecord>, ExportError> {
        self.verify_iteration(t)?;
        let mut out = Vec::new();
        for s in self.kept(t)? {
            let f = s.filter.expect("kept samples are decided");
            let g = s.generated.as_ref().expect("verified: every kept sample was generated");
            let text = g.text.as_ref().ok_or(ExportError::NoText)?;
            let prompt = match prompt {
                None => None,
                Some(build) => Some(checked_prompt(build, &s.id, &g.prompt_digest)?),
            };
            out.push(ExportRecord {
                prompt,
                completion: completion.text(text.reasoning.as_deref(), &text.response),
                weight: f.reward,
                sample_id: s.id.to_string(),
                input_id: s.id.input_id.clone(),
                prompt_digest: digest_hex(&g.prompt_digest),
                engine: g.engine.clone(),
            });
        }
        Ok(out)
    }

    /// Writes D_t as JSON Lines (see the module docs) and returns the number
    /// of lines.
    ///
    /// # Errors
    /// As [`RunState::export_records`], and write errors.
    pub fn export_jsonl(
        &self,
        t: u32,
        completion: &Completion,
        prompt: Option<PromptBuilder<'_>>,
        out: &mut dyn Write,
    ) -> Result<usize, ExportError> {
        let records = self.export_records(t, completion, prompt)?;
        for r in &records {
            serde_json::to_writer(&mut *out, r).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(records.len())
    }
}

fn checked_prompt(build: PromptBuilder<'_>, sample: &SampleId, expected: &Digest) -> Result<String, ExportError> {
    let text = build(&sample.input_id)
        .ok_or_else(|| ExportError::NoPrompt { sample: sample.clone(), input_id: sample.input_id.clone() })?;
    let actual = events::prompt_digest(&text);
    if actual != *expected {
        return Err(ExportError::PromptDiffers {
            sample: sample.clone(),
            expected: digest_hex(expected),
            actual: digest_hex(&actual),
        });
    }
    Ok(text)
}
