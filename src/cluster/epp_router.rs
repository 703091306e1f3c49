//! The EPP as the simulator's router: builds point-in-time views for
//! [`crate::epp`] from scraped pod metrics and the lagging KV-block index,
//! runs a scheduling cycle, and keeps the decision log.

use std::collections::HashMap;
use std::sync::Arc;

use super::key_spaces::{IndexKeys, KeySpaces, PerPodKeys};
use super::lane::MetricsSnapshot;
use crate::engine::rng::StreamRng;
use crate::epp::config::LoadedConfig;
use crate::epp::plugin::{KvBlockLookup, PreRequestContext, SchedulingContext, SpeculativeIndex};
use crate::epp::scheduler::{Scheduler as EppScheduler, SchedulingResult};
use crate::epp::view::{EndpointId, EndpointView, PromptChunks, RequestView, TokenPrompt};
use crate::index::key_ops::KeyBatch;
use crate::index::{IndexConfig, KvIndex, ModelId};
use crate::kv::hasher::prompt_token_at;
use crate::pod::engine::Pod;
use crate::trace::request::{Prompt, TraceRequest};

/// Metrics older than this make a pod no candidate (GIE's datastore, 2 s).
const METRICS_STALENESS_NS: u64 = 2_000_000_000;

/// One candidate's line in the decision log.
#[derive(Clone, Debug)]
pub struct DecisionRow {
    /// Request id.
    pub request_id: u64,
    /// Routing time, ms.
    pub t_ms: f64,
    /// Profile that scored this candidate.
    pub profile: Arc<str>,
    /// Candidate pod's name.
    pub pod: String,
    /// Whether the profile picked it.
    pub picked: bool,
    /// Σ weighted scores.
    pub total: f64,
    /// `(scorer name, raw, weighted)`; raw is NaN when the scorer gave none.
    pub scores: Vec<(Arc<str>, f64, f64)>,
    /// Leading blocks of the request the index attributes to the pod.
    pub index_prefix_blocks: u32,
    /// Leading blocks of the request actually cached on the pod at routing time.
    pub pod_prefix_blocks: u32,
}

/// Where the precise-prefix scorer's lookups are answered from.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexSource {
    /// The kv-cache manager's index, fed by the pods' lagging KV events.
    #[default]
    Events,
    /// The pods' block pools, read at routing time: a perfect, lag-free index.
    Oracle,
}

/// How the router's index is fed and keyed.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexOptions {
    /// Events or the pods' caches.
    pub source: IndexSource,
    /// Request or engine keys.
    pub keys: IndexKeys,
}

/// Answers lookups from the pods' caches directly.
struct OracleLookup<'a> {
    pods: &'a [Pod],
}

impl crate::epp::plugin::KvBlockLookup for OracleLookup<'_> {
    fn lookup(
        &mut self,
        _model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        _now_ns: u64,
        out: &mut crate::epp::plugin::KeyEntries,
    ) {
        out.clear();
        let all: Vec<EndpointId> = (0..self.pods.len() as u32).map(EndpointId).collect();
        let candidates = if pods.is_empty() { &all[..] } else { pods };
        for &k in keys {
            let entries: Vec<crate::epp::plugin::PodEntry> = candidates
                .iter()
                .filter(|ep| {
                    self.pods[ep.0 as usize]
                        .scheduler()
                        .pool()
                        .get_cached_block(k)
                        .is_some()
                })
                .map(|&pod| crate::epp::plugin::PodEntry {
                    pod,
                    tier: crate::epp::plugin::Tier::Gpu,
                    speculative: false,
                })
                .collect();
            if entries.is_empty() {
                break;
            }
            out.push_key(entries);
        }
    }
}

/// The EPP router and what it knows.
pub struct EppRouter {
    source: IndexSource,
    sched: EppScheduler,
    index: Option<KvIndex>,
    /// The model's id in `index`.
    index_model: Option<ModelId>,
    model: String,
    /// The last prompt's keys, as the router and as each pod hashes them.
    spaces: KeySpaces,
    rng: StreamRng,
    scraped: Vec<MetricsSnapshot>,
    in_flight: Vec<(u32, u64)>,
    names: Vec<String>,
    roles: Vec<&'static str>,
    log: Option<Vec<DecisionRow>>,
    n_decisions: u64,
    n_stale: u64,
    warnings: Vec<String>,
    /// Σ and count of the approximate index's matched / total blocks of the
    /// pick (`prefix_indexer_hit_ratio`).
    indexer_hit_ratio: (f64, u64),
    /// Session id → the pod its last request went to: the `x-session-token`
    /// the response carried back, which the client sends on its next turn.
    session_pod: HashMap<u64, u32>,
}

