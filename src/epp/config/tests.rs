//! Config tests: the spec's examples, defaulting rules, env era, bad input.

use super::*;
use crate::epp::scorer::precise_prefix::Normalization;

const PD_EPP_CONFIG: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/epp_config/pd-epp-config.yaml"
));
const PRECISE_GUIDE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/epp_config/precise-guide.yaml"
));
const SEED_ENV: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/epp_config/seed-env.yaml"
));

/// (profile, filters, (scorer, weight), picker).
type Summary = (String, Vec<String>, Vec<(String, f64)>, String);

fn profile_summary(l: &LoadedConfig) -> Vec<Summary> {
    let s = &l.scheduler;
    let names: Vec<String> = s.plugins().iter().map(|p| p.name.to_string()).collect();
    s.profiles()
        .iter()
        .map(|p| {
            (
                p.name().to_string(),
                p.filters().iter().map(|&i| names[i].clone()).collect(),
                p.scorers()
                    .iter()
                    .map(|&(i, w)| (names[i].clone(), w))
                    .collect(),
                names[p.picker()].clone(),
            )
        })
        .collect()
}

fn err(src: &str) -> ConfigError {
    match load_yaml(src) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e,
    }
}

#[test]
fn pd_epp_config_example_parses_to_profiles() {
    let l = load_yaml(PD_EPP_CONFIG).unwrap();
    assert_eq!(l.scheduler.handler_type(), "disagg-profile-handler");
    let s = profile_summary(&l);
    let sc = vec![
        ("prefix-cache-scorer".to_string(), 2.0),
        ("queue-scorer".to_string(), 1.0),
    ];
    assert_eq!(
        s[0],
        (
            "prefill".into(),
            vec!["prefill-filter".into()],
            sc.clone(),
            "max-score-picker".into()
        )
    );
    assert_eq!(
        s[1],
        (
            "decode".into(),
            vec!["decode-filter".into()],
            sc,
            "max-score-picker".into()
        )
    );
    // one shared prefix-cache-scorer instance
    assert_eq!(
        l.scheduler
            .plugins()
            .iter()
            .filter(|p| p.plugin.type_name() == "prefix-cache-scorer")
            .count(),
        1
    );
}

#[test]
fn no_config_defaults_and_single_handler() {
    let l = load_yaml("").unwrap();
    let s = profile_summary(&l);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, "default");
    assert_eq!(
        s[0].2,
        vec![
            ("queue-scorer".into(), 2.0),
            ("kv-cache-utilization-scorer".into(), 2.0),
            ("prefix-cache-scorer".into(), 3.0)
        ]
    );
    assert_eq!(l.scheduler.handler_type(), "single-profile-handler");
}

#[test]
fn defaulting_rules() {
    // no profiles: everything in "default", scorer weight 1, picker added, name = type
    let l = load_yaml("kind: EndpointPickerConfig\nplugins:\n- type: decode-filter\n- type: queue-scorer\n- name: la\n  type: load-aware-scorer\n").unwrap();
    let s = profile_summary(&l);
    assert_eq!(
        s,
        vec![(
            "default".into(),
            vec!["decode-filter".into()],
            vec![("queue-scorer".into(), 1.0), ("la".into(), 1.0)],
            "max-score-picker".into()
        )]
    );
    // profile without a weight and without a picker
    let l = load_yaml("plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: queue-scorer\n").unwrap();
    let s = profile_summary(&l);
    assert_eq!(s[0].2, vec![("queue-scorer".into(), 1.0)]);
    assert_eq!(s[0].3, "max-score-picker");
}

#[test]
fn precise_guide_parameters() {
    let l = load_yaml(PRECISE_GUIDE).unwrap();
    assert_eq!(l.precise_prefix.len(), 1);
    let (cfg, ix) = &l.precise_prefix[0];
    assert_eq!(cfg.block_size_tokens, 64);
    assert_eq!(cfg.speculative_ttl_ns, Some(500_000_000));
    assert_eq!(cfg.normalization, Normalization::MinMax);
    assert_eq!(cfg.tier_weights.cpu, 0.5);
    assert_eq!(
        (ix.size, ix.pod_cache_size, ix.hash_seed.as_str()),
        (1000, 4, "42")
    );
}

