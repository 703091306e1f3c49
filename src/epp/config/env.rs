//! ENV-era configuration (inference-scheduler 0.0.x–v0.1, May–Jun 2025):
//! a container `env:` list mapped to the equivalent plugin/profile document.
//!
//! For each scorer `NAME`: `ENABLE_<NAME>`, `<NAME>_WEIGHT` (default 1) for
//! the decode (or only) profile, `PREFILL_ENABLE_<NAME>`, `PREFILL_<NAME>_WEIGHT`
//! for the prefill profile, and tag 0.0.2's `DECODE_ENABLE_<NAME>` /
//! `DECODE_<NAME>_WEIGHT`. `PD_ENABLED` adds `decode`/`prefill` profiles with
//! role filters and a `pd-profile-handler` with `threshold = PD_PROMPT_LEN_THRESHOLD`
//! (100 characters). Decode and prefill get separate scorer instances (the
//! prefill ones are named `prefill-<type>`), as the ENV era ran two schedulers.
//!
//! Values are read as llm-d's `pkg/config` reads them: a switch is on only
//! for the exact string `true`, and an integer that does not parse is the
//! default (both warned). Variables the scheduler does not read are warned
//! with the nearest known name; GIE's own EPP variables are named as such.
//!
//! `PREFIX_AWARE_SCORER` without any `PREFIX_CACHE_*` variable stands for
//! llm-d's own ≤ v0.1 prefix store; it is approximated by the GIE-style
//! prefix scorer with 256-character blocks and a 500k-block LRU per pod.

use super::error::{suggest, ConfigError};
use super::raw::{EndpointPickerConfig, PluginRef, PluginSpec, ProfileSpec, API_VERSIONS};
use serde_yaml_ng::{Mapping, Value};

/// Scorer `NAME`s of the ENV era.
pub const ENV_SCORERS: &[&str] = &[
    "KVCACHE_AWARE_SCORER",
    "LOAD_AWARE_SCORER",
    "SESSION_AWARE_SCORER",
    "PREFIX_AWARE_SCORER",
    "GIE_KVCACHE_UTILIZATION_SCORER",
    "GIE_QUEUE_SCORER",
    "GIE_PREFIX_SCORER",
];

/// v0.1 GIE filter wrappers (accepted, not modelled).
const ENV_FILTERS: &[&str] = &[
    "GIE_LEAST_KVCACHE_FILTER",
    "GIE_LEAST_QUEUE_FILTER",
    "GIE_LOW_QUEUE_FILTER",
    "GIE_LORA_AFFINITY_FILTER",
    "GIE_SHEDDABLE_CAPACITY_FILTER",
];

/// Parses a container `env:` list (a YAML sequence, or a mapping with an
/// `env` key). Entries without `value` (e.g. `valueFrom`) are skipped;
/// scalar values of any type are taken as their text.
pub fn parse_env_list(src: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let v: Value = serde_yaml_ng::from_str(src).map_err(|e| ConfigError::Yaml {
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    let list = match &v {
        Value::Sequence(s) => s,
        Value::Mapping(m) => match m.get("env") {
            Some(Value::Sequence(s)) => s,
            _ => {
                return Err(ConfigError::Yaml {
                    line: None,
                    message: "expected an `env:` list".into(),
                })
            }
        },
        _ => {
            return Err(ConfigError::Yaml {
                line: None,
                message: "expected a list of {name, value}".into(),
            })
        }
    };
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Some(m) = item.as_mapping() else {
            return Err(ConfigError::Yaml {
                line: None,
                message: format!("env[{i}]: expected a mapping with name and value"),
            });
        };
        let Some(name) = m.get("name").and_then(Value::as_str) else {
            return Err(ConfigError::Yaml {
                line: None,
                message: format!("env[{i}]: missing field \"name\""),
            });
        };
        let value = match m.get("value") {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(ConfigError::EnvValue {
                    name: name.into(),
                    value: "<non-scalar>".into(),
                    expected: "a scalar value",
                })
            }
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

struct Env<'a>(&'a [(String, String)]);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// llm-d's `GetEnvString(name, "false") == "true"`: only the exact
    /// string enables; anything else is false (warned, as it is surely meant
    /// otherwise).
    fn enabled(&self, name: &str, warnings: &mut Vec<String>) -> Option<bool> {
        let v = self.get(name)?;
        if v != "true" && v != "false" {
            warnings.push(format!(
                "{name}={v}: llm-d enables only on the exact string \"true\"; taken as false"
            ));
        }
        Some(v == "true")
    }

    /// llm-d's `GetEnvInt(name, default)`: `strconv.Atoi`, and the default
    /// when the value does not parse (warned).
    fn int(&self, name: &str, default: i64, warnings: &mut Vec<String>) -> Option<i64> {
        let v = self.get(name)?;
        Some(v.parse().unwrap_or_else(|_| {
            warnings.push(format!(
                "{name}={v}: not an integer; llm-d uses the default {default}"
            ));
            default
        }))
    }

    /// As [`Env::int`], for counts and sizes: negative is an error.
    fn count(
        &self,
        name: &str,
        default: u64,
        warnings: &mut Vec<String>,
    ) -> Result<Option<u64>, ConfigError> {
        match self.int(name, default as i64, warnings) {
            None => Ok(None),
            Some(n) => u64::try_from(n)
                .map(Some)
                .map_err(|_| ConfigError::EnvValue {
                    name: name.into(),
                    value: n.to_string(),
                    expected: "a non-negative integer",
                }),
        }
    }
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::String(k.into()), v);
    }
    Value::Mapping(m)
}

