//! Shared-prefix workloads: inference-perf `shared_prefix` and SGLang
//! `generated-shared-prefix`.
//!
//! Both draw random token ids (uniform over `[0, vocab_size)`, stream
//! `workload.tokens`) for one system prompt per group and one question per
//! prompt, and send `system ++ question`. The tools generate text and
//! tokenize it, joining with `" "` (inference-perf) or `"\n\n"` (SGLang); here
//! prompts are token ids, so block boundaries are exactly at the nominal
//! lengths and no separator token is added. Lengths draw from
//! `workload.lengths`, shuffles from `workload.shuffle`, answers from
//! `workload.answers`.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::length::LengthDist;
use super::Body;
use crate::engine::rng::{RngStreams, StreamRng};
use crate::trace::error::{TraceError, MAX_TRACE_TOKENS};
use crate::trace::request::Prompt;

/// inference-perf `data.shared_prefix` (defaults are inference-perf's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedPrefixSpec {
    /// Distinct system prompts (alias `num_unique_system_prompts`). Default 10.
    #[serde(alias = "num_unique_system_prompts")]
    pub num_groups: u32,
    /// Questions per system prompt (alias `num_users_per_system_prompt`). Default 10.
    #[serde(alias = "num_users_per_system_prompt")]
    pub num_prompts_per_group: u32,
    /// System prompt length, drawn once per group. Default 100.
    pub system_prompt_len: LengthDist,
    /// Question length, drawn per prompt. Default 50.
    pub question_len: LengthDist,
    /// Output length, drawn per prompt. Default 50.
    pub output_len: LengthDist,
    /// Multi-turn: each of the `num_groups * num_prompts_per_group` users keeps
    /// a context that starts as its group's system prompt; request `i` goes to
    /// user `i mod n` with question `i mod n`, prompt = context ++ question, then
    /// context = prompt ++ answer. Default false.
    pub enable_multi_turn_chat: bool,
}

impl Default for SharedPrefixSpec {
    fn default() -> Self {
        SharedPrefixSpec {
            num_groups: 10,
            num_prompts_per_group: 10,
            system_prompt_len: LengthDist::Fixed(100),
            question_len: LengthDist::Fixed(50),
            output_len: LengthDist::Fixed(50),
            enable_multi_turn_chat: false,
        }
    }
}

/// SGLang `bench_serving --dataset-name generated-shared-prefix` (`--gsp-*`
/// flags; defaults are SGLang's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SglangSharedPrefixSpec {
    /// `--gsp-num-groups`. Default 64.
    pub num_groups: u32,
    /// `--gsp-prompts-per-group`. Default 16.
    pub prompts_per_group: u32,
    /// `--gsp-system-prompt-len`. Default 2048.
    pub system_prompt_len: u32,
    /// `--gsp-question-len`. Default 128.
    pub question_len: u32,
    /// `--gsp-output-len`. Default 256.
    pub output_len: u32,
    /// `--gsp-range-ratio`: lengths are uniform in
    /// `[max(floor(len * ratio), 1), len]`. Default 1.0 (exact lengths).
    pub range_ratio: f64,
}

impl Default for SglangSharedPrefixSpec {
    fn default() -> Self {
        SglangSharedPrefixSpec {
            num_groups: 64,
            prompts_per_group: 16,
            system_prompt_len: 2048,
            question_len: 128,
            output_len: 256,
            range_ratio: 1.0,
        }
    }
}

/// Uniform random token ids.
pub fn random_tokens(rng: &mut StreamRng, n: u32, vocab_size: u32, out: &mut Vec<u32>) {
    out.extend((0..n).map(|_| rng.random_range(0..vocab_size.max(1))));
}

/// inference-perf's request sequence: an endless cycle over the prompts.
pub struct SharedPrefixGen {
    prompts: Vec<(Vec<u32>, u32)>,
    /// Multi-turn state: per-user context (after the user shuffle).
    contexts: Option<Vec<(Vec<u32>, u64)>>,
    answers: StreamRng,
    vocab_size: u32,
    i: u64,
}

