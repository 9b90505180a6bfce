//! Sample identity, filter decisions and the canonical digest of a sealed
//! training set D_t.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::{serde_digest, Digest, KeyHasher};

/// One generated sample of one E-step: iteration `t`, the train input it
/// answers, and its index among the `m` samples drawn for that input. Together
/// with the run id this names the sample for good: its seed, its event ids and
/// its place in D_t all derive from it.
///
/// Written `t1/<input_id>/#3`; [`FromStr`] reads that form back (an input id
/// may itself contain `/`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SampleId {
    /// E-step iteration, from 1.
    pub iteration: u32,
    /// The train input's id, unique across tasks within a run.
    pub input_id: String,
    /// Index among the samples drawn for this input, from 0.
    pub index: u32,
}

impl SampleId {
    /// The sampling seed of this sample in a run seeded with `run_seed`: the
    /// first 8 bytes of a blake3 over the seed and the id. The same run seed
    /// gives the same seed to the same sample in every run and on resume.
    pub fn seed(&self, run_seed: u64) -> u64 {
        let d = KeyHasher::new("restpg.sample-seed.v1")
            .u64(run_seed)
            .u64(u64::from(self.iteration))
            .str(&self.input_id)
            .u64(u64::from(self.index))
            .finish();
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    }
}

impl fmt::Display for SampleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}/{}/#{}", self.iteration, self.input_id, self.index)
    }
}

/// Text that is not of the form `t<iteration>/<input_id>/#<index>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a sample id: {got:?} (expected t<iteration>/<input_id>/#<index>, e.g. t1/email-17/#3)")]
pub struct SampleIdParseError {
    /// The rejected text.
    pub got: String,
}

impl FromStr for SampleId {
    type Err = SampleIdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SampleIdParseError { got: s.to_owned() };
        let rest = s.strip_prefix('t').ok_or_else(err)?;
        let (iteration, rest) = rest.split_once('/').ok_or_else(err)?;
        let (input_id, index) = rest.rsplit_once("/#").ok_or_else(err)?;
        if input_id.is_empty() {
            return Err(err());
        }
        Ok(SampleId {
            iteration: iteration.parse().map_err(|_| err())?,
            input_id: input_id.to_owned(),
            index: index.parse().map_err(|_| err())?,
        })
    }
}

/// Why the filter kept or dropped a sample.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// Reward at or above τ and within the per-input cap: the sample is in D_t.
    Kept,
    /// Reward below τ.
    BelowThreshold,
    /// Reward at or above τ, but the input already had its cap of kept
    /// samples with higher rank.
    OverCap,
    /// A reasoning method's sample whose output has no separator line, so no
    /// reasoning: training on it would teach the policy to skip reasoning
    /// (dropped unless the run allows such samples).
    NoReasoning,
    /// Reward 0: a zero-weight term of −R·log p carries no gradient, so the
    /// sample is no training data whatever τ is.
    ZeroReward,
    /// The sample ran to `max_new_tokens` without stopping (finish
    /// [`FinishReason::Length`]): its text is cut mid-way, and the M-step,
    /// which ends every target with the end-of-turn token, would teach the
    /// policy that a cut text is a finished one, and, under a recall-heavy
    /// reward such as METEOR, to write to the limit. Dropped unless the run
    /// allows such samples. Added in schema version 7 as the last variant,
    /// so older records decode unchanged.
    Unfinished,
}

impl Decision {
    /// Every decision, kept first, then the reasons to drop in the order
    /// the filter tests them after the cap's (below τ, over the cap) —
    /// the order tables and legends list them in.
    pub const ALL: [Decision; 6] = [
        Decision::Kept,
        Decision::BelowThreshold,
        Decision::OverCap,
        Decision::NoReasoning,
        Decision::ZeroReward,
        Decision::Unfinished,
    ];

