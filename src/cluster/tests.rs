//! Properties of whole simulations over random small workloads and seeds.

use proptest::prelude::*;

use super::kv_lag::{EventPipeline, KvEventLag};
use super::router::Router;
use super::{Progress, Routing, RunOutput, Simulation};
use crate::engine::rng::RngStreams;
use crate::engine::time::{SimDuration, SimTime};
use crate::pod::engine::Pod;
use crate::scenario::resolve::{resolve_text, Overrides};
use crate::trace::request::{Prompt, TraceRequest};

/// Records progress calls to check they never go backwards.
struct Monotone(u64);

impl Progress for Monotone {
    fn on_progress(&mut self, n_done: u64) {
        assert!(n_done >= self.0, "progress went backwards");
        self.0 = n_done;
    }
}

fn workload(seed: u64, n: usize) -> Vec<TraceRequest> {
    use rand::Rng;
    let mut rng = RngStreams::new(seed).stream("test.workload");
    let mut t = 0u64;
    (0..n as u64)
        .map(|id| {
            t += rng.random_range(0..20_000_000);
            let group = rng.random_range(0..4u64);
            let n_ids = rng.random_range(1..6usize);
            let mut ids: Vec<u64> = (0..n_ids as u64).map(|k| group * 100 + k).collect();
            ids.push(1_000_000 + id);
            let n_tokens = 64 * ids.len() as u32 - rng.random_range(0..60);
            TraceRequest {
                id,
                arrival_ns: t,
                prompt: Prompt::HashIds {
                    ids,
                    tokens_per_id: 64,
                    n_tokens,
                },
                output_len: rng.random_range(1..40),
                session_id: None,
                cache_salt: None,
                output_token_ids: None,
            }
        })
        .collect()
}

/// Always-disaggregate P/D: every request prefills on a prefill pod.
const PD_CONFIG: &str = "
plugins:
- type: prefill-filter
- type: decode-filter
- type: queue-scorer
- type: max-score-picker
- type: always-disagg-pd-decider
- type: disagg-profile-handler
  parameters: {deciders: {prefill: always-disagg-pd-decider}}
schedulingProfiles:
- name: prefill
  plugins: [{pluginRef: prefill-filter}, {pluginRef: queue-scorer}, {pluginRef: max-score-picker}]
- name: decode
  plugins: [{pluginRef: decode-filter}, {pluginRef: queue-scorer}, {pluginRef: max-score-picker}]
";

/// A scenario from YAML text (test scenarios are always valid).
fn resolve(text: &str) -> crate::scenario::resolve::Resolved {
    resolve_text(
        "t.yaml".as_ref(),
        text,
        ".".as_ref(),
        "t",
        &Overrides::default(),
    )
    .unwrap()
}

fn simulate(seed: u64, n: usize, epp: bool, blocks: u32, async_sched: bool) -> RunOutput {
    simulate_cluster(seed, n, epp, false, blocks, async_sched)
}

fn simulate_cluster(
    seed: u64,
    n: usize,
    epp: bool,
    pd: bool,
    blocks: u32,
    async_sched: bool,
) -> RunOutput {
    simulate_with(
        seed,
        n,
        epp,
        pd,
        blocks,
        async_sched,
        "transfer: {t_handshake_ms: 50}\n",
    )
}

fn simulate_with(
    seed: u64,
    n: usize,
    epp: bool,
    pd: bool,
    blocks: u32,
    async_sched: bool,
    extra: &str,
) -> RunOutput {
    simulate_requests(seed, workload(seed, n), epp, pd, blocks, async_sched, extra)
}

fn simulate_requests(
    seed: u64,
    requests: Vec<TraceRequest>,
    epp: bool,
    pd: bool,
    blocks: u32,
    async_sched: bool,
    extra: &str,
) -> RunOutput {
    simulate_on_threads(1, seed, requests, epp, pd, blocks, async_sched, extra, true)
}

#[allow(clippy::too_many_arguments)]
fn simulate_on_threads(
    threads: usize,
    seed: u64,
    requests: Vec<TraceRequest>,
    epp: bool,
    pd: bool,
    blocks: u32,
    async_sched: bool,
    extra: &str,
    fused_decode: bool,
) -> RunOutput {
    let vllm = format!("{{num_gpu_blocks_override: {blocks}, max_model_len: 1024, async_scheduling: {async_sched}}}");
    let pods = if pd {
        format!("  - {{role: decode, count: 2, gpu: H100, model: Llama-3.2-1B, vllm: {vllm}}}\n  - {{role: prefill, count: 2, gpu: H100, model: Llama-3.2-1B, vllm: {vllm}}}\n")
    } else {
        format!("  - {{count: 3, gpu: H100, model: Llama-3.2-1B, vllm: {vllm}}}\n")
    };
    let text = format!("pods:\n{pods}{extra}workload: {{trace: {{path: unused.jsonl}}}}\n");
    let resolved = resolve(&text);
    let rng = RngStreams::new(seed);
    let mut pods = resolved.build_pods(&rng);
    pods.iter_mut()
        .for_each(|p| p.set_fused_decode(fused_decode));
    let routing = if epp || pd {
        let cfg = crate::epp::config::load_yaml(if pd { PD_CONFIG } else { "" }).unwrap();
        let names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
        let router = super::epp_router::EppRouter::new(
            cfg,
            &pods,
            "m".into(),
            rng.stream("epp.picker"),
            false,
            Default::default(),
        );
        Routing::Epp {
            router: Box::new(router),
            pipeline: EventPipeline::new(KvEventLag::default(), &names),
            refresh: SimDuration::from_ms(50),
        }
    } else {
        Routing::Simple(Router::Random {
            rng: rng.stream("router"),
        })
    };
    Simulation::new(
        pods,
        routing,
        requests.into_iter(),
        SimDuration::from_us(100),
    )
    .with_pd(resolved.build_pd())
    .with_threads(threads)
    .with_horizon(resolved.horizon_s.map(secs))
    .run(&mut Monotone(0))
}

