//! The cluster simulation: a router in front of timed vLLM pods.
//!
//! Control surface: [`Simulation::run`]. Router events (arrivals, KV transfer
//! wake-ups, hold timeouts) wait in one queue; each pod's step ends and the
//! requests dispatched to it run on its [`Lane`]; both follow the one order
//! defined in [`crate::engine::queue`]. Before each router event the pods
//! run up to it (without P/D, all the way to the next arrival, partly on a
//! second thread, and past the dispatches of its instant when the router
//! cannot see them), and what they left (KV events, finished requests, KV
//! pulls) is taken in order. Requests stream in from the workload one at a
//! time (only the next arrival is ever queued, and the helper thread reads
//! a few ahead while it waits), so memory does not grow with trace size.

mod crew;
pub mod epp_router;
pub mod key_spaces;
pub mod kv_lag;
pub mod lane;
mod phase_times;
mod read_ahead;
pub mod router;
#[cfg(test)]
mod tests;

use crate::engine::queue::{EventClass, EventQueue};
use crate::engine::time::{SimDuration, SimTime};
use crate::pod::engine::Pod;
use crate::pod::request::{OutputTokens, PodRequest, PromptKeys};
use crate::pod::scheduler::Finished;
use crate::pod::scheduler::KvLoad;
use crate::trace::request::TraceRequest;
use crew::Crew;
use epp_router::{DecisionRow, EppRouter};
use kv_lag::EventPipeline;
use lane::{At, Lane};
pub use phase_times::PhaseTimes;
use phase_times::{Phase, PhaseClock};
use read_ahead::ReadAhead;
use router::Router;
use std::sync::Arc;

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

/// The router-side events; each pod's step ends and dispatches run on its
/// [`Lane`].
#[derive(Debug)]
enum Event {
    /// The next workload request reaches the router.
    Arrival(Box<TraceRequest>),
    /// The transfer network may have completions due (stale if `gen` is old).
    TransferWake { gen: u64 },
    /// A prefill pod's hold on a request's blocks expires.
    HoldTimeout { pod: u32, request_id: u64 },
}

impl Event {
    fn class(&self) -> EventClass {
        match self {
            Event::Arrival(_) => EventClass::Arrival,
            Event::TransferWake { .. } => EventClass::TransferDone,
            Event::HoldTimeout { .. } => EventClass::Dispatch,
        }
    }
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
    /// Wall time per part of the loop, if asked for
    /// ([`Simulation::with_phase_times`]).
    pub phase_times: Option<PhaseTimes>,
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
pub struct Simulation<W: Iterator<Item = TraceRequest> + Send + 'static> {
    pods: Vec<Pod>,
    /// Per pod, its clock, inbox and output buffers.
    lanes: Vec<Lane>,
    routing: Routing,
    /// Read ahead by the pods' helper thread, if there is one.
    workload: Arc<ReadAhead<W>>,
    arrival_pending: bool,
    /// Scratch: which lane's call record comes next, as (time, class,
    /// dispatch seq, pod) packed into one integer.
    output_order: Vec<u128>,
    /// Dispatches sent so far (the next one's seq).
    n_dispatched: u64,
    /// Lanes run before an arrival only to its instant's dispatches
    /// ([`Simulation::barrier_class`]).
    barrier_class: EventClass,
    /// Threads the pods may run on.
    threads: usize,
    /// Runs some pods on a second thread (none: all on this one).
    crew: Option<Crew>,
    /// When the queued arrival reaches the router.
    next_arrival: Option<SimTime>,
    /// Without P/D: every pod has run its events before this point.
    pods_ran_to: Option<At>,
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
    /// Completed requests, in completion order.
    finished: Vec<CompletedRequest>,
    phase_clock: PhaseClock,
}

