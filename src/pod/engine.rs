//! A timed vLLM engine: the [`Scheduler`] driven by a step-time model.
//!
//! The GPU runs planned steps back to back. Sync scheduling keeps one step in
//! flight: the next is planned when the previous one's output is processed.
//! Async scheduling (vLLM 0.33's default, `step_with_batch_queue` with a
//! queue of 2) plans step N+1 while step N runs, so decisions see one step
//! less of news but the GPU never waits for the CPU. Either way, outputs of a
//! step (tokens, finishes, KV events) appear at the step's end time.

use std::collections::VecDeque;

use super::latency::StepTimeModel;
use super::request::PodRequest;
use super::scheduler::{Finished, KvLoad, ReqSlot, Scheduler, StepOutcome, StepPlan};
use crate::engine::time::{SimDuration, SimTime};
use crate::kv::events::EventLog;
use crate::metrics::histogram::LogHistogram;

/// Pod role label (`llm-d.ai/role`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Prefill and decode (no P/D).
    Both,
    /// Prefill only.
    Prefill,
    /// Decode only.
    Decode,
}

impl Role {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Both => "both",
            Role::Prefill => "prefill",
            Role::Decode => "decode",
        }
    }
}

/// A pod's state at one instant of the sampling grid, after every event at
/// or before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodSample {
    /// Sample time: a multiple of the sample interval.
    pub t_ns: u64,
    /// `1 − free/usable`.
    pub kv_usage: f64,
    /// Waiting requests.
    pub n_waiting: u32,
    /// Running requests.
    pub n_running: u32,
    /// Cumulative prefix-cache query tokens.
    pub prefix_queries: u64,
    /// Cumulative prefix-cache hit tokens.
    pub prefix_hits: u64,
}

/// Counters a pod keeps for reports.
#[derive(Clone, Debug, Default)]
pub struct PodCounters {
    /// Engine steps (with at least one token) that ended by the run end.
    pub n_steps: u64,
    /// Time within the run the GPU was executing steps: counted when a step
    /// ends, and for a step still in flight at the run end, its part before
    /// that end ([`Pod::end_run`]), so a horizon never counts time after it.
    pub busy_ns: u64,
    /// Output tokens produced.
    pub n_output_tokens: u64,
    /// Requests that reached this pod.
    pub n_requests: u64,
    /// Gaps between consecutive output tokens of a request.
    pub itl: LogHistogram,
    /// One sample per multiple of the sample interval from 0 to the run end.
    pub samples: Vec<PodSample>,
}

/// What a step end produced.
#[derive(Debug, Default)]
pub struct StepEndOutput {
    /// Requests that finished, with their final state and times.
    pub finished: Vec<Finished>,
    /// When the next step in flight ends, if any.
    pub next_step_end: Option<SimTime>,
}

/// A planned step and when the GPU runs it.
#[derive(Debug)]
struct InFlightStep {
    /// Boxed: a plan is large and moves through the queues every step.
    plan: Box<StepPlan>,
    start: SimTime,
    end: SimTime,
}

/// One vLLM engine with a clock.
#[derive(Debug)]
// 128-byte aligned: neighbours in the cluster's vector, run on different
// threads, then share no cache line (nor an adjacent-line prefetch pair).
#[repr(align(128))]
pub struct Pod {
    /// Index in the cluster.
    pub idx: u32,
    /// Name (`<group>-<i>`).
    pub name: String,
    /// Role label.
    pub role: Role,
    sched: Scheduler,
    step_model: Box<dyn StepTimeModel>,
    /// The model's delay per output token, ns (read every step).
    per_token_ns: u64,
    in_flight: VecDeque<InFlightStep>,
    /// Plans whose step ended, recycled so a step allocates nothing (kept
    /// boxed: they go back to `in_flight` without a copy).
    #[allow(clippy::vec_box)]
    spare_plans: Vec<Box<StepPlan>>,
    /// The last step's outcome, recycled likewise.
    outcome: StepOutcome,
    max_in_flight: usize,
    counters: PodCounters,
    /// Time of the last call that could change the pod's state.
    last_change: SimTime,
    sample_interval_ns: u64,
    /// The first grid instant without a sample yet.
    next_sample_ns: u64,
    outbox: EventLog,
    publish_immediately: bool,
    /// P/D decode side: KV pulls to start (drained by the cluster).
    kv_loads: Vec<KvLoad>,
    /// P/D decode side: pulls finished while a step ran; reported at its end.
    recv_pending: Vec<ReqSlot>,
    /// Whether steady decode steps take [`Scheduler::decode_step`].
    fused_decode: bool,
    /// Steps that took it.
    n_fused_steps: u64,
}

