//! Scheduling profiles: filters → weighted scorers → picker.
//!
//! The total of an endpoint is `Σ weight × clamp(score, 0, 1)` over the
//! profile's scorers, summed in declaration order; it is **not** divided by
//! `Σ weight`, and a missing score (NaN) adds 0.

use super::plugin::{CycleState, SchedulingContext};
use super::scheduler::NamedPlugin;
use super::view::{EndpointId, EndpointView, RequestView};
use std::sync::Arc;

/// A scorer reference of a profile, for reports.
#[derive(Clone, Debug, PartialEq)]
pub struct ScorerMeta {
    /// Plugin instance name.
    pub name: Arc<str>,
    /// Weight in the profile.
    pub weight: f64,
}

/// A configured profile; plugins are indices into the scheduler's plugin list.
#[derive(Clone, Debug)]
pub struct SchedulingProfile {
    name: Arc<str>,
    filters: Vec<usize>,
    scorers: Vec<(usize, f64)>,
    picker: usize,
    scorer_meta: Arc<[ScorerMeta]>,
}

impl SchedulingProfile {
    /// A profile over plugin indices; `names` are the plugin instance names.
    pub fn new(
        name: &str,
        filters: Vec<usize>,
        scorers: Vec<(usize, f64)>,
        picker: usize,
        names: &[&str],
    ) -> Self {
        let scorer_meta: Arc<[ScorerMeta]> = scorers
            .iter()
            .map(|&(i, w)| ScorerMeta {
                name: Arc::from(names.get(i).copied().unwrap_or("?")),
                weight: w,
            })
            .collect();
        SchedulingProfile {
            name: Arc::from(name),
            filters,
            scorers,
            picker,
            scorer_meta,
        }
    }

    /// Profile name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs plugin `filter` before the profile's own filters.
    pub fn prepend_filter(&mut self, filter: usize) {
        self.filters.insert(0, filter);
    }

    /// Filter plugin indices, in order.
    pub fn filters(&self) -> &[usize] {
        &self.filters
    }

    /// (scorer plugin index, weight), in order.
    pub fn scorers(&self) -> &[(usize, f64)] {
        &self.scorers
    }

    /// Picker plugin index.
    pub fn picker(&self) -> usize {
        self.picker
    }

