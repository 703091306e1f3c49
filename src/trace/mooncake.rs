//! Mooncake JSONL importer (FAST'25 release traces).
//!
//! One request per line, sorted by time:
//! `{"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [..]}`.
//! `hash_ids[i]` is a chained-prefix hash of prompt tokens `[512 i, 512 (i+1))`
//! (the last block may be partial), so the prompt becomes [`Prompt::HashIds`]
//! and [`Prompt::block_keys`] maps it onto KV blocks of any size with prefix
//! sharing preserved exactly. Unknown fields are ignored.

use std::io::{BufRead, Write};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::error::{check_hash_id_count, check_token_count, FieldError};
use super::json_line::{diagnose, FieldSpec, Kind};
use super::reader::{LineParser, LineReader, ReadOptions};
use super::request::{Prompt, TraceRequest};
use crate::kv::block_key::{fast_chain, fast_hash_id_block, fast_root};

/// Tokens per Mooncake hash id.
pub const MOONCAKE_TOKENS_PER_ID: u32 = 512;

/// Streams the requests of a Mooncake JSONL trace.
pub fn read_mooncake<R: BufRead>(
    input: R,
    tokens_per_id: u32,
    opts: ReadOptions,
) -> LineReader<R, MooncakeParser> {
    LineReader::new(input, MooncakeParser { tokens_per_id }, opts)
}

/// Line parser of the Mooncake format.
#[derive(Clone, Debug)]
pub struct MooncakeParser {
    tokens_per_id: u32,
}

#[derive(Serialize, Deserialize)]
struct MooncakeLine {
    timestamp: u64,
    input_length: u32,
    output_length: u32,
    hash_ids: Vec<u64>,
}

const SCHEMA: &[FieldSpec] = &[
    FieldSpec {
        name: "timestamp",
        kind: Kind::U64,
        required: true,
    },
    FieldSpec {
        name: "input_length",
        kind: Kind::U32,
        required: true,
    },
    FieldSpec {
        name: "output_length",
        kind: Kind::U32,
        required: true,
    },
    FieldSpec {
        name: "hash_ids",
        kind: Kind::U64Array,
        required: true,
    },
];

impl LineParser for MooncakeParser {
    const ARRIVAL_FIELD: &'static str = "timestamp";

    fn parse_line(
        &mut self,
        line: &str,
        _line_no: u64,
    ) -> Result<Option<TraceRequest>, FieldError> {
        let rec: MooncakeLine = serde_json::from_str(line)
            .map_err(|e| diagnose(line, SCHEMA, false, &e.to_string()))?;
        check_token_count("input_length", rec.input_length)?;
        check_token_count("output_length", rec.output_length)?;
        if rec.hash_ids.is_empty() {
            return Err(FieldError::new(
                "hash_ids",
                "empty (every prompt has at least one hash block)",
            ));
        }
        if self.tokens_per_id == 0 {
            return Err(FieldError::new("hash_ids", "tokens per hash id is 0"));
        }
        check_hash_id_count(rec.hash_ids.len(), rec.input_length, self.tokens_per_id)?;
        let arrival_ns = rec.timestamp.checked_mul(1_000_000).ok_or_else(|| {
            FieldError::new(
                "timestamp",
                format!("{} ms overflows u64 nanoseconds", rec.timestamp),
            )
        })?;
        Ok(Some(TraceRequest {
            id: 0,
            arrival_ns,
            prompt: Prompt::HashIds {
                ids: rec.hash_ids,
                tokens_per_id: self.tokens_per_id,
                n_tokens: rec.input_length,
            },
            output_len: rec.output_length,
            session_id: None,
            cache_salt: None,
            output_token_ids: None,
        }))
    }
}

/// Writes requests as Mooncake JSONL with 512-token (or `tokens_per_id`)
/// hash ids.
///
/// Hash-id prompts with the same `tokens_per_id` keep their ids. Other
/// prompts get ids by prefix: the key of the prefix ending at each hash-block
/// end (chained over tokens, or from the hash ids) is mapped to a dense
/// integer in order of first appearance, so prefix sharing is preserved
/// exactly. Lossy: times are truncated to ms; session ids, salts (folded
/// into the ids) and output tokens are dropped.
pub struct MooncakeWriter<W: Write> {
    out: W,
    tokens_per_id: u32,
    ids: FxHashMap<u64, u64>,
}

impl<W: Write> MooncakeWriter<W> {
    /// A writer with `tokens_per_id` tokens per hash id (512 for Mooncake).
    pub fn new(out: W, tokens_per_id: u32) -> MooncakeWriter<W> {
        MooncakeWriter {
            out,
            tokens_per_id: tokens_per_id.max(1),
            ids: FxHashMap::default(),
        }
    }

