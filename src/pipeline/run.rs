//! Resolving a configuration into a plan and running it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use actors::capability::{CheckpointRef, Factory, Generate};
use actors::{Capabilities, Plan};
use anyhow::{bail, Context as _};
use events::Event;

use super::context::{ContextRetriever, RunContext};
use crate::config::{ReasoningGeneratorKind, RunConfig};
use crate::data::Split;
use crate::engine::evaluator::RunEvaluator;
use crate::engine::openai::server::Servers;
use crate::engine::openai::{OpenAiPolicy, OpenAiScorer};
use crate::engine::run_reward::RunReward;
use crate::engine::tch::{tch_judge, TchPolicy, TchRewardCheck, TchTrainer};
use crate::engine::ServedRole;

/// How to start a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run directory (created for a new run; must hold a run to resume).
    pub run_dir: PathBuf,
    /// Continue the run already in `run_dir` from where its log stops.
    pub resume: bool,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// Test-only fault switch passed to the coordinator.
    pub fault: Option<actors::FaultPlan>,
}

/// What a finished run produced, for the CLI's results table.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// The method that ran.
    pub method: actors::Method,
    /// The coordinator's outcome.
    pub outcome: actors::RunOutcome,
    /// Wall time of the whole run in seconds.
    pub wall_s: f64,
    /// Every evaluation with its report, for the results table.
    pub rows: Vec<crate::eval::table::TableRow>,
    /// Format rates of each iteration's E-step samples.
    pub e_step_format: BTreeMap<u32, crate::eval::format::FormatRates>,
    /// How many of each iteration's samples got each filter decision, in
    /// [`events::Decision::ALL`]'s order (decisions with none left out).
    pub decisions: BTreeMap<u32, Vec<(events::Decision, u64)>>,
    /// The run's reward check, as its log holds it (`None` when K = 0).
    pub reward_check: Option<crate::reward::check::RewardCheck>,
}

