//! Shared test fixtures: events of realistic size with content that follows
//! from their number, so a test can tell what must be where.
#![allow(dead_code)]

use std::path::Path;

use events::{digest, Event, SampleId};

/// The `n`-th sample of iteration 1: 32 samples per input, a response of
/// about 2 KB that depends on `n`.
pub fn sample_event(n: u64) -> Event {
    let sample = SampleId { iteration: 1, input_id: format!("email/{}", n / 32), index: (n % 32) as u32 };
    let line = format!("Sample {n}: thanks for the notes on the draft, I will send the figures tomorrow. ");
    let response = line.repeat(2000 / line.len() + 1);
    Event::SampleGenerated {
        seed: sample.seed(7),
        sample,
        prompt_digest: digest(format!("prompt {}", n / 32).as_bytes()),
        reasoning: Some("The user writes short, friendly emails.".into()),
        response,
        prompt_tokens: 900,
        output_tokens: 480,
        checkpoint: digest(b"sft"),
        temperature: 0.7,
        top_p: 0.95,
        finish: Some(events::FinishReason::StopToken),
        penalties: events::Penalties::default(),
        precision: events::Precision::F32,
        engine: events::EngineInfo::tch(),
    }
}

/// Rewrites the stored bytes of record `seq` in the (closed) log in
/// `log_dir`, going around the store as an attacker or a bad disk would.
pub fn tamper(log_dir: &Path, seq: u64, f: impl FnOnce(&mut Vec<u8>)) {
    let db = sled::open(log_dir).unwrap();
    let tree = db.open_tree("events").unwrap();
    let mut key = vec![b'r'];
    key.extend_from_slice(&seq.to_be_bytes());
    let mut bytes = tree.get(&key).unwrap().expect("record present").to_vec();
    f(&mut bytes);
    tree.insert(key, bytes).unwrap();
    db.flush().unwrap();
}

/// A random number from the standard library's hasher seeds.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}