    /// Writes one request line.
    pub fn write(&mut self, req: &TraceRequest) -> std::io::Result<()> {
        let hash_ids = match &req.prompt {
            Prompt::HashIds {
                ids, tokens_per_id, ..
            } if *tokens_per_id == self.tokens_per_id && req.cache_salt.is_none() => ids.clone(),
            prompt => self.prefix_ids(prompt, req.cache_salt.as_deref()),
        };
        let line = MooncakeLine {
            timestamp: req.arrival_ns / 1_000_000,
            input_length: req.prompt.n_tokens(),
            output_length: req.output_len,
            hash_ids,
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }

    fn prefix_ids(&mut self, prompt: &Prompt, salt: Option<&str>) -> Vec<u64> {
        let root = fast_root(salt);
        let n = prompt.n_tokens() as u64;
        let tpi = self.tokens_per_id as u64;
        let mut out = Vec::with_capacity(n.div_ceil(tpi) as usize);
        let mut parent = root;
        let mut start = 0u64;
        while start < n {
            let end = (start + tpi).min(n);
            let key = match prompt {
                Prompt::Tokens(t) => {
                    parent = fast_chain(parent, &t[start as usize..end as usize]);
                    parent
                }
                Prompt::HashIds {
                    ids, tokens_per_id, ..
                } => {
                    let idx = ((end - 1) / (*tokens_per_id).max(1) as u64) as usize;
                    let Some(&id) = ids.get(idx) else { break };
                    fast_hash_id_block(id, end as u32, root)
                }
            };
            let next = self.ids.len() as u64;
            out.push(*self.ids.entry(key).or_insert(next));
            start = end;
        }
        out
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::error::TraceError;

    fn read(text: &str) -> Vec<Result<TraceRequest, TraceError>> {
        read_mooncake(text.as_bytes(), 512, ReadOptions::strict("t.jsonl")).collect()
    }

    fn err(text: &str) -> String {
        read(text).pop().unwrap().unwrap_err().to_string()
    }

    #[test]
    fn parses_lines_into_hash_id_prompts() {
        let out = read(
            "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [0, 1]}\n\
             {\"timestamp\": 27, \"input_length\": 512, \"output_length\": 1, \"hash_ids\": [0], \"x\": 1}\n",
        );
        let r: Vec<TraceRequest> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].id, 1);
        assert_eq!(r[1].arrival_ns, 27_000_000);
        assert_eq!(r[0].prompt.n_tokens(), 600);
        assert_eq!(r[0].output_len, 5);
        assert_eq!(
            r[0].prompt.block_keys(16, None)[..32],
            r[1].prompt.block_keys(16, None)[..]
        );
    }

    #[test]
    fn bad_lines_name_file_line_and_field() {
        assert_eq!(
            err("{\"timestamp\": 0, \"output_length\": 5, \"hash_ids\": [0]}"),
            "t.jsonl:1: input_length: missing required field"
        );
        assert_eq!(
            err("{\"timestamp\": 0, \"input_length\": \"abc\", \"output_length\": 5, \"hash_ids\": [0]}"),
            "t.jsonl:1: input_length: expected non-negative integer, got \"abc\""
        );
        assert_eq!(
            err("{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 5, \"hash_ids\": []}"),
            "t.jsonl:1: hash_ids: empty (every prompt has at least one hash block)"
        );
        assert!(err(
            "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 5, \"hash_ids\": [1]}"
        )
        .starts_with("t.jsonl:1: hash_ids: 1 ids for input_length 1000"));
        let two = "{\"timestamp\": 9, \"input_length\": 1, \"output_length\": 5, \"hash_ids\": [0]}\n\
                   {\"timestamp\": 3, \"input_length\": 1, \"output_length\": 5, \"hash_ids\": [0]}";
        assert!(err(two).starts_with("t.jsonl:2: timestamp: arrival 3000000 ns is before"));
        assert!(err("not json").starts_with("t.jsonl:1: line: invalid JSON"));
        assert_eq!(
            err("{\"timestamp\": 0, \"input_length\": 4294967295, \"output_length\": 5, \"hash_ids\": [0]}"),
            "t.jsonl:1: input_length: 4294967295 tokens exceeds the limit of 16777216"
        );
    }

    #[test]
    fn writer_turns_token_prompts_into_shared_prefix_ids() {
        let a: Vec<u32> = (0..1100).collect();
        let mut b = a[..1024].to_vec();
        b.extend(5000..5100);
        let mk = |t: Vec<u32>, ms: u64| TraceRequest {
            id: 0,
            arrival_ns: ms * 1_000_000 + 7,
            prompt: Prompt::Tokens(t),
            output_len: 3,
            session_id: None,
            cache_salt: None,
            output_token_ids: None,
        };
        let mut w = MooncakeWriter::new(Vec::new(), 512);
        w.write(&mk(a, 0)).unwrap();
        w.write(&mk(b, 5)).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let back: Vec<TraceRequest> = read(&text).into_iter().map(Result::unwrap).collect();
        let ids = |r: &TraceRequest| match &r.prompt {
            Prompt::HashIds { ids, .. } => ids.clone(),
            Prompt::Tokens(_) => vec![],
        };
        assert_eq!(ids(&back[0]), vec![0, 1, 2]);
        assert_eq!(ids(&back[1]), vec![0, 1, 3]);
        assert_eq!(back[1].arrival_ns, 5_000_000);
        assert_eq!(back[1].prompt.n_tokens(), 1124);
    }
}
