//! Reproducing logged work with the real model: `restpg replay --resample`
//! and `--retrain`, and the exact prompts of `restpg export`. The `replay`
//! crate rebuilds what to redo from the log alone (`ResampleSpec`,
//! `RetrainSpec`); this module redoes it (a sample on the engine that drew
//! it, training on tch) and compares the results with the log.

use std::path::Path;
use std::sync::Arc;

use actors::capability::{
    CapabilityError, CheckpointRef, Generate, PromptKind, SampleRequest, Train, TrainItem, TrainJob, TrainTarget,
};
use anyhow::{bail, Context as _};

use super::context::RunContext;
use crate::config::RunConfig;
use crate::engine::openai::server::Servers;
use crate::engine::openai::OpenAiPolicy;
use crate::engine::tch::{TchPolicy, TchTrainer};
use crate::engine::ServedRole;
use crate::lm::ChatTokenizer;

fn context(run_dir: &Path, config_toml: &str) -> anyhow::Result<Arc<RunContext>> {
    let config = RunConfig::from_toml(config_toml, &run_dir.join("config.toml"))?;
    // The run's thread setting (or RESTPG_THREADS), before any model runs.
    crate::config::apply_torch_threads(None, config.model.threads)?;
    Ok(Arc::new(RunContext::build(config, run_dir)?))
}

fn checkpoint(run_dir: &Path, hash: &events::Digest) -> anyhow::Result<CheckpointRef> {
    let blobs = store::RunDir::new(run_dir).blob_store()?;
    // Checks that the blob is there and intact; the reference names it
    // relative to the run directory, as the run logged it.
    blobs.get(hash).with_context(|| format!("checkpoint {}", events::digest_hex(hash)))?;
    Ok(CheckpointRef { hash: *hash, path: store::BlobStore::relative_path(hash) })
}

/// What `restpg replay --resample` found.
#[derive(Debug, Clone, PartialEq)]
pub struct ResampleReport {
    /// Samples drawn again.
    pub checked: usize,
    /// Of those, the samples promised the same text for the same request and
    /// seed (tch, or a server declared deterministic, redrawn by the same
    /// kind of engine: [`promises_exact_text`]): each was identical to the
    /// log, or [`resample`] failed.
    pub exact: usize,
    /// The samples promised no identical text (redrawn on another engine,
    /// server version or prompt format, or drawn by an engine not declared
    /// deterministic): how many matched the log.
    pub matched: usize,
    /// …and where each of the others first differs. Not an error: such an
    /// engine never claimed bit-exactness.
    pub differed: Vec<replay::TextMismatch>,
}

impl ResampleReport {
    /// The one-line summary for iteration `t`, then one line per difference.
    pub fn lines(&self, t: u32) -> Vec<String> {
        let unpromised = self.matched + self.differed.len();
        if unpromised == 0 {
            return vec![format!(
                "resampled {} samples of iteration {t}: prompts and texts identical to the log",
                self.checked
            )];
        }
        let mut lines = vec![format!(
            "resampled {} samples of iteration {t}: {} identical to the log (deterministic engine); {} of {unpromised} \
             not promised identical (redrawn on another engine, server version or prompt format, or \
             not declared deterministic) matched, {} differ (not a failure)",
            self.checked,
            self.exact,
            self.matched,
            self.differed.len()
        )];
        lines.extend(self.differed.iter().map(|d| format!("  {d}")));
        lines
    }
}

/// Which engine `restpg replay --resample` redraws samples on
/// (`--engine logged|tch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ResampleEngine {
    /// The engine that drew each sample: tch for tch samples, the run's
    /// `[engine.policy]` server (launched again for the checkpoint) for
    /// served ones.
    #[default]
    Logged,
    /// The embedded tch engine for every sample.
    Tch,
}

/// Whether a sample logged by `logged` must come back identical when
/// `redrawn` draws it again with the same request and seed: the same
/// backend, server version and prompt format, and `logged` declared
/// deterministic (always so for tch, batch-invariant decoding; a server's
/// operator declares it with `[engine.policy] deterministic`).
fn promises_exact_text(logged: &events::EngineInfo, redrawn: &events::EngineInfo) -> bool {
    logged.deterministic
        && logged.backend == redrawn.backend
        && logged.server_version == redrawn.server_version
        && logged.prompt_format == redrawn.prompt_format
}

