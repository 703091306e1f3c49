//! `kv-cache-utilization-scorer` (`kv-cache-scorer` before Jul 2025): `1 − kv_usage`.

use crate::epp::plugin::{scorer_plugin, CycleState, SchedulingContext, Scorer, ScorerCategory};
use crate::epp::view::{EndpointView, RequestView};

/// Prefers free KV memory.
#[derive(Clone, Debug, Default)]
pub struct KvCacheUtilizationScorer;

scorer_plugin!(KvCacheUtilizationScorer, "kv-cache-utilization-scorer");

impl Scorer for KvCacheUtilizationScorer {
    fn category(&self) -> ScorerCategory {
        ScorerCategory::Distribution
    }
    fn score(
        &mut self,
        _: &mut SchedulingContext<'_>,
        _: &mut CycleState,
        _: &RequestView<'_>,
        eps: &[EndpointView<'_>],
        out: &mut [f64],
    ) {
        for (o, e) in out.iter_mut().zip(eps) {
            *o = 1.0 - e.kv_usage;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx};

    #[test]
    fn one_minus_usage() {
        let mut e = eps(2);
        e[0].kv_usage = 0.25;
        e[1].kv_usage = 1.0;
        let mut out = [0.0; 2];
        with_ctx(|ctx, c| {
            KvCacheUtilizationScorer.score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out)
        });
        assert_eq!(out, [0.75, 0.0]);
    }
}
