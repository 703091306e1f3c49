//! `workload:` section of a scenario, and opening it as a request stream.
//!
//! Exactly one source (`trace`, `shared_prefix`, `sglang_shared_prefix`,
//! `chat`, `random`), an optional arrival process, an optional request cap
//! and a list of transforms:
//!
//! ```yaml
//! workload:
//!   trace: {format: mooncake, path: ../traces/mooncake/conversation_trace.jsonl}
//!   transforms: [{speedup: 2.0}, {first_seconds: 600}]
//! ```
//! Pipeline order: source → `arrivals` (re-times a trace; times generated
//! bodies) → `num_requests` → `transforms` in order → dense ids.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{SkippedLines, TraceError};
use super::format::{open_trace, OpenOptions, RequestIter, TraceFormat};
use super::gen::arrival::ArrivalSpec;
use super::gen::chat::{ChatGen, ChatSpec};
use super::gen::random::{RandomGen, RandomSpec};
use super::gen::shared_prefix::{
    sglang_shared_prefix, SglangSharedPrefixSpec, SharedPrefixGen, SharedPrefixSpec,
};
use super::gen::timed;
use super::reader::ReadOptions;
use super::request::TraceRequest;
use super::transform::{
    first_requests, first_seconds, rate_factor, renumber, retime, scale_times, TransformSpec,
};
use crate::engine::rng::RngStreams;

/// The `workload:` section (defaults in parentheses).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Replay a trace file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceSourceSpec>,
    /// inference-perf `shared_prefix` (endless cycle: bound it with stage
    /// arrivals, `num_requests` or a truncation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefixSpec>,
    /// SGLang `generated-shared-prefix` (`num_groups * prompts_per_group` requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sglang_shared_prefix: Option<SglangSharedPrefixSpec>,
    /// Multi-turn chat sessions (the arrival process times session starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatSpec>,
    /// Unique prompts with length distributions (endless, like `shared_prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<RandomSpec>,
    /// Arrival process (default: generators `burst`, chat: `poisson` at 1/s; traces:
    /// keep the trace's own times). Given with a trace, it replaces the times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<ArrivalSpec>,
    /// Stop after this many requests (default no cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_requests: Option<u64>,
    /// Token ids of generated prompts are uniform in `[0, vocab_size)` (default 32000).
    #[serde(default = "default_vocab_size")]
    pub vocab_size: u32,
    /// Applied in order after the source (default none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<TransformSpec>,
}

fn default_vocab_size() -> u32 {
    32000
}

/// `workload.trace`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSourceSpec {
    /// Path, relative to the scenario file's directory unless absolute.
    pub path: PathBuf,
    /// `mooncake`, `azure` or `native` (default detected from the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TraceFormat>,
    /// Tokens per Mooncake hash id (default 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_hash_id: Option<u32>,
    /// Skip malformed lines (counted in [`WorkloadStream::skipped`]) (default false).
    #[serde(default)]
    pub skip_bad_lines: bool,
}

/// The requests of a workload, in arrival order, with dense ids.
pub struct WorkloadStream {
    inner: RequestIter,
    skipped: SkippedLines,
}

impl WorkloadStream {
    /// Lines skipped so far in lenient mode (final once the stream is drained).
    pub fn skipped(&self) -> &SkippedLines {
        &self.skipped
    }
}

