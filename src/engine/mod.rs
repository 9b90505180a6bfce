//! Model engines: the implementations of the actors' capability traits
//! ([`actors::capability`]: `Generate`, `Judge`, `Train`, `Evaluate`) on a
//! concrete model backend.
//!
//! The `actors` crate runs Algorithm 1 against those traits and knows
//! nothing of models; an engine supplies them for one backend. Each engine
//! value is built inside the worker thread that owns it (by the factories of
//! [`crate::pipeline`]) and reads the run's shared, read-only
//! [`crate::pipeline::RunContext`] for examples, prompts and settings.
//!
//! - [`tch`]: local models on libtorch ([`crate::lm::LanguageModel`]), one
//!   model per worker thread: sampling and reasoning generation, the LLM
//!   judge, SFT and the M-step.
//!
//! - [`profile_statistics`]: a reasoning generator without a model, from
//!   counts over the profile and y, for machines whose only model is too
//!   small to summarize a user.
//!
//! - [`openai`]: the policy, reasoning generator and judge on a server with
//!   the OpenAI-compatible completions API (vLLM, SGLang, llama.cpp),
//!   launched by restpg per checkpoint or at a fixed URL.
//!
//! - [`command_trainer`]: SFT and the M-step by an external trainer
//!   command (TRL: `scripts/trl_sft.py`) given D_t as JSON Lines.
//!
//! - [`evaluator`]: evaluation of a checkpoint on a split, generating on
//!   `[engine.policy]`'s engine and judging on `[engine.judge]`'s: the one
//!   evaluation path of a run and of `restpg eval`.
//!
//! - [`run_reward`]: the run's reward as the judge capability over any
//!   judge model (tch or served).
//!
//! - [`config`]: `[engine.*]`, which engine each role runs on.
//!   [`EngineSection::check_supported`] refuses, by key and before any work
//!   starts, what this build cannot run (the policy at a fixed URL, a
//!   guard the completions API lacks).

pub mod command_trainer;
pub mod config;
pub mod evaluator;
pub mod openai;
pub mod profile_statistics;
pub mod run_reward;
pub mod tch;

pub use config::{EngineSection, RoleEngine, ServedRole, TrainerEngine};
