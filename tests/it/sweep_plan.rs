//! `kvsim sweep` and `kvsim plan` through the binary: outputs and exit codes.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kvsim(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_kvsim"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> String {
    let d = root().join("target").join("it-tmp").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d.display().to_string()
}

#[test]
fn sweep_writes_rows_and_resumes() {
    let out = tmp("sweep-cli");
    let args = [
        "sweep",
        "tests/data/sweep/poisson.yaml",
        "--set",
        "rate=80,160",
        "--set",
        "pods[0].count=1,2",
        "--out",
        &out,
        "--jobs",
        "2",
    ];
    let (code, stdout, stderr) = kvsim(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("sweep: 4 points (0 resumed, 4 run, 0 failed)"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(format!("{out}/sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    let (code, stdout, _) = kvsim(&args);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("sweep: 4 points (4 resumed, 0 run, 0 failed)"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(format!("{out}/sweep.csv")).unwrap(),
        csv
    );
}

#[test]
fn plan_answers_or_exits_1_and_rejects_bad_slos_with_2() {
    let out = tmp("plan-cli");
    let base = ["plan", "tests/data/plan/constant_step.yaml", "--out", &out];
    let (code, stdout, stderr) =
        kvsim(&[&base[..], &["--slo", "ttft_p90=5ms", "--rate", "350"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("answer: pods[0].count=4 (4 GPUs"),
        "{stdout}"
    );
    let evidence = std::fs::read_to_string(format!("{out}/plan.csv")).unwrap();
    assert!(
        evidence.starts_with("pods[0].count,n_gpus,hit_rate,ttft_p90_ms,"),
        "{evidence}"
    );
    let (code, _, stderr) = kvsim(
        &[
            &base[..],
            &["--slo", "ttft_p90=5ms", "--rate", "350", "--max-pods", "3"],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no configuration meets ttft_p90 ≤ 5 ms even at --max-pods 3"),
        "{stderr}"
    );
    let (code, _, stderr) = kvsim(&[&base[..], &["--slo", "tpot_p90=50"]].concat());
    assert_eq!(code, 2);
    assert!(stderr.contains("needs a unit"), "{stderr}");
}

#[test]
fn plan_and_sweep_search_the_pods_of_a_deployment() {
    // seed/kv_aware.yaml has only `deployment:` (decode and prefill groups
    // from the llm-d YAML); both commands address them by role.
    let out = tmp("plan-deployment");
    let (code, stdout, stderr) = kvsim(&[
        "plan",
        "scenarios/seed/kv_aware.yaml",
        "--slo",
        "ttft_p90=1s",
        "--max-pods",
        "2",
        "--out",
        &out,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("answer: prefill=1 decode=1 (2 GPUs"),
        "{stdout}"
    );
    let out = tmp("sweep-deployment");
    let (code, _, stderr) = kvsim(&[
        "sweep",
        "scenarios/seed/kv_aware.yaml",
        "--set",
        "decode=1,2",
        "--out",
        &out,
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let csv = std::fs::read_to_string(format!("{out}/sweep.csv")).unwrap();
    assert!(csv.lines().nth(2).unwrap().starts_with("2,"), "{csv}");
}
