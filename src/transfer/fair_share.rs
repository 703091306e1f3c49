//! Max-min fair rates by progressive filling (water-filling).
//!
//! All flows' rates rise together; when a link saturates, the flows crossing it freeze at their
//! current rate and the rest keep rising. Equivalently, repeatedly: take the link with the
//! smallest `residual / unfrozen flows` (lowest index on ties), give each of its unfrozen flows
//! that share, subtract it from the other links they cross. The result is work-conserving: a flow
//! bottlenecked elsewhere leaves its unused share to the others on a link, which the simpler
//! "capacity / flows on the link" rule would waste.

/// Max-min fair rate of each flow. `paths[f]` lists the indices into `link_caps` flow `f`
/// crosses (distinct); capacities must be positive. Rates share the capacities' unit.
pub fn max_min_rates(link_caps: &[f64], paths: &[[usize; 2]]) -> Vec<f64> {
    let mut residual = link_caps.to_vec();
    let mut n_unfrozen = vec![0u32; link_caps.len()];
    for p in paths {
        for &l in p {
            n_unfrozen[l] += 1;
        }
    }
    let mut rates = vec![0.0; paths.len()];
    let mut frozen = vec![false; paths.len()];
    loop {
        let mut best: Option<(usize, f64)> = None;
        for (l, &n) in n_unfrozen.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let share = residual[l].max(0.0) / f64::from(n);
            if best.is_none_or(|(_, s)| share < s) {
                best = Some((l, share));
            }
        }
        let Some((bottleneck, share)) = best else {
            break;
        };
        for (f, p) in paths.iter().enumerate() {
            if frozen[f] || !p.contains(&bottleneck) {
                continue;
            }
            frozen[f] = true;
            rates[f] = share;
            for &l in p {
                residual[l] -= share;
                n_unfrozen[l] -= 1;
            }
        }
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_link_is_shared_equally() {
        assert_eq!(max_min_rates(&[40.0, 40.0], &[[0, 1]]), [40.0]);
        assert_eq!(
            max_min_rates(&[40.0, 40.0], &[[0, 1], [0, 1]]),
            [20.0, 20.0]
        );
        // The slower end of a path decides.
        assert_eq!(max_min_rates(&[40.0, 10.0], &[[0, 1]]), [10.0]);
    }

    #[test]
    fn disjoint_links_do_not_interfere() {
        let r = max_min_rates(&[40.0, 40.0, 40.0, 40.0], &[[0, 1], [2, 3]]);
        assert_eq!(r, [40.0, 40.0]);
    }

    #[test]
    fn unused_share_goes_to_the_others() {
        // Links: 0 = P0 egress, 1 = D0 ingress, 2 = D1 ingress, 3 = P1 egress, 4 = P2 egress.
        // A: P0→D0, B: P0→D1, C: P1→D1, D: P2→D1. D1 is the bottleneck at 40/3 for B, C, D;
        // A then gets P0's remaining 40 − 40/3 = 80/3 (equal share per link would give it 20).
        let caps = [40.0; 5];
        let r = max_min_rates(&caps, &[[0, 1], [0, 2], [3, 2], [4, 2]]);
        let third = 40.0 / 3.0;
        assert!((r[0] - 80.0 / 3.0).abs() < 1e-9, "{r:?}");
        for &x in &r[1..] {
            assert!((x - third).abs() < 1e-9, "{r:?}");
        }
        // No link is over capacity.
        assert!(r[0] + r[1] <= 40.0 + 1e-9);
    }

    #[test]
    fn no_flows_no_rates() {
        assert!(max_min_rates(&[1.0], &[]).is_empty());
    }
}
