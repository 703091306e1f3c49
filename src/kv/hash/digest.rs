//! A block hash as vLLM stores it (`BlockHash = bytes`), plus its KV-event form.

use std::fmt;

use super::HashError;

/// Largest digest vLLM produces (SHA-256).
const MAX_DIGEST_LEN: usize = 32;

/// Full digest of one block: 32 bytes (SHA-256) or 16 bytes (xxh3-128).
///
/// A fixed array plus a length keeps the type `Copy` and allocation-free.
/// Bytes past `len` are always zero, so the derived `Eq`/`Ord`/`Hash` only
/// ever compare real digest bytes (and the length).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockDigest {
    bytes: [u8; MAX_DIGEST_LEN],
    len: u8,
}

impl BlockDigest {
    /// Wraps a digest of 16 or 32 bytes; `None` for any other length.
    pub fn from_slice(digest: &[u8]) -> Option<Self> {
        if digest.len() != 16 && digest.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        bytes[..digest.len()].copy_from_slice(digest);
        Some(Self {
            bytes,
            len: digest.len() as u8,
        })
    }

    /// A SHA-256 digest.
    pub(super) fn from_sha256(digest: [u8; 32]) -> Self {
        Self {
            bytes: digest,
            len: 32,
        }
    }

    /// An xxh3-128 digest in Python's `xxh3_128_digest` byte order (big-endian).
    pub(super) fn from_xxh3_128(value: u128) -> Self {
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        bytes[..16].copy_from_slice(&value.to_be_bytes());
        Self { bytes, len: 16 }
    }

    /// Parses 32 or 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Result<Self, HashError> {
        let bad = || HashError::BadDigestHex {
            value: hex.to_string(),
        };
        let digits = hex.as_bytes();
        if digits.len() % 2 != 0 || digits.len() > 2 * MAX_DIGEST_LEN {
            return Err(bad());
        }
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(bad)?;
            let lo = hex_value(pair[1]).ok_or_else(bad)?;
            bytes[i] = hi << 4 | lo;
        }
        Self::from_slice(&bytes[..digits.len() / 2]).ok_or_else(bad)
    }

    /// The digest bytes (16 or 32).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Digest length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a digest has 16 or 32 bytes. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lowercase hex of the digest bytes.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(2 * self.len());
        for b in self.as_bytes() {
            out.push(DIGITS[usize::from(b >> 4)] as char);
            out.push(DIGITS[usize::from(b & 0xf)] as char);
        }
        out
    }

    /// The u64 vLLM publishes in KV events (`maybe_convert_block_hash`):
    /// `int.from_bytes(digest, "big") & (2**64 - 1)`, i.e. the last 8 bytes read big-endian.
    pub fn event_hash(&self) -> u64 {
        let end = self.len();
        let mut last = [0u8; 8];
        last.copy_from_slice(&self.bytes[end - 8..end]);
        u64::from_be_bytes(last)
    }
}

impl fmt::Debug for BlockDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockDigest({})", self.to_hex())
    }
}

impl fmt::Display for BlockDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_hash_is_last_eight_bytes_big_endian() {
        // Spec §1.7: sha256_cbor block 0 of tokens 0..16.
        let d = BlockDigest::from_hex(
            "dc918a88b139e5afe60b88eda27508d4aee16c10fdc354791efea06206ac0749",
        )
        .unwrap();
        assert_eq!(d.event_hash(), 2233398808101521225);
        assert_eq!(d.event_hash(), 0x1efe_a062_06ac_0749);
        let short =
            BlockDigest::from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(short.event_hash(), 0x0102_0304_0506_0708);
        assert_eq!(short.len(), 16);
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let hex = "fe8fa5dda3210d0ca2031e37cbe3b001186773cd1c710beb2d45fcb51d434798";
        let d = BlockDigest::from_hex(hex).unwrap();
        assert_eq!(d.to_hex(), hex);
        assert_eq!(BlockDigest::from_hex(&hex.to_uppercase()).unwrap(), d);
        assert_eq!(d.as_bytes().len(), 32);
        for bad in ["", "abc", "zz", &hex[..62], &format!("{hex}00")] {
            assert!(BlockDigest::from_hex(bad).is_err(), "{bad:?}");
        }
        assert!(BlockDigest::from_slice(&[0u8; 20]).is_none());
    }

    #[test]
    fn lengths_distinguish_equal_prefixes() {
        let a = BlockDigest::from_slice(&[7u8; 16]).unwrap();
        let mut long = [0u8; 32];
        long[..16].copy_from_slice(&[7u8; 16]);
        let b = BlockDigest::from_slice(&long).unwrap();
        assert_ne!(a, b);
    }
}
