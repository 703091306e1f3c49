//! KV cache events as a vLLM pod publishes them (`vllm.md` §5).

/// One KV cache event. Hashes are the 64-bit event hashes (or fast keys).
///
/// 16 bytes: a pod emits one `BlockRemoved` per evicted block, millions per
/// run, and each crosses the pod's outbox and the transport queue.
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

/// Moves every event of `src` to the end of `dst`. An empty `dst` takes
/// `src`'s buffer instead of a copy: events cross three queues on their way
/// out of a pod, millions per run, and those queues are empty most of the time.
pub fn move_events(dst: &mut Vec<KvEvent>, src: &mut Vec<KvEvent>) {
    if dst.is_empty() {
        std::mem::swap(dst, src);
    } else {
        dst.append(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_events_keeps_their_order_either_way() {
        let ev = |h| KvEvent::BlockRemoved { block_hash: h };
        let mut dst = Vec::new();
        let mut src = vec![ev(1), ev(2)];
        move_events(&mut dst, &mut src);
        assert!(src.is_empty());
        src.push(ev(3));
        move_events(&mut dst, &mut src);
        assert!(src.is_empty());
        assert_eq!(dst, vec![ev(1), ev(2), ev(3)]);
    }

    #[test]
    fn events_stay_small() {
        assert_eq!(std::mem::size_of::<super::KvEvent>(), 16);
    }
}
