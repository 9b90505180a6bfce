//! Rebuilding D_t from the folded log and checking it against its seal and
//! against the filter's own rules.

use std::collections::BTreeMap;
use std::fmt;

use events::filter::{pre_cap_decision, FilterRule};
use events::{dataset_digest, digest_hex, DatasetEntry, Decision, Digest, SampleId};
use serde::Serialize;

use crate::state::{Anomaly, IterationState, RunState, SampleRecord};

/// Where the per-input cap used by the checks came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub enum CapSource {
    /// `reward.max_kept_per_input` in the run's configuration.
    Config(u32),
    /// Not configured: the number kept for inputs that had over-cap samples.
    Inferred(u32),
    /// Neither: no input reached a cap, and the configuration has none.
    Unknown,
}

impl CapSource {
    /// The cap, when known.
    pub fn cap(self) -> Option<u32> {
        match self {
            CapSource::Config(c) | CapSource::Inferred(c) => Some(c),
            CapSource::Unknown => None,
        }
    }
}

impl fmt::Display for CapSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapSource::Config(c) => write!(f, "{c} (from the configuration)"),
            CapSource::Inferred(c) => write!(f, "{c} (inferred from over-cap decisions)"),
            CapSource::Unknown => f.write_str("unknown (no configuration key, no over-cap decision)"),
        }
    }
}

/// A D_t that verified: what was rebuilt and what it was checked against.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifiedIteration {
    /// Iteration t.
    pub iteration: u32,
    /// Number of kept samples.
    pub count: u64,
    /// The digest, equal to the sealed one.
    pub digest: Digest,
    /// Sequence number of the seal.
    pub seal_seq: u64,
    /// Samples with a filter decision.
    pub decided: u64,
    /// Inputs with at least one kept sample.
    pub inputs_kept: u64,
    /// The cap checked against.
    pub cap: CapSource,
    /// The threshold τ of the decisions.
    pub tau: Option<f32>,
}

