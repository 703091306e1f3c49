//! KV-block index (llm-d-kv-cache `kvblock` in-memory backend) and KV-event
//! application.
//!
//! *API boundary:* [`KvIndex`] implements the EPP's
//! [`KvBlockLookup`](crate::epp::KvBlockLookup) and
//! [`SpeculativeIndex`](crate::epp::SpeculativeIndex); events arrive through
//! [`KvIndex::apply`] (wire events) or, from simulated engines, as key runs
//! through [`KvIndex::apply_key_batch`]. The lag model (batching, transport, workers, Redis
//! latency) lives in the simulator and only decides *when* they are applied.
//!
//! *Invariant:* pure data structure: no clock, no IO; eviction order depends
//! only on the sequence of calls.

pub mod event;
pub mod key_ops;
mod masks;
pub mod memory;

pub use event::KvEvent;
pub use memory::{ClearedPolicy, IndexConfig, KvIndex, LookupStop, ModelId};
