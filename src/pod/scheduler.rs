//! vLLM V1 `Scheduler.schedule()` / `update_from_output()` and the KV cache
//! manager calls they make (`vllm.md` §2–§4), for one engine.
//!
//! Time-free: the conformance runner drives it step by step, the timed pod
//! drives it with a step-time model. Both use exactly this code.

use std::collections::VecDeque;

use super::latency::StepShape;
use super::request::{KvTransfer, PodRequest, ReqStatus};
use crate::compat::VllmVersion;
use crate::kv::block_pool::BlockPool;
use crate::kv::events::EventLog;
use crate::kv::hasher::BlockHasher;

/// Scheduling policy (`--scheduling-policy`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// First come, first served; the preemption victim is the newest running request.
    Fcfs,
    /// Lowest `(priority, arrival)` first; the victim is the largest `(priority, arrival)`.
    Priority,
}

/// Engine settings the scheduler needs, with vLLM's names.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Tokens per KV block.
    pub block_size: u32,
    /// `num_gpu_blocks`, the null block included.
    pub num_gpu_blocks: u32,
    /// Token budget per step.
    pub max_num_batched_tokens: u32,
    /// Most requests running at once.
    pub max_num_seqs: u32,
    /// Longest sequence (prompt + output).
    pub max_model_len: u32,
    /// Automatic prefix caching.
    pub enable_prefix_caching: bool,
    /// Chunked prefill.
    pub enable_chunked_prefill: bool,
    /// Cap on prefill tokens per request per step (0 = off).
    pub long_prefill_token_threshold: u32,
    /// [0.33] fraction of blocks kept free when admitting.
    pub watermark: f64,
    /// [0.33] admit only if the whole sequence fits.
    pub scheduler_reserve_full_isl: bool,
    /// FCFS or priority.
    pub policy: Policy,
    /// Async scheduling (output placeholders).
    pub async_scheduling: bool,
    /// vLLM release semantics.
    pub version: VllmVersion,
    /// Whether to queue KV events (off saves time when nothing consumes them).
    pub emit_kv_events: bool,
}

/// Slot of a request in the scheduler; the generation tells a reused slot
/// apart, so a step planned before a request finished never touches its successor.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReqSlot {
    idx: u32,
    gen: u32,
}

/// vLLM's `PrefixCacheStats` counters (tokens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefixCacheStats {
    /// Lookups counted.
    pub requests: u64,
    /// Σ request.num_tokens over counted lookups.
    pub queries: u64,
    /// Σ block-aligned hit tokens over counted lookups.
    pub hits: u64,
    /// [0.33] same, for re-admissions of preempted requests (not exported).
    pub preempted_requests: u64,
    /// [0.33] preempted queries.
    pub preempted_queries: u64,
    /// [0.33] preempted hits.
    pub preempted_hits: u64,
}

/// One prefix lookup (for conformance and debugging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The request.
    pub slot: ReqSlot,
    /// Its `num_tokens` at lookup.
    pub num_tokens: u32,
    /// Block-aligned hit tokens.
    pub hit_tokens: u32,
    /// Whether the admission succeeded.
    pub admitted: bool,
}

/// What one `schedule()` call decided.
#[derive(Clone, Debug, Default)]
pub struct StepPlan {
    /// `(request, tokens)`: running requests first, then admissions.
    pub scheduled: Vec<(ReqSlot, u32)>,
    /// Whether each scheduled request samples a token after this step.
    pub samples: Vec<bool>,
    /// Requests preempted in this call, in order.
    pub preempted: Vec<ReqSlot>,
    /// Prefix lookups made in this call.
    pub lookups: Vec<Lookup>,
    /// Aggregate shape for the step-time model.
    pub shape: StepShape,
    /// [0.11] KV events published at the end of `schedule()` (0.33 publishes
    /// them after the step's output is processed, in [`StepOutcome::events`]).
    pub events: EventLog,
    /// P/D decode side: requests whose blocks were allocated this call and
    /// whose KV must now be pulled from the prefill pod.
    pub kv_loads: Vec<KvLoad>,
}

impl StepPlan {
    /// Empties every list, keeping capacity (plans are recycled step to step).
    fn clear(&mut self) {
        self.scheduled.clear();
        self.samples.clear();
        self.preempted.clear();
        self.lookups.clear();
        self.shape = StepShape::default();
        self.events.clear();
        self.kv_loads.clear();
    }

