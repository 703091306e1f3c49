//! Roofline step time (`latency-models.md` §3, §7; `vllm.md` §8), per tensor-parallel rank.
//!
//! One step is one forward pass over `T = |D| + Σ n_j` tokens. Kernels run one after another, so
//! the GPU time is a sum of kernel groups, each bound by compute or by memory:
//! ```text
//! t_linear  = max( (2·N_nonemb·Σn_j + 2·V·H·finishing)/(tp·peak·MFU_pf)
//!                + (2·N_nonemb·|D| + 2·V·H·|D|)/(tp·peak·MFU_dc),     W/(tp·η·BW) )
//! t_attn_pf = max( 4·L·heads·hd·Σ(n_j·p_j + n_j²/2)/(tp·peak·MFU_pf),  kv_rank·Σ(p_j + n_j)/(η·BW) )
//! t_attn_dc = max( 4·L·heads·hd·Σc_i/(tp·peak·MFU_dc),                 kv_rank·Σc_i/(η·BW) )
//! t_ar      = [tp > 1] 2·L·( t_ar_lat + 2·(tp−1)/tp · T·H·dtype/(link·link_eff) )
//! t_gpu     = t_linear + t_attn_pf + t_attn_dc + t_ar + L·t_layer + (|D| + |P|)·t_req
//! t_step    = max( t_min_step, async ? max(t_gpu + t_launch, t_cpu) : t_gpu + t_cpu )
//! ```
//! `kv_rank` is KV bytes per token on one rank (`max(1, kv_heads/tp)` heads). This refines §3's
//! per-phase variant: MFU is per phase, but the weights are read once per step (a mixed batch is
//! one pass), and attention is its own kernel group per phase. With MFU = η = 1 and no overheads it
//! reproduces §3's "Ideal step times" table. An empty shape costs nothing (vLLM skips the pass).
//!
//! | Parameter | Default | Source |
//! |---|---|---|
//! | `mfu_prefill`, `mfu_decode` | the GPU's ([`GpuSpec`]) | \[pub: inference-sim `hardware_config.json`] or \[est] |
//! | `bw_efficiency` (η) | the GPU's | \[pub: BLIS `BwEffConstant` 0.72; derived: Vidur profiles] |
//! | `t_cpu_us` | 1000 | \[est: §7, scheduler + output processing 0.5–2 ms] |
//! | `t_launch_us` | 100 | \[est: launch of a captured CUDA graph plus input prep] |
//! | `per_layer_us` | 20 | \[pub: BLIS `perLayerOverhead` 20.0] |
//! | `per_request_us` | 4.42 | \[pub: BLIS trained-physics β6, 4.42 µs per request in batch] |
//! | `t_min_step_us` | 2000 | \[est: §3/§7, 2–3 ms for Llama-3.2-1B decode on H100] |
//! | `allreduce_latency_us` | 20 | \[pub: BLIS `allReduceLatency` 20.0] |
//! | `link_efficiency` | 0.7 | \[est: NCCL ring bus bandwidth vs NVLink peak] |
//!
//! With these, Llama-3.2-1B decode at small batch on H100 takes 2–3 ms per step and Llama-3.1-8B
//! prefill of 8192 tokens at 50 % MFU ≈ 270 ms (tests below).

use serde::{Deserialize, Serialize};

use super::{check_range, StepShape, StepTimeError, StepTimeModel};
use crate::catalog::{GpuSpec, ModelSpec};
use crate::engine::time::SimDuration;