    /// Runs the profile over `candidates`.
    pub(crate) fn run(
        &self,
        plugins: &mut [NamedPlugin],
        ctx: &mut SchedulingContext<'_>,
        cycle: &mut CycleState,
        req: &RequestView<'_>,
        candidates: &[EndpointView<'_>],
    ) -> ProfileRunResult {
        let mut res = ProfileRunResult {
            profile: self.name.clone(),
            scorers: self.scorer_meta.clone(),
            endpoints: Vec::new(),
            raw: Vec::new(),
            totals: Vec::new(),
            targets: Vec::new(),
            failure: None,
        };
        let mut eps: Vec<EndpointView<'_>> = candidates.to_vec();
        for &f in &self.filters {
            let p = &mut plugins[f];
            if let Some(filter) = p.plugin.as_filter() {
                filter.filter(ctx, cycle, req, &mut eps);
            }
            if eps.is_empty() {
                res.failure = Some(ProfileFailure::FilteredOut {
                    filter: p.name.clone(),
                });
                return res;
            }
        }
        let n_eps = eps.len();
        let n_s = self.scorers.len();
        res.endpoints = eps.iter().map(|e| e.id).collect();
        res.raw = vec![f64::NAN; n_eps * n_s];
        let mut col = vec![f64::NAN; n_eps];
        for (s_idx, &(p_idx, _)) in self.scorers.iter().enumerate() {
            col.iter_mut().for_each(|v| *v = f64::NAN);
            if let Some(scorer) = plugins[p_idx].plugin.as_scorer() {
                scorer.score(ctx, cycle, req, &eps, &mut col);
            }
            for (e_idx, v) in col.iter().enumerate() {
                res.raw[e_idx * n_s + s_idx] = *v;
            }
        }
        res.totals = (0..n_eps)
            .map(|e_idx| {
                self.scorers
                    .iter()
                    .enumerate()
                    .map(|(s_idx, &(_, w))| weighted(w, res.raw[e_idx * n_s + s_idx]))
                    .sum()
            })
            .collect();
        let scored: Vec<(EndpointId, f64)> = res
            .endpoints
            .iter()
            .copied()
            .zip(res.totals.iter().copied())
            .collect();
        let mut picks = Vec::new();
        if let Some(picker) = plugins[self.picker].plugin.as_picker() {
            picker.pick(&scored, &mut *ctx.rng, &mut picks);
        }
        res.targets = picks
            .into_iter()
            .filter_map(|i| scored.get(i).map(|s| s.0))
            .collect();
        if res.targets.is_empty() {
            res.failure = Some(ProfileFailure::NoPick);
        }
        res
    }
}

/// `weight × clamp(score, 0, 1)`, with a missing (NaN) score counting 0.
pub fn weighted(weight: f64, score: f64) -> f64 {
    if score.is_nan() {
        0.0
    } else {
        weight * score.clamp(0.0, 1.0)
    }
}

/// Why a profile produced no target.
#[derive(Clone, Debug, PartialEq)]
pub enum ProfileFailure {
    /// A filter removed every endpoint.
    FilteredOut {
        /// The filter's plugin name.
        filter: Arc<str>,
    },
    /// The picker chose nothing.
    NoPick,
}

/// Outcome of one profile run, with every score for the decision log.
#[derive(Clone, Debug)]
pub struct ProfileRunResult {
    /// Profile name.
    pub profile: Arc<str>,
    /// Scorers of the profile (names, weights), the columns of the scores.
    pub scorers: Arc<[ScorerMeta]>,
    /// Endpoints that passed the filters, in candidate order.
    pub endpoints: Vec<EndpointId>,
    raw: Vec<f64>,
    /// Weighted total per endpoint (same order as `endpoints`).
    pub totals: Vec<f64>,
    /// Chosen endpoints, best first (empty on failure).
    pub targets: Vec<EndpointId>,
    /// Set when the profile produced no target.
    pub failure: Option<ProfileFailure>,
}

impl ProfileRunResult {
    /// Raw score of endpoint `ep_idx` by scorer `scorer_idx` (`None` = no score).
    pub fn raw_score(&self, ep_idx: usize, scorer_idx: usize) -> Option<f64> {
        let v = self.raw[ep_idx * self.scorers.len() + scorer_idx];
        (!v.is_nan()).then_some(v)
    }

    /// Weighted contribution of scorer `scorer_idx` to endpoint `ep_idx`'s total.
    pub fn weighted_score(&self, ep_idx: usize, scorer_idx: usize) -> f64 {
        weighted(
            self.scorers[scorer_idx].weight,
            self.raw[ep_idx * self.scorers.len() + scorer_idx],
        )
    }

    /// The first chosen endpoint.
    pub fn target(&self) -> Option<EndpointId> {
        self.targets.first().copied()
    }
}

impl ProfileRunResult {
    /// A result with one target and no scores (for hooks and tests).
    pub fn with_target(profile: &str, target: Option<EndpointId>) -> Self {
        ProfileRunResult {
            profile: Arc::from(profile),
            scorers: Arc::from(Vec::new()),
            endpoints: target.into_iter().collect(),
            raw: Vec::new(),
            totals: target.map(|_| 0.0).into_iter().collect(),
            targets: target.into_iter().collect(),
            failure: target.is_none().then_some(ProfileFailure::NoPick),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_clamps_and_treats_nan_as_zero() {
        assert_eq!(weighted(2.0, 0.5), 1.0);
        assert_eq!(weighted(2.0, 1.5), 2.0);
        assert_eq!(weighted(2.0, -1.0), 0.0);
        assert_eq!(weighted(3.0, f64::NAN), 0.0);
    }
}
