//! `session-affinity-scorer`: 1 for the endpoint named by the (decoded)
//! `x-session-token` header, 0 otherwise.
//!
//! Upstream the response carries the chosen pod back in that header; the
//! caller (simulator or router) passes it as `RequestView::session_token` on
//! the next request of the session.

use crate::epp::plugin::{scorer_plugin, CycleState, SchedulingContext, Scorer, ScorerCategory};
use crate::epp::view::{EndpointView, RequestView};

/// Sticks a session to its previous endpoint.
#[derive(Clone, Debug, Default)]
pub struct SessionAffinityScorer;

scorer_plugin!(SessionAffinityScorer, "session-affinity-scorer");

impl Scorer for SessionAffinityScorer {
    fn category(&self) -> ScorerCategory {
        ScorerCategory::Affinity
    }
    fn score(
        &mut self,
        _: &mut SchedulingContext<'_>,
        _: &mut CycleState,
        req: &RequestView<'_>,
        eps: &[EndpointView<'_>],
        out: &mut [f64],
    ) {
        for (o, e) in out.iter_mut().zip(eps) {
            *o = if req.session_token == Some(e.name) {
                1.0
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx, NAMES};

    #[test]
    fn matches_token() {
        let e = eps(3);
        let mut req = RequestView::new(0, "m", 1);
        req.session_token = Some(NAMES[1]);
        let mut out = [0.0; 3];
        with_ctx(|ctx, c| SessionAffinityScorer.score(ctx, c, &req, &e, &mut out));
        assert_eq!(out, [0.0, 1.0, 0.0]);
        req.session_token = None;
        with_ctx(|ctx, c| SessionAffinityScorer.score(ctx, c, &req, &e, &mut out));
        assert_eq!(out, [0.0, 0.0, 0.0]);
    }
}
