//! The `--configmap` side of the deployment import: a llm-d BaseConfig
//! ConfigMap (`decodeDeployment`, `prefillDeployment`, `eppDeployment`, ...
//! as embedded YAML), a ConfigMap holding an `EndpointPickerConfig` or EPP
//! env vars, a bare `EndpointPickerConfig`, an EPP `Deployment`, a container
//! spec with `env:`, or a plain `env:` list. Several `---` documents may
//! share a file. Everything read is recorded; the rest is a warning.

use std::path::Path;

use serde_yaml_ng::Value;

use super::error::ScenarioError;
use super::k8s::{
    field, get, keys, read_containers, read_env, scalar, split_documents, ContainerIn, EnvIn,
    Notes, Origin, Src,
};
use crate::epp::config::env;

/// The pod template of a BaseConfig deployment.
#[derive(Clone, Debug)]
pub struct PodTemplate {
    /// `spec.template.spec.containers`.
    pub containers: Vec<ContainerIn>,
    /// `spec.template.spec.initContainers` (the routing sidecar lives here).
    pub init_containers: Vec<ContainerIn>,
}

/// The EPP's configuration as found.
#[derive(Clone, Debug, Default)]
pub struct EppRead {
    /// The EPP container's env (ENV-era configuration), in order.
    pub env: Vec<EnvIn>,
    /// An `EndpointPickerConfig` document, its text and where it is.
    pub config: Option<(Value, String, Origin)>,
    /// `--refresh-metrics-interval`, ms.
    pub metrics_refresh_ms: Option<f64>,
}

/// Everything read from the ConfigMap file.
#[derive(Clone, Debug, Default)]
pub struct BaseConfig {
    /// `metadata.name` of the ConfigMap, to check against `baseConfigMapRef`.
    pub name: Option<(String, Origin)>,
    /// The EPP.
    pub epp: EppRead,
    /// `decodeDeployment`.
    pub decode: Option<PodTemplate>,
    /// `prefillDeployment`.
    pub prefill: Option<PodTemplate>,
}

/// BaseConfig keys that create resources the simulation does not need.
const IRRELEVANT_DATA: &[&str] = &[
    "decodeService",
    "prefillService",
    "eppService",
    "inferencePool",
    "inferenceModel",
    "httpRoute",
    "decodeServiceAccount",
    "prefillServiceAccount",
    "eppServiceAccount",
];

/// Reads every document of a ConfigMap file.
pub fn read_file(file: &Path, text: &str, notes: &mut Notes) -> Result<BaseConfig, ScenarioError> {
    let mut out = BaseConfig::default();
    let docs = split_documents(file, text);
    if docs.is_empty() {
        return Err(ScenarioError {
            file: file.to_path_buf(),
            line: None,
            field: String::new(),
            message: "empty file: expected a ConfigMap, an EndpointPickerConfig or an env list"
                .into(),
        });
    }
    for src in &docs {
        let v = super::k8s::parse(src)?;
        read_doc(src, &v, &mut out, notes)?;
    }
    Ok(out)
}

/// Reads one document into `out`.
pub fn read_doc(
    src: &Src,
    v: &Value,
    out: &mut BaseConfig,
    notes: &mut Notes,
) -> Result<(), ScenarioError> {
    if let Value::Sequence(_) = v {
        notes.ok(&src.at(""), "an env list: the EPP's ENV-era configuration");
        let env = read_env(src, "", v, notes)?;
        classify_epp_env(&env, notes);
        out.epp.env.extend(env);
        return Ok(());
    }
    if !v.is_mapping() {
        return Err(src.err(
            "",
            "expected a ConfigMap, an EndpointPickerConfig or an env list",
        ));
    }
    let kind = get(v, "kind").and_then(scalar).unwrap_or_default();
    match kind.as_str() {
        "ConfigMap" => read_configmap(src, v, out, notes),
        "EndpointPickerConfig" => {
            set_config(src, "", v, &src.text, out, notes);
            Ok(())
        }
        "Deployment" => {
            notes.ok(&src.at("kind"), "a Deployment: read as the EPP's");
            read_epp_deployment(src, v, None, out, notes)
        }
        "ModelService" => {
            notes.ok(&src.at("kind"), "a ModelService in the ConfigMap file: read by --modelservice, skipped here");
            Ok(())
        }
        "" if get(v, "env").is_some() => {
            notes.ok(&src.at("env"), "a container spec: read as the EPP container");
            let c = super::k8s::read_container(src, "", v, notes)?;
            read_epp_container(src, &c, None, out, notes);
            Ok(())
        }
        other => Err(src.err(
            "kind",
            format!("kind \"{other}\" is not a ConfigMap, EndpointPickerConfig, Deployment, container spec or env list"),
        )),
    }
}

