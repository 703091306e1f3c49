//! Which block keys the router's index holds, and how a prompt is found in it.
//!
//! Pods hash blocks with their own hasher (vLLM's algorithm and a NONE_HASH
//! per process, or the simulator's fast keys), and their KV events carry
//! those engine keys. llm-d-kv-cache relates them to prompts in one of two
//! ways (`llm-d-epp.md` §6.4), chosen by [`IndexKeys`].

use serde::{Deserialize, Serialize};

use crate::compat::VllmVersion;
use crate::epp::plugin::{KeyEntries, KvBlockLookup, SpeculativeIndex};
use crate::epp::view::EndpointId;
use crate::kv::hash::{HashAlgo, VllmBlockHasher};
use crate::kv::hasher::{BlockHasher, ChainState};
use crate::pod::engine::Pod;
use crate::trace::request::Prompt;

/// How the index's keys relate to the pods' block hashes (scenario
/// `router.index_keys`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexKeys {
    /// llm-d-kv-cache from Dec 2025 (#202): the index is keyed by request
    /// keys recomputed from each `BlockStored`'s tokens, so a prompt matches
    /// a pod whatever the pod's hashing. Simulated by hashing the prompt once
    /// per distinct pod hasher and looking each pod up under its own keys:
    /// the same per-pod prefixes a request-keyed index gives. (Upstream's
    /// request keys leave out the cache salt; here a salted prompt matches
    /// only blocks stored under its salt.)
    #[default]
    Request,
    /// Up to Nov 2025 (v0.4): the index holds the engines' keys and the
    /// router hashes prompts itself, with sha256_cbor and NONE_HASH =
    /// sha256(cbor(hashSeed)); a pod matches only if its vLLM hashes agree
    /// (`prefix_caching_hash_algo: sha256_cbor`, `PYTHONHASHSEED` =
    /// hashSeed). Pods with fast keys (`block_hashing: fast`) model no
    /// hashing, so the router uses their function.
    Engine,
}

/// A pod hasher unlike the router's, and the last prompt's keys under it.
struct Space {
    hasher: BlockHasher,
    keys: Vec<u64>,
}

/// A prompt's keys as the router hashes them (what the EPP sees) and as
/// each pod hashes them (what the pods' caches and events hold).
pub struct KeySpaces {
    mode: IndexKeys,
    block_size: u32,
    hasher: BlockHasher,
    keys: Vec<u64>,
    /// The distinct pod hashers that differ from the router's.
    spaces: Vec<Space>,
    /// Per pod, its entry in `spaces`; `None` when it hashes like the router.
    space_of_pod: Vec<Option<usize>>,
}

impl KeySpaces {
    /// The key spaces of `pods`, for an index of `block_size`-token blocks
    /// whose router side uses `hash_seed` (`tokenProcessorConfig.hashSeed`).
    pub fn new(mode: IndexKeys, pods: &[Pod], block_size: u32, hash_seed: &str) -> KeySpaces {
        let hashers: Vec<&BlockHasher> = pods.iter().map(|p| p.scheduler().hasher()).collect();
        let all_fast = hashers.iter().all(|h| **h == BlockHasher::Fast);
        let hasher = match (mode, hashers.first()) {
            (IndexKeys::Engine, _) if !all_fast => {
                let h =
                    VllmBlockHasher::new(HashAlgo::Sha256Cbor, VllmVersion::V0_33, Some(hash_seed))
                        .expect("sha256_cbor takes any seed");
                BlockHasher::Vllm(Box::new(h))
            }
            (_, Some(h)) => (*h).clone(),
            (_, None) => BlockHasher::Fast,
        };
        let mut spaces: Vec<Space> = Vec::new();
        let space_of_pod = hashers
            .iter()
            .map(|&h| {
                if *h == hasher {
                    return None;
                }
                Some(
                    spaces
                        .iter()
                        .position(|s| s.hasher == *h)
                        .unwrap_or_else(|| {
                            spaces.push(Space {
                                hasher: h.clone(),
                                keys: Vec::new(),
                            });
                            spaces.len() - 1
                        }),
                )
            })
            .collect();
        KeySpaces {
            mode,
            block_size,
            hasher,
            keys: Vec::new(),
            spaces,
            space_of_pod,
        }
    }

