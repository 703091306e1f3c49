//! `kvsim conformance vllm`: runs a workload recorded with vLLM's own V1
//! scheduler through [`crate::pod::scheduler::Scheduler`] with one scheduler
//! step per step and no timing, writing the oracle's output schema
//! (`tests/data/conformance/vllm/README.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compat::VllmVersion;
use crate::kv::hash::{HashAlgo, HashError, VllmBlockHasher};
use crate::kv::hasher::BlockHasher;
use crate::pod::request::{OutputTokens, PodRequest, PromptKeys};
use crate::pod::scheduler::{Policy, ReqSlot, Scheduler, SchedulerConfig, StepOutcome, StepPlan};
use crate::trace::request::Prompt;

/// A workload file (`NAME.json`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Case name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Tokens per block.
    pub block_size: u32,
    /// vLLM's `num_gpu_blocks` (null block included).
    pub num_gpu_blocks: u32,
    /// Token budget per step.
    pub max_num_batched_tokens: u32,
    /// Most running requests.
    pub max_num_seqs: u32,
    /// Prefix caching on or off.
    pub enable_prefix_caching: bool,
    /// `prefix_caching_hash_algo`.
    pub hash_algo: String,
    /// Token every sampler emits.
    pub sample_token_id: u32,
    /// PYTHONHASHSEED, if the case sets one.
    #[serde(default)]
    pub python_hash_seed: Option<String>,
    /// Default max(8192, longest prompt + max_tokens + 1).
    #[serde(default)]
    pub max_model_len: Option<u32>,
    /// Async scheduling (overridden by `--async`).
    #[serde(default)]
    pub async_scheduling: Option<bool>,
    /// Default 0.
    #[serde(default)]
    pub long_prefill_token_threshold: Option<u32>,
    /// Default 0.0.
    #[serde(default)]
    pub watermark: Option<f64>,
    /// Default true in 0.33.
    #[serde(default)]
    pub scheduler_reserve_full_isl: Option<bool>,
    /// `fcfs` or `priority`.
    #[serde(default)]
    pub policy: Option<String>,
    /// Default true.
    #[serde(default)]
    pub enable_chunked_prefill: Option<bool>,
    /// The requests.
    pub requests: Vec<WorkloadRequest>,
}

/// One request of a workload.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRequest {
    /// Request id.
    pub id: String,
    /// Step at which it is added.
    pub arrival_step: u64,
    /// Prompt.
    pub prompt_token_ids: Vec<u32>,
    /// Output length.
    pub max_tokens: u32,
    /// Priority (priority policy).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Cache salt.
    #[serde(default)]
    pub cache_salt: Option<String>,
}

/// How to run a workload.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// `AsyncScheduler` with a batch queue of 2 instead of `Scheduler`.
    pub async_scheduling: bool,
    /// vLLM release.
    pub version: VllmVersion,
    /// PYTHONHASHSEED (overrides the workload's).
    pub python_hash_seed: Option<String>,
}

/// Output totals (a subset of the oracle's).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Prometheus `vllm:prefix_cache_queries`.
    pub prefix_cache_queries: u64,
    /// Prometheus `vllm:prefix_cache_hits`.
    pub prefix_cache_hits: u64,
    /// Lookups counted.
    pub prefix_cache_requests: u64,
    /// [0.33] preempted re-admission queries.
    pub preempted_queries: u64,
    /// [0.33] preempted re-admission hits.
    pub preempted_hits: u64,
    /// Preemptions.
    pub num_preemptions: u64,
    /// BlockStored events.
    pub num_block_stored_events: u64,
    /// Blocks in BlockStored events.
    pub num_blocks_stored: u64,
    /// BlockRemoved events.
    pub num_block_removed_events: u64,
    /// Blocks in BlockRemoved events.
    pub num_blocks_removed: u64,
    /// Steps recorded (idle ones excluded) plus idle ones: last step + 1.
    pub num_steps: u64,
}

/// Per-request output.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestOut {
    /// Hit tokens at first admission.
    pub prefix_hit_tokens: u32,
    /// Step of first admission.
    pub first_scheduled_step: Option<u64>,
    /// Step whose output carried the first token.
    pub first_token_step: Option<u64>,
    /// Step whose output finished it.
    pub finish_step: Option<u64>,
    /// Times preempted.
    pub num_preemptions: u32,
    /// Tokens scheduled, recompute included.
    pub num_scheduled_tokens_total: u64,
}

/// One KV event as recorded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventOut {
    /// `BlockStored`, `BlockRemoved` or `AllBlocksCleared`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 64-bit event hashes.
    pub block_hashes: Vec<u64>,
}

/// One non-idle step.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StepOut {
    /// Absolute step number.
    pub step: u64,
    /// `[[id, tokens], ...]`; absent when nothing was scheduled this iteration (async drain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<Vec<(String, u32)>>,
    /// Preempted ids.
    #[serde(default)]
    pub preempted: Vec<String>,
    /// Free blocks at the end of the step (cached ones with ref count 0 included).
    pub num_free_blocks: u32,
    /// Events published after this step.
    #[serde(default)]
    pub kv_events: Vec<EventOut>,
}

