//! Arrival processes: when generated requests (or chat sessions) arrive.
//!
//! Every process draws from the stream `workload.arrivals`. Times accumulate
//! in `f64` seconds and are rounded up to integer ns once, per arrival, which
//! keeps them non-decreasing. Poisson, Gamma and constant processes put their
//! first arrival at t = 0, like vLLM's and SGLang's benchmark clients (send,
//! then sleep).

use rand::Rng;
use rand_distr::{Distribution, Exp, Gamma, Poisson};
use serde::{Deserialize, Serialize};

use crate::engine::rng::{RngStreams, StreamRng};
use crate::engine::time::SimDuration;
use crate::trace::error::TraceError;

/// Stream name for arrival draws.
pub const ARRIVALS_STREAM: &str = "workload.arrivals";

/// Most requests one stage may send (a stage's times are drawn up front).
pub const MAX_STAGE_REQUESTS: f64 = 1e8;

/// How requests arrive (`workload.arrivals`, tagged by `type`; read through
/// `ArrivalIn` so a bad value is reported with its path and line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "ArrivalIn")]
pub enum ArrivalSpec {
    /// Every request at t = 0 (SGLang's default `--request-rate inf`).
    Burst,
    /// Evenly spaced: arrival k at `k / rate_per_s`.
    Constant {
        /// Requests per second.
        rate_per_s: f64,
    },
    /// Poisson process: exponential gaps with mean `1 / rate_per_s`.
    Poisson {
        /// Requests per second.
        rate_per_s: f64,
    },
    /// Gamma renewal process: gaps with mean `1 / rate_per_s` and coefficient
    /// of variation `cv` (1 = Poisson, > 1 burstier, < 1 more regular).
    Gamma {
        /// Requests per second.
        rate_per_s: f64,
        /// Coefficient of variation of the gaps.
        cv: f64,
    },
    /// inference-perf `load:` stages, run back to back; stage k starts when
    /// stage k-1's duration has elapsed (or after its last request, if later)
    /// and sends `floor(rate * duration)` requests with inference-perf's
    /// timers (see [`StageLoad`]).
    Stages {
        /// Timer used within each stage (inference-perf `load.type`).
        #[serde(default)]
        load: StageLoad,
        /// The stages.
        stages: Vec<StageSpec>,
    },
}

/// inference-perf's per-stage timers (`inference_perf/loadgen/load_timer.py`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageLoad {
    /// `ConstantLoadTimer`: `n` exponential gaps rescaled to sum to exactly
    /// the stage duration (so "constant" is random within the stage and the
    /// last request lands on the stage end).
    #[default]
    Constant,
    /// `PoissonLoadTimer`: each second draws `Poisson(rate)` requests and
    /// spreads them over that second like `Constant`; an empty second is skipped.
    Poisson,
}

/// One inference-perf load stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Requests per second (inference-perf `rate`).
    #[serde(alias = "rate")]
    pub rate_per_s: f64,
    /// Stage length in seconds (inference-perf `duration`).
    #[serde(alias = "duration")]
    pub duration_s: f64,
}

/// `workload.arrivals` as written: every variant's fields side by side.
/// serde's internally tagged enums buffer their content first, and a type
/// error inside then names neither the field nor the line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArrivalIn {
    #[serde(rename = "type")]
    kind: ArrivalKind,
    #[serde(default)]
    rate_per_s: Option<f64>,
    #[serde(default)]
    cv: Option<f64>,
    #[serde(default)]
    load: Option<StageLoad>,
    #[serde(default)]
    stages: Option<Vec<StageSpec>>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ArrivalKind {
    Burst,
    Constant,
    Poisson,
    Gamma,
    Stages,
}

impl TryFrom<ArrivalIn> for ArrivalSpec {
    type Error = String;

