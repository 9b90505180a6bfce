//! # restpg-events: the schema of the run log
//!
//! Everything that happens in a restpg run is a fact in an append-only log:
//! the configuration it started with, every profile retrieval, every sample
//! the policy drew with its seed and engine, every reward with the judge's
//! distribution and engine, every filter decision with its reason, each
//! sealed training set D_t, every training step, checkpoint and evaluation.
//! This crate defines those facts and how they are stored; it knows nothing
//! of sled, tch or actors.
//!
//! The main types:
//!
//! - [`Event`] is the payload, one enum of past-tense variants
//!   (`SampleGenerated`, `RewardAssigned`, `FilterDecided`, `DatasetSealed`,
//!   …), plain data with public fields. [`EventKind`] names a variant without
//!   its fields and gives it the stable one-byte code the store indexes by.
//! - [`SampleId`] names a sample for good: iteration, input id, index among
//!   the input's `m` draws. Its text form `t1/<input_id>/#3` is what people
//!   type; [`SampleId::seed`] derives the sample's seed from the run seed, so
//!   a resumed or repeated run draws the same sample the same way.
//! - [`Envelope`] wraps a payload with its sequence number, UTC time, run id,
//!   schema version, event id and the hashes that chain it to the record
//!   before. [`Envelope::seal`] builds one, [`Envelope::encode`] and
//!   [`Envelope::decode`] are its bytes.
//! - [`dataset_digest`] is the canonical digest of a training set, computed
//!   by the pipeline when it seals D_t and again by replay from the log alone.
//! - The shared vocabulary: [`Method`], [`Stage`], [`Split`], [`Role`],
//!   [`InitMode`], [`PromptKind`], [`ScoreRule`], [`Precision`], [`Sampling`]
//!   and its [`Penalties`], one type
//!   each for the names every crate passes around, spelled as the
//!   configuration and the log spell them.
//! - [`filter`] and [`rules`] are the pure rules the run and replay must
//!   agree on: the filter, the response digest, the train seed, the
//!   reasoning sample's id.
//!
//! Why it is shaped this way:
//!
//! - **Ids name facts, not descriptions.** [`Event::event_id`] hashes the run
//!   id, the kind and the fields that say *which* fact it is (a sample id, an
//!   iteration and step), never those that describe it (the response text, a
//!   loss). A resumed run re-emits what it did before the crash; the store
//!   sees the id again and does nothing, so no sample is lost or counted
//!   twice.
//! - **Hash chain over exact bytes.** A record's hash covers its bytes as
//!   stored, its version included, and each record carries the hash before
//!   it. One flipped bit anywhere shows up at its sequence number; a removed
//!   or reordered record breaks the chain after it.
//! - **Old records are upcast, not kept as parallel types.** The version sits
//!   in a two-byte header outside bincode, so an unknown version is refused
//!   by name before any decoding, and each known version's body is decoded
//!   and converted into today's [`Envelope`]. bincode writes enum variants by
//!   position: variants are only added at the end, and changing a variant's
//!   fields takes a new [`SCHEMA_VERSION`] (the version-1 fixture test fails
//!   otherwise).
//! - **Digests are bytes on disk, hex for people.** Digest fields serialize as
//!   32 bytes in bincode and as 64 hex digits in JSON, so `restpg log export`
//!   is readable without a second set of types.
#![deny(missing_docs)]

mod digest;
mod engine;
mod envelope;
mod event;
pub mod filter;
mod legacy;
pub mod rules;
mod sample;
mod settings;
mod vocab;

pub use digest::{digest, digest_hex, parse_digest_hex, Digest, DigestParseError};
pub use engine::EngineInfo;
pub use envelope::{Envelope, RecordError, GENESIS_HASH, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION};
pub use event::{Event, EventKind, EventKindParseError};
pub use rules::{prompt_digest, reasoning_sample, response_digest, train_seed};
pub use sample::{dataset_digest, DatasetEntry, Decision, FinishReason, SampleId, SampleIdParseError};
pub use settings::RunSettings;
pub use vocab::{
    Backend, InitMode, Method, Penalties, Precision, PromptFormat, PromptKind, Role, Sampling, ScoreRule, Split, Stage,
    TrainerBackend, UnknownName,
};
