//! Hand-computed cases from `vllm.md` and properties of the scheduler.

use proptest::prelude::*;

use super::latency::StepShape;
use super::request::{OutputTokens, PodRequest};
use super::scheduler::{Policy, ReqSlot, Scheduler, SchedulerConfig, StepPlan};
use crate::compat::VllmVersion;
use crate::kv::events::{EventLog, KvEvent};
use crate::kv::hasher::BlockHasher;
use crate::pod::request::PromptKeys;
use crate::trace::request::Prompt;

fn cfg(num_gpu_blocks: u32, budget: u32, version: VllmVersion) -> SchedulerConfig {
    SchedulerConfig {
        block_size: 16,
        num_gpu_blocks,
        max_num_batched_tokens: budget,
        max_num_seqs: 16,
        max_model_len: 8192,
        enable_prefix_caching: true,
        enable_chunked_prefill: true,
        long_prefill_token_threshold: 0,
        watermark: 0.0,
        scheduler_reserve_full_isl: true,
        policy: Policy::Fcfs,
        async_scheduling: false,
        version,
        emit_kv_events: true,
    }
}

fn req(s: &Scheduler, id: u64, tokens: Vec<u32>, max_tokens: u32) -> PodRequest {
    PodRequest::new(
        id,
        Prompt::Tokens(tokens),
        None,
        OutputTokens::Constant(7),
        max_tokens,
        0,
        id,
        PromptKeys::Hash(s.hasher()),
        16,
    )
}

/// Runs sync steps until every request finished; returns the plans.
fn drain(s: &mut Scheduler) -> Vec<StepPlan> {
    let mut plans = Vec::new();
    while s.n_unfinished() > 0 {
        let p = s.schedule();
        s.update_from_output(&p);
        s.check_invariants().unwrap();
        plans.push(p);
        assert!(plans.len() < 10_000, "no progress");
    }
    plans
}

fn hit_of_repeat(len: u32) -> u32 {
    let mut s = Scheduler::new(cfg(100, 2048, VllmVersion::V0_33), BlockHasher::Fast);
    let prompt: Vec<u32> = (0..len).collect();
    let r = req(&s, 0, prompt.clone(), 1);
    s.add_request(r);
    drain(&mut s);
    let r = req(&s, 1, prompt, 1);
    s.add_request(r);
    let p = s.schedule();
    p.lookups[0].hit_tokens
}

#[test]
fn repeated_prompt_reuses_all_but_the_last_token_block_aligned() {
    // 32 tokens: max hit 31 → 1 block; 33 tokens: max hit 32 → 2 blocks.
    assert_eq!(hit_of_repeat(32), 16);
    assert_eq!(hit_of_repeat(33), 32);
    assert_eq!(hit_of_repeat(15), 0);
}

#[test]
fn freed_request_blocks_go_to_the_tail_tail_block_first() {
    // 3 usable blocks (4 with the null block); a 48-token prompt fills them.
    let mut s = Scheduler::new(cfg(5, 2048, VllmVersion::V0_33), BlockHasher::Fast);
    let a: Vec<u32> = (0..48).collect();
    let r = req(&s, 0, a.clone(), 1);
    s.add_request(r);
    drain(&mut s);
    // Blocks 1,2,3 hold A's chain; freed in reverse, they sit 4(unused),3,2,1
    // so the chain's last block is evicted first.
    assert_eq!(s.pool().free_queue_order(), vec![4, 3, 2, 1]);
    // A 20-token prompt needs 2 blocks: takes 4 (never used), then 3 (A's leaf).
    let r = req(&s, 1, (1000..1020).collect(), 1);
    s.add_request(r);
    let p = s.schedule();
    s.update_from_output(&p);
    // A's first two blocks survive: a repeat of A hits 32 tokens.
    let r = req(&s, 2, a, 1);
    s.add_request(r);
    let p = s.schedule();
    assert_eq!(p.lookups[0].hit_tokens, 32);
}

#[test]
fn unhashed_blocks_are_reused_first_in_033_but_not_in_011() {
    for version in [VllmVersion::V0_33, VllmVersion::V0_11] {
        let mut s = Scheduler::new(cfg(5, 2048, version), BlockHasher::Fast);
        // 20 tokens: block 1 full (hashed), block 2 partial (unhashed) ... 1 output token.
        let r = req(&s, 0, (0..20).collect(), 1);
        s.add_request(r);
        drain(&mut s);
        let order = s.pool().free_queue_order();
        // Initially free: 1,2,3,4. A took 1,2 → free 3,4; then frees 2 (unhashed), 1 (hashed).
        // 0.33: unhashed 2 to the head → [2,3,4,1]; 0.11: all to the tail → [3,4,2,1].
        match version {
            VllmVersion::V0_33 => assert_eq!(order, vec![2, 3, 4, 1]),
            VllmVersion::V0_11 => assert_eq!(order, vec![3, 4, 2, 1]),
        }
    }
}

