//! Import of an llm-d deployment: a `ModelService` (llm-d.ai/v1alpha1) and
//! the ConfigMap its `baseConfigMapRef` names, turned into a [`Scenario`]'s
//! `pods`, `router` and `pd`, plus warnings for everything not modelled.
//!
//! Mapping:
//!
//! | ModelService / ConfigMap | Scenario |
//! |---|---|
//! | `spec.decode.replicas`, `spec.prefill.replicas` (default 1) | `pods[]` groups `decode` / `prefill` with that role and `count` |
//! | `spec.modelArtifacts.uri` (`hf://org/name`) | `model` via the catalog (else vLLM `--model`, else `routing.modelName`) |
//! | `acceleratorTypes.labelValues` (e.g. `NVIDIA-H100-80GB-HBM3`) | `gpu`; only `nvidia.com/gpu` or nothing ⇒ H100 (warned) |
//! | `parallelism.tensor`, vLLM `--tensor-parallel-size` / `-tp` | `tensor_parallel_size` |
//! | vLLM container `args` / `env` (ModelService over BaseConfig `decodeDeployment` / `prefillDeployment`) | `vllm` ([`super::vllm_args`]) |
//! | routing sidecar `--connector` | `pd.connector` |
//! | EPP env (`PD_ENABLED`, `ENABLE_*_SCORER`, ...) or `EndpointPickerConfig` | `router: {type: epp, env \| config}` |
//! | `routing.modelName` | `router.model_name` |
//!
//! Containers merge by name: the ModelService's `args` follow the BaseConfig's
//! (so its flags win, vLLM keeping the last of a repeated flag), its `env`
//! entries replace same-named ones, its `command`, `image` and GPU count
//! replace the BaseConfig's. The workload is not part of a deployment: it
//! comes from the scenario the import is applied to ([`apply_to`]).

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::epp_source::{self, BaseConfig, PodTemplate};
use super::error::{did_you_mean, nearest, ScenarioError};
use super::k8s::{
    field, get, keys, read_containers, scalar, split_documents, ContainerIn, EnvIn, ImportNote,
    Item, Notes, Origin, Src,
};
use super::vllm_args::{read_vllm, VllmRead};
use super::{EnvVar, EppSpec, PdSpec, PodGroup, RouterSpec, Scenario};
use crate::trace::spec::WorkloadSpec;

/// The API group and version of the ModelService CRD.
pub const MODELSERVICE_API_VERSION: &str = "llm-d.ai/v1alpha1";

/// GPU assumed when the deployment names none (`nvidia.com/gpu` only).
pub const DEFAULT_GPU: &str = "H100";

/// Routing-sidecar connectors (llm-d-epp.md §5.2).
pub const CONNECTORS: &[&str] = &["nixlv2", "nixl", "lmcache", "shared-storage", "sglang"];

/// An imported deployment.
#[derive(Clone, Debug)]
pub struct Imported {
    /// `pods`, `router`, `pd`, `name`, `description` (and `vllm_version` when
    /// the image tag names one) filled in; the workload is empty.
    pub scenario: Scenario,
    /// Everything not modelled, assumed or unknown, each naming its field.
    pub warnings: Vec<ImportNote>,
    /// Everything read and what it became.
    pub recognised: Vec<ImportNote>,
}

/// Reads and imports a ModelService file and, optionally, its ConfigMap file.
pub fn import_files(
    modelservice: &Path,
    configmap: Option<&Path>,
) -> Result<Imported, ScenarioError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| ScenarioError {
            file: p.to_path_buf(),
            line: None,
            field: String::new(),
            message: format!("cannot read: {e}"),
        })
    };
    let ms = read(modelservice)?;
    let cm = match configmap {
        Some(p) => Some((p, read(p)?)),
        None => None,
    };
    import_text(
        modelservice,
        &ms,
        cm.as_ref().map(|(p, t)| (*p, t.as_str())),
    )
}

/// Imports ModelService YAML `ms_text` (from `ms_file`, for messages) and an
/// optional ConfigMap `(file, text)`. ConfigMap documents inside the
/// ModelService file are read too.
pub fn import_text(
    ms_file: &Path,
    ms_text: &str,
    configmap: Option<(&Path, &str)>,
) -> Result<Imported, ScenarioError> {
    let mut notes = Notes::default();
    let mut base = BaseConfig::default();
    let mut ms: Option<(Src, Value)> = None;
    let mut other_kind: Option<(Src, String)> = None;
    for src in split_documents(ms_file, ms_text) {
        let v = super::k8s::parse(&src)?;
        let kind = get(&v, "kind").and_then(scalar).unwrap_or_default();
        if kind == "ModelService" {
            if ms.is_some() {
                return Err(src.err(
                    "kind",
                    "a second ModelService in the file: import one at a time",
                ));
            }
            ms = Some((src, v));
        } else if kind == "ConfigMap" || kind == "EndpointPickerConfig" {
            epp_source::read_doc(&src, &v, &mut base, &mut notes)?;
            other_kind.get_or_insert((src, kind));
        } else {
            let msg = if kind.is_empty() {
                "no `kind`: expected kind: ModelService".to_string()
            } else {
                let hint = did_you_mean(&kind, &["ModelService"]);
                format!("kind \"{kind}\" is not a ModelService{hint}")
            };
            return Err(src.err("kind", msg));
        }
    }
    let Some((src, v)) = ms else {
        if let Some((src, kind)) = other_kind {
            return Err(src.err("kind", format!("kind \"{kind}\" is not a ModelService, and the file has no ModelService document")));
        }
        return Err(ScenarioError {
            file: ms_file.to_path_buf(),
            line: None,
            field: "kind".into(),
            message: "no ModelService document (kind: ModelService) in the file".into(),
        });
    };
    if let Some((f, t)) = configmap {
        let b = epp_source::read_file(f, t, &mut notes)?;
        merge_base(&mut base, b);
    }
    let mut imp = Importer { src, notes, base };
    let scenario = imp.run(&v, ms_file, configmap.map(|c| c.0))?;
    Ok(Imported {
        scenario,
        warnings: imp.notes.warnings,
        recognised: imp.notes.recognised,
    })
}