/// Default scheduler + output-processing CPU time per step, µs \[est].
pub const DEFAULT_T_CPU_US: f64 = 1000.0;
/// Default launch time per step, µs \[est].
pub const DEFAULT_T_LAUNCH_US: f64 = 100.0;
/// Default GPU overhead per layer per step, µs \[pub: BLIS].
pub const DEFAULT_PER_LAYER_US: f64 = 20.0;
/// Default GPU overhead per request in the batch, µs \[pub: BLIS β6].
pub const DEFAULT_PER_REQUEST_US: f64 = 4.42;
/// Default per-step floor, µs \[est].
pub const DEFAULT_T_MIN_STEP_US: f64 = 2000.0;
/// Default latency of one all-reduce, µs \[pub: BLIS].
pub const DEFAULT_ALLREDUCE_LATENCY_US: f64 = 20.0;
/// Default fraction of link bandwidth an all-reduce reaches \[est].
pub const DEFAULT_LINK_EFFICIENCY: f64 = 0.7;

/// `step_time: {model: roofline, ...}`; every field optional (defaults in the module table).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RooflineSpec {
    /// MFU of prefill kernels, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfu_prefill: Option<f64>,
    /// MFU of decode kernels, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfu_decode: Option<f64>,
    /// η: fraction of peak HBM bandwidth reached, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bw_efficiency: Option<f64>,
    /// CPU time per step (scheduling, output processing), µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_cpu_us: Option<f64>,
    /// Launch time per step (counted only with async scheduling), µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_launch_us: Option<f64>,
    /// GPU overhead per layer per step, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_layer_us: Option<f64>,
    /// GPU overhead per request in the batch, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request_us: Option<f64>,
    /// Floor on every non-empty step, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_min_step_us: Option<f64>,
    /// Latency of one tensor-parallel all-reduce, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allreduce_latency_us: Option<f64>,
    /// Fraction of the GPU link bandwidth an all-reduce reaches, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_efficiency: Option<f64>,
}

/// Roofline model with every shape-independent factor folded into a coefficient (ns units).
#[derive(Clone, Debug, PartialEq)]
pub struct RooflineModel {
    lin_pf_ns_per_token: f64,
    lin_dc_ns_per_token: f64,
    lm_head_pf_ns_per_row: f64,
    weights_ns: f64,
    attn_pf_ns_per_pair: f64,
    attn_dc_ns_per_pair: f64,
    kv_ns_per_token: f64,
    allreduce_fixed_ns: f64,
    allreduce_ns_per_token: f64,
    fixed_gpu_ns: f64,
    per_request_ns: f64,
    t_cpu_ns: f64,
    t_launch_ns: f64,
    t_min_step_ns: f64,
    async_scheduling: bool,
}