impl Pod {
    /// A pod around `sched`, timed by `step_model`.
    pub fn new(
        idx: u32,
        name: String,
        role: Role,
        sched: Scheduler,
        step_model: Box<dyn StepTimeModel>,
        sample_interval: SimDuration,
    ) -> Pod {
        let max_in_flight = if sched.config().async_scheduling {
            2
        } else {
            1
        };
        Pod {
            idx,
            name,
            role,
            sched,
            per_token_ns: step_model.per_output_token_overhead().as_ns(),
            step_model,
            in_flight: VecDeque::new(),
            spare_plans: Vec::new(),
            outcome: StepOutcome::default(),
            max_in_flight,
            counters: PodCounters::default(),
            last_change: SimTime::ZERO,
            sample_interval_ns: sample_interval.as_ns().max(1),
            next_sample_ns: 0,
            outbox: EventLog::default(),
            publish_immediately: false,
            kv_loads: Vec::new(),
            recv_pending: Vec::new(),
            fused_decode: true,
            n_fused_steps: 0,
        }
    }

    /// The pod with another step-time model (tests).
    #[cfg(test)]
    pub fn with_step_model(mut self, m: Box<dyn StepTimeModel>) -> Pod {
        self.per_token_ns = m.per_output_token_overhead().as_ns();
        self.step_model = m;
        self
    }

    /// Whether steady decode steps take the fused path (on by default). Off,
    /// every step takes the general calls, which give the same run: tests
    /// compare the two.
    pub fn set_fused_decode(&mut self, on: bool) {
        self.fused_decode = on;
    }

    /// Steps that took the fused decode path.
    pub fn n_fused_steps(&self) -> u64 {
        self.n_fused_steps
    }

    /// P/D decode side: KV pulls that admissions since the last call require.
    pub fn take_kv_loads(&mut self) -> Vec<KvLoad> {
        std::mem::take(&mut self.kv_loads)
    }

    /// P/D decode side: the pull of `slot` completed at `now`. vLLM polls
    /// transfers once per step, so a busy pod learns of it at the end of its
    /// current step; an idle pod starts a step now (returning its end).
    pub fn kv_received(&mut self, slot: ReqSlot, now: SimTime) -> Option<SimTime> {
        self.advance_to(now);
        if self.in_flight.is_empty() {
            self.sched.mark_kv_received(slot);
            self.fill(now);
            return self.in_flight.front().map(|s| s.end);
        }
        self.recv_pending.push(slot);
        None
    }

    /// P/D prefill side: frees the blocks held for request `id` at `now`.
    /// Returns whether any were held and, when that lets an idle pod with
    /// waiting requests start a step, the step's end: vLLM's engine keeps
    /// looping while requests wait, so it admits them at once.
    pub fn release_held(&mut self, id: u64, now: SimTime) -> (bool, Option<SimTime>) {
        if !self.sched.holds(id) {
            return (false, None);
        }
        self.advance_to(now);
        let freed = self.sched.release_held(id);
        if !self.in_flight.is_empty() {
            return (freed, None);
        }
        self.fill(now);
        (freed, self.in_flight.front().map(|s| s.end))
    }

    /// Publish KV events the moment the block pool changes, not once per step.
    pub fn set_publish_immediately(&mut self, on: bool) {
        self.publish_immediately = on;
    }

    /// Whether KV events or KV pulls wait to be drained.
    pub fn has_outputs(&self) -> bool {
        !self.outbox.is_empty() || !self.kv_loads.is_empty()
    }

    /// KV events published since the last [`Pod::clear_published_events`], in order.
    pub fn published_events(&self) -> &EventLog {
        &self.outbox
    }

    /// Drops the published events (their reader took them).
    pub fn clear_published_events(&mut self) {
        self.outbox.clear();
    }

    /// The engine's scheduler (queues, cache, stats).
    pub fn scheduler(&self) -> &Scheduler {
        &self.sched
    }

