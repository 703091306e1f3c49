//! The searches behind `kvsim plan`, over any evaluator (pure: no IO).
//!
//! **Counts** (1 or 2 dimensions, each in `1..=max`): the cheapest point
//! (fewest GPUs, then the best hit rate) that passes. The assumption is that
//! more pods never hurt latency, so "passes" is monotone in every count:
//! - one count: bisection for the smallest passing count;
//! - two counts (outer `a`, inner `b`, e.g. prefill and decode): for each `a`
//!   upwards, bisection for the smallest passing `b` below the previous one
//!   (the minimal `b` can only shrink as `a` grows), stopping once `a` alone
//!   costs more than the best point found.
//!
//! The assumption is then checked on the evaluated points: every SLO metric
//! must not rise by more than [`MONOTONE_REL_TOL`] from a point to one with
//! at least as many pods of every kind. If it does, the search falls back to
//! a scan in order of cost, which assumes nothing and stops at the first cost
//! with a passing point.
//!
//! **Rate** (`--saturate`): the highest rate that passes, by doubling (or
//! halving) from a start rate until pass and fail bracket it, then bisection
//! until the bracket is within a relative tolerance.

use std::collections::BTreeMap;

/// How much an SLO metric may rise with more pods before the points count as
/// non-monotone (simulation noise: batch alignment, cache placement).
pub(crate) const MONOTONE_REL_TOL: f64 = 0.02;

/// Doublings or halvings tried before a rate search gives up.
const MAX_RATE_STEPS: u32 = 40;

/// The outcome of one evaluated point.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Probe {
    /// Every SLO met.
    pub(crate) pass: bool,
    /// Prefix-cache hit rate (tie-break: higher is better).
    pub(crate) hit_rate: f64,
    /// The SLO metrics, in SLO order (lower is better).
    pub(crate) metrics: Vec<f64>,
}

/// Result of a count search.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CountSearch {
    /// The cheapest passing counts, `None` when even `max` everywhere fails.
    pub(crate) best: Option<Vec<u32>>,
    /// Every evaluated point in evaluation order.
    pub(crate) evaluated: Vec<(Vec<u32>, Probe)>,
    /// The metrics were not monotone and the cost-order scan ran.
    pub(crate) fell_back: bool,
}

/// Memoizes an evaluator and records the evaluation order.
struct Memo<'a, E> {
    eval: &'a mut dyn FnMut(&[u32]) -> Result<Probe, E>,
    seen: BTreeMap<Vec<u32>, Probe>,
    order: Vec<(Vec<u32>, Probe)>,
}

impl<E> Memo<'_, E> {
    fn get(&mut self, x: &[u32]) -> Result<Probe, E> {
        if let Some(p) = self.seen.get(x) {
            return Ok(p.clone());
        }
        let p = (self.eval)(x)?;
        self.seen.insert(x.to_vec(), p.clone());
        self.order.push((x.to_vec(), p.clone()));
        Ok(p)
    }
}

/// GPUs the searched counts use.
fn cost(x: &[u32], units: &[u64]) -> u64 {
    x.iter().zip(units).map(|(&n, &u)| n as u64 * u).sum()
}

/// Better of two passing points: lower cost, then higher hit rate, then the
/// earlier (lexicographically smaller) counts.
fn better(a: (&[u32], &Probe), b: (&[u32], &Probe), units: &[u64]) -> bool {
    let (ca, cb) = (cost(a.0, units), cost(b.0, units));
    ca < cb
        || (ca == cb
            && (a.1.hit_rate > b.1.hit_rate || (a.1.hit_rate == b.1.hit_rate && a.0 < b.0)))
}

