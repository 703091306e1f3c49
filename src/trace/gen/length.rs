//! Length distributions for prompts, questions, outputs and think times.
//!
//! In YAML a plain integer is a fixed length; otherwise a one-key map:
//! `{uniform: {min, max}}`, `{lognormal: {median, sigma}}`,
//! `{normal: {mean, std_dev}}` (inference-perf's `Distribution`),
//! `{exponential: {mean}}` or `{from_trace: {path, column}}`. Every sampled
//! value is rounded to an integer and clamped to the optional `[min, max]`
//! and to 16 Mi ([`MAX_TRACE_TOKENS`]).

use std::fmt;
use std::path::Path;

use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::engine::rng::StreamRng;
use crate::trace::error::{TraceError, MAX_TRACE_TOKENS};
use crate::trace::format::{open_trace, OpenOptions, TraceFormat};

/// A distribution of non-negative integer lengths.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthDist {
    /// Always this value.
    Fixed(u32),
    /// Uniform over the integers `[min, max]`.
    Uniform {
        /// Smallest value.
        min: u32,
        /// Largest value.
        max: u32,
    },
    /// Log-normal with the given median and log-space standard deviation.
    Lognormal {
        /// Median (`exp(mu)`).
        median: f64,
        /// Standard deviation of `ln(x)`.
        sigma: f64,
        /// Clamp below.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u32>,
        /// Clamp above.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u32>,
    },
    /// Normal, clamped (inference-perf `Distribution {mean, std_dev, min, max}`).
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std_dev: f64,
        /// Clamp below (default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u32>,
        /// Clamp above.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u32>,
    },
    /// Exponential with the given mean (e.g. think times in ms).
    Exponential {
        /// Mean.
        mean: f64,
    },
    /// Uniform draws (with replacement) from a column of a trace file.
    FromTrace(FromTraceSpec),
}

/// Which trace and column `from_trace` samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromTraceSpec {
    /// Trace file, relative to the scenario's directory.
    pub path: String,
    /// Format; detected from the file when omitted.
    #[serde(default)]
    pub format: Option<TraceFormat>,
    /// `input_length` or `output_length`.
    pub column: LengthColumn,
}

/// A per-request length a trace records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthColumn {
    /// Prompt tokens.
    InputLength,
    /// Output tokens.
    OutputLength,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Tagged {
    Fixed(u32),
    Uniform {
        min: u32,
        max: u32,
    },
    Lognormal {
        median: f64,
        sigma: f64,
        #[serde(default)]
        min: Option<u32>,
        #[serde(default)]
        max: Option<u32>,
    },
    Normal {
        mean: f64,
        std_dev: f64,
        #[serde(default)]
        min: Option<u32>,
        #[serde(default)]
        max: Option<u32>,
    },
    Exponential {
        mean: f64,
    },
    FromTrace(FromTraceSpec),
}