fn merge_base(into: &mut BaseConfig, b: BaseConfig) {
    if b.name.is_some() {
        into.name = b.name;
    }
    if b.decode.is_some() {
        into.decode = b.decode;
    }
    if b.prefill.is_some() {
        into.prefill = b.prefill;
    }
    into.epp.env.extend(b.epp.env);
    if b.epp.config.is_some() {
        into.epp.config = b.epp.config;
    }
    if b.epp.metrics_refresh_ms.is_some() {
        into.epp.metrics_refresh_ms = b.epp.metrics_refresh_ms;
    }
}

/// Puts an import into `base`: its pods, router and P/D settings replace the
/// scenario's (EPP knobs such as `kv_events`, `metrics_refresh_ms`,
/// `kv_index`, `decision_log` are kept); everything else, the workload
/// first, stays the scenario's. Returns the import's warnings plus what was replaced.
pub fn apply_to(base: &mut Scenario, imported: Imported, at: &Origin) -> Vec<ImportNote> {
    let mut notes = Notes {
        warnings: imported.warnings,
        recognised: Vec::new(),
    };
    let sc = imported.scenario;
    if !base.pods.is_empty() {
        notes.warn(at, "the scenario's `pods` are replaced by the deployment's");
    }
    base.pods = sc.pods;
    let mut router = match sc.router {
        Some(RouterSpec::Epp(e)) => e,
        _ => Box::default(),
    };
    match base.router.take() {
        Some(RouterSpec::Epp(old)) => {
            if old.config.is_some()
                || old.config_file.is_some()
                || old.env.is_some()
                || old.env_file.is_some()
            {
                notes.warn(
                    at,
                    "the scenario's EPP configuration is replaced by the deployment's",
                );
            }
            router.metrics_refresh_ms = router.metrics_refresh_ms.or(old.metrics_refresh_ms);
            router.kv_events = old.kv_events;
            router.kv_index = old.kv_index;
            router.decision_log = old.decision_log;
            if old.model_name.is_some() {
                router.model_name = old.model_name;
            }
        }
        Some(other) => notes.warn(
            at,
            format!("the scenario's router {other:?} is replaced by the deployment's EPP"),
        ),
        None => {}
    }
    base.router = Some(RouterSpec::Epp(router));
    if base.pd.is_some() {
        notes.warn(at, "the scenario's `pd` is replaced by the deployment's");
    }
    base.pd = sc.pd;
    base.name = base.name.take().or(sc.name);
    base.description = base.description.take().or(sc.description);
    base.vllm_version = base.vllm_version.take().or(sc.vllm_version);
    base.deployment = None;
    notes.warnings
}

/// Expands a scenario's `deployment:` (paths relative to `base_dir`) in place; returns the warnings.
pub fn expand_deployment(
    sc: &mut Scenario,
    base_dir: &Path,
) -> Result<Vec<ImportNote>, ScenarioError> {
    let Some(d) = sc.deployment.clone() else {
        return Ok(Vec::new());
    };
    let ms = base_dir.join(&d.modelservice);
    let cm = d.configmap.as_ref().map(|c| base_dir.join(c));
    let imported = import_files(&ms, cm.as_deref())?;
    let at = Origin {
        file: ms.clone(),
        line: None,
        field: String::new(),
    };
    Ok(apply_to(sc, imported, &at))
}

/// Checks a scenario's `pd` against its pods: `(field, message)` when P/D is
/// on without a prefill pod, or the connector is unknown.
pub fn check_pd(sc: &Scenario) -> Option<(String, String)> {
    let pd = sc.pd.as_ref()?;
    if let Some(c) = &pd.connector {
        if !CONNECTORS.contains(&c.as_str()) {
            let hint = did_you_mean(c, CONNECTORS);
            return Some((
                "pd.connector".into(),
                format!(
                    "unknown connector \"{c}\" (valid: {}){hint}",
                    CONNECTORS.join(", ")
                ),
            ));
        }
    }
    let has_prefill = sc
        .pods
        .iter()
        .any(|g| g.role.as_deref() == Some("prefill") && g.count.unwrap_or(1) > 0);
    (pd.enabled == Some(true) && !has_prefill).then(|| {
        (
            "pd.enabled".into(),
            "P/D is enabled but no pod group has role prefill with at least one pod".into(),
        )
    })
}

/// The workload used when an import is run without a scenario: llm-d-benchmark's
/// default `shared_prefix_synthetic` (32 groups × 32 prompts, 2048-token system
/// prompt, 256-token question, 256 output tokens) at a constant 10 QPS for 100 s.
pub fn default_workload() -> WorkloadSpec {
    serde_yaml_ng::from_str(
        "shared_prefix: {num_groups: 32, num_prompts_per_group: 32, system_prompt_len: 2048, question_len: 256, output_len: 256}\n\
         arrivals: {type: stages, load: constant, stages: [{rate: 10, duration: 100}]}\n",
    )
    .expect("the default workload parses")
}

/// The scenario as YAML with the warnings and recognised fields as comments
/// (for `kvsim import`): nulls dropped, runnable with `kvsim run`.
pub fn render_yaml(
    sc: &Scenario,
    warnings: &[ImportNote],
    recognised: &[ImportNote],
    header: &str,
) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for l in header.lines() {
        out.push_str(&format!("# {l}\n"));
    }
    let section = |out: &mut String, title: &str, list: &[ImportNote]| {
        out.push_str(&format!("#\n# {title} ({}):\n", list.len()));
        for n in list {
            out.push_str(&format!(
                "#   {}\n",
                n.to_string().replace('\n', "\n#     ")
            ));
        }
    };
    section(
        &mut out,
        "warnings: not modelled, assumed or unknown",
        warnings,
    );
    section(&mut out, "recognised", recognised);
    out.push_str(&scenario_yaml(sc)?);
    Ok(out)
}

/// A scenario as YAML that parses back into the same scenario: nulls dropped,
/// and enum tags (`!fixed 2048`) written as the maps scenario files use.
pub fn scenario_yaml(sc: &Scenario) -> Result<String, serde_yaml_ng::Error> {
    let mut v = serde_yaml_ng::to_value(sc)?;
    normalize(&mut v);
    serde_yaml_ng::to_string(&v)
}

fn normalize(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            m.retain(|_, x| !x.is_null());
            for (_, x) in m.iter_mut() {
                normalize(x);
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(normalize),
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!').to_string();
            let mut inner = std::mem::take(&mut t.value);
            normalize(&mut inner);
            *v = if tag == "fixed" {
                inner
            } else {
                let mut m = serde_yaml_ng::Mapping::new();
                m.insert(Value::String(tag), inner);
                Value::Mapping(m)
            };
        }
        _ => {}
    }
}

