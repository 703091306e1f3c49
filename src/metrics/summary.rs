//! Aggregates of a run. Every number here is defined in `docs/metrics.md`;
//! keep the two in step.

use serde::{Deserialize, Serialize};

use super::histogram::LogHistogram;
use super::percentile::Dist;
use crate::cluster::{CompletedRequest, IncompleteRequest, RunOutput};

/// Version of the `summary.json` schema.
pub const SUMMARY_SCHEMA_VERSION: u32 = 2;

/// One request's record, as written to `requests.csv`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RequestRecord {
    /// Workload id.
    pub id: u64,
    /// Pod name.
    pub pod: String,
    /// Arrival at the router, ms.
    pub arrival_ms: f64,
    /// Arrival at the pod, ms.
    pub dispatch_ms: f64,
    /// First scheduled, ms.
    pub first_scheduled_ms: f64,
    /// First token, ms.
    pub first_token_ms: f64,
    /// Last token, ms.
    pub finish_ms: f64,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Prefix-cache hit tokens at first admission.
    pub cached_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Times preempted.
    pub preemptions: u32,
    /// first_token − arrival, ms.
    pub ttft_ms: f64,
    /// (finish − first_token)/(output_tokens − 1), ms; empty for one-token outputs.
    pub tpot_ms: Option<f64>,
    /// finish − arrival, ms.
    pub e2e_ms: f64,
    /// first_scheduled − dispatch, ms.
    pub queue_wait_ms: f64,
}

fn ms(ns: u64) -> f64 {
    ns as f64 * 1e-6
}

impl RequestRecord {
    /// The record of a completed request.
    pub fn of(c: &CompletedRequest, pod_name: &str) -> RequestRecord {
        let t = &c.req.times;
        let first_tok = t.first_token_ns.unwrap_or(t.arrival_ns);
        let last_tok = t.last_token_ns.unwrap_or(first_tok);
        let first_sched = t.first_scheduled_ns.unwrap_or(t.dispatch_ns);
        let n_out = c.req.num_output_tokens;
        RequestRecord {
            id: c.req.id,
            pod: pod_name.to_string(),
            arrival_ms: ms(t.arrival_ns),
            dispatch_ms: ms(t.dispatch_ns),
            first_scheduled_ms: ms(first_sched),
            first_token_ms: ms(first_tok),
            finish_ms: ms(last_tok),
            prompt_tokens: c.req.prompt_len,
            cached_tokens: c.req.num_cached_tokens.unwrap_or(0),
            output_tokens: n_out,
            preemptions: c.req.num_preemptions,
            ttft_ms: ms(first_tok - t.arrival_ns),
            tpot_ms: (n_out > 1).then(|| ms(last_tok - first_tok) / (n_out - 1) as f64),
            e2e_ms: ms(last_tok - t.arrival_ns),
            queue_wait_ms: ms(first_sched.saturating_sub(t.dispatch_ns)),
        }
    }
}

/// Per-pod (or per-pool) aggregates.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PodSummary {
    /// Pod name (or pool role).
    pub name: String,
    /// Role label.
    pub role: String,
    /// Requests routed here.
    pub requests: u64,
    /// Requests completed here.
    pub completed: u64,
    /// vLLM `prefix_cache_queries` (tokens).
    pub prefix_cache_queries: u64,
    /// vLLM `prefix_cache_hits` (tokens).
    pub prefix_cache_hits: u64,
    /// hits / queries.
    pub hit_rate: f64,
    /// Preemptions.
    pub preemptions: u64,
    /// Engine steps that ended by the run end.
    pub steps: u64,
    /// Time executing steps within the run / the run end.
    pub busy_fraction: f64,
    /// Mean KV usage over the time-series grid (a time average).
    pub kv_usage_mean: f64,
    /// Largest waiting queue at a time-series grid instant.
    pub max_waiting: u32,
}

