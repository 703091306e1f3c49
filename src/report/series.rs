//! Plot-ready series derived from results: empirical CDFs and windowed
//! prefix-cache hit rates (`docs/metrics.md` → "Report charts").

use super::results::Sample;
use crate::metrics::percentile::nearest_rank_q;

/// Vertices of the empirical CDF `F(x) = #{v ≤ x} / n` of `values` as a
/// step line: for each distinct value `v` (ascending) a point at the previous
/// level and one at the new level, so straight segments draw the steps.
///
/// With more than `max_points` values, the steps are taken at `max_points`
/// evenly spaced levels `j/max_points` using nearest-rank quantiles, which
/// keeps vector plots small; the curve then deviates from the exact CDF by
/// at most `1/max_points` vertically. Non-finite values are ignored.
pub fn cdf_points(values: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Vec::new();
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    // (x, F(x)) at every jump of the step function.
    let mut jumps: Vec<(f64, f64)> = Vec::new();
    if n <= max_points.max(1) {
        for (i, &x) in v.iter().enumerate() {
            if i + 1 == n || v[i + 1] != x {
                jumps.push((x, (i + 1) as f64 / n as f64));
            }
        }
    } else {
        let m = max_points.max(1);
        for k in 1..=m {
            let q = k as f64 / m as f64;
            let x = nearest_rank_q(&v, q);
            match jumps.last_mut() {
                Some(last) if last.0 == x => last.1 = q,
                _ => jumps.push((x, q)),
            }
        }
    }
    let mut out = Vec::with_capacity(2 * jumps.len());
    let mut level = 0.0;
    for (x, f) in jumps {
        out.push((x, level));
        out.push((x, f));
        level = f;
    }
    out
}

/// Most windows a hit-rate-over-time line gets; longer runs use windows of
/// several sampling intervals so the line stays readable.
pub const MAX_HIT_RATE_WINDOWS: f64 = 40.0;

/// The hit-rate window for a run: `k × interval_s` with the smallest whole
/// `k ≥ 1` giving at most [`MAX_HIT_RATE_WINDOWS`] windows up to `end_s`.
pub fn hit_rate_window_s(interval_s: f64, end_s: f64) -> f64 {
    let k = (end_s / (MAX_HIT_RATE_WINDOWS * interval_s))
        .ceil()
        .max(1.0);
    k * interval_s
}