    /// Short name: `kept`, `below-threshold`, `over-cap`, `no-reasoning`,
    /// `zero-reward`, `unfinished`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Kept => "kept",
            Decision::BelowThreshold => "below-threshold",
            Decision::OverCap => "over-cap",
            Decision::NoReasoning => "no-reasoning",
            Decision::ZeroReward => "zero-reward",
            Decision::Unfinished => "unfinished",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a generated sequence ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FinishReason {
    /// The model generated a stop token (its end-of-turn or end-of-sequence
    /// id, or a configured stop id).
    StopToken,
    /// The text reached a configured stop string and was cut before it (in
    /// records written before the `Separator` reason existed, also a
    /// repeated separator line).
    StopString,
    /// `max_new_tokens` were generated without stopping.
    Length,
    /// A second separator line began (the model opened another response
    /// block) and the text was cut at its start: a format failure, not a
    /// clean stop. Added after schema version 4 as the last variant, so
    /// older records decode unchanged.
    Separator,
}

impl FinishReason {
    /// Short name: `stop-token`, `stop-string`, `length`, `separator`.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::StopToken => "stop-token",
            FinishReason::StopString => "stop-string",
            FinishReason::Length => "length",
            FinishReason::Separator => "separator",
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of a sealed training set D_t, as far as its digest is
/// concerned: which sample, with which reward (the M-step's loss weight), and
/// the digest of the response text it trains on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetEntry {
    /// The kept sample.
    pub sample: SampleId,
    /// Its reward, the weight of its loss term.
    pub reward: f32,
    /// blake3 of the text the M-step trains on for this sample.
    #[serde(with = "serde_digest")]
    pub response_digest: Digest,
}

/// The canonical digest of a training set: entries sorted by sample id
/// (iteration, input id, index) whatever order they come in, then hashed
/// field by field with their count. Rewards enter as exact `f32` bits.
///
/// The pipeline writes it into `DatasetSealed`; replay rebuilds the set from
/// the log and must reproduce it.
pub fn dataset_digest(entries: &[DatasetEntry]) -> Digest {
    let mut sorted: Vec<&DatasetEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.sample.cmp(&b.sample));
    let mut h = KeyHasher::new("restpg.dataset.v1");
    h.u64(sorted.len() as u64);
    for e in sorted {
        h.u64(u64::from(e.sample.iteration))
            .str(&e.sample.input_id)
            .u64(u64::from(e.sample.index))
            .u64(u64::from(e.reward.to_bits()))
            .bytes(&e.response_digest);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::digest;

    fn id(t: u32, input: &str, i: u32) -> SampleId {
        SampleId { iteration: t, input_id: input.into(), index: i }
    }

    #[test]
    fn sample_id_text_round_trips_even_with_slashes_in_the_input_id() {
        for s in [id(1, "email-17", 3), id(12, "review/a/#b", 0)] {
            let text = s.to_string();
            assert_eq!(text.parse::<SampleId>().unwrap(), s, "{text}");
        }
        assert_eq!(id(1, "x", 3).to_string(), "t1/x/#3");
        for bad in ["", "1/x/#3", "t1/x/3", "t/x/#3", "t1//#3", "tx/y/#1"] {
            assert!(bad.parse::<SampleId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn seeds_depend_on_every_part_of_the_id_and_the_run_seed() {
        let a = id(1, "x", 0);
        assert_eq!(a.seed(7), a.seed(7));
        assert_ne!(a.seed(7), a.seed(8));
        assert_ne!(a.seed(7), id(2, "x", 0).seed(7));
        assert_ne!(a.seed(7), id(1, "y", 0).seed(7));
        assert_ne!(a.seed(7), id(1, "x", 1).seed(7));
    }

    #[test]
    fn dataset_digest_ignores_order_but_not_content() {
        let e = |input: &str, i: u32, r: f32| DatasetEntry {
            sample: id(1, input, i),
            reward: r,
            response_digest: digest(format!("{input}{i}").as_bytes()),
        };
        let a = vec![e("a", 0, 1.0), e("a", 1, 0.9), e("b", 0, 1.0)];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(dataset_digest(&a), dataset_digest(&b));
        let mut c = a.clone();
        c[1].reward = 0.8;
        assert_ne!(dataset_digest(&a), dataset_digest(&c));
        assert_ne!(dataset_digest(&a), dataset_digest(&a[..2]));
        assert_ne!(dataset_digest(&[]), dataset_digest(&a[..1]));
    }
}
