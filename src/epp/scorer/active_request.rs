//! `active-request-scorer` (llm-d), both eras.
//!
//! - **Own counter** (v0.3–v0.7): +1 per pod in PreRequest for every profile's
//!   target, −1 on ResponseComplete or once the request is older than the
//!   TTL (2 min). Score 1 if the count is 0 or the pod is untracked, else
//!   `(max − c)/max` with max over all tracked pods.
//! - **In-flight load** (HEAD): `c = EndpointView::in_flight_requests`;
//!   `c ≤ idleThreshold` → 1, else `(max − c)/max · maxBusyScore`, max over
//!   candidates.

use crate::epp::plugin::{
    CycleState, Plugin, PreRequest, PreRequestContext, ResponseComplete, SchedulingContext, Scorer,
    ScorerCategory,
};
use crate::epp::scheduler::SchedulingResult;
use crate::epp::view::{EndpointId, EndpointView, RequestView};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, VecDeque};

/// Which count the scorer uses.
#[derive(Clone, Debug, PartialEq)]
pub enum ActiveRequestMode {
    /// v0.3–v0.7: the scorer's own counter.
    OwnCounter {
        /// Requests older than this are dropped from the counts.
        ttl_ns: u64,
    },
    /// HEAD: the endpoint's in-flight request count.
    InFlightLoad {
        /// Counts at or below this score 1.
        idle_threshold: u32,
        /// Score scale for busy endpoints.
        max_busy_score: f64,
    },
}

/// Prefers endpoints with fewer active requests.
pub struct ActiveRequestScorer {
    mode: ActiveRequestMode,
    counts: BTreeMap<EndpointId, u32>,
    requests: FxHashMap<u64, Vec<EndpointId>>,
    expiry: VecDeque<(u64, u64)>,
}

impl ActiveRequestScorer {
    /// A scorer in `mode`.
    pub fn new(mode: ActiveRequestMode) -> Self {
        ActiveRequestScorer {
            mode,
            counts: BTreeMap::new(),
            requests: FxHashMap::default(),
            expiry: VecDeque::new(),
        }
    }

    /// The own-counter count of `ep` (0 if untracked).
    pub fn count(&self, ep: EndpointId) -> u32 {
        self.counts.get(&ep).copied().unwrap_or(0)
    }

    fn release(&mut self, request_id: u64) {
        if let Some(pods) = self.requests.remove(&request_id) {
            for p in pods {
                if let Some(c) = self.counts.get_mut(&p) {
                    *c = c.saturating_sub(1);
                    if *c == 0 {
                        self.counts.remove(&p);
                    }
                }
            }
        }
    }

    fn expire(&mut self, now_ns: u64) {
        while let Some(&(at, id)) = self.expiry.front() {
            if at > now_ns {
                break;
            }
            self.expiry.pop_front();
            self.release(id);
        }
    }
}

impl Default for ActiveRequestScorer {
    fn default() -> Self {
        ActiveRequestScorer::new(ActiveRequestMode::InFlightLoad {
            idle_threshold: 0,
            max_busy_score: 1.0,
        })
    }
}

impl Plugin for ActiveRequestScorer {
    fn type_name(&self) -> &'static str {
        "active-request-scorer"
    }
    fn as_scorer(&mut self) -> Option<&mut dyn Scorer> {
        Some(self)
    }
    fn as_pre_request(&mut self) -> Option<&mut dyn PreRequest> {
        matches!(self.mode, ActiveRequestMode::OwnCounter { .. })
            .then_some(self as &mut dyn PreRequest)
    }
    fn as_response_complete(&mut self) -> Option<&mut dyn ResponseComplete> {
        matches!(self.mode, ActiveRequestMode::OwnCounter { .. })
            .then_some(self as &mut dyn ResponseComplete)
    }
}

impl Scorer for ActiveRequestScorer {
    fn category(&self) -> ScorerCategory {
        ScorerCategory::Distribution
    }