    /// Σ scheduled tokens.
    pub fn total_tokens(&self) -> u32 {
        self.shape.n_tokens() as u32
    }
}

/// Arguments of [`Scheduler::allocate_slots`] (vLLM's keyword arguments).
#[derive(Clone, Copy, Debug, Default)]
struct Alloc<'a> {
    /// Tokens to compute this step.
    n_new: u32,
    /// Prefix-hit blocks found by the lookup.
    hit_blocks: &'a [u32],
    /// Tokens they cover.
    n_hit: u32,
    /// Tokens a KV connector will load (P/D).
    n_external: u32,
    /// Do not cache yet (the blocks' KV is still arriving).
    delay_cache: bool,
    /// [0.33] admission gate: the whole sequence must fit.
    full_sequence_must_fit: bool,
    /// Whether some request is already scheduled (the watermark applies).
    has_scheduled_reqs: bool,
}

/// A KV pull the decode pod must perform (vLLM's `start_load_kv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLoad {
    /// The waiting request.
    pub slot: ReqSlot,
    /// Its workload id.
    pub request_id: u64,
    /// Blocks to pull: the newly allocated (unhashed) ones, i.e.
    /// `ceil(L/bs) − floor(local_hit/bs)`.
    pub n_blocks: u32,
}

/// A request that finished in `update_from_output`, removed from the scheduler.
#[derive(Clone, Debug)]
pub struct Finished {
    /// Its slot while it lived (reusable now).
    pub slot: ReqSlot,
    /// The request, with its final counters.
    pub req: PodRequest,
}

/// What processing one step's output produced.
#[derive(Clone, Debug, Default)]
pub struct StepOutcome {
    /// Requests that got their first output token.
    pub first_token: Vec<ReqSlot>,
    /// Requests that appended a token (first tokens included).
    pub sampled: Vec<ReqSlot>,
    /// Requests that finished.
    pub finished: Vec<Finished>,
    /// KV events published after this step.
    pub events: EventLog,
}

/// One vLLM engine's scheduler and KV cache manager.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    hasher: BlockHasher,
    pool: BlockPool,
    reqs: Vec<Option<PodRequest>>,
    gens: Vec<u32>,
    free_slots: Vec<u32>,
    running: Vec<ReqSlot>,
    waiting: VecDeque<ReqSlot>,
    /// Requests finished since the last `schedule()` (vLLM flushes them then).
    n_finished_unflushed: usize,
    stats: PrefixCacheStats,
    n_preemptions: u64,
    watermark_blocks: u32,
    scratch_blocks: Vec<u32>,
    /// P/D: decode-side requests whose KV pull completed (vLLM `finished_recving`).
    finished_recving: Vec<ReqSlot>,
    /// P/D: prefill-side blocks held for a decode pod, by request id.
    held: std::collections::BTreeMap<u64, Vec<u32>>,
}

impl Scheduler {
    /// An idle engine with an empty cache.
    pub fn new(cfg: SchedulerConfig, hasher: BlockHasher) -> Scheduler {
        let pool = BlockPool::new(cfg.num_gpu_blocks, cfg.emit_kv_events, cfg.version);
        let watermark_blocks = (cfg.watermark * cfg.num_gpu_blocks as f64) as u32;
        Scheduler {
            cfg,
            hasher,
            pool,
            reqs: Vec::new(),
            gens: Vec::new(),
            free_slots: Vec::new(),
            running: Vec::new(),
            waiting: VecDeque::new(),
            n_finished_unflushed: 0,
            stats: PrefixCacheStats::default(),
            n_preemptions: 0,
            watermark_blocks,
            scratch_blocks: Vec::new(),
            finished_recving: Vec::new(),
            held: std::collections::BTreeMap::new(),
        }
    }

    /// Settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// The hasher requests must be built with.
    pub fn hasher(&self) -> &BlockHasher {
        &self.hasher
    }

    /// The KV block pool.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    /// Adds a request to the waiting queue.
    pub fn add_request(&mut self, mut req: PodRequest) -> ReqSlot {
        req.hash_prompt(&self.hasher, self.cfg.block_size);
        let slot = match self.free_slots.pop() {
            Some(idx) => {
                self.reqs[idx as usize] = Some(req);
                self.gens[idx as usize] += 1;
                ReqSlot {
                    idx,
                    gen: self.gens[idx as usize],
                }
            }
            None => {
                self.reqs.push(Some(req));
                self.gens.push(0);
                ReqSlot {
                    idx: self.reqs.len() as u32 - 1,
                    gen: 0,
                }
            }
        };
        self.waiting.push_back(slot);
        slot
    }

