//! The cluster simulation: a router in front of timed vLLM pods, driven by
//! one event queue.
//!
//! Control surface: [`Simulation::run`]. The loop pops events in the one
//! order defined in [`crate::engine::queue`]; each handler returns or pushes
//! its follow-ups. Requests stream in from the workload one at a time (only
//! the next arrival is ever queued), so memory does not grow with trace size.

pub mod epp_router;
pub mod key_spaces;
pub mod kv_lag;
pub mod router;
#[cfg(test)]
mod tests;

use crate::engine::queue::{EventClass, EventQueue};
use crate::engine::time::{SimDuration, SimTime};
use crate::pod::engine::Pod;
use crate::pod::request::{OutputTokens, PodRequest, PromptKeys};
use crate::pod::scheduler::Finished;
use crate::trace::request::TraceRequest;
use epp_router::{DecisionRow, EppRouter};
use kv_lag::EventPipeline;
use router::Router;

/// How requests are routed.
pub enum Routing {
    /// A simple router (round-robin, random).
    Simple(Router),
    /// The EPP, with its KV-event pipeline and metrics refresh interval.
    Epp {
        /// The router.
        router: Box<EppRouter>,
        /// KV event lag.
        pipeline: EventPipeline,
        /// `refresh_metrics_interval`.
        refresh: SimDuration,
    },
}

/// A closed set of events.
#[derive(Debug)]
enum Event {
    /// The next workload request reaches the router.
    Arrival(Box<TraceRequest>),
    /// A routed request reaches its pod.
    Dispatch { pod: u32, req: Box<PodRequest> },
    /// A pod's in-flight step ends.
    StepEnd { pod: u32 },
    /// A batch of a pod's KV events is applied to the router's index.
    IndexUpdate { pod: u32, n_events: usize },
    /// The router scrapes pod metrics.
    MetricsScrape,
    /// The transfer network may have completions due (stale if `gen` is old).
    TransferWake { gen: u64 },
    /// A prefill pod's hold on a request's blocks expires.
    HoldTimeout { pod: u32, request_id: u64 },
}

/// P/D disaggregation: the NIXL transfer network and each pod's KV shape.
pub struct PdSetup {
    /// Links and in-flight transfers.
    pub net: crate::transfer::net::TransferNet,
    /// Per pod, the shape that sizes transfers into it.
    pub shapes: Vec<crate::transfer::KvShape>,
    /// Prefill-side block hold timeout (vLLM 0.11: 120 s); `None` when the
    /// decode pod's heartbeats keep the lease alive (0.33).
    pub hold_timeout: Option<SimDuration>,
}

/// A request split between a prefill and a decode pod, between routing and
/// the end of its KV pull.
struct PdFlow {
    decode: u32,
    prefill: u32,
    /// The decode leg, sent when the prefill leg finishes.
    decode_leg: Option<Box<PodRequest>>,
}

/// Why a request did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Prompt + output exceed the pod's `max_model_len` (vLLM rejects it).
    TooLong,
    /// The router found no endpoint for it.
    NoEndpoint,
}

/// Everything a run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// Completed requests, in completion order.
    pub finished: Vec<CompletedRequest>,
    /// Requests never completed: rejected, in flight or stalled at the end,
    /// or arriving after the horizon.
    pub not_finished: Vec<IncompleteRequest>,
    /// The pods, with their counters and final state.
    pub pods: Vec<Pod>,
    /// The run's end: the horizon if it cut requests short (some had yet to
    /// arrive, reach their pod or finish a step or pull), else the last event
    /// that could change a pod ([`Pod::last_change`], normally the last step
    /// end). Router bookkeeping (metrics scrapes, index updates, hold timeouts
    /// that free nothing) does not move it: rates over the run divide by it.
    pub end_time: SimTime,
    /// Events processed.
    pub n_events: u64,
    /// EPP decisions and those made on a stale index view (with the decision log).
    pub routing_decisions: (u64, u64),
    /// EPP: mean approximate-index hit ratio of the picks, if that index ran.
    pub prefix_indexer_hit_ratio: Option<f64>,
    /// The decision log (empty unless requested).
    pub decision_log: Vec<DecisionRow>,
    /// Requests the EPP still counts as in flight at the end (0 unless some
    /// did not finish).
    pub router_in_flight_at_end: u64,
    /// P/D: KV transfers completed.
    pub n_transfers: u64,
    /// P/D: prefill-side holds released by the timeout rather than by the
    /// decode pod's notification (vLLM would have served garbage KV).
    pub n_hold_timeouts: u64,
}

