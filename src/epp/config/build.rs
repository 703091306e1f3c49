//! From the parsed document to a [`Scheduler`], applying upstream's
//! defaulting rules (`pkg/epp/config/loader/defaults.go`):
//!
//! - `name` defaults to `type`;
//! - a scorer reference without a weight gets 1.0;
//! - one profile and no profile handler ⇒ `single-profile-handler`;
//! - a profile without a picker gets `max-score-picker`;
//! - no profiles ⇒ every filter, scorer and picker goes into one profile `default`;
//! - no config at all ⇒ queue 2, kv-cache-utilization 2, prefix 3 ([`super::default_config`]).

use super::error::{suggest, ConfigError};
use super::raw::{EndpointPickerConfig, API_VERSIONS};
use super::registry::{self, Built, HandlerSpec, PreciseIndexSettings};
use super::LoadedConfig;
use crate::epp::handler::disagg::{DisaggProfileHandler, PdDecider};
use crate::epp::handler::single::SingleProfileHandler;
use crate::epp::handler::ProfileHandler;
use crate::epp::picker::max_score::MaxScorePicker;
use crate::epp::plugin::Plugin;
use crate::epp::profile::SchedulingProfile;
use crate::epp::scheduler::{NamedPlugin, Scheduler};
use crate::epp::scorer::precise_prefix::PrecisePrefixConfig;
use std::sync::Arc;

/// 1-based line of the first line of `src` containing every needle.
pub(crate) fn find_line(src: Option<&str>, needles: &[&str]) -> Option<usize> {
    src?.lines()
        .position(|l| needles.iter().all(|n| l.contains(n)))
        .map(|i| i + 1)
}

/// (plugin ref, weight) of a profile.
type RefSpec = (String, Option<f64>);

enum Kind {
    Filter,
    Scorer,
    Picker,
    Other,
}

fn kind_of(p: &mut dyn Plugin) -> Kind {
    if p.as_picker().is_some() {
        Kind::Picker
    } else if p.as_filter().is_some() {
        Kind::Filter
    } else if p.as_scorer().is_some() {
        Kind::Scorer
    } else {
        Kind::Other
    }
}

/// Builds a scheduler from `cfg`; `src` (the YAML text) is only used to
/// report line numbers.
pub fn build(cfg: &EndpointPickerConfig, src: Option<&str>) -> Result<LoadedConfig, ConfigError> {
    if let Some(v) = &cfg.api_version {
        if !API_VERSIONS.contains(&v.as_str()) {
            return Err(ConfigError::ApiVersion {
                value: v.clone(),
                suggestion: suggest(v, API_VERSIONS),
            });
        }
    }
    if let Some(k) = &cfg.kind {
        if k != "EndpointPickerConfig" {
            return Err(ConfigError::Kind { value: k.clone() });
        }
    }
    let mut plugins: Vec<NamedPlugin> = Vec::new();
    let mut precise: Vec<(PrecisePrefixConfig, PreciseIndexSettings)> = Vec::new();
    let mut handlers: Vec<(String, HandlerSpec)> = Vec::new();
    let mut deciders: Vec<(String, PdDecider)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, spec) in cfg.plugins.iter().enumerate() {
        let name = spec.instance_name().to_string();
        if names.contains(&name) {
            return Err(ConfigError::DuplicatePluginName { index: i, name });
        }
        names.push(name.clone());
        let built = registry::build(&spec.type_name, &name, spec.parameters.as_ref())?;
        match built {
            None => {
                let valid = registry::all_types();
                return Err(ConfigError::UnknownPluginType {
                    index: i,
                    value: spec.type_name.clone(),
                    suggestion: suggest(&spec.type_name, &valid),
                    valid,
                    line: find_line(src, &["type:", &spec.type_name]),
                });
            }
            Some(Built::Plugin(p, pc)) => {
                precise.extend(pc);
                plugins.push(NamedPlugin {
                    name: Arc::from(name.as_str()),
                    plugin: p,
                });
            }
            Some(Built::Handler(h)) => handlers.push((name, h)),
            Some(Built::Decider(d)) => deciders.push((name, d)),
        }
    }
    // HEAD's utilization saturation detector filters the pool before any
    // profile runs: the same as a saturation filter first in every profile.
    let pool_filter = match &cfg.saturation_detector {
        None => None,
        Some(v) => match registry::build("saturation-filter", "saturationDetector", Some(v))? {
            Some(Built::Plugin(p, _)) => {
                plugins.push(NamedPlugin {
                    name: Arc::from("saturationDetector"),
                    plugin: p,
                });
                Some(plugins.len() - 1)
            }
            _ => unreachable!("saturation-filter is a filter"),
        },
    };
    let mut profiles = build_profiles(cfg, src, &mut plugins, &names, &handlers, &deciders)?;
    if let Some(i) = pool_filter {
        for p in &mut profiles {
            p.prepend_filter(i);
        }
    }
    let handler = build_handler(&handlers, &deciders, &plugins, &profiles)?;
    handler
        .validate(&profiles)
        .map_err(|message| ConfigError::Handler { message })?;
    Ok(LoadedConfig {
        scheduler: Scheduler::from_parts(plugins, profiles, handler),
        precise_prefix: precise,
        warnings: Vec::new(),
    })
}