impl SharedPrefixGen {
    /// Builds the prompts (all generated up front, like inference-perf).
    pub fn new(
        spec: &SharedPrefixSpec,
        vocab_size: u32,
        base_dir: &Path,
        rng: &RngStreams,
    ) -> Result<SharedPrefixGen, TraceError> {
        if spec.num_groups == 0 || spec.num_prompts_per_group == 0 {
            return Err(TraceError::spec(
                "shared_prefix.num_groups",
                "num_groups and num_prompts_per_group must be positive",
            ));
        }
        let sys_len = spec
            .system_prompt_len
            .sampler("shared_prefix.system_prompt_len", base_dir)?;
        let q_len = spec
            .question_len
            .sampler("shared_prefix.question_len", base_dir)?;
        let out_len = spec
            .output_len
            .sampler("shared_prefix.output_len", base_dir)?;
        let mut lengths = rng.stream("workload.lengths");
        let mut tokens = rng.stream("workload.tokens");
        let mut shuffle = rng.stream("workload.shuffle");
        let n_per = spec.num_prompts_per_group;
        let mut systems = Vec::new();
        let mut questions = Vec::new();
        for _ in 0..spec.num_groups {
            let mut sys = Vec::new();
            random_tokens(
                &mut tokens,
                sys_len.sample(&mut lengths),
                vocab_size,
                &mut sys,
            );
            for _ in 0..n_per {
                let mut q = Vec::new();
                random_tokens(&mut tokens, q_len.sample(&mut lengths), vocab_size, &mut q);
                questions.push((q, out_len.sample(&mut lengths)));
            }
            systems.push(sys);
        }
        let (prompts, contexts) = if spec.enable_multi_turn_chat {
            // Questions stay in group order; users are shuffled (inference-perf).
            let mut users: Vec<(Vec<u32>, u64)> = (0..questions.len())
                .map(|u| (systems[u / n_per as usize].clone(), u as u64))
                .collect();
            users.shuffle(&mut shuffle);
            (questions, Some(users))
        } else {
            let mut prompts: Vec<(Vec<u32>, u32)> = questions
                .into_iter()
                .enumerate()
                .map(|(i, (q, o))| {
                    let mut p = systems[i / n_per as usize].clone();
                    p.extend_from_slice(&q);
                    (p, o)
                })
                .collect();
            prompts.shuffle(&mut shuffle);
            (prompts, None)
        };
        Ok(SharedPrefixGen {
            prompts,
            contexts,
            answers: rng.stream("workload.answers"),
            vocab_size,
            i: 0,
        })
    }
}

impl Iterator for SharedPrefixGen {
    type Item = Body;

    fn next(&mut self) -> Option<Body> {
        let n = self.prompts.len() as u64;
        let idx = (self.i % n) as usize;
        self.i += 1;
        let (question, output_len) = &self.prompts[idx];
        let Some(contexts) = self.contexts.as_mut() else {
            return Some(Body {
                prompt: Prompt::Tokens(question.clone()),
                output_len: *output_len,
                session_id: None,
                output_token_ids: None,
            });
        };
        let (context, user) = &mut contexts[idx];
        let mut prompt = std::mem::take(context);
        prompt.extend_from_slice(question);
        let mut answer = Vec::with_capacity(*output_len as usize);
        random_tokens(&mut self.answers, *output_len, self.vocab_size, &mut answer);
        let mut next_context = prompt.clone();
        next_context.extend_from_slice(&answer);
        *context = next_context;
        Some(Body {
            prompt: Prompt::Tokens(prompt),
            output_len: *output_len,
            session_id: Some(*user),
            output_token_ids: Some(answer),
        })
    }
}

