//! `running-requests-size-scorer`: like `queue-scorer`, on `vllm:num_requests_running`.

use super::inverse_min_max;
use crate::epp::plugin::{scorer_plugin, CycleState, SchedulingContext, Scorer, ScorerCategory};
use crate::epp::view::{EndpointView, RequestView};

/// Prefers fewer running requests.
#[derive(Clone, Debug, Default)]
pub struct RunningRequestsScorer;

scorer_plugin!(RunningRequestsScorer, "running-requests-size-scorer");

impl Scorer for RunningRequestsScorer {
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
        inverse_min_max(eps.iter().map(|e| u64::from(e.running_requests)), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx};

    #[test]
    fn min_max_on_running() {
        let mut e = eps(3);
        e[0].running_requests = 2;
        e[1].running_requests = 6;
        e[2].running_requests = 4;
        let mut out = [0.0; 3];
        with_ctx(|ctx, c| {
            RunningRequestsScorer.score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out)
        });
        assert_eq!(out, [1.0, 0.0, 0.5]);
    }
}