fn secs(s: f64) -> SimTime {
    SimTime(SimDuration::from_secs_f64_ceil(s).as_ns())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Every request is accounted for exactly once, every completed request
    /// produced its full output after it arrived, and every pod ends with all
    /// blocks free and its invariants intact, for any seed.
    #[test]
    fn every_request_accounted_for_and_blocks_conserved(
        seed in any::<u64>(),
        n in 1usize..60,
        epp in any::<bool>(),
        blocks in 80u32..400,
        async_sched in any::<bool>(),
    ) {
        let out = simulate(seed, n, epp, blocks, async_sched);
        let mut ids: Vec<u64> = out.finished.iter().map(|c| c.req.id).chain(out.not_finished.iter().map(|r| r.id)).collect();
        ids.sort_unstable();
        prop_assert_eq!(ids, (0..n as u64).collect::<Vec<_>>());
        for c in &out.finished {
            let t = &c.req.times;
            prop_assert_eq!(c.req.num_output_tokens, c.req.max_tokens);
            prop_assert!(t.dispatch_ns >= t.arrival_ns);
            let first = t.first_token_ns.unwrap();
            prop_assert!(first > t.arrival_ns && t.last_token_ns.unwrap() >= first);
        }
        for p in &out.pods {
            p.scheduler().check_invariants().map_err(TestCaseError::fail)?;
            prop_assert_eq!(p.scheduler().n_unfinished(), 0);
            prop_assert_eq!(p.scheduler().pool().n_free(), p.scheduler().pool().n_usable());
            // Busy time fits in the run; one sample per second (the default) up to its end.
            prop_assert!(p.counters().busy_ns <= out.end_time.as_ns());
            let times: Vec<u64> = p.counters().samples.iter().map(|s| s.t_ns).collect();
            let grid: Vec<u64> = (0..=out.end_time.as_ns() / 1_000_000_000).map(|k| k * 1_000_000_000).collect();
            prop_assert_eq!(times, grid);
        }
        prop_assert_eq!(out.router_in_flight_at_end, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// P/D: every request is prefilled remotely and completes on a decode pod
    /// after its KV pull, and no block leaks on either side.
    #[test]
    fn pd_requests_end_on_decode_pods_without_leaks(
        seed in any::<u64>(),
        n in 1usize..40,
        blocks in 80u32..300,
        async_sched in any::<bool>(),
    ) {
        let out = simulate_cluster(seed, n, true, true, blocks, async_sched);
        prop_assert_eq!(out.finished.len() + out.not_finished.len(), n);
        // Tiny pools can wedge a decode pod the way they wedge vLLM (see
        // `IncompleteRequest::stalled`); such requests are reported, not lost.
        prop_assert!(out.not_finished.iter().all(|r| r.rejection.is_some() || r.stalled));
        for c in &out.finished {
            prop_assert_eq!(out.pods[c.pod as usize].role, crate::pod::engine::Role::Decode);
            prop_assert_eq!(c.req.num_output_tokens, c.req.max_tokens);
        }
        let n_stalled = out.not_finished.iter().filter(|r| r.stalled).count();
        prop_assert!(out.n_transfers as usize >= out.finished.len());
        prop_assert!(out.n_transfers as usize <= out.finished.len() + n_stalled);
        prop_assert_eq!(out.n_hold_timeouts, 0);
        for (i, p) in out.pods.iter().enumerate() {
            p.scheduler().check_invariants().map_err(TestCaseError::fail)?;
            // A prefill pod keeps holding blocks for a stalled request whose pull never came.
            prop_assert!(p.scheduler().n_held() <= n_stalled);
            let stalled_here = out.not_finished.iter().any(|r| r.stalled && r.pod == Some(i as u32));
            prop_assert_eq!(stalled_here, p.scheduler().n_unfinished() > 0, "pod {}", p.name);
            if !stalled_here && p.scheduler().n_held() == 0 {
                prop_assert_eq!(p.scheduler().pool().n_free(), p.scheduler().pool().n_usable(), "pod {}", p.name);
            }
        }
    }
}

/// A preempted request at the head of the decode pod's queue needs more
/// blocks than are free while three received P/D requests behind it hold 62
/// of the 83: vLLM's scheduler stops at the head every step and never gets to
/// them. The run reports those requests as stalled instead of dropping them.
#[test]
fn a_wedged_decode_pod_reports_its_requests_as_stalled() {
    let out = simulate_cluster(1549197587507538736, 9, true, true, 84, true);
    let stalled: Vec<u64> = out
        .not_finished
        .iter()
        .filter(|r| r.stalled)
        .map(|r| r.id)
        .collect();
    assert_eq!(stalled, vec![5, 6, 7, 8]);
    assert_eq!(out.finished.len(), 5);
    let pod = &out.pods[out.not_finished[0].pod.unwrap() as usize];
    assert_eq!(pod.scheduler().n_running(), 0);
    assert_eq!(pod.scheduler().n_waiting(), 4);
}

/// vLLM rejects a request longer than `max_model_len` after the EPP routed
/// it; the router must count it out again, or the pod it picked looks busy
/// for the rest of the run.
#[test]
fn rejected_requests_leave_no_in_flight_count_behind() {
    let mut reqs = workload(4, 12);
    for r in reqs.iter_mut().step_by(3) {
        // 40 hash ids × 64 tokens > max_model_len 1024.
        let Prompt::HashIds { ids, n_tokens, .. } = &mut r.prompt else {
            unreachable!()
        };
        ids.extend(5_000_000..5_000_040);
        *n_tokens = 64 * ids.len() as u32;
    }
    for pd in [false, true] {
        let out = simulate_requests(4, reqs.clone(), true, pd, 400, true, "");
        let n_rejected = out
            .not_finished
            .iter()
            .filter(|r| r.rejection == Some(super::Rejection::TooLong))
            .count();
        assert_eq!((n_rejected, out.finished.len()), (4, 8), "pd {pd}");
        assert_eq!(out.router_in_flight_at_end, 0, "pd {pd}");
    }
}

/// Pods run on a second thread between arrivals; nothing of the run may
/// depend on it: same requests, times, counters, pod state, event count.
#[test]
fn two_threads_give_the_run_of_one() {
    for (epp, pd, extra) in [
        (true, false, ""),
        (false, false, ""),
        (true, false, "horizon_s: 0.4\n"),
        (true, true, ""),
    ] {
        // Small pools (200 blocks) for evictions and preemptions.
        let run = |threads| {
            let out =
                simulate_on_threads(threads, 5, workload(5, 80), epp, pd, 200, true, extra, true);
            (out.not_finished.len(), format!("{out:?}"))
        };
        let one = run(1);
        // Every request finishes, but those the horizon cuts short.
        assert_eq!(one.0 > 0, !extra.is_empty(), "epp {epp} pd {pd} {extra}");
        assert_eq!(one, run(2), "epp {epp} pd {pd} {extra}");
    }
}

/// The fused steady decode step changes nothing of a run: same requests,
/// times, routing, pod counters and caches as with every step taking the
/// general calls, with and without P/D, on pools small enough to preempt.
#[test]
fn fused_decode_steps_give_the_run_of_general_steps() {
    for (epp, pd, blocks) in [(true, false, 200), (false, false, 120), (true, true, 200)] {
        let run = |fused| {
            // Long outputs: most steps are steady decode steps.
            let mut reqs = workload(7, 80);
            reqs.iter_mut()
                .for_each(|r| r.output_len = 40 + (r.id as u32 % 7) * 30);
            simulate_on_threads(1, 7, reqs, epp, pd, blocks, true, "", fused)
        };
        let (general, fused) = (run(false), run(true));
        let n_fused: u64 = fused.pods.iter().map(Pod::n_fused_steps).sum();
        let n_steps: u64 = fused.pods.iter().map(|p| p.counters().n_steps).sum();
        assert!(n_fused * 4 >= n_steps, "{n_fused} of {n_steps} steps fused");
        assert_eq!(general.pods.iter().map(Pod::n_fused_steps).sum::<u64>(), 0);
        let key = |o: &RunOutput| {
            let pods: Vec<String> = o
                .pods
                .iter()
                .map(|p| {
                    let s = p.scheduler();
                    format!(
                        "{:?} {:?} {:?} {}",
                        p.counters(),
                        s.prefix_cache_stats(),
                        s.n_preemptions(),
                        s.pool().n_free()
                    )
                })
                .collect();
            format!(
                "{:?} {:?} {:?} {} {:?} {:?} {pods:?}",
                o.finished,
                o.not_finished,
                o.end_time,
                o.n_events,
                o.routing_decisions,
                o.decision_log
            )
        };
        assert_eq!(key(&general), key(&fused), "epp {epp} pd {pd}");
    }
}

/// A pod panicking on the helper thread panics the run, not hangs it.
#[test]
fn a_panic_on_the_pod_thread_reaches_the_caller() {
    #[derive(Debug)]
    struct Broken;
    impl crate::pod::latency::StepTimeModel for Broken {
        fn step_time(&self, _: &crate::pod::latency::StepShape) -> SimDuration {
            panic!("broken step model")
        }
    }
    let text = "pods:\n  - {count: 2, gpu: H100, model: Llama-3.2-1B}\nworkload: {trace: {path: unused.jsonl}}\n";
    let mut pods = resolve(text).build_pods(&RngStreams::new(1));
    let p1 = pods.pop().unwrap().with_step_model(Box::new(Broken));
    pods.push(p1);
    // The helper starts with the odd pods and the caller, with none of its
    // own due, leaves them to it: the first request, to pod 1, panics there.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Simulation::new(
            pods,
            Routing::Simple(Router::RoundRobin { next: 1 }),
            workload(1, 4).into_iter(),
            SimDuration::ZERO,
        )
        .with_threads(2)
        .run(&mut Monotone(0))
    }));
    let msg = run.expect_err("the run panics");
    assert_eq!(msg.downcast_ref::<&str>(), Some(&"broken step model"));
}

