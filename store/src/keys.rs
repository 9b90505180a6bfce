//! Key layout of the one sled tree that holds a log.
//!
//! A record and its index entries go into the tree in one atomic batch, so
//! an index can never point at a record that is not there, or miss one that
//! is. Everything is big-endian so that sled's byte order is numeric order.
//!
//! ```text
//! r seq:u64                                   -> record bytes
//! i event_id:[32]                             -> seq:u64
//! k kind:u8 seq:u64                           -> ()
//! s iteration:u32 len:u32 input_id index:u32 seq:u64 -> ()
//! ```
//! The input id carries its length so that one input's prefix never matches
//! another input whose id extends it.

use events::{Digest, EventKind, SampleId};

pub(crate) const RECORD: u8 = b'r';
const EVENT_ID: u8 = b'i';
const KIND: u8 = b'k';
const SAMPLE: u8 = b's';

pub(crate) fn record(seq: u64) -> [u8; 9] {
    let mut k = [RECORD; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number in a record key or at the end of an index key;
/// `None` for a key too short to end with one.
pub(crate) fn trailing_seq(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.len().checked_sub(8).and_then(|start| key[start..].try_into().ok())?;
    Some(u64::from_be_bytes(tail))
}

/// A sequence number stored as an index value; `None` when it is not 8
/// bytes.
pub(crate) fn seq_value(value: &[u8]) -> Option<u64> {
    value.try_into().ok().map(u64::from_be_bytes)
}

pub(crate) fn event_id(id: &Digest) -> [u8; 33] {
    let mut k = [EVENT_ID; 33];
    k[1..].copy_from_slice(id);
    k
}

pub(crate) fn kind_prefix(kind: EventKind) -> [u8; 2] {
    [KIND, kind.code()]
}

pub(crate) fn kind(kind: EventKind, seq: u64) -> [u8; 10] {
    let mut k = [0; 10];
    k[..2].copy_from_slice(&kind_prefix(kind));
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Prefix of every sample key of an iteration, optionally narrowed to one
/// input and then to one index.
pub(crate) fn sample_prefix(iteration: u32, input_id: Option<&str>, index: Option<u32>) -> Vec<u8> {
    let mut k = Vec::with_capacity(17 + input_id.map_or(0, str::len));
    k.push(SAMPLE);
    k.extend_from_slice(&iteration.to_be_bytes());
    if let Some(input) = input_id {
        k.extend_from_slice(&(input.len() as u32).to_be_bytes());
        k.extend_from_slice(input.as_bytes());
        if let Some(i) = index {
            k.extend_from_slice(&i.to_be_bytes());
        }
    }
    k
}

pub(crate) fn sample(s: &SampleId, seq: u64) -> Vec<u8> {
    let mut k = sample_prefix(s.iteration, Some(&s.input_id), Some(s.index));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}
