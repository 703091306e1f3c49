//! `prefix-cache-scorer`: approximate prefix affinity from routing history
//! (GIE `multi/prefix` v1.0–v1.3, HEAD `approximateprefix`).
//!
//! Hashing: `h0 = xxh64(model ++ cache_salt)`, then per block
//! `h = xxh64(le64(chunk) ++ le64(h))`, where `chunk` is the content hash the
//! caller supplies for each block (see [`PromptChunks`](crate::epp::view::PromptChunks):
//! one block of `B` characters ≈ `B/4` tokens). Prompts shorter than one
//! block get no hashes; at most `maxPrefixBlocksToMatch` blocks are hashed;
//! the trailing partial block is hashed at HEAD and dropped ≤ v1.3.
//!
//! Match (not strictly per-pod consecutive):
//! ```text
//! for h in hashes: S = hash_to_pods[h]; if S empty: break; for p in S: res[p] += 1
//! score(p) = res[p] / len(hashes)      (0 when there are no hashes)
//! ```
//! PreRequest adds the hashes to the primary target and, since GIE v1.3, to
//! the `prefill` profile's target.

use super::approx_index::ApproxIndex;
use super::precise_prefix::Normalization;
use crate::epp::plugin::{
    CycleState, Plugin, PreRequest, PreRequestContext, PrefixMatchInfo, PrefixSource,
    SchedulingContext, Scorer, ScorerCategory,
};
use crate::epp::scheduler::SchedulingResult;
use crate::epp::view::{EndpointId, EndpointView, RequestView};
use rustc_hash::FxHashMap;
use xxhash_rust::xxh64::{xxh64, Xxh64};

/// Parameters of `prefix-cache-scorer`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApproxPrefixConfig {
    /// Tokens per block (`blockSizeTokens`, HEAD default 16; Y1 `hashBlockSize` 64 chars / 4).
    pub block_size_tokens: u32,
    /// `maxPrefixBlocksToMatch` (256).
    pub max_prefix_blocks: usize,
    /// `lruCapacityPerServer` (31250), used when auto-tune has no pod data.
    pub lru_capacity_per_server: usize,
    /// `autoTune` (Y2+ true): block size and LRU capacity from the pod's cache config.
    pub auto_tune: bool,
    /// Hash the trailing partial block (HEAD since Apr 2026).
    pub hash_partial_tail: bool,
    /// Which picks PreRequest records in the index.
    pub indexed_targets: IndexedTargets,
    /// `Absolute`: `matched / total` (GIE); `MinMax`: min-max over the pods
    /// with a match, as llm-d's own ≤ v0.1 prefix store.
    pub normalization: Normalization,
}

/// The targets whose prompt PreRequest adds to the index.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IndexedTargets {
    /// The primary (decode) target only (GIE < v1.3).
    Primary,
    /// The primary target and the `prefill` profile's (GIE ≥ v1.3).
    PrimaryAndPrefill,
    /// The `prefill` profile's target only: the prefill scheduler's own
    /// scorer in the ENV era, which ran decode and prefill as two schedulers.
    Prefill,
}

impl Default for ApproxPrefixConfig {
    fn default() -> Self {
        ApproxPrefixConfig {
            block_size_tokens: 16,
            max_prefix_blocks: 256,
            lru_capacity_per_server: 31_250,
            auto_tune: true,
            hash_partial_tail: true,
            indexed_targets: IndexedTargets::PrimaryAndPrefill,
            normalization: Normalization::Absolute,
        }
    }
}

/// Approximate prefix-cache scorer with its router-side index.
pub struct ApproxPrefixScorer {
    cfg: ApproxPrefixConfig,
    index: ApproxIndex,
    capacity: FxHashMap<EndpointId, usize>,
    chunks: Vec<u64>,
    last: Option<(u64, Vec<u64>)>,
    counts: FxHashMap<EndpointId, u32>,
}