#[test]
fn same_seed_same_run() {
    let a = simulate(9, 50, true, 200, true);
    let b = simulate(9, 50, true, 200, true);
    let key = |o: &RunOutput| -> Vec<(u64, u32, Option<u64>)> {
        o.finished
            .iter()
            .map(|c| (c.req.id, c.pod, c.req.times.last_token_ns))
            .collect()
    };
    assert_eq!(key(&a), key(&b));
    assert_eq!(a.n_events, b.n_events);
}

#[test]
fn prefill_blocks_are_released_at_the_hold_timeout_when_no_pull_comes() {
    // The first pull of each (decode, prefill) pair waits for a 2 s handshake,
    // far beyond a 5 ms hold: the prefill pods give the blocks back on their own.
    let extra = "transfer: {t_handshake_ms: 2000}\nprefill_hold_timeout_s: 0.005\n";
    let out = simulate_with(3, 6, true, true, 200, false, extra);
    assert!(out.n_hold_timeouts >= 1, "{} timeouts", out.n_hold_timeouts);
    assert_eq!(out.finished.len(), 6);
    for p in &out.pods {
        assert_eq!(p.scheduler().n_held(), 0);
        assert_eq!(
            p.scheduler().pool().n_free(),
            p.scheduler().pool().n_usable()
        );
    }
    // With the default (0.33: lease kept alive while the decode pod waits) nothing times out.
    let out = simulate_with(
        3,
        6,
        true,
        true,
        200,
        false,
        "transfer: {t_handshake_ms: 2000}\n",
    );
    assert_eq!(out.n_hold_timeouts, 0);
}

