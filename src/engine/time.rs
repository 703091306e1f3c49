//! Simulated time: integer nanoseconds since scenario start.
//!
//! Latency models compute in `f64` seconds or microseconds; values are rounded
//! up once, where they enter the event queue, so no epsilon is ever needed.

use std::fmt;

/// Simulated time in nanoseconds since scenario start.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub u64);

/// A span of simulated time in nanoseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration(pub u64);

impl SimTime {
    /// Scenario start.
    pub const ZERO: SimTime = SimTime(0);

    /// Nanoseconds since start.
    pub fn as_ns(self) -> u64 {
        self.0
    }

    /// Seconds since start, for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }

    /// `self + d`, saturating at the end of representable time.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }

    /// Time elapsed since `earlier` (zero if `earlier` is later).
    pub fn since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

impl SimDuration {
    /// No time.
    pub const ZERO: SimDuration = SimDuration(0);

    /// From whole nanoseconds.
    pub fn from_ns(ns: u64) -> SimDuration {
        SimDuration(ns)
    }

    /// From whole microseconds.
    pub fn from_us(us: u64) -> SimDuration {
        SimDuration(us.saturating_mul(1_000))
    }

    /// From whole milliseconds.
    pub fn from_ms(ms: u64) -> SimDuration {
        SimDuration(ms.saturating_mul(1_000_000))
    }

    /// From `f64` nanoseconds, rounded up to the next nanosecond. Negative
    /// and NaN inputs become zero, too large ones saturate; this is the only
    /// place floats become time.
    pub fn from_ns_f64_ceil(ns: f64) -> SimDuration {
        if !(ns > 0.0) {
            return SimDuration::ZERO;
        }
        if ns >= u64::MAX as f64 {
            return SimDuration(u64::MAX);
        }
        // `ceil` without `f64::ceil`, which baseline x86-64 compiles to a
        // libm call: truncate, then add one if anything was cut off.
        let t = ns as u64;
        SimDuration(t + u64::from((t as f64) < ns))
    }

    /// From `f64` seconds, rounded up to the next nanosecond.
    pub fn from_secs_f64_ceil(secs: f64) -> SimDuration {
        SimDuration::from_ns_f64_ceil(secs * 1e9)
    }

    /// From `f64` microseconds, rounded up to the next nanosecond.
    pub fn from_us_f64_ceil(us: f64) -> SimDuration {
        SimDuration::from_ns_f64_ceil(us * 1e3)
    }

    /// Nanoseconds.
    pub fn as_ns(self) -> u64 {
        self.0
    }

    /// Seconds, for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }

    /// Milliseconds, for reports.
    pub fn as_ms_f64(self) -> f64 {
        self.0 as f64 * 1e-6
    }
}

impl std::ops::Add for SimDuration {
    type Output = SimDuration;
    fn add(self, rhs: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(rhs.0))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.as_secs_f64())
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}ms", self.as_ms_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The truncate-and-bump rounding equals `f64::ceil` everywhere.
        #[test]
        fn rounding_up_matches_ceil(
            ns in prop_oneof![0.0f64..1e4, 0.0f64..1e12, 1e15f64..1.9e19, any::<f64>()],
        ) {
            let want = if ns > 0.0 {
                let c = ns.ceil();
                if c >= u64::MAX as f64 { u64::MAX } else { c as u64 }
            } else {
                0
            };
            prop_assert_eq!(SimDuration::from_ns_f64_ceil(ns).as_ns(), want);
        }
    }

    #[test]
    fn float_durations_round_up_once() {
        assert_eq!(SimDuration::from_secs_f64_ceil(1e-9).as_ns(), 1);
        assert_eq!(SimDuration::from_secs_f64_ceil(1.5e-9).as_ns(), 2);
        assert_eq!(SimDuration::from_us_f64_ceil(2.0).as_ns(), 2_000);
        assert_eq!(SimDuration::from_secs_f64_ceil(-1.0).as_ns(), 0);
        assert_eq!(SimDuration::from_secs_f64_ceil(f64::NAN).as_ns(), 0);
        assert_eq!(
            SimDuration::from_secs_f64_ceil(f64::INFINITY).as_ns(),
            u64::MAX
        );
    }

    #[test]
    fn time_arithmetic_saturates() {
        assert_eq!(SimTime(u64::MAX).add(SimDuration(5)), SimTime(u64::MAX));
        assert_eq!(SimTime(3).since(SimTime(5)), SimDuration::ZERO);
    }
}