/// A completed request and where it ran.
#[derive(Clone, Debug)]
pub struct CompletedRequest {
    /// Pod index.
    pub pod: u32,
    /// Final state.
    pub req: PodRequest,
}

/// A request that did not complete.
#[derive(Clone, Debug)]
pub struct IncompleteRequest {
    /// Workload id.
    pub id: u64,
    /// Pod it was routed to, if any.
    pub pod: Option<u32>,
    /// Rejected, or `None` (in flight or stalled at the end, or after the horizon).
    pub rejection: Option<Rejection>,
    /// Still on its pod although no event could move it any more (the run ran
    /// out of work before any horizon): the pod can make no progress. This is vLLM's own behaviour,
    /// not a simulator fault: e.g. a preempted request at the head of the
    /// waiting queue needs more blocks than are free while P/D requests
    /// behind it hold theirs, and the scheduler stops at the head every step.
    pub stalled: bool,
    /// Its arrival is after the horizon: it never reached the router.
    pub after_horizon: bool,
}

/// Observes progress (the CLI shows a bar).
pub trait Progress {
    /// Called every so often with requests completed so far.
    fn on_progress(&mut self, n_done: u64);
}

impl Progress for () {
    fn on_progress(&mut self, _: u64) {}
}

/// A configured cluster ready to replay a workload.
pub struct Simulation<W: Iterator<Item = TraceRequest>> {
    pods: Vec<Pod>,
    routing: Routing,
    workload: W,
    arrival_pending: bool,
    queue: EventQueue<Event>,
    routing_latency: SimDuration,
    horizon: Option<SimTime>,
    /// Pods a simple router picks from (all but prefill pods).
    simple_targets: Vec<u32>,
    /// The router's index lookup round trip, added to every routing.
    index_lookup: SimDuration,
    pd: Option<PdSetup>,
    flows: rustc_hash::FxHashMap<u64, PdFlow>,
    pulls: rustc_hash::FxHashMap<
        crate::transfer::net::TransferId,
        (u32, crate::pod::scheduler::ReqSlot, u64),
    >,
    net_gen_scheduled: u64,
    n_transfers: u64,
    n_hold_timeouts: u64,
}

impl<W: Iterator<Item = TraceRequest>> Simulation<W> {
    /// A simulation of `pods` behind `router`, replaying `workload`.
    pub fn new(
        mut pods: Vec<Pod>,
        routing: Routing,
        workload: W,
        routing_latency: SimDuration,
    ) -> Self {
        if let Routing::Epp { pipeline, .. } = &routing {
            let immediate = pipeline.lag().publish == kv_lag::PublishPoint::Immediate;
            for p in &mut pods {
                p.set_publish_immediately(immediate);
            }
        }
        let simple_targets = (0..pods.len() as u32)
            .filter(|&i| pods[i as usize].role != crate::pod::engine::Role::Prefill)
            .collect();
        let index_lookup = match &routing {
            Routing::Epp {
                pipeline, router, ..
            } if router.has_index() => {
                SimDuration::from_us_f64_ceil(pipeline.lag().redis_lookup_rtt_us)
            }
            _ => SimDuration::ZERO,
        };
        Simulation {
            pods,
            routing,
            workload,
            arrival_pending: false,
            queue: EventQueue::new(),
            routing_latency,
            horizon: None,
            simple_targets,
            index_lookup,
            pd: None,
            flows: Default::default(),
            pulls: Default::default(),
            net_gen_scheduled: u64::MAX,
            n_transfers: 0,
            n_hold_timeouts: 0,
        }
    }

    /// Enables P/D disaggregation (the EPP's prefill profile picks a prefill pod).
    pub fn with_pd(mut self, pd: Option<PdSetup>) -> Self {
        self.pd = pd;
        self
    }

    /// Stops processing events after `t` (requests still in flight are reported).
    pub fn with_horizon(mut self, t: Option<SimTime>) -> Self {
        self.horizon = t;
        self
    }

    fn push_next_arrival(&mut self) {
        self.arrival_pending = false;
        if let Some(r) = self.workload.next() {
            let t = SimTime(r.arrival_ns).max(self.queue.now());
            self.queue
                .push(t, EventClass::Arrival, Event::Arrival(Box::new(r)));
            self.arrival_pending = true;
        }
    }

    /// Work every pod call may leave: KV events to publish, KV pulls to start.
    fn after_pod_call(&mut self, pod: u32, now: SimTime) {
        self.publish(pod, now);
        let loads = self.pods[pod as usize].take_kv_loads();
        if loads.is_empty() {
            return;
        }
        let Some(pd) = &mut self.pd else { return };
        for l in loads {
            let Some(f) = self.flows.get(&l.request_id) else {
                continue;
            };
            let id = pd.net.start(
                now,
                f.prefill,
                pod,
                l.n_blocks as u64,
                &pd.shapes[pod as usize],
            );
            self.pulls.insert(id, (pod, l.slot, l.request_id));
        }
        self.schedule_transfer_wake();
    }

