//! Plugin kinds (filter, scorer, picker, hooks) and what they are handed.
//!
//! One plugin instance may implement several kinds (the approximate prefix
//! scorer is also a PreRequest hook); [`Plugin`] exposes each kind it has.
//! A plugin referenced by two profiles is one instance shared by both.

use super::scheduler::SchedulingResult;
use super::view::{EndpointId, EndpointView, RequestView};
use rand::RngCore;
use rustc_hash::FxHashMap;

/// Storage tier of a cached block (`lowercase(medium)` of a KV event).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Tier {
    /// GPU HBM (vLLM's default medium).
    #[default]
    Gpu,
    /// CPU DRAM offload.
    Cpu,
    /// Local disk offload.
    Disk,
    /// Any other medium name.
    Other,
}

impl Tier {
    /// Tier of a KV-event `medium` (case-insensitive; `None` means GPU).
    pub fn from_medium(medium: Option<&str>) -> Tier {
        match medium {
            None => Tier::Gpu,
            Some(m) if m.eq_ignore_ascii_case("gpu") => Tier::Gpu,
            Some(m) if m.eq_ignore_ascii_case("cpu") => Tier::Cpu,
            Some(m) if m.eq_ignore_ascii_case("disk") => Tier::Disk,
            Some(_) => Tier::Other,
        }
    }

    /// Lowercase tier name as printed in `pod@tier`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Gpu => "gpu",
            Tier::Cpu => "cpu",
            Tier::Disk => "disk",
            Tier::Other => "other",
        }
    }
}

/// One (pod, tier) holding a block, as the KV-block index stores it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodEntry {
    /// The pod.
    pub pod: EndpointId,
    /// Where on the pod the block lives.
    pub tier: Tier,
    /// Added by speculative indexing at routing time, not by a KV event.
    pub speculative: bool,
}

/// Per-key pod entries returned by a lookup, stored flat, with a run of
/// consecutive keys that have the same entries stored once.
///
/// Why runs: a prompt's blocks are usually cached together, so a lookup of
/// hundreds of keys sees a few distinct entry lists, and a scorer walking
/// the prefix does per-run work instead of per-key work.
#[derive(Clone, Debug, Default)]
pub struct KeyEntries {
    entries: Vec<PodEntry>,
    runs: Vec<EntryRun>,
}

/// Keys up to `keys_end` (from the previous run's) share the entries up to
/// `entries_end`.
#[derive(Copy, Clone, Debug)]
struct EntryRun {
    entries_end: u32,
    keys_end: u32,
}

impl KeyEntries {
    /// Empties the buffer, keeping its memory.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.runs.clear();
    }

    /// Appends the entries of the next key (possibly none).
    pub fn push_key<I: IntoIterator<Item = PodEntry>>(&mut self, entries: I) {
        self.entries.extend(entries);
        self.runs.push(EntryRun {
            entries_end: self.entries.len() as u32,
            keys_end: self.n_keys() as u32 + 1,
        });
    }

    /// Appends `n` keys whose entries are those of the last key pushed.
    ///
    /// # Panics
    /// If no key was pushed since the last [`KeyEntries::clear`].
    pub fn repeat_last_key(&mut self, n: usize) {
        let last = self.runs.last_mut().expect("a key to repeat");
        last.keys_end += n as u32;
    }

    /// Number of keys examined by the lookup (it may stop before the last key).
    pub fn n_keys(&self) -> usize {
        self.runs.last().map_or(0, |r| r.keys_end as usize)
    }

    /// Entries of key `key_idx` (empty if the key was absent).
    pub fn key(&self, key_idx: usize) -> &[PodEntry] {
        let r = self
            .runs
            .partition_point(|r| r.keys_end as usize <= key_idx);
        self.run_entries(r)
    }

    /// Runs of consecutive keys with the same entries, in key order: each
    /// run's entries and number of keys.
    pub fn runs(&self) -> impl Iterator<Item = (&[PodEntry], usize)> + '_ {
        (0..self.runs.len()).map(|r| {
            let start = if r == 0 { 0 } else { self.runs[r - 1].keys_end };
            (
                self.run_entries(r),
                (self.runs[r].keys_end - start) as usize,
            )
        })
    }

    fn run_entries(&self, r: usize) -> &[PodEntry] {
        let start = if r == 0 {
            0
        } else {
            self.runs[r - 1].entries_end as usize
        };
        &self.entries[start..self.runs[r].entries_end as usize]
    }
}