fn read_configmap(
    src: &Src,
    v: &Value,
    out: &mut BaseConfig,
    notes: &mut Notes,
) -> Result<(), ScenarioError> {
    if let Some(n) = get(v, "metadata")
        .and_then(|m| get(m, "name"))
        .and_then(scalar)
    {
        out.name = Some((n, src.at("metadata.name")));
    }
    let Some(data) = get(v, "data").and_then(Value::as_mapping) else {
        return Err(src.err("data", "a ConfigMap without `data`: nothing to import"));
    };
    // Embedded documents first, so `--config-file` can find its data key.
    let data_v = Value::Mapping(data.clone());
    for k in keys(data) {
        let path = format!("data.{k}");
        let val = field(data, &k);
        let at = src.at(&path);
        let Some(text) = scalar(val) else {
            notes.warn(
                &at,
                "not a string: ConfigMap data values are strings; ignored",
            );
            continue;
        };
        match k.as_str() {
            "decodeDeployment" | "prefillDeployment" => {
                let inner = src.embedded(&path, &text);
                let doc = super::k8s::parse(&inner)?;
                let t = read_pod_template(&inner, &doc, notes)?;
                notes.ok(
                    &at,
                    format!("the {} pods' base containers", &k[..k.len() - 10]),
                );
                if k == "decodeDeployment" {
                    out.decode = Some(t);
                } else {
                    out.prefill = Some(t);
                }
            }
            "eppDeployment" => {
                let inner = src.embedded(&path, &text);
                let doc = super::k8s::parse(&inner)?;
                notes.ok(&at, "the EPP deployment");
                read_epp_deployment(&inner, &doc, Some(&data_v), out, notes)?;
            }
            k if IRRELEVANT_DATA.contains(&k) => notes.ok(&at, "does not affect the simulation"),
            k if is_env_name(k) => {
                // A ConfigMap used through envFrom: each key is a variable.
                out.epp.env.push(EnvIn {
                    name: k.to_string(),
                    value: Some(text.clone()),
                    value_from: false,
                    at: at.clone(),
                });
            }
            _ => {
                let inner = src.embedded(&path, &text);
                match super::k8s::parse(&inner) {
                    Ok(doc)
                        if get(&doc, "kind").and_then(scalar).as_deref()
                            == Some("EndpointPickerConfig") =>
                    {
                        set_config(&inner, "", &doc, &text, out, notes)
                    }
                    Ok(doc @ Value::Sequence(_)) => {
                        notes.ok(&at, "an env list: the EPP's ENV-era configuration");
                        out.epp.env.extend(read_env(&inner, "", &doc, notes)?);
                    }
                    _ => notes.warn(&at, format!("data key {k} not recognised; ignored")),
                }
            }
        }
    }
    Ok(())
}

/// `UPPER_SNAKE` names, as environment variables are written.
fn is_env_name(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && k.starts_with(|c: char| c.is_ascii_uppercase())
}

fn pod_spec(v: &Value) -> Option<&Value> {
    get(v, "spec")
        .and_then(|s| get(s, "template"))
        .and_then(|t| get(t, "spec"))
}