/// A request dispatched unhashed gets, on reaching the pod, the keys and
/// chain state the pod's hasher gives when hashing at once.
#[test]
fn a_deferred_prompt_is_hashed_like_an_eager_one_on_reaching_the_pod() {
    use crate::pod::request::{OutputTokens, PodRequest, PromptKeys};
    let text = "pods:\n  - {count: 1, gpu: H100, model: Llama-3.2-1B}\nworkload: {trace: {path: unused.jsonl}}\n";
    let pods = resolve(text).build_pods(&RngStreams::new(1));
    let hasher = pods[0].scheduler().hasher().clone();
    let req = workload(2, 1).remove(0);
    let build = |keys: PromptKeys<'_>| {
        PodRequest::new(
            0,
            req.prompt.clone(),
            None,
            OutputTokens::Constant(1),
            40,
            0,
            0,
            keys,
            16,
        )
    };
    let eager = build(PromptKeys::Hash(&hasher));
    let mut deferred = build(PromptKeys::Deferred);
    assert!(deferred.block_hashes.is_empty());
    deferred.hash_prompt(&hasher, 16);
    assert!(!eager.block_hashes.is_empty());
    assert_eq!(deferred.block_hashes, eager.block_hashes);
    // Decoding on from there extends both chains alike; hashing again does nothing.
    deferred.hash_prompt(&hasher, 16);
    let (mut a, mut b) = (eager, deferred);
    for _ in 0..40 {
        a.append_output_token(&hasher, 16);
        b.append_output_token(&hasher, 16);
    }
    assert_eq!(a.block_hashes, b.block_hashes);
}

/// Runs the test workload on 3 pods hashing with vLLM's algorithm under
/// `vllm`, behind the precise scorer with `hash_seed`, keyed by `keys`;
/// returns, per pod, whether the precise scorer ever credited it with a
/// cached prefix.
fn index_credits(
    vllm: &str,
    keys: super::key_spaces::IndexKeys,
    hash_seed: &str,
    speculative_only: bool,
) -> Vec<bool> {
    let text = format!(
        "block_hashing: vllm\npods:\n  - {{count: 3, gpu: H100, model: Llama-3.2-1B, vllm: {vllm}}}\nworkload: {{trace: {{path: unused.jsonl}}}}\n"
    );
    let mut resolved = resolve(&text);
    // The scenario names no router: switch on the pods' KV events here.
    resolved.kv_events_enabled = true;
    let rng = RngStreams::new(5);
    let pods = resolved.build_pods(&rng);
    let speculative = if speculative_only {
        ", speculativeIndexing: true, speculativeTTL: 1h"
    } else {
        ""
    };
    let cfg = crate::epp::config::load_yaml(&format!(
        "plugins:\n- type: precise-prefix-cache-scorer\n  parameters: {{tokenProcessorConfig: {{blockSize: 16, hashSeed: \"{hash_seed}\"}}{speculative}}}\n"
    ))
    .unwrap();
    // Speculative only: no KV event arrives before the run ends.
    let lag = KvEventLag {
        transport_us: if speculative_only { 1e12 } else { 0.0 },
        ..KvEventLag::zero()
    };
    let names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
    let router = super::epp_router::EppRouter::new(
        cfg,
        &pods,
        "m".into(),
        rng.stream("epp.picker"),
        true,
        super::epp_router::IndexOptions {
            keys,
            ..Default::default()
        },
    );
    // Engine keys the pods cannot match are called out before the run.
    let warned = router
        .warnings()
        .iter()
        .any(|w| w.contains("hash blocks unlike the router"));
    let routing = Routing::Epp {
        router: Box::new(router),
        pipeline: EventPipeline::new(lag, &names),
        refresh: SimDuration::from_ms(50),
    };
    let out = Simulation::new(
        pods,
        routing,
        workload(5, 60).into_iter(),
        SimDuration::ZERO,
    )
    .run(&mut Monotone(0));
    assert_eq!(out.finished.len(), 60);
    let credits: Vec<bool> = (0..3)
        .map(|p| {
            let name = format!("both-{p}");
            // Both the scorer (through the lookup) and the log's index view.
            let scored = |r: &super::epp_router::DecisionRow| {
                r.scores
                    .iter()
                    .any(|(n, raw, _)| &**n == "precise-prefix-cache-scorer" && *raw > 0.0)
            };
            let credited = out.decision_log.iter().filter(|r| r.pod == name);
            let (a, b) = (
                credited.clone().any(scored),
                credited.clone().any(|r| r.index_prefix_blocks > 0),
            );
            assert_eq!(a, b, "{name}: scorer and log disagree");
            a
        })
        .collect();
    assert_eq!(
        warned,
        credits != vec![true; 3],
        "warning vs credits {credits:?}"
    );
    credits
}

