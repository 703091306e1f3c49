//! A pod's own clock: its step ends and the requests dispatched to it, run
//! in event order up to a limit the cluster sets, with everything the rest
//! of the cluster must see (KV events, finished requests, KV pulls) recorded
//! per call for the cluster to take in the one global order.
//!
//! Lanes touch nothing but their pod, so between two router events (when no
//! pod can influence another) they run on separate threads and the result
//! does not depend on how the threads interleave.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::engine::queue::EventClass;
use crate::engine::time::SimTime;
use crate::index::key_ops::{BatchLen, KeyOpQueue};
use crate::pod::engine::Pod;
use crate::pod::request::PodRequest;
use crate::pod::scheduler::{Finished, KvLoad, ReqSlot};

/// Where an event sits in the event order: time, then class (see
/// [`crate::engine::queue`]). Ties between lanes go to the earlier dispatch,
/// then the lower pod index; a router event goes before lane events of the
/// same key.
pub type At = (SimTime, EventClass);

/// Past every event: run a lane to its end.
pub const END: At = (SimTime(u64::MAX), EventClass::Arrival);

/// A request on its way to the pod: reaching it at `at`, `seq`-th of all
/// the router's dispatches.
#[derive(Debug)]
struct Inbound {
    at: SimTime,
    seq: u64,
    req: Box<PodRequest>,
}

impl PartialEq for Inbound {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Inbound {}
impl PartialOrd for Inbound {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Inbound {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// What one call into the pod left for the cluster: counts of the oldest
/// entries in the lane's buffers.
#[derive(Clone, Copy, Debug)]
pub struct CallRecord {
    /// When the call happened.
    pub at: At,
    /// For a dispatch, its place among all the router's dispatches (0 for
    /// other calls): the cluster takes records of one instant and class in
    /// dispatch order, whichever lanes they are on, and others by pod.
    pub dispatch_seq: u64,
    /// KV events the pod published (kept as key runs only if the lane keeps events).
    pub events: BatchLen,
    /// KV pulls to start (P/D decode side).
    pub n_loads: usize,
    /// Requests that finished.
    pub n_finished: usize,
}

/// Pod metrics as the router's last scrape saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Waiting requests.
    pub waiting: u32,
    /// Running requests.
    pub running: u32,
    /// KV cache usage, 0..=1.
    pub kv_usage: f64,
    /// The scrape's time.
    pub at_ns: u64,
}

impl MetricsSnapshot {
    fn of(pod: &Pod, at_ns: u64) -> MetricsSnapshot {
        let s = pod.scheduler();
        MetricsSnapshot {
            waiting: s.n_waiting() as u32,
            running: s.n_running() as u32,
            kv_usage: s.pool().usage(),
            at_ns,
        }
    }
}

/// The router scrapes every pod at `k · interval`, `k = 0, 1, ...`, after
/// the step ends and index updates of that instant and before its
/// dispatches and arrivals ([`EventClass::MetricsScrape`]). A lane keeps what
/// the last scrape before its next call saw.
#[derive(Clone, Copy, Debug)]
struct ScrapeClock {
    interval_ns: u64,
    /// The last scrape instant taken, if any.
    taken: Option<u64>,
    snapshot: MetricsSnapshot,
}

impl ScrapeClock {
    /// The last scrape instant that comes before an event at `at`.
    fn last_before(&self, (t, class): At) -> Option<u64> {
        let t = t.as_ns();
        let bound = if class > EventClass::MetricsScrape {
            t
        } else {
            t.checked_sub(1)?
        };
        Some(bound - bound % self.interval_ns)
    }
}

/// One pod's clock and inbox, and its output buffers.
#[derive(Debug, Default)]
// 128-byte aligned: neighbours in the cluster's vector, run on different
// threads, then share no cache line (nor an adjacent-line prefetch pair).
#[repr(align(128))]
pub struct Lane {
    step_end: Option<SimTime>,
    inbox: BinaryHeap<Reverse<Inbound>>,
    scrape: Option<ScrapeClock>,
    records: VecDeque<CallRecord>,
    /// The pod's KV events as key runs (kept only for a router with an index).
    key_ops: KeyOpQueue,
    keep_events: bool,
    loads: VecDeque<KvLoad>,
    finished: VecDeque<Finished>,
    /// Step ends and dispatches processed.
    pub n_events: u64,
}

impl Lane {
    /// A lane whose pod the router scrapes every `interval_ns` (if at all).
    pub fn new(scrape_interval_ns: Option<u64>) -> Lane {
        Lane {
            scrape: scrape_interval_ns.map(|interval_ns| ScrapeClock {
                interval_ns: interval_ns.max(1),
                taken: None,
                snapshot: MetricsSnapshot::default(),
            }),
            ..Lane::default()
        }
    }