fn read_pod_template(
    src: &Src,
    v: &Value,
    notes: &mut Notes,
) -> Result<PodTemplate, ScenarioError> {
    let Some(ps) = pod_spec(v).and_then(Value::as_mapping) else {
        if get(v, "spec")
            .and_then(|s| get(s, "leaderWorkerTemplate"))
            .is_some()
        {
            return Err(src.err(
                "spec.leaderWorkerTemplate",
                "LeaderWorkerSet (multi-node) pods are not modelled",
            ));
        }
        return Err(src.err(
            "spec.template.spec",
            "expected a Deployment with spec.template.spec",
        ));
    };
    if let Some(r) = get(v, "spec").and_then(|s| get(s, "replicas")) {
        notes.ok(
            &src.at("spec.replicas"),
            format!(
                "replicas {}: the ModelService's replicas count",
                scalar(r).unwrap_or_default()
            ),
        );
    }
    let base = "spec.template.spec";
    let mut t = PodTemplate {
        containers: Vec::new(),
        init_containers: Vec::new(),
    };
    for k in keys(ps) {
        let p = format!("{base}.{k}");
        let val = field(ps, &k);
        match k.as_str() {
            "containers" => t.containers = read_containers(src, &p, val, notes)?,
            "initContainers" => t.init_containers = read_containers(src, &p, val, notes)?,
            "volumes"
            | "imagePullSecrets"
            | "serviceAccountName"
            | "securityContext"
            | "terminationGracePeriodSeconds"
            | "nodeSelector"
            | "tolerations"
            | "affinity" => notes.ok(&src.at(&p), "does not affect the simulation"),
            other => notes.warn(&src.at(&p), format!("pod field {other} not modelled")),
        }
    }
    Ok(t)
}

fn read_epp_deployment(
    src: &Src,
    v: &Value,
    data: Option<&Value>,
    out: &mut BaseConfig,
    notes: &mut Notes,
) -> Result<(), ScenarioError> {
    let Some(ps) = pod_spec(v) else {
        return Err(src.err(
            "spec.template.spec",
            "expected a Deployment with spec.template.spec",
        ));
    };
    let path = "spec.template.spec.containers";
    let Some(list) = get(ps, "containers") else {
        return Err(src.err(path, "the EPP deployment has no containers"));
    };
    let cs = read_containers(src, path, list, notes)?;
    let idx = cs.iter().position(|c| c.name == "epp").unwrap_or(0);
    for (i, c) in cs.iter().enumerate() {
        if i == idx {
            read_epp_container(src, c, data, out, notes);
        } else {
            notes.warn(
                &c.at,
                format!("container {} beside the EPP not modelled", c.name),
            );
        }
    }
    Ok(())
}

/// Go-flag names (without dashes) of the EPP that do not affect the simulation.
const EPP_IRRELEVANT_FLAGS: &[&str] = &[
    "poolName",
    "pool-name",
    "poolNamespace",
    "pool-namespace",
    "pool-group",
    "v",
    "zap-encoder",
    "zap-log-level",
    "grpcPort",
    "grpc-port",
    "grpcHealthPort",
    "grpc-health-port",
    "metricsPort",
    "metrics-port",
    "secureServing",
    "secure-serving",
    "certPath",
    "cert-path",
    "tracing",
    "health-checking",
    "enable-pprof",
];

fn read_epp_container(
    src: &Src,
    c: &ContainerIn,
    data: Option<&Value>,
    out: &mut BaseConfig,
    notes: &mut Notes,
) {
    classify_epp_env(&c.env, notes);
    out.epp.env.extend(c.env.iter().cloned());
    if let Some(img) = &c.image {
        notes.ok(&img.at, format!("EPP image {}", super::k8s::unmask(&img.v)));
    }
    let mut i = 0;
    while i < c.args.len() {
        let a = &c.args[i];
        i += 1;
        let Some(raw) = a.v.strip_prefix("--").or(a.v.strip_prefix('-')) else {
            notes.warn(
                &a.at,
                format!(
                    "positional EPP argument \"{}\" ignored",
                    super::k8s::unmask(&a.v)
                ),
            );
            continue;
        };
        // Messages show the flag as written (`--x` or Go's `-x`).
        let dashes = &a.v[..a.v.len() - raw.len()];
        let (name, inline) = match raw.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (raw.to_string(), None),
        };
        let takes_value = !matches!(
            name.as_str(),
            "secureServing" | "secure-serving" | "enable-pprof" | "tracing"
        );
        let value = match inline {
            Some(v) => Some(v),
            None if takes_value && i < c.args.len() && !c.args[i].v.starts_with('-') => {
                i += 1;
                Some(c.args[i - 1].v.clone())
            }
            None => None,
        };
        match (name.as_str(), value) {
            ("config-text" | "configText", Some(t)) => match serde_yaml_ng::from_str::<Value>(&t) {
                Ok(doc) => set_config(src, "", &doc, &t, out, notes),
                Err(e) => notes.warn(&a.at, format!("--{name}: malformed YAML ({e}); ignored")),
            },
            ("config-file" | "configFile", Some(p)) => {
                let base = p.rsplit('/').next().unwrap_or(&p).to_string();
                match data.and_then(|d| get(d, &base)).and_then(scalar) {
                    Some(t) => match serde_yaml_ng::from_str::<Value>(&t) {
                        Ok(doc) => {
                            notes.ok(&a.at, format!("--{name} {p}: data key {base} of this ConfigMap"));
                            set_config(src, "", &doc, &t, out, notes);
                        }
                        Err(e) => notes.warn(&a.at, format!("--{name} {p}: data key {base} is malformed YAML ({e}); ignored")),
                    },
                    None => notes.warn(&a.at, format!("--{name} {p}: not in this ConfigMap; not read (give the EndpointPickerConfig as --configmap)")),
                }
            }
            ("refresh-metrics-interval" | "refreshMetricsInterval", Some(d)) => {
                match go_duration_ms(&d) {
                    Some(ms) => {
                        out.epp.metrics_refresh_ms = Some(ms);
                        notes.ok(
                            &a.at,
                            format!("--{name} {d}: router.metrics_refresh_ms = {ms}"),
                        );
                    }
                    None => notes.warn(&a.at, format!("--{name} {d}: not a Go duration; ignored")),
                }
            }
            (n, _) if EPP_IRRELEVANT_FLAGS.contains(&n) => notes.ok(
                &a.at,
                format!("{dashes}{n}: does not affect the simulation"),
            ),
            (n, v) => notes.warn(
                &a.at,
                format!(
                    "EPP flag {dashes}{n}{} not modelled",
                    v.map(|v| format!(" {}", super::k8s::unmask(&v)))
                        .unwrap_or_default()
                ),
            ),
        }
    }
}