/// A prompt as the approximate prefix scorer sees it: chunks of token ids.
struct SimPrompt<'a>(&'a Prompt);

impl PromptChunks for SimPrompt<'_> {
    fn chunk_hashes(
        &self,
        block_tokens: u32,
        max_blocks: usize,
        include_partial: bool,
        out: &mut Vec<u64>,
    ) {
        match self.0 {
            Prompt::Tokens(t) => {
                TokenPrompt(t).chunk_hashes(block_tokens, max_blocks, include_partial, out)
            }
            Prompt::HashIds { .. } => {
                // Materialise only the tokens the scorer can look at.
                let n = self.0.n_tokens().min(
                    block_tokens
                        .max(1)
                        .saturating_mul(max_blocks.min(u32::MAX as usize) as u32),
                );
                let tokens: Vec<u32> = (0..n).map(|p| prompt_token_at(self.0, p)).collect();
                TokenPrompt(&tokens).chunk_hashes(block_tokens, max_blocks, include_partial, out)
            }
        }
    }
}

impl EppRouter {
    /// A router from a loaded EPP config over `pods`.
    pub fn new(
        cfg: LoadedConfig,
        pods: &[Pod],
        model: String,
        rng: StreamRng,
        decision_log: bool,
        options: IndexOptions,
    ) -> EppRouter {
        let hash_seed = cfg
            .precise_prefix
            .first()
            .map_or("", |(_, s)| s.hash_seed.as_str())
            .to_string();
        let (mut index, index_block_size) = match cfg.precise_prefix.first() {
            Some((pc, settings)) => {
                let icfg = IndexConfig {
                    size: settings.size as usize,
                    pod_cache_size: settings.pod_cache_size as usize,
                    ..IndexConfig::default()
                };
                // Without speculative entries the index holds at most the
                // pods' cached blocks: bound it so the LRU bookkeeping can go.
                let ix = match pc.speculative_ttl_ns {
                    None => {
                        let bound: u64 = pods
                            .iter()
                            .map(|p| p.scheduler().config().num_gpu_blocks as u64)
                            .sum();
                        KvIndex::with_key_bound(icfg, bound, pods.len())
                    }
                    Some(_) => KvIndex::new(icfg),
                };
                (Some(ix), pc.block_size_tokens)
            }
            None => (None, 16),
        };
        let index_model = index.as_mut().map(|ix| ix.intern_model(&model));
        let spaces = KeySpaces::new(options.keys, pods, index_block_size, &hash_seed);
        let mut warnings = cfg.warnings;
        let unlike = spaces.pods_hashing_unlike_router();
        if options.keys == IndexKeys::Engine && index.is_some() && !unlike.is_empty() {
            let names: Vec<&str> = unlike
                .iter()
                .map(|&p| pods[p as usize].name.as_str())
                .collect();
            warnings.push(format!(
                "index_keys: engine: {} of {} pods ({}) hash blocks unlike the router \
                 (sha256_cbor, hashSeed \"{hash_seed}\"), so the precise scorer never finds \
                 their blocks; give them prefix_caching_hash_algo: sha256_cbor and \
                 python_hash_seed: \"{hash_seed}\", or use index_keys: request",
                unlike.len(),
                pods.len(),
                names.join(", ")
            ));
        }
        let other_size: Vec<&str> = pods
            .iter()
            .filter(|p| index.is_some() && p.scheduler().config().block_size != index_block_size)
            .map(|p| p.name.as_str())
            .collect();
        if !other_size.is_empty() {
            warnings.push(format!(
                "precise-prefix-cache-scorer: tokenProcessorConfig.blockSize {index_block_size} \
                 differs from the vLLM block_size of {} of {} pods ({}), so the scorer never \
                 finds their blocks; set it to the pods' block size",
                other_size.len(),
                pods.len(),
                other_size.join(", ")
            ));
        }
        EppRouter {
            source: options.source,
            sched: cfg.scheduler,
            index,
            index_model,
            model,
            spaces,
            rng,
            scraped: vec![MetricsSnapshot::default(); pods.len()],
            in_flight: vec![(0, 0); pods.len()],
            names: pods.iter().map(|p| p.name.clone()).collect(),
            roles: pods.iter().map(|p| p.role.as_str()).collect(),
            log: decision_log.then(Vec::new),
            n_decisions: 0,
            n_stale: 0,
            warnings,
            session_pod: HashMap::new(),
            indexer_hit_ratio: (0.0, 0),
        }
    }