    /// The lane's next event, if any.
    pub fn next_at(&self) -> Option<At> {
        let step = self.step_end.map(|t| (t, EventClass::StepEnd));
        let inbound = self
            .inbox
            .peek()
            .map(|Reverse(i)| (i.at, EventClass::Dispatch));
        match (step, inbound) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Queues `req` to reach the pod at `at`, as the router's `seq`-th
    /// dispatch (seqs increase from call to call; of the same instant, the
    /// lower seq reaches the pod first).
    pub fn dispatch(&mut self, at: SimTime, seq: u64, req: Box<PodRequest>) {
        self.inbox.push(Reverse(Inbound { at, seq, req }));
    }

    /// Runs every lane event before `limit`.
    pub fn run_until(&mut self, pod: &mut Pod, limit: At) {
        while let Some(at) = self.next_at().filter(|&a| a < limit) {
            self.run_next(pod, at);
        }
    }

    /// Runs the lane event at `at` (its next one).
    pub fn run_next(&mut self, pod: &mut Pod, at: At) {
        self.n_events += 1;
        self.take_scrape(pod, at);
        let (now, class) = at;
        let (mut n_finished, mut dispatch_seq) = (0, 0);
        if class == EventClass::StepEnd {
            let out = pod.on_step_end(now);
            self.step_end = out.next_step_end;
            n_finished = out.finished.len();
            if n_finished > 0 {
                self.finished.extend(out.finished);
            }
        } else {
            let Reverse(i) = self.inbox.pop().expect("a dispatch is due");
            dispatch_seq = i.seq;
            if let Some(end) = pod.add_request(*i.req, now) {
                self.step_end = Some(end);
            }
        }
        self.record(pod, at, dispatch_seq, n_finished);
    }

    /// P/D decode side: the pull of `slot` completed.
    pub fn kv_received(&mut self, pod: &mut Pod, slot: ReqSlot, at: At) {
        self.take_scrape(pod, at);
        if let Some(end) = pod.kv_received(slot, at.0) {
            self.step_end = Some(end);
        }
        self.record(pod, at, 0, 0);
    }

    /// P/D prefill side: frees the blocks held for `request_id`; whether any were held.
    pub fn release_held(&mut self, pod: &mut Pod, request_id: u64, at: At) -> bool {
        self.take_scrape(pod, at);
        let (freed, end) = pod.release_held(request_id, at.0);
        if let Some(end) = end {
            self.step_end = Some(end);
            self.record(pod, at, 0, 0);
        }
        freed
    }

    /// What the router's last scrape before `at` saw of `pod`, which must
    /// have run every event before `at`.
    pub fn metrics_before(&mut self, pod: &Pod, at: At) -> MetricsSnapshot {
        self.take_scrape(pod, at);
        self.scrape.map(|s| s.snapshot).unwrap_or_default()
    }

    /// Before a call at `at`: the scrapes since the last call saw the pod
    /// as it is now.
    fn take_scrape(&mut self, pod: &Pod, at: At) {
        let Some(s) = &mut self.scrape else { return };
        // Most calls fall before the next scrape: skip the division.
        if s.taken
            .is_some_and(|t| at.0.as_ns() < t.saturating_add(s.interval_ns))
        {
            return;
        }
        match s.last_before(at) {
            Some(t) if s.taken.is_none_or(|done| t > done) => {
                s.taken = Some(t);
                s.snapshot = MetricsSnapshot::of(pod, t);
            }
            _ => {}
        }
    }

    #[inline(always)]
    fn record(&mut self, pod: &mut Pod, at: At, dispatch_seq: u64, n_finished: usize) {
        // Most steps leave nothing for the cluster: decided inline.
        if n_finished > 0 || pod.has_outputs() {
            self.record_outputs(pod, at, dispatch_seq, n_finished);
        }
    }

    #[inline(never)]
    fn record_outputs(&mut self, pod: &mut Pod, at: At, dispatch_seq: u64, n_finished: usize) {
        let events = if self.keep_events {
            self.key_ops.push_log(pod.published_events())
        } else {
            BatchLen {
                n_events: pod.published_events().n_events(),
                ..BatchLen::default()
            }
        };
        pod.clear_published_events();
        let loads = pod.take_kv_loads();
        let rec = CallRecord {
            at,
            dispatch_seq,
            events,
            n_loads: loads.len(),
            n_finished,
        };
        self.loads.extend(loads);
        if rec.events.n_events + rec.n_loads + rec.n_finished > 0 {
            self.records.push_back(rec);
        }
    }

    /// The call records not taken yet, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &CallRecord> {
        self.records.iter()
    }

    /// Takes the oldest call record; its outputs follow with
    /// [`Lane::key_ops`], [`Lane::take_loads`] and [`Lane::take_finished`].
    pub fn take_record(&mut self) -> Option<CallRecord> {
        self.records.pop_front()
    }

    /// Keeps the pod's KV events for [`Lane::key_ops`] (a router with an
    /// index reads them); otherwise only counted.
    pub fn keep_events(&mut self) {
        self.keep_events = true;
    }

    /// The KV events kept, as key runs, the oldest batch first; a batch
    /// waits here until the router's index takes it.
    pub fn key_ops(&mut self) -> &mut KeyOpQueue {
        &mut self.key_ops
    }

    /// The oldest `n` KV pulls.
    pub fn take_loads(&mut self, n: usize) -> Vec<KvLoad> {
        self.loads.drain(..n).collect()
    }

    /// The oldest `n` finished requests.
    pub fn take_finished(&mut self, n: usize) -> Vec<Finished> {
        self.finished.drain(..n).collect()
    }

    /// Ids of the requests dispatched that have not reached the pod yet.
    pub fn undelivered(&self) -> impl Iterator<Item = u64> + '_ {
        self.inbox.iter().map(|Reverse(i)| i.req.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(interval_ns: u64) -> ScrapeClock {
        ScrapeClock {
            interval_ns,
            taken: None,
            snapshot: MetricsSnapshot::default(),
        }
    }

    #[test]
    fn a_scrape_comes_after_step_ends_and_before_dispatches_of_its_instant() {
        let c = clock(50);
        let at = |t, class| (SimTime(t), class);
        // A step end at a scrape instant is seen by that scrape ...
        assert_eq!(c.last_before(at(100, EventClass::StepEnd)), Some(50));
        // ... a dispatch there is not.
        assert_eq!(c.last_before(at(100, EventClass::Dispatch)), Some(100));
        assert_eq!(c.last_before(at(149, EventClass::Arrival)), Some(100));
        assert_eq!(c.last_before(at(0, EventClass::Dispatch)), Some(0));
        assert_eq!(c.last_before(at(0, EventClass::StepEnd)), None);
    }
}