/// Imports the base policy θ⁰ into the blob store (Hugging Face layout), so
/// that every checkpoint of the run, the base included, is named by its
/// content hash. Saving is deterministic, so a resumed run finds the same
/// hash.
fn import_base(policy: &Path, run_dir: &Path, blobs: &store::BlobStore) -> anyhow::Result<CheckpointRef> {
    let model = crate::lm::LanguageModel::load(policy, tch::Device::Cpu)
        .with_context(|| format!("loading the base policy {}", policy.display()))?;
    let tmp = run_dir.join("work").join("base");
    let _ = std::fs::remove_dir_all(&tmp);
    model.save(&tmp).with_context(|| format!("saving the base policy to {}", tmp.display()))?;
    let hash = blobs.put(&tmp).with_context(|| format!("storing {}", tmp.display()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(CheckpointRef { hash, path: store::BlobStore::relative_path(&hash) })
}

/// Runs (or resumes) the configured method to the end.
///
/// A new run writes its configuration to `RUN_DIR/config.toml` and runs the
/// coordinator, which opens the log with `RunStarted` (configuration, its
/// digest, code version, seed, data set digest) and the base checkpoint. A
/// resumed run reads the configuration back from the run directory and
/// continues where the log stops.
///
/// # Errors
/// A bad configuration (before any work), a data set or model that does not
/// load, a log that belongs to another run, or the coordinator's failure.
pub fn run(config: Option<RunConfig>, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let run_dir = &opts.run_dir;
    let config_path = run_dir.join("config.toml");
    let (config, config_text) = if opts.resume {
        if !config_path.exists() {
            bail!("{} holds no run to resume (no config.toml)", run_dir.display());
        }
        RunConfig::load(&config_path)?
    } else {
        let config = config.context("a new run needs a configuration")?;
        if run_dir.join("log").exists() {
            bail!("{} already holds a run: use `--resume {}` to continue it", run_dir.display(), run_dir.display());
        }
        store::create_private_dir(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        // The data path is stored absolute so that the run directory can be
        // resumed from anywhere.
        let mut resolved = config.clone();
        resolved.data =
            std::fs::canonicalize(&config.data).with_context(|| format!("data set {}", config.data.display()))?;
        // `train.precision = "auto"` is decided here, where the run logs its
        // configuration: a retrain elsewhere then uses this run's precision.
        resolved.decide_training_precision();
        let text = resolved.to_toml()?;
        store::write_private_file(&config_path, text.as_bytes())
            .with_context(|| format!("writing {}", config_path.display()))?;
        (resolved, text)
    };
    config.validate()?;

    let policy = crate::paths::model_or_default(&config.model.policy)?;
    let judge_path = crate::paths::model_or_default(&config.model.judge)?;
    let generator_path = crate::paths::model_or_default(&config.model.reasoning_generator)?;
    let threads = crate::config::apply_torch_threads(None, config.model.threads)?;
    tracing::info!(threads, "torch intra-op threads");

    store::create_private_dir(run_dir.join("work")).with_context(|| format!("creating {}/work", run_dir.display()))?;
    let ctx = Arc::new(RunContext::build(config.clone(), run_dir)?);
    let layout = store::RunDir::new(run_dir);
    let blobs = store::BlobStore::open(layout.blobs()).context("opening the checkpoint store")?;

    let (log, run_id) = if opts.resume {
        let log = store::EventLog::open(layout.log(), None).context("opening the run's event log")?;
        let run_id = log.run_id().to_owned();
        (log, run_id)
    } else {
        let run_id = format!(
            "{}-{}-{}",
            config.method.as_str(),
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            &events::digest_hex(&events::digest(config_text.as_bytes()))[..8]
        );
        let log = store::EventLog::create(layout.log(), &run_id).context("creating the run's event log")?;
        (log, run_id)
    };
    let run_started = Event::RunStarted {
        method: config.method.as_str().to_owned(),
        config_toml: config_text.clone(),
        config_digest: events::digest(config_text.as_bytes()),
        code_version: format!("restpg {}", env!("CARGO_PKG_VERSION")),
        seed: config.seed,
        dataset_digest: ctx.dataset.digest(),
        settings: Some(events::RunSettings {
            tau: config.reward.tau,
            max_kept_per_input: config.reward.max_kept_per_input,
            require_reasoning: config.method.uses_reasoning() && !config.em.allow_samples_without_reasoning,
            init: config.train.init,
            separator: config.method.uses_reasoning().then(|| crate::prompt::RESPONSE_SEPARATOR.to_owned()),
            reward: config.reward.name.clone(),
            drop_unfinished: !config.em.allow_unfinished_samples,
        }),
    };
    let base = import_base(&policy, run_dir, &blobs)?;
    let generator_checkpoint =
        if generator_path == policy { base.clone() } else { import_base(&generator_path, run_dir, &blobs)? };

    let mut plan = Plan::new(run_id.clone(), config.method, config.seed, base, ctx.ids(Split::Train));
    plan.e_step_ids = super::e_step_inputs(&ctx.dataset, config.seed, config.em.iterations, config.em.inputs_per_task);
    plan.val_ids = if config.eval.validation { ctx.ids(Split::Validation) } else { Vec::new() };
    plan.test_ids = if config.eval.test { ctx.ids(Split::Test) } else { Vec::new() };
    plan.test_every_iteration = config.eval.test_every_iteration;
    plan.k = config.retrieval.k;
    plan.m = config.sampling.m;
    plan.iterations = config.em.iterations;
    plan.tau = config.reward.tau;
    plan.max_kept_per_input = config.reward.max_kept_per_input;
    plan.init = config.train.init;
    plan.require_reasoning = config.method.uses_reasoning() && !config.em.allow_samples_without_reasoning;
    plan.drop_unfinished = !config.em.allow_unfinished_samples;
    plan.batch_timeout = std::time::Duration::from_secs(config.sampling.batch_timeout_secs);
    plan.e_step = config.sampling.e_step();
    plan.reasoning = config.sampling.reasoning();
    plan.generator_name = match config.model.reasoning_generator_kind {
        ReasoningGeneratorKind::Model => {
            generator_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
        }
        ReasoningGeneratorKind::ProfileStatistics => crate::engine::profile_statistics::PROFILE_STATISTICS.to_owned(),
    };
    plan.generator_checkpoint = generator_checkpoint;
    plan.batch_size = config.sampling.batch_size;
    plan.sampler_workers = config.sampling.workers;
    plan.judge_workers = 1;
    plan.max_in_flight = config.sampling.max_in_flight;
    plan.fault = opts.fault;
    plan.reward_check_per_task = config.reward.check_per_task;
    // The coordinator opens the log with these (a resumed run keeps the
    // ones it started with), so the log has one writer.
    plan.run_started = Some(run_started);

    let bases = GgufBases { policy: policy.clone(), generator: generator_path.clone() };
    let e_step_inputs = plan.e_step_ids.iter().map(Vec::len).collect();
    let caps = capabilities(&ctx, &blobs, &judge_path, &bases, opts.progress, e_step_inputs);
    let outcome = actors::run_pipeline(plan, log, caps).map_err(|e| anyhow::anyhow!("run {run_id} failed: {e}"))?;
    let rows = super::results::table_rows(run_dir, config.method, &outcome)?;
    let state = super::results::fold_run_log(run_dir).context("reading the run's log")?;
    super::results::plot_run(run_dir, &state, &config, &rows).context("drawing the run's plots")?;
    let e_step_format = super::results::e_step_format(&state, config.method.uses_reasoning());
    let decisions = super::results::filter_decisions(&state);
    let reward_check = logged_reward_check(run_dir)?;
    Ok(RunSummary {
        run_id,
        method: config.method,
        outcome,
        wall_s: started.elapsed().as_secs_f64(),
        rows,
        e_step_format,
        decisions,
        reward_check,
    })
}

/// The models the run's checkpoints descend from, per sampling role: an
/// exported GGUF takes its metadata, tokenizer and chat template from the
/// role's (when it is a GGUF file).
struct GgufBases {
    policy: PathBuf,
    generator: PathBuf,
}

fn capabilities(
    ctx: &Arc<RunContext>,
    blobs: &store::BlobStore,
    judge_path: &Path,
    bases: &GgufBases,
    progress: bool,
    e_step_inputs: Vec<usize>,
) -> Capabilities {
    let c = Arc::clone(ctx);
    let retriever: Factory<dyn actors::capability::Retrieve> = Arc::new(move || {
        Ok(Box::new(ContextRetriever { ctx: Arc::clone(&c) }) as Box<dyn actors::capability::Retrieve>)
    });
    let policy = policy_factory(ctx, ServedRole::Policy, &bases.policy);
    let generator = match ctx.config.model.reasoning_generator_kind {
        ReasoningGeneratorKind::Model => policy_factory(ctx, ServedRole::Generator, &bases.generator),
        ReasoningGeneratorKind::ProfileStatistics => {
            let c = Arc::clone(ctx);
            let g: Factory<dyn Generate> = Arc::new(move || {
                Ok(Box::new(crate::engine::profile_statistics::ProfileStatistics::new(Arc::clone(&c)))
                    as Box<dyn Generate>)
            });
            g
        }
    };
    let judge_servers = Servers::default();
    let c = Arc::clone(ctx);
    let jp = judge_path.to_owned();
    let js = judge_servers.clone();
    let judge: Factory<dyn actors::capability::Judge> = Arc::new(move || run_judge(&c, &jp, &js));
    let c = Arc::clone(ctx);
    let jp = judge_path.to_owned();
    let reward_check: Factory<dyn actors::capability::CheckReward> = Arc::new(move || {
        let judge = run_judge(&c, &jp, &judge_servers)?;
        Ok(Box::new(TchRewardCheck::with_judge(Arc::clone(&c), judge)) as Box<dyn actors::capability::CheckReward>)
    });
    let c = Arc::clone(ctx);
    let b = blobs.clone();
    let command = ctx.config.engine.trainer.command.clone();
    let trainer: Factory<dyn actors::capability::Train> = match (ctx.config.engine.trainer.backend, command) {
        (events::TrainerBackend::Command, Some(command)) => Arc::new(move || {
            let t = crate::engine::command_trainer::CommandTrainer::new(Arc::clone(&c), b.clone(), command.clone());
            Ok(Box::new(t) as Box<dyn actors::capability::Train>)
        }),
        // Validation refuses `command` without a command template.
        _ => Arc::new(move || {
            Ok(Box::new(TchTrainer::new(Arc::clone(&c), b.clone())) as Box<dyn actors::capability::Train>)
        }),
    };
    let c = Arc::clone(ctx);
    let jp = judge_path.to_owned();
    let evaluator: Factory<dyn actors::capability::Evaluate> = Arc::new(move || {
        Ok(Box::new(RunEvaluator::new(Arc::clone(&c), jp.clone())) as Box<dyn actors::capability::Evaluate>)
    });
    let observer = Some(super::progress::observer(ctx, progress, e_step_inputs));
    Capabilities {
        retriever,
        policy,
        generator,
        judge,
        reward_check,
        trainer,
        evaluator,
        targets: Arc::clone(ctx) as Arc<dyn actors::capability::Targets>,
        observer,
    }
}

/// The sampler factory of `role` (`Policy` or `Generator`): the tch engine,
/// or a server (`[engine.<role>] backend = "openai"`), whose workers share
/// one server per checkpoint; `base` is the model its checkpoints descend
/// from.
fn policy_factory(ctx: &Arc<RunContext>, role: ServedRole, base: &Path) -> Factory<dyn Generate> {
    let c = Arc::clone(ctx);
    let gguf_base = base.is_file().then(|| base.to_owned());
    let cfg = ctx.config.engine.role(role).clone();
    match cfg.backend {
        events::Backend::Tch => Arc::new(move || Ok(Box::new(TchPolicy::new(Arc::clone(&c))) as Box<dyn Generate>)),
        events::Backend::OpenAi => {
            let servers = Servers::default();
            Arc::new(move || {
                let p = OpenAiPolicy::new(Arc::clone(&c), role, cfg.clone(), servers.clone(), gguf_base.clone());
                Ok(Box::new(p) as Box<dyn Generate>)
            })
        }
    }
}

/// The run's reward with its judge on the engine `[engine.judge]` names:
/// the model at `judge_path` in tch, or served (the same model: its
/// tokenizer maps the server's top log-probabilities back to ids).
fn run_judge(
    ctx: &Arc<RunContext>,
    judge_path: &Path,
    servers: &Servers,
) -> Result<Box<dyn actors::capability::Judge>, actors::capability::CapabilityError> {
    let cfg = ctx.config.engine.judge.clone();
    let built: anyhow::Result<Box<dyn actors::capability::Judge>> = match cfg.backend {
        events::Backend::Tch => {
            tch_judge(Arc::clone(ctx), judge_path).map(|j| Box::new(j) as Box<dyn actors::capability::Judge>)
        }
        events::Backend::OpenAi => RunReward::new(Arc::clone(ctx), || {
            let scorer = OpenAiScorer::connect(&cfg, judge_path, servers, &ctx.run_dir, ctx.config.seed)?;
            let engine = scorer.engine().clone();
            let unseen = scorer.unseen_handle();
            Ok((scorer, engine, Some(unseen)))
        })
        .map(|j| Box::new(j) as Box<dyn actors::capability::Judge>),
    };
    built.map_err(|e| crate::engine::openai::failure::from_anyhow("building the judge", &e))
}

/// The first reward check of the run in `run_dir`, from its log.
///
/// # Errors
/// A log that does not open or fold.
pub fn logged_reward_check(run_dir: &Path) -> anyhow::Result<Option<crate::reward::check::RewardCheck>> {
    let reader = store::LogReader::open(store::RunDir::new(run_dir).log(), None)?;
    let state = replay::Replay::new().without_text().fold_log(&reader)?;
    Ok(state.reward_checks.first().map(crate::reward::check::RewardCheck::from_record))
}

/// Where a run is and what it has produced, from its log alone (folded by
/// [`replay`]).
///
/// # Errors
/// A run directory without a readable log, or a log whose chain breaks.
pub fn status(run_dir: &Path) -> anyhow::Result<String> {
    let layout = store::RunDir::new(run_dir);
    let log = store::EventLog::open_read_only(layout.log()).context("opening the run's event log")?;
    let state = replay::Replay::new().without_text().fold_log(&log)?;
    let stage = state.stages.last().map(|s| {
        let text = match s.wall_ms {
            None => format!("iteration {}: {} started", s.iteration, s.stage),
            Some(ms) => format!("iteration {}: {} finished ({:.1} s)", s.iteration, s.stage, ms as f64 / 1000.0),
        };
        (s.seq, text)
    });
    let end = state.ends.last().map(|e| {
        let text = match e {
            replay::RunEnd::Finished { wall_ms, .. } => format!("finished in {:.1} s", *wall_ms as f64 / 1000.0),
            replay::RunEnd::Failed { reason, .. } => format!("FAILED: {reason}"),
        };
        (e.seq(), text)
    });
    let last = stage.into_iter().chain(end).max_by_key(|(seq, _)| *seq).map(|(_, text)| text);
    let last = last.unwrap_or_else(|| String::from("nothing logged yet"));
    // Seals, checkpoints and evaluations, in log order.
    let mut lines: Vec<(u64, String)> = Vec::new();
    for (t, it) in &state.iterations {
        if let Some(seal) = &it.seal {
            let digest = events::digest_hex(&seal.digest);
            lines.push((seal.seq, format!("D_{t} sealed: {} samples, digest {digest}", seal.count)));
        }
    }
    for c in &state.checkpoints {
        lines.push((c.seq, format!("checkpoint {} (iteration {}): {}", c.role, c.iteration, c.path)));
    }
    for c in &state.reward_checks {
        let check = crate::reward::check::RewardCheck::from_record(c);
        lines.push((c.seq, check.summary_line()));
        if let Some(w) = check.warning() {
            lines.push((c.seq, w));
        }
    }
    for e in &state.evaluations {
        let s: Vec<String> = e.scores.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
        lines.push((e.seq, format!("eval {} {} (iteration {}): {}", e.system, e.split, e.iteration, s.join(" "))));
    }
    lines.sort_by_key(|(seq, _)| *seq);
    let mut out = format!("run {} in {}\nstate: {last}\n", log.run_id(), run_dir.display());
    for (_, l) in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str("events:");
    let counts: BTreeMap<String, u64> = state.kinds.iter().map(|(k, v)| (format!("{k:?}"), *v)).collect();
    for (k, v) in counts {
        out.push_str(&format!(" {k}={v}"));
    }
    out.push('\n');
    Ok(out)
}
