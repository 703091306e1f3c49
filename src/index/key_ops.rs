//! A pod's KV events reduced to what the index reads: runs of stored or
//! removed block keys, in flat buffers.
//!
//! Why: a `BlockStored` event owns a boxed hash list and a pod emits one
//! `BlockRemoved` per evicted block. The simulator reduces the events on the
//! pod's own thread, which frees them there, and the router then reads
//! plain keys in order instead of chasing one box per event.

use crate::kv::events::KvEvent;

/// What a run of keys does to the pod's entries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeyOp {
    /// `BlockStored`: the keys are added.
    Store,
    /// `BlockRemoved`: the keys are removed.
    Remove,
    /// `AllBlocksCleared` (no keys).
    Clear,
}

/// Consecutive keys under one op.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KeyRun {
    /// The op.
    pub op: KeyOp,
    /// Keys it covers.
    pub n_keys: u32,
}

/// The size of one batch in a [`KeyOpQueue`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchLen {
    /// Events the batch was made of (what the lag model charges for).
    pub n_events: usize,
    /// Its runs.
    pub n_runs: usize,
    /// Its keys.
    pub n_keys: usize,
}

/// One batch taken from a [`KeyOpQueue`].
#[derive(Clone, Copy, Debug)]
pub struct KeyBatch<'a> {
    /// The runs, in event order.
    pub runs: &'a [KeyRun],
    /// Their keys, run after run.
    pub keys: &'a [u64],
}

impl KeyBatch<'_> {
    /// Each run with its keys.
    pub fn iter(&self) -> impl Iterator<Item = (KeyOp, &[u64])> + '_ {
        let mut keys = self.keys;
        self.runs.iter().map(move |r| {
            let (now, rest) = keys.split_at(r.n_keys as usize);
            keys = rest;
            (r.op, now)
        })
    }
}

/// Batches of key runs, pushed at the back and taken from the front. A run
/// never spans two batches.
#[derive(Debug, Default)]
pub struct KeyOpQueue {
    runs: Vec<KeyRun>,
    keys: Vec<u64>,
    /// Entries before these were taken.
    run_head: usize,
    key_head: usize,
}

impl KeyOpQueue {
    /// Appends `events` as one batch; its size.
    pub fn push_events(&mut self, events: impl IntoIterator<Item = KvEvent>) -> BatchLen {
        self.compact();
        let (runs0, keys0) = (self.runs.len(), self.keys.len());
        let mut n_events = 0;
        for ev in events {
            n_events += 1;
            let (op, keys) = match &ev {
                KvEvent::BlockStored(s) => (KeyOp::Store, &s.block_hashes[..]),
                KvEvent::BlockRemoved { block_hash } => {
                    (KeyOp::Remove, std::slice::from_ref(block_hash))
                }
                KvEvent::AllBlocksCleared => (KeyOp::Clear, &[][..]),
            };
            self.keys.extend_from_slice(keys);
            match self.runs[runs0..].last_mut() {
                Some(last) if last.op == op && op != KeyOp::Clear => {
                    last.n_keys += keys.len() as u32
                }
                _ => self.runs.push(KeyRun {
                    op,
                    n_keys: keys.len() as u32,
                }),
            }
        }
        BatchLen {
            n_events,
            n_runs: self.runs.len() - runs0,
            n_keys: self.keys.len() - keys0,
        }
    }

    /// The oldest batch, of size `len`, removed from the queue (the slices
    /// stay valid until the next push).
    pub fn take(&mut self, len: BatchLen) -> KeyBatch<'_> {
        let (r, k) = (self.run_head, self.key_head);
        self.run_head += len.n_runs;
        self.key_head += len.n_keys;
        KeyBatch {
            runs: &self.runs[r..self.run_head],
            keys: &self.keys[k..self.key_head],
        }
    }

    /// Drops what was taken once it is most of the buffers.
    fn compact(&mut self) {
        if self.run_head > 0 && self.run_head * 2 >= self.runs.len() {
            self.runs.drain(..self.run_head);
            self.run_head = 0;
        }
        if self.key_head > 0 && self.key_head * 2 >= self.keys.len() {
            self.keys.drain(..self.key_head);
            self.key_head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::events::StoredBlocks;

    fn stored(keys: &[u64]) -> KvEvent {
        KvEvent::BlockStored(Box::new(StoredBlocks {
            block_hashes: keys.to_vec(),
            parent_block_hash: None,
            block_size: 16,
        }))
    }

    fn removed(k: u64) -> KvEvent {
        KvEvent::BlockRemoved { block_hash: k }
    }

    fn ops(b: KeyBatch<'_>) -> Vec<(KeyOp, Vec<u64>)> {
        b.iter().map(|(op, k)| (op, k.to_vec())).collect()
    }

    #[test]
    fn events_become_runs_within_a_batch_only() {
        let mut q = KeyOpQueue::default();
        let a = q.push_events([stored(&[1, 2]), stored(&[3]), removed(9), removed(8)]);
        assert_eq!(
            a,
            BatchLen {
                n_events: 4,
                n_runs: 2,
                n_keys: 5
            }
        );
        // A new batch starts a new run even under the same op; clears never merge.
        let b = q.push_events([
            removed(7),
            KvEvent::AllBlocksCleared,
            KvEvent::AllBlocksCleared,
        ]);
        assert_eq!((b.n_events, b.n_runs, b.n_keys), (3, 3, 1));
        assert_eq!(
            ops(q.take(a)),
            vec![(KeyOp::Store, vec![1, 2, 3]), (KeyOp::Remove, vec![9, 8])]
        );
        assert_eq!(
            ops(q.take(b)),
            vec![
                (KeyOp::Remove, vec![7]),
                (KeyOp::Clear, vec![]),
                (KeyOp::Clear, vec![])
            ]
        );
    }

    #[test]
    fn taken_batches_are_compacted_away_and_order_is_kept() {
        let mut q = KeyOpQueue::default();
        let mut lens = std::collections::VecDeque::new();
        let mut next = 0u64;
        let mut expect = 0u64;
        for round in 0..200u64 {
            for _ in 0..(round % 3 + 1) {
                let keys: Vec<u64> = (next..next + round % 5 + 1).collect();
                next += keys.len() as u64;
                lens.push_back(q.push_events([stored(&keys)]));
            }
            for _ in 0..(round % 2 + 1) {
                let Some(len) = lens.pop_front() else { break };
                for (_, keys) in q.take(len).iter() {
                    for &k in keys {
                        assert_eq!(k, expect);
                        expect += 1;
                    }
                }
            }
        }
        assert_eq!(q.keys.len() - q.key_head, (next - expect) as usize);
        assert!(q.keys.capacity() < 4 * next as usize);
    }
}
