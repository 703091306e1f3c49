//! End-to-end runs of the `kvsim` binary: outputs, determinism, bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

fn kvsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kvsim"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = root().join("target").join("it-tmp").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_ok(args: &[&str]) -> String {
    let o = kvsim().args(args).current_dir(root()).output().unwrap();
    assert!(
        o.status.success(),
        "kvsim {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// (exit code, stderr) of a run expected to fail.
fn run_err(args: &[&str]) -> (i32, String) {
    let o = kvsim().args(args).current_dir(root()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn read(dir: &Path, f: &str) -> Vec<u8> {
    std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
}

const OUTPUTS: &[&str] = &[
    "summary.json",
    "requests.csv",
    "unfinished.csv",
    "pods.csv",
    "timeseries.csv",
    "config.json",
];

/// Two runs with the same scenario and seed wrote byte-identical files.
fn assert_same_outputs(a: &Path, b: &Path) {
    for f in OUTPUTS {
        assert_eq!(
            read(a, f),
            read(b, f),
            "{f} differs between two runs with the same seed"
        );
    }
}

#[test]
fn quickstart_runs_and_same_seed_gives_identical_files() {
    let a = tmp("det-a");
    let b = tmp("det-b");
    let c = tmp("det-c");
    let stdout = run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert!(stdout.contains("prefix-cache hit rate"), "{stdout}");
    run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--out",
        b.to_str().unwrap(),
    ]);
    assert_same_outputs(&a, &b);
    let summary: serde_json::Value = serde_json::from_slice(&read(&a, "summary.json")).unwrap();
    assert_eq!(summary["requests_total"], 300);
    assert_eq!(summary["requests_completed"], 300);
    let hit = summary["hit_rate"].as_f64().unwrap();
    assert!(hit > 0.3 && hit < 1.0, "hit rate {hit}");
    let config: serde_json::Value = serde_json::from_slice(&read(&a, "config.json")).unwrap();
    assert_eq!(config["seed"], 42);
    assert!(config["pod_groups"][0]["num_gpu_blocks"].as_u64().unwrap() > 1000);
    // A different seed still runs and completes everything.
    run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--seed",
        "7",
        "--out",
        c.to_str().unwrap(),
    ]);
    let s7: serde_json::Value = serde_json::from_slice(&read(&c, "summary.json")).unwrap();
    assert_eq!(s7["requests_completed"], 300);
}

#[test]
fn a_trace_flag_is_relative_to_the_current_directory() {
    // quickstart.yaml lives in scenarios/; its own trace path is
    // ../traces/quickstart.jsonl, but --trace is read from where kvsim runs.
    let d = tmp("trace-flag-cwd");
    run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--trace",
        "traces/quickstart.jsonl",
        "--quiet",
        "--out",
        d.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&read(&d, "summary.json")).unwrap();
    assert_eq!(summary["requests_completed"], 300);
}

#[test]
fn a_trace_flag_detects_the_format_of_its_own_file() {
    // quickstart.yaml says `format: native`; a Mooncake file given with
    // --trace is read as Mooncake, as `kvsim trace stats` would read it.
    let d = tmp("trace-flag-format");
    let trace = d.join("mc.jsonl");
    std::fs::write(
        &trace,
        "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 4, \"hash_ids\": [0, 1]}\n\
         {\"timestamp\": 10, \"input_length\": 600, \"output_length\": 4, \"hash_ids\": [0, 2]}\n",
    )
    .unwrap();
    run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--trace",
        trace.to_str().unwrap(),
        "--quiet",
        "--out",
        d.join("o").to_str().unwrap(),
    ]);
    let summary: serde_json::Value =
        serde_json::from_slice(&read(&d.join("o"), "summary.json")).unwrap();
    assert_eq!(summary["requests_completed"], 2);
}

#[test]
fn a_reused_out_directory_loses_the_files_this_run_did_not_write() {
    // quickstart has no EPP decision log: an earlier run's routing.csv must
    // not survive to be reported as this run's.
    let d = tmp("stale-out");
    std::fs::write(d.join("routing.csv"), "stale\n").unwrap();
    run_ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(!d.join("routing.csv").exists());
    assert!(d.join("summary.json").exists());
}

