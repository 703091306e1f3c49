//! `saturation-filter` (kvsim name for HEAD's utilization saturation
//! detector used as a filter): drops endpoints over either limit
//! (`waiting > queueDepthThreshold` (5) or `kv_usage > kvCacheUtilThreshold`
//! (0.8)) or with metrics older than the staleness limit (200 ms). If every
//! endpoint is dropped, the original list is kept.

use crate::epp::plugin::{CycleState, Filter, Plugin, SchedulingContext};
use crate::epp::view::{EndpointView, RequestView};

/// Filters saturated endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct SaturationFilter {
    /// Waiting-queue limit.
    pub queue_depth_threshold: u32,
    /// KV-usage limit.
    pub kv_cache_util_threshold: f64,
    /// Metrics older than this count as saturated.
    pub metrics_staleness_ns: u64,
}

impl Default for SaturationFilter {
    fn default() -> Self {
        SaturationFilter {
            queue_depth_threshold: 5,
            kv_cache_util_threshold: 0.8,
            metrics_staleness_ns: 200_000_000,
        }
    }
}

impl SaturationFilter {
    /// Whether `e` is over a limit.
    pub fn saturated(&self, e: &EndpointView<'_>) -> bool {
        e.waiting_queue_len > self.queue_depth_threshold
            || e.kv_usage > self.kv_cache_util_threshold
            || e.metrics_age_ns > self.metrics_staleness_ns
    }
}

impl Plugin for SaturationFilter {
    fn type_name(&self) -> &'static str {
        "saturation-filter"
    }
    fn as_filter(&mut self) -> Option<&mut dyn Filter> {
        Some(self)
    }
}

impl Filter for SaturationFilter {
    fn filter(
        &mut self,
        _: &mut SchedulingContext<'_>,
        _: &mut CycleState,
        _: &RequestView<'_>,
        eps: &mut Vec<EndpointView<'_>>,
    ) {
        if eps.iter().any(|e| !self.saturated(e)) {
            eps.retain(|e| !self.saturated(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx};

    #[test]
    fn drops_saturated_unless_all_are() {
        let mut e = eps(4);
        e[0].waiting_queue_len = 5; // at the limit: kept
        e[1].waiting_queue_len = 6;
        e[2].kv_usage = 0.81;
        e[3].metrics_age_ns = 300_000_000;
        let mut v = e.clone();
        with_ctx(|ctx, c| {
            SaturationFilter::default().filter(ctx, c, &RequestView::new(0, "m", 1), &mut v)
        });
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].id, e[0].id);
        let mut all = e[1..].to_vec();
        with_ctx(|ctx, c| {
            SaturationFilter::default().filter(ctx, c, &RequestView::new(0, "m", 1), &mut all)
        });
        assert_eq!(all.len(), 3);
    }
}
