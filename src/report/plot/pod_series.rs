//! Sampled pod gauges over time, one panel per run and one line per pod:
//! KV-cache usage and waiting-queue length.

use super::hit_rate::intervals;
use super::{all_pods, time_axis, Axis, Body, Figure, Format, Panel, Series};
use crate::report::results::{RunResults, Sample};

/// KV usage per pod over time.
pub fn kv_usage(runs: &[RunResults]) -> Figure {
    let y = Axis::from_zero(
        "KV usage (% of GPU blocks)",
        runs.iter()
            .flat_map(|r| r.samples.iter().map(|s| s.kv_usage)),
        0.001,
    );
    let y = Axis::linear(&y.label, y.lo, y.hi.min(1.0)).with_format(Format::Percent);
    Figure {
        stem: "kv_usage".into(),
        title: "KV cache usage per pod".into(),
        caption: format!(
            "Sampled KV usage = 1 − free / (num_gpu_blocks − 1), free including cached \
             blocks nobody references ({}). One panel per run. The y axis stops at the \
             largest sample, not at 100%.",
            intervals(runs)
        ),
        reference: "docs/metrics.md → Per pod → kv_usage_mean; Time series".into(),
        body: Body::Lines(panels(runs, y, |s| s.kv_usage)),
    }
}

/// Waiting-queue length per pod over time.
pub fn queue_length(runs: &[RunResults]) -> Figure {
    let y = Axis::from_zero(
        "waiting requests",
        runs.iter()
            .flat_map(|r| r.samples.iter().map(|s| s.waiting as f64)),
        2.0,
    )
    .with_format(Format::Count);
    Figure {
        stem: "queue_length".into(),
        title: "Waiting-queue length per pod".into(),
        caption: format!(
            "Requests in each pod's waiting queue (dispatched, not yet running) at each \
             sample ({}). One panel per run. Samples are point-in-time: bursts between \
             samples do not show; pods.csv max_waiting is the largest sample.",
            intervals(runs)
        ),
        reference: "docs/metrics.md → Per pod → max_waiting; Time series".into(),
        body: Body::Lines(panels(runs, y, |s| s.waiting as f64)),
    }
}

fn panels(runs: &[RunResults], y: Axis, value: impl Fn(&Sample) -> f64) -> Vec<Panel> {
    let pods = all_pods(runs);
    let x = time_axis(runs);
    runs.iter()
        .map(|r| Panel {
            subtitle: Some(r.label.clone()),
            x: x.clone(),
            y: y.clone(),
            series: r
                .pod_names()
                .iter()
                .map(|pod| Series {
                    label: pod.clone(),
                    detail: None,
                    color_idx: pods.iter().position(|p| p == pod).unwrap_or(0),
                    points: r
                        .pod_samples(pod)
                        .iter()
                        .map(|s| (s.t_s, value(s)))
                        .collect(),
                })
                .collect(),
        })
        .collect()
}
