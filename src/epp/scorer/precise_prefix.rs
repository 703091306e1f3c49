//! `precise-prefix-cache-scorer` (former `kvcache-aware-scorer`): prefix
//! affinity from the KV-event-fed block index.
//!
//! Raw score (LongestPrefixScorer): the tier-weighted count of blocks held
//! **consecutively from block 0** by each pod; `w(p, k)` is the max tier
//! weight over p's entries for key k (gpu 1.0, cpu 0.8; a tier absent from
//! the weights table weighs 1.0, as upstream). Normalisation is selectable:
//! - min-max (v0.2 → May 2026): over pods with ≥ 1 hit, `(s − min)/(max − min)`,
//!   or 1 when `max == min`; pods without hits get 0 (so the lowest hitter
//!   also gets 0, and with no hits every pod gets 0);
//! - absolute (HEAD, PR #1107): `min(raw / floor(n_tokens / block_size), 1)`.
//!
//! With speculative indexing, PreRequest adds the request's keys for the
//! primary and `prefill` targets as speculative entries with a TTL.

use crate::epp::plugin::{
    CycleState, KeyEntries, Plugin, PreRequest, PreRequestContext, PrefixMatchInfo, PrefixSource,
    SchedulingContext, Scorer, ScorerCategory, Tier,
};
use crate::epp::scheduler::SchedulingResult;
use crate::epp::view::{EndpointId, EndpointView, RequestView};

/// How raw scores become [0, 1] scores.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// Min-max over hitters (upstream until May 2026).
    MinMax,
    /// Fraction of the prompt's blocks (HEAD).
    Absolute,
}

/// Per-tier block weights (`kvCacheBackendConfigs`).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct TierWeights {
    /// `gpu` (1.0).
    pub gpu: f64,
    /// `cpu` (0.8).
    pub cpu: f64,
    /// `disk` (1.0: not in the default table).
    pub disk: f64,
    /// Any other tier (1.0).
    pub other: f64,
}

impl Default for TierWeights {
    fn default() -> Self {
        TierWeights {
            gpu: 1.0,
            cpu: 0.8,
            disk: 1.0,
            other: 1.0,
        }
    }
}

impl TierWeights {
    /// Weight of `tier`.
    pub fn get(&self, tier: Tier) -> f64 {
        match tier {
            Tier::Gpu => self.gpu,
            Tier::Cpu => self.cpu,
            Tier::Disk => self.disk,
            Tier::Other => self.other,
        }
    }
}

/// Parameters of `precise-prefix-cache-scorer`.
#[derive(Clone, Debug, PartialEq)]
pub struct PrecisePrefixConfig {
    /// Tokens per KV block (`tokenProcessorConfig.blockSize`, 16).
    pub block_size_tokens: u32,
    /// Normalisation of raw scores.
    pub normalization: Normalization,
    /// Tier weights.
    pub tier_weights: TierWeights,
    /// `speculativeIndexing` with `speculativeTTL` (2 s); `None` = off.
    pub speculative_ttl_ns: Option<u64>,
}

impl Default for PrecisePrefixConfig {
    fn default() -> Self {
        PrecisePrefixConfig {
            block_size_tokens: 16,
            normalization: Normalization::MinMax,
            tier_weights: TierWeights::default(),
            speculative_ttl_ns: None,
        }
    }
}

/// Raw LongestPrefix result of one pod.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct PodPrefix {
    /// The pod.
    pub pod: EndpointId,
    /// Tier-weighted consecutive blocks.
    pub weighted: f64,
    /// Unweighted consecutive blocks.
    pub blocks: u32,
}

/// LongestPrefixScorer over looked-up entries: pods holding key 0, then the
/// running intersection, stopping when it is empty. Returned in first-seen order.
pub fn longest_prefix(
    entries: &KeyEntries,
    n_keys: usize,
    weights: &TierWeights,
    out: &mut Vec<PodPrefix>,
) {
    out.clear();
    if entries.n_keys() == 0 || n_keys == 0 {
        return;
    }
    let max_w = |es: &[crate::epp::plugin::PodEntry], pod: EndpointId| {
        es.iter()
            .filter(|e| e.pod == pod)
            .map(|e| weights.get(e.tier))
            .fold(0.0_f64, f64::max)
    };
    let limit = n_keys.min(entries.n_keys());
    let mut runs = entries.runs();
    let (first, first_len) = runs.next().expect("n_keys > 0");
    for e in first {
        if !out.iter().any(|p| p.pod == e.pod) {
            out.push(PodPrefix {
                pod: e.pod,
                weighted: max_w(first, e.pod),
                blocks: 1,
            });
        }
    }
    let mut active: Vec<usize> = (0..out.len()).collect();
    // Keys after the first: the rest of its run (every pod found still
    // holds them), then each later run.
    let mut rest = std::iter::once((first, first_len - 1)).chain(runs);
    let mut n_done = 1;
    while n_done < limit && !active.is_empty() {
        let Some((es, len)) = rest.next() else { break };
        let n = len.min(limit - n_done);
        if n == 0 {
            continue;
        }
        active.retain(|&i| es.iter().any(|e| e.pod == out[i].pod));
        for &i in &active {
            let w = max_w(es, out[i].pod);
            add_repeated(&mut out[i].weighted, w, n);
            out[i].blocks += n as u32;
        }
        n_done += n;
    }
}

