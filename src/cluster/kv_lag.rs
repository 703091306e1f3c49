//! How late the router's KV-block index learns about the pods' caches.
//!
//! A pod publishes its KV events once per engine step (vLLM 0.33: after the
//! step's output is processed; 0.11: at the end of `schedule()`), as one ZMQ
//! message. The message crosses the network (`transport_us`), then waits for
//! its worker: the kv-cache manager shards pods over `n_workers` workers by
//! FNV-1a of the pod id, and each worker applies batches in arrival order,
//! taking `per_event_us` per event plus one pipelined Redis round trip per
//! batch (`redis_write_rtt_us`, 0 for the in-memory backend). A batch is
//! visible to lookups when its worker finishes it. Per pod, batches are
//! therefore applied in publish order.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::lane::At;
use crate::engine::queue::EventClass;
use crate::engine::time::{SimDuration, SimTime};
use crate::index::key_ops::BatchLen;

/// When a pod's events leave the pod.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishPoint {
    /// As vLLM does: one batch per engine step (see the module doc).
    #[default]
    Step,
    /// The moment the block pool changes (an idealised zero-lag index).
    Immediate,
}

/// The lag model's parameters (scenario `router.kv_events`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvEventLag {
    /// When events leave the pod (`step`).
    pub publish: PublishPoint,
    /// ZMQ PUB→SUB network and decode time, µs (500; an estimate for one
    /// in-cluster hop with msgpack decoding).
    pub transport_us: f64,
    /// Event-processing workers (4, llm-d-kv-cache's default pool size).
    pub n_workers: u32,
    /// Worker time per event, µs (2; an estimate for an in-memory index update).
    pub per_event_us: f64,
    /// One pipelined Redis write per batch, µs (0 = in-memory backend; ~250 for Redis in-cluster).
    pub redis_write_rtt_us: f64,
    /// One pipelined Redis lookup per routing decision, µs (0 = in-memory; ~250 for Redis).
    pub redis_lookup_rtt_us: f64,
}

impl Default for KvEventLag {
    fn default() -> Self {
        KvEventLag {
            publish: PublishPoint::Step,
            transport_us: 500.0,
            n_workers: 4,
            per_event_us: 2.0,
            redis_write_rtt_us: 0.0,
            redis_lookup_rtt_us: 0.0,
        }
    }
}

impl KvEventLag {
    /// The defaults, with a Redis round trip of 250 µs [est: one in-cluster
    /// hop] per batch write and per lookup when the index lives in Redis
    /// (the config names a Redis address).
    pub fn defaults_for(redis: bool) -> KvEventLag {
        let rtt = if redis { 250.0 } else { 0.0 };
        KvEventLag {
            redis_write_rtt_us: rtt,
            redis_lookup_rtt_us: rtt,
            ..KvEventLag::default()
        }
    }

    /// The first parameter that is not a finite, non-negative number of µs,
    /// as (field, message).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, us) in [
            ("transport_us", self.transport_us),
            ("per_event_us", self.per_event_us),
            ("redis_write_rtt_us", self.redis_write_rtt_us),
            ("redis_lookup_rtt_us", self.redis_lookup_rtt_us),
        ] {
            if !(us.is_finite() && us >= 0.0) {
                return Err((
                    field,
                    format!("must be a finite number of µs ≥ 0, got {us}"),
                ));
            }
        }
        Ok(())
    }

    /// No delay anywhere: the index equals the pods' event streams instantly.
    pub fn zero() -> KvEventLag {
        KvEventLag {
            publish: PublishPoint::Immediate,
            transport_us: 0.0,
            n_workers: 1,
            per_event_us: 0.0,
            redis_write_rtt_us: 0.0,
            redis_lookup_rtt_us: 0.0,
        }
    }
}

