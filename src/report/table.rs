//! The human-readable summary printed after a run.

use std::fmt::Write;

use crate::metrics::summary::Summary;

/// Renders `s` as an aligned text table.
pub fn render(name: &str, s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "scenario {name}");
    let after_horizon = match s.requests_after_horizon {
        0 => String::new(),
        n => format!(" ({n} more after the horizon)"),
    };
    let _ = writeln!(
        o,
        "requests: {} completed, {} rejected, {} unfinished, of {} arrived{after_horizon}; span {:.1} s",
        s.requests_completed,
        s.requests_rejected,
        s.requests_unfinished,
        s.requests_total,
        s.duration_s
    );
    let _ = writeln!(
        o,
        "prefix-cache hit rate (vLLM, tokens): {:.2}%   preemptions: {}   imbalance (max/mean req per pod, worst pool): {:.2}",
        100.0 * s.hit_rate,
        s.preemptions,
        s.imbalance
    );
    if !s.idle_pods.is_empty() {
        let _ = writeln!(o, "idle pods (no request): {}", s.idle_pods.join(", "));
    }
    let _ = writeln!(
        o,
        "throughput: {:.2} req/s, {:.0} output tok/s, {:.0} total tok/s",
        s.throughput.requests_per_s,
        s.throughput.output_tokens_per_s,
        s.throughput.total_tokens_per_s
    );
    let _ = writeln!(
        o,
        "\n{:<16}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "latency (ms)", "mean", "p50", "p90", "p99", "max"
    );
    for (label, d) in [
        ("TTFT", &s.latency.ttft_ms),
        ("TPOT", &s.latency.tpot_ms),
        ("ITL", &s.latency.itl_ms),
        ("E2E", &s.latency.e2e_ms),
        ("queue wait", &s.latency.queue_wait_ms),
    ] {
        // An empty distribution has no statistics (summary.json holds zeros).
        let cell = |x: f64| match d.count {
            0 => "-".to_string(),
            _ => format!("{x:.2}"),
        };
        let _ = writeln!(
            o,
            "{label:<16}{:>10}{:>10}{:>10}{:>10}{:>10}",
            cell(d.mean),
            cell(d.p50),
            cell(d.p90),
            cell(d.p99),
            cell(d.max)
        );
    }
    let _ = writeln!(
        o,
        "\n{:<20}{:>8}{:>10}{:>10}{:>9}{:>9}{:>9}{:>9}",
        "pod", "role", "requests", "hit rate", "preempt", "busy", "kv mean", "max q"
    );
    for p in s.pods.iter().chain(&s.pools) {
        let _ = writeln!(
            o,
            "{:<20}{:>8}{:>10}{:>9.2}%{:>9}{:>8.1}%{:>8.1}%{:>9}",
            p.name,
            p.role,
            p.requests,
            100.0 * p.hit_rate,
            p.preemptions,
            100.0 * p.busy_fraction,
            100.0 * p.kv_usage_mean,
            p.max_waiting
        );
    }
    o
}
