//! # restpg
//!
//! REST-PG (reasoning-enhanced self-training for personalized long-form text
//! generation, Salemi et al. 2025) and its baselines (SFT, SFT with reasoning,
//! ReST-EM) as a library and a CLI.
//!
//! The root package supplies the concrete machine-learning pieces: the tch
//! language model ([`lm`]), training ([`train`]), LongLaMP data and demo corpora
//! ([`data`]), retrieval ([`retrieve`]), prompt templates ([`prompt`]), rewards
//! and the LLM judge ([`reward`]), evaluation ([`eval`]), the model engines
//! that implement the actors' capabilities ([`engine`]), and the wiring of
//! all of them into the actor pipeline ([`pipeline`]). The member crates
//! `events`, `store`, `actors` and `replay` know nothing of tch; see
//! `ARCHITECTURE.md` for the dependency direction.
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod data;
pub mod engine;
pub mod eval;
pub mod lm;
pub mod paths;
pub mod pipeline;
pub mod prompt;
pub mod retrieve;
pub mod reward;
pub mod train;
pub mod view;
