//! The stored record: an [`Envelope`] around an [`Event`], its byte layout,
//! its hash, and the decoding of older schema versions.
//!
//! A record is
//!
//! ```text
//! [0..2)      schema version, u16 little-endian
//! [2..n-32)   body: bincode 2 (standard config) of the version's body tuple
//! [n-32..n)   hash: blake3 of bytes [0..n-32)
//! ```
//!
//! The version comes first and outside bincode so that a reader can refuse a
//! record it does not know before trying to make sense of it, and the hash
//! covers the version, so a record cannot be relabelled either.
//!
//! | version | body |
//! |---|---|
//! | 1 | `(seq, time as RFC 3339 text, run_id, event_id, payload, prev_hash)` |
//! | 2 | `(seq, (unix seconds i64, nanoseconds u32), run_id, event_id, payload, prev_hash)` |
//! | 3 | as 2, with the version-3 payload |
//! | 4 | as 2, with the version-4 payload |
//! | 5 | as 2, with the version-5 payload |
//! | 6 | as 2, with the version-6 payload |
//! | 7 | as 2, with the version-7 payload |
//!
//! Version 1 was this schema's first draft; version 2 stores time as two
//! integers (about 6 bytes instead of about 30, and no text to parse when a
//! million records are scanned). A version-1 record decodes into the current
//! [`Envelope`] with `schema_version: 1` and its original hash; the committed
//! fixture `tests/fixtures/v1_records.bin` keeps that path honest.
//!
//! Version 3 changed the payload: `SampleGenerated` records its finish
//! reason, `RunStarted` the typed settings replay needs, and `Decision` and
//! `Event` gained variants. Version 1 and 2 payloads decode as the legacy
//! type (`legacy.rs`) and are upcast (new fields `None`); the committed
//! fixture `tests/fixtures/v2_records.bin` keeps that path honest.
//!
//! Version 4 typed the names that were text: a stage, a checkpoint role and
//! an evaluated split are the vocabulary's enums. Version 3 payloads decode
//! as the legacy `EventV3` and are upcast; a name the vocabulary does not
//! know fails the record ([`RecordError::Upcast`], naming the record and
//! the field). The committed fixture `tests/fixtures/v3_records.bin`,
//! written by the version-3 build, keeps that path honest.
//!
//! Version 5 added what a sample was drawn with: `SampleGenerated` records
//! its repetition guards ([`Penalties`](crate::Penalties)) and the model's
//! [`Precision`](crate::Precision). Version 4 payloads decode as the legacy
//! `EventV4` and upcast to neutral guards in f32 (what every version-4
//! sample was drawn with); the committed fixture
//! `tests/fixtures/v4_records.bin`, written by the version-4 build, keeps
//! that path honest.
//!
//! Version 6 names the engine: `SampleGenerated` records which engine drew
//! it ([`EngineInfo`](crate::EngineInfo)), `RewardAssigned` the judge
//! model's engine (`None` for a reward without a model) and the probability
//! mass the engine did not return among its top log-probabilities. Version
//! 5 payloads decode as the legacy `EventV5` and upcast to the embedded tch
//! engine (what produced every version-5 sample and judge reward) with no
//! unseen mass; the committed fixture `tests/fixtures/v5_records.bin`,
//! written by the version-5 build, keeps that path honest.
//!
//! Version 7 drops unfinished samples: the run's settings record whether
//! the filter drops samples that ran to the token limit
//! (`RunSettings::drop_unfinished`), and `Decision` gained `Unfinished`.
//! Version 6 payloads decode as the legacy `EventV6` and upcast to a run
//! that kept them (what every version-6 run did); the committed fixture
//! `tests/fixtures/v6_records.bin`, written by the version-6 build, keeps
//! that path honest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::{digest_hex, serde_digest, Digest};
use crate::event::{Event, EventKind};
use crate::legacy::{EventV2, EventV3, EventV4, EventV5, EventV6, UpcastError};
use crate::vocab::UnknownName;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u16 = 7;

/// The oldest schema version this build still reads.
pub const OLDEST_SCHEMA_VERSION: u16 = 1;

/// The hash that precedes the first record of a log (all zeros).
pub const GENESIS_HASH: Digest = [0; 32];

const HEADER: usize = 2;
const HASH: usize = 32;

/// One record of the log: a payload with its place in the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Position in the log, from 0, without gaps.
    pub seq: u64,
    /// When it was appended (UTC).
    pub time: DateTime<Utc>,
    /// The run this log belongs to.
    pub run_id: String,
    /// The schema version the record was written in (older records keep
    /// their version after decoding).
    pub schema_version: u16,
    /// [`Event::event_id`] of the payload in this run.
    #[serde(with = "serde_digest")]
    pub event_id: Digest,
    /// The fact.
    pub payload: Event,
    /// `hash` of the record at `seq - 1`, or [`GENESIS_HASH`] for `seq` 0.
    #[serde(with = "serde_digest")]
    pub prev_hash: Digest,
    /// blake3 of this record's encoding up to the hash itself.
    #[serde(with = "serde_digest")]
    pub hash: Digest,
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Too short to hold a version and a hash.
    #[error("record is {len} bytes, too short for a header and a hash")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Written in a schema version this build does not know.
    #[error(
        "unknown schema version {found}: this build reads versions {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION} \
         (was the log written by a newer restpg?)"
    )]
    UnknownSchemaVersion {
        /// The version in the record's header.
        found: u16,
    },
    /// The bytes do not hash to the stored hash: the record was altered.
    #[error("hash mismatch: stored {}, computed {} (the record's bytes were altered)", digest_hex(.stored), digest_hex(.computed))]
    HashMismatch {
        /// Hash at the end of the record.
        stored: Digest,
        /// Hash of the bytes before it.
        computed: Digest,
    },
    /// The hash matches but the body does not decode as its version's body.
    #[error("cannot decode schema-version-{version} body: {message}")]
    Decode {
        /// The record's schema version.
        version: u16,
        /// The decoder's message.
        message: String,
    },
    /// An old record decodes, but names something (a stage, a checkpoint
    /// role, a split) that this build's vocabulary does not know.
    #[error("schema-version-{version} record {seq} ({kind}): field `{field}`: {source}")]
    Upcast {
        /// The record's schema version.
        version: u16,
        /// Its sequence number.
        seq: u64,
        /// Its kind.
        kind: EventKind,
        /// The field at fault.
        field: &'static str,
        /// The text and the accepted names.
        source: UnknownName,
    },
}