/// One role of the ModelService (`spec.decode` / `spec.prefill`) as read.
struct RoleIn {
    role: &'static str,
    path: String,
    replicas: u32,
    replicas_at: Origin,
    tensor: Option<(u32, Origin)>,
    accelerators: Vec<Item>,
    accel_key: Option<Item>,
    containers: Vec<ContainerIn>,
    init_containers: Vec<ContainerIn>,
}

/// One role resolved far enough to build its pod group.
struct RoleOut {
    group: PodGroup,
    vllm: VllmRead,
    sidecar: Option<(String, Origin)>,
    image_version: Option<(String, Origin)>,
}

struct Importer {
    src: Src,
    notes: Notes,
    base: BaseConfig,
}

impl Importer {
    fn run(
        &mut self,
        v: &Value,
        ms_file: &Path,
        cm_file: Option<&Path>,
    ) -> Result<Scenario, ScenarioError> {
        let src = self.src.clone();
        match get(v, "apiVersion").and_then(scalar) {
            Some(a) if a == MODELSERVICE_API_VERSION => {
                self.notes.ok(&src.at("apiVersion"), "ModelService API")
            }
            Some(a) => self.notes.warn(
                &src.at("apiVersion"),
                format!("apiVersion {a}: expected {MODELSERVICE_API_VERSION}; read as it"),
            ),
            None => self.notes.warn(
                &src.at("kind"),
                format!("no apiVersion: read as {MODELSERVICE_API_VERSION}"),
            ),
        }
        let meta = get(v, "metadata");
        let name = meta.and_then(|m| get(m, "name")).and_then(scalar);
        let namespace = meta.and_then(|m| get(m, "namespace")).and_then(scalar);
        let Some(spec) = get(v, "spec").filter(|s| s.is_mapping()) else {
            return Err(src.err(
                "spec",
                "missing: a ModelService needs spec.decode and spec.modelArtifacts",
            ));
        };
        let mut uri: Option<Item> = None;
        let mut model_name: Option<Item> = None;
        let mut cm_ref: Option<Item> = None;
        let mut roles: Vec<RoleIn> = Vec::new();
        for k in keys(spec.as_mapping().expect("checked")) {
            let p = format!("spec.{k}");
            let val = &spec[k.as_str()];
            match k.as_str() {
                "baseConfigMapRef" => {
                    cm_ref = get(val, "name").and_then(scalar).map(|n| Item {
                        v: n,
                        at: src.at(&format!("{p}.name")),
                    });
                }
                "modelArtifacts" => {
                    for ak in val.as_mapping().map(keys).unwrap_or_default() {
                        let ap = format!("{p}.{ak}");
                        match ak.as_str() {
                            "uri" => {
                                uri = scalar(&val[ak.as_str()]).map(|u| Item {
                                    v: u,
                                    at: src.at(&ap),
                                })
                            }
                            "size" | "authSecretName" => self
                                .notes
                                .ok(&src.at(&ap), "does not affect the simulation"),
                            other => self
                                .notes
                                .warn(&src.at(&ap), format!("modelArtifacts.{other} not modelled")),
                        }
                    }
                }
                "routing" => {
                    for rk in val.as_mapping().map(keys).unwrap_or_default() {
                        let rp = format!("{p}.{rk}");
                        match rk.as_str() {
                            "modelName" => {
                                model_name = scalar(&val[rk.as_str()]).map(|m| Item {
                                    v: m,
                                    at: src.at(&rp),
                                })
                            }
                            "gatewayRefs" | "parentRefs" | "httpRoute" | "servicePort" => self
                                .notes
                                .ok(&src.at(&rp), "does not affect the simulation"),
                            other => self
                                .notes
                                .warn(&src.at(&rp), format!("routing.{other} not modelled")),
                        }
                    }
                }
                "decode" | "prefill" => roles.push(self.read_role(&k, &p, val)?),
                "decoupleScaling" => {
                    if scalar(val).as_deref() == Some("true") {
                        self.notes.warn(
                            &src.at(&p),
                            "decoupleScaling: autoscaling is not modelled; replicas are fixed",
                        );
                    } else {
                        self.notes.ok(&src.at(&p), "replicas fixed, as modelled");
                    }
                }
                other => {
                    let hint = nearest(
                        other,
                        &[
                            "baseConfigMapRef",
                            "modelArtifacts",
                            "routing",
                            "decode",
                            "prefill",
                            "decoupleScaling",
                        ],
                    )
                    .map(|s| format!("; did you mean {s}?"))
                    .unwrap_or_default();
                    self.notes.warn(
                        &src.at(&p),
                        format!("unknown ModelService field spec.{other}{hint}; ignored"),
                    );
                }
            }
        }
        // The ConfigMap named by baseConfigMapRef.
        match (&cm_ref, &self.base.name) {
            (Some(r), Some((n, at))) if &r.v != n => self.notes.warn(
                at,
                format!("ConfigMap {n} is not the one spec.baseConfigMapRef names ({}); read anyway", r.v),
            ),
            (Some(r), None) if cm_file.is_none() && self.base.epp.config.is_none() && self.base.epp.env.is_empty() => self.notes.warn(
                &r.at,
                format!("ConfigMap {} not given (--configmap / deployment.configmap): its vLLM args and EPP configuration are missing", r.v),
            ),
            (Some(r), _) => self.notes.ok(&r.at, format!("ConfigMap {}", r.v)),
            _ => {}
        }
        let Some(uri) = uri else {
            return Err(src.err(
                "spec.modelArtifacts.uri",
                "missing: the model to serve, e.g. hf://meta-llama/Llama-3.2-1B",
            ));
        };
        let hf_name = uri.v.strip_prefix("hf://").map(str::to_string);
        let routing_name = model_name.as_ref().map(|m| m.v.clone());
        let template = |expr: &str| -> Option<String> {
            match expr {
                ".HFModelName" => hf_name.clone(),
                ".ModelPath" | ".MountedModelPath" => {
                    uri.v.split_once("://").map(|(_, p)| p.to_string())
                }
                ".ModelName" => routing_name.clone(),
                ".ModelServiceName" => name.clone(),
                ".ModelServiceNamespace" => namespace.clone(),
                _ => None,
            }
        };
        // Decode first: prefill may inherit its GPU.
        roles.sort_by_key(|r| r.role != "decode");
        let Some(decode) = roles.iter().find(|r| r.role == "decode") else {
            return Err(src.err(
                "spec",
                "spec.decode missing: a ModelService needs decode pods to serve requests",
            ));
        };
        if decode.replicas == 0 {
            return Err(decode.replicas_at.err("decode replicas is 0: every request ends on a decode pod, so at least one is needed"));
        }
        let mut outs: Vec<RoleOut> = Vec::new();
        let mut decode_gpu: Option<String> = None;
        for r in &roles {
            let o = self.build_role(r, &template, decode_gpu.as_deref())?;
            if r.role == "decode" {
                decode_gpu = Some(o.group.gpu.clone());
            }
            outs.push(o);
        }
        let model = self.resolve_model(&uri, &outs, model_name.as_ref())?;
        for o in &mut outs {
            o.group.model = Some(model.clone());
        }
        let (router, pd_on) = self.build_router(model_name.as_ref(), cm_ref.as_ref())?;
        let prefill = roles.iter().position(|r| r.role == "prefill");
        let n_prefill = prefill.map_or(0, |i| roles[i].replicas);
        if let Some((true, pd_at, why)) = &pd_on {
            if n_prefill == 0 {
                let (field_at, what) = match prefill {
                    Some(i) => (roles[i].replicas_at.clone(), "spec.prefill.replicas is 0"),
                    None => (src.at("spec"), "spec.prefill is missing"),
                };
                let mut e = field_at.err(format!(
                    "P/D is enabled ({why} at {}{}) but {what}: the prefill profile has no pods",
                    pd_at.file.display(),
                    pd_at.line.map(|l| format!(":{l}")).unwrap_or_default()
                ));
                if prefill.is_none() {
                    e.field = "spec.prefill".into();
                }
                return Err(e);
            }
        } else if n_prefill > 0 {
            let i = prefill.expect("n_prefill > 0");
            self.notes.warn(
                &roles[i].replicas_at,
                format!("{n_prefill} prefill pods but P/D is not enabled in the EPP configuration (PD_ENABLED, pd-profile-handler or disagg-profile-handler): they take no prefill work"),
            );
        }
        let pd = self.build_pd(
            &outs,
            pd_on.as_ref().map(|p| p.0).unwrap_or(false),
            n_prefill,
        )?;
        let vllm_version = self.vllm_version(&outs);
        let groups = outs
            .into_iter()
            .zip(&roles)
            .filter(|(_, r)| r.replicas > 0)
            .map(|(o, _)| o.group)
            .collect();
        let mut description = format!("imported from {}", ms_file.display());
        if let Some(c) = cm_file {
            description.push_str(&format!(" and {}", c.display()));
        }
        Ok(Scenario {
            name,
            description: Some(description),
            vllm_version,
            pods: groups,
            router: Some(RouterSpec::Epp(Box::new(router))),
            pd,
            ..Default::default()
        })
    }