    fn try_from(a: ArrivalIn) -> Result<ArrivalSpec, String> {
        let ArrivalIn {
            kind,
            rate_per_s,
            cv,
            load,
            stages,
        } = a;
        let (name, allowed): (&str, &[&str]) = match kind {
            ArrivalKind::Burst => ("burst", &[]),
            ArrivalKind::Constant => ("constant", &["rate_per_s"]),
            ArrivalKind::Poisson => ("poisson", &["rate_per_s"]),
            ArrivalKind::Gamma => ("gamma", &["rate_per_s", "cv"]),
            ArrivalKind::Stages => ("stages", &["load", "stages"]),
        };
        let given = [
            ("rate_per_s", rate_per_s.is_some()),
            ("cv", cv.is_some()),
            ("load", load.is_some()),
            ("stages", stages.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(f, g)| *g && !allowed.contains(f)) {
            return Err(format!(
                "arrivals.{field}: does not apply to type: {name} (it takes {})",
                match allowed {
                    [] => "no fields".to_string(),
                    fields => fields.join(", "),
                }
            ));
        }
        let need = |v: Option<f64>, field: &str| {
            v.ok_or_else(|| format!("arrivals.{field}: missing (type: {name} needs it)"))
        };
        Ok(match kind {
            ArrivalKind::Burst => ArrivalSpec::Burst,
            ArrivalKind::Constant => ArrivalSpec::Constant {
                rate_per_s: need(rate_per_s, "rate_per_s")?,
            },
            ArrivalKind::Poisson => ArrivalSpec::Poisson {
                rate_per_s: need(rate_per_s, "rate_per_s")?,
            },
            ArrivalKind::Gamma => ArrivalSpec::Gamma {
                rate_per_s: need(rate_per_s, "rate_per_s")?,
                cv: need(cv, "cv")?,
            },
            ArrivalKind::Stages => ArrivalSpec::Stages {
                load: load.unwrap_or_default(),
                stages: stages.ok_or("arrivals.stages: missing (type: stages needs it)")?,
            },
        })
    }
}

impl ArrivalSpec {
    /// Checks rates and durations.
    pub fn validate(&self) -> Result<(), TraceError> {
        let rate_ok = |r: f64| r.is_finite() && r > 0.0;
        match self {
            ArrivalSpec::Burst => Ok(()),
            ArrivalSpec::Constant { rate_per_s } | ArrivalSpec::Poisson { rate_per_s }
                if !rate_ok(*rate_per_s) =>
            {
                Err(TraceError::spec(
                    "arrivals.rate_per_s",
                    format!("must be positive and finite, got {rate_per_s}"),
                ))
            }
            ArrivalSpec::Gamma { rate_per_s, cv } => {
                if !rate_ok(*rate_per_s) {
                    return Err(TraceError::spec(
                        "arrivals.rate_per_s",
                        format!("must be positive and finite, got {rate_per_s}"),
                    ));
                }
                if !(cv.is_finite() && *cv > 0.0) {
                    return Err(TraceError::spec(
                        "arrivals.cv",
                        format!("must be positive and finite, got {cv}"),
                    ));
                }
                Ok(())
            }
            ArrivalSpec::Stages { stages, .. } => {
                if stages.is_empty() {
                    return Err(TraceError::spec(
                        "arrivals.stages",
                        "empty (give at least one {rate_per_s, duration_s})",
                    ));
                }
                for (i, s) in stages.iter().enumerate() {
                    if !(s.rate_per_s.is_finite() && s.rate_per_s >= 0.0) {
                        return Err(TraceError::spec(
                            format!("arrivals.stages[{i}].rate_per_s"),
                            format!("must be non-negative and finite, got {}", s.rate_per_s),
                        ));
                    }
                    if !(s.duration_s.is_finite() && s.duration_s >= 0.0) {
                        return Err(TraceError::spec(
                            format!("arrivals.stages[{i}].duration_s"),
                            format!("must be non-negative and finite, got {}", s.duration_s),
                        ));
                    }
                    if s.rate_per_s * s.duration_s > MAX_STAGE_REQUESTS {
                        return Err(TraceError::spec(
                            format!("arrivals.stages[{i}]"),
                            format!("rate * duration exceeds {MAX_STAGE_REQUESTS} requests"),
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether the process ends by itself (stages do; the others run forever).
    pub fn is_finite(&self) -> bool {
        matches!(self, ArrivalSpec::Stages { .. })
    }

    /// The arrival times this spec produces, from the `workload.arrivals` stream.
    pub fn process(&self, rng: &RngStreams) -> Result<ArrivalProcess, TraceError> {
        self.validate()?;
        Ok(ArrivalProcess {
            spec: self.clone(),
            rng: rng.stream(ARRIVALS_STREAM),
            t_s: 0.0,
            k: 0,
            stage: StageState::default(),
        })
    }
}

/// Iterator of arrival times in ns (non-decreasing).
pub struct ArrivalProcess {
    spec: ArrivalSpec,
    rng: StreamRng,
    t_s: f64,
    k: u64,
    stage: StageState,
}

#[derive(Default)]
struct StageState {
    /// Index of the current stage.
    idx: usize,
    /// Start of the current stage (s).
    start_s: f64,
    /// Requests left in the current stage.
    left: u64,
    /// Whether the current stage's `left` has been set.
    started: bool,
    /// Pending times of the current batch, in reverse order (popped from the end).
    batch: Vec<f64>,
    /// Start of the next Poisson second (s).
    next_second_s: f64,
    /// Latest time handed out (s).
    last_s: f64,
}

impl Iterator for ArrivalProcess {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let t_s = match &self.spec {
            ArrivalSpec::Burst => 0.0,
            ArrivalSpec::Constant { rate_per_s } => self.k as f64 / rate_per_s,
            ArrivalSpec::Poisson { rate_per_s } => {
                if self.k > 0 {
                    let exp = Exp::new(*rate_per_s).ok()?;
                    self.t_s += exp.sample(&mut self.rng);
                }
                self.t_s
            }
            ArrivalSpec::Gamma { rate_per_s, cv } => {
                if self.k > 0 {
                    let shape = 1.0 / (cv * cv);
                    let scale = 1.0 / (rate_per_s * shape);
                    let g = Gamma::new(shape, scale).ok()?;
                    self.t_s += g.sample(&mut self.rng);
                }
                self.t_s
            }
            ArrivalSpec::Stages { load, stages } => {
                self.stage.next_time(&mut self.rng, *load, stages)?
            }
        };
        self.k += 1;
        Some(SimDuration::from_secs_f64_ceil(t_s).as_ns())
    }
}

impl StageState {
    fn next_time(
        &mut self,
        rng: &mut StreamRng,
        load: StageLoad,
        stages: &[StageSpec],
    ) -> Option<f64> {
        loop {
            let stage = stages.get(self.idx)?;
            if !self.started {
                self.started = true;
                self.left = (stage.rate_per_s * stage.duration_s).floor() as u64;
                self.batch.clear();
                self.next_second_s = self.start_s;
                if load == StageLoad::Constant && self.left > 0 {
                    self.batch = spread(rng, self.start_s, stage.duration_s, self.left);
                }
            }
            if self.left == 0 {
                self.idx += 1;
                // A Poisson stage can run past its nominal end (it sends a fixed
                // count); the next stage starts after its last requeself.
                self.start_s = (self.start_s + stage.duration_s).max(self.last_s);
                self.started = false;
                continue;
            }
            if self.batch.is_empty() {
                // Poisson: fill the next non-empty second.
                let pois = Poisson::new(stage.rate_per_s).ok()?;
                loop {
                    let n = pois.sample(rng) as u64;
                    let sec = self.next_second_s;
                    self.next_second_s += 1.0;
                    if n > 0 {
                        self.batch = spread(rng, sec, 1.0, n);
                        break;
                    }
                }
            }
            self.left -= 1;
            let t = self.batch.pop()?;
            self.last_s = t;
            return Some(t);
        }
    }
}

/// `n` times in `(start, start + dur]`: exponential gaps rescaled to sum to
/// `dur` (inference-perf `ConstantLoadTimer`), returned latest first.
fn spread(rng: &mut StreamRng, start_s: f64, dur_s: f64, n: u64) -> Vec<f64> {
    let gaps: Vec<f64> = (0..n).map(|_| -(1.0 - rng.random::<f64>()).ln()).collect();
    let total: f64 = gaps.iter().sum();
    let scale = if total > 0.0 { dur_s / total } else { 0.0 };
    let mut t = start_s;
    let mut times: Vec<f64> = gaps
        .iter()
        .map(|g| {
            // Clamp: rounding must not push the last time past the end.
            t = (t + g * scale).min(start_s + dur_s);
            t
        })
        .collect();
    times.reverse();
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(spec: &ArrivalSpec, n: usize) -> Vec<u64> {
        spec.process(&RngStreams::new(7)).unwrap().take(n).collect()
    }

    #[test]
    fn constant_and_burst_are_exact() {
        assert_eq!(
            times(&ArrivalSpec::Constant { rate_per_s: 4.0 }, 3),
            vec![0, 250_000_000, 500_000_000]
        );
        assert_eq!(times(&ArrivalSpec::Burst, 3), vec![0, 0, 0]);
    }

    #[test]
    fn poisson_and_gamma_hit_their_rate_and_cv() {
        for spec in [
            ArrivalSpec::Poisson { rate_per_s: 10.0 },
            ArrivalSpec::Gamma {
                rate_per_s: 10.0,
                cv: 3.0,
            },
            ArrivalSpec::Gamma {
                rate_per_s: 10.0,
                cv: 0.5,
            },
        ] {
            let t = times(&spec, 40_001);
            assert!(t.windows(2).all(|w| w[0] <= w[1]));
            let gaps: Vec<f64> = t.windows(2).map(|w| (w[1] - w[0]) as f64 * 1e-9).collect();
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
            let cv = var.sqrt() / mean;
            let want_cv = match spec {
                ArrivalSpec::Gamma { cv, .. } => cv,
                _ => 1.0,
            };
            assert!((mean - 0.1).abs() < 0.005, "{spec:?}: mean gap {mean}");
            assert!((cv - want_cv).abs() < 0.1 * want_cv, "{spec:?}: cv {cv}");
        }
        assert_eq!(times(&ArrivalSpec::Poisson { rate_per_s: 1.0 }, 1), vec![0]);
    }

    #[test]
    fn stages_send_floor_rate_times_duration_within_each_stage() {
        for load in [StageLoad::Constant, StageLoad::Poisson] {
            let spec = ArrivalSpec::Stages {
                load,
                stages: vec![
                    StageSpec {
                        rate_per_s: 2.0,
                        duration_s: 50.0,
                    },
                    StageSpec {
                        rate_per_s: 0.0,
                        duration_s: 10.0,
                    },
                    StageSpec {
                        rate_per_s: 5.5,
                        duration_s: 3.0,
                    },
                ],
            };
            let t: Vec<u64> = spec.process(&RngStreams::new(1)).unwrap().collect();
            assert_eq!(t.len(), 100 + 16, "{load:?}");
            assert!(t.windows(2).all(|w| w[0] <= w[1]));
            assert!(t[100..].iter().all(|&x| x > 60_000_000_000));
            if load == StageLoad::Constant {
                assert!(t[..100].iter().all(|&x| x <= 50_000_000_000));
                // The rescaled gaps end exactly on the stage end.
                assert!(t[99].abs_diff(50_000_000_000) <= 1);
            }
        }
    }

    #[test]
    fn invalid_specs_are_rejected() {
        assert!(ArrivalSpec::Poisson { rate_per_s: 0.0 }.validate().is_err());
        assert!(ArrivalSpec::Gamma {
            rate_per_s: 1.0,
            cv: f64::NAN
        }
        .validate()
        .is_err());
        assert!(ArrivalSpec::Stages {
            load: StageLoad::Constant,
            stages: vec![]
        }
        .validate()
        .is_err());
        let e = ArrivalSpec::Constant { rate_per_s: -1.0 }
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "workload.arrivals.rate_per_s: must be positive and finite, got -1"
        );
    }

    #[test]
    fn yaml_shapes() {
        let s: ArrivalSpec =
            serde_yaml_ng::from_str("type: stages\nstages: [{rate: 2, duration: 50}]").unwrap();
        assert!(matches!(
            s,
            ArrivalSpec::Stages {
                load: StageLoad::Constant,
                ..
            }
        ));
        let e = serde_yaml_ng::from_str::<ArrivalSpec>("type: poisson\nrate: 2").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
