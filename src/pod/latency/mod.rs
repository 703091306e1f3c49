//! Step-time models: how long one vLLM engine step takes, given only the step's aggregate shape.
//!
//! Three models, chosen by a scenario's `step_time:` block (`latency-models.md` §10):
//! - `constant` ([`constant`]): a fixed step time, for exact scheduler comparisons.
//! - `roofline` ([`roofline`]): compute vs memory bound per kernel group, plus CPU/launch overheads.
//! - `linear` ([`linear`]): BLIS's fitted `β0 + β1·prefill_tokens + β2·decodes` with α overheads.
//!
//! ```yaml
//! step_time: {model: constant, step_us: 1000}
//! step_time: {model: roofline, mfu_prefill: 0.5, t_cpu_us: 800}
//! step_time: {model: linear, coefficients: "llama-3.1-8b/h100/tp1/v0.11"}
//! step_time: {model: linear, beta0_us: 6472, beta1_us: 19.8, beta2_us: 304.4}
//! ```
//! Models are built once per pod by [`build_step_time_model`]; `step_time` is then a handful of
//! multiply-adds on precomputed coefficients, because it runs once per simulated step.

pub mod constant;
pub mod linear;
pub mod roofline;

use serde::{Deserialize, Serialize};

use crate::catalog::{GpuSpec, ModelSpec};
use crate::engine::time::SimDuration;

pub use constant::{ConstantModel, ConstantSpec};
pub use linear::{LinearCoefficients, LinearModel, LinearSpec, LINEAR_COEFFICIENTS};
pub use roofline::{RooflineModel, RooflineSpec};

/// Aggregate shape of one engine step (computed incrementally by the pod; the model must not need per-request lists).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepShape {
    /// |D|: requests decoding one token this step.
    pub n_decode: u32,
    /// Σ c_i: context length (tokens already in KV) of each decode.
    pub sum_decode_ctx: u64,
    /// |P|: prefill chunks.
    pub n_prefill_chunks: u32,
    /// Σ n_j: new (uncached) prompt tokens computed this step.
    pub n_prefill_tokens: u64,
    /// Σ p_j: tokens already computed before each chunk.
    pub sum_prefill_prior: u64,
    /// Σ (n_j·p_j + n_j²/2): attention (query, key) pairs of the prefill chunks.
    pub sum_prefill_attn_pairs: f64,
    /// Prefill chunks that complete their prompt (sample a token).
    pub n_chunks_finishing: u32,
}

impl StepShape {
    /// Adds one decode with `ctx` tokens already in KV.
    pub fn add_decode(&mut self, ctx: u64) {
        self.n_decode += 1;
        self.sum_decode_ctx += ctx;
    }

    /// Adds one prefill chunk of `n` new tokens on top of `prior` computed ones.
    pub fn add_prefill_chunk(&mut self, n: u64, prior: u64, finishes_prompt: bool) {
        self.n_prefill_chunks += 1;
        self.n_prefill_tokens += n;
        self.sum_prefill_prior += prior;
        self.sum_prefill_attn_pairs += n as f64 * prior as f64 + (n as f64 * n as f64) / 2.0;
        self.n_chunks_finishing += u32::from(finishes_prompt);
    }

    /// Tokens the forward pass computes: `|D| + Σ n_j`.
    pub fn n_tokens(&self) -> u64 {
        self.n_decode as u64 + self.n_prefill_tokens
    }
}

/// A step-time model. Implementations precompute everything that does not depend on the shape.
pub trait StepTimeModel: Send + Sync + std::fmt::Debug {
    /// Wall time of one engine step with this shape.
    fn step_time(&self, shape: &StepShape) -> SimDuration;
    /// Delay added before a request can be admitted (BLIS alpha0 + alpha1·input_len); default zero.
    fn admission_overhead(&self, _prompt_tokens: u32) -> SimDuration {
        SimDuration::ZERO
    }
    /// Delay per output token added after the step (BLIS alpha2); default zero.
    fn per_output_token_overhead(&self) -> SimDuration {
        SimDuration::ZERO
    }
}

/// The `step_time:` block of a scenario, tagged by `model:`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum StepTimeSpec {
    /// Fixed step time.
    Constant(ConstantSpec),
    /// Roofline with overheads; every field optional.
    Roofline(RooflineSpec),
    /// BLIS linear α/β model.
    Linear(LinearSpec),
}

impl Default for StepTimeSpec {
    /// The roofline with all defaults: the only model that needs no calibration data.
    fn default() -> Self {
        StepTimeSpec::Roofline(RooflineSpec::default())
    }
}