impl ApproxPrefixScorer {
    /// A scorer with an empty index.
    pub fn new(cfg: ApproxPrefixConfig) -> Self {
        ApproxPrefixScorer {
            cfg,
            index: ApproxIndex::default(),
            capacity: FxHashMap::default(),
            chunks: Vec::new(),
            last: None,
            counts: FxHashMap::default(),
        }
    }

    /// The chained block hashes of `req` with blocks of `block_tokens` tokens.
    pub fn hashes(&mut self, req: &RequestView<'_>, block_tokens: u32) -> Vec<u64> {
        let bt = block_tokens.max(1);
        if req.n_prompt_tokens < bt {
            return Vec::new();
        }
        self.chunks.clear();
        req.prompt.chunk_hashes(
            bt,
            self.cfg.max_prefix_blocks,
            self.cfg.hash_partial_tail,
            &mut self.chunks,
        );
        let mut seed = Xxh64::new(0);
        seed.update(req.model.as_bytes());
        if let Some(salt) = req.cache_salt {
            seed.update(salt.as_bytes());
        }
        let mut h = seed.digest();
        let mut buf = [0u8; 16];
        self.chunks
            .iter()
            .map(|&c| {
                buf[..8].copy_from_slice(&c.to_le_bytes());
                buf[8..].copy_from_slice(&h.to_le_bytes());
                h = xxh64(&buf, 0);
                h
            })
            .collect()
    }

    fn block_tokens_for(&self, eps: &[EndpointView<'_>]) -> u32 {
        let tuned = if self.cfg.auto_tune {
            eps.iter().find_map(|e| e.block_size_tokens)
        } else {
            None
        };
        tuned.unwrap_or(self.cfg.block_size_tokens).max(1)
    }
}

impl Plugin for ApproxPrefixScorer {
    fn type_name(&self) -> &'static str {
        "prefix-cache-scorer"
    }
    fn as_scorer(&mut self) -> Option<&mut dyn Scorer> {
        Some(self)
    }
    fn as_pre_request(&mut self) -> Option<&mut dyn PreRequest> {
        Some(self)
    }
    fn prefix_source(&self) -> Option<PrefixSource> {
        Some(PrefixSource::Approximate)
    }
}

impl Scorer for ApproxPrefixScorer {
    fn category(&self) -> ScorerCategory {
        ScorerCategory::Affinity
    }

