//! The [`Plan`]: every value the coordinator needs to run Algorithm 1 of
//! REST-PG, decided on the root side (from the TOML configuration) and passed
//! in as plain data.

use events::Event;

use crate::capability::CheckpointRef;

/// Which of the paper's four systems to run; the type lives in the shared
/// vocabulary.
pub use events::Method;
/// A name that is no method (the vocabulary's error for any unknown name).
pub use events::UnknownName as MethodParseError;

pub use events::InitMode;

/// Sampling settings of one kind of generation (the shared vocabulary's).
pub use events::Sampling;

/// Test-only fault switch: makes the sampler pool fail once so tests can
/// check supervision (restart and re-issue). Never set by the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultPlan {
    /// The sampler pool's batch (0-based, counted over every batch any
    /// sampler worker of the run receives, reasoning generation included)
    /// whose first delivery fails.
    pub sampler_fail_once_at_batch: usize,
    /// `true`: the worker panics inside its handler; `false`: it returns a
    /// retryable error.
    pub panic: bool,
    /// When set, the planned batch neither fails nor panics: its worker
    /// hangs this many milliseconds first (a stand-in for a libtorch
    /// deadlock or a stuck request), so the batch timeout must re-issue it.
    pub hang_ms: Option<u64>,
    /// When set, the coordinator stops the run abruptly (no `RunFailed`, no
    /// further events, [`RunError::InjectedCrash`](crate::RunError)) once
    /// this many `SampleGenerated` events were appended in this process:
    /// an in-process stand-in for a crash during the E-step.
    pub crash_after_samples: Option<usize>,
}

/// Everything one run of Algorithm 1 needs, decided. Built by the root
/// package from its resolved configuration; validated by [`Plan::validate`]
/// before any actor starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The run's id (names every event id, so it must stay the same on
    /// resume).
    pub run_id: String,
    /// Which system to run.
    pub method: Method,
    /// The run seed: sample seeds derive from it and the sample id
    /// ([`events::SampleId::seed`]).
    pub seed: u64,
    /// Train input ids (SFT trains on each; the E-step samples for each
    /// unless [`Plan::e_step_ids`] names a subset).
    pub train_ids: Vec<String>,
    /// The inputs each iteration's E-step samples, entry `t − 1` for
    /// iteration t: subsets of `train_ids`, in the order sampled. Empty (the
    /// default and the paper's): every train input in every iteration.
    pub e_step_ids: Vec<Vec<String>>,
    /// Validation input ids; empty skips validation evaluations.
    pub val_ids: Vec<String>,
    /// Test input ids; empty skips the final test evaluation.
    pub test_ids: Vec<String>,
    /// Evaluate on test after SFT and after every iteration, not only after
    /// the last (when `test_ids` is not empty).
    pub test_every_iteration: bool,
    /// Profile items retrieved per input (paper: k = 5).
    pub k: usize,
    /// Samples per train input in each E-step (paper: m = 32).
    pub m: u32,
    /// EM iterations (paper: T = 3); ignored by `sft` and `sft-reasoning`.
    pub iterations: u32,
    /// Reward threshold τ (paper: 1.0, the judge's maximum).
    pub tau: f32,
    /// Most samples kept per input (paper: 10).
    pub max_kept_per_input: u32,
    /// Whether the filter drops samples without reasoning as
    /// [`events::Decision::NoReasoning`] (the reasoning methods, by default).
    pub require_reasoning: bool,
    /// Whether the filter drops samples that ran to the token limit as
    /// [`events::Decision::Unfinished`] (by default).
    pub drop_unfinished: bool,
    /// How long one batch may take on a worker before it is presumed hung
    /// (a libtorch deadlock, a stuck request) and re-issued.
    pub batch_timeout: std::time::Duration,
    /// Where each M-step starts.
    pub init: InitMode,
    /// The base (pretrained) checkpoint θ_0: SFT starts from it, and so does
    /// every M-step under [`InitMode::Fresh`].
    pub base: CheckpointRef,
    /// E-step sampling (paper: γ = 0.7, nucleus sampling).
    pub e_step: Sampling,
    /// Reasoning-data generation settings.
    pub reasoning: Sampling,
    /// The reasoning generator's name as logged in `ReasoningGenerated`.
    pub generator_name: String,
    /// The checkpoint the reasoning generator loads (the base policy by
    /// default on the root side).
    pub generator_checkpoint: CheckpointRef,
    /// Requests per batch sent to a sampler, judge or retriever worker.
    pub batch_size: usize,
    /// Sampler worker threads (each builds its own policy).
    pub sampler_workers: usize,
    /// Judge worker threads (each builds its own judge).
    pub judge_workers: usize,
    /// Most batches outstanding to a worker pool at once (backpressure).
    pub max_in_flight: usize,
    /// Deliveries of one batch after which a retryable failure fails the run
    /// (1 = no retry).
    pub max_attempts: u32,
    /// Test-only fault switch; `None` in real runs.
    pub fault: Option<FaultPlan>,
    /// K of the reward check, the run's first stage: at most this many
    /// examples per task are scored; 0 skips the check.
    pub reward_check_per_task: usize,
    /// The run's `RunStarted` record (configuration, code version, seed,
    /// data set digest, settings). When set, the coordinator opens the log
    /// with it and with the base checkpoint θ⁰ (`CheckpointSaved`,
    /// iteration 0, role `base`), each unless the log already holds it; when
    /// `None`, no opening record is written.
    pub run_started: Option<Event>,
}