impl RooflineModel {
    /// Resolves defaults against `gpu`, validates ranges and precomputes the coefficients.
    pub fn new(
        spec: &RooflineSpec,
        gpu: &GpuSpec,
        model: &ModelSpec,
        tp: u32,
        async_scheduling: bool,
    ) -> Result<RooflineModel, StepTimeError> {
        if tp == 0 || model.n_heads % tp != 0 {
            return Err(StepTimeError::InvalidTp {
                model: model.name.to_string(),
                tp,
                n_heads: model.n_heads,
            });
        }
        const FRACTION: &str = "a fraction in (0, 1]";
        const DURATION: &str = "a finite number of µs ≥ 0";
        let frac = |field, v: Option<f64>, default: f64| {
            check_range(
                "roofline",
                field,
                v.unwrap_or(default),
                0.0,
                true,
                1.0,
                FRACTION,
            )
        };
        let us = |field, v: Option<f64>, default: f64| {
            check_range(
                "roofline",
                field,
                v.unwrap_or(default),
                0.0,
                false,
                f64::MAX,
                DURATION,
            )
            .map(|us| us * 1e3)
        };
        let mfu_pf = frac("mfu_prefill", spec.mfu_prefill, gpu.mfu_prefill)?;
        let mfu_dc = frac("mfu_decode", spec.mfu_decode, gpu.mfu_decode)?;
        let eta = frac("bw_efficiency", spec.bw_efficiency, gpu.bw_efficiency)?;
        let link_eff = frac(
            "link_efficiency",
            spec.link_efficiency,
            DEFAULT_LINK_EFFICIENCY,
        )?;
        let t_cpu_ns = us("t_cpu_us", spec.t_cpu_us, DEFAULT_T_CPU_US)?;
        let t_launch_ns = us("t_launch_us", spec.t_launch_us, DEFAULT_T_LAUNCH_US)?;
        let per_layer_ns = us("per_layer_us", spec.per_layer_us, DEFAULT_PER_LAYER_US)?;
        let per_request_ns = us(
            "per_request_us",
            spec.per_request_us,
            DEFAULT_PER_REQUEST_US,
        )?;
        let t_min_step_ns = us("t_min_step_us", spec.t_min_step_us, DEFAULT_T_MIN_STEP_US)?;
        let ar_latency_ns = us(
            "allreduce_latency_us",
            spec.allreduce_latency_us,
            DEFAULT_ALLREDUCE_LATENCY_US,
        )?;

        let tp_f = tp as f64;
        let ns_per_flop_pf = 1e9 / (tp_f * gpu.peak_bf16_flops * mfu_pf);
        let ns_per_flop_dc = 1e9 / (tp_f * gpu.peak_bf16_flops * mfu_dc);
        let ns_per_byte = 1e9 / (eta * gpu.hbm_bytes_per_s);
        let layers = model.n_layers as f64;
        let (allreduce_fixed_ns, allreduce_ns_per_token) = if tp > 1 {
            let bytes_per_token = model.hidden as f64 * model.dtype_bytes as f64;
            let ring = 2.0 * (tp_f - 1.0) / tp_f;
            let per_token =
                ring * bytes_per_token * 1e9 / (gpu.interconnect_bytes_per_s * link_eff);
            // Two all-reduces per layer: after attention's o_proj and after the MLP's down_proj.
            (2.0 * layers * ar_latency_ns, 2.0 * layers * per_token)
        } else {
            (0.0, 0.0)
        };
        Ok(RooflineModel {
            lin_pf_ns_per_token: model.linear_flops_per_token() * ns_per_flop_pf,
            lin_dc_ns_per_token: (model.linear_flops_per_token() + model.lm_head_flops_per_token())
                * ns_per_flop_dc,
            lm_head_pf_ns_per_row: model.lm_head_flops_per_token() * ns_per_flop_pf,
            weights_ns: model.weight_bytes() as f64 / tp_f * ns_per_byte,
            attn_pf_ns_per_pair: model.attn_flops_per_pair() * ns_per_flop_pf,
            attn_dc_ns_per_pair: model.attn_flops_per_pair() * ns_per_flop_dc,
            kv_ns_per_token: model.kv_bytes_per_token_per_rank(tp) as f64 * ns_per_byte,
            allreduce_fixed_ns,
            allreduce_ns_per_token,
            fixed_gpu_ns: layers * per_layer_ns,
            per_request_ns,
            t_cpu_ns,
            t_launch_ns,
            t_min_step_ns,
            async_scheduling,
        })
    }

    /// GPU time of one step in ns, before CPU overlap and the floor.
    pub fn gpu_time_ns(&self, s: &StepShape) -> f64 {
        if s.n_prefill_chunks == 0 && s.n_prefill_tokens == 0 && s.n_chunks_finishing == 0 {
            return self.decode_gpu_time_ns(s.n_decode, s.sum_decode_ctx);
        }
        self.any_gpu_time_ns(s)
    }

