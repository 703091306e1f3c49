//! Importing the seed's llm-d deployment (scenarios/seed/): the resolved
//! cluster, the warnings, bad input, and `kvsim import` / `kvsim run --modelservice`.

use std::path::{Path, PathBuf};
use std::process::Command;

use kvsim::scenario::modelservice::{import_files, import_text, Imported};
use kvsim::scenario::resolve::{self, load_epp_config, Overrides};
use kvsim::scenario::RouterSpec;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seed(f: &str) -> PathBuf {
    root().join("scenarios/seed").join(f)
}

fn seed_text(f: &str) -> String {
    std::fs::read_to_string(seed(f)).unwrap()
}

/// Imports the seed ModelService text `ms` with the seed ConfigMap text `cm`.
fn import(ms: &str, cm: &str) -> Result<Imported, kvsim::scenario::error::ScenarioError> {
    import_text(
        Path::new("modelservice.yaml"),
        ms,
        Some((Path::new("epp-configmap.yaml"), cm)),
    )
}

fn kvsim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kvsim"));
    c.current_dir(root());
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = root().join("target").join("it-tmp").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn seed_modelservice_imports_without_edits() {
    let imp = import_files(
        &seed("modelservice.yaml"),
        Some(&seed("epp-configmap.yaml")),
    )
    .unwrap();
    let sc = &imp.scenario;
    assert_eq!(sc.name.as_deref(), Some("llama-3-2-1b"));
    let groups: Vec<(&str, u32)> = sc
        .pods
        .iter()
        .map(|g| (g.role.as_deref().unwrap(), g.count.unwrap()))
        .collect();
    assert_eq!(groups, vec![("decode", 3), ("prefill", 2)]);
    let pd = sc.pd.as_ref().unwrap();
    assert_eq!(pd.enabled, Some(true));
    assert_eq!(pd.connector.as_deref(), Some("nixlv2"));
    assert_eq!(pd.side_channel_port, Some(5557));
    let Some(RouterSpec::Epp(epp)) = &sc.router else {
        panic!("the EPP router")
    };
    assert_eq!(epp.model_name.as_deref(), Some("llama-3-2-1b"));
    let env = epp.env.as_ref().unwrap();
    let get = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(get("ENABLE_KVCACHE_AWARE_SCORER").as_deref(), Some("true"));
    assert_eq!(
        get("PREFILL_ENABLE_KVCACHE_AWARE_SCORER").as_deref(),
        Some("true")
    );
    assert_eq!(get("PD_ENABLED").as_deref(), Some("true"));

    // Resolved through a scenario's `deployment:` reference.
    let r = resolve::load(
        &root().join("tests/data/modelservice/seed_ref.yaml"),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(r.n_pods(), 5);
    for (g, (role, n)) in r.pod_groups.iter().zip([("decode", 3), ("prefill", 2)]) {
        assert_eq!((g.role.as_str(), g.count), (role, n));
        assert_eq!(g.model, "Llama-3.2-1B");
        assert_eq!(g.gpu, "H100");
        assert!(g.enable_prefix_caching);
        assert_eq!(g.prefix_caching_hash_algo, "sha256");
    }
    assert_eq!(r.pd.as_ref().and_then(|p| p.enabled), Some(true));
    assert!(!r.import_warnings.is_empty());
    // The EPP configuration builds: a decode and a prefill profile, each with
    // the KV-cache-aware (precise-prefix) scorer, and the P/D handler.
    let RouterSpec::Epp(spec) = &r.router else {
        panic!("the EPP router")
    };
    let loaded = load_epp_config(spec, &r.base_dir).unwrap();
    let profiles: Vec<&str> = loaded
        .scheduler
        .profiles()
        .iter()
        .map(|p| p.name())
        .collect();
    assert_eq!(profiles, vec!["decode", "prefill"]);
    assert_eq!(loaded.precise_prefix.len(), 2);
    assert_eq!(loaded.scheduler.handler_type(), "pd-profile-handler");
    assert!(r.kv_events_enabled);
}

#[test]
fn seed_warnings_name_field_and_line() {
    let imp = import(
        &seed_text("modelservice.yaml"),
        &seed_text("epp-configmap.yaml"),
    )
    .unwrap();
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    let has = |s: &str| w.iter().any(|m| m == s);
    assert!(
        has("epp-configmap.yaml:69: data.decodeDeployment.spec.template.spec.containers[0].env[1]: VLLM_NIXL_SIDE_CHANNEL_HOST: valueFrom not modelled"),
        "{w:#?}"
    );
    assert!(
        has("modelservice.yaml:30: spec.decode.containers[0].env[0]: HF_TOKEN: valueFrom not modelled"),
        "{w:#?}"
    );
    assert!(
        w.iter().any(|m| m
            .starts_with("modelservice.yaml:26: spec.decode.acceleratorTypes.labelValues[0]")
            && m.ends_with("H100 assumed")),
        "{w:#?}"
    );
    assert!(
        w.iter()
            .any(|m| m.starts_with("epp-configmap.yaml:29:") && m.contains("not a string")),
        "{w:#?}"
    );
    // Recognised: the sidecar connector and the vLLM flags, with their lines.
    let r: Vec<String> = imp.recognised.iter().map(ToString::to_string).collect();
    assert!(
        r.iter().any(|m| m.starts_with("epp-configmap.yaml:57:")
            && m.ends_with("--connector=nixlv2: pd.connector")),
        "{r:#?}"
    );
    assert!(
        r.iter().any(|m| m.starts_with("epp-configmap.yaml:62:")
            && m.contains("enable_prefix_caching = true")),
        "{r:#?}"
    );

    // Unknown vLLM and sidecar flags are warnings naming the arg.
    let cm = seed_text("epp-configmap.yaml")
        .replace(
            "- \"sha256\"",
            "- \"sha256\"\n                - \"--enable-prefix-cachin\"",
        )
        .replace(
            "- \"--connector=nixlv2\"",
            "- \"--connector=nixlv2\"\n                - \"--shiny\"",
        );
    let imp = import(&seed_text("modelservice.yaml"), &cm).unwrap();
    let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.iter().any(|m| m.starts_with("epp-configmap.yaml:66: data.decodeDeployment.spec.template.spec.containers[0].args[3]: unknown vLLM flag --enable-prefix-cachin") && m.ends_with("did you mean --enable-prefix-caching?")),
        "{w:#?}"
    );
    assert!(
        w.iter()
            .any(|m| m.contains("initContainers[0].args[3]: sidecar flag --shiny not modelled")),
        "{w:#?}"
    );
}