    /// Keeps one wake-up queued at the network's next change.
    fn schedule_transfer_wake(&mut self) {
        let Some(pd) = &self.pd else { return };
        let gen = pd.net.generation();
        if gen == self.net_gen_scheduled {
            return;
        }
        if let Some(t) = pd.net.next_wakeup() {
            self.queue.push(
                t.max(self.queue.now()),
                EventClass::TransferDone,
                Event::TransferWake { gen },
            );
            self.net_gen_scheduled = gen;
        }
    }

    /// The prefill leg of `id` finished on `pod`: its blocks are held, and the
    /// sidecar now sends the original request to the decode pod.
    fn prefill_done(&mut self, pod: u32, id: u64, now: SimTime) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if let Some(leg) = f.decode_leg.take() {
            let d = f.decode;
            self.queue.push(
                now,
                EventClass::Dispatch,
                Event::Dispatch { pod: d, req: leg },
            );
        }
        if let Some(t) = self.pd.as_ref().and_then(|pd| pd.hold_timeout) {
            self.queue.push(
                now.add(t),
                EventClass::Dispatch,
                Event::HoldTimeout {
                    pod,
                    request_id: id,
                },
            );
        }
    }

    /// Frees `pod`'s hold for `request_id`, starting a step if that unblocks
    /// the pod; whether anything was held.
    fn release_held(&mut self, pod: u32, request_id: u64, now: SimTime) -> bool {
        let (freed, step_end) = self.pods[pod as usize].release_held(request_id, now);
        if let Some(end) = step_end {
            self.queue
                .push(end, EventClass::StepEnd, Event::StepEnd { pod });
            self.after_pod_call(pod, now);
        }
        freed
    }

    /// Sends the KV events `pod` published to the router's index, late.
    fn publish(&mut self, pod: u32, now: SimTime) {
        let events = self.pods[pod as usize].drain_published_events();
        let Routing::Epp {
            router, pipeline, ..
        } = &mut self.routing
        else {
            return;
        };
        let n_events = events.len();
        if n_events == 0 || !router.has_index() {
            return;
        }
        let t = pipeline.send(pod as usize, now.as_ns(), events);
        self.queue.push(
            SimTime(t),
            EventClass::IndexUpdate,
            Event::IndexUpdate { pod, n_events },
        );
    }

    /// Runs to completion (or the horizon).
    pub fn run(mut self, progress: &mut dyn Progress) -> RunOutput {
        let mut finished: Vec<CompletedRequest> = Vec::new();
        let mut not_finished = Vec::new();
        let mut n_events = 0u64;
        self.push_next_arrival();
        if matches!(self.routing, Routing::Epp { .. }) {
            self.queue.push(
                SimTime::ZERO,
                EventClass::MetricsScrape,
                Event::MetricsScrape,
            );
        }
        let mut past_horizon = None;
        while let Some((key, ev)) = self.queue.pop() {
            if self.horizon.is_some_and(|h| key.time > h) {
                past_horizon = Some(ev);
                break;
            }
            n_events += 1;
            let now = key.time;
            match ev {
                Event::Arrival(tr) => {
                    self.push_next_arrival();
                    let decision = match &mut self.routing {
                        Routing::Simple(r) => {
                            let targets = &self.simple_targets;
                            Some((targets[r.pick(targets.len())], None))
                        }
                        Routing::Epp { router, .. } => router.route(&tr, &self.pods, now.as_ns()),
                    };
                    let Some((pod, prefill)) = decision else {
                        not_finished.push(IncompleteRequest {
                            id: tr.id,
                            pod: None,
                            rejection: Some(Rejection::NoEndpoint),
                            stalled: false,
                            after_horizon: false,
                        });
                        continue;
                    };
                    let p = pod as usize;
                    let total = tr.prompt.n_tokens() as u64 + tr.output_len as u64;
                    let too_long =
                        |q: usize| total > self.pods[q].scheduler().config().max_model_len as u64;
                    if too_long(p)
                        || prefill.is_some_and(|q| too_long(q as usize))
                        || tr.prompt.n_tokens() == 0
                        || tr.output_len == 0
                    {
                        // vLLM answers with an error: the EPP's response
                        // hook counts the request out again.
                        if let Routing::Epp { router, .. } = &mut self.routing {
                            router.complete(pod, tr.id, total, now.as_ns());
                        }
                        not_finished.push(IncompleteRequest {
                            id: tr.id,
                            pod: Some(pod),
                            rejection: Some(Rejection::TooLong),
                            stalled: false,
                            after_horizon: false,
                        });
                        continue;
                    }
                    let id = tr.id;
                    let mut req = self.build_request(*tr, p);
                    req.times.arrival_ns = now.as_ns();
                    // P/D: the routing sidecar first sends a copy with
                    // max_tokens = 1 to the prefill pod, which keeps the blocks
                    // for the pull; the decode leg waits in the flow.
                    let (first_pod, first_leg) = match prefill.filter(|_| self.pd.is_some()) {
                        None => (pod, req),
                        Some(q) => {
                            let mut prefill_leg = self.build_request_like(&req, q as usize);
                            prefill_leg.max_tokens = 1;
                            prefill_leg.kv_transfer = crate::pod::request::KvTransfer::Produce;
                            req.kv_transfer = crate::pod::request::KvTransfer::Consume;
                            self.flows.insert(
                                id,
                                PdFlow {
                                    decode: pod,
                                    prefill: q,
                                    decode_leg: Some(Box::new(req)),
                                },
                            );
                            (q, prefill_leg)
                        }
                    };
                    let delay = self.routing_latency
                        + self.index_lookup
                        + self.pods[first_pod as usize].admission_overhead(first_leg.prompt_len);
                    self.queue.push(
                        now.add(delay),
                        EventClass::Dispatch,
                        Event::Dispatch {
                            pod: first_pod,
                            req: Box::new(first_leg),
                        },
                    );
                }
                Event::Dispatch { pod, req } => {
                    if let Some(end) = self.pods[pod as usize].add_request(*req, now) {
                        self.queue
                            .push(end, EventClass::StepEnd, Event::StepEnd { pod });
                    }
                    self.after_pod_call(pod, now);
                }
                Event::TransferWake { gen } => {
                    let Some(pd) = &mut self.pd else { continue };
                    if gen != pd.net.generation() {
                        continue;
                    }
                    let done = pd.net.pop_completed(now);
                    for d in done {
                        self.n_transfers += 1;
                        let Some((dst, slot, request_id)) = self.pulls.remove(&d.id) else {
                            continue;
                        };
                        if let Some(f) = self.flows.remove(&request_id) {
                            // NIXL notification: the prefill pod frees its hold.
                            self.release_held(f.prefill, request_id, now);
                        }
                        if let Some(end) = self.pods[dst as usize].kv_received(slot, now) {
                            self.queue
                                .push(end, EventClass::StepEnd, Event::StepEnd { pod: dst });
                        }
                        self.after_pod_call(dst, now);
                    }
                    self.schedule_transfer_wake();
                }
                Event::HoldTimeout { pod, request_id } => {
                    if self.release_held(pod, request_id, now) {
                        self.n_hold_timeouts += 1;
                    }
                }
                Event::IndexUpdate { pod, n_events } => {
                    if let Routing::Epp {
                        router, pipeline, ..
                    } = &mut self.routing
                    {
                        router.apply_events(pod, pipeline.deliver(pod as usize, n_events));
                    }
                }
                Event::MetricsScrape => {
                    if let Routing::Epp {
                        router, refresh, ..
                    } = &mut self.routing
                    {
                        router.scrape(&self.pods, now.as_ns());
                        let busy = self.pods.iter().any(|p| !p.is_idle());
                        if self.arrival_pending || busy {
                            let next = now.add(*refresh);
                            self.queue
                                .push(next, EventClass::MetricsScrape, Event::MetricsScrape);
                        }
                    }
                }
                Event::StepEnd { pod } => {
                    let mut out = self.pods[pod as usize].on_step_end(now);
                    if let Some(end) = out.next_step_end {
                        self.queue
                            .push(end, EventClass::StepEnd, Event::StepEnd { pod });
                    }
                    self.after_pod_call(pod, now);
                    // Prefill legs end here: hand the decode leg to its pod.
                    out.finished.retain(|f| {
                        if f.req.kv_transfer != crate::pod::request::KvTransfer::Produce {
                            return true;
                        }
                        self.prefill_done(pod, f.req.id, now);
                        false
                    });
                    if let Routing::Epp { router, .. } = &mut self.routing {
                        for f in &out.finished {
                            let tokens = f.req.prompt_len as u64 + f.req.max_tokens as u64;
                            router.complete(pod, f.req.id, tokens, now.as_ns());
                        }
                    }
                    let before = finished.len() as u64;
                    finished.extend(
                        out.finished
                            .into_iter()
                            .map(|Finished { req, .. }| CompletedRequest { pod, req }),
                    );
                    if finished.len() as u64 / 1024 != before / 1024 {
                        progress.on_progress(finished.len() as u64);
                    }
                }
            }
        }
        progress.on_progress(finished.len() as u64);
        let stopped_at_horizon = past_horizon.is_some();
        let mut dispatch_left = false;
        let leftovers = past_horizon
            .into_iter()
            .chain(std::iter::from_fn(|| self.queue.pop().map(|(_, ev)| ev)));
        for ev in leftovers {
            match ev {
                Event::Arrival(tr) => not_finished.push(IncompleteRequest {
                    id: tr.id,
                    pod: None,
                    rejection: None,
                    stalled: false,
                    after_horizon: true,
                }),
                Event::Dispatch { pod, req } => {
                    dispatch_left = true;
                    not_finished.push(IncompleteRequest {
                        id: req.id,
                        pod: Some(pod),
                        rejection: None,
                        stalled: false,
                        after_horizon: false,
                    })
                }
                Event::StepEnd { .. }
                | Event::IndexUpdate { .. }
                | Event::MetricsScrape
                | Event::TransferWake { .. }
                | Event::HoldTimeout { .. } => {}
            }
        }
        for r in self.workload.by_ref() {
            not_finished.push(IncompleteRequest {
                id: r.id,
                pod: None,
                rejection: None,
                stalled: false,
                after_horizon: true,
            });
        }
        // The horizon cut the run short only if requests were still on their
        // way: later scrapes, index updates or hold timeouts are not work.
        let cut = stopped_at_horizon
            && (self.arrival_pending
                || dispatch_left
                || !self.pulls.is_empty()
                || self.pods.iter().any(|p| !p.is_idle()));
        let end_time = match self.horizon {
            Some(h) if cut => h,
            _ => self
                .pods
                .iter()
                .map(Pod::last_change)
                .max()
                .unwrap_or(SimTime::ZERO),
        };
        // Whatever else is still queued or running did not finish; when the
        // horizon cut nothing short, no event would ever move it.
        for (p, pod) in self.pods.iter_mut().enumerate() {
            pod.end_run(end_time);
            for id in pod.scheduler().unfinished_ids() {
                not_finished.push(IncompleteRequest {
                    id,
                    pod: Some(p as u32),
                    rejection: None,
                    stalled: !cut,
                    after_horizon: false,
                });
            }
        }
        not_finished.sort_by_key(|r| r.id);
        let (routing_decisions, decision_log, router_in_flight_at_end, indexer_hit_ratio) =
            match &mut self.routing {
                Routing::Epp { router, .. } => (
                    router.decision_counts(),
                    router.take_log(),
                    router.n_in_flight(),
                    router.prefix_indexer_hit_ratio(),
                ),
                Routing::Simple(_) => ((0, 0), Vec::new(), 0, None),
            };
        RunOutput {
            end_time,
            finished,
            not_finished,
            pods: self.pods,
            n_events,
            routing_decisions,
            prefix_indexer_hit_ratio: indexer_hit_ratio,
            decision_log,
            router_in_flight_at_end,
            n_transfers: self.n_transfers,
            n_hold_timeouts: self.n_hold_timeouts,
        }
    }

    /// A copy of `req` hashed for `pod` (its block size and hasher may differ).
    fn build_request_like(&self, req: &PodRequest, pod: usize) -> PodRequest {
        let sched = self.pods[pod].scheduler();
        let mut r = PodRequest::new(
            req.id,
            req.prompt.clone(),
            req.cache_salt.clone(),
            req.output.clone(),
            req.max_tokens,
            req.priority,
            req.arrival_key,
            PromptKeys::Hash(sched.hasher()),
            sched.config().block_size,
        );
        r.times = req.times;
        r
    }

    fn build_request(&self, tr: TraceRequest, pod: usize) -> PodRequest {
        let sched = self.pods[pod].scheduler();
        let block_size = sched.config().block_size;
        let known = match &self.routing {
            Routing::Epp { router, .. } => router.last_prompt_keys(sched.hasher(), block_size),
            Routing::Simple(_) => None,
        };
        let output = match tr.output_token_ids {
            Some(ids) => OutputTokens::Given(ids),
            None => OutputTokens::Synthetic(tr.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5eed),
        };
        PodRequest::new(
            tr.id,
            tr.prompt,
            tr.cache_salt,
            output,
            tr.output_len,
            0,
            tr.arrival_ns,
            known.unwrap_or(PromptKeys::Hash(sched.hasher())),
            block_size,
        )
    }
}
