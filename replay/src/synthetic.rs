//! Synthetic runs for tests and benchmarks: the events a REST-PG run writes,
//! in the pipeline's order, with judge-like rewards and the filter's rule
//! applied, sealed with [`dataset_digest`] over response digests as the
//! coordinator seals them.
//!
//! Nothing here is used by replay itself; it lives in the crate so that the
//! crate's tests, its benchmark and the CLI tests build the same runs.

use events::{dataset_digest, digest, response_digest, DatasetEntry, Decision, Event, Role, SampleId, Split, Stage};

use crate::completion::Completion;

/// The shape of a synthetic run.
#[derive(Clone, Debug)]
pub struct SyntheticRun {
    /// Run seed.
    pub seed: u64,
    /// Tasks; inputs are spread over them round-robin.
    pub tasks: Vec<String>,
    /// Train inputs.
    pub inputs: u32,
    /// E-step iterations T.
    pub iterations: u32,
    /// Samples per input m.
    pub m: u32,
    /// Threshold τ.
    pub tau: f32,
    /// Kept samples per input at most.
    pub cap: u32,
    /// Approximate response length in bytes.
    pub response_bytes: usize,
    /// Whether samples carry a reasoning part (REST-PG) or not (ReST-EM).
    pub reasoning: bool,
    /// The completion rule the tests export with.
    pub completion: Completion,
}

impl Default for SyntheticRun {
    fn default() -> Self {
        Self {
            seed: 7,
            tasks: vec!["email".into(), "topic".into()],
            inputs: 6,
            iterations: 2,
            m: 8,
            tau: 1.0,
            cap: 3,
            response_bytes: 200,
            reasoning: true,
            completion: Completion::new("\n\n### Response:\n"),
        }
    }
}

/// splitmix64: a small deterministic generator, enough for fake rewards.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const WORDS: &[&str] = &[
    "thanks", "for", "the", "update", "I", "will", "review", "draft", "before", "Monday", "and", "send", "notes", "to",
    "team", "meeting", "moved", "Thursday", "please", "confirm", "budget", "numbers", "look", "right", "see", "you",
];

fn text(mut state: u64, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        state = mix(state);
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
    }
    s
}

impl SyntheticRun {
    /// The benchmarks' big run: one iteration of about `sample_events`
    /// sample events (`SampleGenerated`, `RewardAssigned`, `FilterDecided`:
    /// three per sample), 32 samples per input over four tasks, ~600-byte
    /// responses, τ = 1 and a cap of 10.
    pub fn large(sample_events: u64) -> Self {
        let m = 32u32;
        let inputs = u32::try_from(sample_events.div_ceil(3 * u64::from(m)).max(1)).unwrap_or(u32::MAX);
        Self {
            inputs,
            m,
            iterations: 1,
            cap: 10,
            tau: 1.0,
            response_bytes: 600,
            tasks: vec!["email".into(), "topic".into(), "review".into(), "abstract".into()],
            ..Self::default()
        }
    }

    /// The id of input `i`.
    pub fn input_id(&self, i: u32) -> String {
        format!("{}-u{i:04}", self.task_of(i))
    }

    /// The task of input `i`.
    pub fn task_of(&self, i: u32) -> &str {
        &self.tasks[i as usize % self.tasks.len()]
    }

    /// The judge score (0..=10) of a sample: most samples score low, about
    /// one in four scores 10.
    pub fn score(&self, sample: &SampleId) -> u32 {
        let r = mix(sample.seed(self.seed));
        if r & 3 == 0 {
            10
        } else {
            (r >> 8) as u32 % 10
        }
    }

    /// The resolved configuration the run starts with.
    pub fn config_toml(&self) -> String {
        format!(
            "method = \"rest-pg\"\nseed = {}\n\n[reward]\nname = \"judge\"\ntau = {:?}\nmax_kept_per_input = {}\n\n[em]\niterations = {}\n\n[train]\ninit = \"fresh\"\n",
            self.seed, self.tau, self.cap, self.iterations
        )
    }