/// Latency distributions in ms.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Latencies {
    /// Time to first token.
    pub ttft_ms: Dist,
    /// Time per output token after the first.
    pub tpot_ms: Dist,
    /// Gap between consecutive tokens of a request, over every generated
    /// token, of completed requests or not (log histogram: percentiles < 1% high).
    pub itl_ms: Dist,
    /// End to end.
    pub e2e_ms: Dist,
    /// Queueing at the pod before first scheduling.
    pub queue_wait_ms: Dist,
}

/// Throughput over the run's active span (`Deserialize` for `kvsim report`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    /// Completed requests / span.
    pub requests_per_s: f64,
    /// Output tokens / span.
    pub output_tokens_per_s: f64,
    /// (Prompt + output tokens) / span.
    pub total_tokens_per_s: f64,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// Schema version.
    pub schema_version: u32,
    /// Workload requests that arrived by the end (all without a horizon).
    pub requests_total: u64,
    /// Completed.
    pub requests_completed: u64,
    /// Rejected (longer than max_model_len, empty, no endpoint).
    pub requests_rejected: u64,
    /// Arrived, but neither completed nor rejected by the end.
    pub requests_unfinished: u64,
    /// Workload requests arriving after the horizon (not in the counts above).
    pub requests_after_horizon: u64,
    /// First arrival to last completion, s.
    pub duration_s: f64,
    /// Σ hits / Σ queries over all pods (vLLM definition, tokens).
    pub hit_rate: f64,
    /// Σ prefix_cache_queries.
    pub prefix_cache_queries: u64,
    /// Σ prefix_cache_hits.
    pub prefix_cache_hits: u64,
    /// Σ preemptions.
    pub preemptions: u64,
    /// Latencies.
    pub latency: Latencies,
    /// Throughput.
    pub throughput: Throughput,
    /// Worst pool's max / mean requests per pod (per pool, so P/D prefill
    /// and decode counts are not mixed).
    pub imbalance: f64,
    /// Pods that received no request, in pod order: a starved pod that
    /// `imbalance` (a max over mean) hides.
    pub idle_pods: Vec<String>,
    /// EPP decisions; `stale_decisions` counts those where the index's view of
    /// some candidate's cached prefix differed from the pod's cache (needs `decision_log`).
    pub routing_decisions: u64,
    /// See `routing_decisions`.
    pub stale_decisions: u64,
    /// Mean over routed requests of the approximate prefix index's matched /
    /// total blocks for the pick (llm-d's metric, block-based, router-side);
    /// null without an approximate prefix scorer.
    pub prefix_indexer_hit_ratio: Option<f64>,
    /// P/D: KV pulls from prefill to decode pods.
    pub kv_transfers: u64,
    /// P/D: prefill holds released by the timeout before the decode pod pulled.
    pub prefill_hold_timeouts: u64,
    /// Per pool (role).
    pub pools: Vec<PodSummary>,
    /// Per pod.
    pub pods: Vec<PodSummary>,
}

