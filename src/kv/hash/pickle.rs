//! Pickle protocol 5, byte for byte as CPython's C pickler (`Modules/_pickle.c`) writes
//! `pickle.dumps(obj, protocol=5)` for the value shapes vLLM hashes (`vllm.md` §1.3).
//!
//! Rules reproduced (all checked against CPython 3.11 output in the tests):
//! - `PROTO 5`, then framing: a `FRAME <u64 LE len>` header opens lazily at the first write
//!   and is committed at `STOP`, or before saving any object once the open frame holds
//!   ≥ 64 KiB (`_Pickler_OpcodeBoundary`); a frame whose payload is < 4 bytes loses its
//!   header (`FRAME_SIZE_MIN`). Byte/str payloads ≥ 64 KiB are written outside any frame.
//! - ints: `BININT1` (0..=0xff), `BININT2` (..=0xffff), `BININT` (signed 32-bit, so every
//!   negative int that fits), else `LONG1` with minimal two's-complement bytes. Ints are
//!   never memoized.
//! - bytes: `SHORT_BINBYTES`/`BINBYTES`/`BINBYTES8`; str: `SHORT_BINUNICODE`/`BINUNICODE`/
//!   `BINUNICODE8` (UTF-8); both followed by `MEMOIZE`.
//! - tuples: `EMPTY_TUPLE` (not memoized); 1–3 items: items then `TUPLE1/2/3`; longer:
//!   `MARK`, items, `TUPLE`; then `MEMOIZE`. `None` is `NONE`.
//! - memo hits: pickle memoizes by object identity, so only a *repeated object* yields
//!   `BINGET`. In vLLM's tuples every bytes/str/tuple is a distinct object except CPython's
//!   cached singletons: the empty and one-character (code point < 256) strings and the empty
//!   and one-byte bytes objects. Those are memoized by value here; everything else never hits.

use super::extra::{ExtraKey, ExtraKeys};

const PROTO: u8 = 0x80;
const FRAME: u8 = 0x95;
const STOP: u8 = b'.';
const NONE: u8 = b'N';
const MARK: u8 = b'(';
const TUPLE: u8 = b't';
const EMPTY_TUPLE: u8 = b')';
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const LONG1: u8 = 0x8a;
const SHORT_BINBYTES: u8 = b'C';
const BINBYTES: u8 = b'B';
const BINBYTES8: u8 = 0x8e;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE: u8 = b'X';
const BINUNICODE8: u8 = 0x8d;
const MEMOIZE: u8 = 0x94;
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';

/// `FRAME` opcode plus its u64 length.
const FRAME_HEADER_LEN: usize = 9;
/// Payloads shorter than this are left unframed (`_FRAME_SIZE_MIN`).
const FRAME_SIZE_MIN: usize = 4;
/// A frame is committed once it reaches this size (`_FRAME_SIZE_TARGET`).
const FRAME_SIZE_TARGET: usize = 64 * 1024;

/// Writes `pickle.dumps((parent, tuple(tokens), extra), protocol=5)` into `out` (cleared first).
pub(super) fn write_block(
    out: &mut Vec<u8>,
    parent: &[u8],
    tokens: &[u32],
    extra: Option<&ExtraKeys>,
) {
    // Upper bound for the common case: header, parent, 5 bytes per token, tuple opcodes.
    out.reserve(2 * FRAME_HEADER_LEN + parent.len() + 5 * tokens.len() + 16);
    let mut p = Pickler::start(out);
    p.boundary(); // save(outer tuple)
    p.save_bytes(parent);
    p.save_token_tuple(tokens);
    match extra {
        None => p.save_none(),
        Some(keys) => p.save_tuple(keys.keys()),
    }
    p.write(&[TUPLE3]);
    p.memoize();
    p.finish();
}

/// Writes `pickle.dumps(s, protocol=5)` into `out` (cleared first).
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    let mut p = Pickler::start(out);
    p.save_str(s);
    p.finish();
}

/// A CPython singleton that pickle would find in its memo when it recurs.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Singleton {
    Str(Option<char>),
    Bytes(Option<u8>),
}

/// Output buffer plus the framing and memo state of one `dumps` call.
struct Pickler<'a> {
    out: &'a mut Vec<u8>,
    /// False only while a ≥ 64 KiB payload bypasses framing.
    framing: bool,
    /// Offset of the open frame's header, if a frame is open.
    frame_start: Option<usize>,
    n_memo: u32,
    singletons: Vec<(Singleton, u32)>,
}

impl<'a> Pickler<'a> {
    fn start(out: &'a mut Vec<u8>) -> Self {
        out.clear();
        out.extend_from_slice(&[PROTO, 5]);
        Pickler {
            out,
            framing: true,
            frame_start: None,
            n_memo: 0,
            singletons: Vec::new(),
        }
    }