impl Plan {
    /// A plan with the paper's defaults (Appendix B) for the numbers, one
    /// worker of each kind, and the given identity and data.
    pub fn new(
        run_id: impl Into<String>,
        method: Method,
        seed: u64,
        base: CheckpointRef,
        train_ids: Vec<String>,
    ) -> Plan {
        Plan {
            run_id: run_id.into(),
            method,
            seed,
            train_ids,
            e_step_ids: Vec::new(),
            val_ids: Vec::new(),
            test_ids: Vec::new(),
            test_every_iteration: false,
            k: 5,
            m: 32,
            iterations: 3,
            tau: 1.0,
            max_kept_per_input: 10,
            require_reasoning: method.uses_reasoning(),
            drop_unfinished: true,
            batch_timeout: std::time::Duration::from_secs(3600),
            init: InitMode::Fresh,
            generator_checkpoint: base.clone(),
            base,
            e_step: Sampling { temperature: 0.7, top_p: 0.95, max_new_tokens: 1536, penalties: Default::default() },
            reasoning: Sampling { temperature: 0.7, top_p: 0.95, max_new_tokens: 1536, penalties: Default::default() },
            generator_name: "policy".into(),
            batch_size: 8,
            sampler_workers: 1,
            judge_workers: 1,
            max_in_flight: 2,
            max_attempts: 3,
            fault: None,
            reward_check_per_task: 0,
            run_started: None,
        }
    }

    /// The inputs iteration `t`'s E-step samples (see [`Plan::e_step_ids`]).
    pub fn e_step_inputs(&self, t: u32) -> &[String] {
        match t.checked_sub(1).and_then(|i| self.e_step_ids.get(i as usize)) {
            Some(ids) => ids,
            None => &self.train_ids,
        }
    }

    /// EM iterations this method actually runs (0 for the SFT methods).
    pub fn em_iterations(&self) -> u32 {
        if self.method.self_trains() {
            self.iterations
        } else {
            0
        }
    }