type BodyV1 = (u64, String, String, [u8; 32], EventV2, [u8; 32]);
type BodyV2 = (u64, (i64, u32), String, [u8; 32], EventV2, [u8; 32]);
type BodyV3 = (u64, (i64, u32), String, [u8; 32], EventV3, [u8; 32]);
type BodyV4 = (u64, (i64, u32), String, [u8; 32], EventV4, [u8; 32]);
type BodyV5 = (u64, (i64, u32), String, [u8; 32], EventV5, [u8; 32]);
type BodyV6 = (u64, (i64, u32), String, [u8; 32], EventV6, [u8; 32]);
type BodyV7 = (u64, (i64, u32), String, [u8; 32], Event, [u8; 32]);

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl Envelope {
    /// Builds the current-version record for `payload` at `seq`, computing
    /// its event id and hash.
    pub fn seal(seq: u64, time: DateTime<Utc>, run_id: &str, payload: Event, prev_hash: Digest) -> Envelope {
        Self::seal_as(SCHEMA_VERSION, seq, time, run_id, payload, prev_hash)
    }

    fn seal_as(
        schema_version: u16,
        seq: u64,
        time: DateTime<Utc>,
        run_id: &str,
        payload: Event,
        prev_hash: Digest,
    ) -> Envelope {
        let event_id = payload.event_id(run_id);
        let mut env = Envelope {
            seq,
            time,
            run_id: run_id.to_owned(),
            schema_version,
            event_id,
            payload,
            prev_hash,
            hash: [0; 32],
        };
        let bytes = env.encode_unhashed();
        env.hash = crate::digest(&bytes);
        env
    }

    /// The record's bytes in its own schema version (see the module docs).
    ///
    /// # Panics
    /// When `schema_version` is one this build cannot write, or an old
    /// version with a payload that version cannot hold (only a hand-built
    /// envelope can be either: [`Envelope::decode`] never makes one).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.encode_unhashed();
        bytes.extend_from_slice(&self.hash);
        bytes
    }

    /// Everything but the hash.
    fn encode_unhashed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&self.schema_version.to_le_bytes());
        let cannot = || -> ! {
            panic!("a {} payload cannot be written in schema version {}", self.payload.kind(), self.schema_version)
        };
        let v6 = || EventV6::downcast(&self.payload).unwrap_or_else(|| cannot());
        let v5 = || EventV5::downcast(&v6()).unwrap_or_else(|| cannot());
        let v4 = || EventV4::downcast(&v5()).unwrap_or_else(|| cannot());
        let legacy = || EventV2::downcast(&EventV3::from(&v4())).unwrap_or_else(|| cannot());
        let time = (self.time.timestamp(), self.time.timestamp_subsec_nanos());
        let encoded = match self.schema_version {
            1 => {
                let time = self.time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
                bincode::serde::encode_into_std_write(
                    (self.seq, time, &self.run_id, &self.event_id, legacy(), &self.prev_hash),
                    &mut out,
                    bincode_config(),
                )
            }
            2 => bincode::serde::encode_into_std_write(
                (self.seq, time, &self.run_id, &self.event_id, legacy(), &self.prev_hash),
                &mut out,
                bincode_config(),
            ),
            3 => bincode::serde::encode_into_std_write(
                (self.seq, time, &self.run_id, &self.event_id, EventV3::from(&v4()), &self.prev_hash),
                &mut out,
                bincode_config(),
            ),
            4 => bincode::serde::encode_into_std_write(
                (self.seq, time, &self.run_id, &self.event_id, v4(), &self.prev_hash),
                &mut out,
                bincode_config(),
            ),
            5 => bincode::serde::encode_into_std_write(
                (self.seq, time, &self.run_id, &self.event_id, v5(), &self.prev_hash),
                &mut out,
                bincode_config(),
            ),
            6 => bincode::serde::encode_into_std_write(
                (self.seq, time, &self.run_id, &self.event_id, v6(), &self.prev_hash),
                &mut out,
                bincode_config(),
            ),
            SCHEMA_VERSION => bincode::serde::encode_into_std_write(
                (self.seq, time, &self.run_id, &self.event_id, &self.payload, &self.prev_hash),
                &mut out,
                bincode_config(),
            ),
            v => panic!("cannot encode schema version {v}"),
        };
        encoded.expect("encoding into a Vec cannot fail");
        out
    }

    /// Reads a record of any supported version, checking its hash first.
    ///
    /// # Errors
    /// [`RecordError`]: too short, unknown version, hash mismatch, or a body
    /// that does not decode.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, RecordError> {
        if bytes.len() < HEADER + HASH {
            return Err(RecordError::TooShort { len: bytes.len() });
        }
        let version = u16::from_le_bytes([bytes[0], bytes[1]]);
        if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&version) {
            return Err(RecordError::UnknownSchemaVersion { found: version });
        }
        let (unhashed, stored) = bytes.split_at(bytes.len() - HASH);
        let stored: Digest = stored.try_into().expect("32 bytes");
        let computed = crate::digest(unhashed);
        if computed != stored {
            return Err(RecordError::HashMismatch { stored, computed });
        }
        let body = &unhashed[HEADER..];
        let bad = |message: String| RecordError::Decode { version, message };
        let time_of = |(secs, nanos): (i64, u32)| {
            DateTime::from_timestamp(secs, nanos).ok_or_else(|| bad(format!("time out of range: {secs}s {nanos}ns")))
        };
        let upcast = |seq: u64, old: EventV3| {
            EventV4::try_from(old).map(EventV5::from).map(EventV6::from).map(Event::from).map_err(
                |UpcastError { kind, field, source }| RecordError::Upcast { version, seq, kind, field, source },
            )
        };
        let (seq, time, run_id, event_id, payload, prev_hash) = match version {
            1 => {
                let (b, _): (BodyV1, usize) = decode_exact(body).map_err(bad)?;
                let time = DateTime::parse_from_rfc3339(&b.1)
                    .map_err(|e| bad(format!("time {:?}: {e}", b.1)))?
                    .with_timezone(&Utc);
                (b.0, time, b.2, b.3, upcast(b.0, EventV3::from(b.4))?, b.5)
            }
            2 => {
                let (b, _): (BodyV2, usize) = decode_exact(body).map_err(bad)?;
                (b.0, time_of(b.1)?, b.2, b.3, upcast(b.0, EventV3::from(b.4))?, b.5)
            }
            3 => {
                let (b, _): (BodyV3, usize) = decode_exact(body).map_err(bad)?;
                (b.0, time_of(b.1)?, b.2, b.3, upcast(b.0, b.4)?, b.5)
            }
            4 => {
                let (b, _): (BodyV4, usize) = decode_exact(body).map_err(bad)?;
                (b.0, time_of(b.1)?, b.2, b.3, Event::from(EventV6::from(EventV5::from(b.4))), b.5)
            }
            5 => {
                let (b, _): (BodyV5, usize) = decode_exact(body).map_err(bad)?;
                (b.0, time_of(b.1)?, b.2, b.3, Event::from(EventV6::from(b.4)), b.5)
            }
            6 => {
                let (b, _): (BodyV6, usize) = decode_exact(body).map_err(bad)?;
                (b.0, time_of(b.1)?, b.2, b.3, Event::from(b.4), b.5)
            }
            _ => {
                let (b, _): (BodyV7, usize) = decode_exact(body).map_err(bad)?;
                (b.0, time_of(b.1)?, b.2, b.3, b.4, b.5)
            }
        };
        Ok(Envelope { seq, time, run_id, schema_version: version, event_id, payload, prev_hash, hash: stored })
    }
}

