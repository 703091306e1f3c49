//! `random-picker`: uniform choice, ignoring scores.

use crate::epp::plugin::{Picker, Plugin};
use crate::epp::view::EndpointId;
use rand::seq::index::sample;
use rand::RngCore;

/// Picks uniformly at random.
#[derive(Clone, Debug)]
pub struct RandomPicker {
    /// `maxNumOfEndpoints` (1).
    pub max_endpoints: usize,
}

impl Default for RandomPicker {
    fn default() -> Self {
        RandomPicker { max_endpoints: 1 }
    }
}

impl Plugin for RandomPicker {
    fn type_name(&self) -> &'static str {
        "random-picker"
    }
    fn as_picker(&mut self) -> Option<&mut dyn Picker> {
        Some(self)
    }
}

impl Picker for RandomPicker {
    fn pick(&mut self, scored: &[(EndpointId, f64)], rng: &mut dyn RngCore, out: &mut Vec<usize>) {
        let k = self.max_endpoints.clamp(1, scored.len());
        out.extend(sample(rng, scored.len(), k).iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::picker::scored;
    use rand::SeedableRng;

    #[test]
    fn uniform_regardless_of_score() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
        let mut p = RandomPicker::default();
        let mut seen = [0u32; 3];
        for _ in 0..300 {
            let mut out = Vec::new();
            p.pick(&scored(&[0.0, 1.0, 0.0]), &mut rng, &mut out);
            seen[out[0]] += 1;
        }
        assert!(seen.iter().all(|&c| c > 60), "{seen:?}");
    }
}