/// The index finds every pod's blocks with request keys (llm-d-kv-cache ≥
/// Dec 2025) even when each pod hashes with its own random NONE_HASH (vLLM
/// xxhash without PYTHONHASHSEED); with engine keys (≤ Nov 2025) it finds
/// them only when the pods hash exactly as the router's hashSeed says.
#[test]
fn index_keys_decide_whether_differently_hashing_pods_are_found() {
    use super::key_spaces::IndexKeys::{Engine, Request};
    let random_per_pod = "{prefix_caching_hash_algo: xxhash}";
    assert_eq!(
        index_credits(random_per_pod, Request, "", false),
        vec![true; 3]
    );
    // Speculative entries go under each picked pod's own keys.
    assert_eq!(
        index_credits(random_per_pod, Request, "", true),
        vec![true; 3]
    );
    assert_eq!(
        index_credits(random_per_pod, Engine, "", false),
        vec![false; 3]
    );
    // vLLM's default sha256 with its default seed: not what the router hashes.
    assert_eq!(index_credits("{}", Engine, "", false), vec![false; 3]);
    // The llm-d guide's pairing: sha256_cbor, PYTHONHASHSEED = hashSeed = 42.
    let guide = "{prefix_caching_hash_algo: sha256_cbor, python_hash_seed: \"42\"}";
    assert_eq!(index_credits(guide, Engine, "42", false), vec![true; 3]);
    assert_eq!(index_credits(guide, Engine, "41", false), vec![false; 3]);
}

/// A P/D hold timeout that never fires (the pull always comes first) stays
/// queued long after the last step; neither it nor a horizon past the work
/// moves the run's end, so busy fractions do not depend on it.
#[test]
fn run_end_and_busy_ignore_a_pending_hold_timeout() {
    let pd = "transfer: {t_handshake_ms: 50}\nsample_interval_ms: 1\n";
    let base = simulate_with(6, 30, true, true, 300, true, pd);
    assert_eq!(base.finished.len(), 30);
    let busy =
        |o: &RunOutput| -> Vec<u64> { o.pods.iter().map(|p| p.counters().busy_ns).collect() };
    let fractions = |o: &RunOutput| -> Vec<f64> {
        let (s, _) = crate::metrics::summary::summarize(o);
        s.pods.iter().map(|p| p.busy_fraction).collect()
    };
    assert!(busy(&base).iter().all(|&b| b > 0));
    for extra in [
        "prefill_hold_timeout_s: 120\n",
        "prefill_hold_timeout_s: 120\nhorizon_s: 60\n",
    ] {
        let out = simulate_with(6, 30, true, true, 300, true, &format!("{pd}{extra}"));
        assert_eq!(out.finished.len(), 30, "{extra}");
        assert_eq!(out.n_hold_timeouts, 0, "{extra}");
        assert_eq!(out.end_time, base.end_time, "{extra}");
        assert_eq!(busy(&out), busy(&base), "{extra}");
        assert_eq!(fractions(&out), fractions(&base), "{extra}");
        for (p, q) in out.pods.iter().zip(&base.pods) {
            assert_eq!(p.counters().samples, q.counters().samples, "{extra}");
        }
    }
    // The time series covers the run exactly: rows at 0, 1, ..., end (ms).
    let n_rows = (base.end_time.as_ns() / 1_000_000 + 1) as usize;
    for p in &base.pods {
        let times: Vec<u64> = p.counters().samples.iter().map(|s| s.t_ns).collect();
        assert_eq!(
            times,
            (0..n_rows as u64)
                .map(|k| k * 1_000_000)
                .collect::<Vec<_>>()
        );
    }
    assert!(base.end_time < secs(1.0), "{}", base.end_time);
}

/// Two pods, 10 ms constant steps, requests at 0, 1 and 2 ms with long
/// outputs, cut at 25 ms: pod 0 ran [0, 10], [10, 20] and is 5 ms into
/// [20, 30]; pod 1 ran [1, 11], [11, 21] and is 4 ms into [21, 31]. Async
/// scheduling also has the next step queued, which starts after the horizon.
#[test]
fn busy_time_stops_at_the_horizon() {
    for async_sched in [false, true] {
        let text = format!(
            "pods:\n  - {{count: 2, gpu: H100, model: Llama-3.2-1B, vllm: {{async_scheduling: {async_sched}}}}}\n\
             step_time: {{model: constant, step_us: 10000}}\nworkload: {{trace: {{path: unused.jsonl}}}}\n"
        );
        let horizon = SimTime(25_000_000);
        let requests = (0..3).map(|id| one_block_request(id, id * 1_000_000, 100));
        let out = run_round_robin(&text, requests.collect(), Some(horizon));
        assert_eq!(out.end_time, horizon);
        let got: Vec<(u64, u64)> = out
            .pods
            .iter()
            .map(|p| (p.counters().n_steps, p.counters().busy_ns))
            .collect();
        assert_eq!(
            got,
            vec![(2, 25_000_000), (2, 24_000_000)],
            "async {async_sched}"
        );
        let (s, _) = crate::metrics::summary::summarize(&out);
        assert_eq!(s.pods[0].busy_fraction, 1.0);
        assert_eq!(s.pods[1].busy_fraction, 0.96);
    }
}