/// The most bytes bincode claims per byte of a body: a varint `u64` takes
/// one byte and claims eight (no field of a body is a 128-bit integer).
const CLAIM_PER_BYTE: usize = 8;

/// Decodes `T` and insists that it spans all of `body`.
///
/// bincode reserves a string's length before it reads the string, so an
/// unchecked length prefix (`0xfd` and a `u64`) would size an allocation on
/// its own word. Decoding runs under a limit on the bytes bincode may claim
/// (a type-level constant, hence the tiers): the smallest tier that covers
/// [`CLAIM_PER_BYTE`] × the body, so a valid body always fits and no
/// allocation exceeds 64 × the body (or 4 KiB).
fn decode_exact<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(T, usize), String> {
    let need = body.len().saturating_mul(CLAIM_PER_BYTE);
    macro_rules! tiers {
        ($($limit:literal),*) => {
            $(
                if need <= $limit {
                    return finish(bincode::serde::decode_from_slice(body, bincode_config().with_limit::<$limit>()), body);
                }
            )*
        };
    }
    tiers!(0x1000, 0x8000, 0x4_0000, 0x20_0000, 0x100_0000, 0x800_0000, 0x4000_0000, 0x2_0000_0000, 0x10_0000_0000);
    finish(bincode::serde::decode_from_slice(body, bincode_config()), body)
}

