//! BLIS linear ("blackbox") model: step time linear in prefill tokens and decodes, plus α overheads.
//!
//! \[pub: inference-sim/inference-sim `sim/latency/latency.go`, `defaults.yaml`, parent of commit
//! 90522ded; removed upstream in Apr 2026] (`latency-models.md` §4):
//! ```text
//! step_time      = β0 + β1·(cache-miss prefill tokens in batch) + β2·(decode tokens in batch)
//! queueing_delay = α0 + α1·input_len        # before the request is admitted
//! per_out_token  = α2                        # after each generated token
//! ```
//! The fits are ill-conditioned (β2 spans 0.56–509 µs across similar setups; the ~6 ms intercept
//! dominates), so treat them as a pluggable model, not ground truth. One entry per
//! (model, GPU, TP, vLLM version); **there is no Llama-3.2-1B entry**. kvsim does not check that
//! the named entry matches the pod's model and GPU.

use serde::{Deserialize, Serialize};

use super::{check_range, StepShape, StepTimeError, StepTimeModel};
use crate::engine::time::SimDuration;

/// `step_time: {model: linear, ...}`. Either name an entry with `coefficients:` or give
/// `beta0_us`, `beta1_us`, `beta2_us`; fields given explicitly override the named entry.
/// α terms default to 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearSpec {
    /// Key into [`LINEAR_COEFFICIENTS`], e.g. `"llama-3.1-8b/h100/tp1/v0.11"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coefficients: Option<String>,
    /// β0: fixed µs per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta0_us: Option<f64>,
    /// β1: µs per cache-miss prefill token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta1_us: Option<f64>,
    /// β2: µs per decode in the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta2_us: Option<f64>,
    /// α0: fixed µs before admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha0_us: Option<f64>,
    /// α1: µs per prompt token before admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha1_us: Option<f64>,
    /// α2: µs after each output token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha2_us: Option<f64>,
}

/// One fitted row of the BLIS table (all µs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearCoefficients {
    /// `model/gpu/tpN/vX.Y[.Z]`, lowercase.
    pub key: &'static str,
    /// β0, µs per step.
    pub beta0_us: f64,
    /// β1, µs per cache-miss prefill token.
    pub beta1_us: f64,
    /// β2, µs per decode.
    pub beta2_us: f64,
    /// α0, µs before admission.
    pub alpha0_us: f64,
    /// α1, µs per prompt token before admission.
    pub alpha1_us: f64,
    /// α2, µs per output token.
    pub alpha2_us: f64,
}

const fn row(key: &'static str, b: [f64; 3], a: [f64; 3]) -> LinearCoefficients {
    LinearCoefficients {
        key,
        beta0_us: b[0],
        beta1_us: b[1],
        beta2_us: b[2],
        alpha0_us: a[0],
        alpha1_us: a[1],
        alpha2_us: a[2],
    }
}

/// The BLIS entries quoted in `latency-models.md` §4 (about 9 of its ~70).
pub static LINEAR_COEFFICIENTS: &[LinearCoefficients] = &[
    row(
        "llama-3.1-8b/h100/tp1/v0.11",
        [6472.0, 19.80, 304.4],
        [10326.0, 0.0, 0.0],
    ),
    row(
        "llama-3.1-8b/h100/tp2/v0.8.4",
        [6910.0, 17.67, 2.84],
        [1601.0, 3.51, 1806.0],
    ),
    row(
        "llama-3.1-8b/h100/tp4/v0.8.4",
        [41.8, 11.86, 5.91],
        [34.4, 2.19, 6001.0],
    ),
    row(
        "llama-3.1-8b/a100-80/tp1/v0.8.4",
        [16442.0, 47.84, 18.21],
        [7740.0, 2.31, 6276.0],
    ),
    row(
        "llama-3.1-8b/a100-80/tp2/v0.8.4",
        [8002.0, 26.36, 14.97],
        [2944.0, 2.15, 14229.0],
    ),
    row(
        "qwen2.5-7b/h100/tp1/v0.11",
        [7052.0, 19.54, 25.43],
        [4680.0, 0.0, 0.0],
    ),
    row(
        "qwen2.5-3b/h100/tp1/v0.11",
        [4796.0, 9.45, 35.63],
        [3143.0, 0.105, 0.0],
    ),
    row(
        "qwen3-14b/h100/tp1/v0.11",
        [13578.0, 39.45, 27.32],
        [8888.0, 0.185, 0.0],
    ),
    row(
        "llama-3.3-70b/h100/tp4/v0.8.4",
        [12601.0, 76.42, 66.84],
        [2597.0, 9.95, 11511.0],
    ),
];

