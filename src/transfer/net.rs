//! [`TransferNet`]: in-flight KV pulls sharing the cluster's links, advanced in integer ns.
//!
//! A transfer goes through three phases:
//! 1. **queued**: waiting for the (decode, prefill) pair's one-time handshake; the first transfer
//!    of a pair starts it, later ones started before it ends wait for the same end;
//! 2. **fixed**: launch plus descriptor time, occupying no link;
//! 3. **flow**: one sub-flow per rank pairing (`lcm(tp_p, tp_d)` of them, so one per rank for equal
//!    TP) moves its bytes at its max-min fair rate ([`super::fair_share`]). The transfer completes
//!    when its last sub-flow does.
//!
//! Rates are recomputed whenever a sub-flow starts or ends. Each sub-flow keeps its remaining
//! bytes as of its last rate change in `f64`; its completion time is that change's time plus
//! `ceil(remaining / rate)`, rounded up once per rate change and never re-derived while its rate
//! stays bit-identical, so a transfer that nothing disturbs ends exactly at
//! `start + queued + fixed + ceil(bytes / bandwidth)`.

use std::collections::{BTreeMap, BTreeSet};

use smallvec::SmallVec;

use super::cost::{lcm, request_cost, KvShape};
use super::fair_share::max_min_rates;
use super::spec::{TransferConfig, TransferError};
use super::topology::{LinkId, Topology};
use crate::engine::time::{SimDuration, SimTime};

/// A transfer, numbered in start order from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u64);

/// What one transfer moved and where its time went.
/// `done_at = started_at + queued_ns + fixed_ns + flow_ns`.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferStats {
    /// Prefill pod read from.
    pub src_pod: u32,
    /// Decode pod reading.
    pub dst_pod: u32,
    /// Blocks pulled.
    pub n_blocks: u64,
    /// Bytes each decode rank receives.
    pub bytes_per_rank: u64,
    /// Bytes over all decode ranks.
    pub bytes_total: u64,
    /// Descriptors each decode rank issues.
    pub n_desc: u64,
    /// Both pods on one node (NVLink path).
    pub intra_node: bool,
    /// When [`TransferNet::start`] was called.
    pub started_at: SimTime,
    /// Waiting for the pair's handshake.
    pub queued_ns: u64,
    /// Launch plus descriptor time.
    pub fixed_ns: u64,
    /// From the first byte to the last, under link sharing.
    pub flow_ns: u64,
    /// When the last byte arrived.
    pub done_at: SimTime,
    /// Integral of the sub-flows' rates: `bytes_total` up to float rounding and the final
    /// ns round-up (a conservation check, not a model output).
    pub delivered_bytes: f64,
}

/// A completed transfer.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferDone {
    /// Which.
    pub id: TransferId,
    /// Its accounting.
    pub stats: TransferStats,
}

/// All KV transfers in the cluster and the links they share.
#[derive(Debug)]
pub struct TransferNet {
    cfg: TransferConfig,
    topo: Topology,
    now: SimTime,
    next_id: u64,
    generation: u64,
    /// `(dst_pod, src_pod)` → when its handshake is (or was) done.
    handshakes: BTreeMap<(u32, u32), SimTime>,
    in_flight: BTreeMap<TransferId, InFlight>,
    /// Transfers in the queued or fixed phase, by the time their bytes start.
    waiting: BTreeSet<(SimTime, TransferId)>,
    flows: Vec<Flow>,
    /// Done, not yet popped; in `(done_at, id)` order.
    completed: Vec<TransferDone>,
}

#[derive(Debug)]
struct InFlight {
    stats: TransferStats,
    flow_start: SimTime,
    paths: SmallVec<[[LinkId; 2]; 2]>,
    sub_bytes: f64,
    flows_left: usize,
}

#[derive(Debug)]
struct Flow {
    transfer: TransferId,
    path: [LinkId; 2],
    /// Bytes left as of `since`.
    remaining: f64,
    /// Bytes/ns since `since`.
    rate: f64,
    since: SimTime,
    done_at: SimTime,
    delivered: f64,
}

impl TransferNet {
    /// A network over pods with tensor-parallel sizes `pod_tps` (index = pod id), placed as
    /// `cfg` says.
    pub fn new(cfg: TransferConfig, pod_tps: &[u32]) -> Result<TransferNet, TransferError> {
        let topo = Topology::new(&cfg, pod_tps)?;
        Ok(TransferNet {
            cfg,
            topo,
            now: SimTime::ZERO,
            next_id: 0,
            generation: 0,
            handshakes: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            waiting: BTreeSet::new(),
            flows: Vec::new(),
            completed: Vec::new(),
        })
    }

