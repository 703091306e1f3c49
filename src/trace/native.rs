//! kvsim's native JSONL trace format, version 1 (see `docs/trace-format.md`).
//!
//! ```text
//! {"kvsim_trace": 1}
//! {"arrival_ns": 0, "prompt_token_ids": [1, 2, 3], "output_length": 2, "session_id": 7}
//! {"arrival_ns": 5000000, "hash_ids": [0, 9], "tokens_per_id": 512, "input_length": 700, "output_length": 20}
//! ```
//! The first non-blank line is the header; each later line is one request in
//! non-decreasing `arrival_ns`. Request ids are positions, not stored.
//! Unknown fields are errors (typos would otherwise silently change a run).

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::error::{check_hash_id_count, check_token_count, suggest, FieldError};
use super::json_line::{diagnose, FieldSpec, Kind};
use super::reader::{LineParser, LineReader, ReadOptions};
use super::request::{Prompt, TraceRequest};

/// The format version this build reads and writes.
pub const NATIVE_VERSION: u64 = 1;

/// Streams the requests of a native trace.
pub fn read_native<R: BufRead>(input: R, opts: ReadOptions) -> LineReader<R, NativeParser> {
    LineReader::new(input, NativeParser::default(), opts)
}

/// Line parser of the native format.
#[derive(Clone, Debug, Default)]
pub struct NativeParser {
    seen_header: bool,
}

/// One request line (serde form).
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NativeLine {
    arrival_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt_token_ids: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash_ids: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens_per_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_length: Option<u32>,
    output_length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_token_ids: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_salt: Option<String>,
}

const SCHEMA: &[FieldSpec] = &[
    FieldSpec {
        name: "arrival_ns",
        kind: Kind::U64,
        required: true,
    },
    FieldSpec {
        name: "prompt_token_ids",
        kind: Kind::U32Array,
        required: false,
    },
    FieldSpec {
        name: "hash_ids",
        kind: Kind::U64Array,
        required: false,
    },
    FieldSpec {
        name: "tokens_per_id",
        kind: Kind::U32,
        required: false,
    },
    FieldSpec {
        name: "input_length",
        kind: Kind::U32,
        required: false,
    },
    FieldSpec {
        name: "output_length",
        kind: Kind::U32,
        required: true,
    },
    FieldSpec {
        name: "output_token_ids",
        kind: Kind::U32Array,
        required: false,
    },
    FieldSpec {
        name: "session_id",
        kind: Kind::U64,
        required: false,
    },
    FieldSpec {
        name: "cache_salt",
        kind: Kind::Str,
        required: false,
    },
];

impl LineParser for NativeParser {
    const ARRIVAL_FIELD: &'static str = "arrival_ns";

    fn parse_line(
        &mut self,
        line: &str,
        _line_no: u64,
    ) -> Result<Option<TraceRequest>, FieldError> {
        if !self.seen_header {
            self.seen_header = true;
            parse_header(line)?;
            return Ok(None);
        }
        let rec: NativeLine =
            serde_json::from_str(line).map_err(|e| diagnose(line, SCHEMA, true, &e.to_string()))?;
        to_request(rec).map(Some)
    }
}

fn parse_header(line: &str) -> Result<(), FieldError> {
    let expected =
        || format!("expected the header {{\"kvsim_trace\": {NATIVE_VERSION}}} on the first line");
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(line) else {
        return Err(FieldError::new("kvsim_trace", expected()));
    };
    let Some(version) = obj.get("kvsim_trace") else {
        return Err(FieldError::new("kvsim_trace", expected()));
    };
    if version.as_u64() != Some(NATIVE_VERSION) {
        return Err(FieldError::new(
            "kvsim_trace",
            format!("unsupported version {version} (this build reads version {NATIVE_VERSION})"),
        ));
    }
    const HEADER_FIELDS: &[&str] = &["kvsim_trace", "description"];
    if let Some(k) = obj.keys().find(|k| !HEADER_FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(
            k.as_str(),
            format!("unknown header field{}", suggest(k, HEADER_FIELDS)),
        ));
    }
    Ok(())
}

fn to_request(rec: NativeLine) -> Result<TraceRequest, FieldError> {
    check_token_count("output_length", rec.output_length)?;
    if let Some(n) = rec.input_length {
        check_token_count("input_length", n)?;
    }
    if let Some(t) = &rec.prompt_token_ids {
        check_token_count("prompt_token_ids", t.len().min(u32::MAX as usize) as u32)?;
    }
    let prompt = match (rec.prompt_token_ids, rec.hash_ids) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "hash_ids",
                "give either prompt_token_ids or hash_ids, not both",
            ));
        }
        (None, None) => {
            return Err(FieldError::new(
                "prompt_token_ids",
                "missing (give prompt_token_ids or hash_ids)",
            ));
        }
        (Some(tokens), None) => {
            if let Some(n) = rec.input_length {
                if n as usize != tokens.len() {
                    return Err(FieldError::new(
                        "input_length",
                        format!("{n} but prompt_token_ids has {} tokens", tokens.len()),
                    ));
                }
            }
            if rec.tokens_per_id.is_some() {
                return Err(FieldError::new(
                    "tokens_per_id",
                    "only meaningful with hash_ids",
                ));
            }
            Prompt::Tokens(tokens)
        }
        (None, Some(ids)) => {
            let tpi = rec.tokens_per_id.ok_or_else(|| {
                FieldError::new("tokens_per_id", "missing (required with hash_ids)")
            })?;
            let n = rec.input_length.ok_or_else(|| {
                FieldError::new("input_length", "missing (required with hash_ids)")
            })?;
            if tpi == 0 {
                return Err(FieldError::new("tokens_per_id", "must be positive"));
            }
            if ids.is_empty() && n > 0 {
                return Err(FieldError::new(
                    "hash_ids",
                    "empty but input_length is positive",
                ));
            }
            check_hash_id_count(ids.len(), n, tpi)?;
            Prompt::HashIds {
                ids,
                tokens_per_id: tpi,
                n_tokens: n,
            }
        }
    };
    if let Some(out) = &rec.output_token_ids {
        if out.len() != rec.output_length as usize {
            return Err(FieldError::new(
                "output_token_ids",
                format!(
                    "{} tokens but output_length is {}",
                    out.len(),
                    rec.output_length
                ),
            ));
        }
    }
    Ok(TraceRequest {
        id: 0,
        arrival_ns: rec.arrival_ns,
        prompt,
        output_len: rec.output_length,
        session_id: rec.session_id,
        cache_salt: rec.cache_salt,
        output_token_ids: rec.output_token_ids,
    })
}