#[test]
fn bad_deployments_are_errors_naming_the_field() {
    let ms = seed_text("modelservice.yaml");
    let cm = seed_text("epp-configmap.yaml");

    let e = import(&ms.replace("replicas: 3", "replicas: 0"), &cm).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line),
        ("spec.decode.replicas", Some(22))
    );
    assert!(
        e.to_string()
            .starts_with("modelservice.yaml:22: spec.decode.replicas: decode replicas is 0"),
        "{e}"
    );

    let e = import(&ms.replace("Llama-3.2-1B", "Llama-3.2-1b-chat"), &cm).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line),
        ("spec.modelArtifacts.uri", Some(16))
    );
    assert!(e.message.contains("unknown model"), "{e}");
    assert!(e.message.contains("did you mean \"Llama-3.2-1B\""), "{e}");

    let e = import(&ms.replace("replicas: 2", "replicas: 0"), &cm).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line),
        ("spec.prefill.replicas", Some(43))
    );
    assert!(
        e.message
            .contains("PD_ENABLED=true at epp-configmap.yaml:38"),
        "{e}"
    );

    let e = import(&ms.replace("    replicas: 3\n", "    replicas: [3\n"), &cm).unwrap_err();
    assert!(e.message.starts_with("malformed YAML"), "{e}");
    assert_eq!(e.file, PathBuf::from("modelservice.yaml"));
    assert!(e.line.is_some_and(|l| (22..=24).contains(&l)), "{e}");

    let e = import(
        &ms,
        &cm.replace(
            "      template:\n        spec:\n          initContainers",
            "      template:\n        spec:\n        initContainers: [",
        ),
    )
    .unwrap_err();
    assert_eq!(e.file, PathBuf::from("epp-configmap.yaml"));
    assert!(
        e.message.starts_with("malformed YAML") && e.line.is_some(),
        "{e}"
    );

    let e = import(
        &ms,
        &cm.replace(
            "- \"sha256\"",
            "- \"sha256\"\n                - \"--block-size\"\n                - \"sixteen\"",
        ),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("args[4]: --block-size: expected a whole number of tokens, got \"sixteen\""),
        "{e}"
    );
}

