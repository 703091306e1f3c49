//! Reading a results directory back (`summary.json`, `pods.csv`,
//! `requests.csv`, `timeseries.csv`, `config.json`, `routing.csv`) for
//! `kvsim report`.
//!
//! These are read-side views: they name only the fields the report uses, so
//! extra fields and columns written by newer versions are ignored. Parsers
//! take readers; the CLI opens the files and passes the path as `file` so
//! every error names it.

use std::collections::BTreeSet;
use std::io::Read;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::write::TIMESERIES_COLUMNS;
use crate::metrics::percentile::Dist;
use crate::metrics::summary::Throughput;

/// Why a results file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsError {
    /// The file is not valid JSON or lacks a required field.
    #[error("{file}: invalid JSON: {message}")]
    Json {
        /// File path as given.
        file: String,
        /// serde_json's message (names the field, line and column).
        message: String,
    },
    /// The CSV is malformed (unequal row lengths, bad UTF-8, unparsable cell).
    #[error("{file}:{line}: {message}")]
    Csv {
        /// File path as given.
        file: String,
        /// 1-based line number (0 when unknown).
        line: u64,
        /// csv/serde message.
        message: String,
    },
    /// A required column is missing from the header.
    #[error("{file}: missing column \"{column}\" (columns: {available}){}", did_you_mean(.suggestion))]
    MissingColumn {
        /// File path as given.
        file: String,
        /// The column the report needs.
        column: String,
        /// The header as read.
        available: String,
        /// Nearest header name, when one is close.
        suggestion: Option<String>,
    },
    /// A value parsed but is out of range.
    #[error("{file}:{line}: field \"{field}\": {reason}, got \"{value}\"")]
    Field {
        /// File path as given.
        file: String,
        /// 1-based line number.
        line: u64,
        /// Column name.
        field: String,
        /// The offending value.
        value: String,
        /// What was expected.
        reason: String,
    },
}

fn did_you_mean(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!("; did you mean \"{s}\"?"))
        .unwrap_or_default()
}

/// `summary.json` → `latency`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct LatencyView {
    /// Time to first token, ms.
    pub ttft_ms: Dist,
    /// Time per output token, ms.
    pub tpot_ms: Dist,
    /// Inter-token latency, ms.
    #[serde(default)]
    pub itl_ms: Dist,
    /// End to end, ms.
    pub e2e_ms: Dist,
    /// Queue wait at the pod, ms.
    pub queue_wait_ms: Dist,
}

/// The run-level numbers of `summary.json` the report shows.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct SummaryView {
    /// Workload requests that arrived by the end.
    pub requests_total: u64,
    /// Completed.
    pub requests_completed: u64,
    /// Rejected.
    pub requests_rejected: u64,
    /// Unfinished at the end.
    pub requests_unfinished: u64,
    /// Workload requests arriving after the horizon (absent before schema 2).
    #[serde(default)]
    pub requests_after_horizon: u64,
    /// First arrival to last completion, s.
    pub duration_s: f64,
    /// Token-weighted prefix-cache hit rate, fraction.
    pub hit_rate: f64,
    /// Σ preemptions.
    pub preemptions: u64,
    /// Latencies.
    pub latency: LatencyView,
    /// Throughput.
    pub throughput: Throughput,
    /// Worst pool's max / mean requests per pod.
    pub imbalance: f64,
    /// Pods that received no request (absent from older summaries).
    #[serde(default)]
    pub idle_pods: Vec<String>,
    /// EPP decisions.
    #[serde(default)]
    pub routing_decisions: u64,
    /// Decisions on a stale index view.
    #[serde(default)]
    pub stale_decisions: u64,
}

/// The provenance fields of `config.json`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ConfigView {
    /// Scenario name.
    #[serde(default)]
    pub name: Option<String>,
    /// Master seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// kvsim version that wrote the run.
    #[serde(default)]
    pub kvsim_version: Option<String>,
    /// `timeseries.csv` sampling interval, ms.
    #[serde(default)]
    pub sample_interval_ms: Option<u64>,
}

/// One row of `pods.csv` (a pod or a `pool:*` row).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct PodRow {
    /// Pod name, or `pool:<role>`.
    pub name: String,
    /// Role.
    pub role: String,
    /// Requests routed here.
    pub requests: u64,
    /// Completed here.
    pub completed: u64,
    /// Hit rate, fraction.
    pub hit_rate: f64,
    /// Preemptions.
    pub preemptions: u64,
    /// Busy fraction.
    pub busy_fraction: f64,
    /// Mean sampled KV usage, fraction.
    pub kv_usage_mean: f64,
    /// Largest sampled waiting queue.
    pub max_waiting: u64,
}

