//! Transformations on any workload stream: time scaling, rate re-targeting,
//! truncation, re-timing with an arrival process.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::TraceError;
use super::format::RequestIter;

/// One transformation (`workload.transforms[]`, applied in list order),
/// written as a one-key map: `{speedup: 2.0}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields, remote = "Self")]
pub enum TransformSpec {
    /// Replay `N`× faster: `arrival_ns / N` (0.5 = twice as slow).
    Speedup(f64),
    /// Scale times so the mean rate `n / (last - first arrival)` becomes this
    /// many requests per second. Reads the stream twice (a measuring pass),
    /// so it needs a finite stream at this point of the list.
    RatePerS(f64),
    /// Keep the first `N` requests.
    FirstRequests(u64),
    /// Keep requests arriving before `T` seconds.
    FirstSeconds(f64),
}

// serde_yaml_ng reads externally tagged enums only from `!tag` syntax; going
// through a map visitor accepts the one-key-map form in YAML and JSON alike.
impl<'de> Deserialize<'de> for TransformSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TransformSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a one-key map like {speedup: 2.0}")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TransformSpec, A::Error> {
                TransformSpec::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for TransformSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TransformSpec::serialize(self, s)
    }
}

impl TransformSpec {
    /// Checks the parameter.
    pub fn validate(&self, idx: usize) -> Result<(), TraceError> {
        let field = format!("transforms[{idx}]");
        match self {
            TransformSpec::Speedup(x) | TransformSpec::RatePerS(x)
                if !(x.is_finite() && *x > 0.0) =>
            {
                Err(TraceError::spec(
                    field,
                    format!("must be positive and finite, got {x}"),
                ))
            }
            TransformSpec::FirstSeconds(x) if !(x.is_finite() && *x >= 0.0) => Err(
                TraceError::spec(field, format!("must be non-negative and finite, got {x}")),
            ),
            _ => Ok(()),
        }
    }

    /// Whether the stream is finite after this transform.
    pub fn bounds(&self) -> bool {
        matches!(
            self,
            TransformSpec::FirstRequests(_) | TransformSpec::FirstSeconds(_)
        )
    }
}

/// Multiplies every arrival time by `factor` (rounded to ns; monotone).
pub fn scale_times(input: RequestIter, factor: f64) -> RequestIter {
    Box::new(input.map(move |r| {
        r.map(|mut req| {
            req.arrival_ns = (req.arrival_ns as f64 * factor).round() as u64;
            req
        })
    }))
}

/// The first `n` requests.
pub fn first_requests(input: RequestIter, n: u64) -> RequestIter {
    Box::new(input.take(n as usize))
}

/// Requests arriving before `secs`; stops reading at the first later one
/// (arrivals are non-decreasing), so it also bounds endless generators.
pub fn first_seconds(input: RequestIter, secs: f64) -> RequestIter {
    let limit_ns = secs * 1e9;
    Box::new(input.take_while(move |r| {
        r.as_ref()
            .map_or(true, |req| (req.arrival_ns as f64) < limit_ns)
    }))
}

/// Replaces arrival times with `times` (order kept); ends when either ends.
pub fn retime(
    input: RequestIter,
    times: impl Iterator<Item = u64> + Send + 'static,
) -> RequestIter {
    Box::new(input.zip(times).map(|(r, t)| {
        r.map(|mut req| {
            req.arrival_ns = t;
            req
        })
    }))
}

/// Re-numbers ids densely from 0 (the last stage of every pipeline).
pub fn renumber(input: RequestIter) -> RequestIter {
    let mut next = 0u64;
    Box::new(input.map(move |r| {
        r.map(|mut req| {
            req.id = next;
            next += 1;
            req
        })
    }))
}

/// The factor [`TransformSpec::RatePerS`] multiplies times by, from a
/// measuring pass over `input`.
pub fn rate_factor(
    input: RequestIter,
    target_rate_per_s: f64,
    idx: usize,
) -> Result<f64, TraceError> {
    let (mut n, mut first, mut last) = (0u64, 0u64, 0u64);
    for r in input {
        let r = r?;
        if n == 0 {
            first = r.arrival_ns;
        }
        last = r.arrival_ns;
        n += 1;
    }
    let span_s = (last - first) as f64 * 1e-9;
    if n < 2 || span_s <= 0.0 {
        return Err(TraceError::spec(
            format!("transforms[{idx}]"),
            format!("cannot re-target the rate of {n} requests spanning {span_s} s"),
        ));
    }
    let rate = n as f64 / span_s;
    Ok(rate / target_rate_per_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::request::{Prompt, TraceRequest};

    fn stream(times: &[u64]) -> RequestIter {
        let v: Vec<_> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                Ok(TraceRequest {
                    id: i as u64,
                    arrival_ns: t,
                    prompt: Prompt::Tokens(vec![]),
                    output_len: 1,
                    session_id: None,
                    cache_salt: None,
                    output_token_ids: None,
                })
            })
            .collect();
        Box::new(v.into_iter())
    }

    fn times(it: RequestIter) -> Vec<u64> {
        it.map(|r| r.unwrap().arrival_ns).collect()
    }

    #[test]
    fn scaling_truncation_and_rate() {
        assert_eq!(
            times(scale_times(stream(&[0, 10, 21]), 0.5)),
            vec![0, 5, 11]
        );
        assert_eq!(times(first_requests(stream(&[0, 1, 2]), 2)), vec![0, 1]);
        assert_eq!(
            times(first_seconds(
                stream(&[0, 999_999_999, 1_000_000_000, 5]),
                1.0
            )),
            vec![0, 999_999_999]
        );
        // 5 requests over 2 s = 2.5/s; target 10/s => times x 0.25.
        let f = rate_factor(stream(&[0, 1, 2, 3, 2_000_000_000]), 10.0, 0).unwrap();
        assert!((f - 0.25).abs() < 1e-12);
        assert!(rate_factor(stream(&[7]), 1.0, 3)
            .unwrap_err()
            .to_string()
            .starts_with("workload.transforms[3]"));
        let ids: Vec<u64> = renumber(first_requests(stream(&[0, 1, 2]), 2))
            .map(|r| r.unwrap().id)
            .collect();
        assert_eq!(ids, vec![0, 1]);
        assert_eq!(
            times(retime(stream(&[5, 6, 7]), vec![1u64, 2].into_iter())),
            vec![1, 2]
        );
    }

    #[test]
    fn yaml_form_and_validation() {
        let t: Vec<TransformSpec> =
            serde_yaml_ng::from_str("[{speedup: 2.0}, {first_requests: 10}, {rate_per_s: 3}]")
                .unwrap();
        assert_eq!(
            t,
            vec![
                TransformSpec::Speedup(2.0),
                TransformSpec::FirstRequests(10),
                TransformSpec::RatePerS(3.0)
            ]
        );
        assert!(TransformSpec::Speedup(0.0).validate(0).is_err());
        assert!(TransformSpec::FirstSeconds(-1.0).validate(0).is_err());
    }
}
