//! The approximate prefix scorer's router-side index (GIE `indexer.go`):
//! `hash → set<pod>` plus a per-pod LRU of hashes. An LRU eviction removes
//! the pod from that hash's set. It is never corrected by real evictions.

use crate::epp::lru::LruMap;
use crate::epp::view::EndpointId;
use rustc_hash::FxHashMap;

/// Router-side map of which pods were sent which prefix blocks.
#[derive(Default)]
pub struct ApproxIndex {
    hash_to_pods: FxHashMap<u64, Vec<EndpointId>>,
    pod_lru: FxHashMap<EndpointId, LruMap<u64, ()>>,
}

impl ApproxIndex {
    /// Pods recorded for `hash` (insertion order).
    pub fn pods(&self, hash: u64) -> &[EndpointId] {
        self.hash_to_pods.get(&hash).map_or(&[], |v| v.as_slice())
    }

    /// Records that `pod` was sent `hashes`, touching them in prompt order
    /// (so block 0 ends up the LRU-oldest of the batch). A new pod's LRU
    /// gets `capacity` entries.
    pub fn add(&mut self, hashes: &[u64], pod: EndpointId, capacity: usize) {
        let lru = self
            .pod_lru
            .entry(pod)
            .or_insert_with(|| LruMap::new(capacity));
        for &h in hashes {
            if let Some((old, ())) = lru.insert(h, ()) {
                if let Some(set) = self.hash_to_pods.get_mut(&old) {
                    set.retain(|&p| p != pod);
                    if set.is_empty() {
                        self.hash_to_pods.remove(&old);
                    }
                }
            }
            let set = self.hash_to_pods.entry(h).or_default();
            if !set.contains(&pod) {
                set.push(pod);
            }
        }
    }

    /// Forgets `pod` (it left the pool).
    #[cfg(test)]
    pub fn remove_pod(&mut self, pod: EndpointId) {
        if let Some(lru) = self.pod_lru.remove(&pod) {
            for h in lru.keys_lru_order() {
                if let Some(set) = self.hash_to_pods.get_mut(&h) {
                    set.retain(|&p| p != pod);
                    if set.is_empty() {
                        self.hash_to_pods.remove(&h);
                    }
                }
            }
        }
    }

    /// Number of hashes held for `pod`.
    #[cfg(test)]
    pub fn pod_len(&self, pod: EndpointId) -> usize {
        self.pod_lru.get(&pod).map_or(0, |l| l.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_eviction_removes_pod_from_hash() {
        let mut ix = ApproxIndex::default();
        ix.add(&[1, 2, 3], EndpointId(0), 2);
        // capacity 2: hash 1 (touched first) was evicted
        assert!(ix.pods(1).is_empty());
        assert_eq!(ix.pods(2), &[EndpointId(0)]);
        assert_eq!(ix.pods(3), &[EndpointId(0)]);
        ix.add(&[2], EndpointId(1), 2);
        assert_eq!(ix.pods(2), &[EndpointId(0), EndpointId(1)]);
        ix.remove_pod(EndpointId(0));
        assert_eq!(ix.pods(2), &[EndpointId(1)]);
        assert!(ix.pods(3).is_empty());
        assert_eq!(ix.pod_len(EndpointId(1)), 1);
    }
}