    /// Pods whose hasher differs from the router's, in pod order.
    pub fn pods_hashing_unlike_router(&self) -> Vec<u32> {
        (0..self.space_of_pod.len() as u32)
            .filter(|&p| self.space_of_pod[p as usize].is_some())
            .collect()
    }

    /// Hashes `prompt` for the router and for every other pod hasher.
    pub fn hash(&mut self, prompt: &Prompt, cache_salt: Option<&str>) {
        let bs = self.block_size;
        self.keys.clear();
        let mut chain = ChainState::default();
        self.hasher
            .prompt_keys(prompt, bs, cache_salt, &mut chain, &mut self.keys);
        for s in &mut self.spaces {
            s.keys.clear();
            let mut chain = ChainState::default();
            s.hasher
                .prompt_keys(prompt, bs, cache_salt, &mut chain, &mut s.keys);
        }
    }

    /// Forgets the last prompt (nothing needed its keys).
    pub fn clear(&mut self) {
        self.keys.clear();
        for s in &mut self.spaces {
            s.keys.clear();
        }
    }

    /// The router's keys of the last prompt: what the EPP scores with.
    pub fn request_keys(&self) -> &[u64] {
        &self.keys
    }

    /// The last prompt's keys as `pod` hashes them.
    pub fn pod_keys(&self, pod: u32) -> &[u64] {
        match self.space_of_pod[pod as usize] {
            Some(s) => &self.spaces[s].keys,
            None => &self.keys,
        }
    }

    /// The keys under which the index holds `pod`'s blocks of the last prompt.
    pub fn index_keys(&self, pod: u32) -> &[u64] {
        match self.mode {
            IndexKeys::Request => self.pod_keys(pod),
            IndexKeys::Engine => &self.keys,
        }
    }

    /// Whether every pod hashes like the router.
    pub fn pods_hash_alike(&self) -> bool {
        self.spaces.is_empty()
    }

    /// Whether lookups must translate keys pod by pod (request keys over
    /// pods that hash differently from the router).
    pub fn per_pod(&self) -> bool {
        self.mode == IndexKeys::Request && !self.spaces.is_empty()
    }
}

/// An index (or the pods' caches) read pod by pod under each pod's own keys
/// of the last prompt, merged by key position.
pub struct PerPodKeys<'a, L: ?Sized> {
    /// What answers the lookups.
    pub inner: &'a mut L,
    /// The prompt's keys per pod.
    pub spaces: &'a KeySpaces,
}

impl<L: KvBlockLookup + ?Sized> KvBlockLookup for PerPodKeys<'_, L> {
    fn lookup(
        &mut self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        now_ns: u64,
        out: &mut KeyEntries,
    ) {
        out.clear();
        let n_pods = self.spaces.space_of_pod.len() as u32;
        let mut per_space: Vec<KeyEntries> = Vec::new();
        // The router's own key space (`None`) first, then the others.
        let n_spaces = self.spaces.spaces.len();
        for s in std::iter::once(None).chain((0..n_spaces).map(Some)) {
            let in_space = |p: &EndpointId| self.spaces.space_of_pod.get(p.0 as usize) == Some(&s);
            let members: Vec<EndpointId> = if pods.is_empty() {
                (0..n_pods).map(EndpointId).filter(in_space).collect()
            } else {
                pods.iter().copied().filter(in_space).collect()
            };
            let Some(&first) = members.first() else {
                continue;
            };
            let space_keys = self.spaces.pod_keys(first.0);
            let n = keys.len().min(space_keys.len());
            let mut entries = KeyEntries::default();
            self.inner
                .lookup(model, &space_keys[..n], &members, now_ns, &mut entries);
            per_space.push(entries);
        }
        let n_keys = per_space.iter().map(KeyEntries::n_keys).max().unwrap_or(0);
        for i in 0..n_keys {
            out.push_key(
                per_space
                    .iter()
                    .filter(|e| i < e.n_keys())
                    .flat_map(|e| e.key(i).iter().copied()),
            );
        }
    }
}

impl<L: SpeculativeIndex + ?Sized> SpeculativeIndex for PerPodKeys<'_, L> {
    fn add_speculative(
        &mut self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        expires_at_ns: u64,
    ) {
        for &p in pods {
            let own = self.spaces.pod_keys(p.0);
            let n = keys.len().min(own.len());
            self.inner
                .add_speculative(model, &own[..n], &[p], expires_at_ns);
        }
    }
}
