//! The cluster simulation: a router in front of timed vLLM pods, driven by
//! one event queue.
//!
//! Control surface: [`Simulation::run`]. The loop pops events in the one
//! order defined in [`crate::engine::queue`]; each handler returns or pushes
//! its follow-ups. Requests stream in from the workload one at a time (only
//! the next arrival is ever queued), so memory does not grow with trace size.

pub mod epp_router;
pub mod kv_lag;
pub mod router;
#[cfg(test)]
mod tests;

use crate::engine::queue::{EventClass, EventQueue};
use crate::engine::time::{SimDuration, SimTime};
use crate::kv::events::KvEvent as PodKvEvent;
use crate::pod::engine::Pod;
use crate::pod::request::{OutputTokens, PodRequest};
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
    IndexUpdate { pod: u32, events: Vec<PodKvEvent> },
    /// The router scrapes pod metrics.
    MetricsScrape,
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
    /// Requests never completed: rejected, or still in flight at the horizon.
    pub not_finished: Vec<IncompleteRequest>,
    /// The pods, with their counters and final state.
    pub pods: Vec<Pod>,
    /// Time of the last processed event.
    pub end_time: SimTime,
    /// Events processed.
    pub n_events: u64,
    /// EPP decisions and those made on a stale index view (with the decision log).
    pub routing_decisions: (u64, u64),
    /// The decision log (empty unless requested).
    pub decision_log: Vec<DecisionRow>,
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
    /// Rejected, or `None` when still queued or running at the end.
    pub rejection: Option<Rejection>,
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
    block_size_of: Vec<u32>,
    max_model_len_of: Vec<u32>,
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
        let block_size_of = pods
            .iter()
            .map(|p| p.scheduler().config().block_size)
            .collect();
        let max_model_len_of = pods
            .iter()
            .map(|p| p.scheduler().config().max_model_len)
            .collect();
        Simulation {
            pods,
            routing,
            workload,
            arrival_pending: false,
            queue: EventQueue::new(),
            routing_latency,
            horizon: None,
            block_size_of,
            max_model_len_of,
        }
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

    /// Sends the KV events `pod` published to the router's index, late.
    fn publish(&mut self, pod: u32, now: SimTime) {
        let events = self.pods[pod as usize].take_published_events();
        let Routing::Epp {
            router, pipeline, ..
        } = &mut self.routing
        else {
            return;
        };
        if events.is_empty() || !router.has_index() {
            return;
        }
        let t = pipeline.delivery_ns(pod as usize, now.as_ns(), events.len());
        self.queue.push(
            SimTime(t),
            EventClass::IndexUpdate,
            Event::IndexUpdate { pod, events },
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
        while let Some((key, ev)) = self.queue.pop() {
            if self.horizon.is_some_and(|h| key.time > h) {
                break;
            }
            n_events += 1;
            let now = key.time;
            match ev {
                Event::Arrival(tr) => {
                    self.push_next_arrival();
                    let pod = match &mut self.routing {
                        Routing::Simple(r) => r.pick(self.pods.len()) as u32,
                        Routing::Epp { router, .. } => {
                            match router.route(&tr, &self.pods, now.as_ns()) {
                                Some(p) => p,
                                None => {
                                    not_finished.push(IncompleteRequest {
                                        id: tr.id,
                                        pod: None,
                                        rejection: Some(Rejection::NoEndpoint),
                                    });
                                    continue;
                                }
                            }
                        }
                    };
                    let p = pod as usize;
                    let total = tr.prompt.n_tokens() as u64 + tr.output_len as u64;
                    if total > self.max_model_len_of[p] as u64
                        || tr.prompt.n_tokens() == 0
                        || tr.output_len == 0
                    {
                        not_finished.push(IncompleteRequest {
                            id: tr.id,
                            pod: Some(pod),
                            rejection: Some(Rejection::TooLong),
                        });
                        continue;
                    }
                    let mut req = self.build_request(*tr, p);
                    req.times.arrival_ns = now.as_ns();
                    let lookup = match &self.routing {
                        Routing::Epp {
                            pipeline, router, ..
                        } if router.has_index() => {
                            SimDuration::from_us_f64_ceil(pipeline.lag().redis_lookup_rtt_us)
                        }
                        _ => SimDuration::ZERO,
                    };
                    let delay = self.routing_latency
                        + lookup
                        + self.pods[p].admission_overhead(req.prompt_len);
                    self.queue.push(
                        now.add(delay),
                        EventClass::Dispatch,
                        Event::Dispatch {
                            pod,
                            req: Box::new(req),
                        },
                    );
                }
                Event::Dispatch { pod, req } => {
                    if let Some(end) = self.pods[pod as usize].add_request(*req, now) {
                        self.queue
                            .push(end, EventClass::StepEnd, Event::StepEnd { pod });
                    }
                    self.publish(pod, now);
                }
                Event::IndexUpdate { pod, events } => {
                    if let Routing::Epp { router, .. } = &mut self.routing {
                        router.apply_events(pod, &events);
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
                    let out = self.pods[pod as usize].on_step_end(now);
                    if let Some(end) = out.next_step_end {
                        self.queue
                            .push(end, EventClass::StepEnd, Event::StepEnd { pod });
                    }
                    self.publish(pod, now);
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
        // Whatever is still queued or running did not finish.
        for (p, pod) in self.pods.iter().enumerate() {
            for id in pod.scheduler().unfinished_ids() {
                not_finished.push(IncompleteRequest {
                    id,
                    pod: Some(p as u32),
                    rejection: None,
                });
            }
        }
        while let Some((_, ev)) = self.queue.pop() {
            match ev {
                Event::Arrival(tr) => not_finished.push(IncompleteRequest {
                    id: tr.id,
                    pod: None,
                    rejection: None,
                }),
                Event::Dispatch { pod, req } => not_finished.push(IncompleteRequest {
                    id: req.id,
                    pod: Some(pod),
                    rejection: None,
                }),
                Event::StepEnd { .. } | Event::IndexUpdate { .. } | Event::MetricsScrape => {}
            }
        }
        for r in self.workload.by_ref() {
            not_finished.push(IncompleteRequest {
                id: r.id,
                pod: None,
                rejection: None,
            });
        }
        not_finished.sort_by_key(|r| r.id);
        let (routing_decisions, decision_log) = match &mut self.routing {
            Routing::Epp { router, .. } => (router.decision_counts(), router.take_log()),
            Routing::Simple(_) => ((0, 0), Vec::new()),
        };
        RunOutput {
            end_time: self.queue.now(),
            finished,
            not_finished,
            pods: self.pods,
            n_events,
            routing_decisions,
            decision_log,
        }
    }

    fn build_request(&self, tr: TraceRequest, pod: usize) -> PodRequest {
        let sched = self.pods[pod].scheduler();
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
            sched.hasher(),
            self.block_size_of[pod],
        )
    }
}