/// Smallest `x` in `lo..=hi` where `pass(x)`, given `pass(hi)`, by bisection.
fn bisect<E>(lo: u32, hi: u32, pass: &mut dyn FnMut(u32) -> Result<bool, E>) -> Result<u32, E> {
    let (mut lo, mut hi) = (lo, hi);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pass(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(hi)
}

/// The cheapest passing counts over `1..=max` in each of `dims` (1 or 2)
/// dimensions; `cost_per_unit[i]` is what one more of count `i` costs.
pub(crate) fn search_counts<E>(
    max: u32,
    cost_per_unit: &[u64],
    eval: &mut dyn FnMut(&[u32]) -> Result<Probe, E>,
) -> Result<CountSearch, E> {
    assert!(
        (1..=2).contains(&cost_per_unit.len()),
        "the CLI checks there are 1 or 2 dimensions"
    );
    let dims = cost_per_unit.len();
    let mut m = Memo {
        eval,
        seen: BTreeMap::new(),
        order: Vec::new(),
    };
    let top = vec![max; dims];
    let feasible = m.get(&top)?.pass;
    let mut best: Option<Vec<u32>> = None;
    if feasible {
        if dims == 1 {
            let x = bisect(1, max, &mut |x| Ok(m.get(&[x])?.pass))?;
            best = Some(vec![x]);
        } else {
            let mut b_hi = max;
            let mut best_probe: Option<Probe> = None;
            for a in 1..=max {
                let floor = cost(&[a, 1], cost_per_unit);
                if best
                    .as_deref()
                    .is_some_and(|bx| floor > cost(bx, cost_per_unit))
                {
                    break;
                }
                if !m.get(&[a, b_hi])?.pass {
                    continue;
                }
                let b = bisect(1, b_hi, &mut |b| Ok(m.get(&[a, b])?.pass))?;
                let p = m.get(&[a, b])?;
                let cand = vec![a, b];
                if best_probe
                    .as_ref()
                    .zip(best.as_deref())
                    .is_none_or(|(bp, bx)| better((&cand, &p), (bx, bp), cost_per_unit))
                {
                    best = Some(cand);
                    best_probe = Some(p);
                }
                b_hi = b;
            }
        }
    }
    let mut fell_back = false;
    if !is_monotone(&m.order) {
        fell_back = true;
        best = scan_by_cost(max, cost_per_unit, &mut m)?;
    }
    Ok(CountSearch {
        best,
        evaluated: m.order,
        fell_back,
    })
}

/// Whether no SLO metric rises (beyond the tolerance) from a point to one
/// that has at least as many of every count.
pub(crate) fn is_monotone(points: &[(Vec<u32>, Probe)]) -> bool {
    for (x, px) in points {
        for (y, py) in points {
            let dominates = x != y && x.iter().zip(y).all(|(a, b)| a <= b);
            if !dominates {
                continue;
            }
            let rises = px
                .metrics
                .iter()
                .zip(&py.metrics)
                .any(|(mx, my)| *my > mx * (1.0 + MONOTONE_REL_TOL) + 1e-9);
            if rises {
                return false;
            }
        }
    }
    true
}

/// Every point in order of cost (then counts) until the first cost with a
/// passing point; the best of that cost.
fn scan_by_cost<E>(
    max: u32,
    cost_per_unit: &[u64],
    m: &mut Memo<'_, E>,
) -> Result<Option<Vec<u32>>, E> {
    let mut all: Vec<(u64, Vec<u32>)> = Vec::new();
    let mut x = vec![1u32; cost_per_unit.len()];
    loop {
        all.push((cost(&x, cost_per_unit), x.clone()));
        // Odometer over 1..=max in every dimension.
        let mut i = x.len();
        loop {
            if i == 0 {
                all.sort();
                return scan_sorted(&all, cost_per_unit, m);
            }
            i -= 1;
            if x[i] < max {
                x[i] += 1;
                break;
            }
            x[i] = 1;
        }
    }
}

fn scan_sorted<E>(
    all: &[(u64, Vec<u32>)],
    units: &[u64],
    m: &mut Memo<'_, E>,
) -> Result<Option<Vec<u32>>, E> {
    let mut best: Option<(Vec<u32>, Probe)> = None;
    for (c, x) in all {
        if best.as_ref().is_some_and(|(bx, _)| *c > cost(bx, units)) {
            break;
        }
        let p = m.get(x)?;
        if p.pass
            && best
                .as_ref()
                .is_none_or(|(bx, bp)| better((x, &p), (bx, bp), units))
        {
            best = Some((x.clone(), p));
        }
    }
    Ok(best.map(|(x, _)| x))
}

/// Result of a rate search.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RateSearch {
    /// Highest rate seen to pass (`None`: none passed).
    pub(crate) passing: Option<f64>,
    /// Lowest rate seen to fail (`None`: none failed).
    pub(crate) failing: Option<f64>,
    /// Every evaluated rate in evaluation order.
    pub(crate) evaluated: Vec<(f64, Probe)>,
    /// Some SLO metric fell as the rate rose beyond the tolerance.
    pub(crate) non_monotone: bool,
}

