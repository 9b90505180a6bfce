//! The pure rules the run shares with replay: the seed of a training job,
//! the response digest of a D_t entry, and the id of a reasoning sample.

use events::{Digest, SampleId};

/// The seed of a training job: derived from the run seed and the iteration
/// (REST-PG fixes one seed per run; each stage gets its own stream).
pub fn train_seed(run_seed: u64, iteration: u32) -> u64 {
    let mut bytes = b"restpg.train-seed.v1\0".to_vec();
    bytes.extend_from_slice(&run_seed.to_le_bytes());
    bytes.extend_from_slice(&iteration.to_le_bytes());
    let d = events::digest(&bytes);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The `response_digest` of a D_t entry: blake3 of the logged response
/// text, so replay can recompute it from `SampleGenerated` alone.
pub fn response_digest(response: &str) -> Digest {
    events::digest(response.as_bytes())
}

/// The reasoning sample id of a train input (iteration 0, index 0): its seed
/// is `SampleId::seed(run_seed)` like every other sample's.
pub fn reasoning_sample(input_id: &str) -> SampleId {
    SampleId { iteration: 0, input_id: input_id.to_owned(), index: 0 }
}