fn num(v: u64) -> Value {
    Value::Number(v.into())
}

/// (plugin type, parameters) for scorer `NAME` in a profile (`prefill` selects
/// the `PREFILL_` Redis address).
fn scorer_plugin(
    env: &Env<'_>,
    name: &str,
    prefill: bool,
    warnings: &mut Vec<String>,
) -> Result<(&'static str, Option<Value>), ConfigError> {
    let legacy_prefix = |block_chars: u64, lru: u64| {
        map(vec![
            ("hashBlockSize", num(block_chars)),
            ("lruCapacityPerServer", num(lru)),
            ("autoTune", Value::Bool(false)),
            ("hashPartialTail", Value::Bool(false)),
            (
                "indexTargets",
                Value::String(if prefill { "prefill" } else { "primary" }.into()),
            ),
        ])
    };
    Ok(match name {
        "KVCACHE_AWARE_SCORER" => {
            let var = if prefill {
                "PREFILL_KVCACHE_INDEXER_REDIS_ADDR"
            } else {
                "KVCACHE_INDEXER_REDIS_ADDR"
            };
            let params = env.get(var).map(|addr| {
                map(vec![(
                    "indexerConfig",
                    map(vec![(
                        "kvBlockIndexConfig",
                        map(vec![(
                            "redisConfig",
                            map(vec![("address", Value::String(addr.into()))]),
                        )]),
                    )]),
                )])
            });
            ("precise-prefix-cache-scorer", params)
        }
        "LOAD_AWARE_SCORER" => {
            let t = env
                .count("LOAD_AWARE_SCORER_QUEUE_THRESHOLD", 128, warnings)?
                .unwrap_or(128);
            ("load-aware-scorer", Some(map(vec![("threshold", num(t))])))
        }
        "SESSION_AWARE_SCORER" => ("session-affinity-scorer", None),
        "PREFIX_AWARE_SCORER" => {
            let block = env.count("PREFIX_CACHE_HASH_BLOCK_SIZE", 64, warnings)?;
            let max = env.count("PREFIX_CACHE_MAX_PREFIX_BLOCKS", 256, warnings)?;
            let lru = env.count("PREFIX_CACHE_LRU_CAPACITY_PER_SERVER", 31_250, warnings)?;
            let mut p = if block.is_none() && max.is_none() && lru.is_none() {
                warnings.push("PREFIX_AWARE_SCORER: llm-d's own v0.1 prefix store is approximated by prefix-cache-scorer (256-char blocks, 500k-block LRU per pod, min-max normalised)".into());
                let mut p = legacy_prefix(LEGACY_BLOCK_CHARS, 500_000);
                if let Value::Mapping(m) = &mut p {
                    m.insert("normalization".into(), "min-max".into());
                }
                p
            } else {
                legacy_prefix(block.unwrap_or(64), lru.unwrap_or(31_250))
            };
            if let (Some(m), Value::Mapping(pm)) = (max, &mut p) {
                pm.insert(Value::String("maxPrefixBlocksToMatch".into()), num(m));
            }
            ("prefix-cache-scorer", Some(p))
        }
        "GIE_KVCACHE_UTILIZATION_SCORER" => ("kv-cache-utilization-scorer", None),
        "GIE_QUEUE_SCORER" => ("queue-scorer", None),
        "GIE_PREFIX_SCORER" => ("prefix-cache-scorer", Some(legacy_prefix(64, 31_250))),
        _ => unreachable_name(name),
    })
}