/// The token-weighted prefix-cache hit rate of the pods in `samples` per
/// window of `window_s`. Each sample falls in window `b = floor(t_s /
/// window_s)`; a pod's counters at window `b` are those of its last sample in
/// a window `≤ b` (0 before its first); the counters of the group are the
/// sums over its pods; the rate of window `b` is the change in summed hits
/// over the change in summed queries since window `b − 1`, plotted at the
/// latest sample time in window `b`. Windows without queries are left out,
/// and a last window ending less than `window_s / 2` after the previous one
/// (the run's tail) is merged into it.
/// With one pod and `window_s` = the sampling interval this is
/// `(H_k − H_{k−1}) / (Q_k − Q_{k−1})` between consecutive samples.
pub fn windowed_hit_rate(samples: &[&Sample], window_s: f64) -> Vec<(f64, f64)> {
    if samples.is_empty() || !(window_s > 0.0) {
        return Vec::new();
    }
    let pods = super::results::ordered_unique(samples.iter().map(|s| s.pod.as_str()));
    let bucket = |t: f64| (t / window_s + 1e-9).floor().max(0.0) as usize;
    let n_buckets = samples.iter().map(|s| bucket(s.t_s)).max().unwrap_or(0) + 1;
    // Per pod and window: the counters of its last sample there.
    let mut last: Vec<Vec<Option<(u64, u64)>>> = vec![vec![None; n_buckets]; pods.len()];
    let mut t_end = vec![f64::NAN; n_buckets];
    for s in samples {
        let b = bucket(s.t_s);
        let p = pods.iter().position(|n| *n == s.pod).unwrap_or(0);
        let cur = (s.prefix_cache_queries, s.prefix_cache_hits);
        let slot = &mut last[p][b];
        *slot = Some(slot.map_or(cur, |prev| prev.max(cur)));
        t_end[b] = if t_end[b].is_nan() {
            s.t_s
        } else {
            t_end[b].max(s.t_s)
        };
    }
    let mut carried = vec![(0u64, 0u64); pods.len()];
    let (mut q_prev, mut h_prev) = (0u64, 0u64);
    // (time, Δqueries, Δhits) per window with queries.
    let mut deltas: Vec<(f64, u64, u64)> = Vec::new();
    for b in 0..n_buckets {
        for (p, c) in carried.iter_mut().enumerate() {
            if let Some(v) = last[p][b] {
                *c = v;
            }
        }
        let q: u64 = carried.iter().map(|c| c.0).sum();
        let h: u64 = carried.iter().map(|c| c.1).sum();
        if q > q_prev {
            deltas.push((t_end[b], q - q_prev, h.saturating_sub(h_prev)));
        }
        q_prev = q;
        h_prev = h;
    }
    // A last window that ends less than half a window after the one before
    // holds only the run's tail: fold it into that window.
    if let [.., prev, tail] = deltas.as_slice() {
        if tail.0 - prev.0 < 0.5 * window_s {
            let merged = (tail.0, prev.1 + tail.1, prev.2 + tail.2);
            deltas.truncate(deltas.len() - 2);
            deltas.push(merged);
        }
    }
    deltas
        .into_iter()
        .map(|(t, dq, dh)| (t, dh as f64 / dq as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_s: f64, pod: &str, q: u64, h: u64) -> Sample {
        Sample {
            t_s,
            pod: pod.into(),
            kv_usage: 0.0,
            waiting: 0,
            running: 0,
            prefix_cache_queries: q,
            prefix_cache_hits: h,
        }
    }

    #[test]
    fn cdf_of_three_distinct_values() {
        let p = cdf_points(&[3.0, 1.0, 2.0], 100);
        let third = 1.0 / 3.0;
        let want = [
            (1.0, 0.0),
            (1.0, third),
            (2.0, third),
            (2.0, 2.0 * third),
            (3.0, 2.0 * third),
            (3.0, 1.0),
        ];
        assert_eq!(p.len(), want.len());
        for (a, b) in p.iter().zip(want) {
            assert!(
                (a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12,
                "{p:?}"
            );
        }
    }

    #[test]
    fn cdf_ties_make_one_step_and_nan_is_ignored() {
        let p = cdf_points(&[1.0, f64::NAN, 2.0, 1.0, 2.0], 100);
        assert_eq!(p, vec![(1.0, 0.0), (1.0, 0.5), (2.0, 0.5), (2.0, 1.0)]);
        assert!(cdf_points(&[], 10).is_empty());
    }

    #[test]
    fn cdf_downsamples_to_nearest_rank_levels() {
        // 1..=10 at 2 levels: q=0.5 → rank 5 → 5, q=1 → rank 10 → 10.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(
            cdf_points(&v, 2),
            vec![(5.0, 0.0), (5.0, 0.5), (10.0, 0.5), (10.0, 1.0)]
        );
        // All equal: one step to 1 however many levels.
        assert_eq!(cdf_points(&[4.0; 10], 3), vec![(4.0, 0.0), (4.0, 1.0)]);
    }

    #[test]
    fn windowed_rate_of_one_pod() {
        let rows = [
            s(0.2, "a", 0, 0),
            s(1.0, "a", 100, 50),
            s(2.0, "a", 100, 50),
            s(3.0, "a", 300, 200),
        ];
        let refs: Vec<&Sample> = rows.iter().collect();
        // windows: (0,0.2] no queries; (0.2,1] 50/100; (1,2] none; (2,3] 150/200.
        assert_eq!(windowed_hit_rate(&refs, 1.0), vec![(1.0, 0.5), (3.0, 0.75)]);
        // 2 s windows: w0 = [0,2): last sample t=1.0 → 50/100; w1 = [2,4): 150/200.
        assert_eq!(windowed_hit_rate(&refs, 2.0), vec![(1.0, 0.5), (3.0, 0.75)]);
        // One 4 s window: 200/300 at the last sample.
        let (t, r) = windowed_hit_rate(&refs, 4.0)[0];
        assert_eq!(t, 3.0);
        assert!((r - 200.0 / 300.0).abs() < 1e-12);
    }

    #[test]
    fn cluster_rate_carries_idle_pods_forward() {
        // Pod b has no sample in window 2: its counters carry over.
        let rows = [
            s(0.1, "a", 0, 0),
            s(0.2, "b", 0, 0),
            s(1.0, "a", 100, 50),
            s(1.5, "b", 100, 100),
            s(2.0, "a", 300, 100),
            s(3.2, "b", 200, 100),
        ];
        let refs: Vec<&Sample> = rows.iter().collect();
        // w1: Q 200 H 150 → 0.75; w2: Q 400 H 200 → 50/200; w3: Q 500 H 200 → 0/100.
        assert_eq!(
            windowed_hit_rate(&refs, 1.0),
            vec![(1.5, 0.75), (2.0, 0.25), (3.2, 0.0)]
        );
    }

    #[test]
    fn short_tail_window_is_merged() {
        let rows = [
            s(1.0, "a", 100, 50),
            s(2.9, "a", 200, 150),
            s(3.1, "a", 300, 150),
        ];
        let refs: Vec<&Sample> = rows.iter().collect();
        // Unmerged: 0.5 at 1.0, 1.0 at 2.9, 0.0 at 3.1. The window ending at
        // 3.1 s ends 0.2 s after the one before: together 100 hits / 200 queries.
        assert_eq!(windowed_hit_rate(&refs, 1.0), vec![(1.0, 0.5), (3.1, 0.5)]);
    }

    #[test]
    fn window_grows_in_whole_intervals() {
        assert_eq!(hit_rate_window_s(1.0, 37.0), 1.0);
        assert_eq!(hit_rate_window_s(1.0, 40.0), 1.0);
        assert_eq!(hit_rate_window_s(1.0, 120.5), 4.0);
        assert_eq!(hit_rate_window_s(0.5, 100.0), 2.5);
    }
}
