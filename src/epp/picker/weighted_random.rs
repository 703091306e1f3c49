//! `weighted-random-picker`: A-Res weighted sampling without replacement,
//! `key = U^(1/total)`, top k keys. Zero totals get key 0; when every total
//! is zero the pick is uniform.

use crate::epp::plugin::{Picker, Plugin};
use crate::epp::view::EndpointId;
use rand::seq::index::sample;
use rand::{Rng, RngCore};

/// Picks proportionally to total score.
#[derive(Clone, Debug)]
pub struct WeightedRandomPicker {
    /// `maxNumOfEndpoints` (1).
    pub max_endpoints: usize,
}

impl Default for WeightedRandomPicker {
    fn default() -> Self {
        WeightedRandomPicker { max_endpoints: 1 }
    }
}

impl Plugin for WeightedRandomPicker {
    fn type_name(&self) -> &'static str {
        "weighted-random-picker"
    }
    fn as_picker(&mut self) -> Option<&mut dyn Picker> {
        Some(self)
    }
}

impl Picker for WeightedRandomPicker {
    fn pick(&mut self, scored: &[(EndpointId, f64)], rng: &mut dyn RngCore, out: &mut Vec<usize>) {
        let k = self.max_endpoints.clamp(1, scored.len());
        if scored.iter().all(|s| s.1 <= 0.0) {
            out.extend(sample(rng, scored.len(), k).iter());
            return;
        }
        let mut keys: Vec<(f64, usize)> = scored
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let u: f64 = rng.random();
                (if s.1 > 0.0 { u.powf(1.0 / s.1) } else { 0.0 }, i)
            })
            .collect();
        keys.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.extend(keys.iter().take(k).map(|&(_, i)| i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::picker::scored;
    use rand::SeedableRng;

    #[test]
    fn proportional_and_zero_never_chosen() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(9);
        let mut p = WeightedRandomPicker::default();
        let mut seen = [0u32; 3];
        for _ in 0..3000 {
            let mut out = Vec::new();
            p.pick(&scored(&[1.0, 3.0, 0.0]), &mut rng, &mut out);
            seen[out[0]] += 1;
        }
        assert_eq!(seen[2], 0);
        // P(pick 1) = 3/4 for A-Res with k = 1
        assert!((2100..2400).contains(&seen[1]), "{seen:?}");
    }

    #[test]
    fn all_zero_is_uniform() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(9);
        let mut p = WeightedRandomPicker::default();
        let mut seen = [0u32; 3];
        for _ in 0..300 {
            let mut out = Vec::new();
            p.pick(&scored(&[0.0, 0.0, 0.0]), &mut rng, &mut out);
            seen[out[0]] += 1;
        }
        assert!(seen.iter().all(|&c| c > 60), "{seen:?}");
    }
}