/// The output document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Output {
    /// Who produced it.
    pub oracle: String,
    /// Case name.
    pub workload: String,
    /// Totals.
    pub totals: Totals,
    /// Per request, by id.
    pub requests: BTreeMap<String, RequestOut>,
    /// Steps.
    pub steps: Vec<StepOut>,
}

/// A workload that cannot be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConformanceError {
    /// A field has a value kvsim does not accept.
    #[error("field \"{field}\": {problem}")]
    BadField {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn bad(field: &'static str, problem: impl Into<String>) -> ConformanceError {
    ConformanceError::BadField {
        field,
        problem: problem.into(),
    }
}

/// Runs `w` and returns the output document.
pub fn run(w: &Workload, opts: &RunOptions) -> Result<Output, ConformanceError> {
    if w.block_size == 0 {
        return Err(bad("block_size", "must be at least 1"));
    }
    if w.num_gpu_blocks < 2 {
        return Err(bad(
            "num_gpu_blocks",
            format!(
                "{} leaves no usable block (block 0 is the null block)",
                w.num_gpu_blocks
            ),
        ));
    }
    let algo: HashAlgo = w
        .hash_algo
        .parse()
        .map_err(|e| bad("hash_algo", format!("{e}")))?;
    let seed = opts
        .python_hash_seed
        .clone()
        .or_else(|| w.python_hash_seed.clone());
    let vh = VllmBlockHasher::new(algo, opts.version, seed.as_deref()).map_err(|e| match e {
        // Name the knobs this command has, not the scenario's per-pod seeds.
        HashError::NeedsSeed { .. } => bad(
            "python_hash_seed",
            format!(
                "vLLM {} with {} draws NONE_HASH from os.urandom unless PYTHONHASHSEED is set: \
                 give --python-hash-seed S (the seed the case was recorded with) or python_hash_seed in the case",
                opts.version, w.hash_algo
            ),
        ),
        e => bad("hash_algo", format!("{e}")),
    })?;
    let hasher = BlockHasher::Vllm(Box::new(vh));
    let policy = match w.policy.as_deref().unwrap_or("fcfs") {
        "fcfs" => Policy::Fcfs,
        "priority" => Policy::Priority,
        other => {
            return Err(bad(
                "policy",
                format!("unknown policy \"{other}\" (valid: fcfs, priority)"),
            ))
        }
    };
    let longest = w
        .requests
        .iter()
        .map(|r| r.prompt_token_ids.len() as u32 + r.max_tokens + 1)
        .max()
        .unwrap_or(0);
    let cfg = SchedulerConfig {
        block_size: w.block_size,
        num_gpu_blocks: w.num_gpu_blocks,
        max_num_batched_tokens: w.max_num_batched_tokens,
        max_num_seqs: w.max_num_seqs,
        max_model_len: w.max_model_len.unwrap_or(8192.max(longest)),
        enable_prefix_caching: w.enable_prefix_caching,
        enable_chunked_prefill: w.enable_chunked_prefill.unwrap_or(true),
        long_prefill_token_threshold: w.long_prefill_token_threshold.unwrap_or(0),
        watermark: w.watermark.unwrap_or(0.0),
        scheduler_reserve_full_isl: w.scheduler_reserve_full_isl.unwrap_or(true),
        policy,
        async_scheduling: opts.async_scheduling,
        version: opts.version,
        emit_kv_events: true,
    };
    for (i, r) in w.requests.iter().enumerate() {
        if r.prompt_token_ids.is_empty() {
            return Err(bad(
                "prompt_token_ids",
                format!("request {} (#{i}) has an empty prompt", r.id),
            ));
        }
        if r.max_tokens == 0 {
            return Err(bad(
                "max_tokens",
                format!("request {} (#{i}) has max_tokens 0", r.id),
            ));
        }
    }
    let mut sched = Scheduler::new(cfg, hasher);
    let mut rec = Recorder::default();
    let mut arrivals: Vec<usize> = (0..w.requests.len()).collect();
    arrivals.sort_by_key(|&i| (w.requests[i].arrival_step, i));
    let mut next_arrival = 0;
    let mut in_flight: std::collections::VecDeque<(u64, StepPlan)> = Default::default();
    let mut step: u64 = 0;
    loop {
        while next_arrival < arrivals.len()
            && w.requests[arrivals[next_arrival]].arrival_step <= step
        {
            let i = arrivals[next_arrival];
            let r = &w.requests[i];
            let pr = PodRequest::new(
                i as u64,
                Prompt::Tokens(r.prompt_token_ids.clone()),
                r.cache_salt.clone(),
                OutputTokens::Constant(w.sample_token_id),
                r.max_tokens,
                r.priority.unwrap_or(0),
                r.arrival_step,
                PromptKeys::Hash(sched.hasher()),
                w.block_size,
            );
            let slot = sched.add_request(pr);
            rec.slot_to_req.insert(slot, i);
            rec.reqs.entry(r.id.clone()).or_default();
            next_arrival += 1;
        }
        let all_arrived = next_arrival == arrivals.len();
        if !opts.async_scheduling {
            if sched.has_requests() {
                let plan = sched.schedule();
                let outcome = sched.update_from_output(&plan);
                rec.step(w, step, Some(&plan), Some(&outcome), &sched);
            } else if all_arrived {
                break;
            }
        } else {
            let mut plan_now = None;
            if sched.has_requests() {
                let plan = sched.schedule();
                let early = plan.total_tokens() > 0 && in_flight.len() + 1 < 2;
                plan_now = Some(plan.clone());
                in_flight.push_back((step, plan));
                if early {
                    rec.step(w, step, plan_now.as_ref(), None, &sched);
                    step += 1;
                    continue;
                }
            } else if in_flight.is_empty() {
                if all_arrived {
                    break;
                }
                step += 1;
                continue;
            }
            let (_, plan) = in_flight.pop_front().expect("non-empty");
            let outcome = sched.update_from_output(&plan);
            rec.step(w, step, plan_now.as_ref(), Some(&outcome), &sched);
        }
        step += 1;
    }
    let st = sched.prefix_cache_stats();
    rec.totals.prefix_cache_queries = st.queries;
    rec.totals.prefix_cache_hits = st.hits;
    rec.totals.prefix_cache_requests = st.requests;
    rec.totals.preempted_queries = st.preempted_queries;
    rec.totals.preempted_hits = st.preempted_hits;
    rec.totals.num_preemptions = sched.n_preemptions();
    rec.totals.num_steps = step;
    Ok(Output {
        oracle: format!("kvsim {} pod model", env!("CARGO_PKG_VERSION")),
        workload: w.name.clone(),
        totals: rec.totals,
        requests: rec.reqs,
        steps: rec.steps,
    })
}

#[derive(Default)]
struct Recorder {
    slot_to_req: BTreeMap<ReqSlot, usize>,
    reqs: BTreeMap<String, RequestOut>,
    steps: Vec<StepOut>,
    totals: Totals,
}

impl Recorder {
    fn step(
        &mut self,
        w: &Workload,
        step: u64,
        plan: Option<&StepPlan>,
        outcome: Option<&StepOutcome>,
        sched: &Scheduler,
    ) {
        let name = |slot_to_req: &BTreeMap<ReqSlot, usize>, s: ReqSlot| {
            w.requests[slot_to_req[&s]].id.clone()
        };
        let mut out = StepOut {
            step,
            num_free_blocks: sched.pool().n_free(),
            ..Default::default()
        };
        if let Some(plan) = plan {
            out.scheduled = Some(
                plan.scheduled
                    .iter()
                    .map(|&(s, n)| (name(&self.slot_to_req, s), n))
                    .collect(),
            );
            // vLLM reports preempted ids as a set; the oracle lists them sorted.
            out.preempted = plan
                .preempted
                .iter()
                .map(|&s| name(&self.slot_to_req, s))
                .collect();
            out.preempted.sort();
            for l in plan.lookups.iter().filter(|l| l.admitted) {
                let r = self
                    .reqs
                    .get_mut(&name(&self.slot_to_req, l.slot))
                    .expect("known");
                if r.first_scheduled_step.is_none() {
                    r.prefix_hit_tokens = l.hit_tokens;
                }
            }
            for &(s, n) in &plan.scheduled {
                let r = self
                    .reqs
                    .get_mut(&name(&self.slot_to_req, s))
                    .expect("known");
                if r.first_scheduled_step.is_none() {
                    r.first_scheduled_step = Some(step);
                }
                r.num_scheduled_tokens_total += n as u64;
            }
            for &s in &plan.preempted {
                self.reqs
                    .get_mut(&name(&self.slot_to_req, s))
                    .expect("known")
                    .num_preemptions += 1;
            }
        }
        let logs = plan.map(|p| &p.events).into_iter();
        let events: Vec<_> = logs
            .chain(outcome.map(|o| &o.events))
            .flat_map(|log| log.to_events())
            .collect();
        for e in &events {
            let hashes = e.block_hashes().to_vec();
            match e.type_name() {
                "BlockStored" => {
                    self.totals.num_block_stored_events += 1;
                    self.totals.num_blocks_stored += hashes.len() as u64;
                }
                "BlockRemoved" => {
                    self.totals.num_block_removed_events += 1;
                    self.totals.num_blocks_removed += hashes.len() as u64;
                }
                _ => {}
            }
            out.kv_events.push(EventOut {
                kind: e.type_name().to_string(),
                block_hashes: hashes,
            });
        }
        if let Some(o) = outcome {
            for &s in &o.first_token {
                self.reqs
                    .get_mut(&name(&self.slot_to_req, s))
                    .expect("known")
                    .first_token_step = Some(step);
            }
            for f in &o.finished {
                let id = name(&self.slot_to_req, f.slot);
                self.reqs.get_mut(&id).expect("known").finish_step = Some(step);
                self.slot_to_req.remove(&f.slot);
            }
        }
        self.steps.push(out);
    }
}