/// Regenerates the samples of `spec` from their logged seed, checkpoint and
/// settings (temperature, nucleus mass and repetition guards, as each sample
/// logged them) on `on`: by default each on the engine that drew it (a
/// served sample through the run's `[engine.policy]`, its server launched
/// again for the checkpoint), and compares prompt digest, reasoning and
/// response with the log. A sample whose engine promises the same text
/// ([`promises_exact_text`]: tch, or a server declared deterministic and
/// redrawn by the same server version) must be identical; any other is
/// reported as matching or differing, never claimed bit-exact.
///
/// # Errors
/// A missing or corrupt checkpoint, a tch sample logged in a precision this
/// engine does not run in, a served sample when the run's configuration
/// serves no policy, a server that does not start or answer, a sample whose
/// rebuilt prompt differs, or the first sample promised identical whose text
/// differs (naming the sample and the byte offset).
pub fn resample(
    run_dir: &Path,
    config_toml: &str,
    spec: &replay::ResampleSpec,
    on: ResampleEngine,
) -> anyhow::Result<ResampleReport> {
    let ctx = context(run_dir, config_toml)?;
    let prompt = ctx.config.method.policy_prompt();
    let max_new_tokens = ctx.config.sampling.max_new_tokens;
    let mut tch = TchPolicy::new(Arc::clone(&ctx));
    let mut served: Option<OpenAiPolicy> = None;
    let mut report = ResampleReport { checked: 0, exact: 0, matched: 0, differed: Vec::new() };
    for item in &spec.items {
        let through_server = on == ResampleEngine::Logged && item.engine.backend == events::Backend::OpenAi;
        let policy: &mut dyn Generate = if through_server {
            let cfg = &ctx.config.engine.policy;
            if cfg.backend != events::Backend::OpenAi {
                bail!(
                    "{} was drawn by a server, but the run's configuration serves no [engine.policy] to draw it \
                     again: pass --engine tch to redraw it on the embedded engine",
                    item.sample
                );
            }
            let base = crate::engine::openai::served::ServedModel::policy_gguf_base(&ctx.config)?;
            served.get_or_insert_with(|| {
                OpenAiPolicy::new(Arc::clone(&ctx), ServedRole::Policy, cfg.clone(), Servers::default(), base)
            })
        } else {
            // The precision the sample logged, whatever `dtype = "auto"` means here.
            tch.set_precision(item.precision);
            &mut tch
        };
        policy.load(&checkpoint(run_dir, &item.checkpoint)?).map_err(|e| anyhow::anyhow!("{e}"))?;
        let request = SampleRequest {
            sample: item.sample.clone(),
            seed: item.seed,
            sampling: events::Sampling {
                temperature: item.temperature,
                top_p: item.top_p,
                max_new_tokens,
                penalties: item.penalties,
            },
            prompt,
        };
        let out = policy.generate(&[request]).map_err(|e| anyhow::anyhow!("{e}"))?;
        let out = &out[0];
        let exact = promises_exact_text(&item.engine, &out.engine);
        if exact && out.precision != item.precision {
            bail!(
                "{}: it was sampled in {}, but this build's engine runs in {}; its text cannot be reproduced",
                item.sample,
                item.precision,
                out.precision
            );
        }
        // The prompt is built on our side whatever the engine: it must agree.
        if out.prompt_digest != item.prompt_digest {
            bail!(
                "{}: the rebuilt prompt's digest {} differs from the logged {}",
                item.sample,
                events::digest_hex(&out.prompt_digest),
                events::digest_hex(&item.prompt_digest)
            );
        }
        report.checked += 1;
        match item.check(out.reasoning.as_deref(), &out.response) {
            Ok(()) if exact => report.exact += 1,
            Ok(()) => report.matched += 1,
            Err(mismatch) if exact => return Err(mismatch.into()),
            Err(mismatch) => report.differed.push(mismatch),
        }
    }
    Ok(report)
}

/// Rebuilds the exact prompt text a run's policy was given for an input, the
/// way the sampler built it ([`RunContext::prompt_ids`] with the run's
/// policy template, retrieval and token budget, chat-formatted by the
/// checkpoint's tokenizer). Only the tokenizer is loaded, not the weights.
pub struct PromptRebuilder {
    ctx: Arc<RunContext>,
    tokenizer: ChatTokenizer,
    kind: PromptKind,
}

impl PromptRebuilder {
    /// A rebuilder for the run in `run_dir` with its logged configuration
    /// (`config_toml`) and the tokenizer of `checkpoint`, the checkpoint
    /// that sampled the prompts to rebuild.
    ///
    /// # Errors
    /// A configuration that no longer parses, a data set that does not load,
    /// or a missing checkpoint or tokenizer.
    pub fn new(run_dir: &Path, config_toml: &str, checkpoint_hash: &events::Digest) -> anyhow::Result<Self> {
        let ctx = context(run_dir, config_toml)?;
        let ckpt = checkpoint(run_dir, checkpoint_hash)?;
        let tokenizer = load_tokenizer(&ctx.checkpoint_path(&ckpt))?;
        let kind = ctx.config.method.policy_prompt();
        Ok(Self { ctx, tokenizer, kind })
    }

    /// The chat-formatted prompt of `input_id`, byte for byte what the
    /// sampler hashed into `prompt_digest`.
    ///
    /// # Errors
    /// An unknown input id, or a prompt that does not fit its budget.
    pub fn prompt(&self, input_id: &str) -> Result<String, CapabilityError> {
        self.ctx.prompt_ids(&self.tokenizer, input_id, self.kind).map(|(text, _)| text)
    }
}

