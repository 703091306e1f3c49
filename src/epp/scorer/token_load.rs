//! `token-load-scorer`: `1 − min(inflight_tokens, T)/T`, T = 4,194,304.

use crate::epp::plugin::{scorer_plugin, CycleState, SchedulingContext, Scorer, ScorerCategory};
use crate::epp::view::{EndpointView, RequestView};

/// Prefers fewer in-flight tokens.
#[derive(Clone, Debug)]
pub struct TokenLoadScorer {
    /// In-flight tokens at which the score reaches 0.
    pub threshold_tokens: u64,
}

impl Default for TokenLoadScorer {
    fn default() -> Self {
        TokenLoadScorer {
            threshold_tokens: 4_194_304,
        }
    }
}

scorer_plugin!(TokenLoadScorer, "token-load-scorer");

impl Scorer for TokenLoadScorer {
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
        let t = self.threshold_tokens.max(1);
        for (o, e) in out.iter_mut().zip(eps) {
            *o = 1.0 - e.in_flight_tokens.min(t) as f64 / t as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx};

    #[test]
    fn linear_in_tokens_and_saturates() {
        let mut e = eps(3);
        e[1].in_flight_tokens = 1_048_576;
        e[2].in_flight_tokens = 10_000_000;
        let mut out = [0.0; 3];
        with_ctx(|ctx, c| {
            TokenLoadScorer::default().score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out)
        });
        assert_eq!(out, [1.0, 0.75, 0.0]);
    }
}
