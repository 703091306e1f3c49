//! The `EndpointPickerConfig` document as users write it (serde schema).
//!
//! This is a compatibility promise: field names follow upstream
//! `apix/config/v1alpha1/endpointpickerconfig_types.go`.

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

/// Accepted `apiVersion` values (first is current).
pub const API_VERSIONS: &[&str] = &[
    "llm-d.ai/v1alpha1",
    "inference.networking.x-k8s.io/v1alpha1",
];

/// The whole config document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointPickerConfig {
    /// `llm-d.ai/v1alpha1` or the deprecated `inference.networking.x-k8s.io/v1alpha1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `EndpointPickerConfig`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Plugin instances.
    #[serde(default)]
    pub plugins: Vec<PluginSpec>,
    /// Profiles referencing the plugins.
    #[serde(default)]
    pub scheduling_profiles: Vec<ProfileSpec>,
    /// Accepted, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_gates: Option<Value>,
    /// Accepted, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_layer: Option<Value>,
    /// HEAD's utilization saturation detector (`queueDepthThreshold`,
    /// `kvCacheUtilThreshold`, `metricsStalenessThreshold`): a pool filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturation_detector: Option<Value>,
    /// Accepted, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_control: Option<Value>,
    /// Accepted, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<Value>,
}

/// `plugins[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Instance name; defaults to `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Plugin type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Type-specific parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

impl PluginSpec {
    /// The instance name (`name`, defaulting to `type`).
    pub fn instance_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.type_name)
    }
}

/// `schedulingProfiles[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Profile name.
    pub name: String,
    /// Plugin references.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
}

/// `schedulingProfiles[].plugins[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginRef {
    /// Instance name of the plugin.
    pub plugin_ref: String,
    /// Scorer weight (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}