    fn finish(mut self) {
        self.write(&[STOP]);
        self.commit_frame();
    }

    fn open_frame(&mut self) {
        if self.framing && self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        }
    }

    fn write(&mut self, data: &[u8]) {
        self.open_frame();
        self.out.extend_from_slice(data);
    }

    /// Called at the start of every object's save, as `_Pickler_OpcodeBoundary`.
    fn boundary(&mut self) {
        if let Some(start) = self.frame_start {
            if self.out.len() - start - FRAME_HEADER_LEN >= FRAME_SIZE_TARGET {
                self.commit_frame();
            }
        }
    }

    fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let payload_len = self.out.len() - start - FRAME_HEADER_LEN;
        if payload_len >= FRAME_SIZE_MIN {
            self.out[start] = FRAME;
            self.out[start + 1..start + FRAME_HEADER_LEN]
                .copy_from_slice(&(payload_len as u64).to_le_bytes());
        } else {
            self.out.drain(start..start + FRAME_HEADER_LEN);
        }
    }

    fn memoize(&mut self) {
        self.write(&[MEMOIZE]);
        self.n_memo += 1;
    }

    /// Emits `BINGET` for a recurring singleton; false if `key` is new (then remembered
    /// under the memo index the caller's `MEMOIZE` will assign).
    fn memo_get_or_note(&mut self, key: Option<Singleton>) -> bool {
        let Some(key) = key else {
            return false;
        };
        if let Some(&(_, idx)) = self.singletons.iter().find(|(k, _)| *k == key) {
            match u8::try_from(idx) {
                Ok(small) => self.write(&[BINGET, small]),
                Err(_) => {
                    let mut op = [LONG_BINGET, 0, 0, 0, 0];
                    op[1..].copy_from_slice(&idx.to_le_bytes());
                    self.write(&op);
                }
            }
            return true;
        }
        self.singletons.push((key, self.n_memo));
        false
    }

    /// Header then payload; payloads ≥ 64 KiB go outside any frame (`_Pickler_write_bytes`).
    fn write_sized(&mut self, header: &[u8], data: &[u8]) {
        if data.len() >= FRAME_SIZE_TARGET {
            self.commit_frame();
            self.framing = false;
            self.write(header);
            self.write(data);
            self.framing = true;
        } else {
            self.write(header);
            self.write(data);
        }
    }

    fn save_none(&mut self) {
        self.boundary();
        self.write(&[NONE]);
    }

    fn save_bytes(&mut self, data: &[u8]) {
        self.boundary();
        let singleton = match data {
            [] => Some(Singleton::Bytes(None)),
            [b] => Some(Singleton::Bytes(Some(*b))),
            _ => None,
        };
        if self.memo_get_or_note(singleton) {
            return;
        }
        let (header, n) = sized_header(data.len(), SHORT_BINBYTES, BINBYTES, BINBYTES8);
        self.write_sized(&header[..n], data);
        self.memoize();
    }

    fn save_str(&mut self, s: &str) {
        self.boundary();
        let mut chars = s.chars();
        let singleton = match (chars.next(), chars.next()) {
            (None, _) => Some(Singleton::Str(None)),
            (Some(c), None) if u32::from(c) < 256 => Some(Singleton::Str(Some(c))),
            _ => None,
        };
        if self.memo_get_or_note(singleton) {
            return;
        }
        let (header, n) = sized_header(s.len(), SHORT_BINUNICODE, BINUNICODE, BINUNICODE8);
        self.write_sized(&header[..n], s.as_bytes());
        self.memoize();
    }

    fn save_token(&mut self, v: u32) {
        self.boundary();
        self.open_frame();
        let b = v.to_le_bytes();
        if v <= 0xff {
            self.out.extend_from_slice(&[BININT1, b[0]]);
        } else if v <= 0xffff {
            self.out.extend_from_slice(&[BININT2, b[0], b[1]]);
        } else if v <= 0x7fff_ffff {
            self.out
                .extend_from_slice(&[BININT, b[0], b[1], b[2], b[3]]);
        } else {
            // 2^31..2^32: 32 significant bits need 5 two's-complement bytes.
            self.out
                .extend_from_slice(&[LONG1, 5, b[0], b[1], b[2], b[3], 0]);
        }
    }

    fn save_int(&mut self, v: i64) {
        if let Ok(token) = u32::try_from(v) {
            return self.save_token(token);
        }
        self.boundary();
        if let Ok(small) = i32::try_from(v) {
            let mut op = [BININT, 0, 0, 0, 0];
            op[1..].copy_from_slice(&small.to_le_bytes());
            return self.write(&op);
        }
        // LONG1: n = bit_length(|v|) / 8 + 1 little-endian two's-complement bytes, minus a
        // redundant 0xff sign byte for negatives (pickle.encode_long).
        let x = i128::from(v);
        let bit_len = 128 - x.unsigned_abs().leading_zeros() as usize;
        let le = x.to_le_bytes();
        let mut n = bit_len / 8 + 1;
        if x < 0 && n > 1 && le[n - 1] == 0xff && le[n - 2] & 0x80 != 0 {
            n -= 1;
        }
        self.write(&[LONG1, n as u8]);
        self.write(&le[..n]);
    }

    fn save_key(&mut self, key: &ExtraKey) {
        match key {
            ExtraKey::Str(s) => self.save_str(s),
            ExtraKey::Bytes(b) => self.save_bytes(b),
            ExtraKey::Int(v) => self.save_int(*v),
            ExtraKey::Tuple(items) => self.save_tuple(items),
        }
    }

    fn save_tuple(&mut self, items: &[ExtraKey]) {
        self.save_tuple_with(items.len(), |p| {
            items.iter().for_each(|item| p.save_key(item))
        });
    }

    fn save_token_tuple(&mut self, tokens: &[u32]) {
        self.save_tuple_with(tokens.len(), |p| {
            tokens.iter().for_each(|&t| p.save_token(t))
        });
    }

    /// `save_tuple` of `_pickle.c`; `save_items` saves the `len` elements in order.
    fn save_tuple_with(&mut self, len: usize, save_items: impl FnOnce(&mut Self)) {
        self.boundary();
        match len {
            0 => self.write(&[EMPTY_TUPLE]),
            1..=3 => {
                save_items(self);
                self.write(&[[TUPLE1, TUPLE2, TUPLE3][len - 1]]);
                self.memoize();
            }
            _ => {
                self.write(&[MARK]);
                save_items(self);
                self.write(&[TUPLE]);
                self.memoize();
            }
        }
    }
}

