//! The EPP driving a cluster: index lag, oracle parity, hit rates against
//! random and round-robin, and the single-pod collapse of pure prefix scoring.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = root().join("target").join("it-tmp").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `scenario` (YAML text, written into `dir`) and returns (summary, routing.csv).
fn run(dir: &Path, scenario: &str) -> (Value, String) {
    let (summary, routing, _) = run_loud(dir, scenario);
    (summary, routing)
}

/// As `run`, without `--quiet`; also returns stderr (warnings).
fn run_loud(dir: &Path, scenario: &str) -> (Value, String, String) {
    let p = dir.join("s.yaml");
    std::fs::write(&p, scenario).unwrap();
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_kvsim"))
        .args(["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    let summary =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let routing = std::fs::read_to_string(out.join("routing.csv")).unwrap_or_default();
    (summary, routing, stderr)
}

fn requests_per_pod(s: &Value) -> Vec<u64> {
    s["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .collect()
}

/// (request id, picked pod) from routing.csv.
fn picks(routing: &str) -> Vec<(u64, String)> {
    routing
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[4] == "true").then(|| (f[0].parse().unwrap(), f[3].to_string()))
        })
        .collect()
}

/// Writes a native trace of `(arrival_ns, prompt tokens, output length)`.
fn token_trace(dir: &Path, name: &str, requests: &[(u64, Vec<u32>, u32)]) -> PathBuf {
    let mut s = String::from("{\"kvsim_trace\": 1}\n");
    for (arrival_ns, tokens, output) in requests {
        let toks: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
        s.push_str(&format!(
            "{{\"arrival_ns\": {arrival_ns}, \"prompt_token_ids\": [{}], \"output_length\": {output}}}\n",
            toks.join(",")
        ));
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

/// Eight requests 1 ms apart sharing a new 1024-token prefix.
fn burst_trace(dir: &Path) -> PathBuf {
    let requests: Vec<(u64, Vec<u32>, u32)> = (0..8u32)
        .map(|i| {
            let toks = (1..=1024).chain((0..32).map(|k| 50_000 + i * 100 + k));
            (u64::from(i) * 1_000_000, toks.collect(), 8)
        })
        .collect();
    token_trace(dir, "burst.jsonl", &requests)
}

fn precise_only_scenario(trace: &Path, kv_events: &str, kv_index: &str) -> String {
    format!(
        "pods:
  - {{name: pod, count: 4, gpu: H100, model: Llama-3.2-1B}}
router:
  type: epp
  decision_log: true
  kv_index: {kv_index}
  kv_events: {kv_events}
  config:
    plugins:
      - type: precise-prefix-cache-scorer
      - type: max-score-picker
    schedulingProfiles:
      - name: default
        plugins: [{{pluginRef: precise-prefix-cache-scorer}}, {{pluginRef: max-score-picker}}]
workload:
  trace: {{path: {}, format: native}}
",
        trace.display()
    )
}

const ZERO_LAG: &str = "{publish: immediate, transport_us: 0, n_workers: 1, per_event_us: 0}";
const LARGE_LAG: &str = "{publish: step, transport_us: 1000000}";

#[test]
fn index_lag_scatters_a_burst_that_zero_lag_routes_together() {
    let d = tmp("lag");
    let trace = burst_trace(&d);
    let (zero, zero_log) = run(&d, &precise_only_scenario(&trace, ZERO_LAG, "events"));
    let per_pod = requests_per_pod(&zero);
    assert_eq!(
        per_pod.iter().filter(|&&n| n > 0).count(),
        1,
        "zero lag: {per_pod:?}"
    );
    assert_eq!(zero["stale_decisions"], 0);
    assert_eq!(zero["routing_decisions"], 8);

    let (late, _) = run(&d, &precise_only_scenario(&trace, LARGE_LAG, "events"));
    let per_pod = requests_per_pod(&late);
    assert!(
        per_pod.iter().filter(|&&n| n > 0).count() >= 2,
        "large lag: {per_pod:?}"
    );
    // Every request after the first found the prefix cached on some pod but
    // not in the index.
    assert!(
        late["stale_decisions"].as_u64().unwrap() >= 7,
        "{}",
        late["stale_decisions"]
    );
    // The hit rate suffers: scattered requests recompute the prefix.
    assert!(zero["hit_rate"].as_f64().unwrap() > late["hit_rate"].as_f64().unwrap());

    // A zero-lag index decides exactly as reading the pods' caches would.
    let (_, oracle_log) = run(&d, &precise_only_scenario(&trace, ZERO_LAG, "oracle"));
    assert_eq!(picks(&zero_log).len(), 8, "one pick per request");
    assert_eq!(picks(&zero_log), picks(&oracle_log));
}

fn epp_summary(name: &str, router: Option<&str>) -> Value {
    let text =
        std::fs::read_to_string(root().join("scenarios/epp").join(format!("{name}.yaml"))).unwrap();
    let text = match router {
        None => text,
        Some(r) => {
            let start = text.find("router:").unwrap();
            let end = text.find("workload:").unwrap();
            format!("{}{r}\n{}", &text[..start], &text[end..])
        }
    };
    let d = tmp(&format!("epp-{name}-{}", router.is_some()));
    run(&d, &text).0
}

#[test]
fn prefix_aware_routing_beats_random_and_round_robin_on_shared_prefixes() {
    let precise = epp_summary("precise_prefix", None)["hit_rate"]
        .as_f64()
        .unwrap();
    let approx = epp_summary("inference_scheduling", None)["hit_rate"]
        .as_f64()
        .unwrap();
    let random = epp_summary("random", None)["hit_rate"].as_f64().unwrap();
    let rr = epp_summary("random", Some("router: {type: round-robin}"))["hit_rate"]
        .as_f64()
        .unwrap();
    let load = epp_summary("load_only", None)["hit_rate"].as_f64().unwrap();
    for (name, other) in [("random", random), ("round-robin", rr), ("load-only", load)] {
        assert!(precise > other + 0.2, "precise {precise} vs {name} {other}");
        assert!(
            approx > other + 0.2,
            "approximate {approx} vs {name} {other}"
        );
    }
}

#[test]
fn load_terms_prevent_the_single_pod_collapse_of_a_shared_first_block() {
    // Every Mooncake conversation request shares its first 512-token block.
    let trace = root().join("traces/mooncake/conversation_trace.jsonl");
    let first = std::fs::read_to_string(&trace).unwrap();
    assert!(first
        .lines()
        .take(2000)
        .all(|l| l.contains("\"hash_ids\": [0,") || l.contains("\"hash_ids\": [0]")));
    let scenario = |scorers: &str| {
        format!(
            "pods:
  - {{name: pod, count: 8, gpu: H100, model: Llama-3.1-8B}}
router:
  type: epp
  kv_events: {ZERO_LAG}
  config:
    plugins:
      - type: precise-prefix-cache-scorer
      - type: kv-cache-utilization-scorer
      - type: queue-scorer
      - type: max-score-picker
    schedulingProfiles:
      - name: default
        plugins: [{scorers}{{pluginRef: max-score-picker}}]
workload:
  trace: {{path: {}, format: mooncake}}
  arrivals: {{type: poisson, rate_per_s: 3.4}}
  num_requests: 300
",
            trace.display()
        )
    };
    let d = tmp("collapse");
    let (only, _, warnings) = run_loud(&d, &scenario("{pluginRef: precise-prefix-cache-scorer}, "));
    let per_pod = requests_per_pod(&only);
    assert_eq!(
        per_pod.iter().max(),
        Some(&300),
        "pure prefix scoring: {per_pod:?}"
    );
    // The collapse is named: seven idle pods, max/mean = 8.
    let idle: Vec<&str> = only["idle_pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let zero: Vec<String> = (0..8)
        .filter(|&i| per_pod[i] == 0)
        .map(|i| format!("pod-{i}"))
        .collect();
    assert_eq!(
        (idle.len(), idle),
        (7, zero.iter().map(|s| s.as_str()).collect())
    );
    assert_eq!(only["imbalance"].as_f64(), Some(8.0));
    assert!(
        warnings.contains(&format!(
            "7 of 8 pods received no request: {}",
            zero.join(", ")
        )),
        "{warnings}"
    );
    let with_load = run(
        &d,
        &scenario(
            "{pluginRef: precise-prefix-cache-scorer, weight: 3}, {pluginRef: kv-cache-utilization-scorer, weight: 2}, {pluginRef: queue-scorer, weight: 2}, ",
        ),
    )
    .0;
    let per_pod = requests_per_pod(&with_load);
    assert!(
        *per_pod.iter().max().unwrap() < 150,
        "with load terms: {per_pod:?}"
    );
    assert!(
        per_pod.iter().filter(|&&n| n > 0).count() >= 4,
        "with load terms: {per_pod:?}"
    );
    assert_eq!(
        with_load["idle_pods"].as_array().unwrap().len(),
        per_pod.iter().filter(|&&n| n == 0).count()
    );
}

#[test]
fn session_affinity_keeps_each_session_on_the_pod_its_first_turn_got() {
    let d = tmp("session");
    let scenario = "pods:
  - {name: pod, count: 4, gpu: H100, model: Llama-3.1-8B}
router:
  type: epp
  decision_log: true
  config:
    plugins: [{type: session-affinity-scorer}, {type: max-score-picker}]
    schedulingProfiles:
      - name: default
        plugins: [{pluginRef: session-affinity-scorer}, {pluginRef: max-score-picker}]
workload:
  chat:
    num_sessions: 10
    turns: {uniform: {min: 3, max: 4}}
    system_prompt_len: 256
    user_len: {uniform: {min: 50, max: 100}}
    output_len: {uniform: {min: 20, max: 40}}
    think_time_ms: {exponential: {mean: 1000}}
  arrivals: {type: poisson, rate_per_s: 2}
";
    let (summary, routing) = run(&d, scenario);
    let n = summary["requests_total"].as_u64().unwrap();
    assert!(n >= 30, "{n} requests");
    let picked: Vec<&str> = routing
        .lines()
        .filter(|l| l.split(',').nth(4) == Some("true"))
        .collect();
    assert_eq!(picked.len() as u64, n);
    // Every turn after a session's first carries the token of its pod.
    let sticky = picked
        .iter()
        .filter(|l| l.contains("session-affinity-scorer=1.0000"))
        .count() as u64;
    assert_eq!(sticky, n - 10, "{routing}");
}

/// ENV-era P/D ran decode and prefill as two schedulers, each recording its
/// own pick: the prefill profile's prefix scorer must learn prefill pods.
#[test]
fn env_era_prefill_prefix_scorer_learns_the_prefill_pods() {
    let d = tmp("env-pd");
    let scenario = "pods:
  - {name: decode, role: decode, count: 2, gpu: H100, model: Llama-3.2-1B}
  - {name: prefill, role: prefill, count: 2, gpu: H100, model: Llama-3.2-1B}
pd: {enabled: true, connector: nixlv2}
router:
  type: epp
  decision_log: true
  env:
    - {name: PD_ENABLED, value: \"true\"}
    - {name: PD_PROMPT_LEN_THRESHOLD, value: \"10\"}
    - {name: ENABLE_PREFIX_AWARE_SCORER, value: \"true\"}
    - {name: PREFILL_ENABLE_PREFIX_AWARE_SCORER, value: \"true\"}
workload:
  shared_prefix:
    num_groups: 4
    num_prompts_per_group: 8
    system_prompt_len: 2048
    question_len: 256
    output_len: 16
  arrivals: {type: poisson, rate_per_s: 4}
  num_requests: 32
";
    let (_, routing) = run(&d, scenario);
    let prefill_picks: Vec<&str> = routing
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[2] == "prefill" && f[4] == "true"
        })
        .collect();
    assert_eq!(prefill_picks.len(), 32);
    // Every request after its group's first finds its prefix on a prefill pod.
    let hits = prefill_picks
        .iter()
        .filter(|l| l.contains("prefill-prefix-cache-scorer=1.0000"))
        .count();
    assert_eq!(hits, 32 - 4, "{routing}");
}

/// Spec §4: a metric is stale after 2 s and the datastore offers only pods
/// with fresh metrics, so a 3 s scrape interval leaves windows with no
/// candidate at all, and those requests are refused.
#[test]
fn pods_with_stale_metrics_are_no_candidates() {
    let router = |refresh_ms: u32| {
        format!(
            "router:
  type: epp
  metrics_refresh_ms: {refresh_ms}
  config:
    plugins: [{{type: queue-scorer}}]
"
        )
    };
    let cut = |s: Value| {
        (
            s["requests_rejected"].as_u64().unwrap(),
            s["requests_total"].as_u64().unwrap(),
        )
    };
    let (rejected, total) = cut(epp_summary("load_only", Some(&router(1000))));
    assert_eq!((rejected, total), (0, 1500));
    let (rejected, _) = cut(epp_summary("load_only", Some(&router(3000))));
    // Arrivals are Poisson: about a third fall 2–3 s after a scrape.
    assert!((300..700).contains(&rejected), "{rejected} rejected");
}

#[test]
fn a_precise_block_size_unlike_the_pods_is_warned() {
    let d = tmp("precise-block-size");
    let trace = burst_trace(&d);
    let scenario = precise_only_scenario(&trace, ZERO_LAG, "events").replace(
        "- type: precise-prefix-cache-scorer\n",
        "- type: precise-prefix-cache-scorer\n        parameters: {tokenProcessorConfig: {blockSize: 64}}\n",
    );
    let (_, _, stderr) = run_loud(&d, &scenario);
    assert!(
        stderr.contains("blockSize 64 differs from the vLLM block_size of 4 of 4 pods"),
        "{stderr}"
    );
}

/// llm-d's `prefix_indexer_hit_ratio`: the approximate index's matched /
/// total blocks for each pick, averaged. Three 4-block prompts: new (0/4),
/// repeated (4/4), sharing two blocks (2/4) → 0.5.
#[test]
fn prefix_indexer_hit_ratio_averages_the_picks_matched_blocks() {
    let d = tmp("indexer-ratio");
    let prompts: [Vec<u32>; 3] = [
        (1..=64).collect(),
        (1..=64).collect(),
        (1..=32).chain(1001..=1032).collect(),
    ];
    let requests: Vec<(u64, Vec<u32>, u32)> = prompts
        .into_iter()
        .enumerate()
        .map(|(i, p)| (i as u64 * 100_000_000, p, 4))
        .collect();
    let path = token_trace(&d, "t.jsonl", &requests);
    let scenario = format!(
        "pods:
  - {{name: pod, count: 1, gpu: H100, model: Llama-3.2-1B}}
router:
  type: epp
  config:
    plugins:
      - type: prefix-cache-scorer
        parameters: {{blockSizeTokens: 16, autoTune: false}}
workload:
  trace: {{path: {}, format: native}}
",
        path.display()
    );
    let (s, _) = run(&d, &scenario);
    assert_eq!(s["prefix_indexer_hit_ratio"].as_f64(), Some(0.5), "{s}");
}
