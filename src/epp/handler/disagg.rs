//! v0.6+ `disagg-profile-handler` and its P/D deciders.
//!
//! Decode runs first; if it found a pod, the configured decider decides
//! whether the prefill profile runs. No decider means decode only (upstream
//! factory leaves the decider nil). A failed prefill falls back to decode
//! only; a failed decode fails the request.

use super::pd::decode_primary;
use super::{profile_idx, ProfileHandler};
use crate::epp::plugin::CycleState;
use crate::epp::profile::{ProfileRunResult, SchedulingProfile};
use crate::epp::scheduler::ScheduleError;
use crate::epp::view::{EndpointId, RequestView};

/// Decides whether to prefill remotely, given the decode pod.
#[derive(Clone, Debug, PartialEq)]
pub enum PdDecider {
    /// `always-disagg-pd-decider`.
    Always,
    /// `prefix-based-pd-decider`:
    /// disaggregate iff `in_tok ≥ N` and `in_tok − matchBlocks · blockSizeTokens ≥ N`,
    /// with `in_tok = chars / 4 = n_prompt_tokens`.
    PrefixBased {
        /// `nonCachedTokens` (N).
        non_cached_tokens: u32,
        /// What `N = 0` means: `true` = always (v0.6, Mar 2026), `false` = never (HEAD).
        zero_means_always: bool,
    },
}

impl PdDecider {
    /// Whether the prefill profile should run for `req` decoded on `decode_pod`.
    pub fn decide(
        &self,
        req: &RequestView<'_>,
        cycle: &CycleState,
        decode_pod: EndpointId,
    ) -> bool {
        match *self {
            PdDecider::Always => true,
            PdDecider::PrefixBased {
                non_cached_tokens: n,
                zero_means_always,
            } => {
                if n == 0 {
                    return zero_means_always;
                }
                let in_tok = i64::from(req.n_prompt_tokens);
                if in_tok < i64::from(n) {
                    return false;
                }
                // Upstream: no match info on the endpoint ⇒ no disaggregation.
                let Some(info) = cycle.prefix_match(None, decode_pod) else {
                    return false;
                };
                let hit = i64::from(info.match_blocks) * i64::from(info.block_size_tokens);
                in_tok - hit >= i64::from(n)
            }
        }
    }
}

/// `disagg-profile-handler` (P/D stages only; encode is not modelled).
#[derive(Clone, Debug, PartialEq)]
pub struct DisaggProfileHandler {
    /// Decode profile name (default `decode`).
    pub decode_profile: String,
    /// Prefill profile name (default `prefill`).
    pub prefill_profile: String,
    /// The prefill decider; `None` = never prefill remotely.
    pub decider: Option<PdDecider>,
}

impl Default for DisaggProfileHandler {
    fn default() -> Self {
        DisaggProfileHandler {
            decode_profile: "decode".into(),
            prefill_profile: "prefill".into(),
            decider: None,
        }
    }
}

impl ProfileHandler for DisaggProfileHandler {
    fn type_name(&self) -> &'static str {
        "disagg-profile-handler"
    }

    fn validate(&self, profiles: &[SchedulingProfile]) -> Result<(), String> {
        if profile_idx(profiles, &self.decode_profile).is_none() {
            return Err(format!(
                "disagg-profile-handler needs a scheduling profile named \"{}\"",
                self.decode_profile
            ));
        }
        if self.decider.is_some() && profile_idx(profiles, &self.prefill_profile).is_none() {
            return Err(format!(
                "disagg-profile-handler has a prefill decider but no profile named \"{}\"",
                self.prefill_profile
            ));
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
        let Some(d) = profile_idx(profiles, &self.decode_profile) else {
            return Vec::new();
        };
        let Some(decode) = &results[d] else {
            return vec![d];
        };
        let Some(decode_pod) = decode.target() else {
            return Vec::new();
        };
        let Some(p) = profile_idx(profiles, &self.prefill_profile) else {
            return Vec::new();
        };
        match &self.decider {
            Some(dec) if results[p].is_none() && dec.decide(req, cycle, decode_pod) => vec![p],
            _ => Vec::new(),
        }
    }

    fn process_results(
        &self,
        _: &[SchedulingProfile],
        results: &[Option<ProfileRunResult>],
    ) -> Result<usize, ScheduleError> {
        decode_primary(&self.decode_profile, results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epp::plugin::{PrefixMatchInfo, PrefixSource};

    fn cycle_with(match_blocks: u32) -> CycleState {
        let mut c = CycleState::default();
        c.set_prefix_match(
            PrefixSource::Approximate,
            EndpointId(0),
            PrefixMatchInfo {
                match_blocks,
                total_blocks: 10,
                block_size_tokens: 16,
            },
        );
        c
    }

    #[test]
    fn prefix_decider_thresholds() {
        let d = PdDecider::PrefixBased {
            non_cached_tokens: 16,
            zero_means_always: false,
        };
        let req = RequestView::new(1, "m", 100);
        // 100 − 5·16 = 20 ≥ 16 → disaggregate
        assert!(d.decide(&req, &cycle_with(5), EndpointId(0)));
        // 100 − 6·16 = 4 < 16 → decode only
        assert!(!d.decide(&req, &cycle_with(6), EndpointId(0)));
        // prompt shorter than N
        assert!(!d.decide(&RequestView::new(1, "m", 10), &cycle_with(0), EndpointId(0)));
        // no match info → no disaggregation
        assert!(!d.decide(&req, &CycleState::default(), EndpointId(0)));
    }

    #[test]
    fn prefix_decider_zero_knob() {
        let req = RequestView::new(1, "m", 100);
        let never = PdDecider::PrefixBased {
            non_cached_tokens: 0,
            zero_means_always: false,
        };
        let always = PdDecider::PrefixBased {
            non_cached_tokens: 0,
            zero_means_always: true,
        };
        assert!(!never.decide(&req, &cycle_with(0), EndpointId(0)));
        assert!(always.decide(&req, &cycle_with(0), EndpointId(0)));
        assert!(PdDecider::Always.decide(&req, &CycleState::default(), EndpointId(0)));
    }
}
