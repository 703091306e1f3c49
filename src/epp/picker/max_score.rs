//! `max-score-picker`: the `maxNumOfEndpoints` highest totals.
//!
//! - [`TieBreak::Random`]: shuffle, then stable-sort by total descending, so
//!   ties break uniformly at random (upstream).
//! - [`TieBreak::RoundRobin`]: candidates with the top total are served in
//!   rotation by a counter kept across calls (newer router), the rest follow
//!   in descending order, input order within ties.

use crate::epp::plugin::{Picker, Plugin};
use crate::epp::view::EndpointId;
use rand::seq::SliceRandom;
use rand::RngCore;

/// How ties for the top score are broken.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum TieBreak {
    /// Seeded shuffle + stable sort.
    #[default]
    Random,
    /// Deterministic rotation within the top tier.
    RoundRobin,
}

/// Picks the best endpoints.
#[derive(Clone, Debug)]
pub struct MaxScorePicker {
    /// `maxNumOfEndpoints` (1).
    pub max_endpoints: usize,
    /// Tie-break rule.
    pub tie_break: TieBreak,
    rotation: u64,
    order: Vec<usize>,
}

impl MaxScorePicker {
    /// A picker returning up to `max_endpoints` endpoints.
    pub fn new(max_endpoints: usize, tie_break: TieBreak) -> Self {
        MaxScorePicker {
            max_endpoints: max_endpoints.max(1),
            tie_break,
            rotation: 0,
            order: Vec::new(),
        }
    }
}

impl Default for MaxScorePicker {
    fn default() -> Self {
        MaxScorePicker::new(1, TieBreak::Random)
    }
}

impl Plugin for MaxScorePicker {
    fn type_name(&self) -> &'static str {
        "max-score-picker"
    }
    fn as_picker(&mut self) -> Option<&mut dyn Picker> {
        Some(self)
    }
}

impl Picker for MaxScorePicker {
    fn pick(&mut self, scored: &[(EndpointId, f64)], rng: &mut dyn RngCore, out: &mut Vec<usize>) {
        self.order.clear();
        self.order.extend(0..scored.len());
        if self.tie_break == TieBreak::Random {
            self.order.shuffle(rng);
        }
        self.order
            .sort_by(|&a, &b| scored[b].1.total_cmp(&scored[a].1));
        if self.tie_break == TieBreak::RoundRobin && !self.order.is_empty() {
            let top = scored[self.order[0]].1;
            let n_top = self
                .order
                .iter()
                .take_while(|&&i| scored[i].1 == top)
                .count();
            let shift = (self.rotation % n_top as u64) as usize;
            self.order[..n_top].rotate_left(shift);
            self.rotation = self.rotation.wrapping_add(1);
        }
        out.extend(self.order.iter().take(self.max_endpoints));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::picker::scored;
    use rand::SeedableRng;

    #[test]
    fn picks_the_max() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        let mut out = Vec::new();
        MaxScorePicker::default().pick(&scored(&[0.2, 0.9, 0.5]), &mut rng, &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        MaxScorePicker::new(2, TieBreak::Random).pick(
            &scored(&[0.2, 0.9, 0.5]),
            &mut rng,
            &mut out,
        );
        assert_eq!(out, vec![1, 2]);
    }

    #[test]
    fn random_ties_cover_all_tied_and_never_lower() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let mut p = MaxScorePicker::default();
        let mut seen = [0u32; 4];
        for _ in 0..400 {
            let mut out = Vec::new();
            p.pick(&scored(&[1.0, 0.5, 1.0, 1.0]), &mut rng, &mut out);
            seen[out[0]] += 1;
        }
        assert_eq!(seen[1], 0);
        assert!(seen[0] > 80 && seen[2] > 80 && seen[3] > 80, "{seen:?}");
    }

    #[test]
    fn round_robin_rotates_within_top_tier() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let mut p = MaxScorePicker::new(1, TieBreak::RoundRobin);
        let picks: Vec<usize> = (0..6)
            .map(|_| {
                let mut out = Vec::new();
                p.pick(&scored(&[1.0, 0.5, 1.0, 1.0]), &mut rng, &mut out);
                out[0]
            })
            .collect();
        assert_eq!(picks, vec![0, 2, 3, 0, 2, 3]);
    }
}
