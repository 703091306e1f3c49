//! A log-bucketed histogram for token-level latencies (ITL), whose sample
//! count is too large to keep: percentiles within 1% relative error.

/// Buckets grow by 1% per bucket from 1 ns.
const GROWTH: f64 = 1.01;

/// Histogram of durations in nanoseconds with ≤ 1% relative error.
#[derive(Clone, Debug, Default)]
pub struct LogHistogram {
    counts: Vec<u64>,
    n: u64,
    sum_ns: u128,
    max_ns: u64,
    /// The last (sample, bucket): the requests of one decode step usually
    /// record the same gap, and `ln` dominates the cost of a record.
    last: (u64, usize),
}

fn bucket(ns: u64) -> usize {
    if ns <= 1 {
        0
    } else {
        ((ns as f64).ln() / GROWTH.ln()).floor() as usize + 1
    }
}

fn bucket_upper(b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        GROWTH.powi(b as i32)
    }
}

impl LogHistogram {
    /// Records one sample.
    pub fn record(&mut self, ns: u64) {
        let b = if self.n > 0 && self.last.0 == ns {
            self.last.1
        } else {
            bucket(ns)
        };
        self.last = (ns, b);
        if b >= self.counts.len() {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.n += 1;
        self.sum_ns += ns as u128;
        self.max_ns = self.max_ns.max(ns);
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &LogHistogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Exact mean in ns (None when empty).
    pub fn mean_ns(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum_ns as f64 / self.n as f64)
    }

    /// Nearest-rank percentile `p` in (0, 100], as the bucket's upper bound
    /// capped at the true maximum (None when empty).
    pub fn percentile_ns(&self, p: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_upper(b).min(self.max_ns as f64));
            }
        }
        Some(self.max_ns as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_one_percent() {
        let mut h = LogHistogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        for (p, exact) in [
            (50.0, 5_000_000.0),
            (90.0, 9_000_000.0),
            (99.0, 9_900_000.0),
        ] {
            let got = h.percentile_ns(p).unwrap();
            assert!(
                (got - exact).abs() / exact <= 0.0101,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(h.percentile_ns(100.0).unwrap(), 10_000_000.0);
        assert_eq!(h.count(), 10_000);
        assert!(LogHistogram::default().percentile_ns(50.0).is_none());
    }
}