fn unreachable_name(name: &str) -> (&'static str, Option<Value>) {
    // Only called with names from ENV_SCORERS; keep a harmless fallback.
    debug_assert!(false, "unknown env scorer {name}");
    ("queue-scorer", None)
}

/// Block size of llm-d's own ≤ v0.1 prefix store, in characters.
const LEGACY_BLOCK_CHARS: u64 = 256;

/// Variables read besides the per-scorer `ENABLE_`/`_WEIGHT` families.
const PLAIN_VARS: &[&str] = &[
    "PD_ENABLED",
    "PD_PROMPT_LEN_THRESHOLD",
    "KVCACHE_INDEXER_REDIS_ADDR",
    "PREFILL_KVCACHE_INDEXER_REDIS_ADDR",
    "LOAD_AWARE_SCORER_QUEUE_THRESHOLD",
    "PREFIX_CACHE_HASH_BLOCK_SIZE",
    "PREFIX_CACHE_MAX_PREFIX_BLOCKS",
    "PREFIX_CACHE_LRU_CAPACITY_PER_SERVER",
];

/// Read upstream but irrelevant to routing decisions.
const IRRELEVANT_VARS: &[&str] = &["HF_TOKEN"];

/// GIE's own EPP variables (v0.3–v0.5 filter tree, v0.4 scorers): a
/// different scheduler, not modelled.
const GIE_VARS: &[&str] = &[
    "KV_CACHE_THRESHOLD",
    "QUEUE_THRESHOLD_CRITICAL",
    "QUEUING_THRESHOLD_LORA",
    "LORA_AFFINITY_THRESHOLD",
    "ENABLE_PREFIX_CACHE_SCHEDULING",
    "QUEUE_SCORE_WEIGHT",
    "KV_CACHE_SCORE_WEIGHT",
    "PREFIX_CACHE_SCORE_WEIGHT",
    "PREFIX_CACHE_LRU_CAPACITY",
];

/// Every variable the ENV-era mapping reads or knows to be irrelevant.
pub fn known_vars() -> Vec<String> {
    let mut v: Vec<String> = PLAIN_VARS
        .iter()
        .chain(IRRELEVANT_VARS)
        .map(|s| s.to_string())
        .collect();
    for n in ENV_SCORERS {
        for p in ["", "PREFILL_", "DECODE_"] {
            v.push(format!("{p}ENABLE_{n}"));
            v.push(format!("{p}{n}_WEIGHT"));
        }
    }
    v.extend(ENV_FILTERS.iter().map(|f| format!("ENABLE_{f}")));
    v
}

/// Whether the ENV-era mapping reads `name` (or knows it to be irrelevant).
pub fn is_known_var(name: &str) -> bool {
    known_vars().iter().any(|k| k == name)
}