/// Maps a bincode result to [`decode_exact`]'s, refusing trailing bytes.
fn finish<T>(decoded: Result<(T, usize), bincode::error::DecodeError>, body: &[u8]) -> Result<(T, usize), String> {
    let (value, read) = decoded.map_err(|e| match e {
        bincode::error::DecodeError::LimitExceeded => {
            "a length prefix claims more bytes than the record holds".to_string()
        }
        e => e.to_string(),
    })?;
    if read != body.len() {
        return Err(format!("{} trailing bytes after the body", body.len() - read));
    }
    Ok((value, read))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{digest, Decision, EngineInfo, FinishReason, Penalties, Precision, Role, SampleId, Split, Stage};

    /// The version-5 form of `e`, through version 6.
    fn v5(e: &Event) -> Option<EventV5> {
        EventV6::downcast(e).and_then(|e| EventV5::downcast(&e))
    }

    /// The records of the committed version-1 fixture: one of every kind
    /// that a small run writes, chained from genesis.
    pub(crate) fn fixture_events() -> Vec<Event> {
        let s = |i| SampleId { iteration: 1, input_id: "email/17".into(), index: i };
        vec![
            Event::RunStarted {
                method: "reinforce".into(),
                config_toml: "[run]\nseed = 7\n".into(),
                config_digest: digest(b"[run]\nseed = 7\n"),
                code_version: "restpg 0.1.0".into(),
                seed: 7,
                dataset_digest: digest(b"data"),
                settings: None,
            },
            Event::RetrievalDone {
                input_id: "email/17".into(),
                task: "email".into(),
                retriever: "bm25".into(),
                k: 2,
                item_indices: vec![4, 1],
                scores: vec![3.5, 1.25],
            },
            Event::SampleGenerated {
                sample: s(0),
                seed: s(0).seed(7),
                prompt_digest: digest(b"prompt"),
                reasoning: Some("The user writes tersely.".into()),
                response: "Thanks, see you Monday.".into(),
                prompt_tokens: 120,
                output_tokens: 14,
                checkpoint: digest(b"sft"),
                temperature: 0.7,
                top_p: 0.95,
                finish: None,
                penalties: Penalties::default(),
                precision: Precision::F32,
                engine: EngineInfo::tch(),
            },
            Event::RewardAssigned {
                sample: s(0),
                reward: 1.0,
                reward_name: "judge".into(),
                judge_distribution: vec![0.0, 0.25, 0.75],
                engine: Some(EngineInfo::tch()),
                unseen_mass: None,
            },
            Event::FilterDecided { sample: s(0), decision: Decision::Kept, reward: 1.0, tau: 1.0, rank: 0 },
            Event::DatasetSealed { iteration: 1, count: 1, digest: digest(b"d1") },
            Event::CheckpointSaved {
                iteration: 1,
                step: 10,
                role: Role::MStep,
                hash: digest(b"weights"),
                path: "blobs/ab/cdef".into(),
                validation_score: Some(0.5),
            },
            Event::RunFinished { wall_ms: 1234 },
        ]
    }

    /// The fixture file: records as `[u32 LE length][record]`.
    pub(crate) fn fixture_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1_records.bin")
    }

    /// The fixture events sealed in schema `version` from `t0` (250 ms
    /// apart), as `[u32 LE length][record]` entries.
    fn fixture_bytes(version: u16, run_id: &str, t0: &str) -> Vec<u8> {
        seal_fixture(fixture_events(), version, run_id, t0)
    }

    /// `events` sealed in schema `version` from `t0` (250 ms apart), as
    /// `[u32 LE length][record]` entries.
    fn seal_fixture(events: Vec<Event>, version: u16, run_id: &str, t0: &str) -> Vec<u8> {
        let t0 = DateTime::parse_from_rfc3339(t0).unwrap().with_timezone(&Utc);
        let mut prev = GENESIS_HASH;
        let mut file = Vec::new();
        for (i, payload) in events.into_iter().enumerate() {
            let time = t0 + chrono::Duration::milliseconds(i as i64 * 250);
            let env = Envelope::seal_as(version, i as u64, time, run_id, payload, prev);
            prev = env.hash;
            let bytes = env.encode();
            file.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            file.extend_from_slice(&bytes);
        }
        file
    }

    /// Writes the version-1 fixture. Run once when it was introduced
    /// (`cargo test -p restpg-events -- --ignored write_v1_fixture`); it is
    /// committed and must never be regenerated by a later schema.
    #[test]
    #[ignore = "writes the committed fixture"]
    fn write_v1_fixture() {
        std::fs::write(fixture_path(), fixture_bytes(1, "fixture-run", "2025-01-02T03:04:05.123456789Z")).unwrap();
    }

    /// The version-2 fixture: the same events as the build before version 3
    /// wrote them (generated by that build, committed, never regenerated).
    pub(crate) fn fixture_v2_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2_records.bin")
    }

    #[test]
    fn the_legacy_payload_encodes_exactly_as_version_2_did() {
        // Given the records the version-2 build wrote, when this build seals
        // the same events in version 2 through `EventV2`, then the bytes agree:
        // the legacy type is that build's payload, field for field.
        let committed = std::fs::read(fixture_v2_path()).unwrap();
        assert_eq!(fixture_bytes(2, "fixture-run-v2", "2026-06-02T03:04:05.5Z"), committed);
    }

    /// The records of the committed version-3 fixture: one of every kind,
    /// every stage, checkpoint role and split the version-3 build wrote, in
    /// the order a small `rest-pg` run writes them.
    pub(crate) fn fixture_v3_events() -> Vec<Event> {
        let s = |i| SampleId { iteration: 1, input_id: "email/17".into(), index: i };
        let stage = |iteration, stage| Event::StageStarted { iteration, stage };
        let done = |iteration, stage| Event::StageFinished { iteration, stage, wall_ms: 40 };
        let checkpoint = |iteration, step, role: Role| Event::CheckpointSaved {
            iteration,
            step,
            role,
            hash: digest(role.as_str().as_bytes()),
            path: format!("blobs/{role}"),
            validation_score: None,
        };
        let evaluation = |iteration, split: Split| Event::EvaluationDone {
            iteration,
            split,
            system: "rest-pg".into(),
            scores: vec![("judge".into(), 0.5), ("rouge-l".into(), 0.25)],
            report_path: format!("eval/{split}-{iteration}.json"),
        };
        let generated = |i, reasoning: Option<&str>, finish| Event::SampleGenerated {
            sample: s(i),
            seed: s(i).seed(7),
            prompt_digest: digest(b"prompt"),
            reasoning: reasoning.map(str::to_owned),
            response: "Thanks, see you Monday.".into(),
            prompt_tokens: 120,
            output_tokens: 14,
            checkpoint: digest(b"sft"),
            temperature: 0.7,
            top_p: 0.95,
            finish: Some(finish),
            penalties: Penalties::default(),
            precision: Precision::F32,
            engine: EngineInfo::tch(),
        };
        let rewarded = |i, reward| Event::RewardAssigned {
            sample: s(i),
            reward,
            reward_name: "judge".into(),
            judge_distribution: vec![0.0, 0.25, 0.75],
            engine: Some(EngineInfo::tch()),
            unseen_mass: None,
        };
        vec![
            Event::RunStarted {
                method: "rest-pg".into(),
                config_toml: "method = \"rest-pg\"\nseed = 7\n".into(),
                config_digest: digest(b"method = \"rest-pg\"\nseed = 7\n"),
                code_version: "restpg 0.1.0".into(),
                seed: 7,
                dataset_digest: digest(b"data"),
                settings: Some(crate::RunSettings {
                    tau: 1.0,
                    max_kept_per_input: 10,
                    require_reasoning: true,
                    init: crate::InitMode::Continue,
                    separator: Some("### Response:".into()),
                    reward: "judge".into(),
                    drop_unfinished: false,
                }),
            },
            checkpoint(0, 0, Role::Base),
            stage(0, Stage::Retrieve),
            Event::RetrievalDone {
                input_id: "email/17".into(),
                task: "email-completion".into(),
                retriever: "bm25".into(),
                k: 2,
                item_indices: vec![4, 1],
                scores: vec![3.5, 1.25],
            },
            done(0, Stage::Retrieve),
            stage(0, Stage::Reasoning),
            Event::ReasoningGenerated {
                input_id: "email/17".into(),
                generator: "policy".into(),
                seed: 11,
                reasoning: "The user writes tersely.".into(),
            },
            done(0, Stage::Reasoning),
            stage(0, Stage::Sft),
            Event::TrainingProgress { iteration: 0, step: 1, loss: 2.5, learning_rate: 1e-5, tokens: 300 },
            checkpoint(0, 10, Role::Sft),
            done(0, Stage::Sft),
            stage(0, Stage::EvalValidation),
            evaluation(0, Split::Validation),
            done(0, Stage::EvalValidation),
            stage(1, Stage::EStep),
            generated(0, Some("The user writes tersely."), FinishReason::StopToken),
            generated(1, None, FinishReason::StopString),
            generated(2, Some("Short."), FinishReason::Length),
            done(1, Stage::EStep),
            stage(1, Stage::Judge),
            rewarded(0, 1.0),
            rewarded(1, 1.0),
            rewarded(2, 0.0),
            done(1, Stage::Judge),
            stage(1, Stage::Filter),
            Event::FilterDecided { sample: s(0), decision: Decision::Kept, reward: 1.0, tau: 1.0, rank: 0 },
            Event::FilterDecided { sample: s(1), decision: Decision::NoReasoning, reward: 1.0, tau: 1.0, rank: 1 },
            Event::FilterDecided { sample: s(2), decision: Decision::ZeroReward, reward: 0.0, tau: 1.0, rank: 2 },
            Event::DatasetSealed { iteration: 1, count: 1, digest: digest(b"d1") },
            done(1, Stage::Filter),
            stage(1, Stage::MStep),
            Event::TrainingProgress { iteration: 1, step: 1, loss: 1.5, learning_rate: 1e-5, tokens: 200 },
            checkpoint(1, 5, Role::MStep),
            done(1, Stage::MStep),
            stage(1, Stage::EvalValidation),
            evaluation(1, Split::Validation),
            done(1, Stage::EvalValidation),
            Event::IterationFinished { iteration: 1 },
            Event::MStepSkipped { iteration: 2, reason: "D_2 is empty".into() },
            stage(2, Stage::EvalTest),
            evaluation(2, Split::Test),
            done(2, Stage::EvalTest),
            Event::RunFailed { reason: "judge 2: batch t2/email/17/#0 failed".into() },
            Event::RunFinished { wall_ms: 1234 },
        ]
    }

    /// Where the version-3 fixture lies.
    pub(crate) fn fixture_v3_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v3_records.bin")
    }

    /// The version-3 fixture's run id and start time.
    const V3_RUN: (&str, &str) = ("fixture-run-v3", "2026-12-01T23:10:00.25Z");

    /// Writes the version-3 fixture. Run once by the version-3 build, before
    /// version 4 changed the payload (`cargo test -p restpg-events --
    /// --ignored write_v3_fixture`); it is committed and never regenerated.
    #[test]
    #[ignore = "writes the committed fixture"]
    fn write_v3_fixture() {
        std::fs::write(fixture_v3_path(), seal_fixture(fixture_v3_events(), 3, V3_RUN.0, V3_RUN.1)).unwrap();
    }

    #[test]
    fn the_legacy_payload_encodes_exactly_as_version_3_did() {
        // Given the records the version-3 build wrote, when this build seals
        // the same facts in version 3 through `EventV3`, then the bytes agree:
        // the legacy type is that build's payload, and each name's text is
        // the string that build wrote (and hashed into the event id).
        let committed = std::fs::read(fixture_v3_path()).unwrap();
        assert_eq!(seal_fixture(fixture_v3_events(), 3, V3_RUN.0, V3_RUN.1), committed);
    }

    /// The records of the committed version-4 fixture: the version-3
    /// fixture's facts (one of every kind, every stage, checkpoint role and
    /// split), as the version-4 build writes them.
    pub(crate) fn fixture_v4_events() -> Vec<Event> {
        fixture_v3_events()
    }

    /// Where the version-4 fixture lies.
    pub(crate) fn fixture_v4_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v4_records.bin")
    }

    /// The version-4 fixture's run id and start time.
    const V4_RUN: (&str, &str) = ("fixture-run-v4", "2026-12-02T03:10:00.75Z");

    /// Writes the version-4 fixture. Run once by the version-4 build, before
    /// version 5 changed the payload (`cargo test -p restpg-events --
    /// --ignored write_v4_fixture`); it is committed and never regenerated.
    #[test]
    #[ignore = "writes the committed fixture"]
    fn write_v4_fixture() {
        std::fs::write(fixture_v4_path(), seal_fixture(fixture_v4_events(), 4, V4_RUN.0, V4_RUN.1)).unwrap();
    }

    #[test]
    fn the_legacy_payload_encodes_exactly_as_version_4_did() {
        // Given the records the version-4 build wrote, when this build seals
        // the same facts in version 4, then the bytes agree: the version-4
        // payload this build reads is that build's, field for field.
        let committed = std::fs::read(fixture_v4_path()).unwrap();
        assert_eq!(seal_fixture(fixture_v4_events(), 4, V4_RUN.0, V4_RUN.1), committed);
    }

    /// The records of the committed version-5 fixture: the version-4
    /// fixture's facts, with what version 5 added — one sample drawn with
    /// every repetition guard on in bf16, one lexical reward (no judge
    /// distribution) and a reward check — as the version-5 build writes them.
    pub(crate) fn fixture_v5_events() -> Vec<Event> {
        let mut events = fixture_v4_events();
        for event in &mut events {
            match event {
                Event::SampleGenerated { sample, penalties, precision, .. } if sample.index == 1 => {
                    *penalties = Penalties {
                        repetition_penalty: 1.2,
                        frequency_penalty: 0.5,
                        presence_penalty: -0.25,
                        no_repeat_ngram_size: 3,
                        min_p: 0.05,
                    };
                    *precision = Precision::Bf16;
                }
                Event::RewardAssigned { sample, reward_name, judge_distribution, engine, .. } if sample.index == 2 => {
                    *reward_name = "rouge-l".into();
                    judge_distribution.clear();
                    *engine = None;
                }
                _ => {}
            }
        }
        let at = events.len() - 1;
        events.insert(
            at,
            Event::RewardChecked {
                reward_name: "judge".into(),
                per_task: 8,
                examples: 4,
                counts: [4, 4, 12],
                auc_own_other: Some(0.875),
                auc_own_degenerate: Some(1.0),
                auc_other_degenerate: None,
                means: [Some(0.75), Some(0.25), None],
            },
        );
        events
    }

    /// Where the version-5 fixture lies.
    pub(crate) fn fixture_v5_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v5_records.bin")
    }

    /// The version-5 fixture's run id and start time.
    const V5_RUN: (&str, &str) = ("fixture-run-v5", "2026-12-03T09:30:00.5Z");

    /// Writes the version-5 fixture. Run once by the version-5 build, before
    /// version 6 changed the payload (`cargo test -p restpg-events --
    /// --ignored write_v5_fixture`); it is committed and never regenerated.
    #[test]
    #[ignore = "writes the committed fixture"]
    fn write_v5_fixture() {
        std::fs::write(fixture_v5_path(), seal_fixture(fixture_v5_events(), 5, V5_RUN.0, V5_RUN.1)).unwrap();
    }

    #[test]
    fn the_legacy_payload_encodes_exactly_as_version_5_did() {
        // Given the records the version-5 build wrote, when this build seals
        // the same facts in version 5, then the bytes agree: the version-5
        // payload this build reads is that build's, field for field.
        let committed = std::fs::read(fixture_v5_path()).unwrap();
        assert_eq!(seal_fixture(fixture_v5_events(), 5, V5_RUN.0, V5_RUN.1), committed);
    }

    /// The records of the committed version-6 fixture: the version-5
    /// fixture's facts, with what version 6 added — one sample drawn by a
    /// server and its reward from a served judge that left some mass
    /// unseen — as the version-6 build writes them.
    pub(crate) fn fixture_v6_events() -> Vec<Event> {
        let mut events = fixture_v5_events();
        for event in &mut events {
            match event {
                Event::SampleGenerated { sample, engine, .. } if sample.index == 1 => *engine = server(),
                Event::RewardAssigned { sample, engine, unseen_mass, .. } if sample.index == 1 => {
                    (*engine, *unseen_mass) = (Some(server()), Some(0.015));
                }
                _ => {}
            }
        }
        events
    }

    /// Where the version-6 fixture lies.
    pub(crate) fn fixture_v6_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v6_records.bin")
    }

    /// The version-6 fixture's run id and start time.
    const V6_RUN: (&str, &str) = ("fixture-run-v6", "2026-12-08T03:50:00.125Z");

    /// Writes the version-6 fixture. Run once by the version-6 build, before
    /// version 7 changed the payload (`cargo test -p restpg-events --
    /// --ignored write_v6_fixture`); it is committed and never regenerated.
    #[test]
    #[ignore = "writes the committed fixture"]
    fn write_v6_fixture() {
        std::fs::write(fixture_v6_path(), seal_fixture(fixture_v6_events(), 6, V6_RUN.0, V6_RUN.1)).unwrap();
    }

    #[test]
    fn the_legacy_payload_encodes_exactly_as_version_6_did() {
        // Given the records the version-6 build wrote, when this build seals
        // the same facts in version 6, then the bytes agree: the version-6
        // payload this build reads is that build's, field for field.
        let committed = std::fs::read(fixture_v6_path()).unwrap();
        assert_eq!(seal_fixture(fixture_v6_events(), 6, V6_RUN.0, V6_RUN.1), committed);
    }

    /// A version-3 record of `payload` whose text `from` was replaced by `to`
    /// (same length), rehashed: a record an old build could have written.
    fn v3_record_with(payload: Event, from: &str, to: &str) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let env = Envelope::seal_as(3, 0, Utc::now(), "r", payload, GENESIS_HASH);
        let mut bytes = env.encode();
        bytes.truncate(bytes.len() - HASH);
        let at = bytes.windows(from.len()).position(|w| w == from.as_bytes()).expect("the text is in the record");
        bytes[at..at + from.len()].copy_from_slice(to.as_bytes());
        let h = digest(&bytes);
        bytes.extend(h);
        bytes
    }

    #[test]
    fn an_old_name_outside_the_vocabulary_fails_the_record_by_field() {
        // Given version-3 records naming a role, a stage and a split that no
        // build wrote, when they are decoded, then each fails naming the
        // record, the field and the accepted names (never a default).
        let role = Event::CheckpointSaved {
            iteration: 0,
            step: 0,
            role: Role::Base,
            hash: digest(b"w"),
            path: "blobs/w".into(),
            validation_score: None,
        };
        let err = Envelope::decode(&v3_record_with(role, "base", "best")).unwrap_err();
        assert!(matches!(err, RecordError::Upcast { version: 3, seq: 0, field: "role", .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "schema-version-3 record 0 (checkpoint-saved): field `role`: unknown checkpoint role \"best\" \
             (expected one of: base, sft, m-step)"
        );
        let stage = Event::StageFinished { iteration: 1, stage: Stage::Judge, wall_ms: 1 };
        let err = Envelope::decode(&v3_record_with(stage, "judge", "jury!")).unwrap_err();
        assert!(matches!(err, RecordError::Upcast { field: "stage", .. }), "{err}");
        assert!(err.to_string().contains("stage-finished"), "{err}");
        // An alias is not an old spelling: no build logged `val`.
        let eval = Event::EvaluationDone {
            iteration: 0,
            split: Split::Test,
            system: "s".into(),
            scores: vec![],
            report_path: "r".into(),
        };
        let err = Envelope::decode(&v3_record_with(eval, "test", "tset")).unwrap_err();
        assert!(matches!(err, RecordError::Upcast { field: "split", .. }), "{err}");
    }

    #[test]
    fn a_sealed_record_round_trips_and_keeps_its_hash() {
        for payload in fixture_events() {
            let env = Envelope::seal(3, Utc::now(), "r", payload, [7; 32]);
            let back = Envelope::decode(&env.encode()).unwrap();
            assert_eq!(back, env);
            assert_eq!(back.schema_version, SCHEMA_VERSION);
        }
    }

    #[test]
    fn a_sample_with_guards_and_bf16_round_trips_but_has_no_version_4_form() {
        // Given a sample drawn with every guard on, in bf16
        let mut payload = fixture_events().remove(2);
        let guards = Penalties {
            repetition_penalty: 1.2,
            frequency_penalty: 0.5,
            presence_penalty: -0.25,
            no_repeat_ngram_size: 3,
            min_p: 0.05,
        };
        if let Event::SampleGenerated { penalties, precision, .. } = &mut payload {
            (*penalties, *precision) = (guards, Precision::Bf16);
        }
        // When it is sealed and read back, then it keeps both
        let env = Envelope::seal(0, Utc::now(), "r", payload.clone(), GENESIS_HASH);
        assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
        // and version 4, which could not say either, has no form for it
        let v4 = |payload: &Event| v5(payload).and_then(|v5| EventV4::downcast(&v5));
        assert!(v5(&payload).is_some(), "version 5 says both");
        assert_eq!(v4(&payload), None);
        if let Event::SampleGenerated { precision, .. } = &mut payload {
            *precision = Precision::F32;
        }
        assert_eq!(v4(&payload), None, "guards alone have no version-4 form");
    }

    /// A server engine as a version-6 record names it.
    fn server() -> EngineInfo {
        EngineInfo {
            backend: crate::Backend::OpenAi,
            server_model: Some("qwen2.5-1.5b-instruct".into()),
            server_version: Some("vllm 0.8.5".into()),
            url: Some("http://10.0.0.7:8000".into()),
            prompt_format: Some(crate::PromptFormat::Tokens),
            deterministic: false,
        }
    }

    #[test]
    fn a_sample_and_a_reward_from_a_server_round_trip_but_have_no_version_5_form() {
        // Given a sample drawn by a server and its reward from a served judge
        // that left some mass unseen
        let mut sample = fixture_events().remove(2);
        let mut reward = fixture_events().remove(3);
        let id_before = (sample.event_id("r"), reward.event_id("r"));
        if let Event::SampleGenerated { engine, .. } = &mut sample {
            *engine = server();
        }
        if let Event::RewardAssigned { engine, unseen_mass, .. } = &mut reward {
            (*engine, *unseen_mass) = (Some(server()), Some(0.015));
        }
        for payload in [&sample, &reward] {
            // When each is sealed and read back, then it keeps its engine
            let env = Envelope::seal(0, Utc::now(), "r", payload.clone(), GENESIS_HASH);
            assert_eq!(env.schema_version, SCHEMA_VERSION);
            assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
            // and version 5, which knew only tch, has no form for it
            assert_eq!(v5(payload), None, "{}", payload.kind());
        }
        // and the engine is no part of which fact it is
        assert_eq!((sample.event_id("r"), reward.event_id("r")), id_before);
        // An unseen mass alone, or a judge reward with no engine, has no
        // version-5 form either: version 5 would read them back otherwise.
        if let Event::RewardAssigned { engine, .. } = &mut reward {
            *engine = Some(EngineInfo::tch());
        }
        assert_eq!(v5(&reward), None);
        if let Event::RewardAssigned { engine, unseen_mass, .. } = &mut reward {
            (*engine, *unseen_mass) = (None, None);
        }
        assert_eq!(v5(&reward), None);
    }

    #[test]
    fn a_version_5_record_reads_as_drawn_and_judged_by_tch() {
        // Given version-5 records of a sample, a judge reward and a lexical
        // reward (sealed in version 5 by this build, as the fixture is)
        let mut lexical = fixture_events().remove(3);
        if let Event::RewardAssigned { reward_name, judge_distribution, engine, .. } = &mut lexical {
            (*reward_name, *judge_distribution, *engine) = ("rouge-l".into(), vec![], None);
        }
        let payloads = [fixture_events().remove(2), fixture_events().remove(3), lexical];
        let engines: Vec<_> = payloads
            .iter()
            .map(|payload| {
                let env = Envelope::seal_as(5, 0, Utc::now(), "r", payload.clone(), GENESIS_HASH);
                // When each is decoded
                let back = Envelope::decode(&env.encode()).unwrap();
                assert_eq!((back.schema_version, &back), (5, &env));
                match back.payload {
                    Event::SampleGenerated { engine, .. } => (Some(engine), None),
                    Event::RewardAssigned { engine, unseen_mass, .. } => (engine, unseen_mass),
                    other => panic!("unexpected {}", other.kind()),
                }
            })
            .collect();
        // Then the sample and the judge reward name tch, the lexical reward
        // no engine, and none an unseen mass
        assert_eq!(engines, [(Some(EngineInfo::tch()), None), (Some(EngineInfo::tch()), None), (None, None)]);
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let env = Envelope::seal(0, Utc::now(), "r", fixture_events().remove(2), GENESIS_HASH);
        let bytes = env.encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(Envelope::decode(&b).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    /// A current-version record whose run id claims `len` bytes but holds none.
    fn record_with_run_id_length(len: u64) -> Vec<u8> {
        let mut b = SCHEMA_VERSION.to_le_bytes().to_vec();
        b.extend([0, 0, 0]); // seq 0, time (0 s, 0 ns)
        b.push(0xfd); // bincode varint: a u64 follows
        b.extend(len.to_le_bytes());
        let h = digest(&b);
        b.extend(h);
        b
    }

    #[test]
    fn a_length_prefix_beyond_the_record_is_refused_before_allocating() {
        // Before the limit, bincode reserved the claimed 1 TiB (and 2^62
        // bytes) for the string and the process aborted.
        for len in [1u64 << 40, 1 << 62, u64::MAX] {
            let err = Envelope::decode(&record_with_run_id_length(len)).unwrap_err();
            assert!(matches!(err, RecordError::Decode { version: SCHEMA_VERSION, .. }), "{err}");
            assert!(err.to_string().contains("claims more bytes than the record holds"), "{err}");
        }
        // The fuzzer's find (FUZZING.md): a version-1 time text claiming 16 MiB.
        let mut b = vec![1, 0, 0, 0xfc, 0, 0, 0, 1];
        b.extend([0; 8]);
        let h = digest(&b);
        b.extend(h);
        let err = Envelope::decode(&b).unwrap_err();
        assert!(matches!(err, RecordError::Decode { version: 1, .. }), "{err}");
        // A long but honest run id still decodes.
        let run_id = "r".repeat(100_000);
        let env = Envelope::seal(0, Utc::now(), &run_id, Event::RunFinished { wall_ms: 1 }, GENESIS_HASH);
        assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
    }

    #[test]
    fn an_unknown_version_is_refused_by_name() {
        let mut bytes = Envelope::seal(0, Utc::now(), "r", Event::RunFinished { wall_ms: 1 }, GENESIS_HASH).encode();
        bytes[..2].copy_from_slice(&99u16.to_le_bytes());
        let err = Envelope::decode(&bytes).unwrap_err();
        assert_eq!(err, RecordError::UnknownSchemaVersion { found: 99 });
        assert!(err.to_string().contains("unknown schema version 99"), "{err}");
        assert_eq!(Envelope::decode(&bytes[..10]).unwrap_err(), RecordError::TooShort { len: 10 });
    }
}