    fn score(
        &mut self,
        _: &mut SchedulingContext<'_>,
        cycle: &mut CycleState,
        req: &RequestView<'_>,
        eps: &[EndpointView<'_>],
        out: &mut [f64],
    ) {
        let bt = self.block_tokens_for(eps);
        let hashes = match self.last.take() {
            Some((id, h)) if id == req.id => h,
            _ => self.hashes(req, bt),
        };
        // Without auto-tune every capacity is the fallback pre_request uses.
        if self.cfg.auto_tune {
            for e in eps {
                let cap = match e.num_gpu_blocks {
                    Some(n) if n > 0 => n as usize,
                    _ => self.cfg.lru_capacity_per_server,
                };
                self.capacity.insert(e.id, cap);
            }
        }
        self.counts.clear();
        for &h in &hashes {
            let pods = self.index.pods(h);
            if pods.is_empty() {
                break;
            }
            for &p in pods {
                *self.counts.entry(p).or_insert(0) += 1;
            }
        }
        let total = hashes.len() as u32;
        let matched = |e: &EndpointView<'_>| self.counts.get(&e.id).copied().unwrap_or(0);
        // Min-max runs over the candidates with a match; the rest score 0.
        let hitters = eps.iter().map(matched).filter(|&m| m > 0);
        let (lo, hi) = hitters.fold((u32::MAX, 0), |(lo, hi), m| (lo.min(m), hi.max(m)));
        for (o, e) in out.iter_mut().zip(eps) {
            let m = matched(e);
            *o = match self.cfg.normalization {
                _ if total == 0 || m == 0 => 0.0,
                Normalization::Absolute => f64::from(m) / f64::from(total),
                Normalization::MinMax if hi == lo => 1.0,
                Normalization::MinMax => f64::from(m - lo) / f64::from(hi - lo),
            };
            cycle.set_prefix_match(
                PrefixSource::Approximate,
                e.id,
                PrefixMatchInfo {
                    match_blocks: m,
                    total_blocks: total,
                    block_size_tokens: bt,
                },
            );
        }
        self.last = Some((req.id, hashes));
    }
}

impl PreRequest for ApproxPrefixScorer {
    fn pre_request(
        &mut self,
        _: &mut PreRequestContext<'_>,
        req: &RequestView<'_>,
        result: &SchedulingResult,
    ) {
        let hashes = match self.last.take() {
            Some((id, h)) if id == req.id => h,
            _ => {
                let bt = self.cfg.block_size_tokens;
                self.hashes(req, bt)
            }
        };
        let targets: Vec<EndpointId> = match self.cfg.indexed_targets {
            IndexedTargets::PrimaryAndPrefill => result.primary_and_prefill_targets().collect(),
            IndexedTargets::Primary => result.primary_target().into_iter().collect(),
            IndexedTargets::Prefill => result.prefill_target().into_iter().collect(),
        };
        for t in targets {
            let cap = self
                .capacity
                .get(&t)
                .copied()
                .unwrap_or(self.cfg.lru_capacity_per_server);
            self.index.add(&hashes, t, cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::scorer::test_util::{eps, with_ctx};
    use crate::epp::view::TokenPrompt;

    fn req<'a>(id: u64, toks: &'a [u32], prompt: &'a TokenPrompt<'a>) -> RequestView<'a> {
        let mut r = RequestView::new(id, "m", toks.len() as u32);
        r.prompt = prompt;
        r
    }

    #[test]
    fn hashing_rules() {
        let mut s = ApproxPrefixScorer::new(ApproxPrefixConfig {
            block_size_tokens: 4,
            ..Default::default()
        });
        let toks: Vec<u32> = (0..10).collect();
        let p = TokenPrompt(&toks);
        assert_eq!(
            s.hashes(&req(1, &toks, &p), 4).len(),
            3,
            "HEAD hashes the partial tail"
        );
        s.cfg.hash_partial_tail = false;
        assert_eq!(s.hashes(&req(1, &toks, &p), 4).len(), 2);
        let short = [1u32, 2, 3];
        let ps = TokenPrompt(&short);
        assert!(
            s.hashes(&req(1, &short, &ps), 4).is_empty(),
            "shorter than a block"
        );
        s.cfg.max_prefix_blocks = 1;
        assert_eq!(s.hashes(&req(1, &toks, &p), 4).len(), 1);
        // salt changes every hash
        s.cfg.max_prefix_blocks = 256;
        let mut salted = req(1, &toks, &p);
        salted.cache_salt = Some("s");
        let a = s.hashes(&req(1, &toks, &p), 4);
        let b = s.hashes(&salted, 4);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    }

    #[test]
    fn non_strict_match_counts_later_blocks() {
        let cfg = ApproxPrefixConfig {
            block_size_tokens: 4,
            hash_partial_tail: false,
            auto_tune: false,
            ..Default::default()
        };
        let mut s = ApproxPrefixScorer::new(cfg);
        let toks: Vec<u32> = (0..16).collect();
        let p = TokenPrompt(&toks);
        let r = req(1, &toks, &p);
        let h = s.hashes(&r, 4);
        assert_eq!(h.len(), 4);
        // pod0 holds blocks 0,1; pod1 holds blocks 0,2,3 (missing 1)
        s.index.add(&h[..2], EndpointId(0), 100);
        s.index.add(&[h[0], h[2], h[3]], EndpointId(1), 100);
        let e = eps(3);
        let mut out = [0.0; 3];
        with_ctx(|ctx, c| {
            s.score(ctx, c, &r, &e, &mut out);
            assert_eq!(
                c.prefix_match(None, EndpointId(1)).map(|m| m.match_blocks),
                Some(3)
            );
        });
        // every block has some holder: pod0 2/4, pod1 3/4 (non-strict), pod2 0
        assert_eq!(out, [0.5, 0.75, 0.0]);
    }

    #[test]
    fn pre_request_indexes_primary_and_prefill_targets() {
        let cfg = ApproxPrefixConfig {
            block_size_tokens: 4,
            auto_tune: false,
            ..Default::default()
        };
        let mut s = ApproxPrefixScorer::new(cfg);
        let toks: Vec<u32> = (0..8).collect();
        let p = TokenPrompt(&toks);
        let r = req(1, &toks, &p);
        let e = eps(2);
        let mut out = [0.0; 2];
        with_ctx(|ctx, c| s.score(ctx, c, &r, &e, &mut out));
        assert_eq!(out, [0.0, 0.0]);
        let res =
            crate::epp::scheduler::tests_support::result_with(&[("decode", 0), ("prefill", 1)]);
        s.pre_request(
            &mut PreRequestContext {
                now_ns: 0,
                speculative_index: None,
            },
            &r,
            &res,
        );
        with_ctx(|ctx, c| s.score(ctx, c, &r, &e, &mut out));
        assert_eq!(out, [1.0, 1.0]);
    }

    #[test]
    fn indexed_targets_choose_which_picks_are_recorded() {
        let toks: Vec<u32> = (0..8).collect();
        let p = TokenPrompt(&toks);
        let r = req(1, &toks, &p);
        let e = eps(2);
        let res =
            crate::epp::scheduler::tests_support::result_with(&[("decode", 0), ("prefill", 1)]);
        for (targets, want) in [
            (IndexedTargets::Primary, [1.0, 0.0]),
            (IndexedTargets::Prefill, [0.0, 1.0]),
            (IndexedTargets::PrimaryAndPrefill, [1.0, 1.0]),
        ] {
            let mut s = ApproxPrefixScorer::new(ApproxPrefixConfig {
                block_size_tokens: 4,
                auto_tune: false,
                indexed_targets: targets,
                ..Default::default()
            });
            let mut ctx = PreRequestContext {
                now_ns: 0,
                speculative_index: None,
            };
            s.pre_request(&mut ctx, &r, &res);
            let mut out = [0.0; 2];
            with_ctx(|ctx, c| s.score(ctx, c, &r, &e, &mut out));
            assert_eq!(out, want, "{targets:?}");
        }
    }

    /// llm-d's ≤ v0.1 store: min-max over the pods with a match; a sole
    /// hitter gets 1, the lowest hitter 0 like a miss.
    #[test]
    fn min_max_normalisation_over_hitters() {
        let mut s = ApproxPrefixScorer::new(ApproxPrefixConfig {
            block_size_tokens: 4,
            hash_partial_tail: false,
            auto_tune: false,
            normalization: Normalization::MinMax,
            ..Default::default()
        });
        let toks: Vec<u32> = (0..40).collect();
        let p = TokenPrompt(&toks);
        let r = req(1, &toks, &p);
        let h = s.hashes(&r, 4);
        assert_eq!(h.len(), 10);
        s.index.add(&h[..1], EndpointId(0), 100);
        let e = eps(4);
        let mut out = [0.0; 4];
        with_ctx(|ctx, c| s.score(ctx, c, &r, &e, &mut out));
        assert_eq!(out, [1.0, 0.0, 0.0, 0.0], "sole hitter (1 of 10 blocks)");
        s.index.add(&h[..3], EndpointId(2), 100);
        s.index.add(&h[..2], EndpointId(3), 100);
        with_ctx(|ctx, c| s.score(ctx, c, &r, &e, &mut out));
        // matches 1, 0, 3, 2 → (m − 1)/(3 − 1) over hitters
        assert_eq!(out, [0.0, 0.0, 1.0, 0.5]);
    }
}