/// Request `id` at `arrival_ns`: one 64-token block of its own, `output_len` tokens.
fn one_block_request(id: u64, arrival_ns: u64, output_len: u32) -> TraceRequest {
    TraceRequest {
        id,
        arrival_ns,
        prompt: Prompt::HashIds {
            ids: vec![id],
            tokens_per_id: 64,
            n_tokens: 64,
        },
        output_len,
        session_id: None,
        cache_salt: None,
        output_token_ids: None,
    }
}

/// The scenario `text`'s pods behind round-robin, no routing latency.
fn run_round_robin(text: &str, requests: Vec<TraceRequest>, horizon: Option<SimTime>) -> RunOutput {
    let pods = resolve(text).build_pods(&RngStreams::new(1));
    let routing = Routing::Simple(Router::RoundRobin { next: 0 });
    Simulation::new(pods, routing, requests.into_iter(), SimDuration::ZERO)
        .with_horizon(horizon)
        .run(&mut Monotone(0))
}

/// One pod, one request at a time, 10 ms steps, samples every 10 ms: request
/// 0 runs [0, 30], request 1 waits from 5 ms and runs [30, 50], the pod idles,
/// request 2 runs [95, 105]. Every grid instant up to the end has a row with
/// the state after the events at or before it, idle stretch included.
#[test]
fn time_series_has_one_row_per_interval_with_the_state_then() {
    let text = "pods:\n  - {count: 1, gpu: H100, model: Llama-3.2-1B, vllm: {max_num_seqs: 1, async_scheduling: false}}\n\
                step_time: {model: constant, step_us: 10000}\nsample_interval_ms: 10\nworkload: {trace: {path: unused.jsonl}}\n";
    let requests = vec![
        one_block_request(0, 0, 3),
        one_block_request(1, 5_000_000, 2),
        one_block_request(2, 95_000_000, 1),
    ];
    let out = run_round_robin(text, requests, None);
    assert_eq!(out.finished.len(), 3);
    assert_eq!(out.end_time, SimTime(105_000_000));
    let samples = &out.pods[0].counters().samples;
    let times: Vec<u64> = samples.iter().map(|s| s.t_ns / 1_000_000).collect();
    assert_eq!(times, (0..=100).step_by(10).collect::<Vec<_>>());
    let queues: Vec<(u32, u32)> = samples.iter().map(|s| (s.n_waiting, s.n_running)).collect();
    #[rustfmt::skip]
    assert_eq!(queues, vec![
        (0, 1), (1, 1), (1, 1), (0, 1), (0, 1),
        (0, 0), (0, 0), (0, 0), (0, 0), (0, 0),
        (0, 1),
    ]);
    for s in samples {
        assert_eq!(s.kv_usage > 0.0, s.n_running > 0, "{s:?}");
    }
    let st = out.pods[0].scheduler().prefix_cache_stats();
    assert_eq!(samples.last().unwrap().prefix_queries, st.queries);
    assert!(samples
        .windows(2)
        .all(|w| w[0].prefix_queries <= w[1].prefix_queries));
}

/// Cut at 25 ms: requests arriving at 0, 10 and 25 ms arrived (and are
/// unfinished), those at 30 and 40 ms did not; all five stay accounted for.
/// None completed: the table prints no TTFT statistics, while ITL covers the
/// tokens generated so far.
#[test]
fn requests_after_the_horizon_are_counted_apart() {
    let text = "pods:\n  - {count: 1, gpu: H100, model: Llama-3.2-1B}\n\
                step_time: {model: constant, step_us: 10000}\nworkload: {trace: {path: unused.jsonl}}\n";
    let requests = [0, 10, 25, 30, 40]
        .iter()
        .enumerate()
        .map(|(id, &ms)| one_block_request(id as u64, ms * 1_000_000, 100))
        .collect();
    let out = run_round_robin(text, requests, Some(SimTime(25_000_000)));
    let flags: Vec<(u64, bool, bool)> = out
        .not_finished
        .iter()
        .map(|r| (r.id, r.after_horizon, r.stalled))
        .collect();
    #[rustfmt::skip]
    assert_eq!(flags, vec![
        (0, false, false), (1, false, false), (2, false, false),
        (3, true, false), (4, true, false),
    ]);
    let (s, _) = crate::metrics::summary::summarize(&out);
    let counts = (
        s.requests_total,
        s.requests_completed,
        s.requests_rejected,
        s.requests_unfinished,
        s.requests_after_horizon,
    );
    assert_eq!(counts, (3, 0, 0, 3, 2));
    assert_eq!(s.latency.ttft_ms.count, 0);
    assert!(s.latency.itl_ms.count > 0);
    let table = crate::report::table::render("t", &s);
    assert!(
        table.contains("of 3 arrived (2 more after the horizon)"),
        "{table}"
    );
    let cells = |label: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.starts_with(label)).unwrap();
        line[16..].split_whitespace().map(String::from).collect()
    };
    assert_eq!(cells("TTFT"), vec!["-"; 5], "{table}");
    assert!(
        cells("ITL").iter().all(|c| c.parse::<f64>().is_ok()),
        "{table}"
    );
}

