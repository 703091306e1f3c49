//! KV cache events as a vLLM pod publishes them (`vllm.md` §5).

/// One KV cache event. Hashes are the 64-bit event hashes (or fast keys).
/// Pods log their events in an [`EventLog`]; this is one of them on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// Newly full blocks of one request in one allocation, in chain order.
    BlockStored(Box<StoredBlocks>),
    /// One evicted block (vLLM emits one event per evicted block, whose
    /// `block_hashes` list therefore always holds exactly one hash).
    BlockRemoved {
        /// Hash of the evicted block.
        block_hash: u64,
    },
    /// The whole prefix cache was reset.
    AllBlocksCleared,
}

/// The payload of [`KvEvent::BlockStored`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredBlocks {
    /// Hashes of the stored blocks, parent first.
    pub block_hashes: Vec<u64>,
    /// Hash of the block before the first one, `None` at the chain root.
    pub parent_block_hash: Option<u64>,
    /// Tokens per block.
    pub block_size: u32,
}

impl KvEvent {
    /// vLLM's class name, used as the wire tag.
    pub fn type_name(&self) -> &'static str {
        match self {
            KvEvent::BlockStored(_) => "BlockStored",
            KvEvent::BlockRemoved { .. } => "BlockRemoved",
            KvEvent::AllBlocksCleared => "AllBlocksCleared",
        }
    }

    /// The block hashes the event carries (empty for `AllBlocksCleared`).
    pub fn block_hashes(&self) -> &[u64] {
        match self {
            KvEvent::BlockStored(stored) => &stored.block_hashes,
            KvEvent::BlockRemoved { block_hash } => std::slice::from_ref(block_hash),
            KvEvent::AllBlocksCleared => &[],
        }
    }
}

/// A pod's KV events in publication order, kept flat: one entry per run of
/// events and every hash in one buffer.
///
/// Why: a pod emits one `BlockRemoved` per evicted block and a `BlockStored`
/// per allocation, millions per run, and they cross three buffers on their
/// way out of the pod. Here an event costs its hashes and, for a run of
/// removals, nothing more; no event owns an allocation. Consecutive
/// `BlockRemoved` events always share one entry, so two logs are equal
/// exactly when they hold the same events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLog {
    entries: Vec<Entry>,
    hashes: Vec<u64>,
    n_events: usize,
}

/// One `BlockStored`, a run of `BlockRemoved`s, or one `AllBlocksCleared`,
/// owning the next `n_hashes` hashes of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    kind: EntryKind,
    n_hashes: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryKind {
    Stored {
        parent_block_hash: Option<u64>,
        block_size: u32,
    },
    Removed,
    Cleared,
}

/// A stretch of an [`EventLog`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoggedEvents<'a> {
    /// One `BlockStored`.
    Stored {
        /// Hashes of the stored blocks, parent first.
        block_hashes: &'a [u64],
        /// Hash of the block before the first one.
        parent_block_hash: Option<u64>,
        /// Tokens per block.
        block_size: u32,
    },
    /// One `BlockRemoved` per hash, in order.
    Removed(&'a [u64]),
    /// One `AllBlocksCleared`.
    Cleared,
}

impl EventLog {
    /// Events logged (each `BlockRemoved` counts as one).
    pub fn n_events(&self) -> usize {
        self.n_events
    }

