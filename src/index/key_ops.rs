//! A pod's KV events reduced to what the index reads: runs of stored or
//! removed block keys, each a span of consecutive keys.
//!
//! Why: a pod emits one `BlockRemoved` per evicted block. The simulator
//! reduces a pod's [`EventLog`] on the pod's own thread. A prompt's blocks have
//! consecutive keys when they are dense ([`crate::kv::block_key`]), and a
//! request frees its blocks in reverse, so eviction removes them in
//! descending runs: a span stands for dozens of keys, which the router then
//! applies a page at a time instead of key by key.

use crate::kv::dense_map::leading_run;
use crate::kv::events::{EventLog, LoggedEvents};

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

/// `n_keys` consecutive keys from `first` (up, or down when `descending`)
/// under one op.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KeyRun {
    /// The op.
    pub op: KeyOp,
    /// Whether the keys count down from `first`.
    pub descending: bool,
    /// Keys it covers (0 for a clear).
    pub n_keys: u32,
    /// The first key in event order.
    pub first: u64,
}

impl KeyRun {
    /// The keys, in event order.
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        (0..u64::from(self.n_keys)).map(|i| {
            if self.descending {
                self.first - i
            } else {
                self.first + i
            }
        })
    }

    /// The lowest key (the keys are `lowest..lowest + n_keys`).
    pub fn lowest(&self) -> u64 {
        if self.descending {
            self.first - (u64::from(self.n_keys.max(1)) - 1)
        } else {
            self.first
        }
    }

    /// The last key in event order.
    fn last(&self) -> u64 {
        let n = u64::from(self.n_keys.max(1)) - 1;
        if self.descending {
            self.first - n
        } else {
            self.first + n
        }
    }
}

/// The size of one batch in a [`KeyOpQueue`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchLen {
    /// Events the batch was made of (what the lag model charges for).
    pub n_events: usize,
    /// Its runs.
    pub n_runs: usize,
}

/// One batch taken from a [`KeyOpQueue`]: its runs, in event order.
#[derive(Clone, Copy, Debug)]
pub struct KeyBatch<'a> {
    /// The runs.
    pub runs: &'a [KeyRun],
}

/// Batches of key runs, pushed at the back and taken from the front. A run
/// never spans two batches.
#[derive(Debug, Default)]
pub struct KeyOpQueue {
    runs: Vec<KeyRun>,
    /// Entries before this were taken.
    head: usize,
}

impl KeyOpQueue {
    /// Appends the events of `log` as one batch; its size.
    pub fn push_log(&mut self, log: &EventLog) -> BatchLen {
        self.compact();
        let runs0 = self.runs.len();
        // The run still growing; pushed when another starts.
        let mut open: Option<KeyRun> = None;
        for events in log.iter() {
            let (op, keys) = match events {
                LoggedEvents::Stored { block_hashes, .. } => (KeyOp::Store, block_hashes),
                // Removals one key apart, in one direction, join in one
                // step: a pool evicts a freed request's blocks in order.
                LoggedEvents::Removed(keys) => (KeyOp::Remove, keys),
                LoggedEvents::Cleared => {
                    self.runs.extend(open.take());
                    self.runs.push(KeyRun {
                        op: KeyOp::Clear,
                        descending: false,
                        n_keys: 0,
                        first: 0,
                    });
                    continue;
                }
            };
            let mut k = 0;
            while k < keys.len() {
                let (n, down) = leading_run(&keys[k..]);
                self.push_run(&mut open, op, keys[k], n as u32, down);
                k += n;
            }
        }
        self.runs.extend(open);
        BatchLen {
            n_events: log.n_events(),
            n_runs: self.runs.len() - runs0,
        }
    }

    /// Adds the `n ≥ 1` keys from `first` (down when `descending`) under
    /// `op` to the open run if they continue it, else closes it and opens
    /// theirs.
    fn push_run(
        &mut self,
        open: &mut Option<KeyRun>,
        op: KeyOp,
        first: u64,
        n: u32,
        descending: bool,
    ) {
        if let Some(r) = open {
            if r.op == op {
                let last = r.last();
                let (up, down) = (n == 1 || !descending, n == 1 || descending);
                if up && (r.n_keys == 1 || !r.descending) && last.checked_add(1) == Some(first) {
                    r.descending = false;
                    r.n_keys += n;
                    return;
                }
                if down && (r.n_keys == 1 || r.descending) && last.checked_sub(1) == Some(first) {
                    r.descending = true;
                    r.n_keys += n;
                    return;
                }
            }
            self.runs.push(*r);
        }
        *open = Some(KeyRun {
            op,
            descending: n > 1 && descending,
            n_keys: n,
            first,
        });
    }

