//! KV events as the index consumes them (vLLM `BlockStored`, `BlockRemoved`,
//! `AllBlocksCleared`), already decoded from msgpack.

/// One KV event of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// Blocks became cached (full blocks, in prompt order).
    BlockStored {
        /// Engine block hashes (u64, last 8 bytes big-endian when bytes).
        block_hashes: Vec<u64>,
        /// Engine hash of the block before the first one, if any.
        parent: Option<u64>,
        /// Token ids of the stored blocks (`block_size` per block), if sent.
        tokens: Option<Vec<u32>>,
        /// Storage medium (`GPU`, `CPU`, ...); `None` means GPU.
        medium: Option<String>,
    },
    /// Blocks were evicted.
    BlockRemoved {
        /// Engine block hashes.
        block_hashes: Vec<u64>,
        /// Storage medium; `None` means GPU.
        medium: Option<String>,
    },
    /// The pod dropped its whole prefix cache (reset).
    AllBlocksCleared,
}