impl PodRow {
    /// Whether this is a pool aggregate rather than a pod.
    pub fn is_pool(&self) -> bool {
        self.name.starts_with("pool:")
    }
}

/// The columns of `requests.csv` the report uses.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct RequestRow {
    /// Pod name.
    pub pod: String,
    /// Time to first token, ms.
    pub ttft_ms: f64,
    /// Time per output token, ms (empty for one-token outputs).
    pub tpot_ms: Option<f64>,
}

/// One row of `timeseries.csv`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Sample {
    /// Sample time, s.
    pub t_s: f64,
    /// Pod name.
    pub pod: String,
    /// KV usage, fraction.
    pub kv_usage: f64,
    /// Waiting-queue length.
    pub waiting: u64,
    /// Running requests.
    pub running: u64,
    /// Cumulative prefix-cache query tokens.
    pub prefix_cache_queries: u64,
    /// Cumulative prefix-cache hit tokens.
    pub prefix_cache_hits: u64,
}

/// Everything the report reads from one results directory.
#[derive(Clone, Debug)]
pub struct RunResults {
    /// Legend and table label (see [`run_label`]).
    pub label: String,
    /// The directory as given on the command line.
    pub dir: String,
    /// `config.json` provenance (default when the file is absent).
    pub config: ConfigView,
    /// `summary.json`.
    pub summary: SummaryView,
    /// `pods.csv`: pods, then pools.
    pub pods: Vec<PodRow>,
    /// `requests.csv`.
    pub requests: Vec<RequestRow>,
    /// `timeseries.csv`.
    pub samples: Vec<Sample>,
    /// Rows of `routing.csv`, when present.
    pub routing_rows: Option<u64>,
}

/// `timeseries.csv` interval when `config.json` does not say (kvsim's default).
pub const DEFAULT_SAMPLE_INTERVAL_MS: u64 = 1000;

impl RunResults {
    /// The sampling interval of `timeseries.csv`, s.
    pub fn sample_interval_s(&self) -> f64 {
        self.config
            .sample_interval_ms
            .unwrap_or(DEFAULT_SAMPLE_INTERVAL_MS)
            .max(1) as f64
            * 1e-3
    }

    /// Pod names: the pod rows of `pods.csv`, then any other pod seen in
    /// `timeseries.csv` or `requests.csv`, in order of first appearance.
    pub fn pod_names(&self) -> Vec<String> {
        ordered_unique(
            self.pods
                .iter()
                .filter(|p| !p.is_pool())
                .map(|p| p.name.as_str())
                .chain(self.samples.iter().map(|s| s.pod.as_str()))
                .chain(self.requests.iter().map(|r| r.pod.as_str())),
        )
    }

    /// The samples of one pod, in file (time) order.
    pub fn pod_samples(&self, pod: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.pod == pod).collect()
    }
}

/// A run's label: `name · seed N` from `config.json`, else the directory's
/// last component.
pub fn run_label(config: &ConfigView, dir_name: &str) -> String {
    match (&config.name, config.seed) {
        (Some(n), Some(s)) => format!("{n} · seed {s}"),
        (Some(n), None) => n.clone(),
        _ => dir_name.to_string(),
    }
}

/// Makes labels unique by appending the directory to repeated ones, so
/// two runs of one scenario and seed stay apart in legends.
pub fn disambiguate_labels(runs: &mut [RunResults]) {
    let labels: Vec<String> = runs.iter().map(|r| r.label.clone()).collect();
    for r in runs.iter_mut() {
        if labels.iter().filter(|l| **l == r.label).count() > 1 {
            r.label = format!("{} ({})", r.label, r.dir);
        }
    }
}

/// Parses `summary.json`.
pub fn parse_summary(r: impl Read, file: &str) -> Result<SummaryView, ResultsError> {
    parse_json(r, file)
}

/// Parses `config.json`.
pub fn parse_config(r: impl Read, file: &str) -> Result<ConfigView, ResultsError> {
    parse_json(r, file)
}

/// Parses `pods.csv`.
pub fn parse_pods(r: impl Read, file: &str) -> Result<Vec<PodRow>, ResultsError> {
    let rows: Vec<PodRow> = parse_csv(
        r,
        file,
        &[
            "name",
            "role",
            "requests",
            "completed",
            "hit_rate",
            "preemptions",
            "busy_fraction",
            "kv_usage_mean",
            "max_waiting",
        ],
    )?;
    Ok(rows)
}

