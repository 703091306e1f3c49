//! CSV and JSON writers for run results.

use std::io::Write;

use crate::cluster::epp_router::DecisionRow;
use crate::cluster::{IncompleteRequest, Rejection};
use crate::metrics::summary::{PodSummary, RequestRecord, Summary};
use crate::pod::engine::Pod;

/// Writes `value` as pretty JSON with a trailing newline.
pub fn json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}

/// The header of `requests.csv`: [`RequestRecord`]'s fields in order.
pub(crate) const REQUESTS_COLUMNS: &[&str] = &[
    "id",
    "pod",
    "arrival_ms",
    "dispatch_ms",
    "first_scheduled_ms",
    "first_token_ms",
    "finish_ms",
    "prompt_tokens",
    "cached_tokens",
    "output_tokens",
    "preemptions",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "queue_wait_ms",
];

/// `requests.csv`: one row per completed request, by id.
pub fn requests_csv(out: &mut dyn Write, records: &[RequestRecord]) -> csv::Result<()> {
    // serde writes a header only with the first row: written by hand, it is
    // there when no request completed, so readers see the columns, not 0 bytes.
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    w.write_record(REQUESTS_COLUMNS)?;
    for r in records {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// Why a request is in `unfinished.csv`.
pub fn unfinished_reason(r: &IncompleteRequest) -> &'static str {
    match (r.rejection, r.stalled, r.after_horizon) {
        (Some(Rejection::TooLong), ..) => "rejected_too_long",
        (Some(Rejection::NoEndpoint), ..) => "rejected_no_endpoint",
        (None, true, _) => "stalled",
        (None, false, true) => "after_horizon",
        (None, false, false) => "cut_by_horizon",
    }
}

/// `unfinished.csv`: `id,pod,reason` for every workload request that did
/// not complete, by id (header only when all did), so no request is lost.
pub fn unfinished_csv(
    out: &mut dyn Write,
    requests: &[IncompleteRequest],
    pod_names: &[&str],
) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["id", "pod", "reason"])?;
    for r in requests {
        let pod = r.pod.map_or("", |p| pod_names[p as usize]);
        w.write_record([r.id.to_string().as_str(), pod, unfinished_reason(r)])?;
    }
    w.flush()?;
    Ok(())
}

/// `pods.csv`: one row per pod, then one per pool.
pub fn pods_csv(out: &mut dyn Write, summary: &Summary) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    for p in summary.pods.iter().chain(&summary.pools) {
        w.serialize::<&PodSummary>(p)?;
    }
    w.flush()?;
    Ok(())
}

/// The header of `timeseries.csv` (also the columns `kvsim report` requires).
pub(crate) const TIMESERIES_COLUMNS: &[&str] = &[
    "t_s",
    "pod",
    "kv_usage",
    "waiting",
    "running",
    "prefix_cache_queries",
    "prefix_cache_hits",
];

/// `timeseries.csv`: each pod's samples (columns `TIMESERIES_COLUMNS`), in
/// time order per pod.
pub fn timeseries_csv(out: &mut dyn Write, pods: &[Pod]) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(TIMESERIES_COLUMNS)?;
    for p in pods {
        for s in &p.counters().samples {
            w.write_record([
                format!("{:.3}", s.t_ns as f64 * 1e-9),
                p.name.clone(),
                format!("{:.6}", s.kv_usage),
                s.n_waiting.to_string(),
                s.n_running.to_string(),
                s.prefix_queries.to_string(),
                s.prefix_hits.to_string(),
            ])?;
        }
    }
    w.flush()?;
    Ok(())
}

/// `routing.csv`: one row per (request, profile, candidate): the candidate's
/// total and per-scorer raw and weighted scores, the index's and the pod's
/// view of its cached prefix (blocks), and whether it was picked.
pub fn routing_csv(out: &mut dyn Write, rows: &[DecisionRow]) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "request_id",
        "t_ms",
        "profile",
        "pod",
        "picked",
        "total",
        "index_prefix_blocks",
        "pod_prefix_blocks",
        "scores",
    ])?;
    for r in rows {
        let scores: Vec<String> = r
            .scores
            .iter()
            .map(|(n, raw, wt)| {
                format!(
                    "{n}={}/{wt:.4}",
                    if raw.is_nan() {
                        "-".into()
                    } else {
                        format!("{raw:.4}")
                    }
                )
            })
            .collect();
        w.write_record([
            r.request_id.to_string(),
            format!("{:.3}", r.t_ms),
            r.profile.to_string(),
            r.pod.clone(),
            r.picked.to_string(),
            format!("{:.4}", r.total),
            r.index_prefix_blocks.to_string(),
            r.pod_prefix_blocks.to_string(),
            scores.join(";"),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_of(records: &[RequestRecord]) -> String {
        let mut b = Vec::new();
        requests_csv(&mut b, records).unwrap();
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn requests_csv_has_its_header_even_without_rows() {
        let header = format!("{}\n", REQUESTS_COLUMNS.join(","));
        assert_eq!(csv_of(&[]), header);
        // The hand-written header is the one serde would write.
        let r = RequestRecord {
            id: 7,
            pod: "pod-0".into(),
            arrival_ms: 0.0,
            dispatch_ms: 0.0,
            first_scheduled_ms: 1.0,
            first_token_ms: 2.0,
            finish_ms: 3.0,
            prompt_tokens: 16,
            cached_tokens: 0,
            output_tokens: 2,
            preemptions: 0,
            ttft_ms: 2.0,
            tpot_ms: Some(1.0),
            e2e_ms: 3.0,
            queue_wait_ms: 1.0,
        };
        let mut serde_csv = csv::Writer::from_writer(Vec::new());
        serde_csv.serialize(&r).unwrap();
        let serde_csv = String::from_utf8(serde_csv.into_inner().unwrap()).unwrap();
        assert_eq!(csv_of(&[r]), serde_csv);
        assert!(serde_csv.starts_with(&header));
    }
}
