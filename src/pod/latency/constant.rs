//! Constant step time: every step takes `step_us`, whatever its shape.
//!
//! Useful for comparing schedulers and routers exactly (no latency model noise); it is the
//! parity model for llm-d-inference-sim's constant profile (`latency-models.md` §7).

use serde::{Deserialize, Serialize};

use super::{check_range, StepShape, StepTimeError, StepTimeModel};
use crate::engine::time::SimDuration;

/// `step_time: {model: constant, step_us: 1000}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantSpec {
    /// Duration of every step, µs (> 0, so simulated time always advances).
    pub step_us: f64,
}

/// A fixed step time.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantModel {
    step: SimDuration,
}

impl ConstantModel {
    /// Validates the spec and converts the step to integer time once.
    pub fn new(spec: &ConstantSpec) -> Result<ConstantModel, StepTimeError> {
        let us = check_range(
            "constant",
            "step_us",
            spec.step_us,
            0.0,
            true,
            f64::MAX,
            "a positive number of µs",
        )?;
        Ok(ConstantModel {
            step: SimDuration::from_ns_f64_ceil(us * 1e3),
        })
    }
}

impl StepTimeModel for ConstantModel {
    fn step_time(&self, _shape: &StepShape) -> SimDuration {
        self.step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_exactly_its_value_for_any_shape() {
        let m = ConstantModel::new(&ConstantSpec { step_us: 1000.0 }).unwrap();
        let mut busy = StepShape::default();
        busy.add_prefill_chunk(8192, 0, true);
        busy.add_decode(4000);
        for shape in [StepShape::default(), busy] {
            assert_eq!(m.step_time(&shape), SimDuration::from_us(1000));
        }
        assert_eq!(m.admission_overhead(5000), SimDuration::ZERO);
        assert_eq!(m.per_output_token_overhead(), SimDuration::ZERO);
        let frac = ConstantModel::new(&ConstantSpec { step_us: 2.5 }).unwrap();
        assert_eq!(frac.step_time(&busy).as_ns(), 2500);
    }

    #[test]
    fn rejects_non_positive_steps() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(
                    ConstantModel::new(&ConstantSpec { step_us: bad }),
                    Err(StepTimeError::InvalidParameter {
                        field: "step_us",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
