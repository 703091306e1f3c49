//! Pickers: choose endpoints from scored candidates.
//!
//! Tie-breaking has exactly one implementation, in [`max_score`]: a seeded
//! shuffle before a stable sort (upstream-compatible) or a deterministic
//! rotation within the top tier (router PRs #2515/#2709).

pub mod max_score;
pub mod random;
pub mod weighted_random;

#[cfg(test)]
pub(crate) fn scored(totals: &[f64]) -> Vec<(crate::epp::view::EndpointId, f64)> {
    totals
        .iter()
        .enumerate()
        .map(|(i, &t)| (crate::epp::view::EndpointId(i as u32), t))
        .collect()
}