impl Iterator for WorkloadStream {
    type Item = Result<TraceRequest, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

const SOURCES: &[&str] = &[
    "trace",
    "shared_prefix",
    "sglang_shared_prefix",
    "chat",
    "random",
];

impl WorkloadSpec {
    /// Checks the spec without opening files; `open_workload` calls it.
    pub fn validate(&self) -> Result<(), TraceError> {
        let set = [
            self.trace.is_some(),
            self.shared_prefix.is_some(),
            self.sglang_shared_prefix.is_some(),
            self.chat.is_some(),
            self.random.is_some(),
        ];
        let given: Vec<&str> = SOURCES
            .iter()
            .zip(set)
            .filter(|(_, s)| *s)
            .map(|(n, _)| *n)
            .collect();
        if given.len() != 1 {
            return Err(TraceError::spec(
                "source",
                format!(
                    "give exactly one source of {}; got {}",
                    SOURCES.join(", "),
                    if given.is_empty() {
                        "none".into()
                    } else {
                        given.join(" and ")
                    }
                ),
            ));
        }
        if let Some(a) = &self.arrivals {
            a.validate()?;
        }
        if self.vocab_size == 0 {
            return Err(TraceError::spec("vocab_size", "must be positive"));
        }
        let mut bounded = self.trace.is_some()
            || self.sglang_shared_prefix.is_some()
            || self.chat.is_some()
            || self.num_requests.is_some()
            || self.arrivals.as_ref().is_some_and(ArrivalSpec::is_finite);
        for (i, t) in self.transforms.iter().enumerate() {
            t.validate(i)?;
            if matches!(t, TransformSpec::RatePerS(_)) && !bounded {
                return Err(TraceError::spec(
                    format!("transforms[{i}]"),
                    "rate_per_s needs a finite stream: truncate or cap it first",
                ));
            }
            bounded |= t.bounds();
        }
        if !bounded {
            return Err(TraceError::spec(
                "",
                "the generator is endless: set num_requests, stage arrivals, or a first_requests/first_seconds transform",
            ));
        }
        Ok(())
    }
}

impl WorkloadSpec {
    /// Replaces the trace file (`kvsim run --trace`). Its format is detected
    /// from the new file as `kvsim trace stats` does: the scenario's
    /// `format:` described the file it named, not this one.
    pub fn override_trace_path(&mut self, path: PathBuf) {
        match &mut self.trace {
            Some(t) => {
                t.path = path;
                t.format = None;
            }
            None => {
                self.trace = Some(TraceSourceSpec {
                    path,
                    format: None,
                    tokens_per_hash_id: None,
                    skip_bad_lines: false,
                });
                self.shared_prefix = None;
                self.sglang_shared_prefix = None;
                self.chat = None;
                self.random = None;
            }
        }
    }
}

/// Opens `spec` as a stream. Relative paths resolve against `base_dir` (the
/// scenario file's directory); randomness comes from `rng`'s named streams.
pub fn open_workload(
    spec: &WorkloadSpec,
    base_dir: &Path,
    rng: &RngStreams,
) -> Result<WorkloadStream, TraceError> {
    spec.validate()?;
    let (inner, skipped) = build(spec, base_dir, rng, spec.transforms.len())?;
    Ok(WorkloadStream {
        inner: within_time(renumber(inner)),
        skipped,
    })
}

/// Latest arrival a workload may have: half of u64 ns (292 years), so that
/// every latency added to it still fits the simulator's time.
pub const MAX_ARRIVAL_NS: u64 = u64::MAX / 2;

/// Ends the stream with an error at the first request arriving after
/// [`MAX_ARRIVAL_NS`] (a vanishing rate or an extreme speedup saturates
/// float times; simulating them would print nonsense spans).
fn within_time(input: RequestIter) -> RequestIter {
    Box::new(input.map(|r| {
        r.and_then(|req| {
            if req.arrival_ns > MAX_ARRIVAL_NS {
                Err(TraceError::spec(
                    "arrivals",
                    format!(
                        "request {} would arrive after {:.0} years of simulated time (arrival rate too low, or times scaled too far)",
                        req.id,
                        MAX_ARRIVAL_NS as f64 * 1e-9 / (365.25 * 86_400.0)
                    ),
                ))
            } else {
                Ok(req)
            }
        })
    }))
}

/// The pipeline with the first `n_transforms` transforms applied.
fn build(
    spec: &WorkloadSpec,
    base_dir: &Path,
    rng: &RngStreams,
    n_transforms: usize,
) -> Result<(RequestIter, SkippedLines), TraceError> {
    let skipped = SkippedLines::new();
    let mut it = source(spec, base_dir, rng, &skipped)?;
    if let Some(n) = spec.num_requests {
        it = first_requests(it, n);
    }
    for (i, t) in spec.transforms.iter().take(n_transforms).enumerate() {
        it = match t {
            TransformSpec::Speedup(x) => scale_times(it, 1.0 / x),
            TransformSpec::FirstRequests(n) => first_requests(it, *n),
            TransformSpec::FirstSeconds(s) => first_seconds(it, *s),
            TransformSpec::RatePerS(target) => {
                let (measure, _) = build(spec, base_dir, rng, i)?;
                scale_times(it, rate_factor(measure, *target, i)?)
            }
        };
    }
    Ok((it, skipped))
}

fn source(
    spec: &WorkloadSpec,
    base_dir: &Path,
    rng: &RngStreams,
    skipped: &SkippedLines,
) -> Result<RequestIter, TraceError> {
    let vocab = spec.vocab_size;
    let arrivals = |default: ArrivalSpec| spec.arrivals.clone().unwrap_or(default).process(rng);
    if let Some(t) = &spec.trace {
        let opts = OpenOptions {
            format: t.format,
            tokens_per_hash_id: t.tokens_per_hash_id,
            read: ReadOptions {
                file: String::new(),
                skip_bad_lines: t.skip_bad_lines,
                skipped: skipped.clone(),
            },
        };
        let it = open_trace(&base_dir.join(&t.path), &opts)?;
        return Ok(match &spec.arrivals {
            Some(a) => retime(it, a.process(rng)?),
            None => it,
        });
    }
    if let Some(s) = &spec.shared_prefix {
        let bodies = SharedPrefixGen::new(s, vocab, base_dir, rng)?;
        return Ok(Box::new(timed(bodies, arrivals(ArrivalSpec::Burst)?)));
    }
    if let Some(s) = &spec.sglang_shared_prefix {
        let bodies = sglang_shared_prefix(s, vocab, rng)?;
        return Ok(Box::new(timed(
            bodies.into_iter(),
            arrivals(ArrivalSpec::Burst)?,
        )));
    }
    if let Some(s) = &spec.chat {
        let starts = arrivals(ArrivalSpec::Poisson { rate_per_s: 1.0 })?;
        return Ok(Box::new(ChatGen::new(s, starts, vocab, base_dir, rng)?));
    }
    if let Some(s) = &spec.random {
        let bodies = RandomGen::new(s, base_dir, rng)?;
        return Ok(Box::new(timed(bodies, arrivals(ArrivalSpec::Burst)?)));
    }
    Err(TraceError::spec("", "no source"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_past_the_end_of_simulated_time_are_an_error() {
        let e =
            open("random: {}\nnum_requests: 3\narrivals: {type: constant, rate_per_s: 1.0e-300}")
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with("workload.arrivals: request 1 would arrive after 292 years"),
            "{e}"
        );
        assert_eq!(
            open("random: {}\nnum_requests: 3\narrivals: {type: constant, rate_per_s: 1.0e-9}")
                .unwrap()
                .len(),
            3
        );
    }

    fn open(yaml: &str) -> Result<Vec<TraceRequest>, TraceError> {
        let spec: WorkloadSpec =
            serde_yaml_ng::from_str(yaml).map_err(|e| TraceError::spec("yaml", e.to_string()))?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        open_workload(&spec, dir, &RngStreams::new(11))?.collect()
    }

    #[test]
    fn llm_d_benchmark_default_workload() {
        // 32 groups x 32 prompts, 2048 + 256 tokens, stages 2..20 QPS x 50 s.
        let reqs = open(
            "shared_prefix: {num_groups: 32, num_prompts_per_group: 32, system_prompt_len: 2048, question_len: 256, output_len: 256}\n\
             arrivals: {type: stages, stages: [{rate: 2, duration: 50}, {rate: 5, duration: 50}, {rate: 8, duration: 50}, {rate: 10, duration: 50}, {rate: 12, duration: 50}, {rate: 15, duration: 50}, {rate: 20, duration: 50}]}",
        )
        .unwrap();
        assert_eq!(reqs.len(), (2 + 5 + 8 + 10 + 12 + 15 + 20) * 50);
        assert!(reqs
            .iter()
            .all(|r| r.prompt.n_tokens() == 2304 && r.output_len == 256));
        assert!(reqs.iter().enumerate().all(|(i, r)| r.id == i as u64));
        assert!(reqs.last().unwrap().arrival_ns <= 350_000_000_000);
    }

    #[test]
    fn transforms_apply_in_order() {
        let base = open("sglang_shared_prefix: {num_groups: 2, prompts_per_group: 5, system_prompt_len: 16, question_len: 16, output_len: 4}\narrivals: {type: constant, rate_per_s: 10}").unwrap();
        assert_eq!(base.len(), 10);
        assert_eq!(base[9].arrival_ns, 900_000_000);
        let fast = open("sglang_shared_prefix: {num_groups: 2, prompts_per_group: 5, system_prompt_len: 16, question_len: 16, output_len: 4}\narrivals: {type: constant, rate_per_s: 10}\ntransforms: [{speedup: 3}, {first_seconds: 0.2}]").unwrap();
        assert_eq!(
            fast.iter().map(|r| r.arrival_ns).collect::<Vec<_>>(),
            vec![
                0,
                33_333_333,
                66_666_667,
                100_000_000,
                133_333_333,
                166_666_667
            ]
        );
        assert_eq!(
            fast[..],
            base[..6]
                .iter()
                .cloned()
                .map(|mut r| {
                    r.arrival_ns = (r.arrival_ns as f64 / 3.0).round() as u64;
                    r
                })
                .collect::<Vec<_>>()[..]
        );
        let re = open("random: {input_len: 100, output_len: 10}\narrivals: {type: poisson, rate_per_s: 3}\nnum_requests: 1000\ntransforms: [{rate_per_s: 50}]").unwrap();
        let span_s = re.last().unwrap().arrival_ns as f64 * 1e-9;
        assert!((1000.0 / span_s - 50.0).abs() < 1e-6, "{}", 1000.0 / span_s);
    }

    #[test]
    fn traces_open_relative_to_base_dir_and_can_be_retimed() {
        let reqs = open("trace: {path: traces/mooncake/conversation_trace.jsonl}\narrivals: {type: constant, rate_per_s: 100}\ntransforms: [{first_requests: 3}]").unwrap();
        assert_eq!(
            reqs.iter().map(|r| r.arrival_ns).collect::<Vec<_>>(),
            vec![0, 10_000_000, 20_000_000]
        );
        assert_eq!(reqs[0].prompt.n_tokens(), 6758);
    }

    #[test]
    fn spec_errors() {
        let e = open("random: {}").unwrap_err().to_string();
        assert!(e.contains("endless"), "{e}");
        let e = open("random: {}\nchat: {}").unwrap_err().to_string();
        assert!(e.ends_with("got chat and random"), "{e}");
        let e = open("random: {}\ntransforms: [{rate_per_s: 3}, {first_requests: 3}]")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("workload.transforms[0]: rate_per_s needs a finite stream"),
            "{e}"
        );
        let e = open("trace: {path: nope.jsonl, format: mooncake}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.jsonl"), "{e}");
        let e = serde_yaml_ng::from_str::<WorkloadSpec>("shared_prefx: {}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `shared_prefx`"), "{e}");
        let e = serde_yaml_ng::from_str::<WorkloadSpec>("shared_prefix: {num_group: 3}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `num_group`"), "{e}");
    }

    #[test]
    fn same_seed_same_workload() {
        let y = "chat: {num_sessions: 5, system_prompt_len: 20}\narrivals: {type: gamma, rate_per_s: 2, cv: 2}";
        assert_eq!(open(y).unwrap(), open(y).unwrap());
    }
}