    fn read_role(&mut self, role: &str, path: &str, v: &Value) -> Result<RoleIn, ScenarioError> {
        let src = self.src.clone();
        let role: &'static str = if role == "decode" {
            "decode"
        } else {
            "prefill"
        };
        let Some(m) = v.as_mapping() else {
            return Err(src.err(path, "expected a mapping with replicas and containers"));
        };
        let mut r = RoleIn {
            role,
            path: path.to_string(),
            replicas: 1,
            replicas_at: src.at(path),
            tensor: None,
            accelerators: Vec::new(),
            accel_key: None,
            containers: Vec::new(),
            init_containers: Vec::new(),
        };
        for k in keys(m) {
            let p = format!("{path}.{k}");
            let val = field(m, &k);
            match k.as_str() {
                "replicas" => {
                    r.replicas_at = src.at(&p);
                    r.replicas = match val {
                        Value::Null => 1,
                        _ => scalar(val)
                            .and_then(|s| s.trim().parse::<u32>().ok())
                            .ok_or_else(|| {
                                src.err(
                                    &p,
                                    format!(
                                        "expected a whole number of pods, got {}",
                                        scalar(val).unwrap_or_else(|| "a non-scalar".into())
                                    ),
                                )
                            })?,
                    };
                    self.notes.ok(
                        &r.replicas_at,
                        format!("{} pods with role {role}", r.replicas),
                    );
                }
                "parallelism" => {
                    for pk in val.as_mapping().map(keys).unwrap_or_default() {
                        let pp = format!("{p}.{pk}");
                        let text = scalar(&val[pk.as_str()]).unwrap_or_default();
                        if pk == "tensor" {
                            let n: u32 = text.parse().map_err(|_| {
                                src.err(
                                    &pp,
                                    format!("expected a whole number of GPUs, got \"{text}\""),
                                )
                            })?;
                            r.tensor = Some((n, src.at(&pp)));
                            self.notes
                                .ok(&src.at(&pp), format!("tensor_parallel_size {n}"));
                        } else if text == "1" {
                            self.notes
                                .ok(&src.at(&pp), format!("{pk} 1: no parallelism of this kind"));
                        } else {
                            self.notes.warn(
                                &src.at(&pp),
                                format!(
                                    "parallelism.{pk} {text} not modelled (one engine per pod)"
                                ),
                            );
                        }
                    }
                }
                "acceleratorTypes" => {
                    r.accel_key = get(val, "labelKey").and_then(scalar).map(|s| Item {
                        v: s,
                        at: src.at(&format!("{p}.labelKey")),
                    });
                    if let Some(list) = get(val, "labelValues").and_then(Value::as_sequence) {
                        for (i, x) in list.iter().enumerate() {
                            if let Some(s) = scalar(x) {
                                r.accelerators.push(Item {
                                    v: s,
                                    at: src.at(&format!("{p}.labelValues[{i}]")),
                                });
                            }
                        }
                    }
                }
                "containers" => r.containers = read_containers(&src, &p, val, &mut self.notes)?,
                "initContainers" => {
                    r.init_containers = read_containers(&src, &p, val, &mut self.notes)?
                }
                other => self
                    .notes
                    .warn(&src.at(&p), format!("{role}.{other} not modelled")),
            }
        }
        Ok(r)
    }

    fn build_role(
        &mut self,
        r: &RoleIn,
        template: &dyn Fn(&str) -> Option<String>,
        decode_gpu: Option<&str>,
    ) -> Result<RoleOut, ScenarioError> {
        let base = if r.role == "decode" {
            self.base.decode.clone()
        } else {
            self.base.prefill.clone()
        };
        let role_at = self.src.at(&r.path);
        if base.is_none() && self.base.name.is_some() {
            self.notes.ok(&role_at, format!("no {}Deployment in the BaseConfig: {} pods use the ModelService's containers and vLLM's defaults", r.role, r.role));
        }
        let (containers, init) = merge_containers(base.as_ref(), &r.containers, &r.init_containers);
        let all: Vec<&ContainerIn> = init.iter().chain(containers.iter()).collect();
        let sidecar_idx = all.iter().position(|c| is_sidecar(c));
        let vllm_idx = all
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != sidecar_idx)
            .find(|(_, c)| {
                c.name == "vllm"
                    || c.command
                        .iter()
                        .chain(c.args.iter())
                        .any(|a| a.v.contains("vllm"))
            })
            .map(|(i, _)| i)
            .or_else(|| {
                // A single regular container is the engine whatever its name.
                let regular: Vec<usize> = (init.len()..all.len())
                    .filter(|&i| Some(i) != sidecar_idx)
                    .collect();
                (regular.len() == 1).then(|| regular[0])
            });
        let mut sidecar = None;
        if let Some(i) = sidecar_idx {
            sidecar = self.read_sidecar(all[i])?;
        }
        let mut vllm = VllmRead::default();
        let mut gpus: Option<(u32, Origin)> = None;
        let mut image_version = None;
        match vllm_idx {
            Some(i) => {
                let c = all[i];
                self.notes
                    .ok(&c.at, format!("container {}: the vLLM engine", c.name));
                vllm = read_vllm(c, template, &mut self.notes)?;
                gpus = c.gpus.clone();
                if let Some(img) = &c.image {
                    image_version = image_vllm_version(&img.v).map(|v| (v, img.at.clone()));
                    self.notes
                        .ok(&img.at, format!("image {}", super::k8s::unmask(&img.v)));
                }
            }
            None => self.notes.warn(
                &role_at,
                format!(
                    "no vLLM container found for the {} pods: vLLM's defaults used",
                    r.role
                ),
            ),
        }
        for (i, c) in all.iter().enumerate() {
            if Some(i) != vllm_idx && Some(i) != sidecar_idx {
                self.notes
                    .warn(&c.at, format!("container {} not modelled", c.name));
            }
        }
        let gpu = self.resolve_gpu(r, gpus.as_ref(), decode_gpu);
        let tp = match (&r.tensor, &vllm.tensor_parallel_size) {
            (Some((t, at)), Some((a, aat))) if t != a => {
                self.notes.warn(aat, format!("--tensor-parallel-size {a} differs from parallelism.tensor {t} ({}); {t} used", at.field));
                Some(*t)
            }
            (Some((t, _)), _) => Some(*t),
            (None, Some((a, _))) => Some(*a),
            (None, None) => None,
        };
        if let Some((g, at)) = &gpus {
            let t = tp.unwrap_or(1);
            if *g != t {
                self.notes.warn(at, format!("{g} GPUs per pod but tensor_parallel_size {t}: vLLM uses {t}; the others idle (not modelled)"));
            } else {
                self.notes.ok(at, format!("{g} GPU(s) per pod"));
            }
        }
        let group = PodGroup {
            name: Some(r.role.to_string()),
            count: Some(r.replicas),
            role: Some(r.role.to_string()),
            gpu,
            model: None,
            model_config: None,
            tensor_parallel_size: tp,
            vllm: vllm.vllm.clone(),
            step_time: None,
        };
        Ok(RoleOut {
            group,
            vllm,
            sidecar,
            image_version,
        })
    }

    fn resolve_gpu(
        &mut self,
        r: &RoleIn,
        gpus: Option<&(u32, Origin)>,
        decode_gpu: Option<&str>,
    ) -> String {
        for a in &r.accelerators {
            if let Some(g) = gpu_from_label(&a.v) {
                self.notes.ok(&a.at, format!("gpu {g}"));
                return g.to_string();
            }
        }
        let why = match (&r.accel_key, r.accelerators.first(), gpus) {
            (Some(k), Some(v), _) => (v.at.clone(), format!("{} {} names no GPU type", k.v, v.v)),
            (Some(k), None, _) => (k.at.clone(), format!("{} names no GPU type", k.v)),
            (None, _, Some((_, at))) => (
                at.clone(),
                "only nvidia.com/gpu given, no GPU type".to_string(),
            ),
            (None, _, None) => (self.src.at(&r.path), "no accelerator given".to_string()),
        };
        let (at, what) = why;
        match decode_gpu {
            Some(g) if r.role != "decode" => {
                self.notes
                    .warn(&at, format!("{what}: the decode pods' {g} assumed"));
                g.to_string()
            }
            _ => {
                self.notes
                    .warn(&at, format!("{what}: {DEFAULT_GPU} assumed"));
                DEFAULT_GPU.to_string()
            }
        }
    }

    fn read_sidecar(&mut self, c: &ContainerIn) -> Result<Option<(String, Origin)>, ScenarioError> {
        self.notes.ok(
            &c.at,
            format!("container {}: the llm-d routing sidecar", c.name),
        );
        let mut connector = None;
        let mut i = 0;
        while i < c.args.len() {
            let a = &c.args[i];
            i += 1;
            let Some(raw) = a.v.strip_prefix("--").or(a.v.strip_prefix('-')) else {
                self.notes.warn(
                    &a.at,
                    format!("positional sidecar argument \"{}\" ignored", a.v),
                );
                continue;
            };
            let (name, inline) = match raw.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (raw.to_string(), None),
            };
            let value = inline.or_else(|| {
                (i < c.args.len() && !c.args[i].v.starts_with('-')).then(|| {
                    i += 1;
                    c.args[i - 1].v.clone()
                })
            });
            match (name.as_str(), value) {
                ("connector" | "kv-connector", Some(v)) => {
                    if !CONNECTORS.contains(&v.as_str()) {
                        let hint = did_you_mean(&v, CONNECTORS);
                        return Err(a.at.err(format!(
                            "unknown sidecar connector \"{v}\" (valid: {}){hint}",
                            CONNECTORS.join(", ")
                        )));
                    }
                    self.notes.ok(&a.at, format!("--{name}={v}: pd.connector"));
                    connector = Some((v, a.at.clone()));
                }
                (
                    "port"
                    | "vllm-port"
                    | "cert-path"
                    | "secure-proxy"
                    | "prefiller-use-tls"
                    | "decoder-use-tls"
                    | "prefiller-tls-insecure-skip-verify"
                    | "decoder-tls-insecure-skip-verify"
                    | "v"
                    | "zap-log-level"
                    | "enable-ssrf-protection"
                    | "inference-pool-name"
                    | "inference-pool-namespace",
                    _,
                ) => self
                    .notes
                    .ok(&a.at, format!("--{name}: does not affect the simulation")),
                (n, v) => self.notes.warn(
                    &a.at,
                    format!(
                        "sidecar flag --{n}{} not modelled",
                        v.map(|v| format!("={v}")).unwrap_or_default()
                    ),
                ),
            }
        }
        for e in &c.env {
            self.notes
                .warn(&e.at, format!("sidecar env {} not modelled", e.name));
        }
        Ok(connector)
    }

    fn resolve_model(
        &mut self,
        uri: &Item,
        outs: &[RoleOut],
        routing: Option<&Item>,
    ) -> Result<String, ScenarioError> {
        let primary = crate::catalog::model::model(&uri.v);
        if let Ok(m) = &primary {
            self.notes.ok(&uri.at, format!("model {}", m.name));
            for o in outs {
                if let Some(vm) = &o.vllm.model {
                    let other = crate::catalog::model::model(&vm.v).map(|x| x.name.to_string());
                    if other.as_deref().ok() != Some(m.name.as_ref()) && !vm.v.starts_with('/') {
                        self.notes.warn(
                            &vm.at,
                            format!(
                                "vLLM serves \"{}\" but spec.modelArtifacts.uri is {}; {} used",
                                vm.v, uri.v, m.name
                            ),
                        );
                    }
                }
            }
            return Ok(m.name.to_string());
        }
        let fallbacks = outs
            .iter()
            .filter_map(|o| o.vllm.model.clone())
            .chain(outs.iter().filter_map(|o| o.vllm.served_model_name.clone()))
            .chain(routing.cloned());
        for f in fallbacks {
            if let Ok(m) = crate::catalog::model::model(&f.v) {
                self.notes.warn(
                    &uri.at,
                    format!(
                        "{} is not in the model catalog; {} from {} used",
                        uri.v, m.name, f.at.field
                    ),
                );
                return Ok(m.name.to_string());
            }
        }
        let e = primary.expect_err("checked above");
        Err(uri.at.err(e.to_string()))
    }

    /// The EPP spec, and whether P/D is on with where and why (`PD_ENABLED=true`, a handler).
    #[allow(clippy::type_complexity)]
    fn build_router(
        &mut self,
        model_name: Option<&Item>,
        cm_ref: Option<&Item>,
    ) -> Result<(EppSpec, Option<(bool, Origin, String)>), ScenarioError> {
        let epp = self.base.epp.clone();
        let mut spec = EppSpec {
            metrics_refresh_ms: epp.metrics_refresh_ms,
            model_name: model_name.map(|m| m.v.clone()),
            ..Default::default()
        };
        if let Some(m) = model_name {
            self.notes.ok(&m.at, format!("router.model_name {}", m.v));
        }
        let literal: Vec<&EnvIn> = epp
            .env
            .iter()
            .filter(|e| !e.value_from && e.value.is_some())
            .collect();
        let pd;
        if let Some((doc, text, at)) = &epp.config {
            let epp_vars: Vec<&str> = literal
                .iter()
                .filter(|e| epp_source::is_epp_env(&e.name))
                .map(|e| e.name.as_str())
                .collect();
            if !epp_vars.is_empty() {
                self.notes.warn(
                    at,
                    format!(
                        "EPP env vars {} ignored: the EndpointPickerConfig takes precedence",
                        epp_vars.join(", ")
                    ),
                );
            }
            let loaded = crate::epp::config::load_yaml(&super::k8s::unmask(text))
                .map_err(|e| at.err(format!("EndpointPickerConfig: {e}")))?;
            for w in loaded.warnings {
                self.notes.warn(at, w);
            }
            let handler = get(doc, "plugins")
                .and_then(Value::as_sequence)
                .and_then(|ps| {
                    ps.iter().find_map(|p| {
                        get(p, "type")
                            .and_then(scalar)
                            .filter(|t| t == "pd-profile-handler" || t == "disagg-profile-handler")
                    })
                });
            pd = Some((
                handler.is_some(),
                at.clone(),
                format!(
                    "{} in the EndpointPickerConfig",
                    handler.unwrap_or_default()
                ),
            ));
            spec.config = Some(doc.clone());
        } else if !epp.env.is_empty() {
            let pairs: Vec<(String, String)> = literal
                .iter()
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect();
            let loaded = crate::epp::config::from_env(&pairs).map_err(|e| {
                let at = match &e {
                    crate::epp::config::ConfigError::EnvValue { name, .. } => literal
                        .iter()
                        .rev()
                        .find(|x| &x.name == name)
                        .map(|x| x.at.clone()),
                    _ => None,
                };
                at.unwrap_or_else(|| literal[0].at.clone())
                    .err(format!("EPP env: {e}"))
            })?;
            let first = &literal
                .first()
                .map(|e| e.at.clone())
                .unwrap_or_else(|| epp.env[0].at.clone());
            for w in loaded.warnings {
                // Warnings name their variable first: put them at its line.
                let at = literal
                    .iter()
                    .rev()
                    .find(|e| {
                        w.strip_prefix(e.name.as_str())
                            .is_some_and(|t| t.starts_with([':', '=']))
                    })
                    .map_or(first, |e| &e.at);
                self.notes.warn(at, w);
            }
            pd = literal
                .iter()
                .rev()
                .find(|e| e.name == "PD_ENABLED")
                .map(|e| {
                    // The ENV mapping adds a P/D handler exactly when llm-d would.
                    let on = loaded.scheduler.handler_type() == "pd-profile-handler";
                    (
                        on,
                        e.at.clone(),
                        format!("PD_ENABLED={}", e.value.as_deref().unwrap_or("")),
                    )
                });
            spec.env = Some(
                literal
                    .iter()
                    .map(|e| EnvVar {
                        name: e.name.clone(),
                        value: e.value.clone(),
                    })
                    .collect(),
            );
        } else {
            let at = cm_ref
                .map(|r| r.at.clone())
                .unwrap_or_else(|| self.src.at("spec"));
            self.notes.warn(&at, "no EPP configuration found: llm-d's default scorers used (queue 2, kv-cache-utilization 2, prefix-cache 3)");
            pd = None;
        }
        Ok((spec, pd))
    }

    fn build_pd(
        &mut self,
        outs: &[RoleOut],
        pd_on: bool,
        n_prefill: u32,
    ) -> Result<Option<PdSpec>, ScenarioError> {
        let decode = &outs[0];
        let sidecar = outs.iter().find_map(|o| o.sidecar.clone());
        let side_channel = outs.iter().find_map(|o| o.vllm.side_channel_port.clone());
        if !pd_on && n_prefill == 0 && sidecar.is_none() && side_channel.is_none() {
            return Ok(None);
        }
        if pd_on {
            if sidecar.is_none() {
                self.notes.warn(
                    &self.src.at("spec.decode"),
                    "P/D is enabled but no routing sidecar (--connector) was found: nixlv2 assumed",
                );
            }
            for o in outs {
                let role = o.group.role.clone().unwrap_or_default();
                if o.vllm.vllm.kv_transfer_config.is_none() {
                    self.notes.warn(&self.src.at(&format!("spec.{role}")), format!("P/D is enabled but the {role} pods' vLLM has no --kv-transfer-config: a NixlConnector is assumed"));
                }
            }
        }
        if let (Some((c, at)), Some((k, _))) = (&sidecar, &decode.vllm.kv_connector) {
            let expected = match c.as_str() {
                "nixl" | "nixlv2" => Some("Nixl"),
                "lmcache" => Some("LMCache"),
                _ => None,
            };
            if let Some(e) = expected {
                if !k.contains(e) {
                    self.notes.warn(
                        at,
                        format!("sidecar connector {c} but vLLM's kv_connector is {k}"),
                    );
                }
            }
        }
        Ok(Some(PdSpec {
            enabled: Some(pd_on),
            connector: sidecar.map(|s| s.0),
            side_channel_port: side_channel.map(|s| s.0),
        }))
    }

    fn vllm_version(&mut self, outs: &[RoleOut]) -> Option<String> {
        let (v, at) = outs.iter().find_map(|o| o.image_version.clone())?;
        if v == "0.11" || v == "0.33" {
            self.notes
                .ok(&at, format!("vllm_version {v} from the image tag"));
            Some(v)
        } else {
            self.notes.warn(&at, format!("vLLM {v} from the image tag is not modelled; 0.33 semantics used (set vllm_version to change)"));
            None
        }
    }
}