    /// The request in `slot`.
    pub fn req(&self, slot: ReqSlot) -> &PodRequest {
        self.live(slot).expect("live request slot")
    }

    /// The request in `slot` if it has not finished.
    pub fn live(&self, slot: ReqSlot) -> Option<&PodRequest> {
        if self.gens[slot.idx as usize] != slot.gen {
            return None;
        }
        self.reqs[slot.idx as usize].as_ref()
    }

    /// The request in `slot`, mutably (the timed pod stamps its times).
    pub fn req_mut(&mut self, slot: ReqSlot) -> &mut PodRequest {
        debug_assert_eq!(self.gens[slot.idx as usize], slot.gen);
        self.reqs[slot.idx as usize]
            .as_mut()
            .expect("live request slot")
    }

    /// Requests waiting (new and preempted).
    pub fn n_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests running.
    pub fn n_running(&self) -> usize {
        self.running.len()
    }

    /// Unfinished requests.
    pub fn n_unfinished(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    /// Workload ids of unfinished requests (waiting first, then running).
    pub fn unfinished_ids(&self) -> Vec<u64> {
        self.waiting
            .iter()
            .chain(&self.running)
            .map(|&s| self.req(s).id)
            .collect()
    }

    /// vLLM's `has_requests()`: unfinished requests or unflushed finishes.
    pub fn has_requests(&self) -> bool {
        self.n_unfinished() > 0 || self.n_finished_unflushed > 0
    }

    /// Prefix-cache counters so far.
    pub fn prefix_cache_stats(&self) -> PrefixCacheStats {
        self.stats
    }

    /// Preemptions so far.
    pub fn n_preemptions(&self) -> u64 {
        self.n_preemptions
    }

    /// P/D decode side: the KV pull of `slot` finished; the next `schedule()`
    /// caches its blocks and makes it runnable.
    pub fn mark_kv_received(&mut self, slot: ReqSlot) {
        if self.live(slot).is_some() {
            self.finished_recving.push(slot);
        }
    }

    /// P/D prefill side: frees the blocks held for request `id` (the decode
    /// pod's notification, or the hold timeout). False if none were held.
    pub fn release_held(&mut self, id: u64) -> bool {
        match self.held.remove(&id) {
            Some(blocks) => {
                self.pool.free_blocks(blocks.iter().rev().copied());
                true
            }
            None => false,
        }
    }

    /// P/D prefill side: whether blocks are held for request `id`.
    pub fn holds(&self, id: u64) -> bool {
        self.held.contains_key(&id)
    }

    /// P/D prefill side: requests whose blocks are held.
    pub fn n_held(&self) -> usize {
        self.held.len()
    }

    /// Moves KV events queued in the block pool right now to `out` (for an
    /// idealised zero-lag publisher; vLLM itself publishes once per step).
    pub fn take_events_now(&mut self, out: &mut EventLog) {
        self.pool.take_events(out);
    }

    /// Runs vLLM's `schedule()`.
    pub fn schedule(&mut self) -> StepPlan {
        let mut plan = StepPlan::default();
        self.schedule_into(&mut plan);
        plan
    }

    /// [`Scheduler::schedule`] into a recycled plan (no allocation per step).
    pub fn schedule_into(&mut self, plan: &mut StepPlan) {
        plan.clear();
        let mut budget = self.cfg.max_num_batched_tokens;

        // 1) RUNNING requests, in admission order.
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let slot = self.running[i];
            let r = self.req(slot);
            if self.cfg.version == VllmVersion::V0_33
                && r.num_output_placeholders > 0
                && r.num_computed_tokens + 2 - r.num_output_placeholders
                    >= r.prompt_len + r.max_tokens
            {
                // [0.33] async: the in-flight steps already reach max_tokens
                // ([0.11] schedules one wasted step instead).
                i += 1;
                continue;
            }
            let mut n = r.num_tokens() + r.num_output_placeholders - r.num_computed_tokens;
            let thr = self.cfg.long_prefill_token_threshold;
            if 0 < thr && thr < n {
                n = thr;
            }
            n = n.min(budget);
            n = n.min(
                self.cfg
                    .max_model_len
                    .saturating_sub(1)
                    .saturating_sub(r.num_computed_tokens),
            );
            if n == 0 {
                i += 1;
                continue;
            }
            let mut allocated = false;
            loop {
                let a = Alloc {
                    n_new: n,
                    has_scheduled_reqs: !plan.scheduled.is_empty(),
                    ..Alloc::default()
                };
                if self.allocate_slots(slot, a) {
                    allocated = true;
                    break;
                }
                let victim = match self.cfg.policy {
                    Policy::Fcfs => self.running.pop().expect("running is non-empty"),
                    Policy::Priority => {
                        let pos = self.priority_victim_pos();
                        let victim = self.running.remove(pos);
                        if let Some(k) = plan.scheduled.iter().position(|&(s, _)| s == victim) {
                            let (_, n_back) = plan.scheduled.remove(k);
                            plan.samples.remove(k);
                            budget += n_back;
                            i -= 1;
                        }
                        victim
                    }
                };
                self.preempt(victim);
                plan.preempted.push(victim);
                if victim == slot {
                    break;
                }
            }
            if !allocated {
                break;
            }
            plan.scheduled.push((slot, n));
            plan.samples.push(false);
            budget -= n;
            i += 1;
        }

        // 2) WAITING requests, only if nothing was preempted.
        if plan.preempted.is_empty() {
            // Requests skipped this call go back to the head of the queue.
            let mut skipped: Vec<ReqSlot> = Vec::new();
            while budget > 0 && !self.waiting.is_empty() {
                if self.running.len() as u32 == self.cfg.max_num_seqs {
                    break;
                }
                let slot = *self.waiting.front().expect("non-empty");
                if self.req(slot).status == ReqStatus::WaitingForRemoteKvs {
                    if !self.take_finished_recving(slot) {
                        self.waiting.pop_front();
                        skipped.push(slot);
                        continue;
                    }
                    self.update_waiting_for_remote_kv(slot);
                }
                let mut hit_blocks = std::mem::take(&mut self.scratch_blocks);
                hit_blocks.clear();
                let (n_hit, looked_up) = if self.req(slot).num_computed_tokens == 0 {
                    (self.get_computed_blocks(slot, &mut hit_blocks), true)
                } else {
                    (0, false)
                };
                let num_tokens = self.req(slot).num_tokens();
                if looked_up
                    && self.cfg.version == VllmVersion::V0_11
                    && self.cfg.enable_prefix_caching
                {
                    // [0.11] every lookup counts, failed admissions included.
                    self.stats.requests += 1;
                    self.stats.queries += num_tokens as u64;
                    self.stats.hits += n_hit as u64;
                }
                // P/D decode side: everything the local cache lacks comes from
                // the prefill pod, asynchronously (`get_num_new_matched_tokens`).
                let load_async = looked_up && self.req(slot).kv_transfer == KvTransfer::Consume;
                let n_external = if load_async { num_tokens - n_hit } else { 0 };
                let num_computed = if looked_up {
                    n_hit + n_external
                } else {
                    self.req(slot).num_computed_tokens
                };
                let mut n = 0;
                if !load_async {
                    n = num_tokens - num_computed;
                    let thr = self.cfg.long_prefill_token_threshold;
                    if 0 < thr && thr < n {
                        n = thr;
                    }
                    if !self.cfg.enable_chunked_prefill && n > budget {
                        self.scratch_blocks = hit_blocks;
                        break;
                    }
                    n = n.min(budget);
                }
                let full_must_fit =
                    self.cfg.version == VllmVersion::V0_33 && self.cfg.scheduler_reserve_full_isl;
                let a = Alloc {
                    n_new: n,
                    hit_blocks: &hit_blocks,
                    n_hit,
                    n_external,
                    delay_cache: load_async,
                    full_sequence_must_fit: full_must_fit,
                    has_scheduled_reqs: !plan.scheduled.is_empty(),
                };
                let ok = self.allocate_slots(slot, a);
                if looked_up {
                    plan.lookups.push(Lookup {
                        slot,
                        num_tokens,
                        hit_tokens: n_hit,
                        admitted: ok,
                    });
                }
                let n_hit_blocks = hit_blocks.len() as u32;
                self.scratch_blocks = hit_blocks;
                if !ok {
                    break;
                }
                self.waiting.pop_front();
                let version = self.cfg.version;
                let caching = self.cfg.enable_prefix_caching;
                let r = self.req_mut(slot);
                if looked_up && version == VllmVersion::V0_33 && caching {
                    // [0.33] counted once, at admission.
                    let preempted = r.num_preemptions > 0;
                    let st = &mut self.stats;
                    if preempted {
                        st.preempted_requests += 1;
                        st.preempted_queries += num_tokens as u64;
                        st.preempted_hits += n_hit as u64;
                    } else {
                        st.requests += 1;
                        st.queries += num_tokens as u64;
                        st.hits += n_hit as u64;
                    }
                }
                let r = self.req_mut(slot);
                if r.num_cached_tokens.is_none() {
                    r.num_cached_tokens = Some(n_hit);
                }
                if load_async {
                    // Holds its blocks while the KV arrives; not running yet.
                    r.status = ReqStatus::WaitingForRemoteKvs;
                    // One pull per request (the connector clears
                    // `do_remote_prefill`): after a preemption it recomputes.
                    r.kv_transfer = KvTransfer::Local;
                    let n_blocks = r.blocks.len() as u32 - n_hit_blocks;
                    plan.kv_loads.push(KvLoad {
                        slot,
                        request_id: r.id,
                        n_blocks,
                    });
                    skipped.push(slot);
                    continue;
                }
                r.status = ReqStatus::Running;
                r.num_computed_tokens = num_computed;
                self.running.push(slot);
                plan.scheduled.push((slot, n));
                plan.samples.push(false);
                budget -= n;
            }
            // vLLM prepends each skipped request to a side queue, then that
            // queue (in its order) to the waiting queue.
            // (In skip order, each pushed to the front: the same result.)
            for s in skipped {
                self.waiting.push_front(s);
            }
        }

        // 3) _update_after_schedule: advance computed tokens optimistically.
        let async_sched = self.cfg.async_scheduling;
        let mut shape = StepShape::default();
        for k in 0..plan.scheduled.len() {
            let (slot, n) = plan.scheduled[k];
            let r = self.req_mut(slot);
            let prior = r.num_computed_tokens;
            let is_decode = prior >= r.prompt_len && n == 1;
            r.num_computed_tokens += n;
            r.num_scheduled_tokens_total += n as u64;
            let samples = r.num_computed_tokens >= r.num_tokens() + r.num_output_placeholders;
            if async_sched && samples {
                r.num_output_placeholders += 1;
            }
            plan.samples[k] = samples;
            if is_decode {
                shape.add_decode(prior as u64);
            } else {
                shape.add_prefill_chunk(n as u64, prior as u64, samples);
            }
        }
        plan.shape = shape;
        self.n_finished_unflushed = 0;
        if self.cfg.version == VllmVersion::V0_11 {
            self.pool.take_events(&mut plan.events);
        }
    }