/// Computes the summary and the per-request records of a run.
pub fn summarize(run: &RunOutput) -> (Summary, Vec<RequestRecord>) {
    let names: Vec<&str> = run.pods.iter().map(|p| p.name.as_str()).collect();
    let mut records: Vec<RequestRecord> = run
        .finished
        .iter()
        .map(|c| RequestRecord::of(c, names[c.pod as usize]))
        .collect();
    records.sort_by_key(|r| r.id);
    let first_arrival = records
        .iter()
        .map(|r| r.arrival_ms)
        .fold(f64::INFINITY, f64::min);
    let last_finish = records.iter().map(|r| r.finish_ms).fold(0.0, f64::max);
    let span_s = if records.is_empty() {
        0.0
    } else {
        (last_finish - first_arrival) / 1e3
    };
    let per_s = |x: f64| if span_s > 0.0 { x / span_s } else { 0.0 };
    let n_out: u64 = records.iter().map(|r| r.output_tokens as u64).sum();
    let n_in: u64 = records.iter().map(|r| r.prompt_tokens as u64).sum();
    let mut itl = LogHistogram::default();
    for p in &run.pods {
        itl.merge(&p.counters().itl);
    }
    let itl_ms = match itl.count() {
        0 => Dist::default(),
        n => Dist {
            count: n,
            mean: itl.mean_ns().expect("non-empty") * 1e-6,
            p50: itl.percentile_ns(50.0).expect("non-empty") * 1e-6,
            p90: itl.percentile_ns(90.0).expect("non-empty") * 1e-6,
            p99: itl.percentile_ns(99.0).expect("non-empty") * 1e-6,
            max: itl.percentile_ns(100.0).expect("non-empty") * 1e-6,
        },
    };
    let latency = Latencies {
        ttft_ms: Dist::of(records.iter().map(|r| r.ttft_ms).collect()),
        tpot_ms: Dist::of(records.iter().filter_map(|r| r.tpot_ms).collect()),
        itl_ms,
        e2e_ms: Dist::of(records.iter().map(|r| r.e2e_ms).collect()),
        queue_wait_ms: Dist::of(records.iter().map(|r| r.queue_wait_ms).collect()),
    };
    let run_ns = run.end_time.as_ns().max(1) as f64;
    let mut completed_per_pod = vec![0u64; run.pods.len()];
    for c in &run.finished {
        completed_per_pod[c.pod as usize] += 1;
    }
    let pods: Vec<PodSummary> = run
        .pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let st = p.scheduler().prefix_cache_stats();
            let c = p.counters();
            let kv: Vec<f64> = c.samples.iter().map(|s| s.kv_usage).collect();
            PodSummary {
                name: p.name.clone(),
                role: p.role.as_str().to_string(),
                requests: c.n_requests,
                completed: completed_per_pod[i],
                prefix_cache_queries: st.queries,
                prefix_cache_hits: st.hits,
                hit_rate: ratio(st.hits, st.queries),
                preemptions: p.scheduler().n_preemptions(),
                steps: c.n_steps,
                busy_fraction: c.busy_ns as f64 / run_ns,
                kv_usage_mean: if kv.is_empty() {
                    0.0
                } else {
                    kv.iter().sum::<f64>() / kv.len() as f64
                },
                max_waiting: c.samples.iter().map(|s| s.n_waiting).max().unwrap_or(0),
            }
        })
        .collect();
    let mut pools: Vec<PodSummary> = Vec::new();
    for role in ["both", "prefill", "decode"] {
        let members: Vec<&PodSummary> = pods.iter().filter(|p| p.role == role).collect();
        if members.is_empty() {
            continue;
        }
        let sum = |f: fn(&PodSummary) -> u64| members.iter().map(|p| f(p)).sum::<u64>();
        let q = sum(|p| p.prefix_cache_queries);
        let h = sum(|p| p.prefix_cache_hits);
        let n = members.len() as f64;
        pools.push(PodSummary {
            name: format!("pool:{role}"),
            role: role.to_string(),
            requests: sum(|p| p.requests),
            completed: sum(|p| p.completed),
            prefix_cache_queries: q,
            prefix_cache_hits: h,
            hit_rate: ratio(h, q),
            preemptions: sum(|p| p.preemptions),
            steps: sum(|p| p.steps),
            busy_fraction: members.iter().map(|p| p.busy_fraction).sum::<f64>() / n,
            kv_usage_mean: members.iter().map(|p| p.kv_usage_mean).sum::<f64>() / n,
            max_waiting: members.iter().map(|p| p.max_waiting).max().unwrap_or(0),
        });
    }
    let q: u64 = pods.iter().map(|p| p.prefix_cache_queries).sum();
    let h: u64 = pods.iter().map(|p| p.prefix_cache_hits).sum();
    let imbalance = imbalance(&pods, &pools);
    let idle_pods = pods
        .iter()
        .filter(|p| p.requests == 0)
        .map(|p| p.name.clone())
        .collect();
    let count =
        |f: fn(&IncompleteRequest) -> bool| run.not_finished.iter().filter(|r| f(r)).count() as u64;
    let n_rejected = count(|r| r.rejection.is_some());
    let n_after_horizon = count(|r| r.after_horizon);
    let summary = Summary {
        schema_version: SUMMARY_SCHEMA_VERSION,
        requests_total: (run.finished.len() + run.not_finished.len()) as u64 - n_after_horizon,
        requests_completed: run.finished.len() as u64,
        requests_rejected: n_rejected,
        requests_unfinished: run.not_finished.len() as u64 - n_rejected - n_after_horizon,
        requests_after_horizon: n_after_horizon,
        duration_s: span_s,
        hit_rate: ratio(h, q),
        prefix_cache_queries: q,
        prefix_cache_hits: h,
        preemptions: pods.iter().map(|p| p.preemptions).sum(),
        latency,
        throughput: Throughput {
            requests_per_s: per_s(records.len() as f64),
            output_tokens_per_s: per_s(n_out as f64),
            total_tokens_per_s: per_s((n_in + n_out) as f64),
        },
        imbalance,
        idle_pods,
        routing_decisions: run.routing_decisions.0,
        stale_decisions: run.routing_decisions.1,
        prefix_indexer_hit_ratio: run.prefix_indexer_hit_ratio,
        kv_transfers: run.n_transfers,
        prefill_hold_timeouts: run.n_hold_timeouts,
        pools,
        pods,
    };
    (summary, records)
}

