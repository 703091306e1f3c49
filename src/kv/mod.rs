//! Paged KV memory: vLLM's block pool and free queue, block hashing, KV events.

pub mod block_key;
pub mod block_pool;
pub mod dense_map;
pub mod events;
pub mod free_queue;
pub mod hash;
pub mod hasher;