    /// Counters so far.
    pub fn counters(&self) -> &PodCounters {
        &self.counters
    }

    /// Time of the last event that could change the pod's state (0 if none):
    /// a request's arrival, a step end, a KV pull's end, a freed hold.
    pub fn last_change(&self) -> SimTime {
        self.last_change
    }

    /// Whether no step is in flight.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Delay before a request of `prompt_tokens` can be admitted (model overhead).
    pub fn admission_overhead(&self, prompt_tokens: u32) -> SimDuration {
        self.step_model.admission_overhead(prompt_tokens)
    }

    /// Adds a request at `now`; if the pod was idle it starts a step and
    /// returns that step's end time.
    pub fn add_request(&mut self, mut req: PodRequest, now: SimTime) -> Option<SimTime> {
        self.advance_to(now);
        req.times.dispatch_ns = now.as_ns();
        self.counters.n_requests += 1;
        self.sched.add_request(req);
        if self.in_flight.is_empty() {
            self.fill(now);
            return self.in_flight.front().map(|s| s.end);
        }
        None
    }

    /// Processes the output of the step ending at `now` and plans more work.
    pub fn on_step_end(&mut self, now: SimTime) -> StepEndOutput {
        self.advance_to(now);
        if let Some(out) = self.steady_decode_step(now) {
            return out;
        }
        let InFlightStep { plan, start, end } =
            self.in_flight.pop_front().expect("a step was in flight");
        debug_assert_eq!(end, now);
        self.counters.n_steps += 1;
        self.counters.busy_ns += end.since(start).as_ns();
        let mut outcome = std::mem::take(&mut self.outcome);
        self.sched.update_from_output_into(&plan, &mut outcome);
        self.spare_plans.push(plan);
        let per_token = self.per_token_ns;
        let t = now.as_ns();
        // Output token k of a request is emitted `k` per-token overheads
        // after the step ends.
        let stamp = |r: &mut PodRequest, itl: &mut LogHistogram| {
            if let Some(gap) = stamp_token(r, t + per_token * r.num_output_tokens as u64) {
                itl.record(gap);
            }
        };
        for &slot in &outcome.sampled {
            if self.sched.live(slot).is_some() {
                stamp(self.sched.req_mut(slot), &mut self.counters.itl);
            }
        }
        self.outbox.append(&mut outcome.events);
        let mut finished = std::mem::take(&mut outcome.finished);
        for f in &mut finished {
            // The finishing token was appended after the request left the
            // scheduler: stamp it here.
            stamp(&mut f.req, &mut self.counters.itl);
        }
        self.counters.n_output_tokens += outcome.sampled.len() as u64;
        self.outcome = outcome;
        if self.publish_immediately {
            self.sched.take_events_now(&mut self.outbox);
        }
        for slot in std::mem::take(&mut self.recv_pending) {
            self.sched.mark_kv_received(slot);
        }
        self.fill(now);
        StepEndOutput {
            finished,
            next_step_end: self.in_flight.front().map(|s| s.end),
        }
    }

    /// [`Pod::on_step_end`] through [`Scheduler::decode_step`] when the
    /// step ending at `now` and the next one are steady decode steps of
    /// async scheduling; `None` (nothing changed) otherwise.
    fn steady_decode_step(&mut self, now: SimTime) -> Option<StepEndOutput> {
        if !self.fused_decode
            || self.in_flight.len() != 2
            || !self.recv_pending.is_empty()
            || self.publish_immediately
        {
            return None;
        }
        let step = self.in_flight.front_mut().expect("two in flight");
        debug_assert_eq!(step.end, now);
        let per_token = self.per_token_ns;
        let t = now.as_ns();
        let itl = &mut self.counters.itl;
        let mut n_tokens = 0;
        // A steady batch's tokens mostly share one gap: record runs of them.
        let mut gaps = SampleRun::default();
        let stamp = |r: &mut PodRequest| {
            if let Some(gap) = stamp_token(r, t + per_token * r.num_output_tokens as u64) {
                gaps.add(gap, itl);
            }
            n_tokens += 1;
        };
        let applies = self
            .sched
            .decode_step(&mut step.plan, &mut self.outbox, stamp);
        gaps.flush(itl);
        if !applies {
            return None;
        }
        let InFlightStep { plan, start, end } = self.in_flight.pop_front().expect("two in flight");
        self.n_fused_steps += 1;
        self.counters.n_steps += 1;
        self.counters.busy_ns += end.since(start).as_ns();
        self.counters.n_output_tokens += n_tokens;
        self.enqueue(plan, now);
        Some(StepEndOutput {
            finished: Vec::new(),
            next_step_end: self.in_flight.front().map(|s| s.end),
        })
    }