    fn score(
        &mut self,
        ctx: &mut SchedulingContext<'_>,
        _: &mut CycleState,
        _: &RequestView<'_>,
        eps: &[EndpointView<'_>],
        out: &mut [f64],
    ) {
        match self.mode {
            ActiveRequestMode::OwnCounter { .. } => {
                self.expire(ctx.now_ns);
                let max = self.counts.values().copied().max().unwrap_or(0);
                for (o, e) in out.iter_mut().zip(eps) {
                    let c = self.count(e.id);
                    *o = if c == 0 || max == 0 {
                        1.0
                    } else {
                        f64::from(max - c) / f64::from(max)
                    };
                }
            }
            ActiveRequestMode::InFlightLoad {
                idle_threshold,
                max_busy_score,
            } => {
                let max = eps.iter().map(|e| e.in_flight_requests).max().unwrap_or(0);
                for (o, e) in out.iter_mut().zip(eps) {
                    let c = e.in_flight_requests;
                    *o = if c <= idle_threshold || max == 0 {
                        1.0
                    } else {
                        f64::from(max - c) / f64::from(max) * max_busy_score
                    };
                }
            }
        }
    }
}

impl PreRequest for ActiveRequestScorer {
    fn pre_request(
        &mut self,
        ctx: &mut PreRequestContext<'_>,
        req: &RequestView<'_>,
        result: &SchedulingResult,
    ) {
        let ActiveRequestMode::OwnCounter { ttl_ns } = self.mode else {
            return;
        };
        self.expire(ctx.now_ns);
        let pods: Vec<EndpointId> = result.profiles.iter().filter_map(|p| p.target()).collect();
        for &p in &pods {
            *self.counts.entry(p).or_insert(0) += 1;
        }
        self.release(req.id);
        self.requests.insert(req.id, pods);
        self.expiry
            .push_back((ctx.now_ns.saturating_add(ttl_ns), req.id));
    }
}

impl ResponseComplete for ActiveRequestScorer {
    fn response_complete(&mut self, now_ns: u64, request_id: u64) {
        self.expire(now_ns);
        self.release(request_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx};

    #[test]
    fn in_flight_load_formula() {
        let mut s = ActiveRequestScorer::default();
        let mut e = eps(3);
        e[1].in_flight_requests = 2;
        e[2].in_flight_requests = 4;
        let mut out = [0.0; 3];
        with_ctx(|ctx, c| s.score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out));
        assert_eq!(out, [1.0, 0.5, 0.0]);
        let mut s2 = ActiveRequestScorer::new(ActiveRequestMode::InFlightLoad {
            idle_threshold: 2,
            max_busy_score: 0.5,
        });
        with_ctx(|ctx, c| s2.score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out));
        assert_eq!(out, [1.0, 1.0, 0.0]);
    }

    #[test]
    fn own_counter_counts_releases_and_expires() {
        let mut s = ActiveRequestScorer::new(ActiveRequestMode::OwnCounter { ttl_ns: 100 });
        s.counts.insert(EndpointId(0), 1);
        s.requests.insert(10, vec![EndpointId(0)]);
        s.expiry.push_back((100, 10));
        s.counts.insert(EndpointId(1), 3);
        s.requests
            .insert(11, vec![EndpointId(1), EndpointId(1), EndpointId(1)]);
        s.expiry.push_back((200, 11));
        let e = eps(3);
        let mut out = [0.0; 3];
        with_ctx(|ctx, c| s.score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out));
        // max = 3: ep0 (1) → 2/3, ep1 (3) → 0, ep2 untracked → 1
        assert!((out[0] - 2.0 / 3.0).abs() < 1e-12 && out[1] == 0.0 && out[2] == 1.0);
        s.response_complete(50, 11);
        assert_eq!(s.count(EndpointId(1)), 0);
        with_ctx(|ctx, c| {
            ctx.now_ns = 150;
            s.score(ctx, c, &RequestView::new(0, "m", 1), &e, &mut out)
        });
        assert_eq!(s.count(EndpointId(0)), 0, "expired after ttl");
        assert_eq!(out, [1.0, 1.0, 1.0]);
    }
}
