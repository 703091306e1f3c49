//! Canonical CBOR as `cbor2.dumps(obj, canonical=True)` writes vLLM's block tuples.
//!
//! Only definite-length items with minimal-length heads occur: tuples become arrays,
//! ints major type 0/1, bytes 2, str 3 (UTF-8), `None` the simple value `0xf6`. Canonical
//! mode only changes map/set ordering and floats, which vLLM's keys never contain.
//!
//! Hand-written rather than `ciborium`: ciborium produces the same bytes for these shapes
//! (checked in the tests), but only by building a `Value` tree per block (one allocation
//! per token) or a serde wrapper whose infallible `Result` must still be unwrapped; this
//! writes straight into the caller's reused buffer.

use super::extra::{ExtraKey, ExtraKeys};

const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const NULL: u8 = 0xf6;

/// Writes `cbor2.dumps((parent, tuple(tokens), extra), canonical=True)` into `out` (cleared first).
pub(super) fn write_block(
    out: &mut Vec<u8>,
    parent: &[u8],
    tokens: &[u32],
    extra: Option<&ExtraKeys>,
) {
    out.clear();
    out.reserve(16 + parent.len() + 5 * tokens.len());
    head(out, MAJOR_ARRAY, 3);
    head(out, MAJOR_BYTES, parent.len() as u64);
    out.extend_from_slice(parent);
    head(out, MAJOR_ARRAY, tokens.len() as u64);
    for &t in tokens {
        head(out, MAJOR_UINT, u64::from(t));
    }
    match extra {
        None => out.push(NULL),
        Some(keys) => write_array(out, keys.keys()),
    }
}

