//! The scheduling cycle: the profile handler picks profiles, each profile
//! runs filters → scorers → picker, and the handler names the primary result.
//!
//! Upstream: `pkg/epp/scheduling/scheduler.go`. The request is proxied to the
//! primary profile's target; in P/D the decode profile is primary and the
//! `prefill` profile's target (if any) does the remote prefill.

use super::handler::ProfileHandler;
use super::plugin::{
    CycleState, PreRequestContext, PrefixMatchInfo, PrefixSource, SchedulingContext,
};
use super::profile::{ProfileRunResult, SchedulingProfile};
use super::view::{EndpointId, EndpointView, RequestView};
use std::sync::Arc;

/// A plugin instance with its configured name.
pub struct NamedPlugin {
    /// Instance name (`name`, defaulting to `type`).
    pub name: Arc<str>,
    /// The plugin.
    pub plugin: Box<dyn super::plugin::Plugin>,
}

/// Why scheduling failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// No candidate endpoints were given.
    #[error("no candidate endpoints")]
    NoCandidates,
    /// The primary profile produced no target.
    #[error("profile \"{profile}\" found no endpoint")]
    ProfileFailed {
        /// The profile.
        profile: String,
    },
    /// The profile handler asked for a profile that already ran.
    #[error("profile handler picked profile \"{profile}\" twice")]
    ProfileRepeated {
        /// The profile.
        profile: String,
    },
}

/// The result of one scheduling cycle.
#[derive(Clone, Debug)]
pub struct SchedulingResult {
    /// Request id.
    pub request_id: u64,
    /// Name of the primary profile (its target receives the request).
    pub primary_profile: Arc<str>,
    /// Every profile that ran, in run order (including failed ones).
    pub profiles: Vec<ProfileRunResult>,
    /// The approximate prefix index's match for the primary target, when an
    /// approximate prefix scorer ran: upstream's `prefix_indexer_hit_ratio`
    /// is `match_blocks / total_blocks` of it.
    pub approx_prefix_match: Option<PrefixMatchInfo>,
}

/// Name of the prefill profile whose target PreRequest hooks also index.
pub const PREFILL_PROFILE: &str = "prefill";

impl SchedulingResult {
    /// The result of profile `name`, if it ran.
    pub fn profile(&self, name: &str) -> Option<&ProfileRunResult> {
        self.profiles.iter().find(|p| &*p.profile == name)
    }

    /// The endpoint the request is sent to.
    pub fn primary_target(&self) -> Option<EndpointId> {
        self.profile(&self.primary_profile).and_then(|p| p.target())
    }

    /// The target of the profile named `prefill`, when it ran and succeeded.
    pub fn prefill_target(&self) -> Option<EndpointId> {
        self.profile(PREFILL_PROFILE).and_then(|p| p.target())
    }

    /// The primary target, then the prefill target when it differs (either
    /// may be absent): the endpoints PreRequest hooks record the request for.
    pub fn primary_and_prefill_targets(&self) -> impl Iterator<Item = EndpointId> {
        let primary = self.primary_target();
        let prefill = self.prefill_target().filter(|&p| Some(p) != primary);
        primary.into_iter().chain(prefill)
    }
}

/// An EPP scheduler: plugins, profiles and a profile handler.
pub struct Scheduler {
    plugins: Vec<NamedPlugin>,
    profiles: Vec<SchedulingProfile>,
    handler: Box<dyn ProfileHandler>,
    cycle: CycleState,
}

impl Scheduler {
    /// Assembles a scheduler. Indices in `profiles` must refer to `plugins`
    /// of the right kind (the config builder guarantees this).
    pub fn from_parts(
        plugins: Vec<NamedPlugin>,
        profiles: Vec<SchedulingProfile>,
        handler: Box<dyn ProfileHandler>,
    ) -> Self {
        Scheduler {
            plugins,
            profiles,
            handler,
            cycle: CycleState::default(),
        }
    }

    /// The configured profiles.
    pub fn profiles(&self) -> &[SchedulingProfile] {
        &self.profiles
    }

    /// The configured plugins.
    pub fn plugins(&self) -> &[NamedPlugin] {
        &self.plugins
    }

    /// The profile handler's type name.
    pub fn handler_type(&self) -> &'static str {
        self.handler.type_name()
    }

    /// Runs one scheduling cycle for `req` over `candidates`.
    pub fn schedule(
        &mut self,
        req: &RequestView<'_>,
        candidates: &[EndpointView<'_>],
        ctx: &mut SchedulingContext<'_>,
    ) -> Result<SchedulingResult, ScheduleError> {
        if candidates.is_empty() {
            return Err(ScheduleError::NoCandidates);
        }
        self.cycle.clear();
        let mut results: Vec<Option<ProfileRunResult>> = vec![None; self.profiles.len()];
        let mut order: Vec<usize> = Vec::new();
        loop {
            let next = self
                .handler
                .pick(req, &self.cycle, &self.profiles, &results);
            if next.is_empty() {
                break;
            }
            for p_idx in next {
                if results[p_idx].is_some() {
                    return Err(ScheduleError::ProfileRepeated {
                        profile: self.profiles[p_idx].name().to_string(),
                    });
                }
                let r = self.profiles[p_idx].run(
                    &mut self.plugins,
                    ctx,
                    &mut self.cycle,
                    req,
                    candidates,
                );
                results[p_idx] = Some(r);
                order.push(p_idx);
            }
        }
        let primary = self.handler.process_results(&self.profiles, &results)?;
        let primary_profile: Arc<str> = Arc::from(self.profiles[primary].name());
        let profiles: Vec<ProfileRunResult> = order
            .into_iter()
            .filter_map(|i| results[i].take())
            .collect();
        let approx_prefix_match = profiles
            .iter()
            .find(|p| p.profile == primary_profile)
            .and_then(|p| p.target())
            .and_then(|t| self.cycle.prefix_match(Some(PrefixSource::Approximate), t));
        Ok(SchedulingResult {
            request_id: req.id,
            primary_profile,
            profiles,
            approx_prefix_match,
        })
    }

    /// Runs every PreRequest hook, in plugin declaration order.
    pub fn pre_request(
        &mut self,
        ctx: &mut PreRequestContext<'_>,
        req: &RequestView<'_>,
        result: &SchedulingResult,
    ) {
        for p in &mut self.plugins {
            if let Some(h) = p.plugin.as_pre_request() {
                h.pre_request(ctx, req, result);
            }
        }
    }

    /// Runs every ResponseComplete hook, in plugin declaration order.
    pub fn response_complete(&mut self, now_ns: u64, request_id: u64) {
        for p in &mut self.plugins {
            if let Some(h) = p.plugin.as_response_complete() {
                h.response_complete(now_ns, request_id);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A result whose first entry is primary, with one target per profile.
    pub(crate) fn result_with(targets: &[(&str, u32)]) -> SchedulingResult {
        SchedulingResult {
            request_id: 1,
            primary_profile: Arc::from(targets[0].0),
            profiles: targets
                .iter()
                .map(|&(n, t)| ProfileRunResult::with_target(n, Some(EndpointId(t))))
                .collect(),
            approx_prefix_match: None,
        }
    }
}