fn set_config(
    src: &Src,
    path: &str,
    doc: &Value,
    text: &str,
    out: &mut BaseConfig,
    notes: &mut Notes,
) {
    let at = src.at(path);
    if out.epp.config.is_some() {
        notes.warn(&at, "a second EndpointPickerConfig; the first one is used");
        return;
    }
    notes.ok(&at, "an EndpointPickerConfig: router.config");
    out.epp.config = Some((doc.clone(), text.to_string(), at));
}

/// Notes for each EPP env var: modelled by the ENV-era mapping, irrelevant, or not modelled.
fn classify_epp_env(env: &[EnvIn], notes: &mut Notes) {
    for e in env {
        let n = e.name.as_str();
        if e.value_from {
            notes.warn(&e.at, format!("{n}: valueFrom not modelled"));
            continue;
        }
        if is_epp_env(n) {
            notes.ok(
                &e.at,
                format!(
                    "{n}={}: EPP configuration (ENV era)",
                    e.value.as_deref().unwrap_or("")
                ),
            );
        } else if n == "HF_TOKEN" {
            notes.ok(&e.at, format!("{n}: does not affect the simulation"));
        } else {
            let known = env::known_vars();
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let hint = super::error::nearest(n, &known)
                .map(|s| format!("; did you mean {s}?"))
                .unwrap_or_default();
            notes.warn(
                &e.at,
                format!("{n}: not an EPP variable kvsim models{hint}"),
            );
        }
    }
}

/// Whether the ENV-era mapping (`epp::config::env`) reads `name`.
pub fn is_epp_env(name: &str) -> bool {
    name != "HF_TOKEN" && env::is_known_var(name)
}