/// A prefill pod whose KV memory holds one request's blocks: the next
/// request waits until the decode pod's pull frees the hold, and then runs
/// (vLLM's engine keeps looping while requests wait) instead of stalling.
#[test]
fn a_freed_prefill_hold_admits_the_waiting_request() {
    // 40 blocks per prompt, 64 usable blocks per pod: one prompt at a time.
    let requests: Vec<TraceRequest> = (0..6u64)
        .map(|id| TraceRequest {
            prompt: Prompt::HashIds {
                ids: vec![id],
                tokens_per_id: 640,
                n_tokens: 640,
            },
            ..one_block_request(id, id * 1_000, 8)
        })
        .collect();
    let out = simulate_requests(
        3,
        requests,
        true,
        true,
        65,
        false,
        "transfer: {t_handshake_ms: 50}\n",
    );
    assert!(
        out.not_finished.is_empty(),
        "{} stalled",
        out.not_finished.len()
    );
    assert_eq!(out.finished.len(), 6);
}

/// A lane runs its pod's events in `(time, class)` order up to the limit:
/// same-instant dispatches in the order they were made, nothing at or past
/// the limit; the router's scrape at an instant sees the pod before that
/// instant's dispatches.
#[test]
fn a_lane_runs_its_events_in_order_up_to_the_limit() {
    use super::lane::Lane;
    use crate::engine::queue::EventClass;
    use crate::pod::request::{OutputTokens, PodRequest, PromptKeys};
    let text = "pods:\n  - {count: 1, gpu: H100, model: Llama-3.2-1B}\nworkload: {trace: {path: unused.jsonl}}\n";
    let mut pod = resolve(text).build_pods(&RngStreams::new(1)).pop().unwrap();
    let req = |pod: &crate::pod::engine::Pod, id: u64, n_tokens: u32| {
        let s = pod.scheduler();
        Box::new(PodRequest::new(
            id,
            Prompt::Tokens((0..n_tokens).map(|t| t + 7 * id as u32).collect()),
            None,
            OutputTokens::Synthetic(id),
            4,
            0,
            id,
            PromptKeys::Hash(s.hasher()),
            s.config().block_size,
        ))
    };
    let ms = |x: u64| SimTime(x * 1_000_000);
    let mut lane = Lane::new(Some(1_000_000));
    lane.dispatch(ms(1), 0, req(&pod, 1, 64));
    lane.dispatch(ms(1), 1, req(&pod, 2, 64));
    lane.dispatch(ms(0), 2, req(&pod, 0, 4096));
    assert_eq!(lane.next_at(), Some((ms(0), EventClass::Dispatch)));
    lane.run_until(&mut pod, (ms(0), EventClass::Arrival));
    // Request 0's first step is in flight; 1 and 2 wait in the inbox.
    assert_eq!(lane.next_at(), Some((ms(1), EventClass::Dispatch)));
    assert_eq!(lane.undelivered().count(), 2);
    lane.run_until(&mut pod, (ms(1), EventClass::Arrival));
    assert_eq!(lane.undelivered().count(), 0);
    let (t, class) = lane.next_at().unwrap();
    assert!(class == EventClass::StepEnd && t > ms(1), "{t} {class:?}");
    // Both joined the waiting queue in dispatch order, behind the running 0.
    assert_eq!(pod.scheduler().unfinished_ids(), vec![1, 2, 0]);
    // The 1 ms scrape saw request 0 running and nothing waiting yet.
    let m = lane.metrics_before(&pod, (ms(1), EventClass::Arrival));
    assert_eq!((m.running, m.waiting, m.at_ns), (1, 0, 1_000_000));
}

/// Bursts of `per_burst` requests arriving at the same instant, `gap_ns`
/// apart, each sharing one of three long prefixes.
fn bursts(n_bursts: u64, per_burst: u64, gap_ns: u64) -> Vec<TraceRequest> {
    (0..n_bursts * per_burst)
        .map(|id| {
            let group = id % 3;
            let mut ids: Vec<u64> = (0..8).map(|k| group * 100 + k).collect();
            ids.push(1_000_000 + id);
            TraceRequest {
                id,
                arrival_ns: id / per_burst * gap_ns,
                prompt: Prompt::HashIds {
                    ids,
                    tokens_per_id: 64,
                    n_tokens: 9 * 64 - 5,
                },
                output_len: 20 + (id % 7) as u32 * 30,
                session_id: None,
                cache_salt: None,
                output_token_ids: None,
            }
        })
        .collect()
}

