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
    /// record the same gap, and consecutive steps land in the same bucket.
    last: (u64, usize),
}

/// The bucket of `ns`: 0 for ns ≤ 1, else ⌊ln ns / ln 1.01⌋ + 1. This float
/// formula defines the buckets; [`BucketTable`] answers the same faster.
fn bucket(ns: u64) -> usize {
    if ns <= 1 {
        0
    } else {
        ((ns as f64).ln() / GROWTH.ln()).floor() as usize + 1
    }
}

/// Values from here on use the float formula (the table would be long and
/// such gaps never occur in a run).
const TABLE_LIMIT_NS: u64 = 1 << 50;

/// Per bucket `b`, the smallest `ns` whose [`bucket`] is at least `b`, so
/// that `bucket(ns)` is the last `b` with `lower[b] ≤ ns` (the formula is
/// monotone in `ns`). Built once from the formula itself, so it agrees
/// exactly; a record then costs a comparison or two instead of an `ln`.
struct BucketTable {
    lower: Vec<u64>,
}

impl BucketTable {
    fn get() -> &'static BucketTable {
        static TABLE: std::sync::OnceLock<BucketTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| {
            let mut lower = vec![0u64];
            let mut ns = 2u64;
            while ns < TABLE_LIMIT_NS {
                let b = bucket(ns);
                // Buckets no integer falls in start where the next one does.
                lower.resize(b + 1, ns);
                // Jump near the next boundary, then step onto it exactly.
                let mut next = (GROWTH.powi(b as i32).floor() as u64).max(ns + 1);
                while next > ns + 1 && bucket(next - 1) > b {
                    next -= 1;
                }
                while bucket(next) == b {
                    next += 1;
                }
                ns = next;
            }
            BucketTable { lower }
        })
    }

    /// [`bucket`] of `ns`, trying bucket `hint` first.
    fn bucket_near(&self, ns: u64, hint: usize) -> usize {
        let lower = &self.lower;
        if ns >= TABLE_LIMIT_NS {
            return bucket(ns);
        }
        let in_hint = hint < lower.len()
            && lower[hint] <= ns
            && lower.get(hint + 1).is_none_or(|&next| ns < next);
        if in_hint {
            return hint;
        }
        lower.partition_point(|&l| l <= ns) - 1
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
        self.record_n(ns, 1);
    }

    /// Records `n` samples of `ns` (none if `n` is 0).
    #[inline]
    pub fn record_n(&mut self, ns: u64, n: u64) {
        if n == 0 {
            return;
        }
        let b = if self.n > 0 && self.last.0 == ns {
            self.last.1
        } else {
            BucketTable::get().bucket_near(ns, self.last.1)
        };
        self.last = (ns, b);
        if b >= self.counts.len() {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += n;
        self.n += n;
        self.sum_ns += u128::from(ns) * u128::from(n);
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
    use proptest::prelude::*;

    #[test]
    fn table_agrees_with_the_formula_at_every_boundary() {
        let t = BucketTable::get();
        for b in 1..t.lower.len() {
            let l = t.lower[b];
            assert!(bucket(l) >= b, "bucket {b}: lower {l}");
            assert!(bucket(l - 1) < b, "bucket {b}: lower {l} not the smallest");
            for ns in [l - 1, l, l + 1] {
                assert_eq!(t.bucket_near(ns, 0), bucket(ns), "ns {ns}");
            }
        }
        assert_eq!(t.bucket_near(1, 5), 0);
        assert_eq!(t.bucket_near(u64::MAX, 0), bucket(u64::MAX));
    }

    proptest! {
        /// Whatever the hint, the table gives the formula's bucket.
        #[test]
        fn table_lookup_matches_the_formula(
            ns in prop_oneof![0u64..10_000, 0u64..(TABLE_LIMIT_NS * 2)],
            hint in 0usize..5000,
        ) {
            prop_assert_eq!(BucketTable::get().bucket_near(ns, hint), bucket(ns));
        }

        /// Runs of equal samples recorded at once give the histogram that
        /// recording them one by one gives.
        #[test]
        fn a_run_records_like_its_samples(
            runs in prop::collection::vec((0u64..5_000_000, 0u64..5), 0..30),
        ) {
            let (mut one_by_one, mut at_once) = (LogHistogram::default(), LogHistogram::default());
            for &(ns, n) in &runs {
                (0..n).for_each(|_| one_by_one.record(ns));
                at_once.record_n(ns, n);
            }
            prop_assert_eq!(&one_by_one.counts, &at_once.counts);
            prop_assert_eq!(
                (one_by_one.n, one_by_one.sum_ns, one_by_one.max_ns),
                (at_once.n, at_once.sum_ns, at_once.max_ns)
            );
        }
    }

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