    /// Runs vLLM's `update_from_output()` for a step planned by `schedule()`:
    /// appends one token to every sampler, finishes length-capped requests,
    /// and drains the KV events.
    pub fn update_from_output(&mut self, plan: &StepPlan) -> StepOutcome {
        let mut out = StepOutcome::default();
        self.update_from_output_into(plan, &mut out);
        out
    }

    /// [`Scheduler::update_from_output`] into a recycled outcome, whose lists
    /// are cleared first.
    pub fn update_from_output_into(&mut self, plan: &StepPlan, out: &mut StepOutcome) {
        out.first_token.clear();
        out.sampled.clear();
        out.finished.clear();
        out.events.clear();
        let bs = self.cfg.block_size;
        for (k, &(slot, _)) in plan.scheduled.iter().enumerate() {
            if !plan.samples[k] {
                continue;
            }
            if self.live(slot).is_none() {
                continue; // finished while this step was in flight
            }
            let r = self.reqs[slot.idx as usize].as_mut().expect("live");
            let status_before = r.status;
            let first = r.num_output_tokens == 0;
            let stopped = r.append_output_token(&self.hasher, bs);
            if self.cfg.async_scheduling {
                r.num_output_placeholders -= 1;
                if status_before == ReqStatus::Running {
                    let n = r.num_computed_tokens - r.num_output_placeholders;
                    self.cache_blocks(slot, n);
                }
            }
            if first {
                out.first_token.push(slot);
            }
            out.sampled.push(slot);
            if stopped {
                if status_before == ReqStatus::Running {
                    self.running.retain(|&s| s != slot);
                } else {
                    self.waiting.retain(|&s| s != slot);
                }
                if self.req(slot).kv_transfer == KvTransfer::Produce {
                    // vLLM `request_finished` → delay_free_blocks: keep them
                    // (already cached) until the decode pod has pulled them.
                    let r = self.req_mut(slot);
                    let blocks = std::mem::take(&mut r.blocks);
                    let id = r.id;
                    self.held.insert(id, blocks);
                } else {
                    self.free_request_blocks(slot);
                }
                let mut req = self.reqs[slot.idx as usize].take().expect("live");
                req.status = ReqStatus::Finished;
                // Finished requests are kept for the report, which never reads
                // their keys: give the memory back while the run goes on.
                req.block_hashes = Vec::new();
                self.free_slots.push(slot.idx);
                self.n_finished_unflushed += 1;
                out.finished.push(Finished { slot, req });
            }
        }
        if self.cfg.version == VllmVersion::V0_33 {
            self.pool.take_events(&mut out.events);
        }
    }

