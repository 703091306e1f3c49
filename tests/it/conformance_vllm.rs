use std::path::PathBuf;

use kvsim::compat::VllmVersion;
use kvsim::conformance::vllm::{run, Output, RunOptions, Workload};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance/vllm")
}

const CASES: &[&str] = &[
    "a_shared_prefix",
    "b_repeat_prompt",
    "c_eviction_lru",
    "d_preemption",
    "e_chunked_prefill",
    "f_random_200",
];

/// (file suffix, async, version, PYTHONHASHSEED)
const VARIANTS: &[(&str, bool, VllmVersion, Option<&str>)] = &[
    ("out", false, VllmVersion::V0_33, None),
    ("async.out", true, VllmVersion::V0_33, None),
    ("v0110.out", false, VllmVersion::V0_11, Some("42")),
    ("v0110.async.out", true, VllmVersion::V0_11, Some("42")),
];

fn compare(case: &str, variant: &str, ours: &Output, oracle: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let t = &oracle["totals"];
    let tot = |k: &str| t[k].as_u64().unwrap();
    for (k, v) in [
        ("prefix_cache_queries", ours.totals.prefix_cache_queries),
        ("prefix_cache_hits", ours.totals.prefix_cache_hits),
        ("num_preemptions", ours.totals.num_preemptions),
        ("num_blocks_stored", ours.totals.num_blocks_stored),
        ("num_blocks_removed", ours.totals.num_blocks_removed),
    ] {
        if tot(k) != v {
            diffs.push(format!(
                "{case}.{variant}: totals.{k}: oracle {} ours {v}",
                tot(k)
            ));
        }
    }
    for (id, r) in oracle["requests"].as_object().unwrap() {
        let Some(o) = ours.requests.get(id) else {
            diffs.push(format!("{case}.{variant}: request {id} missing"));
            continue;
        };
        let ou = |k: &str| r[k].as_u64();
        let checks = [
            (
                "prefix_hit_tokens",
                ou("prefix_hit_tokens"),
                Some(o.prefix_hit_tokens as u64),
            ),
            (
                "first_scheduled_step",
                ou("first_scheduled_step"),
                o.first_scheduled_step,
            ),
            (
                "first_token_step",
                ou("first_token_step"),
                o.first_token_step,
            ),
            ("finish_step", ou("finish_step"), o.finish_step),
            (
                "num_preemptions",
                ou("num_preemptions"),
                Some(o.num_preemptions as u64),
            ),
            (
                "num_scheduled_tokens_total",
                ou("num_scheduled_tokens_total"),
                Some(o.num_scheduled_tokens_total),
            ),
        ];
        for (k, a, b) in checks {
            if a != b {
                diffs.push(format!(
                    "{case}.{variant}: request {id}.{k}: oracle {a:?} ours {b:?}"
                ));
            }
        }
    }
    let steps = oracle["steps"].as_array().unwrap();
    if steps.len() != ours.steps.len() {
        diffs.push(format!(
            "{case}.{variant}: {} steps in oracle, {} ours",
            steps.len(),
            ours.steps.len()
        ));
    }
    for (s, o) in steps.iter().zip(&ours.steps) {
        let step = s["step"].as_u64().unwrap();
        if step != o.step {
            diffs.push(format!(
                "{case}.{variant}: step number oracle {step} ours {}",
                o.step
            ));
            break;
        }
        let sched: Option<Vec<(String, u32)>> = s
            .get("scheduled")
            .map(|v| serde_json::from_value(v.clone()).unwrap());
        if sched != o.scheduled {
            diffs.push(format!(
                "{case}.{variant}: step {step} scheduled: oracle {sched:?} ours {:?}",
                o.scheduled
            ));
        }
        let pre: Vec<String> = s
            .get("preempted")
            .map(|v| serde_json::from_value(v.clone()).unwrap())
            .unwrap_or_default();
        if pre != o.preempted {
            diffs.push(format!(
                "{case}.{variant}: step {step} preempted: oracle {pre:?} ours {:?}",
                o.preempted
            ));
        }
        if s["num_free_blocks"].as_u64() != Some(o.num_free_blocks as u64) {
            diffs.push(format!(
                "{case}.{variant}: step {step} num_free_blocks: oracle {} ours {}",
                s["num_free_blocks"], o.num_free_blocks
            ));
        }
        let ev: Vec<(String, Vec<u64>)> = s["kv_events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["type"].as_str().unwrap().to_string(),
                            serde_json::from_value(e["block_hashes"].clone()).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let our_ev: Vec<(String, Vec<u64>)> = o
            .kv_events
            .iter()
            .map(|e| (e.kind.clone(), e.block_hashes.clone()))
            .collect();
        if ev != our_ev {
            diffs.push(format!(
                "{case}.{variant}: step {step} kv_events: oracle {ev:?}\n   ours {our_ev:?}"
            ));
        }
    }
    diffs
}

#[test]
fn every_case_and_variant_matches_vllm() {
    let mut all = Vec::new();
    for case in CASES {
        let w: Workload = serde_json::from_str(
            &std::fs::read_to_string(dir().join(format!("{case}.json"))).unwrap(),
        )
        .unwrap();
        for &(suffix, is_async, version, seed) in VARIANTS {
            let oracle: Value = serde_json::from_str(
                &std::fs::read_to_string(dir().join(format!("{case}.{suffix}.json"))).unwrap(),
            )
            .unwrap();
            let opts = RunOptions {
                async_scheduling: is_async,
                version,
                python_hash_seed: seed.map(String::from),
            };
            let ours = run(&w, &opts).unwrap();
            let mut d = compare(case, suffix, &ours, &oracle);
            d.sort_by_key(|x| x.contains("kv_events"));
            if !d.is_empty() {
                all.push(format!(
                    "{case}.{suffix}: {} differences; first:\n  {}",
                    d.len(),
                    d.iter()
                        .take(if std::env::var("KVSIM_CONFORMANCE_DUMP").is_ok() {
                            30
                        } else {
                            4
                        })
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n  ")
                ));
            }
        }
    }
    if let Ok(path) = std::env::var("KVSIM_CONFORMANCE_DUMP") {
        std::fs::write(path, all.join("\n")).unwrap();
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}