    /// The oldest batch, of size `len`, removed from the queue (the slice
    /// stays valid until the next push).
    pub fn take(&mut self, len: BatchLen) -> KeyBatch<'_> {
        let r = self.head;
        self.head += len.n_runs;
        KeyBatch {
            runs: &self.runs[r..self.head],
        }
    }

    /// Drops what was taken once it is most of the buffer.
    fn compact(&mut self) {
        if self.head > 0 && self.head * 2 >= self.runs.len() {
            self.runs.drain(..self.head);
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::events::{KvEvent, StoredBlocks};
    use proptest::prelude::*;

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

    fn push(q: &mut KeyOpQueue, events: &[KvEvent]) -> BatchLen {
        q.push_log(&events.iter().collect())
    }

    fn ops(b: KeyBatch<'_>) -> Vec<(KeyOp, Vec<u64>)> {
        b.runs.iter().map(|r| (r.op, r.keys().collect())).collect()
    }

    #[test]
    fn consecutive_keys_become_spans_within_a_batch_only() {
        let mut q = KeyOpQueue::default();
        let a = push(
            &mut q,
            &[stored(&[1, 2]), stored(&[3, 7]), removed(9), removed(8)],
        );
        assert_eq!(
            a,
            BatchLen {
                n_events: 4,
                n_runs: 3
            }
        );
        // A new batch starts a new run even when it continues one; clears never merge.
        let b = push(
            &mut q,
            &[
                removed(7),
                KvEvent::AllBlocksCleared,
                KvEvent::AllBlocksCleared,
            ],
        );
        assert_eq!((b.n_events, b.n_runs), (3, 3));
        let runs = q.take(a).runs.to_vec();
        assert_eq!(
            runs.iter()
                .map(|r| (r.lowest(), r.n_keys, r.descending))
                .collect::<Vec<_>>(),
            vec![(1, 3, false), (7, 1, false), (8, 2, true)]
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
    fn spans_stop_at_the_ends_of_the_key_range() {
        let mut q = KeyOpQueue::default();
        let a = push(&mut q, &[stored(&[u64::MAX - 1, u64::MAX, 0, 1, 0])]);
        assert_eq!(
            ops(q.take(a)),
            vec![
                (KeyOp::Store, vec![u64::MAX - 1, u64::MAX]),
                (KeyOp::Store, vec![0, 1]),
                (KeyOp::Store, vec![0]),
            ]
        );
    }

    /// The (op, key) sequence a batch of `(removal, keys)` events stands for.
    fn flat(batch: &[(bool, Vec<u64>)]) -> Vec<(KeyOp, u64)> {
        batch
            .iter()
            .flat_map(|(rm, keys)| match rm {
                true => keys.iter().map(|&k| (KeyOp::Remove, k)).collect::<Vec<_>>(),
                false => keys.iter().map(|&k| (KeyOp::Store, k)).collect(),
            })
            .collect()
    }

    fn flat_runs(runs: &[KeyRun]) -> Vec<(KeyOp, u64)> {
        runs.iter()
            .flat_map(|r| r.keys().map(move |k| (r.op, k)))
            .collect()
    }

    proptest! {
        /// Whatever the keys, the runs give them back in order, batch by
        /// batch, each run a span from its lowest key.
        #[test]
        fn runs_give_back_every_key_in_order(
            batches in prop::collection::vec(
                prop::collection::vec(
                    (any::<bool>(), prop_oneof![
                        // Consecutive keys, up or down, which may continue the last run.
                        (0u64..12, 1u64..4).prop_map(|(lo, n)| (lo..lo + n).collect()),
                        (0u64..12, 1u64..6).prop_map(|(lo, n)| (lo..lo + n).rev().collect()),
                        // Runs that would cross an end of the u64 range.
                        Just(vec![1, 0, u64::MAX]),
                        Just(vec![u64::MAX - 1, u64::MAX, 0]),
                        prop::collection::vec(prop_oneof![0u64..12, Just(u64::MAX), any::<u64>()], 1..5),
                    ]),
                    0..30,
                ),
                1..12,
            ),
        ) {
            let mut q = KeyOpQueue::default();
            let mut lens = Vec::new();
            for (i, b) in batches.iter().enumerate() {
                // A removal stands for one `BlockRemoved` per key.
                let events: Vec<KvEvent> = b
                    .iter()
                    .flat_map(|(rm, keys)| match rm {
                        true => keys.iter().map(|&k| removed(k)).collect::<Vec<_>>(),
                        false => vec![stored(keys)],
                    })
                    .collect();
                lens.push(push(&mut q, &events));
                // Take every other batch late: compaction must keep the rest.
                if i % 2 == 1 {
                    prop_assert_eq!(flat_runs(q.take(lens[i - 1]).runs), flat(&batches[i - 1]));
                    let taken = q.take(lens[i]);
                    for r in taken.runs {
                        prop_assert!(r.keys().all(|k| k >= r.lowest() && k - r.lowest() < u64::from(r.n_keys)));
                    }
                    prop_assert_eq!(flat_runs(taken.runs), flat(b));
                }
            }
        }
    }
}