#[test]
fn seed_env_config_maps_to_pd_with_precise_scorers() {
    let l = from_env_yaml(SEED_ENV).unwrap();
    assert_eq!(l.scheduler.handler_type(), "pd-profile-handler");
    let s = profile_summary(&l);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].0, "decode");
    assert_eq!(s[0].1, vec!["decode-filter".to_string()]);
    assert_eq!(s[0].2, vec![("precise-prefix-cache-scorer".into(), 1.0)]);
    assert_eq!(s[1].0, "prefill");
    assert_eq!(
        s[1].2,
        vec![("prefill-precise-prefix-cache-scorer".into(), 1.0)]
    );
    assert_eq!(l.precise_prefix.len(), 2);
    assert_eq!(
        l.precise_prefix[0].1.redis_address.as_deref(),
        Some("redis://llm-d-operator-redis-master.llm-d.svc.cluster.local:6379")
    );
}

#[test]
fn env_deployer_defaults_without_pd() {
    let vars: Vec<(String, String)> = [
        ("ENABLE_PREFIX_AWARE_SCORER", "true"),
        ("PREFIX_AWARE_SCORER_WEIGHT", "2"),
        ("ENABLE_LOAD_AWARE_SCORER", "true"),
        ("LOAD_AWARE_SCORER_QUEUE_THRESHOLD", "64"),
        ("ENABLE_SESION_AWARE_SCORER", "true"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let l = from_env(&vars).unwrap();
    let s = profile_summary(&l);
    assert_eq!(
        s[0].2,
        vec![
            ("load-aware-scorer".into(), 1.0),
            ("prefix-cache-scorer".into(), 2.0)
        ]
    );
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("did you mean ENABLE_SESSION_AWARE_SCORER?")),
        "{:?}",
        l.warnings
    );
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// llm-d's config.go: `GetEnvString(..) == "true"` enables, `GetEnvInt`
/// falls back to the default when the value does not parse.
#[test]
fn env_values_parse_as_llm_d_reads_them() {
    let l = from_env(&env(&[
        ("ENABLE_LOAD_AWARE_SCORER", "True"),
        ("ENABLE_PREFIX_AWARE_SCORER", "true"),
        ("PREFIX_AWARE_SCORER_WEIGHT", "2.5"),
        ("PD_ENABLED", "1"),
    ]))
    .unwrap();
    let s = profile_summary(&l);
    assert_eq!(s.len(), 1, "PD_ENABLED=1 is not true: {s:?}");
    assert_eq!(s[0].2, vec![("prefix-cache-scorer".into(), 1.0)]);
    let warned = |needle: &str| l.warnings.iter().any(|w| w.contains(needle));
    assert!(
        warned("ENABLE_LOAD_AWARE_SCORER=True: llm-d enables only"),
        "{:?}",
        l.warnings
    );
    assert!(
        warned("PD_ENABLED=1: llm-d enables only"),
        "{:?}",
        l.warnings
    );
    assert!(warned(
        "PREFIX_AWARE_SCORER_WEIGHT=2.5: not an integer; llm-d uses the default 1"
    ));
    let bad = env(&[("PD_PROMPT_LEN_THRESHOLD", "-3"), ("PD_ENABLED", "true")]);
    assert!(matches!(from_env(&bad), Err(ConfigError::EnvValue { .. })));
}

#[test]
fn unknown_env_vars_warn_with_the_nearest_name() {
    let l = from_env(&env(&[
        ("ENABLE_KVCACHE_AWARE_SCORER", "true"),
        ("KVCACHE_AWARE_SCORER_WEIGTH", "3"),
        ("PD_ENABLD", "true"),
        ("QUEUE_SCORE_WEIGHT", "1"),
        ("HF_TOKEN", "x"),
    ]))
    .unwrap();
    let w = l.warnings.join("\n");
    assert!(w.contains("KVCACHE_AWARE_SCORER_WEIGTH: not a variable the llm-d scheduler reads; ignored; did you mean KVCACHE_AWARE_SCORER_WEIGHT?"), "{w}");
    assert!(w.contains("PD_ENABLD: not a variable the llm-d scheduler reads; ignored; did you mean PD_ENABLED?"), "{w}");
    assert!(
        w.contains("QUEUE_SCORE_WEIGHT: a variable of GIE's own EPP"),
        "{w}"
    );
    assert!(!w.contains("HF_TOKEN"), "{w}");
}

#[test]
fn unknown_plugin_type_suggests_and_gives_line() {
    let e = err("plugins:\n- type: queue-scorer\n- type: prefix-cache-scorrer\n");
    match &e {
        ConfigError::UnknownPluginType {
            index,
            suggestion,
            line,
            ..
        } => {
            assert_eq!(*index, 1);
            assert_eq!(suggestion.as_deref(), Some("prefix-cache-scorer"));
            assert_eq!(*line, Some(3));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .contains("did you mean \"prefix-cache-scorer\""),
        "{e}"
    );
}

#[test]
fn missing_plugin_ref_names_profile() {
    let e = err("plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: queue-scorrer\n");
    match &e {
        ConfigError::MissingPluginRef {
            profile,
            plugin_ref,
            suggestion,
            line,
        } => {
            assert_eq!(
                (profile.as_str(), plugin_ref.as_str()),
                ("p", "queue-scorrer")
            );
            assert_eq!(suggestion.as_deref(), Some("queue-scorer"));
            assert_eq!(*line, Some(6));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn negative_weight_and_bad_parameters() {
    let e = err("plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: p\n  plugins:\n  - pluginRef: queue-scorer\n    weight: -1\n");
    assert!(
        matches!(e, ConfigError::BadWeight { weight, .. } if weight == -1.0),
        "{e:?}"
    );
    assert!(e.to_string().contains("weight"));
    let e = err("plugins:\n- type: load-aware-scorer\n  parameters: {threshold: lots}\n");
    assert!(
        matches!(&e, ConfigError::BadParameter { param, .. } if param == "threshold"),
        "{e:?}"
    );
    let e = err("plugins:\n- type: prefix-cache-scorer\n  parameters: {maxPrefixBlocks: 3}\n");
    assert!(
        matches!(&e, ConfigError::UnknownParameter { suggestion: Some(s), .. } if s == "maxPrefixBlocksToMatch"),
        "{e:?}"
    );
    let e = err("plugins:\n- type: precise-prefix-cache-scorer\n  parameters: {indexerConfig: {kvBlockIndexConfig: {inMemoryConfig: {sise: 3}}}}\n");
    assert!(
        matches!(&e, ConfigError::UnknownParameter { plugin, param, .. } if plugin.ends_with("inMemoryConfig") && param == "sise"),
        "{e:?}"
    );
}

#[test]
fn structural_errors() {
    assert!(matches!(
        err("apiVersion: llm-d.ai/v1alpha2\n"),
        ConfigError::ApiVersion {
            suggestion: Some(_),
            ..
        }
    ));
    assert!(matches!(err("kind: Other\n"), ConfigError::Kind { .. }));
    assert!(matches!(
        err("plugins:\n- type: x\n  nmae: y\n"),
        ConfigError::Yaml { line: Some(_), .. }
    ));
    assert!(matches!(
        err("plugins:\n- type: queue-scorer\n- type: queue-scorer\n"),
        ConfigError::DuplicatePluginName { .. }
    ));
    let two = "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: a\n  plugins: [{pluginRef: queue-scorer}]\n- name: b\n  plugins: [{pluginRef: queue-scorer}]\n";
    assert!(matches!(err(two), ConfigError::Handler { .. }));
    let dec = "plugins:\n- type: disagg-profile-handler\n  parameters: {deciders: {prefill: prefix-based-pd-decidr}}\n- type: prefix-based-pd-decider\nschedulingProfiles:\n- name: decode\n  plugins: []\n- name: prefill\n  plugins: []\n";
    assert!(
        matches!(
            err(dec),
            ConfigError::MissingDecider {
                suggestion: Some(_),
                ..
            }
        ),
        "{:?}",
        err(dec)
    );
}
