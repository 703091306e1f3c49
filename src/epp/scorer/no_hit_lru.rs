//! `no-hit-lru-scorer` (llm-d): spreads cold requests (no prefix hit on any
//! endpoint) over the endpoints that least recently received a cold request.
//!
//! - Warm request: 0.5 for every endpoint.
//! - Cold request, n = 1: 1.0. Cold, n > 1: never-used endpoints (input order
//!   i) score `1 − i/(n−1)`; used endpoints score `1 − (n_never + lru_pos)/(n−1)`
//!   clipped at 0, where `lru_pos` is the position in the **whole** LRU
//!   (0 = least recently used), as upstream.
//! - PreRequest of a cold request moves the primary and `prefill` targets to MRU.
//!
//! "Cold" is read from the cycle state written by prefix scorers, so the
//! prefix scorer must be listed before this one in the profile.

use crate::epp::lru::LruMap;
use crate::epp::plugin::{
    CycleState, Plugin, PreRequest, PreRequestContext, SchedulingContext, Scorer, ScorerCategory,
};
use crate::epp::scheduler::SchedulingResult;
use crate::epp::view::{EndpointId, EndpointView, RequestView};

/// LRU of endpoints by last cold request.
pub struct NoHitLruScorer {
    lru: LruMap<EndpointId, ()>,
    last_cold: Option<(u64, bool)>,
}

impl NoHitLruScorer {
    /// A scorer remembering at most `lru_size` endpoints (default 1024).
    pub fn new(lru_size: usize) -> Self {
        NoHitLruScorer {
            lru: LruMap::new(lru_size),
            last_cold: None,
        }
    }
}

impl Default for NoHitLruScorer {
    fn default() -> Self {
        NoHitLruScorer::new(1024)
    }
}

impl Plugin for NoHitLruScorer {
    fn type_name(&self) -> &'static str {
        "no-hit-lru-scorer"
    }
    fn as_scorer(&mut self) -> Option<&mut dyn Scorer> {
        Some(self)
    }
    fn as_pre_request(&mut self) -> Option<&mut dyn PreRequest> {
        Some(self)
    }
}

impl Scorer for NoHitLruScorer {
    fn category(&self) -> ScorerCategory {
        ScorerCategory::Distribution
    }

    fn score(
        &mut self,
        _: &mut SchedulingContext<'_>,
        cycle: &mut CycleState,
        req: &RequestView<'_>,
        eps: &[EndpointView<'_>],
        out: &mut [f64],
    ) {
        let cold = !cycle.any_prefix_hit();
        self.last_cold = Some((req.id, cold));
        if !cold {
            out.iter_mut().for_each(|o| *o = 0.5);
            return;
        }
        let n = eps.len();
        if n == 1 {
            out[0] = 1.0;
            return;
        }
        let order = self.lru.keys_lru_order();
        let lru_pos: Vec<Option<usize>> = eps
            .iter()
            .map(|ep| order.iter().position(|&e| e == ep.id))
            .collect();
        let n_never = lru_pos.iter().filter(|p| p.is_none()).count();
        let denom = (n - 1) as f64;
        let mut never_i = 0usize;
        for (o, &pos) in out.iter_mut().zip(&lru_pos) {
            *o = match pos {
                None => {
                    let s = 1.0 - never_i as f64 / denom;
                    never_i += 1;
                    s
                }
                Some(pos) => (1.0 - (n_never + pos) as f64 / denom).max(0.0),
            };
        }
    }
}

impl PreRequest for NoHitLruScorer {
    fn pre_request(
        &mut self,
        _: &mut PreRequestContext<'_>,
        req: &RequestView<'_>,
        result: &SchedulingResult,
    ) {
        let cold = matches!(self.last_cold.take(), Some((id, true)) if id == req.id);
        if !cold {
            return;
        }
        for t in result.primary_and_prefill_targets() {
            self.lru.insert(t, ());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::plugin::{PrefixMatchInfo, PrefixSource};
    use crate::epp::scorer::test_util::{eps, with_ctx};

    #[test]
    fn cold_ranks_never_used_then_lru() {
        let mut s = NoHitLruScorer::default();
        s.lru.insert(EndpointId(2), ()); // oldest
        s.lru.insert(EndpointId(0), ()); // newest
        let e = eps(4);
        let mut out = [0.0; 4];
        with_ctx(|ctx, c| s.score(ctx, c, &RequestView::new(1, "m", 1), &e, &mut out));
        // never used: ep1 (i=0) → 1, ep3 (i=1) → 1 − 1/3; used: ep2 pos 0 → 1 − 2/3, ep0 pos 1 → 0
        let exp = [0.0, 1.0, 1.0 / 3.0, 2.0 / 3.0];
        for (a, b) in out.iter().zip(exp) {
            assert!((a - b).abs() < 1e-12, "{out:?}");
        }
    }

    #[test]
    fn warm_is_neutral_and_single_is_one() {
        let mut s = NoHitLruScorer::default();
        let e = eps(3);
        let mut out = [0.0; 3];
        with_ctx(|ctx, c| {
            c.set_prefix_match(
                PrefixSource::Approximate,
                EndpointId(1),
                PrefixMatchInfo {
                    match_blocks: 1,
                    total_blocks: 2,
                    block_size_tokens: 16,
                },
            );
            s.score(ctx, c, &RequestView::new(1, "m", 1), &e, &mut out)
        });
        assert_eq!(out, [0.5; 3]);
        let mut one = [0.0];
        with_ctx(|ctx, c| s.score(ctx, c, &RequestView::new(2, "m", 1), &e[..1], &mut one));
        assert_eq!(one, [1.0]);
    }
}
