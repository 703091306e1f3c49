//! vLLM-compatible prefix-cache block hashing, bit for bit (`vllm.md` §1).
//!
//! A block hash is `H(serialize((parent, tuple(tokens), extra_keys)))`, chained from
//! `NONE_HASH` for the first block. `serialize` is pickle protocol 5 (`pickle.rs`) or
//! canonical CBOR (`cbor.rs`); `H` is SHA-256 or xxh3-128 ([`HashAlgo`]). The simulator's
//! default keys are the cheaper [`super::block_key`]; these exact hashes are for KV events
//! read by an indexer that hashes tokens itself, and for `kvsim hash`.
//!
//! Sources: vLLM `v1/core/kv_cache_utils.py` (`init_none_hash`, `hash_block_tokens`,
//! `generate_block_hash_extra_keys`, `get_request_block_hasher`) and `utils/hashing.py`.

mod algo;
mod cbor;
mod digest;
mod extra;
mod pickle;

#[cfg(test)]
mod tests;

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_128;

use crate::compat::VllmVersion;

pub use algo::HashAlgo;
pub use digest::BlockDigest;
pub use extra::{ExtraKey, ExtraKeys};

/// Seed of `NONE_HASH` in [0.33] for SHA-256 algorithms without `PYTHONHASHSEED`
/// (`kv_cache_utils.DEFAULT_NONE_HASH_SEED`).
pub const DEFAULT_NONE_HASH_SEED: &str = "vllm-none-hash";

/// Why a hasher or `NONE_HASH` could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The name is not one of vLLM's `--prefix-caching-hash-algo` values.
    #[error(
        "unknown hash algorithm \"{name}\" (valid: {valid}){hint}",
        valid = HashAlgo::NAMES.join(", "),
        hint = suggestion.map(|s| format!("; did you mean \"{s}\"?")).unwrap_or_default()
    )]
    UnknownAlgo {
        /// The name as given.
        name: String,
        /// The nearest valid name, when one is close.
        suggestion: Option<&'static str>,
    },
    /// The algorithm exists in vLLM, but not in this release.
    #[error(
        "hash algorithm {algo} does not exist in vLLM {version} (available: {available})",
        available = HashAlgo::available_in(*version).iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
    )]
    AlgoUnavailable {
        /// Requested algorithm.
        algo: HashAlgo,
        /// Release that lacks it.
        version: VllmVersion,
    },
    /// vLLM would seed `NONE_HASH` randomly per process here, so the caller must choose.
    #[error(
        "vLLM {version} with {algo} and no PYTHONHASHSEED derives NONE_HASH from per-process \
         randomness ({what}); pass a seed (for example one per pod drawn from the simulation RNG)",
        what = if *version == VllmVersion::V0_11 { "os.urandom(32)" } else { "a random hex seed" }
    )]
    NeedsSeed {
        /// Requested algorithm.
        algo: HashAlgo,
        /// Release whose seeding rule applies.
        version: VllmVersion,
    },
    /// A digest given as hex is not 32 or 64 hex digits.
    #[error("invalid block digest \"{value}\": expected 32 or 64 hex digits")]
    BadDigestHex {
        /// The text as given.
        value: String,
    },
    /// A supplied NONE_HASH has the wrong length for the algorithm.
    #[error("NONE_HASH of {len} bytes does not fit {algo}, which makes {want}-byte digests")]
    NoneHashLength {
        /// Algorithm of the hasher.
        algo: HashAlgo,
        /// Length supplied.
        len: usize,
        /// Length the algorithm produces.
        want: usize,
    },
}

/// The seed string `NONE_HASH` is derived from (`vllm.md` §1.4).
///
/// `python_hash_seed` is `PYTHONHASHSEED` (or, where vLLM would use randomness, a seed
/// the caller draws). [0.33]: the given seed, else `"vllm-none-hash"` for SHA-256
/// algorithms, else [`HashError::NeedsSeed`]. [0.11]: the given seed, else `NeedsSeed`
/// (vLLM takes `os.urandom(32)` itself; a caller seed gives an equally unshared value).
pub fn none_hash_seed(
    algo: HashAlgo,
    version: VllmVersion,
    python_hash_seed: Option<&str>,
) -> Result<&str, HashError> {
    algo.check_version(version)?;
    match (python_hash_seed, version) {
        (Some(seed), _) => Ok(seed),
        (None, VllmVersion::V0_33) if algo.is_sha256() => Ok(DEFAULT_NONE_HASH_SEED),
        (None, _) => Err(HashError::NeedsSeed { algo, version }),
    }
}

/// `NONE_HASH`, the parent of every first block: `H(serialize(seed))` with the seed from
/// [`none_hash_seed`]. The seed *string* is pickled or CBOR-encoded, then digested.
pub fn none_hash(
    algo: HashAlgo,
    version: VllmVersion,
    python_hash_seed: Option<&str>,
) -> Result<BlockDigest, HashError> {
    let seed = none_hash_seed(algo, version, python_hash_seed)?;
    let mut buf = Vec::with_capacity(seed.len() + 16);
    serialize_str(algo, seed, &mut buf);
    Ok(digest_bytes(algo, &buf))
}

