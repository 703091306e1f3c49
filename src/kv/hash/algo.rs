//! vLLM's `--prefix-caching-hash-algo` choices and which release offers which.

use std::fmt;
use std::str::FromStr;

use crate::compat::VllmVersion;

use super::HashError;

/// Serialization plus digest that vLLM applies to every block tuple (`vllm.md` §1.2).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HashAlgo {
    /// Pickle protocol 5, SHA-256 (32-byte digests). vLLM's default.
    #[default]
    Sha256,
    /// Canonical CBOR, SHA-256 (32-byte digests). What llm-d configures.
    Sha256Cbor,
    /// Pickle protocol 5, xxh3-128 (16-byte digests). [0.33] only.
    Xxhash,
    /// Canonical CBOR, xxh3-128 (16-byte digests). [0.33] only.
    XxhashCbor,
}

impl HashAlgo {
    /// vLLM's names, in the order of the enum.
    pub const NAMES: &'static [&'static str] = &["sha256", "sha256_cbor", "xxhash", "xxhash_cbor"];

    /// Every algorithm, in the order of [`HashAlgo::NAMES`].
    pub const ALL: [HashAlgo; 4] = [
        HashAlgo::Sha256,
        HashAlgo::Sha256Cbor,
        HashAlgo::Xxhash,
        HashAlgo::XxhashCbor,
    ];

    /// vLLM's name for this algorithm.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether the block tuple is serialized as canonical CBOR (else pickle).
    pub fn is_cbor(self) -> bool {
        matches!(self, HashAlgo::Sha256Cbor | HashAlgo::XxhashCbor)
    }

    /// Whether the digest is SHA-256 (else xxh3-128).
    pub fn is_sha256(self) -> bool {
        matches!(self, HashAlgo::Sha256 | HashAlgo::Sha256Cbor)
    }

    /// Digest length in bytes: 32 for SHA-256, 16 for xxh3-128.
    pub fn digest_len(self) -> usize {
        if self.is_sha256() {
            32
        } else {
            16
        }
    }

    /// Algorithms a vLLM release accepts; [0.11] had only the SHA-256 pair.
    pub fn available_in(version: VllmVersion) -> &'static [HashAlgo] {
        match version {
            VllmVersion::V0_11 => &Self::ALL[..2],
            VllmVersion::V0_33 => &Self::ALL,
        }
    }

    /// `Ok` if `version` offers this algorithm.
    pub fn check_version(self, version: VllmVersion) -> Result<(), HashError> {
        if Self::available_in(version).contains(&self) {
            Ok(())
        } else {
            Err(HashError::AlgoUnavailable {
                algo: self,
                version,
            })
        }
    }
}

impl FromStr for HashAlgo {
    type Err = HashError;

    /// Parses vLLM's names, ignoring surrounding whitespace and ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|algo| algo.name() == wanted)
            .ok_or_else(|| HashError::UnknownAlgo {
                name: s.to_string(),
                suggestion: nearest_name(&wanted),
            })
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The valid name most similar to `input`, if any is plausibly what was meant.
fn nearest_name(input: &str) -> Option<&'static str> {
    // Jaro-Winkler rewards shared prefixes, which is how these names differ.
    const MIN_SIMILARITY: f64 = 0.7;
    let (best, score) = HashAlgo::NAMES
        .iter()
        .map(|name| (*name, strsim::jaro_winkler(input, name)))
        .fold(
            ("", f64::MIN),
            |acc, cur| if cur.1 > acc.1 { cur } else { acc },
        );
    (score >= MIN_SIMILARITY).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for algo in HashAlgo::ALL {
            assert_eq!(algo.name().parse::<HashAlgo>().unwrap(), algo);
            assert_eq!(algo.to_string(), algo.name());
        }
        assert_eq!(
            " SHA256_CBOR ".parse::<HashAlgo>().unwrap(),
            HashAlgo::Sha256Cbor
        );
    }

    #[test]
    fn unknown_name_suggests_nearest() {
        let cases = [
            ("sha256-cbor", "sha256_cbor"),
            ("sha265", "sha256"),
            ("xxhash-cbor", "xxhash_cbor"),
            ("xxh3", "xxhash"),
            ("sha_256", "sha256"),
        ];
        for (input, want) in cases {
            match input.parse::<HashAlgo>() {
                Err(HashError::UnknownAlgo { name, suggestion }) => {
                    assert_eq!(name, input);
                    assert_eq!(suggestion, Some(want), "input {input}");
                }
                other => panic!("{input}: expected UnknownAlgo, got {other:?}"),
            }
        }
        let msg = "sha256-cbor".parse::<HashAlgo>().unwrap_err().to_string();
        assert!(msg.contains("did you mean \"sha256_cbor\"?"), "{msg}");
        assert!(
            msg.contains("sha256, sha256_cbor, xxhash, xxhash_cbor"),
            "{msg}"
        );
    }

    #[test]
    fn unrelated_name_gets_no_suggestion() {
        match "md5".parse::<HashAlgo>() {
            Err(HashError::UnknownAlgo { suggestion, .. }) => assert_eq!(suggestion, None),
            other => panic!("expected UnknownAlgo, got {other:?}"),
        }
        let msg = "md5".parse::<HashAlgo>().unwrap_err().to_string();
        assert!(!msg.contains("did you mean"), "{msg}");
    }

    #[test]
    fn v0_11_has_only_sha256_variants() {
        assert_eq!(
            HashAlgo::available_in(VllmVersion::V0_11),
            &[HashAlgo::Sha256, HashAlgo::Sha256Cbor]
        );
        assert_eq!(HashAlgo::available_in(VllmVersion::V0_33).len(), 4);
        assert!(HashAlgo::Sha256Cbor
            .check_version(VllmVersion::V0_11)
            .is_ok());
        let err = HashAlgo::Xxhash
            .check_version(VllmVersion::V0_11)
            .unwrap_err();
        assert_eq!(
            err,
            HashError::AlgoUnavailable {
                algo: HashAlgo::Xxhash,
                version: VllmVersion::V0_11
            }
        );
        assert!(
            err.to_string().contains("available: sha256, sha256_cbor"),
            "{err}"
        );
    }

    #[test]
    fn digest_lengths() {
        assert_eq!(HashAlgo::Sha256.digest_len(), 32);
        assert_eq!(HashAlgo::Sha256Cbor.digest_len(), 32);
        assert_eq!(HashAlgo::Xxhash.digest_len(), 16);
        assert_eq!(HashAlgo::XxhashCbor.digest_len(), 16);
        assert!(HashAlgo::XxhashCbor.is_cbor() && !HashAlgo::Xxhash.is_cbor());
    }
}
