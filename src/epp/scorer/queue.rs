//! `queue-scorer`: min-max over candidates of `vllm:num_requests_waiting`,
//! `(maxQ − q)/(maxQ − minQ)`; all equal → 1.

use super::inverse_min_max;
use crate::epp::plugin::{scorer_plugin, CycleState, SchedulingContext, Scorer, ScorerCategory};
use crate::epp::view::{EndpointView, RequestView};

/// Prefers short waiting queues.
#[derive(Clone, Debug, Default)]
pub struct QueueScorer;

scorer_plugin!(QueueScorer, "queue-scorer");

impl Scorer for QueueScorer {
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
        inverse_min_max(eps.iter().map(|e| u64::from(e.waiting_queue_len)), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx};

    #[test]
    fn min_max_and_all_equal() {
        let mut e = eps(3);
        e[0].waiting_queue_len = 0;
        e[1].waiting_queue_len = 5;
        e[2].waiting_queue_len = 10;
        let mut out = [0.0; 3];
        with_ctx(|ctx, c| QueueScorer.score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out));
        assert_eq!(out, [1.0, 0.5, 0.0]);
        for x in &mut e {
            x.waiting_queue_len = 4;
        }
        with_ctx(|ctx, c| QueueScorer.score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out));
        assert_eq!(out, [1.0, 1.0, 1.0]);
    }
}
