//! Content digests: 32-byte blake3 hashes, written as lowercase hex for people
//! and as raw bytes on disk.

/// A blake3 digest. Used for event ids, the hash chain, prompts, checkpoints,
/// configurations and sealed data sets.
pub type Digest = [u8; 32];

/// The digest of `bytes` (plain blake3).
pub fn digest(bytes: &[u8]) -> Digest {
    *blake3::hash(bytes).as_bytes()
}

/// Lowercase hex of a digest (64 characters).
pub fn digest_hex(d: &Digest) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a digest: expected 64 hex digits, got {got:?}")]
pub struct DigestParseError {
    /// The rejected text (cut to 80 characters).
    pub got: String,
}

/// Parses 64 hex digits (either case) into a digest.
///
/// # Errors
/// [`DigestParseError`] for any other length or a non-hex character.
pub fn parse_digest_hex(s: &str) -> Result<Digest, DigestParseError> {
    let err = || DigestParseError { got: s.chars().take(80).collect() };
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(err());
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0]).ok_or_else(err)?;
        let lo = nibble(pair[1]).ok_or_else(err)?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

/// Serde adapter for [`Digest`] fields: hex text in human-readable formats
/// (JSON export), 32 raw bytes in bincode.
pub(crate) mod serde_digest {
    use super::{digest_hex, parse_digest_hex, Digest};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&digest_hex(d))
        } else {
            serde::Serialize::serialize(d, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            parse_digest_hex(&s).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }
}

/// Length-prefixed field writer for derived hashes (event ids, data set
/// digests, seeds): every field carries its length, so `("ab", "c")` and
/// `("a", "bc")` never hash alike.
pub(crate) struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    /// A hasher for one purpose; `domain` keeps ids of different purposes
    /// apart even when their fields coincide.
    pub fn new(domain: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(domain.as_bytes());
        h.update(&[0]);
        Self(h)
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.update(&v.to_le_bytes());
        self
    }
    pub fn finish(&self) -> Digest {
        *self.0.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let d = digest(b"restpg");
        let h = digest_hex(&d);
        assert_eq!(h.len(), 64);
        assert_eq!(parse_digest_hex(&h).unwrap(), d);
        assert_eq!(parse_digest_hex(&h.to_uppercase()).unwrap(), d);
        assert!(parse_digest_hex(&h[..63]).is_err());
        assert!(parse_digest_hex(&format!("{}zz", &h[..62])).is_err());
    }

    #[test]
    fn key_hasher_separates_field_boundaries() {
        let a = KeyHasher::new("t").str("ab").str("c").finish();
        let b = KeyHasher::new("t").str("a").str("bc").finish();
        assert_ne!(a, b);
    }
}