/// Every workload request is a row of requests.csv or unfinished.csv, and
/// unfinished.csv says why: cut by the horizon, or arriving after it.
#[test]
fn unfinished_csv_accounts_for_every_request_that_did_not_complete() {
    let d = tmp("unfinished");
    let text = std::fs::read_to_string(root().join("scenarios/quickstart.yaml")).unwrap();
    let s = write_scenario(
        &d,
        &format!(
            "{}\nhorizon_s: 20\n",
            text.replace("../traces/", &format!("{}/traces/", root().display()))
        ),
    );
    let out = d.join("out");
    run_ok(&[
        "run",
        s.to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&read(&out, "summary.json")).unwrap();
    let n = |k: &str| summary[k].as_u64().unwrap();
    let rows = String::from_utf8(read(&out, "unfinished.csv")).unwrap();
    let mut lines = rows.lines();
    assert_eq!(lines.next(), Some("id,pod,reason"));
    let reasons: Vec<&str> = lines.map(|l| l.rsplit(',').next().unwrap()).collect();
    let count = |r: &str| reasons.iter().filter(|&&x| x == r).count() as u64;
    assert!(
        n("requests_after_horizon") > 0 && n("requests_unfinished") > 0,
        "{summary}"
    );
    assert_eq!(count("after_horizon"), n("requests_after_horizon"));
    assert_eq!(count("cut_by_horizon"), n("requests_unfinished"));
    let completed = String::from_utf8(read(&out, "requests.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(
        completed as u64 + reasons.len() as u64,
        300,
        "every quickstart request is in one file"
    );
}

fn write_scenario(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("s.yaml");
    std::fs::write(&p, body).unwrap();
    p
}

const GOOD_WORKLOAD: &str = "workload:\n  trace: {path: TRACE, format: native}\n";

fn scenario(dir: &Path, pods: &str) -> PathBuf {
    let trace = root().join("traces/quickstart.jsonl");
    let body = format!(
        "name: t\npods:\n{pods}\n{}",
        GOOD_WORKLOAD.replace("TRACE", trace.to_str().unwrap())
    );
    write_scenario(dir, &body)
}

#[test]
fn bad_scenarios_name_file_line_field_and_suggest() {
    let d = tmp("bad");
    let cases: &[(&str, &[&str])] = &[
        ("  - gpu: H1000\n    model: Llama-3.1-8B", &["s.yaml:3", "pods[0].gpu", "H1000", "did you mean \"H100\""]),
        ("  - gpu: H100\n    model: Llama-3.1-8Bx", &["s.yaml:4", "pods[0].model", "Llama-3.1-8Bx"]),
        ("  - gpu: H100\n    model: Llama-3.1-8B\n    vllm: {blok_size: 16}", &["s.yaml:5", "blok_size", "did you mean `block_size`"]),
        (
            "  - gpu: H100\n    model: Llama-3.1-8B\n    vllm: {prefix_caching_hash_algo: sha265}",
            &["pods[0].vllm.prefix_caching_hash_algo", "sha265", "sha256"],
        ),
        ("  - gpu: H100\n    model: Llama-3.1-8B\n    vllm: {num_gpu_blocks_override: 1}", &["num_gpu_blocks_override", "null block"]),
        (
            "  - gpu: H100\n    model: Llama-3.1-8B\n    vllm: {num_gpu_blocks_override: 600000000}",
            &["num_gpu_blocks_override", "600000000 blocks is more than kvsim supports (536870911)"],
        ),
        (
            "  - gpu: H100\n    model: Llama-3.1-8B\n    vllm: {num_gpu_blocks_override: 10, max_model_len: 4096}",
            &["s.yaml:5", "max_model_len", "4096", "exceed the KV cache capacity of 144 tokens"],
        ),
        ("  - gpu: H100\n    model: Llama-3.1-70B", &["pods[0].gpu", "exceed"]),
        ("  - gpu: H100\n    model: Llama-3.1-8B\n    role: decoder", &["pods[0].role", "decoder", "did you mean \"decode\""]),
        // A bad step_time is named where it is written: top level or in the group.
        (
            "  - gpu: H100\n    model: Llama-3.1-8B\nstep_time: {model: constant, step_us: 0}",
            &["s.yaml:5: step_time.step_us: ", "expected a positive number of µs, got 0"],
        ),
        (
            "  - gpu: H100\n    model: Llama-3.1-8B\n    step_time: {model: constant, step_us: 0}",
            &["s.yaml:5: pods[0].step_time.step_us: "],
        ),
        (
            "  - gpu: H100\n    model: Llama-3.1-8B\nstep_time: {model: linear, coefficients: llama-3.1-8b/h100/tp9}",
            &["s.yaml:5: step_time.coefficients: ", "unknown coefficients"],
        ),
        // vLLM's SchedulerConfig start-up checks.
        (
            "  - gpu: H100\n    model: Llama-3.1-8B\n    vllm:\n      enable_chunked_prefill: false\n      max_num_batched_tokens: 256\n      max_num_seqs: 4\n      max_model_len: 4096",
            &["s.yaml:7", "pods[0].vllm.max_num_batched_tokens", "max_num_batched_tokens (256) must be at least max_model_len (4096)", "vLLM refuses to start"],
        ),
        (
            "  - gpu: H100\n    model: Llama-3.1-8B\n    vllm: {enable_chunked_prefill: false, max_model_len: 9000}",
            &["s.yaml:5", "pods[0].vllm.max_model_len", "(8192, the default) must be at least max_model_len (9000)"],
        ),
        (
            "  - gpu: H100\n    model: Llama-3.1-8B\n    vllm: {max_num_batched_tokens: 256}",
            &["s.yaml:5", "pods[0].vllm.max_num_batched_tokens", "(256) must be at least max_num_seqs (1024, the default)"],
        ),
    ];
    for (pods, needles) in cases {
        let p = scenario(&d, pods);
        let (code, err) = run_err(&[
            "run",
            p.to_str().unwrap(),
            "--quiet",
            "--out",
            d.join("o").to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{pods}: {err}");
        for n in *needles {
            assert!(err.contains(n), "{pods}: expected {n:?} in: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
    // Malformed YAML.
    let p = write_scenario(&d, "name: [unclosed\npods: 3\n");
    let (code, err) = run_err(&["run", p.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 2);
    assert!(err.contains("s.yaml:"), "{err}");
    // Missing file.
    let (code, err) = run_err(&["run", "does/not/exist.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("does/not/exist.yaml"), "{err}");
}

/// `router:` and `workload.arrivals` are tagged by `type:`; a bad value
/// inside still names its full path and its own line.
#[test]
fn bad_router_and_arrival_fields_name_their_path_and_line() {
    let d = tmp("bad-tagged");
    let trace = root().join("traces/quickstart.jsonl");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "router:\n  type: epp\n  metrics_refresh_ms: fast",
            "",
            &["s.yaml:6:", "router.metrics_refresh_ms", "\"fast\""],
        ),
        (
            "router:\n  type: random\n  decision_log: true",
            "",
            &["s.yaml:6:", "router.decision_log", "only `type: epp`"],
        ),
        (
            "router:\n  type: epp\n  kv_events: {transport_us: abc}",
            "",
            &["s.yaml:6:", "router.kv_events.transport_us", "\"abc\""],
        ),
        (
            "",
            "  arrivals:\n    type: poisson\n    rate_per_s: 2\n    cv: 3",
            &["s.yaml:10:", "workload.arrivals.cv", "type: poisson"],
        ),
        (
            "",
            "  arrivals:\n    type: gamma\n    rate_per_s: 2",
            &["s.yaml:7:", "workload.arrivals.cv: missing"],
        ),
        (
            "",
            "  arrivals: {type: poison, rate_per_s: 2}",
            &[
                "s.yaml:7:",
                "workload.arrivals.type",
                "did you mean `poisson`",
            ],
        ),
    ];
    for (router, arrivals, needles) in cases {
        let body = format!(
            "name: t\npods:\n  - {{gpu: H100, model: Llama-3.2-1B}}\n{router}\nworkload:\n  trace: {{path: {}, format: native}}\n{arrivals}\n",
            trace.display()
        );
        let p = write_scenario(&d, &body);
        let (code, err) = run_err(&["run", p.to_str().unwrap(), "--quiet"]);
        assert_eq!(code, 2, "{body}: {err}");
        for n in *needles {
            assert!(err.contains(n), "{body}: expected {n:?} in: {err}");
        }
    }
}

#[test]
fn a_missing_deployment_file_names_the_scenario_field_that_points_to_it() {
    let d = tmp("bad-deployment");
    let seed = root().join("scenarios/seed");
    let body = format!(
        "name: t\ndeployment:\n  modelservice: {}\n  configmap: {}\nworkload: {{random: {{}}, num_requests: 1}}\n",
        seed.join("modelservice.yaml").display(),
        d.join("absent-configmap.yaml").display()
    );
    let p = write_scenario(&d, &body);
    let (code, err) = run_err(&["run", p.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("s.yaml:4: deployment.configmap: ")
            && err.contains("absent-configmap.yaml: cannot read"),
        "{err}"
    );
}

#[test]
fn malformed_trace_line_is_reported_with_file_and_line() {
    let d = tmp("badtrace");
    let trace = d.join("t.jsonl");
    std::fs::write(&trace, "{\"kvsim_trace\": 1}\n{\"arrival_ns\": 0, \"prompt_token_ids\": [1,2,3], \"output_length\": 2}\n{\"arrival_ns\": \"x\", \"output_length\": 2}\n").unwrap();
    let body = format!(
        "pods:\n  - gpu: H100\n    model: Llama-3.2-1B\nworkload:\n  trace: {{path: {}, format: native}}\n",
        trace.display()
    );
    let p = write_scenario(&d, &body);
    let (code, err) = run_err(&[
        "run",
        p.to_str().unwrap(),
        "--quiet",
        "--out",
        d.join("o").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("t.jsonl:3"), "{err}");
    assert!(err.contains("arrival_ns"), "{err}");
}

#[test]
fn conformance_command_writes_the_oracle_schema() {
    let d = tmp("conf");
    let out = d.join("a.json");
    run_ok(&[
        "conformance",
        "vllm",
        "tests/data/conformance/vllm/a_shared_prefix.json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["totals"]["prefix_cache_hits"], 64);
    assert_eq!(v["requests"]["B"]["prefix_hit_tokens"], 64);
    assert_eq!(
        v["steps"][0]["kv_events"][0]["block_hashes"][0],
        7322446309363477352u64
    );
    // vLLM 0.11 hashes NONE_HASH from os.urandom without a seed: the error
    // names the flag that supplies one.
    let (code, err) = run_err(&[
        "conformance",
        "vllm",
        "tests/data/conformance/vllm/a_shared_prefix.json",
        "--vllm-version",
        "0.11",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("python_hash_seed") && err.contains("--python-hash-seed S"),
        "{err}"
    );
}

#[test]
fn hash_command_prints_vllm_hashes() {
    let toks: Vec<String> = (0..32).map(|i| i.to_string()).collect();
    let out = run_ok(&[
        "hash",
        "--algo",
        "sha256_cbor",
        "--block-size",
        "16",
        "--tokens",
        &toks.join(","),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].ends_with(" 2233398808101521225"), "{out}");
    assert!(lines[1].ends_with(" 17911472383915781900"), "{out}");
}

#[test]
fn epp_runs_are_byte_identical_for_the_same_seed_on_one_or_two_threads() {
    let a = tmp("det-epp-a");
    let b = tmp("det-epp-b");
    for (d, threads) in [(&a, "1"), (&b, "2")] {
        run_ok(&[
            "run",
            "scenarios/epp/precise_prefix.yaml",
            "--quiet",
            "--threads",
            threads,
            "--out",
            d.to_str().unwrap(),
        ]);
    }
    assert_same_outputs(&a, &b);
}

#[test]
fn check_fails_beyond_tolerance_and_passes_within() {
    let d = tmp("check");
    let base = d.join("baselines");
    run_ok(&[
        "check",
        "scenarios/quickstart.yaml",
        "--baseline",
        base.to_str().unwrap(),
        "--update",
    ]);
    let file = base.join("quickstart.json");
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let perturb = |delta: f64| {
        let mut b = original.clone();
        let h = b["metrics"]["hit_rate"].as_f64().unwrap();
        b["metrics"]["hit_rate"] = serde_json::json!(h + delta);
        std::fs::write(&file, serde_json::to_vec_pretty(&b).unwrap()).unwrap();
    };
    let check = || {
        kvsim()
            .args([
                "check",
                "scenarios/quickstart.yaml",
                "--baseline",
                base.to_str().unwrap(),
            ])
            .current_dir(root())
            .output()
            .unwrap()
    };
    // Unchanged: passes.
    let o = check();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Within the default ±0.005.
    perturb(0.004);
    assert_eq!(check().status.code(), Some(0));
    // Beyond it: exit 1 and the diff names the metric.
    perturb(0.02);
    let o = check();
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("hit_rate") && stdout.contains("FAIL"),
        "{stdout}"
    );
    // A looser tolerance on the command line lets it pass.
    let o = kvsim()
        .args([
            "check",
            "scenarios/quickstart.yaml",
            "--baseline",
            base.to_str().unwrap(),
            "--tolerance",
            "hit_rate=0.05",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    // A missing baseline is an error (exit 2), not a failure.
    let (code, err) = run_err(&[
        "check",
        "scenarios/quickstart.yaml",
        "--baseline",
        d.join("none").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--update"), "{err}");
}

#[test]
fn bench_times_a_scenario_and_rejects_zero_runs() {
    let out = run_ok(&[
        "bench",
        "--scenario",
        "scenarios/quickstart.yaml",
        "--repeat",
        "2",
    ]);
    assert_eq!(out.matches("s wall (").count(), 2, "{out}");
    assert!(
        out.contains("best ") && out.contains("over 2 runs"),
        "{out}"
    );
    // The best run's breakdown: every part measured, the parts within its wall time.
    let best: f64 = out
        .split("best ")
        .nth(1)
        .and_then(|r| r.split(" s,").next())
        .and_then(|v| v.parse().ok())
        .expect("best wall time");
    let line = out
        .lines()
        .find(|l| l.starts_with("best run:"))
        .expect("breakdown");
    let parts: Vec<(&str, f64)> = line["best run:".len()..]
        .split(',')
        .map(|p| {
            let p = p.trim();
            let (name, rest) = p.split_at(p.find(|c: char| c.is_ascii_digit()).expect("a number"));
            (
                name.trim(),
                rest.split(' ').next().unwrap().parse().expect("seconds"),
            )
        })
        .collect();
    let names: Vec<&str> = parts.iter().map(|p| p.0).collect();
    assert_eq!(
        names,
        ["pods", "pod outputs", "index", "routing", "other"],
        "{line}"
    );
    let sum: f64 = parts.iter().map(|p| p.1).sum();
    assert!(
        parts[0].1 > 0.0 && (sum - best).abs() <= 0.003,
        "{line} vs best {best}"
    );
    let (code, err) = run_err(&[
        "bench",
        "--scenario",
        "scenarios/quickstart.yaml",
        "--repeat",
        "0",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--repeat must be at least 1"), "{err}");
    // Arrivals past the end of u64 time are refused, not wrapped.
    let (code, err) = run_err(&["bench", "--requests", "5", "--rate", "1e-300"]);
    assert_eq!(code, 2);
    assert!(err.contains("span more simulated time"), "{err}");
    let (_, err) = run_err(&["bench", "--requests", "0"]);
    assert!(err.contains("--requests must be at least 1"), "{err}");
}
