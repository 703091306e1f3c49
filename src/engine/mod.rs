//! Simulation clock, event queue, RNG streams and the main loop.

pub mod queue;
pub mod rng;
pub mod time;