    /// [`RooflineModel::gpu_time_ns`] of any shape.
    fn any_gpu_time_ns(&self, s: &StepShape) -> f64 {
        let n_pf = s.n_prefill_tokens as f64;
        let n_dc = s.n_decode as f64;
        let compute = self.lin_pf_ns_per_token * n_pf
            + self.lm_head_pf_ns_per_row * s.n_chunks_finishing as f64
            + self.lin_dc_ns_per_token * n_dc;
        let linear = max(compute, self.weights_ns);
        let attn_pf = if s.n_prefill_tokens > 0 {
            max(
                self.attn_pf_ns_per_pair * s.sum_prefill_attn_pairs,
                self.kv_ns_per_token * (s.sum_prefill_prior as f64 + n_pf),
            )
        } else {
            0.0
        };
        let ctx = s.sum_decode_ctx as f64;
        let attn_dc = max(self.attn_dc_ns_per_pair * ctx, self.kv_ns_per_token * ctx);
        let allreduce = self.allreduce_fixed_ns + self.allreduce_ns_per_token * (n_pf + n_dc);
        let n_requests = (s.n_decode + s.n_prefill_chunks) as f64;
        linear
            + attn_pf
            + attn_dc
            + allreduce
            + self.fixed_gpu_ns
            + self.per_request_ns * n_requests
    }

    /// [`RooflineModel::gpu_time_ns`] of a step without prefill, most steps
    /// of a run. The same sum in the same order, less the prefill terms:
    /// those are +0.0, which leaves a positive sum as it is, bit for bit.
    fn decode_gpu_time_ns(&self, n_decode: u32, sum_ctx: u64) -> f64 {
        let n_dc = n_decode as f64;
        let linear = max(self.lin_dc_ns_per_token * n_dc, self.weights_ns);
        let ctx = sum_ctx as f64;
        let attn_dc = max(self.attn_dc_ns_per_pair * ctx, self.kv_ns_per_token * ctx);
        let allreduce = self.allreduce_fixed_ns + self.allreduce_ns_per_token * n_dc;
        linear + attn_dc + allreduce + self.fixed_gpu_ns + self.per_request_ns * n_dc
    }
}

