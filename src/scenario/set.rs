//! `key=value` overrides (`kvsim sweep --set`, `kvsim plan`) applied to a
//! scenario's YAML document before it is deserialized, so every field the
//! scenario format has can be varied without a flag of its own.
//!
//! A key is a dotted path with indices into the document:
//!
//! ```text
//! pods[0].count=4                     pods[1].vllm.block_size=64
//! workload.arrivals.rate_per_s=20     seed=7        pods[0].gpu=H200
//! router.config.schedulingProfiles[0].plugins[1].weight=3
//! ```
//! The value is parsed as YAML (`4` is a number, `H200` a string, `true` a
//! bool, `{model: constant, step_us: 500}` a mapping). Every mapping and
//! sequence element along the path must exist; only the last key may be new
//! (it is added to its mapping, and the scenario schema then rejects it if it
//! is not a field, with the nearest field name). A missing key names the
//! path and the nearest existing key.
//!
//! Aliases that capacity planners use:
//! - `decode=N`, `prefill=N`: the `count` of the one pod group with that `role`
//!   (the pods of a `deployment:` are imported first, so they count too);
//! - `rate=R`: the workload's arrival rate, `workload.arrivals.rate_per_s`
//!   (constant, poisson, gamma) or the rate of a single `stages` entry.

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use super::error::{locate, nearest, ScenarioError};
use super::resolve::{resolve_text, Overrides, Resolved};

/// The alias keys [`apply_set`] understands besides paths.
pub const SET_ALIASES: &[&str] = &["decode", "prefill", "rate"];

/// Why a `--set key=value` cannot be applied.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SetError {
    /// The key is not a well-formed path.
    #[error("--set {key}: {reason}")]
    BadPath {
        /// The key as given.
        key: String,
        /// What is malformed.
        reason: String,
    },
    /// The value is not valid YAML.
    #[error("--set {key}={value}: not a YAML value: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// The parser's message.
        reason: String,
    },
    /// A mapping key along the path does not exist.
    #[error("--set {key}: `{at}` does not exist{}{hint}", fmt_keys(.existing))]
    NoSuchKey {
        /// The key as given.
        key: String,
        /// The path up to and including the missing component.
        at: String,
        /// The keys the mapping has.
        existing: Vec<String>,
        /// "; did you mean `x`?" or empty.
        hint: String,
    },
    /// An index past the end of a sequence, or into something that is not one.
    #[error("--set {key}: `{at}`: {reason}")]
    BadIndex {
        /// The key as given.
        key: String,
        /// The path up to and including the index.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// An alias that does not apply to this scenario.
    #[error("--set {key}: {reason}")]
    Alias {
        /// The alias.
        key: String,
        /// Why it does not apply.
        reason: String,
    },
}

fn fmt_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(" (existing keys: {})", keys.join(", "))
    }
}

/// One path component: a mapping key followed by zero or more indices.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    key: String,
    indices: Vec<usize>,
}

/// Splits `a.b[0][1].c` into segments.
fn parse_path(key: &str) -> Result<Vec<Segment>, SetError> {
    let bad = |reason: &str| SetError::BadPath {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            return Err(bad("empty path component (expected `name` or `name[i]`)"));
        }
        let mut indices = Vec::new();
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .filter(|_| rest.starts_with('['))
                .ok_or_else(|| bad(&format!("malformed index in `{part}`")))?;
            let idx: usize = rest[1..close]
                .trim()
                .parse()
                .map_err(|_| bad(&format!("index `{}` is not a number", &rest[1..close])))?;
            indices.push(idx);
            rest = &rest[close + 1..];
        }
        out.push(Segment {
            key: name.to_string(),
            indices,
        });
    }
    Ok(out)
}