/// Go `time.ParseDuration` for the simple forms (`50ms`, `1s`, `250us`, `1m`), in ms.
fn go_duration_ms(s: &str) -> Option<f64> {
    let units = [
        ("ns", 1e-6),
        ("us", 1e-3),
        ("µs", 1e-3),
        ("ms", 1.0),
        ("s", 1e3),
        ("m", 60e3),
        ("h", 3600e3),
    ];
    for (u, mult) in units {
        if let Some(n) = s.strip_suffix(u) {
            if let Ok(x) = n.parse::<f64>() {
                return Some(x * mult);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: base
data:
  eppDeployment: |
    apiVersion: apps/v1
    kind: Deployment
    spec:
      template:
        spec:
          containers:
            - name: epp
              args:
                - -poolName
                - {{ .InferencePoolName }}
                - --config-file
                - /etc/epp/plugins.yaml
                - --refresh-metrics-interval=100ms
                - --frobnicate
              env:
                - name: ENABLE_LOAD_AWARE_SCORER
                  value: "true"
                - name: ENABLE_KVCACHE_AWARE_SCORRER
                  value: "true"
  plugins.yaml: |
    apiVersion: llm-d.ai/v1alpha1
    kind: EndpointPickerConfig
    plugins:
    - type: queue-scorer
  inferencePool: |
    kind: InferencePool
  mystery: "42"
"#;

    #[test]
    fn reads_a_base_config() {
        let mut notes = Notes::default();
        let b = read_file(Path::new("cm.yaml"), BASE, &mut notes).unwrap();
        assert_eq!(b.name.as_ref().map(|n| n.0.as_str()), Some("base"));
        assert_eq!(b.epp.metrics_refresh_ms, Some(100.0));
        assert_eq!(b.epp.env.len(), 2);
        let (doc, _, _) = b
            .epp
            .config
            .as_ref()
            .expect("config found through --config-file");
        assert_eq!(
            get(doc, "kind").and_then(scalar).as_deref(),
            Some("EndpointPickerConfig")
        );
        let w: Vec<String> = notes.warnings.iter().map(|n| n.to_string()).collect();
        assert!(
            w.iter().any(|m| m.contains("-frobnicate not modelled")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|m| m.contains("did you mean ENABLE_KVCACHE_AWARE_SCORER")),
            "{w:?}"
        );
        let mystery = w
            .iter()
            .find(|m| m.contains("mystery"))
            .expect("unknown key warned");
        assert!(mystery.starts_with("cm.yaml:33: data.mystery"), "{mystery}");
        // A line inside the embedded EPP deployment maps to the file's line.
        let frob = w.iter().find(|m| m.contains("frobnicate")).unwrap();
        assert!(
            frob.starts_with(
                "cm.yaml:20: data.eppDeployment.spec.template.spec.containers[0].args[5]"
            ),
            "{frob}"
        );
    }

    #[test]
    fn a_container_spec_or_env_list_warns_with_line_field_and_the_flag_as_written() {
        let spec = "args:\n  - \"--enable-prefix-caching\"\n  - -frobnicate\nenv:\n  - name: HOST\n    valueFrom: {fieldRef: {fieldPath: status.podIP}}\n";
        let mut notes = Notes::default();
        read_file(Path::new("c.yaml"), spec, &mut notes).unwrap();
        let w: Vec<String> = notes.warnings.iter().map(|n| n.to_string()).collect();
        let has = |prefix: &str| w.iter().any(|m| m.starts_with(prefix));
        assert!(
            has("c.yaml:2: args[0]: EPP flag --enable-prefix-caching not modelled"),
            "{w:?}"
        );
        assert!(
            has("c.yaml:3: args[1]: EPP flag -frobnicate not modelled"),
            "{w:?}"
        );
        assert!(
            has("c.yaml:5: env[0]: HOST: valueFrom not modelled"),
            "{w:?}"
        );
        // A bare env list is classified like a container's env.
        let list = "- name: PD_ENABLED\n  value: \"true\"\n- name: HOST\n  valueFrom: {fieldRef: {fieldPath: status.podIP}}\n- name: KVCACHE_AWARE_SCORER_WEIGTH\n  value: \"1\"\n";
        let mut notes = Notes::default();
        read_file(Path::new("e.yaml"), list, &mut notes).unwrap();
        let w: Vec<String> = notes.warnings.iter().map(|n| n.to_string()).collect();
        assert!(
            w.iter()
                .any(|m| m.starts_with("e.yaml:3: [1]: HOST: valueFrom")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|m| m
                .starts_with("e.yaml:5: [2]: KVCACHE_AWARE_SCORER_WEIGTH: not an EPP variable")),
            "{w:?}"
        );
    }

    #[test]
    fn env_names_and_durations() {
        assert!(is_epp_env("ENABLE_KVCACHE_AWARE_SCORER"));
        assert!(is_epp_env("PREFILL_KVCACHE_AWARE_SCORER_WEIGHT"));
        assert!(is_epp_env("PD_ENABLED"));
        assert!(!is_epp_env("ENABLE_FOO"));
        assert_eq!(go_duration_ms("50ms"), Some(50.0));
        assert_eq!(go_duration_ms("2s"), Some(2000.0));
        assert_eq!(go_duration_ms("fast"), None);
    }
}