/// The workers' queues: when each published batch becomes visible, and the
/// batches (pod and size) in the order they do. The batches' events wait in
/// their lane ([`super::lane::Lane::key_ops`]): a pod's batches are applied
/// in publish order.
#[derive(Clone, Debug)]
pub struct EventPipeline {
    lag: KvEventLag,
    /// `transport_us` in whole ns (rounded up), once.
    transport_ns: u64,
    worker_free_ns: Vec<u64>,
    worker_of_pod: Vec<usize>,
    /// Per worker, its batches not applied yet. A worker finishes batches in
    /// the order it takes them, so each queue is in delivery order and the
    /// next batch applied is the earliest of the queues' heads.
    queued: Vec<VecDeque<Queued>>,
    /// Batches published so far: same-instant deliveries go in this order.
    n_published: u64,
}

/// A batch in its worker's queue.
#[derive(Clone, Copy, Debug)]
struct Queued {
    done_ns: u64,
    seq: u64,
    pod: u32,
    batch: BatchLen,
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl EventPipeline {
    /// A pipeline for pods named `pod_names` (sharded by FNV-1a of the name).
    pub fn new(lag: KvEventLag, pod_names: &[String]) -> EventPipeline {
        let n = lag.n_workers.max(1) as usize;
        EventPipeline {
            transport_ns: SimDuration::from_us_f64_ceil(lag.transport_us).as_ns(),
            worker_free_ns: vec![0; n],
            queued: vec![VecDeque::new(); n],
            n_published: 0,
            worker_of_pod: pod_names
                .iter()
                .map(|p| (fnv1a(p) % n as u64) as usize)
                .collect(),
            lag,
        }
    }

    /// The parameters.
    pub fn lag(&self) -> &KvEventLag {
        &self.lag
    }

    /// The least time from a batch's publication to its application.
    pub fn min_delay_ns(&self) -> u64 {
        let work = self.lag.per_event_us + self.lag.redis_write_rtt_us;
        self.transport_ns
            .saturating_add(SimDuration::from_us_f64_ceil(work).as_ns())
    }

    /// Queues `batch`, which `pod` published at `t_ns`; returns when it is
    /// applied.
    pub fn publish(&mut self, pod: u32, t_ns: u64, batch: BatchLen) -> u64 {
        let done_ns = self.delivery_ns(pod as usize, t_ns, batch.n_events);
        let w = self.worker_of_pod[pod as usize];
        self.queued[w].push_back(Queued {
            done_ns,
            seq: self.n_published,
            pod,
            batch,
        });
        self.n_published += 1;
        done_ns
    }

    /// Takes the next batch applied before `limit` (an index update at
    /// time `t` comes at `(t, IndexUpdate)`; ties in publish order): when
    /// it is applied, its pod and size.
    pub fn pop_applied_before(&mut self, limit: At) -> Option<(SimTime, u32, BatchLen)> {
        let (w, head) = self
            .queued
            .iter()
            .enumerate()
            .filter_map(|(w, q)| q.front().map(|h| (w, h)))
            .min_by_key(|(_, h)| (h.done_ns, h.seq))?;
        if (SimTime(head.done_ns), EventClass::IndexUpdate) >= limit {
            return None;
        }
        let Queued {
            done_ns,
            pod,
            batch,
            ..
        } = self.queued[w].pop_front().expect("a head");
        Some((SimTime(done_ns), pod, batch))
    }

    /// When a batch of `n_events` that `pod` published at `t_ns` is applied.
    fn delivery_ns(&mut self, pod: usize, t_ns: u64, n_events: usize) -> u64 {
        let us = |x: f64| SimDuration::from_us_f64_ceil(x).as_ns();
        // Saturating, like `SimTime::add`: a huge lag means "never", not a wrap.
        let arrive = t_ns.saturating_add(self.transport_ns);
        let w = self.worker_of_pod[pod];
        let start = arrive.max(self.worker_free_ns[w]);
        let work = self.lag.per_event_us * n_events as f64 + self.lag.redis_write_rtt_us;
        let done = start.saturating_add(us(work));
        self.worker_free_ns[w] = done;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_parameters_must_be_finite_and_non_negative_and_huge_ones_saturate() {
        assert_eq!(KvEventLag::default().check(), Ok(()));
        for (bad, field) in [
            (
                KvEventLag {
                    transport_us: -1.0,
                    ..KvEventLag::default()
                },
                "transport_us",
            ),
            (
                KvEventLag {
                    per_event_us: f64::NAN,
                    ..KvEventLag::default()
                },
                "per_event_us",
            ),
            (
                KvEventLag {
                    redis_lookup_rtt_us: f64::INFINITY,
                    ..KvEventLag::default()
                },
                "redis_lookup_rtt_us",
            ),
        ] {
            assert_eq!(bad.check().unwrap_err().0, field);
        }
        // Finite but beyond representable time: delivered "never", no overflow.
        let huge = KvEventLag {
            transport_us: 1e30,
            redis_write_rtt_us: 1e30,
            ..KvEventLag::default()
        };
        let mut pipe = EventPipeline::new(huge, &["p".to_string()]);
        assert_eq!(pipe.delivery_ns(0, 5, 0), u64::MAX);
        assert_eq!(pipe.delivery_ns(0, u64::MAX - 1, 0), u64::MAX);
    }

    #[test]
    fn batches_queue_per_worker_and_keep_pod_order() {
        let lag = KvEventLag {
            transport_us: 100.0,
            n_workers: 1,
            per_event_us: 10.0,
            ..KvEventLag::default()
        };
        let mut p = EventPipeline::new(lag, &["a".into(), "b".into()]);
        // 100 µs transport, then 3 × 10 µs.
        assert_eq!(p.delivery_ns(0, 0, 3), 130_000);
        // Arrives at 110 µs but the worker is busy until 130 µs.
        assert_eq!(p.delivery_ns(1, 10_000, 1), 140_000);
        let mut z = EventPipeline::new(KvEventLag::zero(), &["a".into()]);
        assert_eq!(z.delivery_ns(0, 5, 100), 5);
    }

    #[test]
    fn batches_come_out_in_delivery_order_across_workers_ties_in_publish_order() {
        let lag = KvEventLag {
            transport_us: 0.0,
            n_workers: 2,
            per_event_us: 10.0,
            ..KvEventLag::default()
        };
        // Two pods on different workers.
        let names: Vec<String> = (0..8).map(|i| format!("pod-{i}")).collect();
        let probe = EventPipeline::new(lag.clone(), &names);
        let b = (1..names.len())
            .find(|&i| probe.worker_of_pod[i] != probe.worker_of_pod[0])
            .expect("some pod on the other worker");
        let pods = [names[0].clone(), names[b].clone()];
        let mut p = EventPipeline::new(lag, &pods);
        let len = |n_events| BatchLen {
            n_events,
            n_runs: 1,
        };
        let us = |t: u64| t * 1_000;
        assert_eq!(p.publish(0, 0, len(3)), us(30));
        assert_eq!(p.publish(1, 0, len(1)), us(10));
        // Behind pod 0's first batch on its worker.
        assert_eq!(p.publish(0, 0, len(1)), us(40));
        // Ties with pod 0's first batch, published before it.
        assert_eq!(p.publish(1, us(20), len(1)), us(30));
        let until = |t| (SimTime(t), EventClass::IndexUpdate);
        let pop = |p: &mut EventPipeline, limit| {
            p.pop_applied_before(limit)
                .map(|(t, pod, _)| (t.as_ns(), pod))
        };
        assert_eq!(pop(&mut p, until(us(30))), Some((us(10), 1)));
        // A limit at an update's own place excludes it; the instant's
        // metrics scrape comes after it.
        assert_eq!(pop(&mut p, until(us(30))), None);
        assert_eq!(
            pop(&mut p, (SimTime(us(30)), EventClass::MetricsScrape)),
            Some((us(30), 0))
        );
        let rest: Vec<_> = std::iter::from_fn(|| pop(&mut p, crate::cluster::lane::END)).collect();
        assert_eq!(rest, [(us(30), 1), (us(40), 0)]);
    }
}
