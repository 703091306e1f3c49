//! Errors of trace readers, generators and workload specs.
//!
//! Every problem with an input line renders as `file:line: field: problem`,
//! e.g. `conv.jsonl:1043: input_length: expected integer, got "abc"`.

use std::fmt;
use std::sync::{Arc, Mutex};

/// What went wrong while producing a workload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// A bad input line. Fatal unless the reader skips bad lines.
    #[error("{0}")]
    Line(LineError),
    /// The file could not be opened or read. Always fatal. The OS reason is
    /// the error's source, so a chain printer shows it once.
    #[error("{path}: cannot read")]
    Io {
        /// File being read.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The workload spec is inconsistent (e.g. two sources, a zero rate). Fatal.
    #[error("workload{}{field}: {problem}", if field.is_empty() { "" } else { "." })]
    Spec {
        /// Spec field, dotted (`arrivals.rate_per_s`); empty for the whole workload.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl TraceError {
    /// A spec error.
    pub fn spec(field: impl Into<String>, problem: impl Into<String>) -> TraceError {
        TraceError::Spec {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// One bad input line: `file:line: field: problem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// File name as the user gave it.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// Field at fault (`line` when the whole line is unreadable).
    pub field: String,
    /// What is wrong, lowercase, no trailing period.
    pub problem: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.field, self.problem
        )
    }
}

/// Problems a parser finds in one line, before the reader adds file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Field at fault.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Largest prompt or output length a trace line may declare (16 Mi tokens):
/// beyond any model's context, and it keeps a corrupt line from making
/// [`crate::trace::Prompt::block_keys`] allocate gigabytes.
pub const MAX_TRACE_TOKENS: u32 = 1 << 24;

/// `Err` naming `field` when `n` exceeds [`MAX_TRACE_TOKENS`].
pub fn check_token_count(field: &str, n: u32) -> Result<u32, FieldError> {
    if n > MAX_TRACE_TOKENS {
        return Err(FieldError::new(
            field,
            format!("{n} tokens exceeds the limit of {MAX_TRACE_TOKENS}"),
        ));
    }
    Ok(n)
}

/// `Err` on `hash_ids` unless `n_ids` is `ceil(input_length / tokens_per_id)`
/// (`tokens_per_id` must be positive).
pub fn check_hash_id_count(
    n_ids: usize,
    input_length: u32,
    tokens_per_id: u32,
) -> Result<(), FieldError> {
    let expect = (input_length as u64).div_ceil(tokens_per_id as u64);
    if n_ids as u64 != expect {
        return Err(FieldError::new(
            "hash_ids",
            format!(
                "{n_ids} ids for input_length {input_length} (expected ceil({input_length}/{tokens_per_id}) = {expect})"
            ),
        ));
    }
    Ok(())
}

/// Counts lines skipped in lenient mode; shared between a reader and its caller.
///
/// Keeps the first few errors so a CLI can show why lines were skipped.
#[derive(Clone, Debug, Default)]
pub struct SkippedLines {
    inner: Arc<Mutex<SkippedInner>>,
}

#[derive(Debug, Default)]
struct SkippedInner {
    n_skipped: u64,
    first: Vec<LineError>,
}

impl SkippedLines {
    /// How many errors are kept for display.
    pub const N_KEPT: usize = 5;

    /// A fresh counter.
    pub fn new() -> SkippedLines {
        SkippedLines::default()
    }

    /// Records one skipped line.
    pub fn record(&self, err: LineError) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.n_skipped += 1;
        if g.first.len() < Self::N_KEPT {
            g.first.push(err);
        }
    }

    /// Lines skipped so far.
    pub fn n_skipped(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .n_skipped
    }

    /// The first [`Self::N_KEPT`] skipped lines' errors.
    pub fn first_errors(&self) -> Vec<LineError> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first
            .clone()
    }
}

/// `did you mean "x"?` for the valid name nearest to `got`, if any is close.
pub fn suggest(got: &str, valid: &[&str]) -> String {
    let best = valid
        .iter()
        .map(|v| (strsim::jaro_winkler(got, v), *v))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, v)) => format!(" (did you mean \"{v}\"?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_error_renders_file_line_field_problem() {
        let e = LineError {
            file: "conv.jsonl".into(),
            line: 1043,
            field: "input_length".into(),
            problem: "expected integer, got \"abc\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "conv.jsonl:1043: input_length: expected integer, got \"abc\""
        );
    }

    #[test]
    fn skipped_lines_counts_and_keeps_first() {
        let s = SkippedLines::new();
        let s2 = s.clone();
        for i in 0..8 {
            s2.record(LineError {
                file: "f".into(),
                line: i,
                field: "x".into(),
                problem: "bad".into(),
            });
        }
        assert_eq!(s.n_skipped(), 8);
        assert_eq!(s.first_errors().len(), SkippedLines::N_KEPT);
    }

    #[test]
    fn suggests_near_names_only() {
        assert_eq!(
            suggest("mooncak", &["mooncake", "azure"]),
            " (did you mean \"mooncake\"?)"
        );
        assert_eq!(suggest("zzz", &["mooncake", "azure"]), "");
    }
}