/// One way an iteration's records fail to add up. Each names the records at
/// fault by sequence number.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Violation {
    /// The log has no seal for this iteration.
    NotSealed {
        /// Iteration t.
        iteration: u32,
    },
    /// The rebuilt D_t does not hash to the sealed digest.
    DigestMismatch {
        /// Iteration t.
        iteration: u32,
        /// The seal's record.
        seal_seq: u64,
        /// The sealed digest.
        expected: Digest,
        /// The digest rebuilt from the log.
        actual: Digest,
        /// The sealed count.
        expected_count: u64,
        /// The rebuilt count.
        actual_count: u64,
    },
    /// The digest agrees but the count the seal states does not.
    CountMismatch {
        /// The seal's record.
        seal_seq: u64,
        /// The sealed count.
        expected: u64,
        /// The rebuilt count.
        actual: u64,
    },
    /// The reward in a filter decision is not the reward that was assigned.
    RewardDisagrees {
        /// The sample.
        sample: SampleId,
        /// The `FilterDecided` record.
        filter_seq: u64,
        /// The reward it used.
        filter_reward: f32,
        /// The `RewardAssigned` record.
        reward_seq: u64,
        /// The reward assigned.
        reward: f32,
    },
    /// A kept sample whose reward is below τ.
    KeptBelowTau {
        /// The sample.
        sample: SampleId,
        /// The `FilterDecided` record.
        seq: u64,
        /// Its reward.
        reward: f32,
        /// τ.
        tau: f32,
    },
    /// A decision that contradicts its own reward and τ: below threshold
    /// with R ≥ τ, or over the cap with R < τ.
    ReasonContradicts {
        /// The sample.
        sample: SampleId,
        /// The `FilterDecided` record.
        seq: u64,
        /// The decision.
        decision: Decision,
        /// Its reward.
        reward: f32,
        /// τ.
        tau: f32,
    },
    /// Decisions of one iteration used different thresholds, or one other
    /// than the configured τ.
    TauDiffers {
        /// The sample.
        sample: SampleId,
        /// The `FilterDecided` record.
        seq: u64,
        /// Its τ.
        tau: f32,
        /// The τ of the configuration or of the first decision.
        expected: f32,
    },
    /// An input with more kept samples than the cap.
    OverCap {
        /// The input.
        input_id: String,
        /// How many were kept.
        kept: u32,
        /// The cap.
        cap: u32,
        /// The `FilterDecided` record of the first kept sample past the cap.
        seq: u64,
    },
    /// A sample dropped as over the cap although its input kept fewer than
    /// the cap, or ranked above a kept sample of its input.
    WronglyOverCap {
        /// The sample.
        sample: SampleId,
        /// The `FilterDecided` record.
        seq: u64,
        /// Samples kept for its input.
        kept: u32,
        /// Its rank as logged (from 0; messages show it from 1).
        rank: u32,
    },
    /// Ranks of one input's samples are not distinct, or a higher rank has a
    /// higher reward than a lower one.
    RankOrder {
        /// The sample whose rank is out of place.
        sample: SampleId,
        /// Its `FilterDecided` record.
        seq: u64,
        /// Its rank as logged (from 0; messages show it from 1).
        rank: u32,
        /// What is wrong (ranks in it from 1).
        detail: String,
    },
    /// A generated sample without a filter decision in a sealed iteration.
    Undecided {
        /// The sample.
        sample: SampleId,
        /// Its `SampleGenerated` record.
        seq: u64,
    },
    /// A filter decision for a sample without a reward.
    Unrewarded {
        /// The sample.
        sample: SampleId,
        /// The `FilterDecided` record.
        seq: u64,
    },
    /// A decision or reward for a sample that was never generated.
    NotGenerated {
        /// The sample.
        sample: SampleId,
        /// The first record about it.
        seq: u64,
    },
    /// A sample whose seed is not the one its id and the run seed give.
    SeedMismatch {
        /// The sample.
        sample: SampleId,
        /// Its `SampleGenerated` record.
        seq: u64,
        /// The logged seed.
        logged: u64,
        /// [`SampleId::seed`] of the run seed.
        derived: u64,
    },
    /// A record about this iteration's samples written after its seal.
    AfterSeal {
        /// The sample.
        sample: SampleId,
        /// The late record.
        seq: u64,
        /// The seal.
        seal_seq: u64,
    },
    /// A record that repeats a fact already logged.
    Duplicate(Anomaly),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::NotSealed { iteration } => write!(f, "iteration {iteration} has no DatasetSealed record"),
            Violation::DigestMismatch { iteration, seal_seq, expected, actual, expected_count, actual_count } => write!(
                f,
                "D_{iteration} does not match its seal (seq {seal_seq}): sealed digest {} over {expected_count} samples, \
                 rebuilt digest {} over {actual_count} samples",
                digest_hex(expected),
                digest_hex(actual)
            ),
            Violation::CountMismatch { seal_seq, expected, actual } => {
                write!(f, "seal at seq {seal_seq} states {expected} samples, the log keeps {actual}")
            }
            Violation::RewardDisagrees { sample, filter_seq, filter_reward, reward_seq, reward } => write!(
                f,
                "{sample}: FilterDecided at seq {filter_seq} used reward {filter_reward}, \
                 but RewardAssigned at seq {reward_seq} gave {reward}"
            ),
            Violation::KeptBelowTau { sample, seq, reward, tau } => {
                write!(f, "{sample}: kept at seq {seq} with reward {reward} < τ {tau}")
            }
            Violation::ReasonContradicts { sample, seq, decision, reward, tau } => {
                write!(f, "{sample}: decision {decision} at seq {seq} contradicts the filter rule (reward {reward}, τ {tau})")
            }
            Violation::TauDiffers { sample, seq, tau, expected } => {
                write!(f, "{sample}: decided at seq {seq} with τ {tau}, expected τ {expected}")
            }
            Violation::OverCap { input_id, kept, cap, seq } => {
                write!(f, "input {input_id}: {kept} samples kept, over the cap of {cap} (first past it at seq {seq})")
            }
            Violation::WronglyOverCap { sample, seq, kept, rank } => write!(
                f,
                "{sample}: dropped as over the cap at seq {seq} with rank {}, but its input kept {kept} \
                 (fewer than the cap, or a kept sample ranks below it)",
                rank + 1
            ),
            Violation::RankOrder { sample, seq, rank, detail } => {
                write!(f, "{sample}: rank {} at seq {seq} is out of order: {detail}", rank + 1)
            }
            Violation::Undecided { sample, seq } => {
                write!(f, "{sample}: generated at seq {seq} but never decided by the filter")
            }
            Violation::Unrewarded { sample, seq } => write!(f, "{sample}: decided at seq {seq} without a reward"),
            Violation::NotGenerated { sample, seq } => {
                write!(f, "{sample}: has records (first at seq {seq}) but no SampleGenerated")
            }
            Violation::SeedMismatch { sample, seq, logged, derived } => {
                write!(f, "{sample}: generated at seq {seq} with seed {logged}, but its id gives seed {derived}")
            }
            Violation::AfterSeal { sample, seq, seal_seq } => {
                write!(f, "{sample}: record at seq {seq} comes after the seal at seq {seal_seq}")
            }
            Violation::Duplicate(Anomaly::Duplicate { kind, subject, first_seq, seq, .. }) => {
                write!(f, "{subject}: {kind} at seq {seq} repeats the record at seq {first_seq}")
            }
        }
    }
}