    /// Where the pods are.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Time up to which the network has been advanced.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Changes whenever the network's future may have changed (a start, a sub-flow starting or
    /// ending). A wake-up scheduled under an older generation is stale.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Transfers started and not yet completed.
    pub fn n_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Decode pod `dst_pod` starts pulling `n_blocks` blocks from prefill pod `src_pod` at `now`.
    /// `kv` is the decode pod's shape ([`KvShape::for_pod`]).
    ///
    /// # Panics
    /// If a pod id is out of range or `now` precedes an earlier call's time (simulator bugs).
    pub fn start(
        &mut self,
        now: SimTime,
        src_pod: u32,
        dst_pod: u32,
        n_blocks: u64,
        kv: &KvShape,
    ) -> TransferId {
        let n_pods = self.topo.n_pods();
        assert!(
            (src_pod as usize) < n_pods && (dst_pod as usize) < n_pods,
            "transfer {src_pod} → {dst_pod} outside {n_pods} pods"
        );
        self.advance_to(now);
        let id = TransferId(self.next_id);
        self.next_id += 1;
        let handshake_end = *self
            .handshakes
            .entry((dst_pod, src_pod))
            .or_insert_with(|| now.add(self.cfg.t_handshake));
        let ready = handshake_end.max(now);
        let (src_tp, dst_tp) = (self.topo.pod_tp(src_pod), self.topo.pod_tp(dst_pod));
        let cost = request_cost(&self.cfg, kv, n_blocks, src_tp, dst_tp);
        let n_sub = lcm(src_tp, dst_tp);
        let paths = (0..n_sub)
            .map(|i| {
                let src_rank = (i * u64::from(src_tp) / n_sub) as u32;
                let dst_rank = (i * u64::from(dst_tp) / n_sub) as u32;
                self.topo.path(
                    self.topo.gpu(src_pod, src_rank),
                    self.topo.gpu(dst_pod, dst_rank),
                )
            })
            .collect();
        let bytes_total = cost.bytes_per_rank * u64::from(dst_tp);
        let flow_start = ready.add(cost.fixed);
        self.in_flight.insert(
            id,
            InFlight {
                stats: TransferStats {
                    src_pod,
                    dst_pod,
                    n_blocks,
                    bytes_per_rank: cost.bytes_per_rank,
                    bytes_total,
                    n_desc: cost.n_desc,
                    intra_node: self.topo.pod_node(src_pod) == self.topo.pod_node(dst_pod),
                    started_at: now,
                    queued_ns: ready.since(now).as_ns(),
                    fixed_ns: cost.fixed.as_ns(),
                    flow_ns: 0,
                    done_at: SimTime::ZERO,
                    delivered_bytes: 0.0,
                },
                flow_start,
                paths,
                sub_bytes: bytes_total as f64 / n_sub as f64,
                flows_left: n_sub as usize,
            },
        );
        self.waiting.insert((flow_start, id));
        self.generation += 1;
        // A transfer with no handshake and no fixed cost starts flowing now.
        self.advance_to(now);
        id
    }