    /// The steady decode step of async scheduling, fused: `plan` is the
    /// step that just ended, in which every running request decoded one
    /// token. When [`Scheduler::update_from_output`] of `plan` followed by
    /// [`Scheduler::schedule`] would finish nobody, admit nobody and give
    /// every running request exactly one more token with enough free blocks,
    /// this does the same work in one pass: it appends the tokens (calling
    /// `on_token` on each request after its append), moves the KV events
    /// the output published to `events`, and plans the next step into
    /// `plan` (whose request list stays the same). Otherwise it changes
    /// nothing and returns false.
    ///
    /// Why: in a long trace almost every step is such a step (a few
    /// requests decoding, nobody waiting), and the general calls spend most
    /// of their time on cases that cannot arise in it.
    pub fn decode_step(
        &mut self,
        plan: &mut StepPlan,
        events: &mut EventLog,
        mut on_token: impl FnMut(&mut PodRequest),
    ) -> bool {
        if !self.decode_step_applies(plan) {
            return false;
        }
        let bs = self.cfg.block_size;
        let caching = self.cfg.enable_prefix_caching;
        let mml = self.cfg.max_model_len;
        // update_from_output: one token each, then the blocks it completes.
        for &slot in &self.running {
            let r = self.reqs[slot.idx as usize].as_mut().expect("live");
            let stopped = r.append_output_token(&self.hasher, bs);
            debug_assert!(!stopped);
            r.num_output_placeholders -= 1;
            on_token(r);
            if caching {
                let n = r.num_computed_tokens - r.num_output_placeholders;
                cache_request_blocks(&mut self.pool, r, n, bs);
            }
        }
        self.pool.take_events(events);
        // schedule: one more token each, a new block where one is needed.
        let mut shape = StepShape::default();
        for &slot in &self.running {
            let r = self.reqs[slot.idx as usize].as_mut().expect("live");
            let prior = r.num_computed_tokens;
            let need_slot = (prior.min(mml) + 1).min(mml);
            let n_more = blocks_short(need_slot, r.blocks.len(), bs);
            if n_more > 0 {
                self.pool.get_new_blocks(n_more, &mut r.blocks);
            }
            if caching {
                let n_cache = (prior.min(mml) + 1).min(r.num_tokens());
                cache_request_blocks(&mut self.pool, r, n_cache, bs);
            }
            r.num_computed_tokens += 1;
            r.num_scheduled_tokens_total += 1;
            r.num_output_placeholders += 1;
            shape.add_decode(prior as u64);
        }
        plan.shape = shape;
        self.n_finished_unflushed = 0;
        true
    }

