//! ENV/Y1 `pd-profile-handler`: decode first, then prefill unless the
//! decode pod already holds enough of the prompt.
//!
//! ```text
//! if threshold > 0:
//!     hit_pct = max(matchBlocks_decodePod − 1, 0) · hashBlockSize / len(prompt_chars)
//!     if (1 − hit_pct) · len(prompt_chars) < threshold: decode only
//! run prefill profile
//! ```
//! The −1 discounts the model-name block upstream always matches. Characters
//! are approximated as tokens × 4. `threshold: 0` means always P/D.

use super::{profile_idx, succeeded, ProfileHandler};
use crate::epp::plugin::{CycleState, PrefixSource};
use crate::epp::profile::{ProfileRunResult, SchedulingProfile};
use crate::epp::scheduler::ScheduleError;
use crate::epp::view::RequestView;

/// Parameters of `pd-profile-handler`.
#[derive(Clone, Debug, PartialEq)]
pub struct PdProfileHandler {
    /// Non-cached prompt characters at or above which prefill runs remotely (0 = always).
    pub threshold_chars: u64,
    /// Characters per prefix block of the prefix plugin (GIE default 64).
    pub hash_block_size_chars: u64,
    /// Name of the decode profile.
    pub decode_profile: String,
    /// Name of the prefill profile.
    pub prefill_profile: String,
    /// Prefix plugin whose match info is read (`None` = any).
    pub prefix_source: Option<PrefixSource>,
}

impl Default for PdProfileHandler {
    fn default() -> Self {
        PdProfileHandler {
            threshold_chars: 0,
            hash_block_size_chars: 64,
            decode_profile: "decode".into(),
            prefill_profile: "prefill".into(),
            prefix_source: None,
        }
    }
}

impl PdProfileHandler {
    /// Whether the prefill profile should run given the decode pick.
    pub fn wants_prefill(
        &self,
        req: &RequestView<'_>,
        cycle: &CycleState,
        decode_pod: crate::epp::view::EndpointId,
    ) -> bool {
        if self.threshold_chars == 0 {
            return true;
        }
        let prompt_chars = req.approx_chars();
        if prompt_chars == 0 {
            return false;
        }
        let match_blocks = cycle
            .prefix_match(self.prefix_source, decode_pod)
            .map_or(0, |m| m.match_blocks);
        let hit_pct = (u64::from(match_blocks.saturating_sub(1)) * self.hash_block_size_chars)
            as f64
            / prompt_chars as f64;
        (1.0 - hit_pct) * prompt_chars as f64 >= self.threshold_chars as f64
    }
}

impl ProfileHandler for PdProfileHandler {
    fn type_name(&self) -> &'static str {
        "pd-profile-handler"
    }

    fn validate(&self, profiles: &[SchedulingProfile]) -> Result<(), String> {
        for name in [&self.decode_profile, &self.prefill_profile] {
            if profile_idx(profiles, name).is_none() {
                return Err(format!(
                    "pd-profile-handler needs a scheduling profile named \"{name}\""
                ));
            }
        }
        Ok(())
    }

    fn pick(
        &mut self,
        req: &RequestView<'_>,
        cycle: &CycleState,
        profiles: &[SchedulingProfile],
        results: &[Option<ProfileRunResult>],
    ) -> Vec<usize> {
        let (Some(d), Some(p)) = (
            profile_idx(profiles, &self.decode_profile),
            profile_idx(profiles, &self.prefill_profile),
        ) else {
            return Vec::new();
        };
        let Some(decode) = &results[d] else {
            return vec![d];
        };
        let Some(decode_pod) = decode.target() else {
            return Vec::new();
        };
        if results[p].is_some() || !self.wants_prefill(req, cycle, decode_pod) {
            return Vec::new();
        }
        vec![p]
    }

    fn process_results(
        &self,
        _: &[SchedulingProfile],
        results: &[Option<ProfileRunResult>],
    ) -> Result<usize, ScheduleError> {
        decode_primary(&self.decode_profile, results)
    }
}

/// The decode profile is primary; its failure fails the request.
pub(crate) fn decode_primary(
    decode_profile: &str,
    results: &[Option<ProfileRunResult>],
) -> Result<usize, ScheduleError> {
    let idx = results
        .iter()
        .position(|r| r.as_ref().is_some_and(|r| &*r.profile == decode_profile));
    match idx {
        Some(i) if succeeded(results, i) => Ok(i),
        _ => Err(ScheduleError::ProfileFailed {
            profile: decode_profile.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::plugin::PrefixMatchInfo;
    use crate::epp::view::EndpointId;

    #[test]
    fn threshold_in_characters_discounts_first_block() {
        let h = PdProfileHandler {
            threshold_chars: 100,
            hash_block_size_chars: 64,
            ..Default::default()
        };
        // 50 tokens = 200 chars; 2 matched blocks → (2−1)·64 = 64 cached chars → 136 ≥ 100 → prefill
        let req = RequestView::new(1, "m", 50);
        let mut c = CycleState::default();
        let info = |m| PrefixMatchInfo {
            match_blocks: m,
            total_blocks: 3,
            block_size_tokens: 16,
        };
        c.set_prefix_match(PrefixSource::Approximate, EndpointId(0), info(2));
        assert!(h.wants_prefill(&req, &c, EndpointId(0)));
        // 3 matched blocks → 128 cached → 72 < 100 → decode only
        c.set_prefix_match(PrefixSource::Approximate, EndpointId(0), info(3));
        assert!(!h.wants_prefill(&req, &c, EndpointId(0)));
        // threshold 0 → always
        let always = PdProfileHandler::default();
        assert!(always.wants_prefill(&req, &c, EndpointId(0)));
    }
}