/// Writes `cbor2.dumps(s, canonical=True)` into `out` (cleared first).
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.clear();
    head(out, MAJOR_TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn write_array(out: &mut Vec<u8>, items: &[ExtraKey]) {
    head(out, MAJOR_ARRAY, items.len() as u64);
    for item in items {
        write_key(out, item);
    }
}

fn write_key(out: &mut Vec<u8>, key: &ExtraKey) {
    match key {
        ExtraKey::Str(s) => {
            head(out, MAJOR_TEXT, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        ExtraKey::Bytes(b) => {
            head(out, MAJOR_BYTES, b.len() as u64);
            out.extend_from_slice(b);
        }
        ExtraKey::Int(v) if *v >= 0 => head(out, MAJOR_UINT, v.unsigned_abs()),
        // Negative n is encoded as -1 - n, which for i64 always fits in u64.
        ExtraKey::Int(v) => head(out, MAJOR_NINT, (-1 - *v) as u64),
        ExtraKey::Tuple(items) => write_array(out, items),
    }
}

/// Item head with the shortest argument encoding (RFC 8949 §4.2.1).
fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if let Ok(a) = u8::try_from(arg) {
        out.extend_from_slice(&[m | 24, a]);
    } else if let Ok(a) = u16::try_from(arg) {
        out.push(m | 25);
        out.extend_from_slice(&a.to_be_bytes());
    } else if let Ok(a) = u32::try_from(arg) {
        out.push(m | 26);
        out.extend_from_slice(&a.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;
    use proptest::prelude::*;

    fn via_ciborium(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    fn key_value(key: &ExtraKey) -> Value {
        match key {
            ExtraKey::Str(s) => Value::Text(s.clone()),
            ExtraKey::Bytes(b) => Value::Bytes(b.clone()),
            ExtraKey::Int(v) => Value::Integer((*v).into()),
            ExtraKey::Tuple(items) => Value::Array(items.iter().map(key_value).collect()),
        }
    }

    fn block_value(parent: &[u8], tokens: &[u32], extra: Option<&ExtraKeys>) -> Value {
        Value::Array(vec![
            Value::Bytes(parent.to_vec()),
            Value::Array(tokens.iter().map(|&t| Value::Integer(t.into())).collect()),
            extra.map_or(Value::Null, |keys| {
                Value::Array(keys.keys().iter().map(key_value).collect())
            }),
        ])
    }

    #[test]
    fn spec_header_bytes() {
        // vllm.md §1.3: 83, 58 20 <parent>, 90 (16 items), ints, F6.
        let mut out = Vec::new();
        let tokens: Vec<u32> = (16..32).collect();
        write_block(&mut out, &[0xab; 32], &tokens, None);
        assert_eq!(&out[..3], &[0x83, 0x58, 0x20]);
        assert_eq!(out[35], 0x90);
        assert_eq!(
            &out[36..46],
            &[0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x18]
        );
        assert_eq!(*out.last().unwrap(), 0xf6);
        let tokens: Vec<u32> = (0..64).collect();
        write_block(&mut out, &[0; 32], &tokens, None);
        assert_eq!(&out[35..37], &[0x98, 0x40]);
        write_str(&mut out, "vllm-none-hash");
        assert_eq!(out[0], 0x6e);
        assert_eq!(&out[1..], b"vllm-none-hash");
    }

    #[test]
    fn head_boundaries() {
        let mut out = Vec::new();
        for (v, want) in [
            (23u64, vec![0x17]),
            (24, vec![0x18, 24]),
            (255, vec![0x18, 0xff]),
            (256, vec![0x19, 1, 0]),
            (65_535, vec![0x19, 0xff, 0xff]),
            (65_536, vec![0x1a, 0, 1, 0, 0]),
            (u64::from(u32::MAX), vec![0x1a, 0xff, 0xff, 0xff, 0xff]),
            (1 << 32, vec![0x1b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ] {
            out.clear();
            head(&mut out, MAJOR_UINT, v);
            assert_eq!(out, want, "{v}");
        }
    }

    #[test]
    fn salted_shapes_match_ciborium() {
        let salt33 =
            ExtraKeys::first_block(crate::compat::VllmVersion::V0_33, Some("tenant-a")).unwrap();
        let salt11 =
            ExtraKeys::first_block(crate::compat::VllmVersion::V0_11, Some("tenant-a")).unwrap();
        let mut out = Vec::new();
        for extra in [None, Some(&salt33), Some(&salt11)] {
            write_block(&mut out, &[9; 32], &[0, 24, 300, 70_000, u32::MAX], extra);
            assert_eq!(
                out,
                via_ciborium(&block_value(
                    &[9; 32],
                    &[0, 24, 300, 70_000, u32::MAX],
                    extra
                ))
            );
        }
        // [0.33] salted tail: 81 82 6a "cache_salt" 68 "tenant-a".
        write_block(&mut out, &[9; 32], &[1], Some(&salt33));
        let tail = [
            &[0x81u8, 0x82, 0x6a][..],
            b"cache_salt",
            &[0x68],
            b"tenant-a",
        ]
        .concat();
        assert!(out.ends_with(&tail));
    }

    fn arb_key() -> impl Strategy<Value = ExtraKey> {
        let leaf = prop_oneof![
            ".{0,30}".prop_map(ExtraKey::Str),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(ExtraKey::Bytes),
            any::<i64>().prop_map(ExtraKey::Int),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            proptest::collection::vec(inner, 0..4).prop_map(ExtraKey::Tuple)
        })
    }

    proptest! {
        #[test]
        fn matches_ciborium(
            parent in proptest::collection::vec(any::<u8>(), 16..=32),
            tokens in proptest::collection::vec(any::<u32>(), 0..80),
            keys in proptest::collection::vec(arb_key(), 0..4),
        ) {
            let extra = ExtraKeys::new(keys);
            let mut out = Vec::new();
            write_block(&mut out, &parent, &tokens, extra.as_ref());
            prop_assert_eq!(out, via_ciborium(&block_value(&parent, &tokens, extra.as_ref())));
        }
    }
}