/// BaseConfig containers overlaid with the ModelService's, matched by name.
fn merge_containers(
    base: Option<&PodTemplate>,
    ms: &[ContainerIn],
    ms_init: &[ContainerIn],
) -> (Vec<ContainerIn>, Vec<ContainerIn>) {
    let merge = |base: &[ContainerIn], over: &[ContainerIn]| {
        let mut out: Vec<ContainerIn> = base.to_vec();
        for o in over {
            match out.iter_mut().find(|b| b.name == o.name) {
                Some(b) => {
                    b.args.extend(o.args.iter().cloned());
                    for e in &o.env {
                        match b.env.iter_mut().find(|x| x.name == e.name) {
                            Some(x) => *x = e.clone(),
                            None => b.env.push(e.clone()),
                        }
                    }
                    if !o.command.is_empty() {
                        b.command = o.command.clone();
                    }
                    if o.image.is_some() {
                        b.image = o.image.clone();
                    }
                    if o.gpus.is_some() {
                        b.gpus = o.gpus.clone();
                    }
                }
                None => out.push(o.clone()),
            }
        }
        out
    };
    let (bc, bi) = base.map_or((&[][..], &[][..]), |b| {
        (&b.containers[..], &b.init_containers[..])
    });
    (merge(bc, ms), merge(bi, ms_init))
}