    /// Whether a precise-prefix index consumes KV events.
    pub fn has_index(&self) -> bool {
        self.index.is_some() && self.source == IndexSource::Events
    }

    /// Whether routing reads the pods' caches as they are: the oracle index,
    /// or the decision log's record of each candidate's cached prefix.
    pub fn reads_pod_caches(&self) -> bool {
        self.log.is_some() || (self.index.is_some() && self.source == IndexSource::Oracle)
    }

    /// Non-fatal configuration notes.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What the last metrics scrape (`refresh_metrics_interval`) saw of `pod`.
    pub fn observe_metrics(&mut self, pod: usize, m: MetricsSnapshot) {
        self.scraped[pod] = m;
    }

    /// Applies a batch of a pod's KV events to the index.
    pub fn apply_events(&mut self, pod: u32, batch: KeyBatch<'_>) {
        if let (Some(ix), Some(m)) = (&mut self.index, self.index_model) {
            ix.apply_key_batch(EndpointId(pod), m, batch);
        }
    }

    /// Picks the pod for `req` at `now_ns` and, when the profile handler
    /// chose P/D, the prefill pod; `None` when no endpoint qualifies.
    pub fn route(
        &mut self,
        req: &TraceRequest,
        pods: &[Pod],
        now_ns: u64,
    ) -> Option<(u32, Option<u32>)> {
        // Only the precise-prefix scorer and the decision log read the keys.
        if self.index.is_some() || self.log.is_some() {
            self.spaces.hash(&req.prompt, req.cache_salt.as_deref());
        } else {
            self.spaces.clear();
        }
        // The datastore offers only pods with fresh metrics as candidates.
        let views: Vec<EndpointView> = (0..pods.len())
            .filter(|&i| now_ns.saturating_sub(self.scraped[i].at_ns) <= METRICS_STALENESS_NS)
            .map(|i| {
                let s = self.scraped[i];
                let sch = pods[i].scheduler();
                EndpointView {
                    role: Some(self.roles[i]),
                    waiting_queue_len: s.waiting,
                    running_requests: s.running,
                    kv_usage: s.kv_usage,
                    num_gpu_blocks: Some(sch.config().num_gpu_blocks),
                    block_size_tokens: Some(sch.config().block_size),
                    in_flight_requests: self.in_flight[i].0,
                    in_flight_tokens: self.in_flight[i].1,
                    metrics_age_ns: now_ns.saturating_sub(s.at_ns),
                    ..EndpointView::new(EndpointId(i as u32), &self.names[i])
                }
            })
            .collect();
        let session_token = req
            .session_id
            .and_then(|s| self.session_pod.get(&s))
            .map(|&p| self.names[p as usize].as_str());
        let prompt = SimPrompt(&req.prompt);
        let rv = RequestView {
            id: req.id,
            model: &self.model,
            n_prompt_tokens: req.prompt.n_tokens(),
            block_keys: self.spaces.request_keys(),
            prompt: &prompt,
            session_token,
            cache_salt: req.cache_salt.as_deref(),
        };
        let res = {
            let mut oracle = OracleLookup { pods };
            let spaces = &self.spaces;
            let mut per_pod_index;
            let mut per_pod_oracle;
            let kv_index: Option<&mut dyn KvBlockLookup> = match (self.source, &mut self.index) {
                (_, None) => None,
                (IndexSource::Events, Some(ix)) if spaces.per_pod() => {
                    per_pod_index = PerPodKeys { inner: ix, spaces };
                    Some(&mut per_pod_index)
                }
                (IndexSource::Events, Some(ix)) => Some(ix),
                // The pods' caches hold the pods' own keys.
                (IndexSource::Oracle, Some(_)) if !spaces.pods_hash_alike() => {
                    per_pod_oracle = PerPodKeys {
                        inner: &mut oracle,
                        spaces,
                    };
                    Some(&mut per_pod_oracle)
                }
                (IndexSource::Oracle, Some(_)) => Some(&mut oracle),
            };
            let mut ctx = SchedulingContext {
                now_ns,
                kv_index,
                rng: &mut self.rng,
            };
            self.sched.schedule(&rv, &views, &mut ctx).ok()?
        };
        {
            let spaces = &self.spaces;
            let mut per_pod;
            let speculative_index: Option<&mut dyn SpeculativeIndex> = match &mut self.index {
                None => None,
                Some(ix) if spaces.per_pod() => {
                    per_pod = PerPodKeys { inner: ix, spaces };
                    Some(&mut per_pod)
                }
                Some(ix) => Some(ix),
            };
            let mut pctx = PreRequestContext {
                now_ns,
                speculative_index,
            };
            self.sched.pre_request(&mut pctx, &rv, &res);
        }
        let target = res.primary_target()?.0;
        if let Some(m) = res.approx_prefix_match.filter(|m| m.total_blocks > 0) {
            self.indexer_hit_ratio.0 += f64::from(m.match_blocks) / f64::from(m.total_blocks);
            self.indexer_hit_ratio.1 += 1;
        }
        let prefill = res.prefill_target().map(|e| e.0).filter(|&p| p != target);
        if let Some(s) = req.session_id {
            self.session_pod.insert(s, target);
        }
        self.in_flight[target as usize].0 += 1;
        self.in_flight[target as usize].1 += req.prompt.n_tokens() as u64 + req.output_len as u64;
        self.n_decisions += 1;
        if self.log.is_some() {
            self.record(req.id, now_ns, &res, pods);
        }
        Some((target, prefill))
    }