/// Parses `requests.csv`; latencies must be finite and non-negative.
pub fn parse_requests(r: impl Read, file: &str) -> Result<Vec<RequestRow>, ResultsError> {
    let rows: Vec<RequestRow> = parse_csv(r, file, &["pod", "ttft_ms", "tpot_ms"])?;
    for (i, row) in rows.iter().enumerate() {
        let line = i as u64 + 2;
        check_latency(file, line, "ttft_ms", row.ttft_ms)?;
        if let Some(t) = row.tpot_ms {
            check_latency(file, line, "tpot_ms", t)?;
        }
    }
    Ok(rows)
}

/// Parses `timeseries.csv`; each pod's cumulative counters must not decrease
/// and hits must not exceed queries.
pub fn parse_timeseries(r: impl Read, file: &str) -> Result<Vec<Sample>, ResultsError> {
    let rows: Vec<Sample> = parse_csv(r, file, TIMESERIES_COLUMNS)?;
    let mut last: Vec<(&str, u64, u64)> = Vec::new();
    for (i, s) in rows.iter().enumerate() {
        let line = i as u64 + 2;
        let field = |field: &str, value: String, reason: &str| {
            field_error(file, line, field, &value, reason)
        };
        if !s.t_s.is_finite() || s.t_s < 0.0 {
            return Err(field(
                "t_s",
                s.t_s.to_string(),
                "expected a non-negative time",
            ));
        }
        if s.prefix_cache_hits > s.prefix_cache_queries {
            return Err(field(
                "prefix_cache_hits",
                s.prefix_cache_hits.to_string(),
                "exceeds prefix_cache_queries",
            ));
        }
        match last.iter_mut().find(|(p, _, _)| *p == s.pod) {
            Some(prev) => {
                if s.prefix_cache_queries < prev.1 {
                    return Err(field(
                        "prefix_cache_queries",
                        s.prefix_cache_queries.to_string(),
                        "cumulative counter decreased for this pod",
                    ));
                }
                if s.prefix_cache_hits < prev.2 {
                    return Err(field(
                        "prefix_cache_hits",
                        s.prefix_cache_hits.to_string(),
                        "cumulative counter decreased for this pod",
                    ));
                }
                *prev = (&s.pod, s.prefix_cache_queries, s.prefix_cache_hits);
            }
            None => last.push((&s.pod, s.prefix_cache_queries, s.prefix_cache_hits)),
        }
    }
    Ok(rows)
}

/// Counts the data rows of a CSV (used for the optional `routing.csv`).
pub fn count_csv_rows(r: impl Read, file: &str) -> Result<u64, ResultsError> {
    let mut rd = csv::Reader::from_reader(r);
    let mut n = 0;
    for rec in rd.records() {
        rec.map_err(|e| csv_error(file, &e))?;
        n += 1;
    }
    Ok(n)
}

/// Pod names in order of first appearance in `names`.
pub fn ordered_unique<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for n in names {
        if seen.insert(n) {
            out.push(n.to_string());
        }
    }
    out
}

fn check_latency(file: &str, line: u64, field: &str, v: f64) -> Result<(), ResultsError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(field_error(
            file,
            line,
            field,
            &v.to_string(),
            "expected a finite non-negative latency",
        ))
    }
}