#[test]
fn a_scenario_with_pd_and_no_prefill_pods_is_an_error() {
    let e = resolve::load(
        &root().join("tests/data/modelservice/pd_without_prefill.yaml"),
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(e.field, "pd.enabled");
    assert!(e.message.contains("no pod group has role prefill"), "{e}");
}

#[test]
fn kvsim_import_writes_a_runnable_scenario() {
    let d = tmp("ms-import");
    let out = d.join("seed.yaml");
    let o = kvsim()
        .args([
            "import",
            "--modelservice",
            "scenarios/seed/modelservice.yaml",
            "--configmap",
            "scenarios/seed/epp-configmap.yaml",
            "--scenario",
            "tests/data/modelservice/small_workload.yaml",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("VLLM_NIXL_SIDE_CHANNEL_HOST: valueFrom not modelled"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("# warnings: not modelled, assumed or unknown ("),
        "{text}"
    );
    assert!(
        text.contains("#   scenarios/seed/modelservice.yaml:26: spec.decode.acceleratorTypes"),
        "{text}"
    );
    // The scenario's pods are replaced, its EPP knobs and workload kept.
    assert!(
        text.contains("the scenario's `pods` are replaced"),
        "{text}"
    );
    let sc: kvsim::scenario::Scenario = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(sc.name.as_deref(), Some("small-import"));
    assert_eq!(sc.pods.len(), 2);
    assert_eq!(sc.workload.num_requests, Some(40));
    let Some(RouterSpec::Epp(e)) = &sc.router else {
        panic!("the EPP router")
    };
    assert_eq!((e.metrics_refresh_ms, e.decision_log), (Some(20.0), true));

    let run_dir = d.join("run");
    let o = kvsim()
        .arg("run")
        .arg(&out)
        .args(["--quiet", "--out"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(run_dir.join("summary.json")).unwrap();
    assert!(summary.contains("\"requests_completed\": 40"), "{summary}");
}

#[test]
fn kvsim_run_modelservice_replaces_the_scenario_cluster() {
    let d = tmp("ms-run");
    let o = kvsim()
        .args([
            "run",
            "tests/data/modelservice/small_workload.yaml",
            "--modelservice",
            "scenarios/seed/modelservice.yaml",
            "--configmap",
            "scenarios/seed/epp-configmap.yaml",
            "--out",
        ])
        .arg(&d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("warning: import: "), "{stderr}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
    let groups: Vec<(String, u64)> = config["pod_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(groups, vec![("decode".into(), 3), ("prefill".into(), 2)]);
    assert_eq!(config["pd"]["connector"], "nixlv2");
    assert!(
        d.join("routing.csv").exists(),
        "the scenario's decision_log is kept"
    );
    let summary = std::fs::read_to_string(d.join("summary.json")).unwrap();
    assert!(summary.contains("\"requests_completed\": 40"), "{summary}");

    // Errors from the import exit 2 and name the file, line and field.
    let o = kvsim()
        .args(["run", "--modelservice", "scenarios/seed/epp-configmap.yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("epp-configmap.yaml:14: kind: kind \"ConfigMap\" is not a ModelService, and the file has no ModelService document"), "{stderr}");
}
