//! The seed deployment's 86% cache hit rate, reproduced from its own YAML.

use std::process::Command;

#[test]
fn seed_deployment_reaches_86_percent_hit_rate_with_pd() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/it-tmp/seed-kv-aware");
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new(env!("CARGO_BIN_EXE_kvsim"))
        .args([
            "run",
            "scenarios/seed/kv_aware.yaml",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let hit = s["hit_rate"].as_f64().unwrap();
    assert!((0.85..=0.87).contains(&hit), "aggregate hit rate {hit}");
    assert_eq!(s["requests_completed"], 1000);
    // Every request was prefilled remotely and its KV pulled once.
    assert_eq!(s["kv_transfers"], 1000);
    let pools = s["pools"].as_array().unwrap();
    let pool = |r: &str| pools.iter().find(|p| p["role"] == r).unwrap();
    assert_eq!(pool("prefill")["requests"], 1000);
    assert_eq!(pool("decode")["completed"], 1000);
    assert!(pool("prefill")["hit_rate"].as_f64().unwrap() > 0.85);
}
