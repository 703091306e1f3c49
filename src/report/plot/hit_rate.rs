//! Prefix-cache hit rate over time: the cluster's (one line per run) and
//! each pod's (one panel per run, one line per pod).

use super::{all_pods, time_axis, Axis, Body, Figure, Format, Panel, Series};
use crate::report::results::RunResults;
use crate::report::series::{hit_rate_window_s, windowed_hit_rate};

const Y_LABEL: &str = "hit rate (% of prompt tokens)";
const REFERENCE: &str = "docs/metrics.md → Report charts → windowed hit rate";

/// The cluster-wide windowed hit rate, one line per run.
pub fn aggregate(runs: &[RunResults]) -> Figure {
    let series = runs
        .iter()
        .enumerate()
        .map(|(i, r)| Series {
            label: r.label.clone(),
            detail: Some(format!("overall {:.1}%", 100.0 * r.summary.hit_rate)),
            color_idx: i,
            points: windowed_hit_rate(&r.samples.iter().collect::<Vec<_>>(), window_s(r)),
        })
        .collect();
    Figure {
        stem: "hit_rate".into(),
        title: "Prefix-cache hit rate over time, all pods".into(),
        caption: format!(
            "Token-weighted prefix-cache hit rate of the whole cluster in each time \
             window ({}): Σ new hit tokens / Σ new query tokens over all pods, from the \
             cumulative counters in timeseries.csv. The legend gives the run's overall \
             rate (summary.json hit_rate). Windows without queries are skipped.",
            windows(runs)
        ),
        reference: REFERENCE.into(),
        body: Body::Lines(vec![Panel {
            subtitle: None,
            x: time_axis(runs),
            y: Axis::linear(Y_LABEL, 0.0, 1.0).with_format(Format::Percent),
            series,
        }]),
    }
}

/// Each pod's windowed hit rate, one panel per run.
pub fn per_pod(runs: &[RunResults]) -> Figure {
    let pods = all_pods(runs);
    let x = time_axis(runs);
    let panels = runs
        .iter()
        .map(|r| Panel {
            subtitle: Some(r.label.clone()),
            x: x.clone(),
            y: Axis::linear(Y_LABEL, 0.0, 1.0).with_format(Format::Percent),
            series: r
                .pod_names()
                .iter()
                .map(|pod| Series {
                    label: pod.clone(),
                    detail: None,
                    color_idx: pods.iter().position(|p| p == pod).unwrap_or(0),
                    points: windowed_hit_rate(&r.pod_samples(pod), window_s(r)),
                })
                .collect(),
        })
        .collect();
    Figure {
        stem: "hit_rate_per_pod".into(),
        title: "Prefix-cache hit rate over time, per pod".into(),
        caption: format!(
            "Each pod's token-weighted prefix-cache hit rate in each time window ({}): \
             new hit tokens / new query tokens. One panel per run; a pod keeps its \
             colour across panels.",
            windows(runs)
        ),
        reference: REFERENCE.into(),
        body: Body::Lines(panels),
    }
}

/// The hit-rate window of a run: whole sampling intervals, ≤ 40 windows.
fn window_s(r: &RunResults) -> f64 {
    let end_s = r.samples.iter().map(|s| s.t_s).fold(0.0, f64::max);
    hit_rate_window_s(r.sample_interval_s(), end_s)
}

/// "4 s windows of 4 samples" (or "one per sample"), per distinct setting.
fn windows(runs: &[RunResults]) -> String {
    let mut v: Vec<String> = runs
        .iter()
        .map(|r| {
            let (w, i) = (window_s(r), r.sample_interval_s());
            format!(
                "{} s windows = {} sampling intervals",
                trim(w),
                (w / i).round()
            )
        })
        .collect();
    v.dedup();
    v.join("; ")
}

/// "1 s samples", or the distinct intervals when runs differ.
pub(super) fn intervals(runs: &[RunResults]) -> String {
    let mut v: Vec<String> = runs
        .iter()
        .map(|r| format!("{} s", trim(r.sample_interval_s())))
        .collect();
    v.dedup();
    format!("every {}", v.join(" / "))
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