/// A [`ResultsError::Field`] for `file:line`.
pub(crate) fn field_error(
    file: &str,
    line: u64,
    field: &str,
    value: &str,
    reason: &str,
) -> ResultsError {
    ResultsError::Field {
        file: file.into(),
        line,
        field: field.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse_json<T: DeserializeOwned>(r: impl Read, file: &str) -> Result<T, ResultsError> {
    serde_json::from_reader(r).map_err(|e| ResultsError::Json {
        file: file.into(),
        message: e.to_string(),
    })
}

/// A [`ResultsError::Csv`] with csv's message (for a cell that failed to
/// deserialize, only the cause: see `csv_error_with_headers`).
pub(crate) fn csv_error(file: &str, e: &csv::Error) -> ResultsError {
    csv_error_with_headers(file, e, None)
}

/// Names the column of a cell that failed to deserialize, when known.
fn csv_error_with_headers(
    file: &str,
    e: &csv::Error,
    headers: Option<&csv::StringRecord>,
) -> ResultsError {
    let message = match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match (err.field(), headers) {
            (Some(i), Some(h)) => match h.get(i as usize) {
                Some(name) => format!("field \"{name}\": {}", err.kind()),
                None => err.kind().to_string(),
            },
            _ => err.kind().to_string(),
        },
        _ => e.to_string(),
    };
    ResultsError::Csv {
        file: file.into(),
        line: e.position().map_or(0, |p| p.line()),
        message,
    }
}

/// Reads all rows after checking that every `required` column is present.
fn parse_csv<T: DeserializeOwned>(
    r: impl Read,
    file: &str,
    required: &[&str],
) -> Result<Vec<T>, ResultsError> {
    let mut rd = csv::Reader::from_reader(r);
    let headers = rd.headers().map_err(|e| csv_error(file, &e))?.clone();
    // kvsim writes no header when there are no rows (e.g. nothing completed).
    if headers.is_empty() {
        return Ok(Vec::new());
    }
    for col in required {
        if !headers.iter().any(|h| h == *col) {
            // Columns the report needs are not typos of another one.
            let suggestion = headers
                .iter()
                .filter(|h| !required.contains(h))
                .map(|h| (strsim::levenshtein(h, col), h))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, h)| h.to_string());
            return Err(ResultsError::MissingColumn {
                file: file.into(),
                column: (*col).into(),
                available: headers.iter().collect::<Vec<_>>().join(","),
                suggestion,
            });
        }
    }
    let mut rows = Vec::new();
    for rec in rd.deserialize() {
        rows.push(rec.map_err(|e| csv_error_with_headers(file, &e, Some(&headers)))?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_with_empty_tpot_and_extra_columns() {
        let csv = "id,pod,ttft_ms,tpot_ms,e2e_ms\n0,pod-0,20.5,7.5,100\n1,pod-1,3,,3\n";
        let rows = parse_requests(csv.as_bytes(), "requests.csv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].tpot_ms, None);
        assert_eq!(rows[0].ttft_ms, 20.5);
    }

    #[test]
    fn empty_file_has_no_rows() {
        assert!(parse_requests(&b""[..], "requests.csv").unwrap().is_empty());
    }

    #[test]
    fn missing_column_names_file_and_suggests() {
        let csv = "id,pod,ttft,tpot_ms\n0,pod-0,1,2\n";
        let e = parse_requests(csv.as_bytes(), "r/requests.csv").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("r/requests.csv"), "{msg}");
        assert!(msg.contains("\"ttft_ms\""), "{msg}");
        assert!(msg.contains("did you mean \"ttft\""), "{msg}");
    }

    #[test]
    fn bad_cell_names_line() {
        let csv = "pod,ttft_ms,tpot_ms\npod-0,1,2\npod-0,abc,2\n";
        let msg = parse_requests(csv.as_bytes(), "requests.csv")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("requests.csv:3:"), "{msg}");
        assert!(msg.contains("ttft_ms"), "{msg}");
    }

    #[test]
    fn negative_latency_is_rejected() {
        let csv = "pod,ttft_ms,tpot_ms\npod-0,-1,2\n";
        let msg = parse_requests(csv.as_bytes(), "requests.csv")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("requests.csv:2: field \"ttft_ms\""), "{msg}");
    }

    #[test]
    fn decreasing_counter_is_rejected() {
        let csv = "t_s,pod,kv_usage,waiting,running,prefix_cache_queries,prefix_cache_hits\n\
                   0.0,a,0,0,0,10,5\n0.0,b,0,0,0,0,0\n1.0,a,0,0,0,9,5\n";
        let msg = parse_timeseries(csv.as_bytes(), "ts.csv")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("ts.csv:4: field \"prefix_cache_queries\""),
            "{msg}"
        );
    }

    #[test]
    fn summary_json_error_names_file() {
        let msg = parse_summary(&b"{\"requests_total\": 1}"[..], "x/summary.json")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("x/summary.json: invalid JSON"), "{msg}");
        assert!(msg.contains("missing field"), "{msg}");
    }

    #[test]
    fn config_fields_are_optional() {
        let c = parse_config(&b"{\"name\": \"q\", \"other\": 1}"[..], "config.json").unwrap();
        assert_eq!(c.name.as_deref(), Some("q"));
        assert_eq!(c.seed, None);
    }

    #[test]
    fn ordered_unique_keeps_first_appearance() {
        assert_eq!(ordered_unique(["b", "a", "b", "c"]), vec!["b", "a", "c"]);
    }
}
