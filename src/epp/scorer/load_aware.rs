//! `load-aware-scorer` (llm-d): `q == 0 ? 0.5 : 0.5·(1 − min(q, T)/T)`, T = 128.
//! The range is [0, 0.5]: an idle pod never scores above a half.

use crate::epp::plugin::{scorer_plugin, CycleState, SchedulingContext, Scorer, ScorerCategory};
use crate::epp::view::{EndpointView, RequestView};

/// Penalises waiting queues up to `threshold`.
#[derive(Clone, Debug)]
pub struct LoadAwareScorer {
    /// Queue length at which the score reaches 0 (`threshold`, default 128).
    pub threshold: u32,
}

impl Default for LoadAwareScorer {
    fn default() -> Self {
        LoadAwareScorer { threshold: 128 }
    }
}

scorer_plugin!(LoadAwareScorer, "load-aware-scorer");

impl Scorer for LoadAwareScorer {
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
        let t = f64::from(self.threshold.max(1));
        for (o, e) in out.iter_mut().zip(eps) {
            let q = f64::from(e.waiting_queue_len);
            *o = if e.waiting_queue_len == 0 {
                0.5
            } else {
                0.5 * (1.0 - q.min(t) / t)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx};

    #[test]
    fn threshold_formula() {
        let mut e = eps(4);
        e[1].waiting_queue_len = 64;
        e[2].waiting_queue_len = 128;
        e[3].waiting_queue_len = 500;
        let mut out = [0.0; 4];
        with_ctx(|ctx, c| {
            LoadAwareScorer::default().score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out)
        });
        assert_eq!(out, [0.5, 0.25, 0.0, 0.0]);
    }
}