fn build_profiles(
    cfg: &EndpointPickerConfig,
    src: Option<&str>,
    plugins: &mut Vec<NamedPlugin>,
    all_names: &[String],
    handlers: &[(String, HandlerSpec)],
    deciders: &[(String, PdDecider)],
) -> Result<Vec<SchedulingProfile>, ConfigError> {
    let specs: Vec<(String, Vec<RefSpec>)> = if cfg.scheduling_profiles.is_empty() {
        let refs = plugins.iter().map(|p| (p.name.to_string(), None)).collect();
        vec![("default".to_string(), refs)]
    } else {
        cfg.scheduling_profiles
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.plugins
                        .iter()
                        .map(|r| (r.plugin_ref.clone(), r.weight))
                        .collect(),
                )
            })
            .collect()
    };
    let mut out: Vec<SchedulingProfile> = Vec::new();
    for (pname, refs) in specs {
        if out.iter().any(|p| p.name() == pname) {
            return Err(ConfigError::DuplicateProfile { name: pname });
        }
        let (mut filters, mut scorers, mut picker) = (Vec::new(), Vec::new(), None::<usize>);
        for (r, weight) in refs {
            let Some(idx) = plugins.iter().position(|p| *p.name == *r) else {
                let kind = if handlers.iter().any(|h| h.0 == r) {
                    Some("profile handler")
                } else if deciders.iter().any(|d| d.0 == r) {
                    Some("decider")
                } else {
                    None
                };
                if let Some(kind) = kind {
                    return Err(ConfigError::NotProfilePlugin {
                        profile: pname,
                        plugin_ref: r,
                        kind,
                    });
                }
                let valid: Vec<&str> = all_names.iter().map(String::as_str).collect();
                return Err(ConfigError::MissingPluginRef {
                    line: find_line(src, &["pluginRef", &r]),
                    suggestion: suggest(&r, &valid),
                    profile: pname,
                    plugin_ref: r,
                });
            };
            match kind_of(plugins[idx].plugin.as_mut()) {
                Kind::Picker => {
                    if let Some(first) = picker {
                        return Err(ConfigError::TwoPickers {
                            profile: pname,
                            first: plugins[first].name.to_string(),
                            second: r,
                        });
                    }
                    picker = Some(idx);
                }
                Kind::Filter => filters.push(idx),
                Kind::Scorer => {
                    let w = weight.unwrap_or(1.0);
                    if !(w.is_finite() && w >= 0.0) {
                        return Err(ConfigError::BadWeight {
                            profile: pname,
                            plugin_ref: r,
                            weight: w,
                        });
                    }
                    scorers.push((idx, w));
                }
                Kind::Other => {
                    return Err(ConfigError::NotProfilePlugin {
                        profile: pname,
                        plugin_ref: r,
                        kind: "plugin of no profile kind",
                    })
                }
            }
        }
        let picker = match picker {
            Some(p) => p,
            None => default_picker(plugins),
        };
        let names: Vec<&str> = plugins.iter().map(|p| &*p.name).collect();
        out.push(SchedulingProfile::new(
            &pname, filters, scorers, picker, &names,
        ));
    }
    Ok(out)
}

/// Index of the plugin `max-score-picker`, created if missing.
fn default_picker(plugins: &mut Vec<NamedPlugin>) -> usize {
    let name = "max-score-picker";
    if let Some(i) = plugins
        .iter_mut()
        .position(|p| &*p.name == name && p.plugin.as_picker().is_some())
    {
        return i;
    }
    plugins.push(NamedPlugin {
        name: Arc::from(name),
        plugin: Box::new(MaxScorePicker::default()),
    });
    plugins.len() - 1
}

fn build_handler(
    handlers: &[(String, HandlerSpec)],
    deciders: &[(String, PdDecider)],
    plugins: &[NamedPlugin],
    profiles: &[SchedulingProfile],
) -> Result<Box<dyn ProfileHandler>, ConfigError> {
    if handlers.len() > 1 {
        return Err(ConfigError::Handler {
            message: format!(
                "more than one profile handler (\"{}\", \"{}\")",
                handlers[0].0, handlers[1].0
            ),
        });
    }
    let Some((hname, spec)) = handlers.first() else {
        if profiles.len() == 1 {
            return Ok(Box::new(SingleProfileHandler));
        }
        return Err(ConfigError::Handler {
            message: format!("{} scheduling profiles need a profile handler plugin (e.g. disagg-profile-handler)", profiles.len()),
        });
    };
    Ok(match spec {
        HandlerSpec::Single => Box::new(SingleProfileHandler),
        HandlerSpec::Pd(h, prefix_plugin) => {
            let mut h = h.clone();
            if let Some(pp) = prefix_plugin {
                let Some(p) = plugins.iter().find(|p| &*p.name == pp.as_str()) else {
                    let valid: Vec<&str> = plugins.iter().map(|p| &*p.name).collect();
                    return Err(ConfigError::MissingDecider {
                        handler: hname.clone(),
                        param: "prefixPluginName".into(),
                        name: pp.clone(),
                        suggestion: suggest(pp, &valid),
                    });
                };
                h.prefix_source = p.plugin.prefix_source();
            }
            Box::new(h)
        }
        HandlerSpec::Disagg {
            decode_profile,
            prefill_profile,
            prefill_decider,
        } => {
            let decider = match prefill_decider {
                None => None,
                Some((param, dname)) => match deciders.iter().find(|d| &d.0 == dname) {
                    Some(d) => Some(d.1.clone()),
                    None => {
                        let valid: Vec<&str> = deciders.iter().map(|d| d.0.as_str()).collect();
                        return Err(ConfigError::MissingDecider {
                            handler: hname.clone(),
                            param: param.clone(),
                            name: dname.clone(),
                            suggestion: suggest(dname, &valid),
                        });
                    }
                },
            };
            Box::new(DisaggProfileHandler {
                decode_profile: decode_profile.clone(),
                prefill_profile: prefill_profile.clone(),
                decider,
            })
        }
    })
}