/// The larger of two finite times. `f64::max` also handles NaN, which costs
/// a compare and three mask operations on baseline x86-64, several times per
/// step; the times here are sums and products of finite, validated values.
#[inline]
fn max(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

impl StepTimeModel for RooflineModel {
    fn step_time(&self, shape: &StepShape) -> SimDuration {
        if shape.n_decode == 0 && shape.n_prefill_tokens == 0 {
            return SimDuration::ZERO;
        }
        let gpu = self.gpu_time_ns(shape);
        let step = if self.async_scheduling {
            max(gpu + self.t_launch_ns, self.t_cpu_ns)
        } else {
            gpu + self.t_cpu_ns
        };
        SimDuration::from_ns_f64_ceil(max(step, self.t_min_step_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{gpu, model};

    fn ideal() -> RooflineSpec {
        RooflineSpec {
            mfu_prefill: Some(1.0),
            mfu_decode: Some(1.0),
            bw_efficiency: Some(1.0),
            t_cpu_us: Some(0.0),
            t_launch_us: Some(0.0),
            per_layer_us: Some(0.0),
            per_request_us: Some(0.0),
            t_min_step_us: Some(0.0),
            allreduce_latency_us: Some(0.0),
            link_efficiency: None,
        }
    }

    fn build(spec: &RooflineSpec, m: &str, tp: u32, async_scheduling: bool) -> RooflineModel {
        RooflineModel::new(
            spec,
            gpu("H100").unwrap(),
            model(m).unwrap(),
            tp,
            async_scheduling,
        )
        .unwrap()
    }

    fn decode(batch: u32, ctx: u64) -> StepShape {
        let mut s = StepShape::default();
        for _ in 0..batch {
            s.add_decode(ctx);
        }
        s
    }

    fn prefill(n: u64) -> StepShape {
        let mut s = StepShape::default();
        s.add_prefill_chunk(n, 0, true);
        s
    }

    fn ms(m: &RooflineModel, s: &StepShape) -> f64 {
        m.step_time(s).as_ms_f64()
    }

    #[test]
    fn ideal_step_times_match_spec_table() {
        // latency-models.md §3, H100 at 100 % of peak; the table has two significant digits.
        let cases: &[(&str, StepShape, f64)] = &[
            ("Llama-3.2-1B", decode(1, 1024), 0.75),
            ("Llama-3.2-1B", decode(128, 1024), 2.0),
            ("Llama-3.2-1B", decode(256, 1024), 3.3),
            ("Llama-3.2-1B", prefill(1024), 2.1),
            ("Llama-3.2-1B", prefill(4096), 9.2),
            ("Llama-3.2-1B", prefill(8192), 21.0),
            ("Llama-3.1-8B", decode(1, 1024), 4.8),
            ("Llama-3.1-8B", decode(128, 1024), 9.9),
            ("Llama-3.1-8B", decode(256, 1024), 15.0),
            ("Llama-3.1-8B", prefill(1024), 14.7),
            ("Llama-3.1-8B", prefill(4096), 62.0),
            ("Llama-3.1-8B", prefill(8192), 133.0),
        ];
        for (name, shape, want_ms) in cases {
            let got = ms(&build(&ideal(), name, 1, false), shape);
            let rel = (got - want_ms).abs() / want_ms;
            assert!(rel < 0.03, "{name} {shape:?}: {got:.3} ms vs {want_ms} ms");
        }
    }

    #[test]
    fn ideal_8b_prefill_at_half_mfu_doubles() {
        let spec = RooflineSpec {
            mfu_prefill: Some(0.5),
            ..ideal()
        };
        let got = ms(&build(&spec, "Llama-3.1-8B", 1, false), &prefill(8192));
        assert!((got - 267.0).abs() < 3.0, "{got}");
    }

    #[test]
    fn small_model_decode_is_overhead_bound_at_2_to_3_ms() {
        for async_scheduling in [true, false] {
            let m = build(
                &RooflineSpec::default(),
                "Llama-3.2-1B",
                1,
                async_scheduling,
            );
            for batch in [1, 4, 16] {
                let got = ms(&m, &decode(batch, 1024));
                assert!(
                    (2.0..=3.0).contains(&got),
                    "async={async_scheduling} B={batch}: {got} ms"
                );
            }
        }
    }

    #[test]
    fn eight_b_prefill_8192_at_half_mfu_is_about_270_ms() {
        let spec = RooflineSpec {
            mfu_prefill: Some(0.5),
            ..RooflineSpec::default()
        };
        for async_scheduling in [true, false] {
            let got = ms(
                &build(&spec, "Llama-3.1-8B", 1, async_scheduling),
                &prefill(8192),
            );
            assert!(
                (265.0..=280.0).contains(&got),
                "async={async_scheduling}: {got}"
            );
        }
    }

    #[test]
    fn hand_computed_overhead_composition() {
        // 8B decode B=1 ctx 0 on H100 with η = 1: weights 16,060,522,496 B / 3.35e12 B/s.
        let spec = RooflineSpec {
            bw_efficiency: Some(1.0),
            t_cpu_us: Some(1000.0),
            t_launch_us: Some(100.0),
            per_layer_us: Some(10.0),
            per_request_us: Some(5.0),
            t_min_step_us: Some(0.0),
            ..RooflineSpec::default()
        };
        let weights_ns = 16_060_522_496.0 / 3.35e12 * 1e9;
        let gpu_ns: f64 = weights_ns + 32.0 * 10_000.0 + 5_000.0;
        // Float evaluation order differs from the model's, so allow the final ceil to move 1 ns.
        let close =
            |got: SimDuration, want_ns: f64| (got.as_ns() as f64 - want_ns.ceil()).abs() <= 1.0;
        let shape = decode(1, 0);
        let sync = build(&spec, "Llama-3.1-8B", 1, false);
        assert!(close(sync.step_time(&shape), gpu_ns + 1e6));
        let asynch = build(&spec, "Llama-3.1-8B", 1, true);
        assert!(close(asynch.step_time(&shape), gpu_ns + 1e5));
        // With a CPU term longer than the GPU, async steps take the CPU time.
        let cpu_bound = RooflineSpec {
            t_cpu_us: Some(20_000.0),
            ..spec
        };
        let m = build(&cpu_bound, "Llama-3.1-8B", 1, true);
        assert_eq!(m.step_time(&shape), SimDuration::from_ms(20));
    }

    #[test]
    fn floor_and_empty_step() {
        let m = build(&RooflineSpec::default(), "Llama-3.2-1B", 1, true);
        assert_eq!(m.step_time(&StepShape::default()), SimDuration::ZERO);
        assert_eq!(m.step_time(&decode(1, 10)), SimDuration::from_us(2000));
    }

    #[test]
    fn tensor_parallel_splits_work_and_adds_allreduce() {
        let spec = RooflineSpec {
            allreduce_latency_us: Some(0.0),
            ..ideal()
        };
        let tp1 = build(&spec, "Llama-3.1-70B", 1, false);
        let tp4 = build(&spec, "Llama-3.1-70B", 4, false);
        let s = prefill(4096);
        let ar_ns = 2.0 * 80.0 * 1.5 * 4096.0 * 8192.0 * 2.0 * 1e9 / (450e9 * 0.7);
        let want = tp1.gpu_time_ns(&s) / 4.0 + ar_ns;
        let got = tp4.gpu_time_ns(&s);
        // KV reads split exactly here (8 KV heads / 4), so only rounding differs.
        assert!((got - want).abs() / want < 1e-9, "{got} vs {want}");
        assert!(matches!(
            RooflineModel::new(
                &spec,
                gpu("H100").unwrap(),
                model("Llama-3.1-70B").unwrap(),
                3,
                false
            ),
            Err(StepTimeError::InvalidTp { tp: 3, .. })
        ));
    }

    #[test]
    fn step_time_is_monotone_in_work() {
        let m = build(&RooflineSpec::default(), "Llama-3.1-8B", 1, true);
        let mut prev = SimDuration::ZERO;
        for batch in [1, 8, 64, 256, 512, 1024] {
            let t = m.step_time(&decode(batch, 2048));
            assert!(t >= prev, "B={batch}");
            prev = t;
        }
    }

    #[test]
    fn invalid_parameters_are_named() {
        let bad = RooflineSpec {
            mfu_prefill: Some(1.5),
            ..RooflineSpec::default()
        };
        let err = RooflineModel::new(
            &bad,
            gpu("H100").unwrap(),
            model("Llama-3.1-8B").unwrap(),
            1,
            true,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "step_time (roofline): field \"mfu_prefill\": expected a fraction in (0, 1], got 1.5"
        );
        let bad = RooflineSpec {
            t_cpu_us: Some(-1.0),
            ..RooflineSpec::default()
        };
        assert!(matches!(
            RooflineModel::new(
                &bad,
                gpu("H100").unwrap(),
                model("Llama-3.1-8B").unwrap(),
                1,
                true
            ),
            Err(StepTimeError::InvalidParameter {
                field: "t_cpu_us",
                ..
            })
        ));
    }

    proptest::proptest! {
        /// The decode-only sum gives the general sum's bits.
        #[test]
        fn decode_steps_take_the_general_formula_bit_for_bit(
            m in proptest::sample::select(vec!["Llama-3.2-1B", "Llama-3.1-8B", "Llama-3.1-70B"]),
            tp in proptest::sample::select(vec![1u32, 2, 4, 8]),
            batch in 1u32..600,
            ctx_per_request in 1u64..140_000,
        ) {
            let model = build(&RooflineSpec::default(), m, tp, true);
            let s = decode(batch, ctx_per_request);
            proptest::prop_assert_eq!(
                model.gpu_time_ns(&s).to_bits(),
                model.any_gpu_time_ns(&s).to_bits()
            );
        }
    }
}