/// A KV-block index as the scheduler reads it (llm-d-kv-cache
/// `Index.Lookup`). A lookup may change the index, as upstream's does: it
/// refreshes the LRU recency of the keys it reads and purges expired
/// speculative entries.
pub trait KvBlockLookup {
    /// Looks up `keys` of `model` in prompt order and writes, for each key
    /// examined, the entries of pods in `pods` (all pods if `pods` is empty).
    /// The index may stop early (its stop rule); keys after that are not
    /// pushed. Entries expired at `now_ns` are not returned.
    fn lookup(
        &mut self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        now_ns: u64,
        out: &mut KeyEntries,
    );

    /// [`KvBlockLookup::lookup`] for a longest-prefix match, which reads no
    /// key after the first that no pod of `pods` holds along with every key
    /// before it. An index whose lookups change nothing may stop there; one
    /// that refreshes recency or purges entries reads on, as upstream does.
    fn lookup_prefix(
        &mut self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        now_ns: u64,
        out: &mut KeyEntries,
    ) {
        self.lookup(model, keys, pods, now_ns, out);
    }
}

/// Write access for speculative entries (PreRequest of the precise scorer).
pub trait SpeculativeIndex {
    /// Adds `keys → pods` entries marked speculative, expiring at `expires_at_ns`.
    fn add_speculative(
        &mut self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        expires_at_ns: u64,
    );
}

/// Everything a scheduling cycle reads from outside the EPP.
pub struct SchedulingContext<'a> {
    /// Current time in nanoseconds (simulated or wall).
    pub now_ns: u64,
    /// The KV-block index, needed by `precise-prefix-cache-scorer`.
    pub kv_index: Option<&'a mut dyn KvBlockLookup>,
    /// Randomness for tie-breaks, random pickers and exploration.
    pub rng: &'a mut dyn RngCore,
}

/// Everything a PreRequest hook may touch outside the EPP.
pub struct PreRequestContext<'a> {
    /// Current time in nanoseconds.
    pub now_ns: u64,
    /// The KV-block index, for speculative entries.
    pub speculative_index: Option<&'a mut dyn SpeculativeIndex>,
}

/// Which prefix plugin produced a [`PrefixMatchInfo`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PrefixSource {
    /// `prefix-cache-scorer` (router-side approximate index).
    Approximate,
    /// `precise-prefix-cache-scorer` (KV-event index).
    Precise,
}

/// Upstream's `PrefixCacheMatchInfo`: how much of the prompt an endpoint holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct PrefixMatchInfo {
    /// Matched blocks.
    pub match_blocks: u32,
    /// Blocks of the request.
    pub total_blocks: u32,
    /// Tokens per block.
    pub block_size_tokens: u32,
}

/// Data shared by the plugins of one scheduling cycle.
#[derive(Debug, Default)]
pub struct CycleState {
    prefix: Vec<(PrefixSource, FxHashMap<EndpointId, PrefixMatchInfo>)>,
}

impl CycleState {
    /// Forgets everything (start of a cycle), keeping the maps' memory.
    pub fn clear(&mut self) {
        for (_, m) in &mut self.prefix {
            m.clear();
        }
    }

    /// Records `info` for `ep` as produced by `source`.
    pub fn set_prefix_match(
        &mut self,
        source: PrefixSource,
        ep: EndpointId,
        info: PrefixMatchInfo,
    ) {
        let slot = match self.prefix.iter().position(|(s, _)| *s == source) {
            Some(i) => i,
            None => {
                self.prefix.push((source, FxHashMap::default()));
                self.prefix.len() - 1
            }
        };
        self.prefix[slot].1.insert(ep, info);
    }

    /// Match info of `ep` from `source`, or from any source (approximate first)
    /// when `source` is `None`.
    pub fn prefix_match(
        &self,
        source: Option<PrefixSource>,
        ep: EndpointId,
    ) -> Option<PrefixMatchInfo> {
        let get = |s: PrefixSource| {
            self.prefix
                .iter()
                .find(|(x, _)| *x == s)
                .and_then(|(_, m)| m.get(&ep).copied())
        };
        match source {
            Some(s) => get(s),
            None => get(PrefixSource::Approximate).or_else(|| get(PrefixSource::Precise)),
        }
    }

    /// Whether any endpoint has a match from any source (no-hit-lru "warm").
    pub fn any_prefix_hit(&self) -> bool {
        self.prefix
            .iter()
            .any(|(_, m)| m.values().any(|i| i.match_blocks > 0))
    }
}

/// Scorer category (upstream: Affinity or Distribution); informational.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScorerCategory {
    /// Prefers endpoints that already hold state for the request.
    Affinity,
    /// Spreads load.
    Distribution,
}

/// `[]Endpoint → []Endpoint`.
pub trait Filter {
    /// Removes endpoints from `eps` in place, keeping the order of the rest.
    fn filter(
        &mut self,
        ctx: &mut SchedulingContext<'_>,
        cycle: &mut CycleState,
        req: &RequestView<'_>,
        eps: &mut Vec<EndpointView<'_>>,
    );
}

