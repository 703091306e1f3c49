//! A bounded least-recently-used map with O(1) touch, insert and eviction.
//!
//! Used by the approximate prefix index (per-pod LRU of block hashes), the
//! no-hit-LRU scorer and the KV-block index. Eviction order depends only on
//! the sequence of operations, never on hash-map iteration order, so it is
//! deterministic.

use rustc_hash::FxHashMap;
use std::hash::Hash;

const NIL: u32 = u32::MAX;

struct Node<K, V> {
    key: K,
    value: V,
    prev: u32,
    next: u32,
}

/// Bounded LRU map. `head` is the least recently used entry, `tail` the most.
pub struct LruMap<K, V> {
    capacity: usize,
    map: FxHashMap<K, u32>,
    nodes: Vec<Node<K, V>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
}

impl<K: Copy + Eq + Hash, V: Default> LruMap<K, V> {
    /// An empty map holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        LruMap {
            capacity: capacity.max(1),
            map: FxHashMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value of `key` without touching it.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|&i| &self.nodes[i as usize].value)
    }

    /// The value of `key` without touching it, mutably.
    pub fn peek_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.map.get(key) {
            Some(&i) => Some(&mut self.nodes[i as usize].value),
            None => None,
        }
    }

    /// The value of `key`, marking it most recently used.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = *self.map.get(key)?;
        self.move_to_tail(i);
        Some(&mut self.nodes[i as usize].value)
    }

    /// The value of `key` (inserted as `V::default()` if absent), marking it
    /// most recently used; inserting may evict the least recently used entry.
    pub fn get_or_insert_default(&mut self, key: K) -> &mut V {
        let i = match self.map.get(&key) {
            Some(&i) => {
                self.move_to_tail(i);
                i
            }
            None => {
                self.insert(key, V::default());
                *self.map.get(&key).expect("just inserted")
            }
        };
        &mut self.nodes[i as usize].value
    }

    /// Inserts or replaces `key` as most recently used; returns the entry
    /// evicted to make room, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(&i) = self.map.get(&key) {
            self.nodes[i as usize].value = value;
            self.move_to_tail(i);
            return None;
        }
        let evicted = if self.map.len() >= self.capacity {
            self.pop_lru()
        } else {
            None
        };
        let node = Node {
            key,
            value,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.link_tail(i);
        self.map.insert(key, i);
        evicted
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.map.remove(key)?;
        self.unlink(i);
        self.free.push(i);
        Some(std::mem::take(&mut self.nodes[i as usize].value))
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_lru(&mut self) -> Option<(K, V)> {
        if self.head == NIL {
            return None;
        }
        let i = self.head;
        self.unlink(i);
        self.free.push(i);
        let key = self.nodes[i as usize].key;
        self.map.remove(&key);
        Some((key, std::mem::take(&mut self.nodes[i as usize].value)))
    }

    /// The least recently used key, if any.
    #[cfg(test)]
    pub fn lru_key(&self) -> Option<K> {
        (self.head != NIL).then(|| self.nodes[self.head as usize].key)
    }

    /// Keys from least to most recently used.
    pub fn keys_lru_order(&self) -> Vec<K> {
        let mut out = Vec::with_capacity(self.map.len());
        let mut i = self.head;
        while i != NIL {
            out.push(self.nodes[i as usize].key);
            i = self.nodes[i as usize].next;
        }
        out
    }

    fn move_to_tail(&mut self, i: u32) {
        if self.tail == i {
            return;
        }
        self.unlink(i);
        self.link_tail(i);
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = NIL;
    }

    fn link_tail(&mut self, i: u32) {
        self.nodes[i as usize].prev = self.tail;
        self.nodes[i as usize].next = NIL;
        if self.tail == NIL {
            self.head = i;
        } else {
            self.nodes[self.tail as usize].next = i;
        }
        self.tail = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_touch_refreshes() {
        let mut m: LruMap<u64, u32> = LruMap::new(2);
        assert!(m.insert(1, 10).is_none());
        assert!(m.insert(2, 20).is_none());
        assert_eq!(m.get_mut(&1).copied(), Some(10)); // 2 is now LRU
        assert_eq!(m.insert(3, 30), Some((2, 20)));
        assert_eq!(m.keys_lru_order(), vec![1, 3]);
        assert_eq!(m.remove(&1), Some(10));
        assert_eq!(m.keys_lru_order(), vec![3]);
        m.insert(4, 40);
        m.insert(5, 50);
        assert_eq!(m.keys_lru_order(), vec![4, 5]);
        assert_eq!(m.len(), 2);
        assert_eq!(m.peek(&4), Some(&40));
        assert_eq!(m.pop_lru(), Some((4, 40)));
        assert_eq!(m.lru_key(), Some(5));
    }
}
