//! Requests routed to each pod, one bar per run in each pod's group.

use super::{all_pods, Axis, BarGroup, Bars, Body, Figure, Format};
use crate::report::results::RunResults;

/// Requests per pod from `pods.csv`.
pub fn requests_per_pod(runs: &[RunResults]) -> Figure {
    let pods = all_pods(runs);
    let groups: Vec<BarGroup> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| BarGroup {
            label: r.label.clone(),
            detail: Some(format!("imbalance {:.2}", r.summary.imbalance)),
            color_idx: i,
            values: pods
                .iter()
                .map(|pod| {
                    r.pods
                        .iter()
                        .find(|p| !p.is_pool() && p.name == *pod)
                        .map(|p| p.requests as f64)
                })
                .collect(),
        })
        .collect();
    let top = groups
        .iter()
        .flat_map(|g| g.values.iter().flatten().copied())
        .map(|v| v * 1.08);
    Figure {
        stem: "requests_per_pod".into(),
        title: "Requests routed to each pod".into(),
        caption: "Requests the router sent to each pod over the whole run (pods.csv \
                  requests). The legend gives each run's imbalance = max / mean requests \
                  per pod within a pool, worst pool (1.00 is perfectly even); a pod \
                  with no bar got no request."
            .into(),
        reference: "docs/metrics.md → Per pod → requests; Run → imbalance".into(),
        body: Body::Bars(Bars {
            categories: pods,
            x_label: "pod".into(),
            y: Axis::from_zero("requests routed", top, 1.0).with_format(Format::Count),
            groups,
        }),
    }
}
