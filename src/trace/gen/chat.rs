//! Multi-turn chat sessions.
//!
//! Sessions start at the times of the arrival process. Turn `t + 1` of a
//! session arrives `think_time_ms` after turn `t` *arrived* (a static trace
//! cannot know when the answer finished; choose think times above the
//! expected end-to-end latency). Its prompt is the previous prompt + the
//! previous answer + a new user message, so every turn extends the previous
//! turn's blocks. Answers are explicit token ids (`output_token_ids`) that the
//! pod must emit. Each session draws from its own stream
//! `("workload.chat", session)`, so sessions do not perturb each other.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::arrival::ArrivalProcess;
use super::length::{LengthDist, LengthSampler};
use super::shared_prefix::random_tokens;
use crate::engine::rng::{RngStreams, StreamRng};
use crate::trace::error::TraceError;
use crate::trace::request::{Prompt, TraceRequest};

/// `workload.chat`: multi-turn sessions (defaults in parentheses).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatSpec {
    /// Number of sessions (default 100).
    pub num_sessions: u64,
    /// Turns per session, drawn per session (default 5).
    pub turns: LengthDist,
    /// System prompt length (default 0). Drawn once when shared, else per session.
    pub system_prompt_len: LengthDist,
    /// One system prompt for all sessions (cross-session prefix sharing) (default true).
    pub shared_system_prompt: bool,
    /// New user message length per turn (default 128).
    pub user_len: LengthDist,
    /// Answer length per turn (default 256).
    pub output_len: LengthDist,
    /// Gap from one turn's arrival to the next turn's arrival, in ms
    /// [`{exponential: {mean: 10000}}`].
    pub think_time_ms: LengthDist,
}

impl Default for ChatSpec {
    fn default() -> Self {
        ChatSpec {
            num_sessions: 100,
            turns: LengthDist::Fixed(5),
            system_prompt_len: LengthDist::Fixed(0),
            shared_system_prompt: true,
            user_len: LengthDist::Fixed(128),
            output_len: LengthDist::Fixed(256),
            think_time_ms: LengthDist::Exponential { mean: 10_000.0 },
        }
    }
}

struct Session {
    rng: StreamRng,
    context: Vec<u32>,
    turns_left: u32,
}

/// Streams chat turns in arrival order (ties: lower session first).
pub struct ChatGen {
    starts: ArrivalProcess,
    next_start: Option<u64>,
    n_started: u64,
    num_sessions: u64,
    /// Pending turns by (arrival_ns, session index).
    pending: BinaryHeap<Reverse<(u64, u64)>>,
    sessions: std::collections::BTreeMap<u64, Session>,
    shared_system: Option<Vec<u32>>,
    turns: LengthSampler,
    system_len: LengthSampler,
    user_len: LengthSampler,
    output_len: LengthSampler,
    think_ms: LengthSampler,
    rng: RngStreams,
    vocab_size: u32,
    next_id: u64,
}

impl ChatGen {
    /// A generator whose sessions start at the times of `starts`.
    pub fn new(
        spec: &ChatSpec,
        mut starts: ArrivalProcess,
        vocab_size: u32,
        base_dir: &Path,
        rng: &RngStreams,
    ) -> Result<ChatGen, TraceError> {
        let system_len = spec
            .system_prompt_len
            .sampler("chat.system_prompt_len", base_dir)?;
        let shared_system = spec.shared_system_prompt.then(|| {
            let mut r = rng.stream("workload.chat.system");
            let mut v = Vec::new();
            let n = system_len.sample(&mut r);
            random_tokens(&mut r, n, vocab_size, &mut v);
            v
        });
        let next_start = if spec.num_sessions > 0 {
            starts.next()
        } else {
            None
        };
        Ok(ChatGen {
            starts,
            next_start,
            n_started: 0,
            num_sessions: spec.num_sessions,
            pending: BinaryHeap::new(),
            sessions: Default::default(),
            shared_system,
            turns: spec.turns.sampler("chat.turns", base_dir)?,
            system_len,
            user_len: spec.user_len.sampler("chat.user_len", base_dir)?,
            output_len: spec.output_len.sampler("chat.output_len", base_dir)?,
            think_ms: spec.think_time_ms.sampler("chat.think_time_ms", base_dir)?,
            rng: *rng,
            vocab_size,
            next_id: 0,
        })
    }

