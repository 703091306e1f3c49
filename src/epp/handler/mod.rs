//! Profile handlers: which profiles run, in what order, and which is primary.
//!
//! - `single-profile-handler`: [`single::SingleProfileHandler`].
//! - ENV/Y1 `pd-profile-handler` (threshold in characters): [`pd::PdProfileHandler`].
//! - v0.6+ `disagg-profile-handler` with deciders `prefix-based-pd-decider`
//!   and `always-disagg-pd-decider`: [`disagg::DisaggProfileHandler`].
//!
//! In P/D the decode profile always runs first and its pick drives the
//! decision to prefill remotely.

pub mod disagg;
pub mod pd;
pub mod single;

use super::plugin::CycleState;
use super::profile::{ProfileRunResult, SchedulingProfile};
use super::scheduler::ScheduleError;
use super::view::RequestView;

/// Upstream `ProfileHandler`: `Pick` and `ProcessResults`.
pub trait ProfileHandler {
    /// The handler's plugin type.
    fn type_name(&self) -> &'static str;
    /// Checks the profiles this handler needs exist; returns a message otherwise.
    fn validate(&self, profiles: &[SchedulingProfile]) -> Result<(), String>;
    /// Indices of the profiles to run next; empty when done. `results` is
    /// indexed like `profiles` (`None` = not run yet).
    fn pick(
        &mut self,
        req: &RequestView<'_>,
        cycle: &CycleState,
        profiles: &[SchedulingProfile],
        results: &[Option<ProfileRunResult>],
    ) -> Vec<usize>;
    /// Index of the primary profile, or the error that fails the request.
    fn process_results(
        &self,
        profiles: &[SchedulingProfile],
        results: &[Option<ProfileRunResult>],
    ) -> Result<usize, ScheduleError>;
}

/// Index of the profile called `name`.
pub(crate) fn profile_idx(profiles: &[SchedulingProfile], name: &str) -> Option<usize> {
    profiles.iter().position(|p| p.name() == name)
}

/// Whether profile `idx` ran and produced a target.
pub(crate) fn succeeded(results: &[Option<ProfileRunResult>], idx: usize) -> bool {
    results
        .get(idx)
        .and_then(|r| r.as_ref())
        .is_some_and(|r| r.target().is_some())
}