impl<W: Iterator<Item = TraceRequest> + Send + 'static> Simulation<W> {
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
        let scrape_interval_ns = match &routing {
            Routing::Epp { refresh, .. } => Some(refresh.as_ns()),
            Routing::Simple(_) => None,
        };
        let keep_events = matches!(&routing, Routing::Epp { router, .. } if router.has_index());
        let barrier_class = Self::barrier_class(&routing);
        let lanes = pods
            .iter()
            .map(|_| {
                let mut lane = Lane::new(scrape_interval_ns);
                if keep_events {
                    lane.keep_events();
                }
                lane
            })
            .collect();
        Simulation {
            lanes,
            pods,
            routing,
            workload: Arc::new(ReadAhead::new(workload)),
            arrival_pending: false,
            next_arrival: None,
            threads: 1,
            crew: None,
            output_order: Vec::new(),
            n_dispatched: 0,
            barrier_class,
            pods_ran_to: None,
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
            finished: Vec::new(),
            phase_clock: PhaseClock::default(),
        }
    }

    /// Enables P/D disaggregation (the EPP's prefill profile picks a prefill pod).
    pub fn with_pd(mut self, pd: Option<PdSetup>) -> Self {
        self.pd = pd;
        self
    }

    /// Runs the pods on up to `n` threads (at most 2 are used, and 1 with
    /// P/D, whose pods reach one another between router events). Outputs
    /// do not depend on it.
    pub fn with_threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Measures where the run's wall time goes ([`RunOutput::phase_times`]).
    pub fn with_phase_times(mut self) -> Self {
        self.phase_clock = PhaseClock::enabled();
        self
    }

    /// Runs the pods up to each arrival including the dispatches of its
    /// instant, as if the router could see them (tests compare the two).
    #[cfg(test)]
    fn without_deferred_dispatches(mut self) -> Self {
        self.barrier_class = EventClass::Arrival;
        self
    }

    /// Stops processing events after `t` (requests still in flight are reported).
    pub fn with_horizon(mut self, t: Option<SimTime>) -> Self {
        self.horizon = t;
        self
    }

    /// Up to which event of an arrival's instant the pods must run before
    /// the router routes it. A dispatch at that very instant (routed there
    /// with no delay) can only matter to the routing through its KV events
    /// (which reach the index after a lag), the pods' caches (read only by
    /// the oracle index and the decision log) or a finished request (not
    /// before the step it starts ends); the instant's metrics scrape comes
    /// before dispatches. So when none of those can reach the router at
    /// once, the instant's dispatches wait for the next window: a burst of
    /// arrivals (the Mooncake traces put ~10 in each millisecond they use)
    /// is routed in one go, and the pods then take their requests side by
    /// side rather than one window each.
    fn barrier_class(routing: &Routing) -> EventClass {
        let sees_dispatch_at_once = match routing {
            Routing::Simple(_) => false,
            Routing::Epp {
                router, pipeline, ..
            } => router.reads_pod_caches() || (router.has_index() && pipeline.min_delay_ns() == 0),
        };
        if sees_dispatch_at_once {
            EventClass::Arrival
        } else {
            EventClass::Dispatch
        }
    }

    /// Queues `req` for `pod` at `at`, as the next dispatch.
    fn dispatch(&mut self, pod: u32, at: SimTime, req: Box<PodRequest>) {
        self.lanes[pod as usize].dispatch(at, self.n_dispatched, req);
        self.n_dispatched += 1;
    }

    fn push_next_arrival(&mut self) {
        self.arrival_pending = false;
        self.next_arrival = None;
        if let Some(r) = self.workload.next() {
            let t = SimTime(r.arrival_ns).max(self.queue.now());
            self.next_arrival = Some(t);
            self.queue
                .push(t, EventClass::Arrival, Event::Arrival(Box::new(r)));
            self.arrival_pending = true;
        }
    }

    /// Takes what the pods' calls left, in event order (time, class, pod,
    /// call): KV events go to the index, KV pulls start, finished requests
    /// are counted out.
    fn take_pod_outputs(&mut self, progress: &mut dyn Progress) {
        let span = self.phase_clock.start();
        let mut order = std::mem::take(&mut self.output_order);
        order.clear();
        // One integer per record: time, class, dispatch seq (its low bits:
        // seqs of one instant are close), pod.
        let pod_bits = usize::BITS - self.lanes.len().leading_zeros();
        let seq_mask = (1u64 << (61 - pod_bits)) - 1;
        for (p, lane) in self.lanes.iter().enumerate() {
            order.extend(lane.records().map(|r| {
                let (t, class) = r.at;
                (u128::from(t.as_ns()) << 64)
                    | ((class as u128) << 61)
                    | (u128::from(r.dispatch_seq & seq_mask) << pod_bits)
                    | p as u128
            }));
        }
        // A lane's records are in order already and take turns from its
        // front, so equal keys of one lane need no order among themselves.
        order.sort_unstable();
        let pod_mask = (1u128 << pod_bits) - 1;
        for &key in &order {
            let pod = (key & pod_mask) as u32;
            let p = pod as usize;
            let rec = self.lanes[p].take_record().expect("peeked");
            let now = rec.at.0;
            // KV events, late, to the router's index (lanes keep them only
            // for one).
            if let Routing::Epp {
                router, pipeline, ..
            } = &mut self.routing
            {
                if rec.events.n_events > 0 && router.has_index() {
                    // The batch waits in the lane until it is delivered.
                    pipeline.publish(pod, now.as_ns(), rec.events);
                }
            }
            if rec.n_loads > 0 {
                let loads = self.lanes[p].take_loads(rec.n_loads);
                self.start_pulls(pod, loads, now);
            }
            if rec.n_finished > 0 {
                let finished = self.lanes[p].take_finished(rec.n_finished);
                self.take_finished(pod, finished, now, progress);
            }
        }
        self.output_order = order;
        self.phase_clock.stop(span, Phase::PodOutputs);
    }

    /// P/D decode side: starts the KV pulls `pod`'s admissions require.
    fn start_pulls(&mut self, pod: u32, loads: Vec<KvLoad>, now: SimTime) {
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

    /// Requests that finished on `pod` at `now`: prefill legs hand their
    /// decode leg on, the others are done.
    fn take_finished(
        &mut self,
        pod: u32,
        mut out: Vec<Finished>,
        now: SimTime,
        progress: &mut dyn Progress,
    ) {
        out.retain(|f| {
            if f.req.kv_transfer != crate::pod::request::KvTransfer::Produce {
                return true;
            }
            self.prefill_done(pod, f.req.id, now);
            false
        });
        if let Routing::Epp { router, .. } = &mut self.routing {
            for f in &out {
                let tokens = f.req.prompt_len as u64 + f.req.max_tokens as u64;
                router.complete(pod, f.req.id, tokens, now.as_ns());
            }
        }
        let before = self.finished.len() as u64;
        self.finished.extend(
            out.into_iter()
                .map(|Finished { req, .. }| CompletedRequest { pod, req }),
        );
        if self.finished.len() as u64 / 1024 != before / 1024 {
            progress.on_progress(self.finished.len() as u64);
        }
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
            let decode = f.decode;
            self.dispatch(decode, now, leg);
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

    /// Runs pod events that come before the router's next event `head`
    /// (or `stop`); whether any ran. Without P/D, pods affect one another
    /// only through routing, so every pod runs up to the next arrival (or
    /// its instant's dispatches, [`Simulation::barrier_class`]), side by
    /// side on the worker threads; with P/D, one event at a time in
    /// event order, as a finished prefill or a started pull reaches another
    /// pod at once.
    fn run_pods(&mut self, head: Option<At>, stop: At, progress: &mut dyn Progress) -> bool {
        if self.pd.is_some() {
            let next = (0..self.lanes.len())
                .filter_map(|p| self.lanes[p].next_at().map(|a| (a, p)))
                .min();
            let Some((at, p)) = next.filter(|&(a, _)| a < head.unwrap_or(stop)) else {
                return false;
            };
            let span = self.phase_clock.start();
            self.lanes[p].run_next(&mut self.pods[p], at);
            self.phase_clock.stop(span, Phase::Pods);
            self.take_pod_outputs(progress);
            return true;
        }
        let barrier = self
            .next_arrival
            .map(|t| (t, self.barrier_class))
            .filter(|&a| a < stop)
            .unwrap_or(stop);
        if self.pods_ran_to == Some(barrier) {
            return false;
        }
        self.pods_ran_to = Some(barrier);
        let span = self.phase_clock.start();
        match &mut self.crew {
            Some(crew) => crew.run_until(&mut self.pods, &mut self.lanes, barrier),
            None => {
                for (pod, lane) in self.pods.iter_mut().zip(&mut self.lanes) {
                    lane.run_until(pod, barrier);
                }
            }
        }
        self.phase_clock.stop(span, Phase::Pods);
        self.take_pod_outputs(progress);
        true
    }

    /// Applies the batches of KV events that reach the router's index
    /// before `at` (only routing reads the index); how many.
    fn apply_index_updates(&mut self, at: At) -> u64 {
        let Routing::Epp {
            router, pipeline, ..
        } = &mut self.routing
        else {
            return 0;
        };
        let mut n = 0;
        while let Some((_, pod, len)) = pipeline.pop_applied_before(at) {
            // A pod's batches are delivered in publish order: this one is the
            // oldest its lane holds.
            router.apply_events(pod, self.lanes[pod as usize].key_ops().take(len));
            n += 1;
        }
        n
    }

    /// Runs to completion (or the horizon).
    pub fn run(mut self, progress: &mut dyn Progress) -> RunOutput {
        if self.threads > 1 && self.pods.len() > 1 && self.pd.is_none() {
            // Without a second thread, the run is the same on one.
            let idle: Arc<dyn crew::IdleWork> = self.workload.clone();
            self.crew = Crew::new(self.pods.len(), Some(idle)).ok();
        }
        let mut not_finished = Vec::new();
        let mut n_events = 0u64;
        self.push_next_arrival();
        // Past the horizon nothing runs.
        let stop: At = match self.horizon {
            Some(h) => (h.add(SimDuration(1)), EventClass::TransferDone),
            None => lane::END,
        };
        loop {
            let head = self
                .queue
                .peek()
                .map(|k| (k.time, k.class))
                .filter(|&a| a < stop);
            // The pods' outputs may queue router events before `head`.
            if self.run_pods(head, stop, progress) {
                continue;
            }
            if head.is_none() {
                break;
            }
            let (key, ev) = self.queue.pop().expect("peeked");
            n_events += 1;
            let now = key.time;
            let at = (now, ev.class());
            match ev {
                Event::Arrival(tr) => {
                    let span = self.phase_clock.start();
                    n_events += self.apply_index_updates(at);
                    self.phase_clock.stop(span, Phase::Index);
                    self.push_next_arrival();
                    let span = self.phase_clock.start();
                    self.arrive(*tr, at, &mut not_finished);
                    self.phase_clock.stop(span, Phase::Routing);
                    self.pods_ran_to = None;
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
                            let p = f.prefill as usize;
                            self.lanes[p].release_held(&mut self.pods[p], request_id, at);
                            self.take_pod_outputs(progress);
                        }
                        let d = dst as usize;
                        self.lanes[d].kv_received(&mut self.pods[d], slot, at);
                        self.take_pod_outputs(progress);
                    }
                    self.schedule_transfer_wake();
                }
                Event::HoldTimeout { pod, request_id } => {
                    let p = pod as usize;
                    if self.lanes[p].release_held(&mut self.pods[p], request_id, at) {
                        self.n_hold_timeouts += 1;
                    }
                    self.take_pod_outputs(progress);
                }
            }
        }
        self.crew = None; // the helper stops
        n_events += self.lanes.iter().map(|l| l.n_events).sum::<u64>();
        progress.on_progress(self.finished.len() as u64);
        // Whatever is left lies past the horizon (or never happens).
        let mut stopped_at_horizon = self.lanes.iter().any(|l| l.next_at().is_some());
        let mut dispatch_left = false;
        while let Some((_, ev)) = self.queue.pop() {
            stopped_at_horizon = true;
            if let Event::Arrival(tr) = ev {
                not_finished.push(IncompleteRequest {
                    id: tr.id,
                    pod: None,
                    rejection: None,
                    stalled: false,
                    after_horizon: true,
                });
            }
        }
        for (p, lane) in self.lanes.iter().enumerate() {
            for id in lane.undelivered() {
                dispatch_left = true;
                not_finished.push(IncompleteRequest {
                    id,
                    pod: Some(p as u32),
                    rejection: None,
                    stalled: false,
                    after_horizon: false,
                });
            }
        }
        while let Some(r) = self.workload.next() {
            not_finished.push(IncompleteRequest {
                id: r.id,
                pod: None,
                rejection: None,
                stalled: false,
                after_horizon: true,
            });
        }
        // The horizon cut the run short only if requests were still on their
        // way: later index updates or hold timeouts are not work.
        let cut = stopped_at_horizon
            && self.horizon.is_some()
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
            finished: self.finished,
            not_finished,
            pods: self.pods,
            n_events,
            routing_decisions,
            prefix_indexer_hit_ratio: indexer_hit_ratio,
            decision_log,
            router_in_flight_at_end,
            n_transfers: self.n_transfers,
            n_hold_timeouts: self.n_hold_timeouts,
            phase_times: self.phase_clock.times(),
        }
    }

    /// Routes the request arriving at `at` and dispatches it (P/D: its
    /// prefill leg first), or records why not.
    fn arrive(&mut self, tr: TraceRequest, at: At, not_finished: &mut Vec<IncompleteRequest>) {
        let now = at.0;
        let decision = match &mut self.routing {
            Routing::Simple(r) => {
                let targets = &self.simple_targets;
                Some((targets[r.pick(targets.len())], None))
            }
            Routing::Epp { router, .. } => {
                for (p, (lane, pod)) in self.lanes.iter_mut().zip(&self.pods).enumerate() {
                    router.observe_metrics(p, lane.metrics_before(pod, at));
                }
                router.route(&tr, &self.pods, now.as_ns())
            }
        };
        let Some((pod, prefill)) = decision else {
            not_finished.push(IncompleteRequest {
                id: tr.id,
                pod: None,
                rejection: Some(Rejection::NoEndpoint),
                stalled: false,
                after_horizon: false,
            });
            return;
        };
        let p = pod as usize;
        let total = tr.prompt.n_tokens() as u64 + tr.output_len as u64;
        let too_long = |q: usize| total > self.pods[q].scheduler().config().max_model_len as u64;
        if too_long(p)
            || prefill.is_some_and(|q| too_long(q as usize))
            || tr.prompt.n_tokens() == 0
            || tr.output_len == 0
        {
            // vLLM answers with an error: the EPP's response hook counts the
            // request out again.
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
            return;
        }
        let id = tr.id;
        let mut req = self.build_request(tr, p);
        req.times.arrival_ns = now.as_ns();
        // P/D: the routing sidecar first sends a copy with max_tokens = 1 to
        // the prefill pod, which keeps the blocks for the pull; the decode
        // leg waits in the flow.
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
        self.dispatch(first_pod, now.add(delay), Box::new(first_leg));
    }

    /// A copy of `req` for `pod`, which hashes it anew (its block size and
    /// hasher may differ).
    fn build_request_like(&self, req: &PodRequest, pod: usize) -> PodRequest {
        let mut r = PodRequest::new(
            req.id,
            req.prompt.clone(),
            req.cache_salt.clone(),
            req.output.clone(),
            req.max_tokens,
            req.priority,
            req.arrival_key,
            PromptKeys::Deferred,
            self.pods[pod].scheduler().config().block_size,
        );
        r.times = req.times;
        r
    }

    fn build_request(&self, tr: TraceRequest, pod: usize) -> PodRequest {
        let block_size = self.pods[pod].scheduler().config().block_size;
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
            // The pod hashes the prompt on its own thread.
            PromptKeys::Deferred,
            block_size,
        )
    }
}
