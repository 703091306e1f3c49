//! `decode-filter` and `prefill-filter`: by the `llm-d.ai/role` label.
//!
//! | Filter | Passes roles |
//! |---|---|
//! | decode | `decode`, `prefill-decode`, `both`, `encode-prefill-decode`, or unlabeled |
//! | prefill | `prefill`, `encode-prefill`, `prefill-decode`, `both`, `encode-prefill-decode` |

use crate::epp::plugin::{CycleState, Filter, Plugin, SchedulingContext};
use crate::epp::view::{EndpointView, RequestView};

/// Which P/D role a [`RoleFilter`] keeps.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RoleFilter {
    /// `decode-filter`.
    Decode,
    /// `prefill-filter`.
    Prefill,
}

impl RoleFilter {
    /// Whether an endpoint with `role` passes.
    pub fn passes(self, role: Option<&str>) -> bool {
        match (self, role) {
            (RoleFilter::Decode, None) => true,
            (RoleFilter::Decode, Some(r)) => matches!(
                r,
                "decode" | "prefill-decode" | "both" | "encode-prefill-decode"
            ),
            (RoleFilter::Prefill, None) => false,
            (RoleFilter::Prefill, Some(r)) => {
                matches!(
                    r,
                    "prefill"
                        | "encode-prefill"
                        | "prefill-decode"
                        | "both"
                        | "encode-prefill-decode"
                )
            }
        }
    }
}

impl Plugin for RoleFilter {
    fn type_name(&self) -> &'static str {
        match self {
            RoleFilter::Decode => "decode-filter",
            RoleFilter::Prefill => "prefill-filter",
        }
    }
    fn as_filter(&mut self) -> Option<&mut dyn Filter> {
        Some(self)
    }
}

impl Filter for RoleFilter {
    fn filter(
        &mut self,
        _: &mut SchedulingContext<'_>,
        _: &mut CycleState,
        _: &RequestView<'_>,
        eps: &mut Vec<EndpointView<'_>>,
    ) {
        let f = *self;
        eps.retain(|e| f.passes(e.role));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        let roles = [
            None,
            Some("decode"),
            Some("prefill"),
            Some("both"),
            Some("prefill-decode"),
            Some("encode-prefill"),
            Some("encode-prefill-decode"),
            Some("x"),
        ];
        let d: Vec<bool> = roles
            .iter()
            .map(|r| RoleFilter::Decode.passes(*r))
            .collect();
        let p: Vec<bool> = roles
            .iter()
            .map(|r| RoleFilter::Prefill.passes(*r))
            .collect();
        assert_eq!(d, [true, true, false, true, true, false, true, false]);
        assert_eq!(p, [false, false, true, true, true, true, true, false]);
    }
}