/// 4 pods behind the precise scorer with load terms, no routing latency:
/// every dispatch lands at its arrival's instant.
fn burst_simulation(
    gap_ns: u64,
    lag: KvEventLag,
    options: super::epp_router::IndexOptions,
    decision_log: bool,
) -> Simulation<std::vec::IntoIter<TraceRequest>> {
    let text = "pods:\n  - {count: 4, gpu: H100, model: Llama-3.2-1B, vllm: {num_gpu_blocks_override: 300}}\nworkload: {trace: {path: unused.jsonl}}\n";
    let mut resolved = resolve(text);
    // The scenario names no router: switch on the pods' KV events here.
    resolved.kv_events_enabled = true;
    let rng = RngStreams::new(3);
    let pods = resolved.build_pods(&rng);
    let cfg = crate::epp::config::load_yaml(
        "plugins:
- type: precise-prefix-cache-scorer
  parameters: {tokenProcessorConfig: {blockSize: 16}}
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: precise-prefix-cache-scorer, weight: 3}
  - {pluginRef: queue-scorer, weight: 2}
  - {pluginRef: kv-cache-utilization-scorer, weight: 2}
  - {pluginRef: max-score-picker}
",
    )
    .unwrap();
    let names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
    let router = super::epp_router::EppRouter::new(
        cfg,
        &pods,
        "m".into(),
        rng.stream("epp.picker"),
        decision_log,
        options,
    );
    let routing = Routing::Epp {
        router: Box::new(router),
        pipeline: EventPipeline::new(lag, &names),
        refresh: SimDuration::from_ms(50),
    };
    Simulation::new(
        pods,
        routing,
        bursts(12, 7, gap_ns).into_iter(),
        SimDuration::ZERO,
    )
}

/// The pods take a burst's dispatches in the next window only when the
/// router cannot see them at once.
#[test]
fn same_instant_dispatches_wait_only_when_the_router_cannot_see_them() {
    use super::epp_router::{IndexOptions, IndexSource};
    use crate::engine::queue::EventClass;
    let events = IndexOptions::default();
    let oracle = IndexOptions {
        source: IndexSource::Oracle,
        ..IndexOptions::default()
    };
    let lagged = KvEventLag::default();
    for (lag, options, log, class) in [
        (lagged.clone(), events, false, EventClass::Dispatch),
        (KvEventLag::zero(), events, false, EventClass::Arrival),
        (lagged.clone(), oracle, false, EventClass::Arrival),
        (lagged.clone(), events, true, EventClass::Arrival),
    ] {
        let sim = burst_simulation(1_000_000_000, lag.clone(), options, log);
        assert_eq!(sim.barrier_class, class, "{lag:?} {options:?} log {log}");
    }
    let pods = resolve("pods:\n  - {count: 2, gpu: H100, model: Llama-3.2-1B}\nworkload: {trace: {path: unused.jsonl}}\n")
        .build_pods(&RngStreams::new(1));
    let simple = Routing::Simple(Router::RoundRobin { next: 0 });
    assert_eq!(
        Simulation::new(pods, simple, Vec::new().into_iter(), SimDuration::ZERO).barrier_class,
        EventClass::Dispatch
    );
}

/// Routing a burst before its dispatches reach the pods changes nothing:
/// the same run as taking each dispatch before the next arrival, on one
/// thread and two.
#[test]
fn routing_a_burst_before_its_dispatches_gives_the_same_run() {
    let run = |threads: usize, deferred: bool| {
        let sim = burst_simulation(
            2_000_000_000,
            KvEventLag::default(),
            Default::default(),
            false,
        )
        .with_threads(threads);
        let sim = if deferred {
            sim
        } else {
            sim.without_deferred_dispatches()
        };
        let out = sim.run(&mut Monotone(0));
        assert!(out.not_finished.is_empty());
        // The bursts spread over the pods and find cached prefixes.
        let pods: std::collections::BTreeSet<u32> = out.finished.iter().map(|c| c.pod).collect();
        assert_eq!(pods.len(), 4);
        let hits = out
            .finished
            .iter()
            .filter(|c| c.req.num_cached_tokens > Some(0));
        assert!(hits.count() > 40);
        format!("{out:?}")
    };
    let reference = run(1, false);
    for (threads, deferred) in [(1, true), (2, true), (2, false)] {
        assert!(
            run(threads, deferred) == reference,
            "threads {threads} deferred {deferred}"
        );
    }
}

/// KV events published at one instant by dispatches on different pods
/// (pods that publish as their pools change) queue for the index in
/// dispatch order, not pod order: with one index worker, the batch of the
/// pod dispatched to first is applied first.
#[test]
fn same_instant_dispatch_records_are_taken_in_dispatch_order() {
    use crate::engine::queue::EventClass;
    let one_worker = KvEventLag {
        publish: super::kv_lag::PublishPoint::Immediate,
        n_workers: 1,
        ..KvEventLag::default()
    };
    let mut sim = burst_simulation(1_000_000_000, one_worker, Default::default(), false);
    let at = SimTime(5);
    for (pod, tr) in [3u32, 0, 2].into_iter().zip(bursts(1, 3, 0)) {
        let req = sim.build_request(tr, pod as usize);
        sim.dispatch(pod, at, Box::new(req));
    }
    let limit = (SimTime(6), EventClass::Arrival);
    assert!(sim.run_pods(None, limit, &mut ()));
    let Routing::Epp { pipeline, .. } = &mut sim.routing else {
        panic!("an EPP router");
    };
    let mut applied = Vec::new();
    while let Some((t, pod, _)) = pipeline.pop_applied_before(super::lane::END) {
        applied.push((t, pod));
    }
    assert_eq!(applied.iter().map(|a| a.1).collect::<Vec<_>>(), [3, 0, 2]);
    assert!(applied[0].0 < applied[1].0 && applied[1].0 < applied[2].0);
}