    /// Whether no event is logged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every event, keeping the buffers.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.hashes.clear();
        self.n_events = 0;
    }

    /// Logs a `BlockStored` of `block_hashes`.
    pub fn push_stored(
        &mut self,
        block_hashes: &[u64],
        parent_block_hash: Option<u64>,
        block_size: u32,
    ) {
        self.entries.push(Entry {
            kind: EntryKind::Stored {
                parent_block_hash,
                block_size,
            },
            n_hashes: hash_count(block_hashes.len()),
        });
        self.hashes.extend_from_slice(block_hashes);
        self.n_events += 1;
    }

    /// Logs one `BlockRemoved` per hash of `block_hashes`, in order.
    pub fn push_removed(&mut self, block_hashes: &[u64]) {
        if block_hashes.is_empty() {
            return;
        }
        match self.entries.last_mut() {
            Some(Entry {
                kind: EntryKind::Removed,
                n_hashes,
            }) => *n_hashes = hash_count(*n_hashes as usize + block_hashes.len()),
            _ => self.entries.push(Entry {
                kind: EntryKind::Removed,
                n_hashes: hash_count(block_hashes.len()),
            }),
        }
        self.hashes.extend_from_slice(block_hashes);
        self.n_events += block_hashes.len();
    }

    /// Logs an `AllBlocksCleared`.
    pub fn push_cleared(&mut self) {
        self.entries.push(Entry {
            kind: EntryKind::Cleared,
            n_hashes: 0,
        });
        self.n_events += 1;
    }

    /// Logs `event`.
    pub fn push(&mut self, event: &KvEvent) {
        match event {
            KvEvent::BlockStored(s) => {
                self.push_stored(&s.block_hashes, s.parent_block_hash, s.block_size)
            }
            KvEvent::BlockRemoved { block_hash } => self.push_removed(&[*block_hash]),
            KvEvent::AllBlocksCleared => self.push_cleared(),
        }
    }

    /// Moves every event of `other` to the end of this log. An empty log
    /// takes `other`'s buffers instead of a copy: logs are drained into
    /// empty ones most of the time.
    pub fn append(&mut self, other: &mut EventLog) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            std::mem::swap(self, other);
            return;
        }
        let mut entries = other.entries.drain(..);
        if let Some(first) = entries.next() {
            match self.entries.last_mut() {
                Some(last)
                    if last.kind == EntryKind::Removed && first.kind == EntryKind::Removed =>
                {
                    last.n_hashes = hash_count(last.n_hashes as usize + first.n_hashes as usize);
                }
                _ => self.entries.push(first),
            }
        }
        self.entries.extend(entries);
        self.hashes.append(&mut other.hashes);
        self.n_events += std::mem::take(&mut other.n_events);
    }

    /// The logged events in order, runs of removals together.
    pub fn iter(&self) -> impl Iterator<Item = LoggedEvents<'_>> + '_ {
        let mut rest = &self.hashes[..];
        self.entries.iter().map(move |e| {
            let (hashes, tail) = rest.split_at(e.n_hashes as usize);
            rest = tail;
            match e.kind {
                EntryKind::Stored {
                    parent_block_hash,
                    block_size,
                } => LoggedEvents::Stored {
                    block_hashes: hashes,
                    parent_block_hash,
                    block_size,
                },
                EntryKind::Removed => LoggedEvents::Removed(hashes),
                EntryKind::Cleared => LoggedEvents::Cleared,
            }
        })
    }

    /// The logged events one by one, as a pod publishes them.
    pub fn to_events(&self) -> Vec<KvEvent> {
        let mut out = Vec::with_capacity(self.n_events);
        for e in self.iter() {
            match e {
                LoggedEvents::Stored {
                    block_hashes,
                    parent_block_hash,
                    block_size,
                } => out.push(KvEvent::BlockStored(Box::new(StoredBlocks {
                    block_hashes: block_hashes.to_vec(),
                    parent_block_hash,
                    block_size,
                }))),
                LoggedEvents::Removed(hashes) => out.extend(
                    hashes
                        .iter()
                        .map(|&block_hash| KvEvent::BlockRemoved { block_hash }),
                ),
                LoggedEvents::Cleared => out.push(KvEvent::AllBlocksCleared),
            }
        }
        out
    }
}

impl<'a> FromIterator<&'a KvEvent> for EventLog {
    fn from_iter<I: IntoIterator<Item = &'a KvEvent>>(events: I) -> EventLog {
        let mut log = EventLog::default();
        for e in events {
            log.push(e);
        }
        log
    }
}

/// A hash count as an entry keeps it (a pool holds at most 2^29 blocks).
fn hash_count(n: usize) -> u32 {
    u32::try_from(n).expect("fewer than 2^32 hashes in one entry")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stored(keys: &[u64]) -> KvEvent {
        KvEvent::BlockStored(Box::new(StoredBlocks {
            block_hashes: keys.to_vec(),
            parent_block_hash: keys.first().map(|k| k ^ 1),
            block_size: 16,
        }))
    }

    fn event() -> impl Strategy<Value = KvEvent> {
        prop_oneof![
            4 => (0u64..8).prop_map(|block_hash| KvEvent::BlockRemoved { block_hash }),
            2 => prop::collection::vec(0u64..8, 0..4).prop_map(|k| stored(&k)),
            1 => Just(KvEvent::AllBlocksCleared),
        ]
    }

    #[test]
    fn removals_in_a_row_share_an_entry_across_appends() {
        let removed = |h| KvEvent::BlockRemoved { block_hash: h };
        let mut log: EventLog = [removed(1), removed(2)].iter().collect();
        let mut more: EventLog = [removed(3), stored(&[4, 5]), removed(6)].iter().collect();
        log.append(&mut more);
        assert!(more.is_empty());
        assert_eq!(log.n_events(), 5);
        assert_eq!(
            log.iter().collect::<Vec<_>>(),
            vec![
                LoggedEvents::Removed(&[1, 2, 3]),
                LoggedEvents::Stored {
                    block_hashes: &[4, 5],
                    parent_block_hash: Some(5),
                    block_size: 16
                },
                LoggedEvents::Removed(&[6]),
            ]
        );
    }

    proptest! {
        /// However a stream of events is cut into logs and appended, the
        /// result holds the same events, and equal logs hold equal events.
        #[test]
        fn appending_logs_keeps_every_event_in_order(
            events in prop::collection::vec(event(), 0..24),
            cuts in prop::collection::vec(0usize..24, 0..4),
        ) {
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
            bounds.sort_unstable();
            let mut log = EventLog::default();
            let mut start = 0;
            for end in bounds.into_iter().chain([events.len()]) {
                let mut part: EventLog = events[start..end].iter().collect();
                log.append(&mut part);
                prop_assert!(part.is_empty());
                start = end;
            }
            prop_assert_eq!(log.to_events(), events.clone());
            prop_assert_eq!(log.n_events(), events.len());
            prop_assert_eq!(&log, &events.iter().collect::<EventLog>());
        }
    }
}