    /// Requests routed and not yet counted out by [`EppRouter::complete`].
    pub fn n_in_flight(&self) -> u64 {
        self.in_flight.iter().map(|&(n, _)| n as u64).sum()
    }

    /// A request finished on `pod`, or `pod` rejected it.
    pub fn complete(&mut self, pod: u32, request_id: u64, tokens: u64, now_ns: u64) {
        let f = &mut self.in_flight[pod as usize];
        f.0 = f.0.saturating_sub(1);
        f.1 = f.1.saturating_sub(tokens);
        self.sched.response_complete(now_ns, request_id);
    }

    fn index_prefix(&self, pod: u32, now_ns: u64) -> u32 {
        let Some(ix) = self
            .index
            .as_ref()
            .filter(|_| self.source == IndexSource::Events)
        else {
            return 0;
        };
        let mut n = 0;
        for &k in self.spaces.index_keys(pod) {
            if ix
                .entries(&self.model, k, now_ns)
                .iter()
                .any(|e| e.pod.0 == pod)
            {
                n += 1;
            } else {
                break;
            }
        }
        n
    }

    fn record(&mut self, id: u64, now_ns: u64, res: &SchedulingResult, pods: &[Pod]) {
        let mut stale = false;
        let mut rows = Vec::new();
        for pr in &res.profiles {
            for (ei, &ep) in pr.endpoints.iter().enumerate() {
                let idx_blocks = self.index_prefix(ep.0, now_ns);
                let pool = pods[ep.0 as usize].scheduler().pool();
                let pod_blocks = self
                    .spaces
                    .pod_keys(ep.0)
                    .iter()
                    .take_while(|&&k| pool.get_cached_block(k).is_some())
                    .count() as u32;
                if self.has_index() && idx_blocks != pod_blocks {
                    stale = true;
                }
                rows.push(DecisionRow {
                    request_id: id,
                    t_ms: now_ns as f64 * 1e-6,
                    profile: pr.profile.clone(),
                    pod: self.names[ep.0 as usize].clone(),
                    picked: pr.target() == Some(ep),
                    total: pr.totals[ei],
                    scores: pr
                        .scorers
                        .iter()
                        .enumerate()
                        .map(|(si, m)| {
                            (
                                m.name.clone(),
                                pr.raw_score(ei, si).unwrap_or(f64::NAN),
                                pr.weighted_score(ei, si),
                            )
                        })
                        .collect(),
                    index_prefix_blocks: idx_blocks,
                    pod_prefix_blocks: pod_blocks,
                });
            }
        }
        if stale {
            self.n_stale += 1;
        }
        if let Some(log) = &mut self.log {
            log.extend(rows);
        }
    }

    /// `(decisions, decisions where the index's view of some candidate's
    /// cached prefix differed from the pod's cache)`; stale counts need the decision log.
    pub fn decision_counts(&self) -> (u64, u64) {
        (self.n_decisions, self.n_stale)
    }

    /// Mean over routed requests of the approximate prefix index's matched /
    /// total blocks for the pick (llm-d's `prefix_indexer_hit_ratio`); `None`
    /// without an approximate prefix scorer.
    pub fn prefix_indexer_hit_ratio(&self) -> Option<f64> {
        let (sum, n) = self.indexer_hit_ratio;
        (n > 0).then(|| sum / n as f64)
    }

    /// The decision log, if kept.
    pub fn take_log(&mut self) -> Vec<DecisionRow> {
        self.log.take().unwrap_or_default()
    }
}
