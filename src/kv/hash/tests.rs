//! Conformance of block hashing with vLLM's own outputs.
//!
//! Sources of expected values: `tests/data/conformance/vllm/hash_vectors.json` and the
//! `a_shared_prefix` scheduler runs (computed by vLLM 0.33.0 / 0.11.0), `vllm.md` §1.7,
//! and, for salted blocks, CPython 3.11 `pickle.dumps(..., protocol=5)` + `hashlib.sha256`
//! of the tuples vLLM builds (no vLLM run with a cache salt is recorded).

use std::path::PathBuf;

use serde_json::Value;

use super::*;

fn conformance(name: &str) -> Value {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/data/conformance/vllm",
        name,
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(hex: &str) -> BlockDigest {
    BlockDigest::from_hex(hex).unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| u32::try_from(t.as_u64().unwrap()).unwrap())
        .collect()
}

#[test]
fn hash_vectors_json_bit_for_bit() {
    let doc = conformance("hash_vectors.json");
    let block_size = usize::try_from(doc["block_size"].as_u64().unwrap()).unwrap();
    let all_tokens = u32s(&doc["token_ids"]);
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    for vector in vectors {
        let algo: HashAlgo = vector["hash_fn"].as_str().unwrap().parse().unwrap();
        let version: VllmVersion = vector["vllm_version"].as_str().unwrap().parse().unwrap();
        assert_eq!(vector["pythonhashseed"], "default");
        let ctx = format!("{algo} {version}");

        // NONE_HASH: seed, serialized seed, digest.
        let seed = none_hash_seed(algo, version, None).unwrap();
        assert_eq!(seed, vector["none_hash_seed"].as_str().unwrap(), "{ctx}");
        let mut buf = Vec::new();
        serialize_str(algo, seed, &mut buf);
        assert_eq!(
            hex(&buf),
            vector["none_hash_preimage_hex"].as_str().unwrap(),
            "{ctx}"
        );
        let hasher = VllmBlockHasher::new(algo, version, None).unwrap();
        assert_eq!(
            hasher.none_hash().to_hex(),
            vector["none_hash_hex"].as_str().unwrap(),
            "{ctx}"
        );

        // Each block: preimage, digest, event hash, parent event hash.
        let blocks = vector["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), all_tokens.len() / block_size);
        let mut parent: Option<BlockDigest> = None;
        for block in blocks {
            let idx = block["index"].as_u64().unwrap();
            let tokens = u32s(&block["token_ids"]);
            hasher.write_preimage(&mut buf, parent.as_ref(), &tokens, None);
            assert_eq!(
                hex(&buf),
                block["preimage_hex"].as_str().unwrap(),
                "{ctx} block {idx} preimage"
            );
            let d = hasher.hash_block(parent.as_ref(), &tokens, None);
            assert_eq!(
                d.to_hex(),
                block["digest_hex"].as_str().unwrap(),
                "{ctx} block {idx} digest"
            );
            assert_eq!(
                d.event_hash(),
                block["event_u64"].as_u64().unwrap(),
                "{ctx} block {idx} event"
            );
            assert_eq!(
                parent.map(|p| p.event_hash()),
                block["parent_event_u64"].as_u64(),
                "{ctx} block {idx} parent"
            );
            parent = Some(d);
        }

        // The one-shot API agrees with the chain.
        let chain = hasher.hash_full_blocks(&all_tokens, block_size, None);
        let want: Vec<&str> = blocks
            .iter()
            .map(|b| b["digest_hex"].as_str().unwrap())
            .collect();
        let got: Vec<String> = chain.iter().map(BlockDigest::to_hex).collect();
        assert_eq!(got, want, "{ctx}");
    }
}

#[test]
fn spec_1_7_test_vector() {
    let tokens: Vec<u32> = (0..32).collect();
    let cbor = VllmBlockHasher::new(HashAlgo::Sha256Cbor, VllmVersion::V0_33, None).unwrap();
    let blocks = cbor.hash_full_blocks(&tokens, 16, None);
    assert_eq!(blocks.len(), 2);
    assert!(blocks[0].to_hex().starts_with("dc918a88"));
    assert!(blocks[0].to_hex().ends_with("06ac0749"));
    let events: Vec<u64> = blocks.iter().map(BlockDigest::event_hash).collect();
    assert_eq!(events, [2233398808101521225, 17911472383915781900]);
    let pickle = VllmBlockHasher::new(HashAlgo::Sha256, VllmVersion::V0_33, None).unwrap();
    assert_eq!(
        pickle.hash_full_blocks(&tokens, 16, None)[0],
        digest("fe8fa5dda3210d0ca2031e37cbe3b001186773cd1c710beb2d45fcb51d434798")
    );
}

/// The hashes vLLM published in the first `BlockStored` event of request A.
fn recorded_run(out_file: &str) -> (String, Vec<u64>) {
    let out = conformance(out_file);
    let none_hash = out["config"]["none_hash_hex"].as_str().unwrap().to_string();
    let stored = out["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["kv_events"].as_array().unwrap())
        .find(|e| e["type"] == "BlockStored")
        .unwrap();
    let hashes = stored["block_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_u64().unwrap())
        .collect();
    (none_hash, hashes)
}

#[test]
fn scheduler_runs_publish_our_event_hashes_in_both_versions() {
    let workload = conformance("a_shared_prefix.json");
    let prompt = u32s(&workload["requests"][0]["prompt_token_ids"]);
    for (file, version, seed) in [
        ("a_shared_prefix.out.json", VllmVersion::V0_33, None),
        (
            "a_shared_prefix.v0110.out.json",
            VllmVersion::V0_11,
            Some("42"),
        ),
    ] {
        let (none_hash_hex, published) = recorded_run(file);
        let hasher = VllmBlockHasher::new(HashAlgo::Sha256, version, seed).unwrap();
        assert_eq!(hasher.none_hash().to_hex(), none_hash_hex, "{file}");
        let ours: Vec<u64> = hasher
            .hash_full_blocks(&prompt, 16, None)
            .iter()
            .map(BlockDigest::event_hash)
            .collect();
        assert_eq!(ours, published, "{file}");
    }
}

#[test]
fn v0_11_none_hash_hashes_the_seed_string() {
    // H(pickle("42")), as recorded in the v0110 runs; H(cbor("42")) for sha256_cbor.
    let pickled = none_hash(HashAlgo::Sha256, VllmVersion::V0_11, Some("42")).unwrap();
    assert_eq!(
        pickled.to_hex(),
        "c0bc02c9fc92a4944335649961b9e55cc41b194bece4801e8c6ef0f0f3f5884a"
    );
    let cbor = none_hash(HashAlgo::Sha256Cbor, VllmVersion::V0_11, Some("42")).unwrap();
    assert_eq!(
        cbor.to_hex(),
        "9fa6eb003f14425eb9c8e6baacfbcaab26257357b829c7bfa74ffcc4f31c1780"
    );
    // PYTHONHASHSEED wins over the [0.33] default too.
    assert_eq!(
        none_hash(HashAlgo::Sha256, VllmVersion::V0_33, Some("42")).unwrap(),
        pickled
    );
}

#[test]
fn unseeded_random_cases_need_a_seed() {
    for algo in [HashAlgo::Xxhash, HashAlgo::XxhashCbor] {
        assert_eq!(
            VllmBlockHasher::new(algo, VllmVersion::V0_33, None).unwrap_err(),
            HashError::NeedsSeed {
                algo,
                version: VllmVersion::V0_33
            }
        );
        let seeded = VllmBlockHasher::new(algo, VllmVersion::V0_33, Some("pod-3")).unwrap();
        assert_eq!(seeded.none_hash().len(), 16);
        assert_eq!(seeded.hash_block(None, &[1, 2, 3], None).len(), 16);
        assert_eq!(
            VllmBlockHasher::new(algo, VllmVersion::V0_11, Some("42")).unwrap_err(),
            HashError::AlgoUnavailable {
                algo,
                version: VllmVersion::V0_11
            }
        );
    }
    for algo in [HashAlgo::Sha256, HashAlgo::Sha256Cbor] {
        let err = none_hash(algo, VllmVersion::V0_11, None).unwrap_err();
        assert!(matches!(err, HashError::NeedsSeed { .. }));
        assert!(err.to_string().contains("os.urandom"), "{err}");
    }
}

#[test]
fn xxhash_digest_is_python_byte_order() {
    // XXH3_128("") = 0x99aa06d3014798d86001c324468d497f; Python's digest() is big-endian.
    assert_eq!(
        digest_bytes(HashAlgo::Xxhash, b"").to_hex(),
        "99aa06d3014798d86001c324468d497f"
    );
    assert_eq!(
        digest_bytes(HashAlgo::Xxhash, b"").event_hash(),
        0x6001c324468d497f
    );
}

#[test]
fn salted_prompts_match_cpython_in_both_forms() {
    let tokens: Vec<u32> = (0..32).collect();
    let cases = [
        (
            VllmVersion::V0_33,
            None,
            "80059565000000000000004320066b1e8987e027138e98701c46128929378935f9b6cd1549105ae6b4f0d71198\
             94284b004b014b024b034b044b054b064b074b084b094b0a4b0b4b0c4b0d4b0e4b0f7494\
             8c0a63616368655f73616c74948c0874656e616e742d61948694859487942e",
            "255b152c89e763273cf1498dce0dfd4efdf44000fe683cd2af1845b5b8426a35",
            "0b121889fe54bbf6ac27a6b0308093ef6888870e46ccb622615af235d422e992",
        ),
        (
            VllmVersion::V0_11,
            Some("42"),
            "80059556000000000000004320c0bc02c9fc92a4944335649961b9e55cc41b194bece4801e8c6ef0f0f3f5884a\
             94284b004b014b024b034b044b054b064b074b084b094b0a4b0b4b0c4b0d4b0e4b0f7494\
             8c0874656e616e742d6194859487942e",
            "b128ef5d9ae6c0207420e9096841fefa7b717df050eb8cc3a07e3de5f430051d",
            "a3dc4d9e5c8db733c5a0ad8b49189f711390ad1711720efa4503b1c01867470e",
        ),
    ];
    for (version, seed, pre0, b0, b1) in cases {
        let hasher = VllmBlockHasher::new(HashAlgo::Sha256, version, seed).unwrap();
        let extra = ExtraKeys::first_block(version, Some("tenant-a"));
        let mut buf = Vec::new();
        hasher.write_preimage(&mut buf, None, &tokens[..16], extra.as_ref());
        assert_eq!(hex(&buf), pre0, "{version}");
        let chain = hasher.hash_full_blocks(&tokens, 16, Some("tenant-a"));
        assert_eq!(chain, [digest(b0), digest(b1)], "{version}");
    }
}

#[test]
fn salt_changes_every_downstream_hash() {
    let tokens: Vec<u32> = (1000..1000 + 16 * 6).collect();
    for algo in HashAlgo::ALL {
        let hasher = VllmBlockHasher::new(algo, VllmVersion::V0_33, Some("7")).unwrap();
        let plain = hasher.hash_full_blocks(&tokens, 16, None);
        let salted = hasher.hash_full_blocks(&tokens, 16, Some("tenant-a"));
        let other = hasher.hash_full_blocks(&tokens, 16, Some("tenant-b"));
        assert_eq!(plain.len(), 6);
        for i in 0..6 {
            assert_ne!(plain[i], salted[i], "{algo} block {i}");
            assert_ne!(salted[i], other[i], "{algo} block {i}");
        }
        // Only block 0 carries the salt: block 1 chains from the salted block 0 with no extra.
        assert_eq!(
            salted[1],
            hasher.hash_block(Some(&salted[0]), &tokens[16..32], None)
        );
        // An empty salt is no salt, as in vLLM.
        assert_eq!(hasher.hash_full_blocks(&tokens, 16, Some("")), plain);
    }
}

#[test]
fn v0_11_and_v0_33_salt_forms_differ() {
    let tokens: Vec<u32> = (0..48).collect();
    for algo in [HashAlgo::Sha256, HashAlgo::Sha256Cbor] {
        // Same seed, so the same NONE_HASH: only the salt's form differs.
        let old = VllmBlockHasher::new(algo, VllmVersion::V0_11, Some("42")).unwrap();
        let new = VllmBlockHasher::new(algo, VllmVersion::V0_33, Some("42")).unwrap();
        assert_eq!(old.none_hash(), new.none_hash());
        assert_eq!(
            old.hash_full_blocks(&tokens, 16, None),
            new.hash_full_blocks(&tokens, 16, None)
        );
        let old_salted = old.hash_full_blocks(&tokens, 16, Some("s"));
        let new_salted = new.hash_full_blocks(&tokens, 16, Some("s"));
        for i in 0..3 {
            assert_ne!(old_salted[i], new_salted[i], "{algo} block {i}");
        }
    }
}

#[test]
fn incremental_extension_equals_one_shot() {
    let tokens: Vec<u32> = (0..100).map(|i| i * 7919 % 50_000).collect();
    let hasher = VllmBlockHasher::new(HashAlgo::Sha256Cbor, VllmVersion::V0_33, None).unwrap();
    let one_shot = hasher.hash_full_blocks(&tokens, 16, Some("s"));
    assert_eq!(one_shot.len(), 6, "the 4-token tail is not hashed");
    let mut grown = Vec::new();
    for end in 0..=tokens.len() {
        hasher.extend_full_blocks(&mut grown, &tokens[..end], 16, Some("s"));
        assert_eq!(grown.len(), end / 16);
    }
    assert_eq!(grown, one_shot);
    assert!(hasher.hash_full_blocks(&tokens, 0, None).is_empty());
}

#[test]
fn explicit_none_hash_must_fit_the_algorithm() {
    let random = BlockDigest::from_slice(&[5u8; 32]).unwrap();
    let hasher =
        VllmBlockHasher::with_none_hash(HashAlgo::Sha256, VllmVersion::V0_11, random).unwrap();
    assert_eq!(hasher.none_hash(), random);
    assert_eq!(
        VllmBlockHasher::with_none_hash(HashAlgo::Xxhash, VllmVersion::V0_33, random).unwrap_err(),
        HashError::NoneHashLength {
            algo: HashAlgo::Xxhash,
            len: 32,
            want: 16
        }
    );
}
