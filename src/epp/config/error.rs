//! Typed configuration errors. Each names the field and value at fault and,
//! for unknown names, the nearest valid one.

use std::fmt;

/// Nearest of `valid` to `got` (Jaro-Winkler ≥ 0.7), for "did you mean".
pub fn suggest(got: &str, valid: &[&str]) -> Option<String> {
    valid
        .iter()
        .map(|v| (strsim::jaro_winkler(got, v), *v))
        .filter(|(s, _)| *s >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v.to_string())
}

/// " (did you mean \"x\"?)" or "".
pub(crate) struct DidYouMean<'a>(pub &'a Option<String>);

impl fmt::Display for DidYouMean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "; did you mean \"{s}\"?"),
            None => Ok(()),
        }
    }
}

/// " at line N" or "".
pub(crate) struct AtLine(pub Option<usize>);

impl fmt::Display for AtLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => write!(f, " (line {l})"),
            None => Ok(()),
        }
    }
}

/// A broken `EndpointPickerConfig` or env-var configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The YAML does not parse or does not have the config's shape.
    #[error("invalid EndpointPickerConfig{}: {message}", AtLine(*line))]
    Yaml {
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// Parser message.
        message: String,
    },
    /// `apiVersion` is not one of the accepted groups.
    #[error("field \"apiVersion\": unknown value \"{value}\" (valid: llm-d.ai/v1alpha1, inference.networking.x-k8s.io/v1alpha1){}", DidYouMean(suggestion))]
    ApiVersion {
        /// The value given.
        value: String,
        /// Nearest valid value.
        suggestion: Option<String>,
    },
    /// `kind` is not `EndpointPickerConfig`.
    #[error("field \"kind\": expected \"EndpointPickerConfig\", got \"{value}\"")]
    Kind {
        /// The value given.
        value: String,
    },
    /// `plugins[].type` names no known plugin.
    #[error("plugins[{index}].type{}: unknown plugin type \"{value}\"{}\n  valid types: {}", AtLine(*line), DidYouMean(suggestion), valid.join(", "))]
    UnknownPluginType {
        /// Position in `plugins`.
        index: usize,
        /// The type given.
        value: String,
        /// Nearest valid type.
        suggestion: Option<String>,
        /// Every valid type.
        valid: Vec<&'static str>,
        /// Line of the offending entry, when found.
        line: Option<usize>,
    },
    /// Two plugins share a name.
    #[error("plugins[{index}].name: duplicate plugin name \"{name}\"")]
    DuplicatePluginName {
        /// Position in `plugins`.
        index: usize,
        /// The name.
        name: String,
    },
    /// A plugin parameter is not known for that plugin type.
    #[error("plugin \"{plugin}\": unknown parameter \"{param}\"{}\n  valid parameters: {}", DidYouMean(suggestion), valid.join(", "))]
    UnknownParameter {
        /// Plugin name (with the path of nested objects).
        plugin: String,
        /// The parameter.
        param: String,
        /// Nearest valid parameter.
        suggestion: Option<String>,
        /// Valid parameters at that level.
        valid: Vec<&'static str>,
    },
    /// A plugin parameter has the wrong type or an invalid value.
    #[error("plugin \"{plugin}\": parameter \"{param}\": expected {expected}, got {got}")]
    BadParameter {
        /// Plugin name.
        plugin: String,
        /// The parameter.
        param: String,
        /// What was expected.
        expected: String,
        /// What was given.
        got: String,
    },
    /// A profile references a plugin that is not defined.
    #[error("schedulingProfiles[\"{profile}\"].plugins: pluginRef \"{plugin_ref}\" names no plugin{}{}", AtLine(*line), DidYouMean(suggestion))]
    MissingPluginRef {
        /// The profile.
        profile: String,
        /// The reference.
        plugin_ref: String,
        /// Nearest defined plugin name.
        suggestion: Option<String>,
        /// Line of the reference, when found.
        line: Option<usize>,
    },
    /// A scorer weight is negative or not finite.
    #[error("schedulingProfiles[\"{profile}\"].plugins[\"{plugin_ref}\"].weight: must be a non-negative number, got {weight}")]
    BadWeight {
        /// The profile.
        profile: String,
        /// The reference.
        plugin_ref: String,
        /// The weight.
        weight: f64,
    },
    /// A profile references a plugin that cannot be used in a profile.
    #[error("schedulingProfiles[\"{profile}\"].plugins: \"{plugin_ref}\" is a {kind}, not a filter, scorer or picker")]
    NotProfilePlugin {
        /// The profile.
        profile: String,
        /// The reference.
        plugin_ref: String,
        /// What it is.
        kind: &'static str,
    },
    /// A profile has more than one picker.
    #[error("schedulingProfiles[\"{profile}\"]: more than one picker (\"{first}\", \"{second}\")")]
    TwoPickers {
        /// The profile.
        profile: String,
        /// First picker.
        first: String,
        /// Second picker.
        second: String,
    },
    /// Two profiles share a name.
    #[error("schedulingProfiles: duplicate profile name \"{name}\"")]
    DuplicateProfile {
        /// The name.
        name: String,
    },
    /// The profile handler is missing, doubled or inconsistent with the profiles.
    #[error("profile handler: {message}")]
    Handler {
        /// What is wrong.
        message: String,
    },
    /// A decider named by a profile handler does not exist.
    #[error("plugin \"{handler}\": parameter \"{param}\": decider \"{name}\" is not a defined decider plugin{}", DidYouMean(suggestion))]
    MissingDecider {
        /// The handler plugin.
        handler: String,
        /// The parameter naming the decider.
        param: String,
        /// The decider name.
        name: String,
        /// Nearest decider name.
        suggestion: Option<String>,
    },
    /// An environment variable has a value of the wrong form.
    #[error("env {name}: expected {expected}, got \"{value}\"")]
    EnvValue {
        /// Variable name.
        name: String,
        /// The value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_nearest() {
        let valid = [
            "queue-scorer",
            "prefix-cache-scorer",
            "kv-cache-utilization-scorer",
        ];
        assert_eq!(
            suggest("prefix-cache-scorrer", &valid).as_deref(),
            Some("prefix-cache-scorer")
        );
        assert_eq!(suggest("zzzz", &valid), None);
    }
}
