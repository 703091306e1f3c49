//! Where a run's wall-clock time goes, for `kvsim bench`.
//!
//! Wall time is not simulated time: it never reaches a simulated result, and
//! is only measured when asked for ([`super::Simulation::with_phase_times`]).

use std::time::{Duration, Instant};

/// Wall time spent in each part of the simulation loop.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    /// Running the pods between router events (on every pod thread).
    pub pods: Duration,
    /// Merging the pods' outputs in event order: KV-event batches onto their
    /// way to the index, KV pulls, finished requests.
    pub pod_outputs: Duration,
    /// Applying KV-event batches to the router's index.
    pub index: Duration,
    /// Routing arrivals (scoring, picking, dispatch).
    pub routing: Duration,
}

/// Which part a measured span counts towards.
#[derive(Clone, Copy, Debug)]
pub(super) enum Phase {
    Pods,
    PodOutputs,
    Index,
    Routing,
}

/// Measures spans when enabled; does nothing (reads no clock) otherwise.
#[derive(Debug, Default)]
pub(super) struct PhaseClock(Option<PhaseTimes>);

impl PhaseClock {
    pub(super) fn enabled() -> Self {
        PhaseClock(Some(PhaseTimes::default()))
    }

    /// The start of a span, if measuring.
    pub(super) fn start(&self) -> Option<Instant> {
        self.0.as_ref().map(|_| Instant::now())
    }

    /// Adds the time since `start` to `phase`.
    pub(super) fn stop(&mut self, start: Option<Instant>, phase: Phase) {
        if let (Some(t), Some(start)) = (&mut self.0, start) {
            let d = start.elapsed();
            match phase {
                Phase::Pods => t.pods += d,
                Phase::PodOutputs => t.pod_outputs += d,
                Phase::Index => t.index += d,
                Phase::Routing => t.routing += d,
            }
        }
    }

    pub(super) fn times(&self) -> Option<PhaseTimes> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_clock_measures_nothing_and_an_enabled_one_adds_up() {
        let mut off = PhaseClock::default();
        assert!(off.start().is_none());
        off.stop(Some(Instant::now()), Phase::Pods);
        assert_eq!(off.times(), None);

        let mut on = PhaseClock::enabled();
        let s = on.start();
        std::thread::sleep(Duration::from_millis(2));
        on.stop(s, Phase::Index);
        let t = on.times().unwrap();
        assert!(t.index >= Duration::from_millis(2), "{t:?}");
        assert_eq!(t.pods + t.pod_outputs + t.routing, Duration::ZERO);
    }
}