impl Violation {
    /// The sequence numbers this violation names (for tests and tools that
    /// point at records).
    pub fn seqs(&self) -> Vec<u64> {
        match self {
            Violation::NotSealed { .. } => vec![],
            Violation::DigestMismatch { seal_seq, .. } | Violation::CountMismatch { seal_seq, .. } => vec![*seal_seq],
            Violation::RewardDisagrees { filter_seq, reward_seq, .. } => vec![*reward_seq, *filter_seq],
            Violation::AfterSeal { seq, seal_seq, .. } => vec![*seq, *seal_seq],
            Violation::Duplicate(Anomaly::Duplicate { first_seq, seq, .. }) => vec![*first_seq, *seq],
            Violation::KeptBelowTau { seq, .. }
            | Violation::ReasonContradicts { seq, .. }
            | Violation::TauDiffers { seq, .. }
            | Violation::OverCap { seq, .. }
            | Violation::WronglyOverCap { seq, .. }
            | Violation::RankOrder { seq, .. }
            | Violation::Undecided { seq, .. }
            | Violation::Unrewarded { seq, .. }
            | Violation::NotGenerated { seq, .. }
            | Violation::SeedMismatch { seq, .. } => vec![*seq],
        }
    }
}

/// An iteration that does not verify, with every problem found.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct VerifyError {
    /// Iteration t.
    pub iteration: u32,
    /// What is wrong, digest first, then in sample order.
    pub violations: Vec<Violation>,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 20;
        let n = self.violations.len();
        write!(f, "iteration {} does not verify ({n} problem{}):", self.iteration, if n == 1 { "" } else { "s" })?;
        for v in self.violations.iter().take(SHOWN) {
            write!(f, "\n  - {v}")?;
        }
        if n > SHOWN {
            write!(f, "\n  … and {} more", n - SHOWN)?;
        }
        Ok(())
    }
}

/// Why D_t cannot be rebuilt at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    /// The log has no samples and no seal for this iteration (or the fold
    /// was scoped to another one).
    #[error("the log has no iteration {iteration} (iterations present: {present})")]
    NoSuchIteration {
        /// The iteration asked for.
        iteration: u32,
        /// Those present, comma-separated.
        present: String,
    },
    /// A kept sample has no `SampleGenerated` record, so its text digest is
    /// unknown.
    #[error("{sample}: kept by FilterDecided at seq {seq}, but never generated: D_t cannot be rebuilt")]
    KeptNotGenerated {
        /// The sample.
        sample: SampleId,
        /// Its `FilterDecided` record.
        seq: u64,
    },
}