    /// Calls `f` with every event of the run, in the pipeline's order.
    pub fn for_each_event(&self, mut f: impl FnMut(Event)) {
        let config = self.config_toml();
        f(Event::RunStarted {
            method: events::Method::RestPg.as_str().into(),
            config_digest: digest(config.as_bytes()),
            config_toml: config,
            code_version: "restpg synthetic".into(),
            seed: self.seed,
            dataset_digest: digest(b"synthetic data"),
            settings: Some(events::RunSettings {
                tau: self.tau,
                max_kept_per_input: self.cap,
                require_reasoning: false,
                init: events::InitMode::Fresh,
                separator: Some("### Response:".into()),
                reward: "judge".into(),
                drop_unfinished: true,
            }),
        });
        for i in 0..self.inputs {
            f(Event::RetrievalDone {
                input_id: self.input_id(i),
                task: self.task_of(i).to_owned(),
                retriever: "bm25".into(),
                k: 2,
                item_indices: vec![1, 0],
                scores: vec![2.5, 1.0],
            });
        }
        let base = digest(b"base weights");
        f(checkpoint(0, 0, Role::Base, base));
        let mut current = digest(b"sft weights");
        f(checkpoint(0, 10, Role::Sft, current));
        for t in 1..=self.iterations {
            f(Event::StageStarted { iteration: t, stage: Stage::EStep });
            let mut entries = Vec::new();
            for i in 0..self.inputs {
                entries.extend(self.input_events(t, i, current, &mut f));
            }
            f(Event::DatasetSealed { iteration: t, count: entries.len() as u64, digest: dataset_digest(&entries) });
            for step in 1..=5u64 {
                f(Event::TrainingProgress {
                    iteration: t,
                    step,
                    loss: 3.0 / (step as f32 + f32::from(t as u16)),
                    learning_rate: 5e-6,
                    tokens: step * 4096,
                });
            }
            current = digest(format!("m-step {t}").as_bytes());
            f(checkpoint(t, 5, Role::MStep, current));
            f(Event::EvaluationDone {
                iteration: t,
                split: Split::Validation,
                system: "rest-pg".into(),
                scores: vec![("email".into(), 0.4), ("macro".into(), 0.41)],
                report_path: format!("reports/t{t}.json"),
            });
            f(Event::IterationFinished { iteration: t });
        }
        f(Event::RunFinished { wall_ms: 1000 });
    }

    /// The events of one input in iteration `t`; returns its D_t entries.
    fn input_events(&self, t: u32, i: u32, checkpoint: [u8; 32], f: &mut impl FnMut(Event)) -> Vec<DatasetEntry> {
        let input_id = self.input_id(i);
        let prompt_digest = events::prompt_digest(&self.prompt(&input_id));
        let mut drawn = Vec::with_capacity(self.m as usize);
        for index in 0..self.m {
            let sample = SampleId { iteration: t, input_id: input_id.clone(), index };
            let seed = sample.seed(self.seed);
            let reasoning = self.reasoning.then(|| text(seed ^ 1, self.response_bytes / 2));
            let response = text(seed, self.response_bytes);
            let response_digest = response_digest(&response);
            let score = self.score(&sample);
            let reward = score as f32 / 10.0;
            let mut judge = vec![0.0f32; 11];
            judge[score as usize] = 0.7;
            judge[(score as usize + 10) % 11] = 0.2;
            judge[(score as usize + 9) % 11] = 0.1;
            f(Event::SampleGenerated {
                sample: sample.clone(),
                seed,
                prompt_digest,
                reasoning,
                response,
                prompt_tokens: 180,
                output_tokens: (self.response_bytes / 4) as u32,
                checkpoint,
                temperature: 0.7,
                top_p: 0.95,
                finish: Some(events::FinishReason::StopToken),
                penalties: events::Penalties::default(),
                precision: events::Precision::F32,
                engine: events::EngineInfo::tch(),
            });
            f(Event::RewardAssigned {
                sample: sample.clone(),
                reward,
                reward_name: "judge".into(),
                judge_distribution: judge,
                engine: Some(events::EngineInfo::tch()),
                unseen_mass: None,
            });
            drawn.push((sample, reward, response_digest));
        }
        // The run's own filter rule (shared with the coordinator).
        let scored: Vec<events::filter::Scored> = drawn
            .iter()
            .map(|(sample, reward, _)| events::filter::Scored {
                sample: sample.clone(),
                reward: *reward,
                has_reasoning: true,
                finish: Some(events::FinishReason::StopToken),
            })
            .collect();
        let rule = events::filter::FilterRule {
            tau: self.tau,
            cap: self.cap,
            require_reasoning: false,
            drop_unfinished: true,
        };
        let verdicts = events::filter::decide(&scored, &rule).expect("synthetic rewards are finite and distinct");
        let mut entries = Vec::new();
        for v in verdicts {
            if v.decision == Decision::Kept {
                let (_, _, response_digest) = drawn.iter().find(|d| d.0 == v.sample).expect("a drawn sample");
                entries.push(DatasetEntry {
                    sample: v.sample.clone(),
                    reward: v.reward,
                    response_digest: *response_digest,
                });
            }
            f(Event::FilterDecided {
                sample: v.sample,
                decision: v.decision,
                reward: v.reward,
                tau: self.tau,
                rank: v.rank,
            });
        }
        entries
    }

    /// The prompt text of an input (what a prompt builder would return).
    pub fn prompt(&self, input_id: &str) -> String {
        format!("Write the email for {input_id}, in the user's style.")
    }

    /// Every event of the run.
    pub fn events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        self.for_each_event(|e| out.push(e));
        out
    }
}

fn checkpoint(iteration: u32, step: u64, role: Role, hash: [u8; 32]) -> Event {
    Event::CheckpointSaved {
        iteration,
        step,
        role,
        hash,
        path: format!("blobs/{}", events::digest_hex(&hash)),
        validation_score: None,
    }
}