/// Hashes blocks the way one vLLM process does: fixed algorithm, release and `NONE_HASH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VllmBlockHasher {
    algo: HashAlgo,
    version: VllmVersion,
    none_hash: BlockDigest,
}

impl VllmBlockHasher {
    /// A hasher whose `NONE_HASH` follows [`none_hash`].
    pub fn new(
        algo: HashAlgo,
        version: VllmVersion,
        python_hash_seed: Option<&str>,
    ) -> Result<Self, HashError> {
        let none_hash = none_hash(algo, version, python_hash_seed)?;
        Ok(Self {
            algo,
            version,
            none_hash,
        })
    }

    /// A hasher with an explicit `NONE_HASH`, e.g. random bytes standing in for [0.11]'s
    /// `os.urandom(32)`. Its length must match the algorithm's digest length.
    pub fn with_none_hash(
        algo: HashAlgo,
        version: VllmVersion,
        none_hash: BlockDigest,
    ) -> Result<Self, HashError> {
        algo.check_version(version)?;
        if none_hash.len() != algo.digest_len() {
            return Err(HashError::NoneHashLength {
                algo,
                len: none_hash.len(),
                want: algo.digest_len(),
            });
        }
        Ok(Self {
            algo,
            version,
            none_hash,
        })
    }

    /// The vLLM release whose rules apply.
    pub fn version(&self) -> VllmVersion {
        self.version
    }

    /// The root parent of every chain.
    pub fn none_hash(&self) -> BlockDigest {
        self.none_hash
    }

    /// Hash of one full block (`hash_block_tokens`); `parent` `None` means `NONE_HASH`.
    ///
    /// This is also the incremental step a pod takes when output tokens complete a block.
    pub fn hash_block(
        &self,
        parent: Option<&BlockDigest>,
        tokens: &[u32],
        extra: Option<&ExtraKeys>,
    ) -> BlockDigest {
        let mut buf = Vec::new();
        self.hash_block_with(&mut buf, parent, tokens, extra)
    }

    /// [`Self::hash_block`] serializing into `scratch`, so hot loops allocate nothing.
    pub fn hash_block_with(
        &self,
        scratch: &mut Vec<u8>,
        parent: Option<&BlockDigest>,
        tokens: &[u32],
        extra: Option<&ExtraKeys>,
    ) -> BlockDigest {
        self.write_preimage(scratch, parent, tokens, extra);
        digest_bytes(self.algo, scratch)
    }

    /// The exact bytes vLLM digests for this block (replacing `out`'s contents).
    pub fn write_preimage(
        &self,
        out: &mut Vec<u8>,
        parent: Option<&BlockDigest>,
        tokens: &[u32],
        extra: Option<&ExtraKeys>,
    ) {
        let parent = parent.unwrap_or(&self.none_hash).as_bytes();
        if self.algo.is_cbor() {
            cbor::write_block(out, parent, tokens, extra);
        } else {
            pickle::write_block(out, parent, tokens, extra);
        }
    }

    /// Hashes of every full `block_size` block of `tokens`; a trailing partial block is skipped.
    ///
    /// `cache_salt` enters block 0's extra keys in the release's form (see
    /// [`ExtraKeys::first_block`]) and so changes every hash of the chain. A `block_size`
    /// of 0 yields no blocks.
    pub fn hash_full_blocks(
        &self,
        tokens: &[u32],
        block_size: usize,
        cache_salt: Option<&str>,
    ) -> Vec<BlockDigest> {
        let mut hashes = Vec::new();
        self.extend_full_blocks(&mut hashes, tokens, block_size, cache_salt);
        hashes
    }

    /// Appends the hashes of the full blocks of `tokens` past the `hashes.len()` already
    /// known, as vLLM's `request_block_hasher` does whenever a request gains tokens.
    ///
    /// `tokens` is the request's whole sequence (prompt then output). A `block_size` of 0
    /// appends nothing.
    pub fn extend_full_blocks(
        &self,
        hashes: &mut Vec<BlockDigest>,
        tokens: &[u32],
        block_size: usize,
        cache_salt: Option<&str>,
    ) {
        if block_size == 0 {
            return;
        }
        let first_extra = ExtraKeys::first_block(self.version, cache_salt);
        let mut scratch = Vec::with_capacity(64 + 5 * block_size);
        let start_block = hashes.len();
        for (i, block) in tokens
            .chunks_exact(block_size)
            .enumerate()
            .skip(start_block)
        {
            let extra = if i == 0 { first_extra.as_ref() } else { None };
            let digest = self.hash_block_with(&mut scratch, hashes.last(), block, extra);
            hashes.push(digest);
        }
    }
}

fn serialize_str(algo: HashAlgo, s: &str, out: &mut Vec<u8>) {
    if algo.is_cbor() {
        cbor::write_str(out, s);
    } else {
        pickle::write_str(out, s);
    }
}

/// SHA-256 digest, or xxh3-128 as Python's `xxh3_128_digest` (big-endian 16 bytes), seed 0.
fn digest_bytes(algo: HashAlgo, data: &[u8]) -> BlockDigest {
    if algo.is_sha256() {
        BlockDigest::from_sha256(Sha256::digest(data).into())
    } else {
        BlockDigest::from_xxh3_128(xxh3_128(data))
    }
}