/// `*sum += w`, `n` times, with the rounding of doing it one by one (in one
/// step when every partial sum is an exact integer, as with weight 1).
fn add_repeated(sum: &mut f64, w: f64, n: usize) {
    const EXACT: f64 = (1u64 << 52) as f64;
    if w.fract() == 0.0 && sum.fract() == 0.0 && sum.abs() + w.abs() * n as f64 <= EXACT {
        *sum += w * n as f64;
    } else {
        for _ in 0..n {
            *sum += w;
        }
    }
}

/// Precise prefix-cache scorer (reads the index through [`SchedulingContext::kv_index`]).
pub struct PrecisePrefixScorer {
    cfg: PrecisePrefixConfig,
    entries: KeyEntries,
    pods: Vec<EndpointId>,
    raw: Vec<PodPrefix>,
    /// Per scored endpoint (in `eps` order), its entry of `raw`, if any.
    hits: Vec<Option<PodPrefix>>,
}

impl PrecisePrefixScorer {
    /// A scorer with `cfg`.
    pub fn new(cfg: PrecisePrefixConfig) -> Self {
        PrecisePrefixScorer {
            cfg,
            entries: KeyEntries::default(),
            pods: Vec::new(),
            raw: Vec::new(),
            hits: Vec::new(),
        }
    }
}

impl Plugin for PrecisePrefixScorer {
    fn type_name(&self) -> &'static str {
        "precise-prefix-cache-scorer"
    }
    fn as_scorer(&mut self) -> Option<&mut dyn Scorer> {
        Some(self)
    }
    fn as_pre_request(&mut self) -> Option<&mut dyn PreRequest> {
        self.cfg
            .speculative_ttl_ns
            .is_some()
            .then_some(self as &mut dyn PreRequest)
    }
    fn prefix_source(&self) -> Option<PrefixSource> {
        Some(PrefixSource::Precise)
    }
}

impl Scorer for PrecisePrefixScorer {
    fn category(&self) -> ScorerCategory {
        ScorerCategory::Affinity
    }