    /// Whether [`Scheduler::decode_step`] reproduces the general calls
    /// after `plan` (read only: the checks come before any change).
    fn decode_step_applies(&self, plan: &StepPlan) -> bool {
        let cfg = &self.cfg;
        if cfg.version != VllmVersion::V0_33
            || !cfg.async_scheduling
            || !self.waiting.is_empty()
            || !self.finished_recving.is_empty()
            || self.running.is_empty()
            || self.running.len() > cfg.max_num_batched_tokens as usize
            || plan.scheduled.len() != self.running.len()
            || plan.shape.n_prefill_chunks != 0
            || !plan.preempted.is_empty()
            || !plan.kv_loads.is_empty()
        {
            return false;
        }
        let mml = cfg.max_model_len;
        let mut n_new_blocks = 0u32;
        for (k, (&(slot, n), &slot_now)) in plan.scheduled.iter().zip(&self.running).enumerate() {
            if slot != slot_now || n != 1 || !plan.samples[k] {
                return false;
            }
            let r = self.reqs[slot.idx as usize]
                .as_ref()
                .expect("running is live");
            // After this step's token: not finished, one placeholder fewer.
            let out = r.num_output_tokens + 1;
            if out >= r.max_tokens || r.num_output_placeholders == 0 || r.blocks.is_empty() {
                return false;
            }
            let p = r.num_output_placeholders - 1;
            let computed = r.num_computed_tokens;
            // The next schedule() would skip it, or give it other than one
            // token (a prefill chunk, or the max_model_len cap).
            if p > 0 && computed as u64 + 2 >= (r.prompt_len + r.max_tokens) as u64 + p as u64 {
                return false;
            }
            if (r.prompt_len + out + p) as u64 != computed as u64 + 1
                || computed < r.prompt_len
                || mml.saturating_sub(1).saturating_sub(computed) == 0
            {
                return false;
            }
            let need_slot = (computed.min(mml) + 1).min(mml);
            n_new_blocks += blocks_short(need_slot, r.blocks.len(), cfg.block_size);
        }
        n_new_blocks <= self.pool.n_free()
    }