#[test]
fn preemption_picks_the_newest_running_request_and_it_resumes_first() {
    // 8 usable blocks; three 32-token prompts (2 blocks each) decoding 40
    // tokens: at token 33 each needs a third block and only two are free.
    let mut s = Scheduler::new(cfg(9, 2048, VllmVersion::V0_33), BlockHasher::Fast);
    for i in 0..3u64 {
        let r = req(&s, i, (i as u32 * 100..i as u32 * 100 + 32).collect(), 40);
        s.add_request(r);
    }
    let (mut preempted, mut resumed) = (Vec::new(), Vec::new());
    while s.n_unfinished() > 0 {
        let p = s.schedule();
        preempted.extend(p.preempted.iter().map(|&x| s.req(x).id));
        for l in p
            .lookups
            .iter()
            .filter(|l| l.admitted && s.req(l.slot).num_preemptions > 0)
        {
            resumed.push((s.req(l.slot).id, l.hit_tokens));
        }
        s.update_from_output(&p);
        s.check_invariants().unwrap();
    }
    // Request 2 (admitted last) goes first, then 1; each is pushed to the
    // front of the waiting queue, so the latest victim resumes first and
    // re-hits its own cached blocks (2's were reused while it waited).
    assert_eq!(preempted, vec![2, 1]);
    assert_eq!(resumed.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!(resumed[0].1 >= 32, "{resumed:?}");
}

#[test]
fn chunked_prefill_takes_the_budget_left_after_decodes() {
    let mut s = Scheduler::new(cfg(200, 64, VllmVersion::V0_33), BlockHasher::Fast);
    for i in 0..3u64 {
        let r = req(&s, i, (i as u32 * 10..i as u32 * 10 + 8).collect(), 20);
        s.add_request(r);
    }
    let p = s.schedule();
    s.update_from_output(&p);
    assert_eq!(p.total_tokens(), 24);
    let r = req(&s, 9, (5000..5200).collect(), 5);
    s.add_request(r);
    let p = s.schedule();
    // Three decodes of 1 token, then the long prompt gets 64 − 3 = 61 tokens.
    let n: Vec<u32> = p.scheduled.iter().map(|&(_, n)| n).collect();
    assert_eq!(n, vec![1, 1, 1, 61]);
    assert_eq!(p.samples, vec![true, true, true, false]);
    assert_eq!(p.shape.n_decode, 3);
    assert_eq!(p.shape.n_prefill_tokens, 61);
}

#[derive(Clone, Debug)]
struct Arrival {
    step: u32,
    group: u32,
    prefix: u32,
    suffix: u32,
    out: u32,
}

fn arrival() -> impl Strategy<Value = Arrival> {
    (0u32..40, 0u32..4, 0u32..80, 1u32..60, 1u32..30).prop_map(
        |(step, group, prefix, suffix, out)| Arrival {
            step,
            group,
            prefix,
            suffix,
            out,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Blocks are conserved after every step, every request finishes with its
    /// full output, and nothing is left in the queues, under both versions and
    /// both scheduling modes on a tight pool.
    #[test]
    fn blocks_conserved_and_every_request_finishes(
        arrivals in proptest::collection::vec(arrival(), 1..40),
        blocks in 12u32..60,
        v011 in any::<bool>(),
        async_sched in any::<bool>(),
    ) {
        let version = if v011 { VllmVersion::V0_11 } else { VllmVersion::V0_33 };
        let mut c = cfg(blocks, 128, version);
        c.async_scheduling = async_sched;
        let mut s = Scheduler::new(c, BlockHasher::Fast);
        let mut pending: Vec<(usize, Arrival)> = arrivals.into_iter().enumerate().collect();
        pending.sort_by_key(|(i, a)| (a.step, *i));
        let mut finished = Vec::new();
        let mut in_flight: std::collections::VecDeque<StepPlan> = Default::default();
        let cap = if async_sched { 2 } else { 1 };
        let usable_tokens = (blocks - 1) * 16;
        let mut step = 0u32;
        let mut next = 0;
        while next < pending.len() || s.has_requests() || !in_flight.is_empty() {
            while next < pending.len() && pending[next].1.step <= step {
                let (i, a) = &pending[next];
                let mut toks: Vec<u32> = (a.group * 1000..a.group * 1000 + a.prefix).collect();
                toks.extend((0..a.suffix).map(|k| 100_000 + *i as u32 * 100 + k));
                // A request must fit the pool alone (vLLM refuses longer ones).
                let out = a.out.min(usable_tokens.saturating_sub(toks.len() as u32 + 16)).max(1);
                if toks.len() as u32 + out + 16 <= usable_tokens {
                    let r = req(&s, *i as u64, toks, out);
                    s.add_request(r);
                } else {
                    finished.push((*i as u64, 0));
                }
                next += 1;
            }
            while in_flight.len() < cap && s.has_requests() {
                let p = s.schedule();
                let empty = p.total_tokens() == 0;
                in_flight.push_back(p);
                if empty { break; }
            }
            if let Some(p) = in_flight.pop_front() {
                let o = s.update_from_output(&p);
                for f in o.finished {
                    prop_assert_eq!(f.req.num_output_tokens, f.req.max_tokens);
                    finished.push((f.req.id, f.req.num_output_tokens));
                }
            }
            s.check_invariants().map_err(TestCaseError::fail)?;
            step += 1;
            prop_assert!(step < 20_000, "no progress");
        }
        prop_assert_eq!(finished.len(), pending.len());
        prop_assert_eq!(s.n_unfinished(), 0);
        prop_assert_eq!(s.pool().n_free(), blocks - 1);
    }
}

#[test]
fn pd_decode_pod_pulls_only_the_blocks_it_lacks_and_recomputes_the_last_token() {
    use super::request::KvTransfer;
    // Decode pod D already caches the first 64 tokens (4 blocks) of a 128-token prompt.
    let mut d = Scheduler::new(cfg(100, 2048, VllmVersion::V0_33), BlockHasher::Fast);
    let prompt: Vec<u32> = (0..128).collect();
    let warm = req(
        &d,
        0,
        prompt[..64].iter().copied().chain(900..910).collect(),
        1,
    );
    d.add_request(warm);
    drain(&mut d);
    let mut r = req(&d, 1, prompt.clone(), 3);
    r.kv_transfer = KvTransfer::Consume;
    let slot = d.add_request(r);
    let p = d.schedule();
    // 8 blocks for 128 tokens, 4 hit locally: pull exactly the other 4.
    assert_eq!(p.kv_loads.len(), 1);
    assert_eq!(p.kv_loads[0].n_blocks, 4);
    assert_eq!(p.lookups[0].hit_tokens, 64);
    assert!(p.scheduled.is_empty(), "nothing runs until the KV arrives");
    d.update_from_output(&p);
    // Still waiting: no transfer completed.
    let p = d.schedule();
    assert!(p.scheduled.is_empty() && p.kv_loads.is_empty());
    d.update_from_output(&p);
    d.mark_kv_received(slot);
    let p = d.schedule();
    // Recompute the last prompt token only, and sample the first output token.
    assert_eq!(p.scheduled, vec![(slot, 1)]);
    assert_eq!(p.samples, vec![true]);
    let o = d.update_from_output(&p);
    assert_eq!(o.first_token, vec![slot]);
    drain(&mut d);
    d.check_invariants().unwrap();
}

#[test]
fn pd_prefill_pod_holds_blocks_until_released() {
    use super::request::KvTransfer;
    let mut p = Scheduler::new(cfg(20, 2048, VllmVersion::V0_33), BlockHasher::Fast);
    let mut r = req(&p, 7, (0..100).collect(), 1);
    r.kv_transfer = KvTransfer::Produce;
    p.add_request(r);
    drain(&mut p);
    // 7 blocks stay referenced after the request finished.
    assert_eq!(p.n_held(), 1);
    assert_eq!(p.pool().n_free(), 19 - 7);
    p.check_invariants().unwrap();
    assert!(p.release_held(7));
    assert!(!p.release_held(7));
    assert_eq!(p.pool().n_free(), 19);
    // Released blocks stay cached: a repeat hits all but the last partial block.
    let r = req(&p, 8, (0..100).collect(), 1);
    p.add_request(r);
    assert_eq!(p.schedule().lookups[0].hit_tokens, 96);
}

/// What one engine step of [`drive_async`] left: the next plan's requests
/// and shape, the KV events published, and the requests finished.
type StepTrace = (Vec<(ReqSlot, u32)>, StepShape, Vec<KvEvent>, Vec<u64>, u32);

/// Drives a V0.33 async engine as the timed pod does (two steps in flight;
/// arrivals between step ends), through `decode_step` where it applies if
/// `fused`. Returns one trace entry per step and the number of fused steps.
fn drive_async(
    arrivals: &[Arrival],
    blocks: u32,
    budget: u32,
    fused: bool,
) -> (Vec<StepTrace>, u32) {
    let mut c = cfg(blocks, budget, VllmVersion::V0_33);
    c.async_scheduling = true;
    let mut s = Scheduler::new(c, BlockHasher::Fast);
    let usable_tokens = (blocks - 1) * 16;
    let mut pending: Vec<(usize, &Arrival)> = arrivals.iter().enumerate().collect();
    pending.sort_by_key(|(i, a)| (a.step, *i));
    let mut in_flight: std::collections::VecDeque<StepPlan> = Default::default();
    let (mut trace, mut n_fused, mut step, mut next) = (Vec::new(), 0, 0u32, 0);
    let fill = |s: &mut Scheduler, in_flight: &mut std::collections::VecDeque<StepPlan>| {
        while in_flight.len() < 2 && s.has_requests() {
            let p = s.schedule();
            if p.total_tokens() == 0 {
                break;
            }
            in_flight.push_back(p);
        }
    };
    while next < pending.len() || s.has_requests() || !in_flight.is_empty() {
        while next < pending.len() && pending[next].1.step <= step {
            let (i, a) = pending[next];
            let mut toks: Vec<u32> = (a.group * 1000..a.group * 1000 + a.prefix).collect();
            toks.extend((0..a.suffix).map(|k| 100_000 + i as u32 * 100 + k));
            if toks.len() as u32 + a.out + 16 <= usable_tokens {
                let r = req(&s, i as u64, toks, a.out);
                s.add_request(r);
            }
            next += 1;
        }
        if in_flight.is_empty() {
            fill(&mut s, &mut in_flight);
        }
        if in_flight.len() == 2 && fused {
            let mut events = EventLog::default();
            if s.decode_step(&mut in_flight[0], &mut events, |_| {}) {
                let p = in_flight.pop_front().expect("two in flight");
                n_fused += 1;
                trace.push((
                    p.scheduled.clone(),
                    p.shape,
                    events.to_events(),
                    Vec::new(),
                    s.pool().n_free(),
                ));
                in_flight.push_back(p);
                step += 1;
                continue;
            }
        }
        if let Some(p) = in_flight.pop_front() {
            let o = s.update_from_output(&p);
            fill(&mut s, &mut in_flight);
            let (scheduled, shape) = in_flight
                .back()
                .map(|p| (p.scheduled.clone(), p.shape))
                .unwrap_or_default();
            let done = o.finished.iter().map(|f| f.req.id).collect();
            trace.push((
                scheduled,
                shape,
                o.events.to_events(),
                done,
                s.pool().n_free(),
            ));
        }
        step += 1;
        assert!(step < 20_000, "no progress");
    }
    (trace, n_fused)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::test_support::proptest_cases(128)))]
    /// The fused steady decode step changes nothing: every step plans the
    /// same requests with the same shape, publishes the same KV events and
    /// finishes the same requests as the general calls, on tight pools
    /// (preemptions) and small budgets (chunked prefills) alike.
    #[test]
    fn fused_decode_steps_match_the_general_calls(
        arrivals in proptest::collection::vec(arrival(), 1..30),
        blocks in 12u32..80,
        budget in prop_oneof![Just(8u32), Just(64), Just(2048)],
    ) {
        let (general, _) = drive_async(&arrivals, blocks, budget, false);
        let (fused, _) = drive_async(&arrivals, blocks, budget, true);
        prop_assert_eq!(general, fused);
    }
}

#[test]
fn steady_decoding_takes_the_fused_step() {
    let arrivals: Vec<Arrival> = (0..4)
        .map(|i| Arrival {
            step: i,
            group: i % 2,
            prefix: 40,
            suffix: 10,
            out: 60,
        })
        .collect();
    let (general, _) = drive_async(&arrivals, 200, 2048, false);
    let (fused, n_fused) = drive_async(&arrivals, 200, 2048, true);
    // Four short prompts, then some 60 steps decode them all: only the
    // prefills and the finishes take the general calls.
    assert!(
        n_fused as usize * 5 >= fused.len() * 4,
        "only {n_fused} of {} steps fused",
        fused.len()
    );
    assert_eq!(general, fused);
}