/// Scores every endpoint in [0, 1] (values outside are clamped by the profile).
pub trait Scorer {
    /// Affinity or distribution.
    fn category(&self) -> ScorerCategory;
    /// Writes one score per endpoint into `out` (same length as `eps`,
    /// pre-filled with NaN = "no score", which counts as 0).
    fn score(
        &mut self,
        ctx: &mut SchedulingContext<'_>,
        cycle: &mut CycleState,
        req: &RequestView<'_>,
        eps: &[EndpointView<'_>],
        out: &mut [f64],
    );
}

/// Chooses endpoints from scored candidates.
pub trait Picker {
    /// Pushes into `out` the indices (into `scored`) of the chosen endpoints,
    /// best first. `scored` is never empty.
    fn pick(&mut self, scored: &[(EndpointId, f64)], rng: &mut dyn RngCore, out: &mut Vec<usize>);
}

/// Runs after scheduling, before the request is proxied.
pub trait PreRequest {
    /// Updates plugin state (indexes, counters) with the scheduling result.
    fn pre_request(
        &mut self,
        ctx: &mut PreRequestContext<'_>,
        req: &RequestView<'_>,
        result: &SchedulingResult,
    );
}

/// Runs when the response of a request has completed.
pub trait ResponseComplete {
    /// Releases per-request state (in-flight counters).
    fn response_complete(&mut self, now_ns: u64, request_id: u64);
}

/// A configured plugin instance and the kinds it implements.
pub trait Plugin {
    /// The plugin type (`queue-scorer`, ...).
    fn type_name(&self) -> &'static str;
    /// The filter side, if any.
    fn as_filter(&mut self) -> Option<&mut dyn Filter> {
        None
    }
    /// The scorer side, if any.
    fn as_scorer(&mut self) -> Option<&mut dyn Scorer> {
        None
    }
    /// The picker side, if any.
    fn as_picker(&mut self) -> Option<&mut dyn Picker> {
        None
    }
    /// The PreRequest side, if any.
    fn as_pre_request(&mut self) -> Option<&mut dyn PreRequest> {
        None
    }
    /// The ResponseComplete side, if any.
    fn as_response_complete(&mut self) -> Option<&mut dyn ResponseComplete> {
        None
    }
    /// Which prefix source this plugin produces, if it is a prefix scorer.
    fn prefix_source(&self) -> Option<PrefixSource> {
        None
    }
}

/// Implements [`Plugin`] for a type that is exactly one scorer.
macro_rules! scorer_plugin {
    ($t:ty, $name:expr) => {
        impl $crate::epp::plugin::Plugin for $t {
            fn type_name(&self) -> &'static str {
                $name
            }
            fn as_scorer(&mut self) -> Option<&mut dyn $crate::epp::plugin::Scorer> {
                Some(self)
            }
        }
    };
}
pub(crate) use scorer_plugin;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_entries_flat_layout() {
        let e = |p| PodEntry {
            pod: EndpointId(p),
            tier: Tier::Gpu,
            speculative: false,
        };
        let mut k = KeyEntries::default();
        k.push_key([e(1), e(2)]);
        k.push_key([]);
        k.push_key([e(3)]);
        assert_eq!(k.n_keys(), 3);
        assert_eq!(k.key(0), &[e(1), e(2)]);
        assert!(k.key(1).is_empty());
        assert_eq!(k.key(2), &[e(3)]);
        k.clear();
        assert_eq!(k.n_keys(), 0);
    }

    #[test]
    fn tier_from_medium_is_case_insensitive_and_defaults_to_gpu() {
        assert_eq!(Tier::from_medium(None), Tier::Gpu);
        assert_eq!(Tier::from_medium(Some("GPU")), Tier::Gpu);
        assert_eq!(Tier::from_medium(Some("CPU")), Tier::Cpu);
        assert_eq!(Tier::from_medium(Some("nvme")), Tier::Other);
    }

    #[test]
    fn cycle_state_prefers_approximate_source() {
        let mut c = CycleState::default();
        let info = |m| PrefixMatchInfo {
            match_blocks: m,
            total_blocks: 4,
            block_size_tokens: 16,
        };
        c.set_prefix_match(PrefixSource::Precise, EndpointId(0), info(1));
        assert_eq!(c.prefix_match(None, EndpointId(0)), Some(info(1)));
        c.set_prefix_match(PrefixSource::Approximate, EndpointId(0), info(2));
        assert_eq!(c.prefix_match(None, EndpointId(0)), Some(info(2)));
        assert_eq!(
            c.prefix_match(Some(PrefixSource::Precise), EndpointId(0)),
            Some(info(1))
        );
        assert!(c.any_prefix_hit());
    }
}
