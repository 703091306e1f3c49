//! KV cache events as a vLLM pod publishes them (`vllm.md` §5).

/// One KV cache event. Hashes are the 64-bit event hashes (or fast keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// Newly full blocks of one request in one allocation, in chain order.
    BlockStored {
        /// Hashes of the stored blocks, parent first.
        block_hashes: Vec<u64>,
        /// Hash of the block before the first one, `None` at the chain root.
        parent_block_hash: Option<u64>,
        /// Tokens per block.
        block_size: u32,
    },
    /// One evicted block (vLLM emits one event per evicted block, whose
    /// `block_hashes` list therefore always holds exactly one hash).
    BlockRemoved {
        /// Hash of the evicted block.
        block_hash: u64,
    },
    /// The whole prefix cache was reset.
    AllBlocksCleared,
}

impl KvEvent {
    /// vLLM's class name, used as the wire tag.
    pub fn type_name(&self) -> &'static str {
        match self {
            KvEvent::BlockStored { .. } => "BlockStored",
            KvEvent::BlockRemoved { .. } => "BlockRemoved",
            KvEvent::AllBlocksCleared => "AllBlocksCleared",
        }
    }

    /// The block hashes the event carries (empty for `AllBlocksCleared`).
    pub fn block_hashes(&self) -> &[u64] {
        match self {
            KvEvent::BlockStored { block_hashes, .. } => block_hashes,
            KvEvent::BlockRemoved { block_hash } => std::slice::from_ref(block_hash),
            KvEvent::AllBlocksCleared => &[],
        }
    }
}