    /// Plans steps until `max_in_flight` are queued or nothing is runnable.
    fn fill(&mut self, now: SimTime) {
        while self.in_flight.len() < self.max_in_flight && self.sched.has_requests() {
            let mut plan = self.spare_plans.pop().unwrap_or_default();
            self.sched.schedule_into(&mut plan);
            self.outbox.append(&mut plan.events);
            self.kv_loads.append(&mut plan.kv_loads);
            if self.publish_immediately {
                self.sched.take_events_now(&mut self.outbox);
            }
            if plan.total_tokens() == 0 {
                self.spare_plans.push(plan);
                break;
            }
            for &(slot, _) in &plan.scheduled {
                let r = self.sched.req_mut(slot);
                if r.times.first_scheduled_ns.is_none() {
                    r.times.first_scheduled_ns = Some(now.as_ns());
                }
            }
            self.enqueue(plan, now);
        }
    }

    /// Queues a planned step: the GPU starts it when the last queued step
    /// ends (or at `now` if idle) and runs it for the model's step time.
    fn enqueue(&mut self, plan: Box<StepPlan>, now: SimTime) {
        let start = self.in_flight.back().map_or(now, |s| s.end.max(now));
        let dt = self.step_model.step_time(&plan.shape).max(SimDuration(1));
        self.in_flight.push_back(InFlightStep {
            plan,
            start,
            end: start.add(dt),
        });
    }

    /// Closes the counters when the run stops at `end` (call once): a step
    /// still in flight counts as busy for its part before `end`, and the
    /// time series gets its samples up to `end` inclusive.
    pub fn end_run(&mut self, end: SimTime) {
        for s in &self.in_flight {
            self.counters.busy_ns += end.since(s.start).min(s.end.since(s.start)).as_ns();
        }
        self.sample_before(end.as_ns().saturating_add(1));
    }

    /// Entered by every method that may change the pod's state at `now`,
    /// before it does: the grid instants before `now` see the state so far.
    fn advance_to(&mut self, now: SimTime) {
        self.sample_before(now.as_ns());
        self.last_change = now;
    }

    /// Samples the current state at every grid instant before `t_ns` not
    /// sampled yet. The state only changes inside the pod's entry points, so
    /// it is the state at each of those instants.
    fn sample_before(&mut self, t_ns: u64) {
        if self.next_sample_ns >= t_ns {
            return;
        }
        let st = self.sched.prefix_cache_stats();
        let state = PodSample {
            t_ns: 0,
            kv_usage: self.sched.pool().usage(),
            n_waiting: self.sched.n_waiting() as u32,
            n_running: self.sched.n_running() as u32,
            prefix_queries: st.queries,
            prefix_hits: st.hits,
        };
        while self.next_sample_ns < t_ns {
            self.counters.samples.push(PodSample {
                t_ns: self.next_sample_ns,
                ..state
            });
            self.next_sample_ns = self.next_sample_ns.saturating_add(self.sample_interval_ns);
        }
    }
}

/// Equal samples in a row, recorded at once.
#[derive(Default)]
struct SampleRun {
    value: u64,
    n: u64,
}

impl SampleRun {
    fn add(&mut self, value: u64, to: &mut LogHistogram) {
        if self.n > 0 && value != self.value {
            self.flush(to);
        }
        self.value = value;
        self.n += 1;
    }

    fn flush(&mut self, to: &mut LogHistogram) {
        to.record_n(self.value, self.n);
        self.n = 0;
    }
}

/// Times `r`'s newest output token at `tok_t`; the gap since its previous
/// token, if any.
#[inline(always)]
fn stamp_token(r: &mut PodRequest, tok_t: u64) -> Option<u64> {
    let gap = r.times.last_token_ns.map(|p| tok_t.saturating_sub(p));
    r.times.first_token_ns.get_or_insert(tok_t);
    r.times.last_token_ns = Some(tok_t);
    gap
}
