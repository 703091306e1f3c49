//! `lora-affinity-scorer` (GIE): prefers endpoints that already serve the
//! request's adapter (its target model), then endpoints with a free adapter
//! slot, then endpoints where the adapter is queued for loading.
//!
//! 1.0 if the target model is an active adapter; else 0.8 if
//! `active + waiting < max_active`; else 0.6 if it is a waiting adapter;
//! else 0. The order follows the GIE source, which checks a free slot before
//! a waiting adapter. kvsim's pods model no LoRA, so in the simulator every
//! endpoint reports no adapters and scores 0.

use crate::epp::plugin::{scorer_plugin, CycleState, SchedulingContext, Scorer, ScorerCategory};
use crate::epp::view::{EndpointView, RequestView};

/// Adapter affinity.
#[derive(Clone, Debug, Default)]
pub struct LoraAffinityScorer;

scorer_plugin!(LoraAffinityScorer, "lora-affinity-scorer");

impl Scorer for LoraAffinityScorer {
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
            let l = &e.lora;
            let n_loaded = (l.active.len() + l.waiting.len()) as u64;
            *o = if l.active.contains(&req.model) {
                1.0
            } else if n_loaded < u64::from(l.max_active) {
                0.8
            } else if l.waiting.contains(&req.model) {
                0.6
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx};
    use crate::epp::view::LoraView;

    #[test]
    fn active_then_free_slot_then_waiting_then_nothing() {
        let mut e = eps(5);
        let (sql, other) = (["sql-lora"], ["other-lora"]);
        // Active here (even with every slot taken).
        e[0].lora = LoraView {
            active: &sql,
            waiting: &[],
            max_active: 1,
        };
        // Not loaded, one of two slots free.
        e[1].lora = LoraView {
            active: &other,
            waiting: &[],
            max_active: 2,
        };
        // Queued here, but the slots are full: the free-slot case wins only
        // when a slot is free.
        e[2].lora = LoraView {
            active: &other,
            waiting: &sql,
            max_active: 2,
        };
        // Queued and a slot free: 0.8, the free-slot check comes first.
        e[3].lora = LoraView {
            active: &[],
            waiting: &sql,
            max_active: 2,
        };
        // Full of other adapters; and e[4] stays without LoRA (max 0).
        let mut out = [f64::NAN; 5];
        with_ctx(|ctx, c| {
            LoraAffinityScorer.score(ctx, c, &RequestView::new(0, "sql-lora", 1), &e, &mut out)
        });
        assert_eq!(out, [1.0, 0.8, 0.6, 0.8, 0.0]);
    }
}