impl RunState {
    /// The iteration's records, or an error listing the ones present.
    ///
    /// # Errors
    /// [`RebuildError::NoSuchIteration`].
    pub fn iteration(&self, t: u32) -> Result<&IterationState, RebuildError> {
        self.iterations.get(&t).ok_or_else(|| RebuildError::NoSuchIteration {
            iteration: t,
            present: {
                let present: Vec<String> = self.iterations_present().map(|t| t.to_string()).collect();
                if present.is_empty() {
                    "none".to_owned()
                } else {
                    present.join(", ")
                }
            },
        })
    }

    /// The kept samples of iteration `t` in canonical order, with their
    /// loss weights (the reward the filter used).
    ///
    /// # Errors
    /// As [`RunState::rebuild_dataset`].
    pub fn kept(&self, t: u32) -> Result<Vec<&SampleRecord>, RebuildError> {
        let it = self.iteration(t)?;
        Ok(it.samples.values().filter(|s| s.filter.as_ref().is_some_and(|f| f.decision == Decision::Kept)).collect())
    }

    /// D_t rebuilt from the log alone: every sample the filter kept, with the
    /// reward it used and the digest of its response, in canonical order,
    /// and [`dataset_digest`] of them.
    ///
    /// # Errors
    /// [`RebuildError`]: no such iteration, or a kept sample never generated.
    pub fn rebuild_dataset(&self, t: u32) -> Result<(Vec<DatasetEntry>, Digest), RebuildError> {
        let mut entries = Vec::new();
        for s in self.kept(t)? {
            let f = s.filter.as_ref().expect("kept() returns decided samples");
            let g = s
                .generated
                .as_ref()
                .ok_or_else(|| RebuildError::KeptNotGenerated { sample: s.id.clone(), seq: f.seq })?;
            entries.push(DatasetEntry { sample: s.id.clone(), reward: f.reward, response_digest: g.response_digest });
        }
        let digest = dataset_digest(&entries);
        Ok((entries, digest))
    }

    /// The cap the checks of iteration `t` use (see [`CapSource`]).
    pub fn cap(&self, t: u32) -> CapSource {
        if let Some(cap) = self.run.as_ref().and_then(|r| r.cap) {
            return CapSource::Config(cap);
        }
        let Ok(it) = self.iteration(t) else { return CapSource::Unknown };
        let kept = kept_per_input(it);
        it.samples
            .values()
            .filter(|s| s.filter.as_ref().is_some_and(|f| f.decision == Decision::OverCap))
            .filter_map(|s| kept.get(s.id.input_id.as_str()).copied())
            .min()
            .map_or(CapSource::Unknown, CapSource::Inferred)
    }