/// SGLang's finite list: `num_groups * prompts_per_group` prompts, shuffled.
pub fn sglang_shared_prefix(
    spec: &SglangSharedPrefixSpec,
    vocab_size: u32,
    rng: &RngStreams,
) -> Result<Vec<Body>, TraceError> {
    if !(spec.range_ratio.is_finite() && (0.0..=1.0).contains(&spec.range_ratio)) {
        return Err(TraceError::spec(
            "sglang_shared_prefix.range_ratio",
            format!("must be in [0, 1], got {}", spec.range_ratio),
        ));
    }
    for (name, v) in [
        ("system_prompt_len", spec.system_prompt_len),
        ("question_len", spec.question_len),
        ("output_len", spec.output_len),
    ] {
        if v > MAX_TRACE_TOKENS {
            return Err(TraceError::spec(
                format!("sglang_shared_prefix.{name}"),
                format!("{v} exceeds the limit of {MAX_TRACE_TOKENS}"),
            ));
        }
    }
    let mut lengths = rng.stream("workload.lengths");
    let mut tokens = rng.stream("workload.tokens");
    let mut shuffle = rng.stream("workload.shuffle");
    let n_groups = spec.num_groups as usize;
    let n = n_groups * spec.prompts_per_group as usize;
    let mut lens = |full: u32, count: usize| -> Vec<u32> {
        if full == 0 {
            return vec![0; count];
        }
        let lo = ((full as f64 * spec.range_ratio).floor() as u32).max(1);
        (0..count)
            .map(|_| lengths.random_range(lo..=full))
            .collect()
    };
    let sys_lens = lens(spec.system_prompt_len, n_groups);
    let q_lens = lens(spec.question_len, n);
    let out_lens = lens(spec.output_len, n);
    let systems: Vec<Vec<u32>> = sys_lens
        .iter()
        .map(|&l| {
            let mut v = Vec::new();
            random_tokens(&mut tokens, l, vocab_size, &mut v);
            v
        })
        .collect();
    let mut bodies: Vec<Body> = (0..n)
        .map(|i| {
            let mut p = systems[i / spec.prompts_per_group as usize].clone();
            random_tokens(&mut tokens, q_lens[i], vocab_size, &mut p);
            Body {
                prompt: Prompt::Tokens(p),
                output_len: out_lens[i],
                session_id: None,
                output_token_ids: None,
            }
        })
        .collect();
    bodies.shuffle(&mut shuffle);
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(b: &Body) -> &[u32] {
        match &b.prompt {
            Prompt::Tokens(t) => t,
            Prompt::HashIds { .. } => panic!("expected tokens"),
        }
    }

    #[test]
    fn single_turn_groups_share_exactly_the_system_prompt() {
        let spec = SharedPrefixSpec {
            num_groups: 3,
            num_prompts_per_group: 4,
            system_prompt_len: LengthDist::Fixed(64),
            question_len: LengthDist::Fixed(32),
            output_len: LengthDist::Fixed(8),
            enable_multi_turn_chat: false,
        };
        let g = SharedPrefixGen::new(&spec, 32000, Path::new("."), &RngStreams::new(1)).unwrap();
        let bodies: Vec<Body> = g.take(24).collect();
        // Cycles over the 12 shuffled prompts.
        assert_eq!(bodies[..12], bodies[12..]);
        let mut by_prefix = std::collections::BTreeMap::<Vec<u32>, usize>::new();
        for b in &bodies[..12] {
            assert_eq!(tokens(b).len(), 96);
            assert_eq!(b.output_len, 8);
            *by_prefix.entry(tokens(b)[..64].to_vec()).or_default() += 1;
        }
        assert_eq!(
            by_prefix.values().copied().collect::<Vec<_>>(),
            vec![4, 4, 4]
        );
        // Same seed, same workload.
        let again: Vec<Body> =
            SharedPrefixGen::new(&spec, 32000, Path::new("."), &RngStreams::new(1))
                .unwrap()
                .take(12)
                .collect();
        assert_eq!(again, bodies[..12]);
    }

    #[test]
    fn multi_turn_prompt_is_previous_prompt_plus_answer_plus_question() {
        let spec = SharedPrefixSpec {
            num_groups: 2,
            num_prompts_per_group: 2,
            system_prompt_len: LengthDist::Fixed(10),
            question_len: LengthDist::Fixed(5),
            output_len: LengthDist::Fixed(3),
            enable_multi_turn_chat: true,
        };
        let g = SharedPrefixGen::new(&spec, 100, Path::new("."), &RngStreams::new(2)).unwrap();
        let b: Vec<Body> = g.take(8).collect();
        for i in 0..4 {
            let (r0, r1) = (&b[i], &b[i + 4]);
            assert_eq!(r0.session_id, r1.session_id);
            assert_eq!(tokens(r0).len(), 15);
            let mut expect = tokens(r0).to_vec();
            expect.extend(r0.output_token_ids.as_ref().unwrap());
            expect.extend(&tokens(r0)[10..15]); // same question again, as inference-perf does
            assert_eq!(tokens(r1), expect.as_slice());
        }
    }

    #[test]
    fn sglang_defaults_and_range_ratio() {
        let d = SglangSharedPrefixSpec::default();
        assert_eq!(
            (
                d.num_groups,
                d.prompts_per_group,
                d.system_prompt_len,
                d.question_len,
                d.output_len
            ),
            (64, 16, 2048, 128, 256)
        );
        let spec = SglangSharedPrefixSpec {
            num_groups: 2,
            prompts_per_group: 3,
            system_prompt_len: 20,
            question_len: 10,
            output_len: 4,
            range_ratio: 1.0,
        };
        let b = sglang_shared_prefix(&spec, 1000, &RngStreams::new(5)).unwrap();
        assert_eq!(b.len(), 6);
        assert!(b.iter().all(|x| tokens(x).len() == 30 && x.output_len == 4));
        let spec = SglangSharedPrefixSpec {
            range_ratio: 0.5,
            ..spec
        };
        let b = sglang_shared_prefix(&spec, 1000, &RngStreams::new(5)).unwrap();
        assert!(b
            .iter()
            .all(|x| (2..=4).contains(&x.output_len) && (15..=30).contains(&tokens(x).len())));
        assert!(sglang_shared_prefix(
            &SglangSharedPrefixSpec {
                range_ratio: 2.0,
                ..spec
            },
            10,
            &RngStreams::new(1)
        )
        .is_err());
    }
}