    fn start_session(&mut self, at_ns: u64) {
        let idx = self.n_started;
        self.n_started += 1;
        let mut rng = self.rng.indexed_stream("workload.chat", idx);
        let turns_left = self.turns.sample(&mut rng);
        let context = match &self.shared_system {
            Some(s) => s.clone(),
            None => {
                let mut v = Vec::new();
                let n = self.system_len.sample(&mut rng);
                random_tokens(&mut rng, n, self.vocab_size, &mut v);
                v
            }
        };
        if turns_left > 0 {
            self.sessions.insert(
                idx,
                Session {
                    rng,
                    context,
                    turns_left,
                },
            );
            self.pending.push(Reverse((at_ns, idx)));
        }
        self.next_start = if self.n_started < self.num_sessions {
            self.starts.next()
        } else {
            None
        };
    }
}

impl Iterator for ChatGen {
    type Item = Result<TraceRequest, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let turn_at = self.pending.peek().map(|r| r.0 .0);
            match (self.next_start, turn_at) {
                (None, None) => return None,
                // Start sessions due no later than the earliest pending turn.
                (Some(s), t) if t.is_none_or(|t| s <= t) => self.start_session(s),
                _ => break,
            }
        }
        let Reverse((at_ns, idx)) = self.pending.pop()?;
        let mut s = self.sessions.remove(&idx)?;
        let mut prompt = std::mem::take(&mut s.context);
        let n_user = self.user_len.sample(&mut s.rng);
        random_tokens(&mut s.rng, n_user, self.vocab_size, &mut prompt);
        let n_out = self.output_len.sample(&mut s.rng);
        let mut answer = Vec::with_capacity(n_out as usize);
        random_tokens(&mut s.rng, n_out, self.vocab_size, &mut answer);
        s.turns_left -= 1;
        if s.turns_left > 0 {
            let mut ctx = prompt.clone();
            ctx.extend_from_slice(&answer);
            s.context = ctx;
            let think_ns = self.think_ms.sample(&mut s.rng) as u64 * 1_000_000;
            self.pending
                .push(Reverse((at_ns.saturating_add(think_ns), idx)));
            self.sessions.insert(idx, s);
        }
        let id = self.next_id;
        self.next_id += 1;
        Some(Ok(TraceRequest {
            id,
            arrival_ns: at_ns,
            prompt: Prompt::Tokens(prompt),
            output_len: n_out,
            session_id: Some(idx),
            cache_salt: None,
            output_token_ids: Some(answer),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::gen::arrival::ArrivalSpec;

    fn run(spec: &ChatSpec, seed: u64) -> Vec<TraceRequest> {
        let rng = RngStreams::new(seed);
        let starts = ArrivalSpec::Poisson { rate_per_s: 2.0 }
            .process(&rng)
            .unwrap();
        ChatGen::new(spec, starts, 1000, Path::new("."), &rng)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn turns_extend_previous_prompt_and_answer() {
        let spec = ChatSpec {
            num_sessions: 20,
            turns: LengthDist::Uniform { min: 1, max: 4 },
            system_prompt_len: LengthDist::Fixed(32),
            user_len: LengthDist::Fixed(16),
            output_len: LengthDist::Uniform { min: 1, max: 20 },
            think_time_ms: LengthDist::Fixed(700),
            ..ChatSpec::default()
        };
        let reqs = run(&spec, 4);
        assert!(reqs.windows(2).all(|w| w[0].arrival_ns <= w[1].arrival_ns));
        assert!(reqs.iter().enumerate().all(|(i, r)| r.id == i as u64));
        let sessions: std::collections::BTreeSet<u64> =
            reqs.iter().filter_map(|r| r.session_id).collect();
        assert_eq!(sessions.len(), 20);
        let mut checked = 0;
        for s in sessions {
            let turns: Vec<&TraceRequest> =
                reqs.iter().filter(|r| r.session_id == Some(s)).collect();
            for w in turns.windows(2) {
                let Prompt::Tokens(p0) = &w[0].prompt else {
                    panic!()
                };
                let Prompt::Tokens(p1) = &w[1].prompt else {
                    panic!()
                };
                let mut expect = p0.clone();
                expect.extend(w[0].output_token_ids.as_ref().unwrap());
                assert_eq!(&p1[..expect.len()], expect.as_slice());
                assert_eq!(p1.len(), expect.len() + 16);
                assert_eq!(w[1].arrival_ns - w[0].arrival_ns, 700_000_000);
                checked += 1;
            }
            let Prompt::Tokens(first) = &turns[0].prompt else {
                panic!()
            };
            assert_eq!(first.len(), 48);
        }
        assert!(checked > 10);
        // Shared system prompt: every first turn starts with the same 32 tokens.
        assert_eq!(reqs, run(&spec, 4));
        assert_ne!(reqs, run(&spec, 5));
    }
}