    /// The earliest time at which a sub-flow starts or ends: the simulator must call
    /// [`Self::advance_to`] or [`Self::pop_completed`] then (rates change even when no transfer
    /// completes). Valid until [`Self::generation`] changes.
    pub fn next_wakeup(&self) -> Option<SimTime> {
        let t_wait = self.waiting.first().map(|&(t, _)| t);
        let t_flow = self.flows.iter().map(|f| f.done_at).min();
        match (t_wait, t_flow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next transfer to complete under current rates (an unpopped completed one first),
    /// ties by id. A projection: transfers that start flowing later can delay it, and those
    /// that end can bring it forward; valid until [`Self::generation`] changes.
    pub fn next_completion(&self) -> Option<(SimTime, TransferId)> {
        if let Some(d) = self.completed.first() {
            return Some((d.stats.done_at, d.id));
        }
        let mut ends: BTreeMap<TransferId, SimTime> = BTreeMap::new();
        for f in &self.flows {
            let e = ends.entry(f.transfer).or_insert(f.done_at);
            *e = (*e).max(f.done_at);
        }
        // All sub-flows of a transfer start together, so a flowing transfer's end is known.
        ends.into_iter().map(|(id, t)| (t, id)).min()
    }

    /// Processes every sub-flow start and end up to and including `now`, in time order.
    ///
    /// # Panics
    /// If `now` precedes the time of an earlier call (a simulator bug).
    pub fn advance_to(&mut self, now: SimTime) {
        assert!(
            now >= self.now,
            "transfer network advanced to {now}, before {}",
            self.now
        );
        while let Some(t) = self.next_wakeup().filter(|&t| t <= now) {
            self.now = t;
            self.step_at(t);
        }
        self.now = now;
    }

    /// Advances to `now` and returns the transfers completed by then, in `(done_at, id)` order.
    pub fn pop_completed(&mut self, now: SimTime) -> Vec<TransferDone> {
        self.advance_to(now);
        std::mem::take(&mut self.completed)
    }

    /// Per active link: (link, Σ rates, capacity), bytes/ns; for capacity checks in tests.
    #[cfg(test)]
    pub(crate) fn link_loads(&self) -> Vec<(LinkId, f64, f64)> {
        let mut loads: BTreeMap<LinkId, f64> = BTreeMap::new();
        for f in &self.flows {
            for l in f.path {
                *loads.entry(l).or_default() += f.rate;
            }
        }
        loads
            .into_iter()
            .map(|(l, r)| (l, r, self.topo.capacity_bytes_per_ns(l)))
            .collect()
    }

    /// Ends sub-flows due at `t`, starts those whose bytes begin at `t`, recomputes rates.
    fn step_at(&mut self, t: SimTime) {
        let mut finished: SmallVec<[TransferId; 4]> = SmallVec::new();
        let in_flight = &mut self.in_flight;
        self.flows.retain(|f| {
            if f.done_at > t {
                return true;
            }
            let tr = in_flight
                .get_mut(&f.transfer)
                .expect("flow of a live transfer");
            tr.stats.delivered_bytes += f.delivered + f.rate * t.since(f.since).as_ns() as f64;
            tr.flows_left -= 1;
            if tr.flows_left == 0 {
                finished.push(f.transfer);
            }
            false
        });
        while let Some(&(start, id)) = self.waiting.first() {
            if start > t {
                break;
            }
            self.waiting.pop_first();
            let tr = &self.in_flight[&id];
            // Zero-byte sub-flows get a rate below and end at `t`, in the next step.
            self.flows.extend(tr.paths.iter().map(|&path| Flow {
                transfer: id,
                path,
                remaining: tr.sub_bytes,
                rate: 0.0,
                since: t,
                done_at: SimTime(u64::MAX),
                delivered: 0.0,
            }));
        }
        finished.sort_unstable();
        for id in finished {
            let mut tr = self
                .in_flight
                .remove(&id)
                .expect("finished transfer in flight");
            tr.stats.done_at = t;
            tr.stats.flow_ns = t.since(tr.flow_start).as_ns();
            self.completed.push(TransferDone {
                id,
                stats: tr.stats,
            });
        }
        self.recompute_rates(t);
        self.generation += 1;
    }

    /// Max-min fair rates for the active sub-flows; a sub-flow whose rate changes is brought
    /// up to `t` and gets a new completion time.
    fn recompute_rates(&mut self, t: SimTime) {
        let mut links: Vec<LinkId> = self.flows.iter().flat_map(|f| f.path).collect();
        links.sort_unstable();
        links.dedup();
        let caps: Vec<f64> = links
            .iter()
            .map(|&l| self.topo.capacity_bytes_per_ns(l))
            .collect();
        let idx = |l: LinkId| links.binary_search(&l).expect("link of an active flow");
        let paths: Vec<[usize; 2]> = self
            .flows
            .iter()
            .map(|f| [idx(f.path[0]), idx(f.path[1])])
            .collect();
        let rates = max_min_rates(&caps, &paths);
        for (f, rate) in self.flows.iter_mut().zip(rates) {
            if rate == f.rate {
                continue;
            }
            debug_assert!(rate > 0.0, "a sub-flow got no bandwidth");
            let moved = f.rate * t.since(f.since).as_ns() as f64;
            f.delivered += moved;
            f.remaining = (f.remaining - moved).max(0.0);
            f.since = t;
            f.rate = rate;
            f.done_at = t.add(SimDuration::from_ns_f64_ceil(f.remaining / rate));
        }
    }
}