/// Opcode and little-endian length for a bytes/str payload of `len` bytes.
fn sized_header(len: usize, short_op: u8, op4: u8, op8: u8) -> ([u8; 9], usize) {
    let mut header = [0u8; 9];
    if let Ok(short) = u8::try_from(len) {
        header[..2].copy_from_slice(&[short_op, short]);
        (header, 2)
    } else if let Ok(mid) = u32::try_from(len) {
        header[0] = op4;
        header[1..5].copy_from_slice(&mid.to_le_bytes());
        (header, 5)
    } else {
        header[0] = op8;
        header[1..].copy_from_slice(&(len as u64).to_le_bytes());
        (header, 9)
    }
}

#[cfg(test)]
mod tests {
    //! Expected bytes are CPython 3.11 `pickle.dumps(obj, protocol=5)` output.
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// NONE_HASH of [0.33] with the default seed, the usual parent in these cases.
    const NH33: &str = "066b1e8987e027138e98701c46128929378935f9b6cd1549105ae6b4f0d71198";

    fn nh33() -> Vec<u8> {
        (0..32)
            .map(|i| u8::from_str_radix(&NH33[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn block(tokens: &[u32], extra: Option<&ExtraKeys>) -> String {
        let mut out = Vec::new();
        write_block(&mut out, &nh33(), tokens, extra);
        hex(&out)
    }

    #[test]
    fn short_tuples_use_tuple_n_opcodes() {
        let cases: [(&[u32], &str); 4] = [
            (&[], "80059528000000000000004320{NH}94294e87942e"),
            (&[100], "8005952b000000000000004320{NH}944b6485944e87942e"),
            (
                &[100, 101],
                "8005952d000000000000004320{NH}944b644b6586944e87942e",
            ),
            (
                &[100, 101, 102],
                "8005952f000000000000004320{NH}944b644b654b6687944e87942e",
            ),
        ];
        for (tokens, want) in cases {
            assert_eq!(
                block(tokens, None),
                want.replace("{NH}", NH33),
                "tokens {tokens:?}"
            );
        }
    }

    #[test]
    fn int_width_boundaries() {
        let tokens = [0, 255, 256, 65535, 65536, (1 << 31) - 1, 1 << 31, u32::MAX];
        let want = format!(
            "8005954c000000000000004320{NH33}94284b004bff4d00014dffff4a000001004affffff7f\
             8a0500000080008a05ffffffff0074944e87942e"
        );
        assert_eq!(block(&tokens, None), want);
    }

    #[test]
    fn extra_ints_signed_and_long() {
        let keys = [
            -1,
            -129,
            -(1 << 31),
            -(1 << 31) - 1,
            1 << 40,
            i64::MIN,
            i64::MAX,
            0,
        ]
        .map(ExtraKey::Int)
        .to_vec();
        let extra = ExtraKeys::new(keys).unwrap();
        let want = format!(
            "80059561000000000000004320{NH33}944b018594284affffffff4a7fffffff4a00000080\
             8a05ffffff7fff8a060000000000018a0800000000000000808a08ffffffffffffff7f4b00749487942e"
        );
        assert_eq!(block(&[1], Some(&extra)), want);
    }

    #[test]
    fn singleton_strings_and_bytes_hit_the_memo() {
        let s = |v: &str| ExtraKey::Str(v.to_string());
        let extra = ExtraKeys::new(vec![
            s("x"),
            s("x"),
            s("ab"),
            s("ab"),
            ExtraKey::Bytes(vec![]),
            ExtraKey::Bytes(vec![]),
        ])
        .unwrap();
        let want = format!(
            "80059544000000000000004320{NH33}944b014b028694288c01789468028c026162948c026162944300946805749487942e"
        );
        assert_eq!(block(&[1, 2], Some(&extra)), want);
        let extra = ExtraKeys::new(vec![
            s(""),
            s(""),
            ExtraKey::Bytes(vec![7]),
            ExtraKey::Bytes(vec![7]),
        ])
        .unwrap();
        let want = format!(
            "8005953a000000000000004320{NH33}944b014b028694288c00946802430107946803749487942e"
        );
        assert_eq!(block(&[1, 2], Some(&extra)), want);
    }

    #[test]
    fn long_str_and_bytes_use_four_byte_lengths() {
        let extra = ExtraKeys::new(vec![
            ExtraKey::Str("é".repeat(200)),
            ExtraKey::Bytes(vec![0; 300]),
        ])
        .unwrap();
        let mut out = Vec::new();
        write_block(&mut out, &nh33(), &[1], Some(&extra));
        assert_eq!(out.len(), 767);
        let head = format!("800595f4020000000000004320{NH33}944b0185945890010000c3a9c3a9c3");
        assert_eq!(hex(&out[..head.len() / 2]), head);
        use sha2::Digest;
        assert_eq!(
            hex(&sha2::Sha256::digest(&out)),
            "879c9a24957a4bb3e366260a6e80d1e4555d9709ea9f32d97b918dd684275ae2"
        );
    }

    #[test]
    fn frames_split_at_64_kib() {
        use sha2::Digest;
        let tokens: Vec<u32> = (0..20_000).map(|i| 70_000 + i).collect();
        let mut out = Vec::new();
        write_block(&mut out, &nh33(), &tokens, None);
        assert_eq!(out.len(), 100_062);
        // CPython: FRAME 65536 at offset 2, FRAME 34506 at offset 65547.
        assert_eq!(out[2], FRAME);
        assert_eq!(&out[3..11], &65_536u64.to_le_bytes());
        assert_eq!(out[65_547], FRAME);
        assert_eq!(&out[65_548..65_556], &34_506u64.to_le_bytes());
        assert_eq!(
            hex(&sha2::Sha256::digest(&out)),
            "60861c62c47df764f50c786fb38f502d3e5493a188ffee4db4fb8fb5f3674157"
        );
    }

    #[test]
    fn huge_payload_bypasses_frames() {
        use sha2::Digest;
        let extra = ExtraKeys::new(vec![ExtraKey::Str("z".repeat(70_000))]).unwrap();
        let mut out = Vec::new();
        write_block(&mut out, &nh33(), &[1, 2, 3, 4], Some(&extra));
        assert_eq!(out.len(), 70_077);
        assert_eq!(&out[2..11], &[FRAME, 46, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(out[57], BINUNICODE);
        assert_eq!(&out[70_062..70_071], &[FRAME, 6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            hex(&sha2::Sha256::digest(&out)),
            "51ad05828091ad8dcb110d1329cd39c6231bbb3c9d858ba70cb60984c3a86c04"
        );
    }

    #[test]
    fn strings_are_framed_seed_pickles() {
        let mut out = Vec::new();
        write_str(&mut out, "42");
        assert_eq!(hex(&out), "80059506000000000000008c023432942e");
        write_str(&mut out, "vllm-none-hash");
        assert_eq!(
            hex(&out),
            "80059512000000000000008c0e766c6c6d2d6e6f6e652d68617368942e"
        );
    }

    #[test]
    fn tiny_frames_lose_their_header() {
        // pickle.dumps(None, 5) == b"\x80\x05N.": a 2-byte payload gets no FRAME header.
        let mut out = Vec::new();
        let mut p = Pickler::start(&mut out);
        p.write(&[NONE]);
        p.finish();
        assert_eq!(hex(&out), "80054e2e");
    }
}