    /// Rebuilds D_t and checks it: its digest and count against the seal,
    /// and the filter's rules against its own records (every kept sample has
    /// R ≥ τ, no input has more than the cap kept, every decision used the
    /// reward that was assigned and is consistent with its reason and rank,
    /// every sample was generated with the seed its id gives, nothing about
    /// the iteration's samples came after the seal, no fact is logged twice).
    ///
    /// # Errors
    /// [`VerifyError`] with every violation found; a missing iteration or a
    /// kept sample without a generation is a violation too.
    pub fn verify_iteration(&self, t: u32) -> Result<VerifiedIteration, VerifyError> {
        let fail = |violations| VerifyError { iteration: t, violations };
        let it = match self.iteration(t) {
            Ok(it) => it,
            Err(_) => return Err(fail(vec![Violation::NotSealed { iteration: t }])),
        };
        let mut violations = Vec::new();
        let seal = it.seal.as_ref();
        let mut digest = [0; 32];
        let mut count = 0u64;
        match (self.rebuild_dataset(t), seal) {
            (Ok((entries, d)), Some(seal)) => {
                digest = d;
                count = entries.len() as u64;
                if d != seal.digest {
                    violations.push(Violation::DigestMismatch {
                        iteration: t,
                        seal_seq: seal.seq,
                        expected: seal.digest,
                        actual: d,
                        expected_count: seal.count,
                        actual_count: count,
                    });
                } else if count != seal.count {
                    violations.push(Violation::CountMismatch {
                        seal_seq: seal.seq,
                        expected: seal.count,
                        actual: count,
                    });
                }
            }
            (_, None) => violations.push(Violation::NotSealed { iteration: t }),
            (Err(_), Some(_)) => {} // the kept sample without a generation is named below
        }
        violations.extend(self.anomalies.iter().filter(|a| a.iteration() == t).cloned().map(Violation::Duplicate));
        let tau = self.check_samples(it, &mut violations);
        let cap = self.cap(t);
        check_cap_and_ranks(it, cap, &mut violations);
        if !violations.is_empty() {
            return Err(fail(violations));
        }
        let seal = seal.expect("a missing seal is a violation");
        Ok(VerifiedIteration {
            iteration: t,
            count,
            digest,
            seal_seq: seal.seq,
            decided: it.samples.values().filter(|s| s.filter.is_some()).count() as u64,
            inputs_kept: kept_per_input(it).values().filter(|&&k| k > 0).count() as u64,
            cap,
            tau,
        })
    }

    /// Per-sample checks; returns the τ the decisions used.
    fn check_samples(&self, it: &IterationState, violations: &mut Vec<Violation>) -> Option<f32> {
        let run_seed = self.run.as_ref().map(|r| r.seed);
        let mut tau_expected = self.run.as_ref().and_then(|r| r.tau);
        let sealed = it.seal.is_some();
        for s in it.samples.values() {
            let id = &s.id;
            match &s.generated {
                Some(g) => {
                    if let Some(seed) = run_seed {
                        let derived = id.seed(seed);
                        if derived != g.seed {
                            violations.push(Violation::SeedMismatch {
                                sample: id.clone(),
                                seq: g.seq,
                                logged: g.seed,
                                derived,
                            });
                        }
                    }
                    if sealed && s.filter.is_none() {
                        violations.push(Violation::Undecided { sample: id.clone(), seq: g.seq });
                    }
                }
                None => {
                    let first = [s.rewards.iter().map(|r| r.seq).min(), s.filter.as_ref().map(|f| f.seq)]
                        .into_iter()
                        .flatten()
                        .min()
                        .unwrap_or(0);
                    violations.push(Violation::NotGenerated { sample: id.clone(), seq: first });
                }
            }
            if let (Some(seal), Some(last)) = (&it.seal, s.last_seq()) {
                if last > seal.seq {
                    violations.push(Violation::AfterSeal { sample: id.clone(), seq: last, seal_seq: seal.seq });
                }
            }
            let Some(f) = &s.filter else { continue };
            match s.reward() {
                None => violations.push(Violation::Unrewarded { sample: id.clone(), seq: f.seq }),
                Some(r) if r.reward.to_bits() != f.reward.to_bits() => violations.push(Violation::RewardDisagrees {
                    sample: id.clone(),
                    filter_seq: f.seq,
                    filter_reward: f.reward,
                    reward_seq: r.seq,
                    reward: r.reward,
                }),
                Some(_) => {}
            }
            match tau_expected {
                None => tau_expected = Some(f.tau),
                Some(expected) if expected.to_bits() != f.tau.to_bits() => {
                    violations.push(Violation::TauDiffers { sample: id.clone(), seq: f.seq, tau: f.tau, expected });
                }
                Some(_) => {}
            }
            // Logs of schema 3 on record the run's settings and use the
            // shared rule (no reasoning, unfinished when the settings drop such
            // samples (schema 7 on), zero reward, R < τ, then the cap);
            // older logs knew only R < τ.
            let settings = self.run.as_ref().and_then(|r| r.settings.as_ref());
            let expected = match settings {
                Some(st) => {
                    let rule = FilterRule {
                        tau: f.tau,
                        cap: st.max_kept_per_input,
                        require_reasoning: st.require_reasoning,
                        drop_unfinished: st.drop_unfinished,
                    };
                    let has_reasoning = s.generated.as_ref().is_some_and(|g| g.has_reasoning);
                    let finish = s.generated.as_ref().and_then(|g| g.finish);
                    pre_cap_decision(&rule, f.reward, has_reasoning, finish)
                }
                None => (f.reward < f.tau).then_some(Decision::BelowThreshold),
            };
            match (f.decision, expected) {
                (Decision::Kept, Some(Decision::BelowThreshold)) => violations.push(Violation::KeptBelowTau {
                    sample: id.clone(),
                    seq: f.seq,
                    reward: f.reward,
                    tau: f.tau,
                }),
                (Decision::Kept | Decision::OverCap, None) => {}
                (d, Some(e)) if d == e => {}
                _ => violations.push(Violation::ReasonContradicts {
                    sample: id.clone(),
                    seq: f.seq,
                    decision: f.decision,
                    reward: f.reward,
                    tau: f.tau,
                }),
            }
        }
        tau_expected
    }
}