/// Names accepted after `model:`.
pub const STEP_TIME_MODEL_NAMES: &[&str] = &["constant", "roofline", "linear"];

/// Why a step-time model could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StepTimeError {
    /// A parameter is out of range.
    #[error("step_time ({model}): field \"{field}\": expected {expected}, got {value}")]
    InvalidParameter {
        model: &'static str,
        field: &'static str,
        value: f64,
        expected: &'static str,
    },
    /// Tensor parallelism the model cannot use.
    #[error("step_time: tensor parallel size {tp} must be ≥ 1 and divide the {n_heads} attention heads of {model}")]
    InvalidTp {
        model: String,
        tp: u32,
        n_heads: u32,
    },
    /// `coefficients:` names no BLIS table entry.
    #[error("step_time (linear): unknown coefficients \"{name}\" (valid: {valid}){}{}",
        hint(*.suggestion), .note)]
    UnknownCoefficients {
        name: String,
        valid: String,
        suggestion: Option<&'static str>,
        note: &'static str,
    },
    /// A linear coefficient is neither given nor provided by a named entry.
    #[error("step_time (linear): missing \"{field}\": give beta0_us, beta1_us and beta2_us, or name an entry with `coefficients:`")]
    MissingCoefficient { field: &'static str },
}

fn hint(suggestion: Option<&'static str>) -> String {
    suggestion.map_or(String::new(), |s| format!("; did you mean \"{s}\"?"))
}

/// Builds the model a scenario asked for, for one pod of `tp` GPUs of type `gpu` serving `model`.
///
/// `async_scheduling` selects the roofline's overlap rule (`latency-models.md` §7); the constant
/// and linear models are measured end to end and ignore it.
pub fn build_step_time_model(
    spec: &StepTimeSpec,
    gpu: &GpuSpec,
    model: &ModelSpec,
    tp: u32,
    async_scheduling: bool,
) -> Result<Box<dyn StepTimeModel>, StepTimeError> {
    Ok(match spec {
        StepTimeSpec::Constant(s) => Box::new(ConstantModel::new(s)?),
        StepTimeSpec::Roofline(s) => {
            Box::new(RooflineModel::new(s, gpu, model, tp, async_scheduling)?)
        }
        StepTimeSpec::Linear(s) => Box::new(LinearModel::new(s)?),
    })
}

