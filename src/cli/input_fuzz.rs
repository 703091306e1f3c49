//! Property: no edit of a shipped scenario makes kvsim panic. Every committed
//! scenario, with a few of its values replaced by hostile ones (zero,
//! negative, huge, NaN, wrong type) or lines dropped, either fails with an
//! error or resolves, builds its cluster and simulates a few requests.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_yaml_ng::Value;

use crate::scenario::resolve::{resolve_text, Overrides};

/// Values a careless or hostile user might write.
const HOSTILE: &[&str] = &[
    "0",
    "-1",
    "-0.5",
    "0.0",
    "1",
    "1e30",
    "1e-300",
    "0.5",
    "4294967296",
    "18446744073709551615",
    "-9223372036854775808",
    ".nan",
    ".inf",
    "-.inf",
    "\"\"",
    "abc",
    "null",
    "true",
    "[]",
    "{}",
];

fn scenario_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"),
        &mut out,
    );
    // Deployment inputs, not scenarios (imported through --modelservice).
    out.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name != "modelservice.yaml" && name != "epp-configmap.yaml"
    });
    out
}

/// One edit of the YAML tree: replace the `leaf`-th scalar (modulo their
/// count, in document order) with `HOSTILE[value]`, or remove it from its
/// mapping or sequence.
#[derive(Clone, Debug)]
struct Edit {
    leaf: usize,
    value: usize,
    remove: bool,
}

fn edit() -> impl Strategy<Value = Edit> {
    (any::<usize>(), 0..HOSTILE.len(), prop::bool::weighted(0.15)).prop_map(
        |(leaf, value, remove)| Edit {
            leaf,
            value,
            remove,
        },
    )
}

/// Number of scalar leaves under `v`.
fn n_leaves(v: &Value) -> usize {
    match v {
        Value::Mapping(m) => m.values().map(n_leaves).sum(),
        Value::Sequence(s) => s.iter().map(n_leaves).sum(),
        Value::Tagged(t) => n_leaves(&t.value),
        _ => 1,
    }
}

/// Applies `e` to the `k`-th leaf under `v`; returns true when done here.
fn apply(v: &mut Value, k: &mut usize, e: &Edit) -> bool {
    match v {
        Value::Mapping(m) => {
            let keys: Vec<Value> = m.keys().cloned().collect();
            for key in keys {
                let child = m.get_mut(&key).unwrap();
                if !matches!(
                    child,
                    Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_)
                ) && *k == 0
                    && e.remove
                {
                    m.remove(&key);
                    return true;
                }
                if apply(child, k, e) {
                    return true;
                }
            }
            false
        }
        Value::Sequence(s) => {
            for i in 0..s.len() {
                if !matches!(
                    s[i],
                    Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_)
                ) && *k == 0
                    && e.remove
                {
                    s.remove(i);
                    return true;
                }
                if apply(&mut s[i], k, e) {
                    return true;
                }
            }
            false
        }
        Value::Tagged(t) => apply(&mut t.value, k, e),
        leaf => {
            if *k == 0 {
                *leaf = serde_yaml_ng::from_str(HOSTILE[e.value]).unwrap();
                return true;
            }
            *k -= 1;
            false
        }
    }
}

/// Tag marking a string that held an embedded YAML manifest (a ConfigMap's
/// `data:` values), opened up so edits reach inside it.
const EMBEDDED: &str = "!kvsim-fuzz-embedded";

/// Replaces multi-line strings that parse as a YAML mapping by the mapping.
fn open_embedded(v: &mut Value) {
    match v {
        Value::Mapping(m) => m.values_mut().for_each(open_embedded),
        Value::Sequence(s) => s.iter_mut().for_each(open_embedded),
        Value::Tagged(t) => open_embedded(&mut t.value),
        Value::String(text) if text.contains('\n') => {
            if let Ok(mut inner @ Value::Mapping(_)) = serde_yaml_ng::from_str::<Value>(text) {
                open_embedded(&mut inner);
                *v = Value::Tagged(Box::new(serde_yaml_ng::value::TaggedValue {
                    tag: serde_yaml_ng::value::Tag::new(EMBEDDED),
                    value: inner,
                }));
            }
        }
        _ => {}
    }
}

/// Turns what [`open_embedded`] opened back into strings.
fn close_embedded(v: &mut Value) {
    match v {
        Value::Mapping(m) => m.values_mut().for_each(close_embedded),
        Value::Sequence(s) => s.iter_mut().for_each(close_embedded),
        Value::Tagged(t) => {
            close_embedded(&mut t.value);
            if t.tag == serde_yaml_ng::value::Tag::new(EMBEDDED) {
                *v = Value::String(serde_yaml_ng::to_string(&t.value).unwrap());
            }
        }
        _ => {}
    }
}

/// `text` with `edits` applied to its YAML tree, embedded manifests included.
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut doc: Value = serde_yaml_ng::from_str(text).unwrap();
    open_embedded(&mut doc);
    for e in edits {
        let n = n_leaves(&doc);
        if n == 0 {
            break;
        }
        apply(&mut doc, &mut (e.leaf % n), e);
    }
    close_embedded(&mut doc);
    serde_yaml_ng::to_string(&doc).unwrap()
}

/// Runs `resolved` on at most four requests within a bounded horizon:
/// enough to drive every component the edited values configure.
fn simulate_briefly(mut resolved: crate::scenario::resolve::Resolved) {
    let w = &mut resolved.workload;
    w.num_requests = Some(w.num_requests.unwrap_or(u64::MAX).min(4));
    resolved.horizon_s = Some(resolved.horizon_s.unwrap_or(f64::MAX).min(600.0));
    let _ = super::run_cmd::simulate(resolved, false, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::test_support::proptest_cases(96)))]
    #[test]
    fn edited_scenarios_error_or_run_but_never_panic(
        which in any::<usize>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let files = scenario_files();
        let path = &files[which % files.len()];
        let text = mutate(&std::fs::read_to_string(path).unwrap(), &edits);
        let base = path.parent().unwrap();
        match resolve_text(path, &text, base, "fuzz", &Overrides::default()) {
            Ok(resolved) => simulate_briefly(resolved),
            // Every rejection names the file and what in it is wrong.
            Err(e) => {
                let msg = e.to_string();
                let file = path.display().to_string();
                prop_assert!(msg.starts_with(&file) && msg.len() > file.len() + 2, "{msg}");
            }
        }
    }

    /// The seed's llm-d deployment (ModelService + BaseConfig ConfigMap with
    /// its embedded EPP and vLLM manifests), edited, through `--modelservice`.
    #[test]
    fn edited_deployments_error_or_run_but_never_panic(
        edit_configmap in any::<bool>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed");
        let dir = std::env::temp_dir().join(format!("kvsim-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = Vec::new();
        for (name, edited) in [("modelservice.yaml", !edit_configmap), ("epp-configmap.yaml", edit_configmap)] {
            let text = std::fs::read_to_string(seed.join(name)).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, if edited { mutate(&text, &edits) } else { text }).unwrap();
            files.push(path);
        }
        let overrides = Overrides {
            deployment: super::import_cmd::deployment_ref(Some(&files[0]), Some(&files[1])).unwrap(),
            ..Overrides::default()
        };
        if let Ok(resolved) = super::import_cmd::load_for_run(None, &overrides) {
            simulate_briefly(resolved);
        }
    }
}