/// Kept samples per input.
fn kept_per_input(it: &IterationState) -> BTreeMap<&str, u32> {
    let mut kept = BTreeMap::new();
    for s in it.samples.values() {
        let n = kept.entry(s.id.input_id.as_str()).or_insert(0);
        if s.filter.as_ref().is_some_and(|f| f.decision == Decision::Kept) {
            *n += 1;
        }
    }
    kept
}

/// Per-input checks: the cap, over-cap decisions, and rank order.
fn check_cap_and_ranks(it: &IterationState, cap: CapSource, violations: &mut Vec<Violation>) {
    let mut by_input: BTreeMap<&str, Vec<&SampleRecord>> = BTreeMap::new();
    for s in it.samples.values().filter(|s| s.filter.is_some()) {
        by_input.entry(s.id.input_id.as_str()).or_default().push(s);
    }
    for (input, mut samples) in by_input {
        let f = |s: &SampleRecord| s.filter.expect("filtered to decided samples");
        samples.sort_by_key(|s| (f(s).rank, s.id.index));
        let kept: Vec<_> = samples.iter().filter(|s| f(s).decision == Decision::Kept).collect();
        if let Some(c) = cap.cap() {
            if kept.len() > c as usize {
                let seq = f(kept[c as usize]).seq;
                violations.push(Violation::OverCap {
                    input_id: input.to_owned(),
                    kept: kept.len() as u32,
                    cap: c,
                    seq,
                });
            }
        }
        let worst_kept_rank = kept.iter().map(|s| f(s).rank).max();
        for s in &samples {
            let fs = f(s);
            if fs.decision != Decision::OverCap {
                continue;
            }
            let too_few = cap.cap().is_some_and(|c| (kept.len() as u32) < c);
            let outranked = worst_kept_rank.is_some_and(|w| fs.rank < w);
            if too_few || outranked {
                violations.push(Violation::WronglyOverCap {
                    sample: s.id.clone(),
                    seq: fs.seq,
                    kept: kept.len() as u32,
                    rank: fs.rank,
                });
            }
        }
        for pair in samples.windows(2) {
            let (a, b) = (f(pair[0]), f(pair[1]));
            if a.rank == b.rank {
                violations.push(Violation::RankOrder {
                    sample: pair[1].id.clone(),
                    seq: b.seq,
                    rank: b.rank,
                    detail: format!("{} has the same rank", pair[0].id),
                });
            } else if b.reward > a.reward {
                violations.push(Violation::RankOrder {
                    sample: pair[1].id.clone(),
                    seq: b.seq,
                    rank: b.rank,
                    detail: format!(
                        "reward {} is higher than {}'s {} at rank {}",
                        b.reward,
                        pair[0].id,
                        a.reward,
                        a.rank + 1
                    ),
                });
            }
        }
    }
}
