//! EPP scheduling library: llm-d's endpoint picker, shared by the simulator
//! and the production router.
//!
//! *API boundary:* [`RequestView`], [`EndpointView`] (plain point-in-time
//! views), [`Scheduler::schedule`], the [`KvBlockLookup`] /
//! [`SpeculativeIndex`] traits the KV-block index implements, and
//! [`config::load_yaml`] / [`config::from_env`] to build a [`Scheduler`].
//!
//! *Invariant:* nothing here imports the simulator (`crate::` paths stay
//! inside `epp`), reads a clock, the environment or files, or spawns
//! threads. Time arrives as `now_ns`, randomness as `&mut dyn RngCore`.

pub mod config;
pub mod filter;
pub mod handler;
pub mod lru;
pub mod picker;
pub mod plugin;
pub mod profile;
pub mod scheduler;
pub mod scorer;
pub mod view;

pub use plugin::{
    CycleState, KeyEntries, KvBlockLookup, PodEntry, PreRequestContext, PrefixMatchInfo,
    PrefixSource, SchedulingContext, SpeculativeIndex, Tier,
};
pub use profile::{ProfileRunResult, SchedulingProfile, ScorerMeta};
pub use scheduler::{ScheduleError, Scheduler, SchedulingResult};
pub use view::{EndpointId, EndpointView, PromptChunks, RequestView, TokenPrompt};