    fn priority_victim_pos(&self) -> usize {
        let mut best = 0;
        for (k, &s) in self.running.iter().enumerate() {
            let (r, b) = (self.req(s), self.req(self.running[best]));
            if (r.priority, r.arrival_key) >= (b.priority, b.arrival_key) {
                best = k;
            }
        }
        best
    }

    fn preempt(&mut self, slot: ReqSlot) {
        self.free_request_blocks(slot);
        let r = self.req_mut(slot);
        r.status = ReqStatus::Preempted;
        r.num_computed_tokens = 0;
        r.num_preemptions += 1;
        self.n_preemptions += 1;
        self.waiting.push_front(slot);
    }

    fn free_request_blocks(&mut self, slot: ReqSlot) {
        let r = self.req_mut(slot);
        let blocks = std::mem::take(&mut r.blocks);
        r.num_cached_blocks = 0;
        self.pool.free_blocks(blocks.iter().rev().copied());
    }

    /// Longest cached prefix, capped at `num_tokens - 1` and block aligned.
    fn get_computed_blocks(&mut self, slot: ReqSlot, out: &mut Vec<u32>) -> u32 {
        if !self.cfg.enable_prefix_caching {
            return 0;
        }
        let r = self.req(slot);
        let max_blocks = ((r.num_tokens() - 1) / self.cfg.block_size) as usize;
        for &h in r.block_hashes.iter().take(max_blocks) {
            match self.pool.get_cached_block(h) {
                Some(b) => out.push(b),
                None => break,
            }
        }
        out.len() as u32 * self.cfg.block_size
    }

    fn blocks_to_allocate(&self, r: &PodRequest, num_tokens: u32, new_computed: &[u32]) -> u32 {
        let held = new_computed.len() + r.blocks.len();
        let new = blocks_short(num_tokens, held, self.cfg.block_size);
        let evictable = new_computed
            .iter()
            .filter(|&&b| self.pool.ref_cnt(b) == 0)
            .count() as u32;
        new + evictable
    }