/// The highest passing rate from `start`, to relative tolerance `rel_tol`.
pub(crate) fn search_rate<E>(
    start: f64,
    rel_tol: f64,
    eval: &mut dyn FnMut(f64) -> Result<Probe, E>,
) -> Result<RateSearch, E> {
    let mut evaluated: Vec<(f64, Probe)> = Vec::new();
    let mut pass = |r: f64| -> Result<bool, E> {
        let p = eval(r)?;
        let ok = p.pass;
        evaluated.push((r, p));
        Ok(ok)
    };
    let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
    let mut r = start;
    if pass(r)? {
        lo = Some(r);
        for _ in 0..MAX_RATE_STEPS {
            r *= 2.0;
            if pass(r)? {
                lo = Some(r);
            } else {
                hi = Some(r);
                break;
            }
        }
    } else {
        hi = Some(r);
        for _ in 0..MAX_RATE_STEPS {
            r /= 2.0;
            if pass(r)? {
                lo = Some(r);
                break;
            }
            hi = Some(r);
        }
    }
    if let (Some(mut l), Some(mut h)) = (lo, hi) {
        while h - l > rel_tol * l {
            let mid = 0.5 * (l + h);
            if pass(mid)? {
                l = mid;
            } else {
                h = mid;
            }
        }
        lo = Some(l);
        hi = Some(h);
    }
    let mut by_rate: Vec<&(f64, Probe)> = evaluated.iter().collect();
    by_rate.sort_by(|a, b| a.0.total_cmp(&b.0));
    let non_monotone = by_rate.windows(2).any(|w| {
        w[0].1
            .metrics
            .iter()
            .zip(&w[1].1.metrics)
            .any(|(lower_rate, higher_rate)| {
                *higher_rate * (1.0 + MONOTONE_REL_TOL) + 1e-9 < *lower_rate
            })
    });
    Ok(RateSearch {
        passing: lo,
        failing: hi,
        evaluated,
        non_monotone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A synthetic SLO metric that fails above 1 (costs come from `cost_per_unit`).
    fn probe(latency: f64, hit_rate: f64) -> Probe {
        Probe {
            pass: latency <= 1.0,
            hit_rate,
            metrics: vec![latency],
        }
    }

    #[test]
    fn one_dimension_bisects_to_the_smallest_passing_count() {
        // Passes from 11 pods on.
        let mut n_evals = 0;
        let mut eval = |x: &[u32]| -> Result<Probe, Infallible> {
            n_evals += 1;
            Ok(probe(10.5 / x[0] as f64, 0.5))
        };
        let r = search_counts(64, &[1], &mut eval).unwrap();
        assert_eq!(r.best, Some(vec![11]));
        assert!(!r.fell_back);
        assert!(n_evals <= 8, "{n_evals} evaluations (brute force: 64)");
        // The evidence lists every point once, in evaluation order.
        assert_eq!(r.evaluated[0].0, vec![64]);
        assert_eq!(r.evaluated.len(), n_evals);
    }

    #[test]
    fn infeasible_when_max_fails() {
        let mut eval =
            |x: &[u32]| -> Result<Probe, Infallible> { Ok(probe(100.0 / x[0] as f64, 0.0)) };
        let r = search_counts(16, &[1], &mut eval).unwrap();
        assert_eq!(r.best, None);
        assert_eq!(r.evaluated.len(), 1);
    }

    #[test]
    fn two_dimensions_find_the_cheapest_split() {
        // Prefill load 6/a, decode load 9/b: need a ≥ 6 and b ≥ 9; prefill
        // pods cost 2 GPUs (TP 2), decode 1. Cheapest: a = 6, b = 9, cost 21.
        let mut n_evals = 0;
        let mut eval = |x: &[u32]| -> Result<Probe, Infallible> {
            n_evals += 1;
            let lat = (6.0 / x[0] as f64).max(9.0 / x[1] as f64);
            Ok(probe(lat, 0.3))
        };
        let r = search_counts(16, &[2, 1], &mut eval).unwrap();
        assert_eq!(r.best, Some(vec![6, 9]));
        assert!(!r.fell_back);
        assert!(
            n_evals < 16 * 16 / 4,
            "{n_evals} evaluations (brute force: 256)"
        );
    }

    #[test]
    fn two_dimensions_trade_off_and_break_ties_by_hit_rate() {
        // Passes when a + b ≥ 8 (either kind of pod helps), equal costs: every
        // split with a + b = 8 costs 8; the hit rate prefers a = 3.
        let mut eval = |x: &[u32]| -> Result<Probe, Infallible> {
            let lat = 8.0 / (x[0] + x[1]) as f64;
            let hit = if x[0] == 3 { 0.9 } else { 0.5 };
            Ok(probe(lat, hit))
        };
        let r = search_counts(10, &[1, 1], &mut eval).unwrap();
        assert_eq!(r.best, Some(vec![3, 5]));
    }

    #[test]
    fn non_monotone_metrics_fall_back_to_a_cost_scan() {
        // A dip bisection never sees (3 passes, 8 fails, from 12 on passes):
        // the evaluated 16, 8, 12, 10, 11 fall with n, so 12 is trusted.
        let mut eval = |x: &[u32]| -> Result<Probe, Infallible> {
            let n = x[0];
            let lat = if n == 3 { 0.5 } else { 12.0 / n as f64 };
            Ok(probe(lat, 0.5))
        };
        let r = search_counts(16, &[1], &mut eval).unwrap();
        assert_eq!(r.best, Some(vec![12]));
        assert!(!r.fell_back);
        // A rise bisection does see (12 → 16 pods: 0.6 → 0.95) forces the
        // cost-order scan, which finds the true minimum, 2 pods.
        let mut eval = |x: &[u32]| -> Result<Probe, Infallible> {
            let lat = match x[0] {
                1 => 5.0,
                2 => 0.8,
                3..=8 => 1.5,
                12 => 0.6,
                16 => 0.95,
                _ => 0.9,
            };
            Ok(probe(lat, 0.5))
        };
        let r = search_counts(16, &[1], &mut eval).unwrap();
        assert!(r.fell_back);
        assert_eq!(r.best, Some(vec![2]));
    }

    #[test]
    fn rate_search_brackets_and_bisects() {
        // Capacity 37.5 req/s.
        let mut eval = |r: f64| -> Result<Probe, Infallible> { Ok(probe(r / 37.5, 0.0)) };
        let s = search_rate(5.0, 0.01, &mut eval).unwrap();
        let lo = s.passing.unwrap();
        let hi = s.failing.unwrap();
        assert!(lo <= 37.5 && 37.5 < hi, "{lo} {hi}");
        assert!((hi - lo) / lo <= 0.01);
        assert!(!s.non_monotone);
        // Starting above the capacity halves first.
        let s = search_rate(1000.0, 0.01, &mut eval).unwrap();
        assert!((s.passing.unwrap() - 37.5).abs() / 37.5 <= 0.01);
        // Never passing: no rate.
        let mut never = |_r: f64| -> Result<Probe, Infallible> { Ok(probe(2.0, 0.0)) };
        assert_eq!(search_rate(1.0, 0.01, &mut never).unwrap().passing, None);
    }
}