/// Finds a BLIS entry; accepts any case, `-instruct` model names, `a100-80gb` and `v0.11.0`.
pub fn linear_coefficients(name: &str) -> Result<&'static LinearCoefficients, StepTimeError> {
    let key = normalize_key(name);
    if let Some(c) = LINEAR_COEFFICIENTS.iter().find(|c| c.key == key) {
        return Ok(c);
    }
    let suggestion =
        crate::catalog::nearest_name(&key, LINEAR_COEFFICIENTS.iter().map(|c| (c.key, c.key)));
    let note = if key.contains("3.2-1b") {
        "; the BLIS table has no Llama-3.2-1B entry: give beta0_us, beta1_us and beta2_us"
    } else {
        ""
    };
    Err(StepTimeError::UnknownCoefficients {
        name: name.to_string(),
        valid: LINEAR_COEFFICIENTS
            .iter()
            .map(|c| c.key)
            .collect::<Vec<_>>()
            .join(", "),
        suggestion,
        note,
    })
}

fn normalize_key(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let mut parts: Vec<String> = lower.split('/').map(|p| p.trim().to_string()).collect();
    if parts.len() == 4 {
        if let Some(m) = parts[0].strip_suffix("-instruct") {
            parts[0] = m.to_string();
        }
        if parts[1] == "a100-80gb" || parts[1] == "a100" {
            parts[1] = "a100-80".to_string();
        }
        if !parts[2].starts_with("tp") {
            parts[2] = format!("tp{}", parts[2]);
        }
        let v = parts[3].trim_start_matches('v');
        let v = match v.strip_suffix(".0") {
            Some(short) if v.matches('.').count() == 2 => short,
            _ => v,
        };
        parts[3] = format!("v{v}");
    }
    parts.join("/")
}

/// The BLIS linear model with coefficients in ns (exact for the table's values).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearModel {
    beta0_ns: f64,
    beta1_ns: f64,
    beta2_ns: f64,
    alpha0_ns: f64,
    alpha1_ns: f64,
    alpha2: SimDuration,
}

impl LinearModel {
    /// Resolves a named entry and explicit overrides; all coefficients must be finite and ≥ 0.
    pub fn new(spec: &LinearSpec) -> Result<LinearModel, StepTimeError> {
        let base = spec
            .coefficients
            .as_deref()
            .map(linear_coefficients)
            .transpose()?;
        let pick = |given: Option<f64>,
                    from_table: Option<f64>,
                    field: &'static str,
                    required: bool|
         -> Result<f64, StepTimeError> {
            let v = match (given, from_table) {
                (Some(v), _) | (None, Some(v)) => v,
                (None, None) if required => {
                    return Err(StepTimeError::MissingCoefficient { field })
                }
                (None, None) => 0.0,
            };
            check_range(
                "linear",
                field,
                v,
                0.0,
                false,
                f64::MAX,
                "a finite number ≥ 0",
            )
        };
        let b0 = pick(spec.beta0_us, base.map(|c| c.beta0_us), "beta0_us", true)?;
        let b1 = pick(spec.beta1_us, base.map(|c| c.beta1_us), "beta1_us", true)?;
        let b2 = pick(spec.beta2_us, base.map(|c| c.beta2_us), "beta2_us", true)?;
        let a0 = pick(
            spec.alpha0_us,
            base.map(|c| c.alpha0_us),
            "alpha0_us",
            false,
        )?;
        let a1 = pick(
            spec.alpha1_us,
            base.map(|c| c.alpha1_us),
            "alpha1_us",
            false,
        )?;
        let a2 = pick(
            spec.alpha2_us,
            base.map(|c| c.alpha2_us),
            "alpha2_us",
            false,
        )?;
        Ok(LinearModel {
            beta0_ns: b0 * 1e3,
            beta1_ns: b1 * 1e3,
            beta2_ns: b2 * 1e3,
            alpha0_ns: a0 * 1e3,
            alpha1_ns: a1 * 1e3,
            alpha2: SimDuration::from_ns_f64_ceil(a2 * 1e3),
        })
    }
}

impl StepTimeModel for LinearModel {
    fn step_time(&self, shape: &StepShape) -> SimDuration {
        SimDuration::from_ns_f64_ceil(
            self.beta0_ns
                + self.beta1_ns * shape.n_prefill_tokens as f64
                + self.beta2_ns * shape.n_decode as f64,
        )
    }