    /// vLLM's `allocate_slots` for `n_new` tokens after `n_hit` prefix-hit
    /// tokens in `hit_blocks`. Returns false (changing nothing) if the blocks
    /// do not fit.
    fn allocate_slots(&mut self, slot: ReqSlot, a: Alloc<'_>) -> bool {
        let Alloc {
            n_new,
            hit_blocks,
            n_hit,
            n_external,
            delay_cache,
            full_sequence_must_fit,
            has_scheduled_reqs,
        } = a;
        let r = self.req(slot);
        let local_computed = r.num_computed_tokens + n_hit;
        let total_computed = (local_computed + n_external).min(self.cfg.max_model_len);
        let watermark = if has_scheduled_reqs
            && matches!(r.status, ReqStatus::Waiting | ReqStatus::Preempted)
            && self.cfg.version == VllmVersion::V0_33
        {
            self.watermark_blocks
        } else {
            0
        };
        if full_sequence_must_fit {
            let full = r.num_tokens().min(self.cfg.max_model_len);
            if self.blocks_to_allocate(r, full, hit_blocks) + watermark > self.pool.n_free() {
                return false;
            }
        }
        let need_slot = (total_computed + n_new).min(self.cfg.max_model_len);
        if self.blocks_to_allocate(r, need_slot, hit_blocks) + watermark > self.pool.n_free() {
            return false;
        }
        let first_alloc = r.blocks.is_empty();
        if !hit_blocks.is_empty() {
            self.pool.touch(hit_blocks);
            let r = self.req_mut(slot);
            r.blocks.extend_from_slice(hit_blocks);
        }
        if first_alloc {
            self.req_mut(slot).num_cached_blocks = hit_blocks.len() as u32;
        }
        let n_more = blocks_short(need_slot, self.req(slot).blocks.len(), self.cfg.block_size);
        if n_more > 0 {
            let r = self.reqs[slot.idx as usize]
                .as_mut()
                .expect("live request slot");
            self.pool.get_new_blocks(n_more, &mut r.blocks);
        }
        if self.cfg.enable_prefix_caching && !delay_cache {
            let r = self.req(slot);
            let n_cache = (total_computed + n_new).min(r.num_tokens());
            self.cache_blocks(slot, n_cache);
        }
        true
    }

    fn take_finished_recving(&mut self, slot: ReqSlot) -> bool {
        match self.finished_recving.iter().position(|&s| s == slot) {
            Some(i) => {
                self.finished_recving.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// vLLM's `_update_waiting_for_remote_kv`: the pulled blocks become
    /// cached, and the last prompt token is left to recompute.
    fn update_waiting_for_remote_kv(&mut self, slot: ReqSlot) {
        let bs = self.cfg.block_size;
        let r = self.req(slot);
        let mut n = (r.blocks.len() as u32 * bs).min(r.num_tokens());
        if n == r.num_tokens() {
            n -= 1;
        }
        self.cache_blocks(slot, n);
        let r = self.req_mut(slot);
        r.num_computed_tokens = n;
        r.status = if r.num_preemptions > 0 {
            ReqStatus::Preempted
        } else {
            ReqStatus::Waiting
        };
    }

    /// Caches the request's blocks that are full within its first `n_tokens` tokens.
    fn cache_blocks(&mut self, slot: ReqSlot, n_tokens: u32) {
        if !self.cfg.enable_prefix_caching {
            return;
        }
        let r = self.reqs[slot.idx as usize].as_mut().expect("live");
        cache_request_blocks(&mut self.pool, r, n_tokens, self.cfg.block_size);
    }

    /// Checks the pool's invariants and that every running request's blocks
    /// are referenced. For tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.pool.check_invariants()?;
        for &s in &self.running {
            for &b in &self.req(s).blocks {
                if self.pool.ref_cnt(b) == 0 {
                    return Err(format!("running request {:?} holds free block {b}", s));
                }
            }
        }
        Ok(())
    }
}

/// Blocks missing from a table of `n_blocks` blocks of `bs` tokens to hold
/// `n_tokens` tokens (a decode step usually needs none: no division then).
fn blocks_short(n_tokens: u32, n_blocks: usize, bs: u32) -> u32 {
    let n_blocks = n_blocks as u32;
    if n_tokens <= n_blocks * bs {
        0
    } else {
        n_tokens.div_ceil(bs) - n_blocks
    }
}

/// Caches `r`'s blocks that are full within its first `n_tokens` tokens.
#[inline(always)]
fn cache_request_blocks(pool: &mut BlockPool, r: &mut PodRequest, n_tokens: u32, bs: u32) {
    // Most calls (a decode token each) complete no block: decided inline,
    // with no division.
    if n_tokens >= (r.num_cached_blocks + 1) * bs {
        cache_full_request_blocks(pool, r, n_tokens, bs);
    }
}

#[inline(never)]
fn cache_full_request_blocks(pool: &mut BlockPool, r: &mut PodRequest, n_tokens: u32, bs: u32) {
    let n_cached = r.num_cached_blocks;
    let n_full = (n_tokens / bs).min(r.block_hashes.len() as u32);
    if n_cached >= n_full {
        return;
    }
    let parent = if n_cached == 0 {
        None
    } else {
        Some(r.block_hashes[n_cached as usize - 1])
    };
    let range = n_cached as usize..n_full as usize;
    pool.cache_full_blocks(&r.blocks[range.clone()], &r.block_hashes[range], parent, bs);
    r.num_cached_blocks = n_full;
}
