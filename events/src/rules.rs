//! The pure rules the run and replay must agree on, written once: the
//! seed of a training job, the digest a D_t entry records for its
//! response, the digest a sample records for its prompt, and the id of an
//! input's reasoning sample. The coordinator
//! calls them when it trains and seals; replay calls them when it rebuilds
//! and checks, so the two cannot drift apart. (The filter rule is
//! [`crate::filter::decide`].)

use crate::digest::Digest;
use crate::sample::SampleId;

/// The seed of a training job: derived from the run seed and the iteration
/// (REST-PG fixes one seed per run; each stage gets its own stream).
pub fn train_seed(run_seed: u64, iteration: u32) -> u64 {
    let mut bytes = b"restpg.train-seed.v1\0".to_vec();
    bytes.extend_from_slice(&run_seed.to_le_bytes());
    bytes.extend_from_slice(&iteration.to_le_bytes());
    let d = crate::digest(&bytes);
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The `response_digest` of a D_t entry: blake3 of the logged response
/// text, so replay can recompute it from `SampleGenerated` alone.
pub fn response_digest(response: &str) -> Digest {
    crate::digest(response.as_bytes())
}

/// The `prompt_digest` of a `SampleGenerated`: blake3 of the exact prompt
/// text, so a rebuilt prompt (export, re-sampling) can be checked against it.
pub fn prompt_digest(prompt: &str) -> Digest {
    crate::digest(prompt.as_bytes())
}

/// The reasoning sample id of a train input (iteration 0, index 0): its seed
/// is `SampleId::seed(run_seed)` like every other sample's.
pub fn reasoning_sample(input_id: &str) -> SampleId {
    SampleId { iteration: 0, input_id: input_id.to_owned(), index: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_are_stable() {
        // Pinned values: a change here changes every logged run's seeds or seals.
        let d = crate::digest(b"restpg.train-seed.v1\0\x07\0\0\0\0\0\0\0\x02\0\0\0");
        assert_eq!(train_seed(7, 2), u64::from_le_bytes(d[..8].try_into().unwrap()));
        assert_ne!(train_seed(7, 2), train_seed(7, 1));
        assert_eq!(response_digest("Hi."), crate::digest(b"Hi."));
        assert_eq!(prompt_digest("Write."), crate::digest(b"Write."));
        assert_eq!(reasoning_sample("email/3").to_string(), "t0/email/3/#0");
    }
}
