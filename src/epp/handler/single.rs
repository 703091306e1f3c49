//! `single-profile-handler`: run the one profile once; it is primary.

use super::{succeeded, ProfileHandler};
use crate::epp::plugin::CycleState;
use crate::epp::profile::{ProfileRunResult, SchedulingProfile};
use crate::epp::scheduler::ScheduleError;
use crate::epp::view::RequestView;

/// Runs exactly one profile.
#[derive(Clone, Debug, Default)]
pub struct SingleProfileHandler;

impl ProfileHandler for SingleProfileHandler {
    fn type_name(&self) -> &'static str {
        "single-profile-handler"
    }

    fn validate(&self, profiles: &[SchedulingProfile]) -> Result<(), String> {
        if profiles.len() == 1 {
            Ok(())
        } else {
            Err(format!(
                "single-profile-handler needs exactly one scheduling profile, found {}",
                profiles.len()
            ))
        }
    }

    fn pick(
        &mut self,
        _: &RequestView<'_>,
        _: &CycleState,
        profiles: &[SchedulingProfile],
        results: &[Option<ProfileRunResult>],
    ) -> Vec<usize> {
        if results.iter().any(|r| r.is_some()) {
            Vec::new()
        } else {
            (0..profiles.len()).collect()
        }
    }

    fn process_results(
        &self,
        profiles: &[SchedulingProfile],
        results: &[Option<ProfileRunResult>],
    ) -> Result<usize, ScheduleError> {
        if succeeded(results, 0) {
            Ok(0)
        } else {
            Err(ScheduleError::ProfileFailed {
                profile: profiles
                    .first()
                    .map(|p| p.name().to_string())
                    .unwrap_or_default(),
            })
        }
    }
}