    fn admission_overhead(&self, prompt_tokens: u32) -> SimDuration {
        SimDuration::from_ns_f64_ceil(self.alpha0_ns + self.alpha1_ns * prompt_tokens as f64)
    }

    fn per_output_token_overhead(&self) -> SimDuration {
        self.alpha2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(key: &str) -> LinearModel {
        LinearModel::new(&LinearSpec {
            coefficients: Some(key.to_string()),
            ..LinearSpec::default()
        })
        .unwrap()
    }

    fn shape(prefill_tokens: u64, decodes: u32) -> StepShape {
        StepShape {
            n_decode: decodes,
            sum_decode_ctx: 1000 * decodes as u64,
            n_prefill_chunks: u32::from(prefill_tokens > 0),
            n_prefill_tokens: prefill_tokens,
            ..StepShape::default()
        }
    }

    #[test]
    fn hand_computed_8b_h100_tp1_steps() {
        let m = named("llama-3.1-8b/h100/tp1/v0.11");
        // (prefill tokens, decodes, β0 + β1·n + β2·d in ns)
        let table: &[(u64, u32, u64)] = &[
            (0, 0, 6_472_000),
            (0, 1, 6_472_000 + 304_400),
            (512, 10, 6_472_000 + 512 * 19_800 + 10 * 304_400),
            (8192, 0, 6_472_000 + 8192 * 19_800),
            (2048, 128, 6_472_000 + 2048 * 19_800 + 128 * 304_400),
        ];
        for &(n, d, ns) in table {
            assert_eq!(m.step_time(&shape(n, d)).as_ns(), ns, "n={n} d={d}");
        }
        assert_eq!(m.admission_overhead(4000), SimDuration::from_us(10326));
        assert_eq!(m.per_output_token_overhead(), SimDuration::ZERO);
    }

    #[test]
    fn alpha_terms_of_a_v0_8_entry() {
        let m = named("llama-3.1-8b/h100/tp2/v0.8.4");
        // α0 + α1·1000 = 1601 + 3510 µs.
        assert_eq!(m.admission_overhead(1000).as_ns(), 5_111_000);
        assert_eq!(m.per_output_token_overhead(), SimDuration::from_us(1806));
    }

    #[test]
    fn keys_normalise() {
        for k in [
            "Llama-3.1-8B/H100/TP1/v0.11.0",
            "llama-3.1-8b-instruct/h100/tp1/0.11",
            "llama-3.1-8b/h100/1/v0.11",
        ] {
            assert_eq!(linear_coefficients(k).unwrap().beta0_us, 6472.0, "{k}");
        }
        assert_eq!(
            linear_coefficients("llama-3.1-8b/a100-80gb/tp2/v0.8.4")
                .unwrap()
                .beta2_us,
            14.97
        );
    }

    #[test]
    fn no_1b_entry_says_so() {
        let err = linear_coefficients("llama-3.2-1b/h100/tp1/v0.11").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no Llama-3.2-1B entry"), "{msg}");
        assert!(msg.contains("did you mean"), "{msg}");
    }

    #[test]
    fn explicit_fields_override_and_are_required_without_a_name() {
        let m = LinearModel::new(&LinearSpec {
            coefficients: Some("llama-3.1-8b/h100/tp1/v0.11".into()),
            beta2_us: Some(25.0),
            ..LinearSpec::default()
        })
        .unwrap();
        assert_eq!(m.step_time(&shape(0, 4)).as_ns(), 6_472_000 + 100_000);
        let err = LinearModel::new(&LinearSpec {
            beta0_us: Some(1.0),
            beta2_us: Some(1.0),
            ..LinearSpec::default()
        })
        .unwrap_err();
        assert_eq!(err, StepTimeError::MissingCoefficient { field: "beta1_us" });
        let err = LinearModel::new(&LinearSpec {
            beta0_us: Some(-1.0),
            beta1_us: Some(1.0),
            beta2_us: Some(1.0),
            ..LinearSpec::default()
        })
        .unwrap_err();
        assert!(matches!(
            err,
            StepTimeError::InvalidParameter {
                field: "beta0_us",
                ..
            }
        ));
    }

    #[test]
    fn table_keys_are_normal_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for c in LINEAR_COEFFICIENTS {
            assert_eq!(normalize_key(c.key), c.key);
            assert!(seen.insert(c.key), "{} twice", c.key);
        }
    }
}