/// Parses a `--set` value as YAML: a scalar, or a flow mapping or sequence.
pub fn parse_value(key: &str, value: &str) -> Result<Value, SetError> {
    serde_yaml_ng::from_str(value).map_err(|e| SetError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// Applies one `key=value` (a path or an alias) to a scenario document.
pub fn apply_set(doc: &mut Value, key: &str, value: &str) -> Result<(), SetError> {
    let key = key.trim();
    let v = parse_value(key, value.trim())?;
    match key {
        "decode" | "prefill" => {
            let path = role_count_path(doc, key)?;
            set_path(doc, &path, v).map_err(|e| alias_err(key, e))
        }
        "rate" => {
            let path = rate_path(doc)?;
            set_path(doc, &path, v).map_err(|e| alias_err(key, e))
        }
        _ => set_path(doc, key, v),
    }
}

fn alias_err(alias: &str, e: SetError) -> SetError {
    SetError::Alias {
        key: alias.to_string(),
        reason: e.to_string(),
    }
}

/// Sets the value at a dotted path (see the module docs for the rules).
pub fn set_path(doc: &mut Value, key: &str, value: Value) -> Result<(), SetError> {
    let segments = parse_path(key)?;
    let mut cur = doc;
    let mut at = String::new();
    let n = segments.len();
    for (si, seg) in segments.iter().enumerate() {
        if !at.is_empty() {
            at.push('.');
        }
        at.push_str(&seg.key);
        let last_seg = si + 1 == n;
        let Value::Mapping(map) = cur else {
            return Err(SetError::BadIndex {
                key: key.to_string(),
                at,
                reason: format!("the parent is {}, not a mapping", kind(cur)),
            });
        };
        let k = Value::String(seg.key.clone());
        if last_seg && seg.indices.is_empty() {
            // The leaf: replace, or add a new key to an existing mapping.
            map.insert(k, value);
            return Ok(());
        }
        if !map.contains_key(&k) {
            return Err(no_such_key(key, &at, map));
        }
        cur = map.get_mut(&k).expect("checked above");
        for (ii, &idx) in seg.indices.iter().enumerate() {
            at.push_str(&format!("[{idx}]"));
            let Value::Sequence(seq) = cur else {
                return Err(SetError::BadIndex {
                    key: key.to_string(),
                    at,
                    reason: format!("is indexed but is {}, not a sequence", kind(cur)),
                });
            };
            let len = seq.len();
            let Some(elem) = seq.get_mut(idx) else {
                return Err(SetError::BadIndex {
                    key: key.to_string(),
                    at,
                    reason: format!(
                        "index {idx} out of range (the sequence has {len} element{})",
                        if len == 1 { "" } else { "s" }
                    ),
                });
            };
            if last_seg && ii + 1 == seg.indices.len() {
                *elem = value;
                return Ok(());
            }
            cur = elem;
        }
    }
    unreachable!("the loop returns at the last segment")
}

fn no_such_key(key: &str, at: &str, map: &Mapping) -> SetError {
    let existing: Vec<String> = map
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let missing = at.rsplit('.').next().unwrap_or(at);
    let refs: Vec<&str> = existing.iter().map(String::as_str).collect();
    let hint = nearest(missing, &refs)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    let hint = format!("{hint} (only the last key of a path may be new)");
    SetError::NoSuchKey {
        key: key.to_string(),
        at: at.to_string(),
        existing,
        hint,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// `pods[i].count` of the one pod group whose `role` is `role` (absent role = `both`).
fn role_count_path(doc: &Value, role: &str) -> Result<String, SetError> {
    let err = |reason: String| SetError::Alias {
        key: role.to_string(),
        reason,
    };
    let pods = doc
        .get("pods")
        .and_then(Value::as_sequence)
        .ok_or_else(|| err("the scenario has no `pods:` list".into()))?;
    let hits: Vec<usize> = pods
        .iter()
        .enumerate()
        .filter(|(_, g)| g.get("role").and_then(Value::as_str).unwrap_or("both") == role)
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [i] => Ok(format!("pods[{i}].count")),
        [] => Err(err(format!(
            "no pod group has role: {role} (use pods[i].count for a specific group)"
        ))),
        many => Err(err(format!(
            "{} pod groups have role: {role} (pods{many:?}); use pods[i].count",
            many.len()
        ))),
    }
}

/// Where the workload's arrival rate lives.
fn rate_path(doc: &Value) -> Result<String, SetError> {
    let err = |reason: &str| SetError::Alias {
        key: "rate".to_string(),
        reason: reason.to_string(),
    };
    let arrivals = doc
        .get("workload")
        .and_then(|w| w.get("arrivals"))
        .ok_or_else(|| {
            err("the workload has no `arrivals:` (give one, or set workload.transforms)")
        })?;
    if arrivals.get("rate_per_s").is_some() {
        return Ok("workload.arrivals.rate_per_s".into());
    }
    if let Some(stages) = arrivals.get("stages").and_then(Value::as_sequence) {
        if stages.len() != 1 {
            return Err(err(&format!(
                "the arrivals have {} stages; `rate` needs exactly one (use workload.arrivals.stages[i].rate)",
                stages.len()
            )));
        }
        let field = if stages[0].get("rate").is_some() {
            "rate"
        } else {
            "rate_per_s"
        };
        return Ok(format!("workload.arrivals.stages[0].{field}"));
    }
    Err(err(
        "the arrivals have no rate (type burst?); give a constant, poisson, gamma or single-stage process",
    ))
}

/// Reads, overrides and validates a scenario file: [`super::resolve::load`]
/// with `sets` applied, in order, to its YAML document first.
pub fn resolve_with_sets(
    path: &Path,
    sets: &[(String, String)],
    overrides: &Overrides,
) -> Result<Resolved, ScenarioError> {
    let file_err = |line: Option<usize>, field: &str, message: String| ScenarioError {
        file: path.to_path_buf(),
        line,
        field: field.to_string(),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| file_err(None, "", format!("cannot read: {e}")))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let default_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if sets.is_empty() {
        return resolve_text(path, &text, &base_dir, &default_name, overrides);
    }
    let mut doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| {
        file_err(
            e.location().map(|l| l.line()),
            "",
            format!("not valid YAML: {e}"),
        )
    })?;
    let mut import_warnings = Vec::new();
    if overrides.deployment.is_none() && doc.get("deployment").is_some() {
        // The pods of a `deployment:` exist only once it is imported: import
        // it into the document so `decode=N` or `pods[i].count=N` can address them.
        match expand_in_document(&doc, &base_dir) {
            Some((expanded, warnings)) => {
                doc = expanded;
                import_warnings = warnings;
            }
            // The scenario or its deployment is broken: report it as `kvsim run` would.
            None => return resolve_text(path, &text, &base_dir, &default_name, overrides),
        }
    }
    for (k, v) in sets {
        apply_set(&mut doc, k, v).map_err(|e| file_err(None, k, e.to_string()))?;
    }
    let rendered = serde_yaml_ng::to_string(&doc).map_err(|e| {
        file_err(
            None,
            "",
            format!("cannot render the overridden scenario: {e}"),
        )
    })?;
    let mut resolved =
        resolve_text(path, &rendered, &base_dir, &default_name, overrides).map_err(|mut e| {
            // Lines of the rendered text mean nothing to the user: find the field
            // in the file as written, and say which overrides were in force.
            e.line = (!e.field.is_empty())
                .then(|| locate(&text, &e.field, None))
                .flatten();
            let list: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
            e.message = format!("{} (with --set {})", e.message, list.join(" "));
            e
        })?;
    resolved.import_warnings.extend(import_warnings);
    Ok(resolved)
}

/// The scenario document with its `deployment:` imported in place (pods,
/// router and pd written out, `deployment` removed) and the import's
/// warnings; `None` when the scenario or the deployment cannot be read.
pub fn expand_in_document(doc: &Value, base_dir: &Path) -> Option<(Value, Vec<String>)> {
    let mut sc: super::Scenario = serde_yaml_ng::from_value(doc.clone()).ok()?;
    let notes = super::modelservice::expand_deployment(&mut sc, base_dir).ok()?;
    sc.deployment = None;
    let text = super::modelservice::scenario_yaml(&sc).ok()?;
    let expanded = serde_yaml_ng::from_str(&text).ok()?;
    Some((expanded, notes.iter().map(ToString::to_string).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
seed: 1
pods:
  - name: p
    count: 2
    role: prefill
    gpu: H100
  - name: d
    count: 3
    role: decode
    gpu: H100
    vllm: {block_size: 16}
router:
  type: epp
  config:
    schedulingProfiles:
      - name: default
        plugins: [{pluginRef: a, weight: 1}, {pluginRef: b, weight: 2}]
workload:
  random: {}
  arrivals: {type: constant, rate_per_s: 10}
";

    fn doc() -> Value {
        serde_yaml_ng::from_str(DOC).unwrap()
    }

    fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
        path.iter().fold(v, |v, k| match k.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[*k],
        })
    }

    #[test]
    fn sets_paths_with_indices_and_typed_values() {
        let mut d = doc();
        apply_set(&mut d, "pods[0].count", "4").unwrap();
        apply_set(&mut d, "pods[1].vllm.block_size", "64").unwrap();
        apply_set(&mut d, "pods[0].gpu", "H200").unwrap();
        apply_set(&mut d, "seed", "7").unwrap();
        apply_set(&mut d, "workload.arrivals.rate_per_s", "20.5").unwrap();
        apply_set(
            &mut d,
            "router.config.schedulingProfiles[0].plugins[1].weight",
            "3",
        )
        .unwrap();
        apply_set(&mut d, "pods[1].vllm.async_scheduling", "true").unwrap();
        assert_eq!(at(&d, &["pods", "0", "count"]), &Value::from(4));
        assert_eq!(
            at(&d, &["pods", "1", "vllm", "block_size"]),
            &Value::from(64)
        );
        assert_eq!(at(&d, &["pods", "0", "gpu"]), &Value::from("H200"));
        assert_eq!(at(&d, &["seed"]), &Value::from(7));
        assert_eq!(
            at(&d, &["workload", "arrivals", "rate_per_s"]),
            &Value::from(20.5)
        );
        let w = at(
            &d,
            &[
                "router",
                "config",
                "schedulingProfiles",
                "0",
                "plugins",
                "1",
                "weight",
            ],
        );
        assert_eq!(w, &Value::from(3));
        // A new leaf key in an existing mapping is added.
        assert_eq!(
            at(&d, &["pods", "1", "vllm", "async_scheduling"]),
            &Value::Bool(true)
        );
    }

    #[test]
    fn whole_sequence_elements_and_flow_values() {
        let mut d = doc();
        apply_set(&mut d, "pods[1].vllm", "{block_size: 32, max_num_seqs: 8}").unwrap();
        assert_eq!(
            at(&d, &["pods", "1", "vllm", "max_num_seqs"]),
            &Value::from(8)
        );
        apply_set(
            &mut d,
            "router.config.schedulingProfiles[0].plugins[0]",
            "{pluginRef: z}",
        )
        .unwrap();
        assert_eq!(
            at(
                &d,
                &[
                    "router",
                    "config",
                    "schedulingProfiles",
                    "0",
                    "plugins",
                    "0",
                    "pluginRef"
                ]
            ),
            &Value::from("z")
        );
    }

    #[test]
    fn unknown_keys_name_the_path_and_the_nearest_key() {
        let mut d = doc();
        let e = apply_set(&mut d, "workload.arrivls.rate_per_s", "3").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("`workload.arrivls` does not exist"), "{m}");
        assert!(m.contains("did you mean `arrivals`?"), "{m}");
        assert!(m.contains("existing keys: random, arrivals"), "{m}");
        let e = apply_set(&mut d, "pod[0].count", "3").unwrap_err();
        assert!(e.to_string().contains("did you mean `pods`?"), "{e}");
    }

    #[test]
    fn bad_indices_and_paths_are_errors() {
        let mut d = doc();
        let e = apply_set(&mut d, "pods[5].count", "1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--set pods[5].count: `pods[5]`: index 5 out of range (the sequence has 2 elements)"
        );
        let e = apply_set(&mut d, "seed[0]", "1").unwrap_err();
        assert!(e.to_string().contains("not a sequence"), "{e}");
        let e = apply_set(&mut d, "seed.x", "1").unwrap_err();
        assert!(e.to_string().contains("not a mapping"), "{e}");
        for bad in ["", "a..b", "pods[x].count", "pods[0.count"] {
            assert!(
                matches!(apply_set(&mut d, bad, "1"), Err(SetError::BadPath { .. })),
                "{bad}"
            );
        }
        let e = apply_set(&mut d, "seed", "{a: ").unwrap_err();
        assert!(matches!(e, SetError::BadValue { .. }), "{e}");
    }

    #[test]
    fn aliases_find_role_counts_and_rates() {
        let mut d = doc();
        apply_set(&mut d, "decode", "5").unwrap();
        apply_set(&mut d, "prefill", "1").unwrap();
        apply_set(&mut d, "rate", "40").unwrap();
        assert_eq!(at(&d, &["pods", "1", "count"]), &Value::from(5));
        assert_eq!(at(&d, &["pods", "0", "count"]), &Value::from(1));
        assert_eq!(
            at(&d, &["workload", "arrivals", "rate_per_s"]),
            &Value::from(40)
        );
        let mut staged: Value = serde_yaml_ng::from_str(
            "pods: [{gpu: H100}]\nworkload: {arrivals: {type: stages, stages: [{rate: 2, duration: 5}]}}",
        )
        .unwrap();
        apply_set(&mut staged, "rate", "9").unwrap();
        assert_eq!(
            at(&staged, &["workload", "arrivals", "stages", "0", "rate"]),
            &Value::from(9)
        );
        // A group without a role serves both; there is no decode group.
        let e = apply_set(&mut staged, "decode", "2").unwrap_err();
        assert!(
            e.to_string().contains("no pod group has role: decode"),
            "{e}"
        );
        let mut two: Value = serde_yaml_ng::from_str(
            "workload: {arrivals: {type: stages, stages: [{rate: 2, duration: 5}, {rate: 3, duration: 5}]}}",
        )
        .unwrap();
        let e = apply_set(&mut two, "rate", "9").unwrap_err();
        assert!(e.to_string().contains("2 stages"), "{e}");
        let mut burst: Value =
            serde_yaml_ng::from_str("workload: {arrivals: {type: burst}}").unwrap();
        assert!(apply_set(&mut burst, "rate", "9").is_err());
    }

    fn write_scenario(name: &str, text: &str) -> std::path::PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("set-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const SCENARIO: &str = "\
name: tiny
pods:
  - count: 1
    gpu: H100
    model: Llama-3.1-8B
    vllm: {num_gpu_blocks_override: 100}
step_time: {model: constant, step_us: 1000}
workload:
  random: {input_len: 32, output_len: 4}
  arrivals: {type: constant, rate_per_s: 10}
  num_requests: 5
";

    #[test]
    fn sets_address_the_pod_groups_a_deployment_imports() {
        // seed/kv_aware.yaml has no `pods:`, only `deployment:` (3 decode +
        // 2 prefill); `plan` and `sweep` vary its counts through the aliases.
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed/kv_aware.yaml");
        let r = resolve_with_sets(
            &p,
            &[
                ("decode".into(), "5".into()),
                ("prefill".into(), "1".into()),
            ],
            &Overrides::default(),
        )
        .unwrap();
        let count = |role: &str| r.pod_groups.iter().find(|g| g.role == role).unwrap().count;
        assert_eq!((count("decode"), count("prefill")), (5, 1));
        assert!(matches!(r.router, super::super::RouterSpec::Epp(_)));
        assert!(r.pd.is_some_and(|pd| pd.enabled == Some(true)));
        let unchanged = super::super::resolve::load(&p, &Overrides::default()).unwrap();
        assert_eq!(r.import_warnings, unchanged.import_warnings);
    }

    #[test]
    fn resolve_with_sets_applies_overrides_and_names_file_and_field() {
        let p = write_scenario("tiny.yaml", SCENARIO);
        let r = resolve_with_sets(
            &p,
            &[
                ("pods[0].count".into(), "3".into()),
                ("pods[0].gpu".into(), "H200".into()),
                ("seed".into(), "9".into()),
            ],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(r.pod_groups[0].count, 3);
        assert_eq!(r.pod_groups[0].gpu, "H200");
        assert_eq!(r.seed, 9);
        // A new leaf that is not a field: the schema rejects it with the nearest name.
        let e = resolve_with_sets(
            &p,
            &[("pods[0].vllm.blok_size".into(), "32".into())],
            &Overrides::default(),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("tiny.yaml"), "{m}");
        assert!(m.contains("did you mean `block_size`?"), "{m}");
        assert!(m.contains("(with --set pods[0].vllm.blok_size=32)"), "{m}");
        // A validation error names the field and the line in the file as written.
        let e = resolve_with_sets(
            &p,
            &[("pods[0].gpu".into(), "H1000".into())],
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(e.field, "pods[0].gpu");
        assert_eq!(e.line, Some(4));
        // A missing path is an error naming the file and the key.
        let e = resolve_with_sets(
            &p,
            &[("pods[0].vlm.block_size".into(), "32".into())],
            &Overrides::default(),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with(&p.display().to_string()), "{m}");
        assert!(m.contains("did you mean `vllm`?"), "{m}");
    }
}
