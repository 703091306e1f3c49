//! Scorers (spec §3), one file each. Every score lies in [0, 1].

pub mod active_request;
pub mod approx_index;
pub mod approx_prefix;
pub mod kv_cache_utilization;
pub mod load_aware;
pub mod lora_affinity;
pub mod no_hit_lru;
pub mod precise_prefix;
pub mod queue;
pub mod running_requests;
pub mod session_affinity;
pub mod token_load;

/// `(max − v)/(max − min)` over the candidates; 1 for all when max == min.
pub(crate) fn inverse_min_max(values: impl Iterator<Item = u64> + Clone, out: &mut [f64]) {
    let min = values.clone().min().unwrap_or(0);
    let max = values.clone().max().unwrap_or(0);
    for (o, v) in out.iter_mut().zip(values) {
        *o = if max == min {
            1.0
        } else {
            (max - v) as f64 / (max - min) as f64
        };
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use crate::epp::plugin::{CycleState, SchedulingContext};
    use crate::epp::view::{EndpointId, EndpointView};
    use rand::SeedableRng;

    pub(crate) const NAMES: [&str; 8] = [
        "10.0.0.0:8000",
        "10.0.0.1:8000",
        "10.0.0.2:8000",
        "10.0.0.3:8000",
        "10.0.0.4:8000",
        "10.0.0.5:8000",
        "10.0.0.6:8000",
        "10.0.0.7:8000",
    ];

    /// `n` idle endpoints with ids 0..n.
    pub(crate) fn eps(n: usize) -> Vec<EndpointView<'static>> {
        (0..n)
            .map(|i| EndpointView::new(EndpointId(i as u32), NAMES[i]))
            .collect()
    }

    /// Runs `f` with a fresh context (no index) and cycle state.
    pub(crate) fn with_ctx<T>(
        f: impl FnOnce(&mut SchedulingContext<'_>, &mut CycleState) -> T,
    ) -> T {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let mut ctx = SchedulingContext {
            now_ns: 0,
            kv_index: None,
            rng: &mut rng,
        };
        let mut cycle = CycleState::default();
        f(&mut ctx, &mut cycle)
    }
}
