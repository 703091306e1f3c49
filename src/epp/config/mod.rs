//! Configuration: an `EndpointPickerConfig` YAML (both API groups) or the
//! ENV-era container `env:` list, built into a [`Scheduler`].
//!
//! Entry points: [`load_yaml`], [`from_env`], [`from_env_yaml`],
//! [`default_config`]. All return typed [`ConfigError`]s naming the field.

pub mod build;
pub mod env;
pub mod error;
pub(crate) mod params;
pub mod raw;
pub mod registry;

pub use error::ConfigError;
pub use raw::{EndpointPickerConfig, PluginRef, PluginSpec, ProfileSpec};
pub use registry::PreciseIndexSettings;

use crate::epp::scheduler::Scheduler;
use crate::epp::scorer::precise_prefix::PrecisePrefixConfig;

/// A built configuration.
pub struct LoadedConfig {
    /// The scheduler.
    pub scheduler: Scheduler,
    /// Settings of every precise-prefix scorer, for building the KV-block index.
    pub precise_prefix: Vec<(PrecisePrefixConfig, PreciseIndexSettings)>,
    /// Non-fatal notes (ignored env vars, unsupported legacy plugins).
    pub warnings: Vec<String>,
}

/// Parses YAML text into the document, without building it.
pub fn parse_yaml(src: &str) -> Result<EndpointPickerConfig, ConfigError> {
    serde_yaml_ng::from_str(src).map_err(|e| ConfigError::Yaml {
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })
}

/// Parses and builds an `EndpointPickerConfig`. Empty text means no config
/// at all, which gives [`default_config`].
pub fn load_yaml(src: &str) -> Result<LoadedConfig, ConfigError> {
    if src.trim().is_empty() {
        return default_config();
    }
    let cfg = parse_yaml(src)?;
    build::build(&cfg, Some(src))
}

/// The config used when none is given: one profile with `queue-scorer` 2,
/// `kv-cache-utilization-scorer` 2, `prefix-cache-scorer` 3 and `max-score-picker`.
pub fn default_config() -> Result<LoadedConfig, ConfigError> {
    build::build(&default_document(), None)
}

/// The document behind [`default_config`].
pub fn default_document() -> EndpointPickerConfig {
    let plugin = |t: &str| PluginSpec {
        name: None,
        type_name: t.into(),
        parameters: None,
    };
    let r = |t: &str, w: Option<f64>| PluginRef {
        plugin_ref: t.into(),
        weight: w,
    };
    EndpointPickerConfig {
        api_version: Some(raw::API_VERSIONS[0].into()),
        kind: Some("EndpointPickerConfig".into()),
        plugins: vec![
            plugin("queue-scorer"),
            plugin("kv-cache-utilization-scorer"),
            plugin("prefix-cache-scorer"),
            plugin("max-score-picker"),
        ],
        scheduling_profiles: vec![ProfileSpec {
            name: "default".into(),
            plugins: vec![
                r("queue-scorer", Some(2.0)),
                r("kv-cache-utilization-scorer", Some(2.0)),
                r("prefix-cache-scorer", Some(3.0)),
                r("max-score-picker", None),
            ],
        }],
        ..Default::default()
    }
}

/// Builds the ENV-era configuration from `(name, value)` pairs.
pub fn from_env(vars: &[(String, String)]) -> Result<LoadedConfig, ConfigError> {
    let (doc, warnings) = env::env_to_document(vars)?;
    let mut loaded = build::build(&doc, None)?;
    loaded.warnings = warnings;
    Ok(loaded)
}

/// Builds the ENV-era configuration from a Kubernetes container `env:` list
/// given as YAML (`- name: X` / `value: Y`; `valueFrom` entries are skipped).
pub fn from_env_yaml(src: &str) -> Result<LoadedConfig, ConfigError> {
    from_env(&env::parse_env_list(src)?)
}

#[cfg(test)]
mod tests;