fn is_sidecar(c: &ContainerIn) -> bool {
    c.name.contains("routing-proxy")
        || c.name.contains("sidecar")
        || c.image
            .as_ref()
            .is_some_and(|i| i.v.contains("routing-sidecar"))
        || c.args.iter().any(|a| {
            let t = a.v.trim_start_matches('-');
            t.starts_with("connector") || t.starts_with("kv-connector")
        })
}

/// A catalog GPU from a node label value (`H100`, `NVIDIA-H100-80GB-HBM3`, `nvidia-a100-sxm4-80gb`).
fn gpu_from_label(v: &str) -> Option<&'static str> {
    if let Ok(g) = crate::catalog::gpu::gpu(v) {
        return Some(g.name);
    }
    let lower = v.to_ascii_lowercase();
    for g in crate::catalog::gpu::GPUS {
        let stem = g
            .name
            .split('-')
            .next()
            .unwrap_or(g.name)
            .to_ascii_lowercase();
        if lower.split(['-', '_', ' ', '.']).any(|t| t == stem) {
            return Some(g.name);
        }
    }
    None
}

/// `major.minor` of a vLLM image tag (`vllm/vllm-openai:v0.11.0` → `0.11`).
fn image_vllm_version(image: &str) -> Option<String> {
    let (_, tag) = image.rsplit_once(':')?;
    if tag.contains('/') || !image.contains("vllm") {
        return None;
    }
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let mut it = t.split(['.', '-', '+']);
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next()?.parse().ok()?;
    Some(format!("{major}.{minor}"))
}

