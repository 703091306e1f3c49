//! The line-by-line streaming reader every text trace format shares.
//!
//! A [`LineParser`] turns one line into a request (or nothing, for headers);
//! [`LineReader`] owns the `BufRead`, numbers lines, enforces non-decreasing
//! arrival times, assigns dense ids and applies the strict/lenient policy.
//! Memory stays O(one line) however large the file.

use std::io::BufRead;

use super::error::{FieldError, LineError, SkippedLines, TraceError};
use super::request::TraceRequest;

/// Parses one line of a format. Carries the format's cross-line state (e.g.
/// the first timestamp that later ones are made relative to).
pub trait LineParser {
    /// The format's own name of the arrival-time field, so an error about
    /// time going backwards names what the user's file calls it.
    const ARRIVAL_FIELD: &'static str;

    /// Parses `line` (without its newline). `Ok(None)` for lines that carry no
    /// request (headers). The returned request's `id` is overwritten.
    fn parse_line(&mut self, line: &str, line_no: u64) -> Result<Option<TraceRequest>, FieldError>;
}

/// How a reader treats bad lines.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// File name used in error messages.
    pub file: String,
    /// Skip bad lines (counting them in `skipped`) instead of failing.
    pub skip_bad_lines: bool,
    /// Counter of skipped lines, shared with the caller.
    pub skipped: SkippedLines,
}

impl ReadOptions {
    /// Strict reading of `file`.
    pub fn strict(file: impl Into<String>) -> ReadOptions {
        ReadOptions {
            file: file.into(),
            ..ReadOptions::default()
        }
    }
}

/// Streaming iterator of requests over a `BufRead` and a [`LineParser`].
pub struct LineReader<R, P> {
    input: R,
    parser: P,
    opts: ReadOptions,
    bytes: Vec<u8>,
    line_no: u64,
    next_id: u64,
    last_arrival_ns: u64,
    done: bool,
}

impl<R: BufRead, P: LineParser> LineReader<R, P> {
    /// A reader of `input` with `parser`.
    pub fn new(input: R, parser: P, opts: ReadOptions) -> LineReader<R, P> {
        LineReader {
            input,
            parser,
            opts,
            bytes: Vec::new(),
            line_no: 0,
            next_id: 0,
            last_arrival_ns: 0,
            done: false,
        }
    }

    fn line_error(&self, e: FieldError) -> LineError {
        LineError {
            file: self.opts.file.clone(),
            line: self.line_no,
            field: e.field,
            problem: e.problem,
        }
    }
}

impl<R: BufRead, P: LineParser> Iterator for LineReader<R, P> {
    type Item = Result<TraceRequest, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.bytes.clear();
            match self.input.read_until(b'\n', &mut self.bytes) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(source) => {
                    self.done = true;
                    return Some(Err(TraceError::Io {
                        path: self.opts.file.clone(),
                        source,
                    }));
                }
            }
            self.line_no += 1;
            // Invalid UTF-8 becomes U+FFFD and then fails field parsing with a
            // line number, instead of an IO error that hides the position.
            let text = String::from_utf8_lossy(&self.bytes);
            let line = text.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            let res = self
                .parser
                .parse_line(line, self.line_no)
                .and_then(|r| match r {
                    Some(req) if req.arrival_ns < self.last_arrival_ns => Err(FieldError::new(
                        P::ARRIVAL_FIELD,
                        format!(
                            "arrival {} ns is before the previous line's {} ns (the format requires non-decreasing times)",
                            req.arrival_ns, self.last_arrival_ns
                        ),
                    )),
                    other => Ok(other),
                });
            match res {
                Ok(None) => continue,
                Ok(Some(mut req)) => {
                    req.id = self.next_id;
                    self.next_id += 1;
                    self.last_arrival_ns = req.arrival_ns;
                    return Some(Ok(req));
                }
                Err(e) => {
                    let err = self.line_error(e);
                    if self.opts.skip_bad_lines {
                        self.opts.skipped.record(err);
                        continue;
                    }
                    self.done = true;
                    return Some(Err(TraceError::Line(err)));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::request::Prompt;

    /// Test format: each line is an arrival time in ns; `x` is a bad line.
    struct Nums;
    impl LineParser for Nums {
        const ARRIVAL_FIELD: &'static str = "t";
        fn parse_line(&mut self, line: &str, _: u64) -> Result<Option<TraceRequest>, FieldError> {
            if line == "#" {
                return Ok(None);
            }
            let t: u64 = line
                .parse()
                .map_err(|_| FieldError::new("t", format!("expected integer, got {line:?}")))?;
            Ok(Some(TraceRequest {
                id: 99,
                arrival_ns: t,
                prompt: Prompt::Tokens(vec![]),
                output_len: 1,
                session_id: None,
                cache_salt: None,
                output_token_ids: None,
            }))
        }
    }

    #[test]
    fn strict_stops_at_first_bad_line_with_position() {
        let r = LineReader::new(
            "#\n1\n\n2\nx\n3\n".as_bytes(),
            Nums,
            ReadOptions::strict("f.txt"),
        );
        let out: Vec<_> = r.collect();
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].as_ref().unwrap().id, 1);
        let err = out[2].as_ref().unwrap_err().to_string();
        assert_eq!(err, "f.txt:5: t: expected integer, got \"x\"");
    }

    #[test]
    fn lenient_skips_and_counts_including_time_going_backwards() {
        let opts = ReadOptions {
            file: "f".into(),
            skip_bad_lines: true,
            skipped: SkippedLines::new(),
        };
        let skipped = opts.skipped.clone();
        let r = LineReader::new("5\nx\n3\n7\r\n".as_bytes(), Nums, opts);
        let out: Vec<u64> = r.map(|r| r.unwrap().arrival_ns).collect();
        assert_eq!(out, vec![5, 7]);
        assert_eq!(skipped.n_skipped(), 2);
        assert!(skipped.first_errors()[1]
            .problem
            .contains("before the previous"));
        assert_eq!(skipped.first_errors()[1].field, "t");
    }
}