/// Writes requests as a native trace (header first).
pub struct NativeWriter<W: Write> {
    out: W,
}

impl<W: Write> NativeWriter<W> {
    /// Writes the header and returns the writer.
    pub fn new(mut out: W) -> std::io::Result<NativeWriter<W>> {
        writeln!(out, "{{\"kvsim_trace\": {NATIVE_VERSION}}}")?;
        Ok(NativeWriter { out })
    }

    /// Writes one request line.
    pub fn write(&mut self, req: &TraceRequest) -> std::io::Result<()> {
        let mut line = NativeLine {
            arrival_ns: req.arrival_ns,
            output_length: req.output_len,
            output_token_ids: req.output_token_ids.clone(),
            session_id: req.session_id,
            cache_salt: req.cache_salt.clone(),
            ..NativeLine::default()
        };
        match &req.prompt {
            Prompt::Tokens(t) => line.prompt_token_ids = Some(t.clone()),
            Prompt::HashIds {
                ids,
                tokens_per_id,
                n_tokens,
            } => {
                line.hash_ids = Some(ids.clone());
                line.tokens_per_id = Some(*tokens_per_id);
                line.input_length = Some(*n_tokens);
            }
        }
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
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

    fn read(text: &str) -> Vec<Result<TraceRequest, String>> {
        read_native(text.as_bytes(), ReadOptions::strict("n.jsonl"))
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn time_going_backwards_names_the_native_field() {
        let out = read(
            "{\"kvsim_trace\": 1}\n\
             {\"arrival_ns\": 5, \"prompt_token_ids\": [1], \"output_length\": 1}\n\
             {\"arrival_ns\": 3, \"prompt_token_ids\": [1], \"output_length\": 1}\n",
        );
        let e = out[1].as_ref().unwrap_err();
        assert!(
            e.starts_with("n.jsonl:3: arrival_ns: arrival 3 ns is before"),
            "{e}"
        );
    }

    #[test]
    fn round_trips_both_prompt_kinds() {
        let reqs = vec![
            TraceRequest {
                id: 0,
                arrival_ns: 0,
                prompt: Prompt::Tokens(vec![1, 2, 3]),
                output_len: 2,
                session_id: Some(7),
                cache_salt: Some("s".into()),
                output_token_ids: Some(vec![9, 8]),
            },
            TraceRequest {
                id: 1,
                arrival_ns: 5,
                prompt: Prompt::HashIds {
                    ids: vec![0, 9],
                    tokens_per_id: 512,
                    n_tokens: 700,
                },
                output_len: 20,
                session_id: None,
                cache_salt: None,
                output_token_ids: None,
            },
        ];
        let mut w = NativeWriter::new(Vec::new()).unwrap();
        for r in &reqs {
            w.write(r).unwrap();
        }
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        assert!(text.starts_with("{\"kvsim_trace\": 1}\n"));
        let back: Vec<TraceRequest> = read(&text).into_iter().map(Result::unwrap).collect();
        assert_eq!(back, reqs);
    }

    #[test]
    fn header_and_field_errors() {
        let e = read("{\"arrival_ns\": 0}\n").remove(0).unwrap_err();
        assert!(
            e.starts_with("n.jsonl:1: kvsim_trace: expected the header"),
            "{e}"
        );
        let e = read("{\"kvsim_trace\": 2}\n").remove(0).unwrap_err();
        assert!(
            e.starts_with("n.jsonl:1: kvsim_trace: unsupported version 2"),
            "{e}"
        );
        let e = read("{\"kvsim_trace\": 1}\n{\"arrival_ns\": 0, \"prompt_tokn_ids\": [1], \"output_length\": 1}")
            .remove(0)
            .unwrap_err();
        assert_eq!(
            e,
            "n.jsonl:2: prompt_tokn_ids: unknown field (did you mean \"prompt_token_ids\"?)"
        );
        let e = read("{\"kvsim_trace\": 1}\n{\"arrival_ns\": 0, \"output_length\": 1}")
            .remove(0)
            .unwrap_err();
        assert!(e.starts_with("n.jsonl:2: prompt_token_ids: missing"), "{e}");
        let e = read("{\"kvsim_trace\": 1}\n{\"arrival_ns\": 0, \"hash_ids\": [], \"tokens_per_id\": 16, \"input_length\": 4, \"output_length\": 1}")
            .remove(0)
            .unwrap_err();
        assert!(e.starts_with("n.jsonl:2: hash_ids: empty"), "{e}");
        let e = read("{\"kvsim_trace\": 1}\n{\"arrival_ns\": 0, \"prompt_token_ids\": [1], \"output_length\": 2, \"output_token_ids\": [1]}")
            .remove(0)
            .unwrap_err();
        assert!(
            e.starts_with("n.jsonl:2: output_token_ids: 1 tokens"),
            "{e}"
        );
    }
}