impl<'de> Deserialize<'de> for LengthDist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LengthDist;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a token count or a map like {uniform: {min: 10, max: 100}}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LengthDist, E> {
                u32::try_from(v)
                    .map(LengthDist::Fixed)
                    .map_err(|_| E::custom(format!("length {v} does not fit u32")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LengthDist, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("length must be non-negative, got {v}")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LengthDist, A::Error> {
                let t = Tagged::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(match t {
                    Tagged::Fixed(v) => LengthDist::Fixed(v),
                    Tagged::Uniform { min, max } => LengthDist::Uniform { min, max },
                    Tagged::Lognormal {
                        median,
                        sigma,
                        min,
                        max,
                    } => LengthDist::Lognormal {
                        median,
                        sigma,
                        min,
                        max,
                    },
                    Tagged::Normal {
                        mean,
                        std_dev,
                        min,
                        max,
                    } => LengthDist::Normal {
                        mean,
                        std_dev,
                        min,
                        max,
                    },
                    Tagged::Exponential { mean } => LengthDist::Exponential { mean },
                    Tagged::FromTrace(s) => LengthDist::FromTrace(s),
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl LengthDist {
    /// A sampler; `field` names the spec field in errors, `base_dir` resolves
    /// `from_trace` paths.
    pub fn sampler(&self, field: &str, base_dir: &Path) -> Result<LengthSampler, TraceError> {
        let bad = |p: String| Err(TraceError::spec(field, p));
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        match self {
            LengthDist::Fixed(v) | LengthDist::Uniform { max: v, .. } if *v > MAX_TRACE_TOKENS => {
                return bad(format!("{v} exceeds the limit of {MAX_TRACE_TOKENS}"));
            }
            LengthDist::Uniform { min, max } if min > max => {
                return bad(format!("uniform min {min} > max {max}"))
            }
            LengthDist::Lognormal { median, sigma, .. }
                if !(ok(*median) && *median > 0.0 && ok(*sigma)) =>
            {
                return bad(format!(
                    "lognormal needs median > 0 and sigma >= 0, got {median}, {sigma}"
                ));
            }
            LengthDist::Normal { mean, std_dev, .. } if !(mean.is_finite() && ok(*std_dev)) => {
                return bad(format!(
                    "normal needs a finite mean and std_dev >= 0, got {mean}, {std_dev}"
                ));
            }
            LengthDist::Exponential { mean } if !(ok(*mean) && *mean > 0.0) => {
                return bad(format!("exponential needs mean > 0, got {mean}"));
            }
            LengthDist::FromTrace(spec) => {
                let path = base_dir.join(&spec.path);
                let opts = OpenOptions {
                    format: spec.format,
                    ..OpenOptions::default()
                };
                let mut values = Vec::new();
                for r in open_trace(&path, &opts)? {
                    let r = r?;
                    values.push(match spec.column {
                        LengthColumn::InputLength => r.prompt.n_tokens(),
                        LengthColumn::OutputLength => r.output_len,
                    });
                }
                if values.is_empty() {
                    return bad(format!("{} has no requests to sample from", path.display()));
                }
                return Ok(LengthSampler::Values(values));
            }
            _ => {}
        }
        Ok(LengthSampler::Dist(self.clone()))
    }
}

/// Draws lengths from a [`LengthDist`] (trace columns loaded once).
#[derive(Clone, Debug)]
pub enum LengthSampler {
    /// A parametric distribution.
    Dist(LengthDist),
    /// Values of a trace column.
    Values(Vec<u32>),
}

impl LengthSampler {
    /// One draw.
    pub fn sample(&self, rng: &mut StreamRng) -> u32 {
        let d = match self {
            LengthSampler::Values(v) => return v[rng.random_range(0..v.len())],
            LengthSampler::Dist(d) => d,
        };
        let clamp = |x: f64, min: Option<u32>, max: Option<u32>| -> u32 {
            let x = x.round().max(min.unwrap_or(0) as f64);
            let x = x.min(max.unwrap_or(MAX_TRACE_TOKENS).min(MAX_TRACE_TOKENS) as f64);
            x as u32
        };
        match d {
            LengthDist::Fixed(v) => *v,
            LengthDist::Uniform { min, max } => rng.random_range(*min..=*max),
            LengthDist::Lognormal {
                median,
                sigma,
                min,
                max,
            } => match LogNormal::new(median.ln(), *sigma) {
                Ok(dist) => clamp(dist.sample(rng), *min, *max),
                Err(_) => clamp(*median, *min, *max),
            },
            LengthDist::Normal {
                mean,
                std_dev,
                min,
                max,
            } => match Normal::new(*mean, *std_dev) {
                Ok(dist) => clamp(dist.sample(rng), *min, *max),
                Err(_) => clamp(*mean, *min, *max),
            },
            LengthDist::Exponential { mean } => match Exp::new(1.0 / mean) {
                Ok(dist) => clamp(dist.sample(rng), None, None),
                Err(_) => clamp(*mean, None, None),
            },
            // Loaded into `Values` by `sampler`.
            LengthDist::FromTrace(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::RngStreams;

    fn mean_of(d: &LengthDist, n: usize) -> f64 {
        let s = d.sampler("x", Path::new(".")).unwrap();
        let mut rng = RngStreams::new(3).stream("t");
        (0..n).map(|_| s.sample(&mut rng) as f64).sum::<f64>() / n as f64
    }

    #[test]
    fn yaml_forms() {
        let d: LengthDist = serde_yaml_ng::from_str("512").unwrap();
        assert_eq!(d, LengthDist::Fixed(512));
        let d: LengthDist = serde_yaml_ng::from_str("{uniform: {min: 1, max: 3}}").unwrap();
        assert_eq!(d, LengthDist::Uniform { min: 1, max: 3 });
        let d: LengthDist =
            serde_yaml_ng::from_str("lognormal: {median: 100, sigma: 0.5, max: 4000}").unwrap();
        assert!(matches!(
            d,
            LengthDist::Lognormal {
                max: Some(4000),
                ..
            }
        ));
        let e = serde_yaml_ng::from_str::<LengthDist>("{unifrom: {min: 1, max: 3}}").unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
        assert!(serde_yaml_ng::from_str::<LengthDist>("-3").is_err());
    }

    #[test]
    fn samples_have_the_right_means_and_bounds() {
        assert_eq!(mean_of(&LengthDist::Fixed(7), 10), 7.0);
        assert!((mean_of(&LengthDist::Uniform { min: 10, max: 20 }, 20_000) - 15.0).abs() < 0.2);
        let ln = LengthDist::Lognormal {
            median: 1000.0,
            sigma: 0.5,
            min: None,
            max: None,
        };
        // Mean of a lognormal = median * exp(sigma^2 / 2) = 1133.1.
        assert!((mean_of(&ln, 50_000) - 1133.1).abs() < 15.0);
        let n = LengthDist::Normal {
            mean: 50.0,
            std_dev: 200.0,
            min: Some(10),
            max: Some(60),
        };
        let s = n.sampler("x", Path::new(".")).unwrap();
        let mut rng = RngStreams::new(1).stream("t");
        assert!((0..1000)
            .map(|_| s.sample(&mut rng))
            .all(|v| (10..=60).contains(&v)));
        assert!((mean_of(&LengthDist::Exponential { mean: 500.0 }, 50_000) - 500.0).abs() < 10.0);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let e = LengthDist::Uniform { min: 5, max: 1 }
            .sampler("chat.user_len", Path::new("."))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "workload.chat.user_len: uniform min 5 > max 1"
        );
    }
}