/// The tokenizer of a checkpoint: a Hugging Face directory (`config.json`
/// for the special tokens, `tokenizer.json`) or a GGUF file.
fn load_tokenizer(path: &Path) -> anyhow::Result<ChatTokenizer> {
    if path.is_dir() {
        let cfg = crate::lm::ModelConfig::from_hf_file(&path.join("config.json"))?;
        ChatTokenizer::from_hf_dir(path, cfg.bos_token_id, &cfg.eos_token_ids)
    } else {
        let g = crate::lm::gguf::GgufFile::open(path).with_context(|| format!("opening {}", path.display()))?;
        ChatTokenizer::from_gguf(&g)
    }
}

/// What `--retrain` found.
#[derive(Debug, Clone)]
pub struct RetrainOutcome {
    /// Hash of the checkpoint trained now.
    pub new_hash: events::Digest,
    /// The logged checkpoint's hash.
    pub logged_hash: events::Digest,
    /// The first step where the loss curves part, when they do.
    pub parted_at: Option<u64>,
}

/// Re-runs iteration `spec.iteration`'s M-step from the logged starting
/// checkpoint, seed and D_t, and compares the new checkpoint's content hash
/// (and loss curve) with the log.
///
/// # Errors
/// A spec without a starting or logged checkpoint, a missing checkpoint, or
/// a training failure.
pub fn retrain(run_dir: &Path, spec: &replay::RetrainSpec) -> anyhow::Result<RetrainOutcome> {
    let ctx = context(run_dir, &spec.config_toml)?;
    let start = spec.start.as_ref().context("the log names no starting checkpoint for this M-step")?;
    let logged = spec.logged_checkpoint.as_ref().context("the log holds no M-step checkpoint for this iteration")?;
    let prompt = ctx.config.method.policy_prompt();
    let job = TrainJob {
        iteration: spec.iteration,
        init: checkpoint(run_dir, &start.hash)?,
        data: spec
            .items
            .iter()
            .map(|i| TrainItem {
                input_id: i.sample.input_id.clone(),
                prompt,
                target: TrainTarget::Generated { raw: i.completion.clone() },
                weight: i.weight,
            })
            .collect(),
        seed: spec.train_seed,
    };
    // The new checkpoint goes to a scratch store so the run's own is untouched.
    let scratch = run_dir.join("work").join(format!("retrain-{}", spec.iteration));
    store::create_private_dir(&scratch)?;
    let blobs = store::BlobStore::open(scratch.join("blobs"))?;
    let mut trainer = TchTrainer::new(Arc::clone(&ctx), blobs);
    let mut curve = Vec::new();
    let mut progress = |p: actors::capability::TrainProgressReport| {
        curve.push(replay::ProgressPoint {
            seq: 0,
            step: p.step,
            loss: p.loss,
            learning_rate: p.learning_rate,
            tokens: p.tokens,
        })
    };
    let new = trainer.train(&job, &mut progress).map_err(|e| anyhow::anyhow!("{e}"))?;
    let parted_at = replay::compare_loss_curves(&spec.loss_curve, &curve);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(RetrainOutcome { new_hash: new.hash, logged_hash: logged.hash, parted_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_deterministic_engine_redrawn_on_its_own_kind_promises_the_same_text() {
        let tch = events::EngineInfo::tch();
        assert!(promises_exact_text(&tch, &tch));
        let served = events::EngineInfo {
            backend: events::Backend::OpenAi,
            server_version: Some("llama_cpp 0.3.36".into()),
            prompt_format: Some(events::PromptFormat::Text),
            deterministic: true,
            ..Default::default()
        };
        assert!(promises_exact_text(&served, &served));
        assert!(!promises_exact_text(&served, &tch), "a served sample redrawn on tch");
        let upgraded = events::EngineInfo { server_version: Some("llama_cpp 0.3.40".into()), ..served.clone() };
        assert!(!promises_exact_text(&served, &upgraded), "another server version");
        let tokens = events::EngineInfo { prompt_format: Some(events::PromptFormat::Tokens), ..served.clone() };
        assert!(!promises_exact_text(&served, &tokens), "another prompt format");
        let undeclared = events::EngineInfo { deterministic: false, ..served.clone() };
        assert!(!promises_exact_text(&undeclared, &undeclared));
        let declared = events::EngineInfo { deterministic: false, ..tch.clone() };
        assert!(!promises_exact_text(&declared, &tch));
    }

    #[test]
    fn a_report_claims_identity_only_for_deterministic_samples() {
        let all = ResampleReport { checked: 3, exact: 3, matched: 0, differed: vec![] };
        assert_eq!(all.lines(1), ["resampled 3 samples of iteration 1: prompts and texts identical to the log"]);
        let mismatch = replay::TextMismatch {
            sample: events::SampleId { iteration: 1, input_id: "x".into(), index: 2 },
            part: "response",
            offset: 8,
            logged: "Monday.".into(),
            new: "Tuesday.".into(),
        };
        let mixed = ResampleReport { checked: 4, exact: 1, matched: 2, differed: vec![mismatch] };
        let lines = mixed.lines(1);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("1 identical to the log (deterministic engine); 2 of 3"), "{}", lines[0]);
        assert!(lines[0].contains("1 differ (not a failure)"), "{}", lines[0]);
        assert!(lines[1].starts_with("  t1/x/#2: the regenerated response differs"), "{}", lines[1]);
    }
}