/// Maps env vars to an `EndpointPickerConfig` document plus warnings.
pub fn env_to_document(
    vars: &[(String, String)],
) -> Result<(EndpointPickerConfig, Vec<String>), ConfigError> {
    let env = Env(vars);
    let mut warnings = Vec::new();
    let pd = env.enabled("PD_ENABLED", &mut warnings).unwrap_or(false);
    let mut plugins: Vec<PluginSpec> = Vec::new();
    let mut profiles: Vec<ProfileSpec> = Vec::new();
    let stages: &[(&str, bool)] = if pd {
        &[("decode", false), ("prefill", true)]
    } else {
        &[("default", false)]
    };
    for &(profile, prefill) in stages {
        let mut refs: Vec<PluginRef> = Vec::new();
        if pd {
            let f = if prefill {
                "prefill-filter"
            } else {
                "decode-filter"
            };
            plugins.push(PluginSpec {
                name: None,
                type_name: f.into(),
                parameters: None,
            });
            refs.push(PluginRef {
                plugin_ref: f.into(),
                weight: None,
            });
        }
        for name in ENV_SCORERS {
            let (enable, weight) = if prefill {
                (
                    env.enabled(&format!("PREFILL_ENABLE_{name}"), &mut warnings),
                    env.int(&format!("PREFILL_{name}_WEIGHT"), 1, &mut warnings),
                )
            } else {
                let e = env
                    .enabled(&format!("ENABLE_{name}"), &mut warnings)
                    .or(env.enabled(&format!("DECODE_ENABLE_{name}"), &mut warnings));
                let w = env
                    .int(&format!("{name}_WEIGHT"), 1, &mut warnings)
                    .or(env.int(&format!("DECODE_{name}_WEIGHT"), 1, &mut warnings));
                (e, w)
            };
            if enable != Some(true) {
                continue;
            }
            let (type_name, parameters) = scorer_plugin(&env, name, prefill, &mut warnings)?;
            let instance = if prefill {
                format!("prefill-{type_name}")
            } else {
                type_name.to_string()
            };
            plugins.push(PluginSpec {
                name: Some(instance.clone()),
                type_name: type_name.into(),
                parameters,
            });
            refs.push(PluginRef {
                plugin_ref: instance,
                weight: Some(weight.unwrap_or(1) as f64),
            });
        }
        refs.push(PluginRef {
            plugin_ref: "max-score-picker".into(),
            weight: None,
        });
        profiles.push(ProfileSpec {
            name: profile.into(),
            plugins: refs,
        });
    }
    plugins.push(PluginSpec {
        name: None,
        type_name: "max-score-picker".into(),
        parameters: None,
    });
    if pd {
        let threshold = env
            .count("PD_PROMPT_LEN_THRESHOLD", 100, &mut warnings)?
            .unwrap_or(100);
        // The handler counts cached characters in the prefix scorer's blocks.
        let legacy_store = plugins.iter().any(|p| {
            p.parameters
                .as_ref()
                .and_then(|m| m.get("hashBlockSize"))
                .and_then(Value::as_u64)
                == Some(LEGACY_BLOCK_CHARS)
        });
        let block = env
            .count("PREFIX_CACHE_HASH_BLOCK_SIZE", 64, &mut warnings)?
            .unwrap_or(if legacy_store { LEGACY_BLOCK_CHARS } else { 64 });
        plugins.push(PluginSpec {
            name: None,
            type_name: "pd-profile-handler".into(),
            parameters: Some(map(vec![
                ("threshold", num(threshold)),
                ("hashBlockSize", num(block)),
            ])),
        });
    }
    for (n, _) in vars {
        if let Some(f) = ENV_FILTERS.iter().find(|f| n == &format!("ENABLE_{f}")) {
            if env.enabled(n, &mut warnings) == Some(true) {
                warnings.push(format!(
                    "{n}: the GIE filter {f} is not modelled and is ignored"
                ));
            }
            continue;
        }
        if is_known_var(n) {
            continue;
        }
        let what = if GIE_VARS.contains(&n.as_str()) {
            "a variable of GIE's own EPP, not of llm-d's ENV-era scheduler; ignored".to_string()
        } else {
            let known = known_vars();
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let hint = suggest(n, &known)
                .map(|s| format!("; did you mean {s}?"))
                .unwrap_or_default();
            format!("not a variable the llm-d scheduler reads; ignored{hint}")
        };
        warnings.push(format!("{n}: {what}"));
    }
    // A variable read twice (e.g. PREFIX_CACHE_HASH_BLOCK_SIZE) warns once.
    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    let doc = EndpointPickerConfig {
        api_version: Some(API_VERSIONS[0].into()),
        kind: Some("EndpointPickerConfig".into()),
        plugins,
        scheduling_profiles: profiles,
        ..Default::default()
    };
    Ok((doc, warnings))
}