    /// Refuses plans the coordinator cannot run.
    ///
    /// # Errors
    /// [`PlanError`] naming the field: empty run id or train set, duplicate
    /// input ids, `m`, `k`, batch size, worker counts, in-flight bound or
    /// attempts of 0, a non-finite τ, sampling settings out of range, or a
    /// [`Plan::run_started`] that is another kind of event.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |field: &'static str, why: String| Err(PlanError { field, why });
        if self.run_id.is_empty() {
            return bad("run_id", "is empty".into());
        }
        if self.train_ids.is_empty() {
            return bad("train_ids", "no train inputs".into());
        }
        for (field, ids) in [("train_ids", &self.train_ids), ("val_ids", &self.val_ids), ("test_ids", &self.test_ids)] {
            let mut seen = std::collections::BTreeSet::new();
            for id in ids {
                if !seen.insert(id) {
                    return bad(field, format!("input id {id:?} appears twice"));
                }
            }
        }
        if !self.e_step_ids.is_empty() {
            if self.e_step_ids.len() != self.iterations as usize {
                return bad(
                    "e_step_ids",
                    format!("{} entries for {} iterations", self.e_step_ids.len(), self.iterations),
                );
            }
            let train: std::collections::BTreeSet<&String> = self.train_ids.iter().collect();
            for (i, ids) in self.e_step_ids.iter().enumerate() {
                let mut seen = std::collections::BTreeSet::new();
                if ids.is_empty() {
                    return bad("e_step_ids", format!("iteration {} samples no input", i + 1));
                }
                for id in ids {
                    if !train.contains(id) {
                        return bad("e_step_ids", format!("iteration {}: {id:?} is not a train input", i + 1));
                    }
                    if !seen.insert(id) {
                        return bad("e_step_ids", format!("iteration {}: input id {id:?} appears twice", i + 1));
                    }
                }
            }
        }
        for (field, v) in [
            ("k", self.k),
            ("batch_size", self.batch_size),
            ("sampler_workers", self.sampler_workers),
            ("judge_workers", self.judge_workers),
            ("max_in_flight", self.max_in_flight),
        ] {
            if v == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        if self.method.self_trains() && self.m == 0 {
            return bad("m", "must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return bad("max_attempts", "must be at least 1".into());
        }
        if let Some(e) = &self.run_started {
            if !matches!(e, Event::RunStarted { .. }) {
                return bad("run_started", format!("is a {:?} event, not RunStarted", e.kind()));
            }
        }
        if !self.tau.is_finite() {
            return bad("tau", format!("{} is not a finite number", self.tau));
        }
        for (field, g) in [("e_step", &self.e_step), ("reasoning", &self.reasoning)] {
            g.check().map_err(|why| PlanError { field, why })?;
        }
        Ok(())
    }
}

/// A plan the coordinator refuses, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plan: {field} {why}")]
pub struct PlanError {
    /// The [`Plan`] field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::new("r", Method::RestPg, 1, CheckpointRef { hash: [0; 32], path: "base".into() }, vec!["a".into()])
    }

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
        }
        assert!("reinforce".parse::<Method>().unwrap_err().to_string().contains("rest-pg"));
    }

    #[test]
    fn validate_names_the_field() {
        assert_eq!(plan().validate(), Ok(()));
        let mut p = plan();
        p.m = 0;
        assert_eq!(p.validate().unwrap_err().field, "m");
        let mut p = plan();
        p.train_ids.push("a".into());
        assert_eq!(p.validate().unwrap_err().field, "train_ids");
        let mut p = plan();
        p.e_step.top_p = 0.0;
        assert_eq!(p.validate().unwrap_err().field, "e_step");
        let mut p = plan();
        p.tau = f32::NAN;
        assert_eq!(p.validate().unwrap_err().field, "tau");
        let mut p = plan();
        p.max_in_flight = 0;
        assert_eq!(p.validate().unwrap_err().field, "max_in_flight");
        let mut p = plan();
        p.run_started = Some(Event::RunFinished { wall_ms: 0 });
        assert_eq!(p.validate().unwrap_err().field, "run_started");
    }

    #[test]
    fn e_step_subsets_are_checked_and_default_to_every_train_input() {
        let mut p = plan();
        p.train_ids = vec!["a".into(), "b".into(), "c".into()];
        p.iterations = 2;
        assert_eq!(p.e_step_inputs(1), p.train_ids.as_slice());
        p.e_step_ids = vec![vec!["a".into()], vec!["c".into(), "b".into()]];
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.e_step_inputs(2), ["c".to_string(), "b".to_string()].as_slice());
        for bad in [
            vec![vec!["a".to_string()]],
            vec![vec!["a".into()], vec![]],
            vec![vec!["a".into()], vec!["z".into()]],
            vec![vec!["a".into(), "a".into()], vec!["b".into()]],
        ] {
            let mut q = p.clone();
            q.e_step_ids = bad;
            assert_eq!(q.validate().unwrap_err().field, "e_step_ids");
        }
    }
}