    fn score(
        &mut self,
        ctx: &mut SchedulingContext<'_>,
        cycle: &mut CycleState,
        req: &RequestView<'_>,
        eps: &[EndpointView<'_>],
        out: &mut [f64],
    ) {
        out.iter_mut().for_each(|o| *o = 0.0);
        self.raw.clear();
        self.entries.clear();
        if let (Some(index), false) = (ctx.kv_index.as_deref_mut(), req.block_keys.is_empty()) {
            self.pods.clear();
            self.pods.extend(eps.iter().map(|e| e.id));
            index.lookup_prefix(
                req.model,
                req.block_keys,
                &self.pods,
                ctx.now_ns,
                &mut self.entries,
            );
            longest_prefix(
                &self.entries,
                req.block_keys.len(),
                &self.cfg.tier_weights,
                &mut self.raw,
            );
        }
        self.hits.clear();
        self.hits.extend(
            eps.iter()
                .map(|e| self.raw.iter().find(|p| p.pod == e.id).copied()),
        );
        match self.cfg.normalization {
            Normalization::MinMax => {
                let min = self
                    .raw
                    .iter()
                    .map(|p| p.weighted)
                    .fold(f64::INFINITY, f64::min);
                let max = self
                    .raw
                    .iter()
                    .map(|p| p.weighted)
                    .fold(f64::NEG_INFINITY, f64::max);
                for (o, hit) in out.iter_mut().zip(&self.hits) {
                    if let Some(p) = hit {
                        *o = if max == min {
                            1.0
                        } else {
                            (p.weighted - min) / (max - min)
                        };
                    }
                }
            }
            Normalization::Absolute => {
                let total = req.n_prompt_tokens / self.cfg.block_size_tokens.max(1);
                for (o, hit) in out.iter_mut().zip(&self.hits) {
                    if let (Some(p), true) = (hit, total > 0) {
                        *o = (p.weighted / f64::from(total)).min(1.0);
                    }
                }
            }
        }
        let total_blocks = req.block_keys.len() as u32;
        for (e, hit) in eps.iter().zip(&self.hits) {
            let blocks = hit.map_or(0, |p| p.blocks);
            // HEAD quirk: without speculative indexing the producer reports
            // {match: hit ? 1 : 0, total: 1, block: 1}.
            let info = if self.cfg.speculative_ttl_ns.is_some() {
                PrefixMatchInfo {
                    match_blocks: blocks,
                    total_blocks,
                    block_size_tokens: self.cfg.block_size_tokens,
                }
            } else {
                PrefixMatchInfo {
                    match_blocks: u32::from(blocks > 0),
                    total_blocks: 1,
                    block_size_tokens: 1,
                }
            };
            cycle.set_prefix_match(PrefixSource::Precise, e.id, info);
        }
    }
}

impl PreRequest for PrecisePrefixScorer {
    fn pre_request(
        &mut self,
        ctx: &mut PreRequestContext<'_>,
        req: &RequestView<'_>,
        result: &SchedulingResult,
    ) {
        let (Some(ttl), Some(index)) = (
            self.cfg.speculative_ttl_ns,
            ctx.speculative_index.as_deref_mut(),
        ) else {
            return;
        };
        if req.block_keys.is_empty() {
            return;
        }
        let pods: Vec<EndpointId> = result.primary_and_prefill_targets().collect();
        if !pods.is_empty() {
            index.add_speculative(
                req.model,
                req.block_keys,
                &pods,
                ctx.now_ns.saturating_add(ttl),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::plugin::{KvBlockLookup, PodEntry};
    use crate::epp::scorer::test_util::eps;
    use proptest::prelude::*;
    use rand::SeedableRng;

    /// The prefix walk key by key, as the spec states it: pods holding key 0,
    /// then the running intersection.
    fn longest_prefix_per_key(keys: &[Vec<PodEntry>], w: &TierWeights) -> Vec<PodPrefix> {
        let max_w = |es: &[PodEntry], pod| {
            es.iter()
                .filter(|e| e.pod == pod)
                .map(|e| w.get(e.tier))
                .fold(0.0_f64, f64::max)
        };
        let mut out: Vec<PodPrefix> = Vec::new();
        for e in &keys[0] {
            if !out.iter().any(|p| p.pod == e.pod) {
                out.push(PodPrefix {
                    pod: e.pod,
                    weighted: max_w(&keys[0], e.pod),
                    blocks: 1,
                });
            }
        }
        let mut active: Vec<bool> = vec![true; out.len()];
        for es in &keys[1..] {
            for (i, p) in out.iter_mut().enumerate() {
                active[i] &= es.iter().any(|e| e.pod == p.pod);
                if active[i] {
                    p.weighted += max_w(es, p.pod);
                    p.blocks += 1;
                }
            }
        }
        out
    }

    fn entry_lists() -> impl Strategy<Value = Vec<Vec<PodEntry>>> {
        let entry =
            (0u32..4, prop_oneof![Just(Tier::Gpu), Just(Tier::Cpu)]).prop_map(|(pod, tier)| {
                PodEntry {
                    pod: EndpointId(pod),
                    tier,
                    speculative: false,
                }
            });
        // Few distinct lists, repeated: long runs of equal keys.
        let list = prop::collection::vec(entry, 0..4);
        (
            prop::collection::vec(list, 1..4),
            prop::collection::vec((0usize..4, 1usize..40), 1..12),
        )
            .prop_map(|(lists, picks)| {
                picks
                    .into_iter()
                    .flat_map(|(l, n)| std::iter::repeat_n(lists[l % lists.len()].clone(), n))
                    .collect()
            })
    }

    proptest! {
        /// Merging equal keys into runs changes no result, to the last bit
        /// of the weighted sums (fractional CPU weights included), for any
        /// cap on the keys read.
        #[test]
        fn runs_give_the_per_key_prefix(keys in entry_lists(), cap in 1usize..200, cpu in prop_oneof![Just(0.8), Just(1.0), Just(0.1)]) {
            let w = TierWeights { cpu, ..TierWeights::default() };
            let mut runs = KeyEntries::default();
            for (i, es) in keys.iter().enumerate() {
                if i > 0 && keys[i - 1] == *es {
                    runs.repeat_last_key(1);
                } else {
                    runs.push_key(es.iter().copied());
                }
            }
            prop_assert_eq!(runs.n_keys(), keys.len());
            for (i, es) in keys.iter().enumerate() {
                prop_assert_eq!(runs.key(i), &es[..]);
            }
            let mut got = Vec::new();
            longest_prefix(&runs, cap, &w, &mut got);
            let want = longest_prefix_per_key(&keys[..cap.min(keys.len())], &w);
            prop_assert_eq!(got.len(), want.len());
            for (g, x) in got.iter().zip(&want) {
                prop_assert_eq!((g.pod, g.blocks, g.weighted.to_bits()), (x.pod, x.blocks, x.weighted.to_bits()));
            }
        }
    }

    /// A toy index: per key, a list of (pod, tier); skips nothing.
    struct Toy(Vec<Vec<(u32, Tier)>>);

    impl KvBlockLookup for Toy {
        fn lookup(
            &mut self,
            _: &str,
            keys: &[u64],
            pods: &[EndpointId],
            _: u64,
            out: &mut KeyEntries,
        ) {
            for &k in keys {
                let es = self.0.get(k as usize).cloned().unwrap_or_default();
                out.push_key(
                    es.into_iter()
                        .filter(|(p, _)| pods.is_empty() || pods.contains(&EndpointId(*p)))
                        .map(|(p, tier)| PodEntry {
                            pod: EndpointId(p),
                            tier,
                            speculative: false,
                        }),
                );
            }
        }
    }

    fn run(
        cfg: PrecisePrefixConfig,
        toy: &Toy,
        n_keys: usize,
        n_tokens: u32,
        n_eps: usize,
    ) -> Vec<f64> {
        let keys: Vec<u64> = (0..n_keys as u64).collect();
        let mut req = RequestView::new(1, "m", n_tokens);
        req.block_keys = &keys;
        let e = eps(n_eps);
        let mut out = vec![f64::NAN; n_eps];
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        let mut toy = Toy(toy.0.clone());
        let mut ctx = SchedulingContext {
            now_ns: 0,
            kv_index: Some(&mut toy),
            rng: &mut rng,
        };
        PrecisePrefixScorer::new(cfg).score(
            &mut ctx,
            &mut CycleState::default(),
            &req,
            &e,
            &mut out,
        );
        out
    }

    use Tier::{Cpu, Gpu};

    #[test]
    fn min_max_over_hitters() {
        // pod0 holds 0..4, pod1 holds 0..2, pod2 holds 0, pod3 holds 1..4 (not block 0)
        let toy = Toy(vec![
            vec![(0, Gpu), (1, Gpu), (2, Gpu)],
            vec![(0, Gpu), (1, Gpu), (3, Gpu)],
            vec![(0, Gpu), (3, Gpu)],
            vec![(0, Gpu), (3, Gpu)],
        ]);
        let out = run(PrecisePrefixConfig::default(), &toy, 4, 64, 4);
        // raw: pod0 4, pod1 2, pod2 1 (lowest hitter → 0), pod3 0 (no block 0)
        assert_eq!(out, vec![1.0, 1.0 / 3.0, 0.0, 0.0]);
    }

    #[test]
    fn sole_and_equal_hitters_get_one_and_no_hits_all_zero() {
        let toy = Toy(vec![vec![(1, Gpu)], vec![(1, Gpu)]]);
        assert_eq!(
            run(PrecisePrefixConfig::default(), &toy, 2, 32, 3),
            vec![0.0, 1.0, 0.0]
        );
        let toy = Toy(vec![vec![(0, Gpu), (2, Gpu)]]);
        assert_eq!(
            run(PrecisePrefixConfig::default(), &toy, 1, 16, 3),
            vec![1.0, 0.0, 1.0]
        );
        let toy = Toy(vec![vec![], vec![(0, Gpu)]]);
        assert_eq!(
            run(PrecisePrefixConfig::default(), &toy, 2, 32, 2),
            vec![0.0, 0.0]
        );
    }

    #[test]
    fn tier_weights_and_absolute_normalisation() {
        // pod0: gpu, gpu; pod1: cpu, cpu; pod2: cpu+gpu on block 0 (max = 1.0), nothing on 1
        let toy = Toy(vec![
            vec![(0, Gpu), (1, Cpu), (2, Cpu), (2, Gpu)],
            vec![(0, Gpu), (1, Cpu)],
        ]);
        let cfg = PrecisePrefixConfig {
            normalization: Normalization::Absolute,
            ..Default::default()
        };
        // 64 tokens / 16 = 4 blocks total: pod0 2/4, pod1 1.6/4, pod2 1/4
        let out = run(cfg, &toy, 2, 64, 3);
        let exp = [0.5, 0.4, 0.25];
        for (a, b) in out.iter().zip(exp) {
            assert!((a - b).abs() < 1e-12, "{out:?}");
        }
        // min-max of raw 2, 1.6, 1 → 1, 0.6, 0
        let out = run(PrecisePrefixConfig::default(), &toy, 2, 64, 3);
        let exp = [1.0, 0.6, 0.0];
        for (a, b) in out.iter().zip(exp) {
            assert!((a - b).abs() < 1e-12, "{out:?}");
        }
    }
}