/// Paths of the deployment files, for messages.
pub fn describe_sources(ms: &Path, cm: Option<&Path>) -> String {
    let mut s = PathBuf::from(ms).display().to_string();
    if let Some(c) = cm {
        s.push_str(&format!(" + {}", c.display()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: &str = r#"apiVersion: llm-d.ai/v1alpha1
kind: ModelService
metadata:
  name: m
spec:
  baseConfigMapRef:
    name: base
  modelArtifacts:
    uri: "hf://meta-llama/Llama-3.2-1B"
  decode:
    replicas: 2
    acceleratorTypes:
      labelKey: nvidia.com/gpu.product
      labelValues: [NVIDIA-A100-SXM4-80GB]
    containers:
    - name: vllm
      args: ["--block-size", "32"]
  prefill:
    replicas: 1
    containers:
    - name: vllm
  routing:
    modelName: m
"#;

    const CM: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: base
data:
  decodeDeployment: |
    spec:
      template:
        spec:
          initContainers:
          - name: routing-proxy
            args: ["--port=8000", "--connector=nixl"]
          containers:
          - name: vllm
            args: ["--block-size", "64", "--enable-prefix-caching"]
            resources:
              limits: {nvidia.com/gpu: "1"}
  eppDeployment: |
    spec:
      template:
        spec:
          containers:
          - name: epp
            env:
            - {name: PD_ENABLED, value: "true"}
            - {name: ENABLE_LOAD_AWARE_SCORER, value: "true"}
"#;

    fn import(ms: &str, cm: Option<&str>) -> Result<Imported, ScenarioError> {
        import_text(
            Path::new("ms.yaml"),
            ms,
            cm.map(|c| (Path::new("cm.yaml"), c)),
        )
    }

    #[test]
    fn merges_base_and_modelservice_containers() {
        let imp = import(MS, Some(CM)).unwrap();
        let sc = &imp.scenario;
        assert_eq!(sc.pods.len(), 2);
        let d = &sc.pods[0];
        assert_eq!(
            (d.role.as_deref(), d.count, d.gpu.as_str()),
            (Some("decode"), Some(2), "A100-80GB")
        );
        // The ModelService's --block-size follows the BaseConfig's and wins.
        assert_eq!(d.vllm.block_size, Some(32));
        assert_eq!(d.vllm.enable_prefix_caching, Some(true));
        let p = &sc.pods[1];
        // No prefillDeployment, no accelerator: the decode pods' GPU is assumed.
        assert_eq!(
            (p.role.as_deref(), p.gpu.as_str(), p.vllm.block_size),
            (Some("prefill"), "A100-80GB", None)
        );
        assert_eq!(p.model.as_deref(), Some("Llama-3.2-1B"));
        let pd = sc.pd.as_ref().unwrap();
        assert_eq!(
            (pd.enabled, pd.connector.as_deref()),
            (Some(true), Some("nixl"))
        );
        let Some(RouterSpec::Epp(e)) = &sc.router else {
            panic!("epp router")
        };
        assert_eq!(e.model_name.as_deref(), Some("m"));
        assert_eq!(e.env.as_ref().map(Vec::len), Some(2));
        let w: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
        assert!(
            w.iter()
                .any(|m| m.contains("spec.prefill") && m.contains("A100-80GB assumed")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|m| m.contains("no --kv-transfer-config")),
            "{w:?}"
        );
    }

    #[test]
    fn bad_input_names_the_field_and_line() {
        let zero = MS.replace("replicas: 2", "replicas: 0");
        let e = import(&zero, Some(CM)).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("spec.decode.replicas", Some(11))
        );
        let no_prefill = MS.replace("replicas: 1", "replicas: 0");
        let e = import(&no_prefill, Some(CM)).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("spec.prefill.replicas", Some(19))
        );
        assert!(e.message.contains("PD_ENABLED"), "{}", e.message);
        let unknown = MS.replace("Llama-3.2-1B", "Llama-3.2-1C");
        let e = import(&unknown, Some(CM)).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("spec.modelArtifacts.uri", Some(9))
        );
        assert!(
            e.message.contains("did you mean \"Llama-3.2-1B\""),
            "{}",
            e.message
        );
        let e = import("kind: ModelService\nspec: [\n", None).unwrap_err();
        assert!(e.message.starts_with("malformed YAML"), "{}", e.message);
        assert!(e.line.is_some());
        let e = import(MS, Some(&CM.replace("connector=nixl", "connector=nixk"))).unwrap_err();
        assert!(e.message.contains("did you mean \"nixl\""), "{e}");
        assert!(e.field.ends_with("initContainers[0].args[1]"), "{e}");
        let e = import(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {}\n",
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "kind");
    }

    #[test]
    fn without_pd_prefill_pods_warn_and_gpu_labels_map() {
        let cm = CM.replace(
            "PD_ENABLED, value: \"true\"",
            "PD_ENABLED, value: \"false\"",
        );
        let imp = import(MS, Some(&cm)).unwrap();
        assert_eq!(
            imp.scenario.pd.as_ref().and_then(|p| p.enabled),
            Some(false)
        );
        assert!(imp
            .warnings
            .iter()
            .any(|n| n.message.contains("take no prefill work")));
        assert_eq!(gpu_from_label("NVIDIA-H100-80GB-HBM3"), Some("H100"));
        assert_eq!(gpu_from_label("true"), None);
        assert_eq!(
            image_vllm_version("vllm/vllm-openai:v0.11.0").as_deref(),
            Some("0.11")
        );
        assert_eq!(
            image_vllm_version("quay.io/llm-d/llm-d-dev@sha256:abc"),
            None
        );
    }

    #[test]
    fn odd_yaml_is_an_error_or_a_warning_never_a_panic() {
        let ms = "kind: ModelService\nspec: {1: x, true: y, decode: {replicas: 1}, modelArtifacts: {uri: hf://meta-llama/Llama-3.2-1B}}\n";
        let imp = import(ms, None).unwrap();
        let w: Vec<String> = imp.warnings.iter().map(|n| n.at.field.clone()).collect();
        assert!(
            w.contains(&"spec.1".to_string()) && w.contains(&"spec.true".to_string()),
            "{w:?}"
        );
        assert_eq!(imp.scenario.pods.len(), 1);
        let cm = "kind: ConfigMap\ndata:\n  decodeDeployment: |\n    spec: {template: {spec: 5}}\n";
        let e = import(ms, Some(cm)).unwrap_err();
        assert_eq!(e.field, "data.decodeDeployment.spec.template.spec");
        assert_eq!(e.line, Some(4));
        for bad in [
            "",
            "kind: ModelService\n",
            "kind: ModelService\nspec: 3\n",
            "- 1\n",
        ] {
            assert!(import(bad, None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn check_pd_needs_prefill_pods() {
        let mut sc = Scenario {
            pd: Some(PdSpec {
                enabled: Some(true),
                ..Default::default()
            }),
            pods: vec![PodGroup {
                role: Some("decode".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(check_pd(&sc).map(|e| e.0).as_deref(), Some("pd.enabled"));
        sc.pods.push(PodGroup {
            role: Some("prefill".into()),
            ..Default::default()
        });
        assert_eq!(check_pd(&sc), None);
        sc.pd.as_mut().unwrap().connector = Some("lmcahce".into());
        assert!(check_pd(&sc)
            .unwrap()
            .1
            .contains("did you mean \"lmcache\""));
    }
}