/// Checks that an optional parameter is finite and within `[lo, hi]` (`lo_open`: excludes `lo`).
pub(crate) fn check_range(
    model: &'static str,
    field: &'static str,
    value: f64,
    lo: f64,
    lo_open: bool,
    hi: f64,
    expected: &'static str,
) -> Result<f64, StepTimeError> {
    let ok = value.is_finite() && (if lo_open { value > lo } else { value >= lo }) && value <= hi;
    if ok {
        Ok(value)
    } else {
        Err(StepTimeError::InvalidParameter {
            model,
            field,
            value,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{gpu, model};

    fn parse(yaml: &str) -> Result<StepTimeSpec, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn yaml_specs_parse() {
        assert_eq!(
            parse("{model: constant, step_us: 1000}").unwrap(),
            StepTimeSpec::Constant(ConstantSpec { step_us: 1000.0 })
        );
        let StepTimeSpec::Roofline(r) = parse("{model: roofline, mfu_prefill: 0.45}").unwrap()
        else {
            panic!("not a roofline")
        };
        assert_eq!(r.mfu_prefill, Some(0.45));
        assert_eq!(r.t_cpu_us, None);
        assert_eq!(
            parse("model: roofline").unwrap(),
            StepTimeSpec::Roofline(RooflineSpec::default())
        );
        let StepTimeSpec::Linear(l) =
            parse("{model: linear, coefficients: \"llama-3.1-8b/h100/tp1/v0.11\"}").unwrap()
        else {
            panic!("not linear")
        };
        assert_eq!(
            l.coefficients.as_deref(),
            Some("llama-3.1-8b/h100/tp1/v0.11")
        );
    }

    #[test]
    fn yaml_rejects_unknown_fields_and_models() {
        let err = parse("{model: roofline, mfu_prefil: 0.5}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mfu_prefil"), "{err}");
        let err = parse("{model: constant, step_us: 1, extra: 2}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("extra"), "{err}");
        let err = parse("{model: rooflin}").unwrap_err().to_string();
        assert!(err.contains("rooflin") && err.contains("roofline"), "{err}");
    }

    #[test]
    fn spec_round_trips_through_yaml() {
        let spec = parse("{model: linear, beta0_us: 1, beta1_us: 2, beta2_us: 3}").unwrap();
        let text = serde_yaml_ng::to_string(&spec).unwrap();
        assert_eq!(parse(&text).unwrap(), spec);
    }

    #[test]
    fn builder_dispatches_on_the_tag() {
        let g = gpu("H100").unwrap();
        let m = model("Llama-3.1-8B").unwrap();
        let shape = StepShape {
            n_decode: 3,
            sum_decode_ctx: 3000,
            ..StepShape::default()
        };
        let c = build_step_time_model(
            &parse("{model: constant, step_us: 7}").unwrap(),
            g,
            m,
            1,
            true,
        )
        .unwrap();
        assert_eq!(c.step_time(&shape), SimDuration::from_us(7));
        let l = build_step_time_model(
            &parse("{model: linear, beta0_us: 100, beta1_us: 1, beta2_us: 10}").unwrap(),
            g,
            m,
            1,
            true,
        )
        .unwrap();
        assert_eq!(l.step_time(&shape), SimDuration::from_us(130));
        let r = build_step_time_model(&StepTimeSpec::default(), g, m, 1, true).unwrap();
        assert!(r.step_time(&shape) > SimDuration::from_ms(4));
        assert!(matches!(
            build_step_time_model(&StepTimeSpec::default(), g, m, 0, true),
            Err(StepTimeError::InvalidTp { tp: 0, .. })
        ));
    }

    #[test]
    fn shape_accumulates_like_the_spec_sums() {
        let mut s = StepShape::default();
        s.add_decode(100);
        s.add_decode(50);
        s.add_prefill_chunk(10, 20, false);
        s.add_prefill_chunk(4, 0, true);
        assert_eq!(s.n_decode, 2);
        assert_eq!(s.sum_decode_ctx, 150);
        assert_eq!(s.n_prefill_chunks, 2);
        assert_eq!(s.n_prefill_tokens, 14);
        assert_eq!(s.sum_prefill_prior, 20);
        assert_eq!(s.sum_prefill_attn_pairs, 10.0 * 20.0 + 50.0 + 8.0);
        assert_eq!(s.n_chunks_finishing, 1);
        assert_eq!(s.n_tokens(), 16);
    }

    fn all_models() -> Vec<Box<dyn StepTimeModel>> {
        let g = gpu("H100").unwrap();
        let m = model("Llama-3.1-8B").unwrap();
        [
            "{model: constant, step_us: 1000}",
            "{model: roofline}",
            "{model: roofline, t_min_step_us: 0, t_cpu_us: 0}",
            "{model: linear, coefficients: llama-3.1-8b/h100/tp1/v0.11}",
        ]
        .iter()
        .flat_map(|y| [true, false].map(|a| build_step_time_model(&parse(y).unwrap(), g, m, 1, a)))
        .map(Result::unwrap)
        .collect()
    }

    proptest::proptest! {
        /// Adding a decode or a prefill chunk to a step never makes it shorter.
        #[test]
        fn more_work_never_takes_less_time(
            decodes in proptest::collection::vec(0u64..32_768, 0..64),
            chunks in proptest::collection::vec((1u64..8192, 0u64..32_768, proptest::bool::ANY), 0..8),
            extra_ctx in 0u64..32_768,
            extra_chunk in (1u64..8192, 0u64..32_768),
        ) {
            let mut base = StepShape::default();
            for c in &decodes {
                base.add_decode(*c);
            }
            for (n, p, fin) in &chunks {
                base.add_prefill_chunk(*n, *p, *fin);
            }
            let mut more_decode = base;
            more_decode.add_decode(extra_ctx);
            let mut more_prefill = base;
            more_prefill.add_prefill_chunk(extra_chunk.0, extra_chunk.1, true);
            for m in all_models() {
                let t = m.step_time(&base);
                proptest::prop_assert!(m.step_time(&more_decode) >= t, "{m:?}");
                proptest::prop_assert!(m.step_time(&more_prefill) >= t, "{m:?}");
            }
        }
    }

    #[test]
    fn ns_conversion_is_exact_for_whole_numbers() {
        assert_eq!(
            SimDuration::from_ns_f64_ceil(6_472_000.0).as_ns(),
            6_472_000
        );
        assert_eq!(SimDuration::from_ns_f64_ceil(0.2).as_ns(), 1);
        assert_eq!(SimDuration::from_ns_f64_ceil(-3.0).as_ns(), 0);
        assert_eq!(SimDuration::from_ns_f64_ceil(f64::NAN).as_ns(), 0);
    }
}