/// Over pools, the largest max / mean requests per member pod; a pool that
/// got no request counts 0.
fn imbalance(pods: &[PodSummary], pools: &[PodSummary]) -> f64 {
    let of_pool = |pool: &PodSummary| {
        let members = pods.iter().filter(|p| p.role == pool.role);
        let (n, max) = members.fold((0u64, 0u64), |(n, m), p| (n + 1, m.max(p.requests)));
        ratio(max * n, pool.requests)
    };
    pools.iter().map(of_pool).fold(0.0, f64::max)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, role: &str, requests: u64) -> PodSummary {
        PodSummary {
            name: name.into(),
            role: role.into(),
            requests,
            completed: 0,
            prefix_cache_queries: 0,
            prefix_cache_hits: 0,
            hit_rate: 0.0,
            preemptions: 0,
            steps: 0,
            busy_fraction: 0.0,
            kv_usage_mean: 0.0,
            max_waiting: 0,
        }
    }

    fn pool(role: &str, requests: u64) -> PodSummary {
        pod(&format!("pool:{role}"), role, requests)
    }

    /// The seed's P/D shape: 3 decode pods share 1000 requests, 2 prefill pods
    /// 1000 prefills. Over all five pods max/mean would be 591 / 400 = 1.48,
    /// a mix of two pools; per pool it is 393/333.3 = 1.179 and 591/500 = 1.182.
    #[test]
    fn imbalance_is_the_worst_pool_not_a_mix_of_pools() {
        let pods = [
            pod("decode-0", "decode", 302),
            pod("decode-1", "decode", 393),
            pod("decode-2", "decode", 305),
            pod("prefill-0", "prefill", 591),
            pod("prefill-1", "prefill", 409),
        ];
        let pools = [pool("prefill", 1000), pool("decode", 1000)];
        assert!((imbalance(&pods, &pools) - 1.182).abs() < 1e-12);
        // One pod takes everything: max / mean = n.
        let pods = [
            pod("a", "both", 0),
            pod("b", "both", 7),
            pod("c", "both", 0),
        ];
        assert_eq!(imbalance(&pods, &[pool("both", 7)]), 3.0);
        assert_eq!(imbalance(&pods[..1], &[pool("both", 0)]), 0.0);
    }
}
