//! Nearest-rank percentiles over sorted samples.

use serde::{Deserialize, Serialize};

/// Mean and nearest-rank percentiles of a sample. `Deserialize` lets
/// `kvsim report` read it back from `summary.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    /// Number of samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// 0-based index of the nearest-rank `q`-quantile (0 < q ≤ 1) among `len`
/// ascending values: `clamp(ceil(q·len), 1, len) − 1`. `len` must be > 0.
pub fn rank_index(len: usize, q: f64) -> usize {
    let rank = (q * len as f64).ceil().max(1.0) as usize;
    rank.min(len) - 1
}

/// Nearest-rank quantile `q` (0 < q ≤ 1) of ascending `sorted`; NaN when empty.
pub fn nearest_rank_q(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[rank_index(sorted.len(), q)]
}

/// Nearest-rank percentile `p` (0 < p ≤ 100) of ascending `sorted`.
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    nearest_rank_q(sorted, p / 100.0)
}

impl Dist {
    /// Sorts `values` (total order, NaN last) and summarises them. Empty → all zero.
    pub fn of(mut values: Vec<f64>) -> Dist {
        if values.is_empty() {
            return Dist::default();
        }
        values.sort_by(f64::total_cmp);
        let sum: f64 = values.iter().sum();
        Dist {
            count: values.len() as u64,
            mean: sum / values.len() as f64,
            p50: nearest_rank(&values, 50.0),
            p90: nearest_rank(&values, 90.0),
            p99: nearest_rank(&values, 99.0),
            max: *values.last().expect("non-empty"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_hand_computed() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), 5.0);
        assert_eq!(nearest_rank(&v, 90.0), 9.0);
        assert_eq!(nearest_rank(&v, 99.0), 10.0);
        assert_eq!(nearest_rank(&v, 1.0), 1.0);
        assert_eq!(nearest_rank_q(&v, 0.9), 9.0);
        assert_eq!(nearest_rank_q(&v, 0.0), 1.0);
        assert!(nearest_rank_q(&[], 0.5).is_nan());
        assert_eq!((rank_index(10, 0.95), rank_index(1, 0.01)), (9, 0));
        let d = Dist::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((d.count, d.mean, d.p50, d.max), (3, 2.0, 2.0, 3.0));
    }

    #[test]
    fn dist_reads_back_what_it_writes() {
        let d = Dist::of(vec![0.5, 7.25, 3.0]);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Dist>(&json).unwrap(), d);
    }
}
