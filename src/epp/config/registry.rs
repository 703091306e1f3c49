//! Plugin registry: one `match` per plugin kind, from type name and
//! parameters to a configured instance. Unknown types and parameters are
//! errors (see [`super::error`]).

use super::error::ConfigError;
use super::params::Params;
use crate::epp::filter::role::RoleFilter;
use crate::epp::filter::saturation::SaturationFilter;
use crate::epp::handler::disagg::PdDecider;
use crate::epp::picker::max_score::{MaxScorePicker, TieBreak};
use crate::epp::picker::random::RandomPicker;
use crate::epp::picker::weighted_random::WeightedRandomPicker;
use crate::epp::plugin::Plugin;
use crate::epp::scorer::active_request::{ActiveRequestMode, ActiveRequestScorer};
use crate::epp::scorer::approx_prefix::{ApproxPrefixConfig, ApproxPrefixScorer, IndexedTargets};
use crate::epp::scorer::kv_cache_utilization::KvCacheUtilizationScorer;
use crate::epp::scorer::load_aware::LoadAwareScorer;
use crate::epp::scorer::lora_affinity::LoraAffinityScorer;
use crate::epp::scorer::no_hit_lru::NoHitLruScorer;
use crate::epp::scorer::precise_prefix::{
    Normalization, PrecisePrefixConfig, PrecisePrefixScorer, TierWeights,
};
use crate::epp::scorer::queue::QueueScorer;
use crate::epp::scorer::running_requests::RunningRequestsScorer;
use crate::epp::scorer::session_affinity::SessionAffinityScorer;
use crate::epp::scorer::token_load::TokenLoadScorer;
use serde_yaml_ng::Value;

/// Scorer types (with former names as aliases).
pub const SCORER_TYPES: &[&str] = &[
    "active-request-scorer",
    "kv-cache-scorer",
    "kv-cache-utilization-scorer",
    "kvcache-aware-scorer",
    "load-aware-scorer",
    "lora-affinity-scorer",
    "no-hit-lru-scorer",
    "precise-prefix-cache-scorer",
    "prefix-cache-scorer",
    "queue-scorer",
    "running-requests-size-scorer",
    "session-affinity-scorer",
    "token-load-scorer",
];
/// Filter types.
pub const FILTER_TYPES: &[&str] = &["decode-filter", "prefill-filter", "saturation-filter"];
/// Picker types.
pub const PICKER_TYPES: &[&str] = &[
    "max-score-picker",
    "random-picker",
    "weighted-random-picker",
];
/// Profile handler types.
pub const HANDLER_TYPES: &[&str] = &[
    "disagg-profile-handler",
    "pd-profile-handler",
    "single-profile-handler",
];
/// P/D decider types.
pub const DECIDER_TYPES: &[&str] = &["always-disagg-pd-decider", "prefix-based-pd-decider"];

/// Every known plugin type.
pub fn all_types() -> Vec<&'static str> {
    [
        SCORER_TYPES,
        FILTER_TYPES,
        PICKER_TYPES,
        HANDLER_TYPES,
        DECIDER_TYPES,
    ]
    .concat()
}

/// A configured precise-prefix scorer's settings, for whoever builds the index.
#[derive(Clone, Debug, PartialEq)]
pub struct PreciseIndexSettings {
    /// `inMemoryConfig.size` (1e8 keys).
    pub size: u64,
    /// `inMemoryConfig.podCacheSize` (10).
    pub pod_cache_size: u64,
    /// `redisConfig.address` with `redis://` added (`None` = in-memory backend).
    pub redis_address: Option<String>,
    /// `tokenProcessorConfig.hashSeed` ("").
    pub hash_seed: String,
}

impl Default for PreciseIndexSettings {
    fn default() -> Self {
        PreciseIndexSettings {
            size: 100_000_000,
            pod_cache_size: 10,
            redis_address: None,
            hash_seed: String::new(),
        }
    }
}

/// Unresolved profile-handler settings (deciders are resolved by name later).
#[derive(Clone, Debug, PartialEq)]
pub enum HandlerSpec {
    /// `single-profile-handler`.
    Single,
    /// `pd-profile-handler`.
    Pd(crate::epp::handler::pd::PdProfileHandler, Option<String>),
    /// `disagg-profile-handler` with the prefill decider's plugin name.
    Disagg {
        /// Decode profile.
        decode_profile: String,
        /// Prefill profile.
        prefill_profile: String,
        /// (parameter path, decider plugin name).
        prefill_decider: Option<(String, String)>,
    },
}

/// What one `plugins[]` entry builds.
pub enum Built {
    /// A filter, scorer or picker (possibly with hooks).
    Plugin(
        Box<dyn Plugin>,
        Option<(PrecisePrefixConfig, PreciseIndexSettings)>,
    ),
    /// A profile handler.
    Handler(HandlerSpec),
    /// A P/D decider.
    Decider(PdDecider),
}

/// Builds the plugin `type_name` called `name`; `None` if the type is unknown.
pub fn build(
    type_name: &str,
    name: &str,
    params: Option<&Value>,
) -> Result<Option<Built>, ConfigError> {
    let mut p = Params::new(name, params)?;
    let built = if let Some(b) = scorer(type_name, &mut p)? {
        b
    } else if let Some(f) = filter(type_name, &mut p)? {
        Built::Plugin(f, None)
    } else if let Some(k) = picker(type_name, &mut p)? {
        Built::Plugin(k, None)
    } else if let Some(h) = handler(type_name, &mut p)? {
        Built::Handler(h)
    } else if let Some(d) = decider(type_name, &mut p)? {
        Built::Decider(d)
    } else {
        return Ok(None);
    };
    p.finish()?;
    Ok(Some(built))
}

fn scorer(type_name: &str, p: &mut Params<'_>) -> Result<Option<Built>, ConfigError> {
    let plain = |b: Box<dyn Plugin>| Ok(Some(Built::Plugin(b, None)));
    match type_name {
        "queue-scorer" => plain(Box::new(QueueScorer)),
        "running-requests-size-scorer" => plain(Box::new(RunningRequestsScorer)),
        "kv-cache-utilization-scorer" | "kv-cache-scorer" => {
            plain(Box::new(KvCacheUtilizationScorer))
        }
        "session-affinity-scorer" => plain(Box::new(SessionAffinityScorer)),
        "lora-affinity-scorer" => plain(Box::new(LoraAffinityScorer)),
        "load-aware-scorer" => {
            let t = p.u64("threshold")?.unwrap_or(128);
            plain(Box::new(LoadAwareScorer {
                threshold: t.clamp(1, u64::from(u32::MAX)) as u32,
            }))
        }
        "token-load-scorer" => {
            let t = p.u64("threshold")?.unwrap_or(4_194_304);
            plain(Box::new(TokenLoadScorer {
                threshold_tokens: t.max(1),
            }))
        }
        "no-hit-lru-scorer" => {
            let size = p.u64("lruSize")?.unwrap_or(1024);
            p.ignore("prefixPluginName");
            p.ignore("prefixPluginType");
            p.ignore("prefillProfile");
            plain(Box::new(NoHitLruScorer::new(size as usize)))
        }
        "active-request-scorer" => {
            let counter = p.choice("counter", &["inFlightLoad", "own"])?;
            let ttl = p.duration_ns("requestTimeout")?;
            let idle = p.u64("idleThreshold")?;
            let busy = p.f64("maxBusyScore")?;
            let mode = match (counter, ttl) {
                (Some("own"), _) | (None, Some(_)) => ActiveRequestMode::OwnCounter {
                    ttl_ns: ttl.unwrap_or(120_000_000_000),
                },
                _ => ActiveRequestMode::InFlightLoad {
                    idle_threshold: idle.unwrap_or(0).min(u64::from(u32::MAX)) as u32,
                    max_busy_score: busy.unwrap_or(1.0),
                },
            };
            plain(Box::new(ActiveRequestScorer::new(mode)))
        }
        "prefix-cache-scorer" if p_mode_is_tracking(p)? => precise(p),
        "prefix-cache-scorer" => {
            let cfg = approx_prefix_config(p)?;
            plain(Box::new(ApproxPrefixScorer::new(cfg)))
        }
        "precise-prefix-cache-scorer" | "kvcache-aware-scorer" => precise(p),
        _ => Ok(None),
    }
}

/// `prefix-cache-scorer` parameters of every era.
fn approx_prefix_config(p: &mut Params<'_>) -> Result<ApproxPrefixConfig, ConfigError> {
    let d = ApproxPrefixConfig::default();
    // `hashBlockSize` (GIE) and `blockSize` (Y1) count characters,
    // `blockSizeTokens` (HEAD) tokens.
    let chars = p.u64("hashBlockSize")?.or(p.u64("blockSize")?);
    let tokens = p.u64("blockSizeTokens")?;
    let block = match (tokens, chars) {
        (Some(t), _) => t,
        (None, Some(c)) => (c / crate::epp::view::CHARS_PER_TOKEN).max(1),
        (None, None) => u64::from(d.block_size_tokens),
    };
    // A character size is a pre-autoTune config: keep its block size.
    let auto_tune_default = d.auto_tune && (chars.is_none() || tokens.is_some());
    Ok(ApproxPrefixConfig {
        block_size_tokens: block.clamp(1, u64::from(u32::MAX)) as u32,
        max_prefix_blocks: p
            .u64("maxPrefixBlocksToMatch")?
            .map_or(d.max_prefix_blocks, |v| v as usize),
        lru_capacity_per_server: p
            .u64("lruCapacityPerServer")?
            .map_or(d.lru_capacity_per_server, |v| v as usize),
        auto_tune: p.bool("autoTune")?.unwrap_or(auto_tune_default),
        hash_partial_tail: p.bool("hashPartialTail")?.unwrap_or(d.hash_partial_tail),
        indexed_targets: match p.choice(
            "indexTargets",
            &["primary", "primary-and-prefill", "prefill"],
        )? {
            Some("primary") => IndexedTargets::Primary,
            Some("prefill") => IndexedTargets::Prefill,
            Some(_) => IndexedTargets::PrimaryAndPrefill,
            None => d.indexed_targets,
        },
        normalization: match p.choice("normalization", &["absolute", "min-max"])? {
            Some("min-max") => Normalization::MinMax,
            Some(_) => Normalization::Absolute,
            None => d.normalization,
        },
    })
}

/// v0.2 `prefix-cache-scorer` with `mode: cache_tracking` is the precise scorer.
fn p_mode_is_tracking(p: &mut Params<'_>) -> Result<bool, ConfigError> {
    Ok(p.choice("mode", &["estimate", "cache_tracking"])? == Some("cache_tracking"))
}

fn token_processor(
    p: &mut Params<'_>,
    cfg: &mut PrecisePrefixConfig,
    idx: &mut PreciseIndexSettings,
) -> Result<(), ConfigError> {
    if let Some(mut tp) = p.nested("tokenProcessorConfig")? {
        if let Some(b) = tp.u64("blockSize")? {
            cfg.block_size_tokens = b.clamp(1, u64::from(u32::MAX)) as u32;
        }
        if let Some(s) = tp.str("hashSeed")? {
            idx.hash_seed = s.to_string();
        }
        tp.finish()?;
    }
    Ok(())
}

fn precise(p: &mut Params<'_>) -> Result<Option<Built>, ConfigError> {
    let mut cfg = PrecisePrefixConfig::default();
    let mut idx = PreciseIndexSettings::default();
    token_processor(p, &mut cfg, &mut idx)?;
    if let Some(mut ic) = p.nested("indexerConfig")? {
        token_processor(&mut ic, &mut cfg, &mut idx)?;
        ic.ignore("tokenizersPoolConfig");
        ic.ignore("prefixStoreConfig");
        if let Some(mut kb) = ic.nested("kvBlockIndexConfig")? {
            if let Some(mut mem) = kb.nested("inMemoryConfig")? {
                idx.size = mem.u64("size")?.unwrap_or(idx.size);
                idx.pod_cache_size = mem.u64("podCacheSize")?.unwrap_or(idx.pod_cache_size);
                mem.finish()?;
            }
            if let Some(mut r) = kb.nested("redisConfig")? {
                if let Some(a) = r.str("address")? {
                    idx.redis_address = Some(normalize_redis_addr(a));
                }
                r.ignore("backendType");
                r.ignore("enableRDMA");
                r.finish()?;
            }
            kb.ignore("costAwareMemoryConfig");
            kb.ignore("enableMetrics");
            kb.ignore("metricsLoggingInterval");
            kb.finish()?;
        }
        let backends = match ic.list("kvCacheBackendConfigs")? {
            Some(l) => Some(l),
            None => ic.list("backendConfigs")?,
        };
        if let Some(list) = backends {
            cfg.tier_weights = tier_weights(list)?;
        }
        ic.finish()?;
    }
    p.ignore("kvEventsConfig");
    let spec = p.bool("speculativeIndexing")?.unwrap_or(false);
    let ttl = p.duration_ns("speculativeTTL")?.unwrap_or(2_000_000_000);
    cfg.speculative_ttl_ns = spec.then_some(ttl);
    cfg.normalization = match p.choice("normalization", &["min-max", "absolute"])? {
        Some("absolute") => Normalization::Absolute,
        _ => Normalization::MinMax,
    };
    let scorer = PrecisePrefixScorer::new(cfg.clone());
    Ok(Some(Built::Plugin(Box::new(scorer), Some((cfg, idx)))))
}

fn tier_weights(list: &[Value]) -> Result<TierWeights, ConfigError> {
    let mut w = TierWeights {
        gpu: 1.0,
        cpu: 1.0,
        disk: 1.0,
        other: 1.0,
    };
    for (i, item) in list.iter().enumerate() {
        let mut e = Params::new(
            &format!("indexerConfig.kvCacheBackendConfigs[{i}]"),
            Some(item),
        )?;
        let name = e.str("name")?.unwrap_or("gpu").to_ascii_lowercase();
        let weight = e.f64("weight")?.unwrap_or(1.0);
        e.finish()?;
        match crate::epp::plugin::Tier::from_medium(Some(&name)) {
            crate::epp::plugin::Tier::Gpu => w.gpu = weight,
            crate::epp::plugin::Tier::Cpu => w.cpu = weight,
            crate::epp::plugin::Tier::Disk => w.disk = weight,
            crate::epp::plugin::Tier::Other => w.other = weight,
        }
    }
    Ok(w)
}

/// Adds `redis://` when missing; rewrites `valkey://` to `redis://`.
pub fn normalize_redis_addr(a: &str) -> String {
    if let Some(rest) = a.strip_prefix("valkey://") {
        format!("redis://{rest}")
    } else if a.starts_with("redis://") || a.starts_with("rediss://") {
        a.to_string()
    } else {
        format!("redis://{a}")
    }
}

fn filter(type_name: &str, p: &mut Params<'_>) -> Result<Option<Box<dyn Plugin>>, ConfigError> {
    Ok(match type_name {
        "decode-filter" => Some(Box::new(RoleFilter::Decode)),
        "prefill-filter" => Some(Box::new(RoleFilter::Prefill)),
        "saturation-filter" => {
            let d = SaturationFilter::default();
            Some(Box::new(SaturationFilter {
                queue_depth_threshold: p
                    .u64("queueDepthThreshold")?
                    .map_or(d.queue_depth_threshold, |v| {
                        v.min(u64::from(u32::MAX)) as u32
                    }),
                kv_cache_util_threshold: p
                    .f64("kvCacheUtilThreshold")?
                    .unwrap_or(d.kv_cache_util_threshold),
                metrics_staleness_ns: p
                    .duration_ns("metricsStalenessThreshold")?
                    .unwrap_or(d.metrics_staleness_ns),
            }))
        }
        _ => None,
    })
}

fn picker(type_name: &str, p: &mut Params<'_>) -> Result<Option<Box<dyn Plugin>>, ConfigError> {
    let mut k = || -> Result<usize, ConfigError> {
        Ok(p.u64("maxNumOfEndpoints")?.unwrap_or(1).max(1) as usize)
    };
    Ok(match type_name {
        "max-score-picker" => {
            let n = k()?;
            let tie = match p.choice("tieBreaking", &["random", "round-robin"])? {
                Some("round-robin") => TieBreak::RoundRobin,
                _ => TieBreak::Random,
            };
            Some(Box::new(MaxScorePicker::new(n, tie)))
        }
        "random-picker" => Some(Box::new(RandomPicker {
            max_endpoints: k()?,
        })),
        "weighted-random-picker" => Some(Box::new(WeightedRandomPicker {
            max_endpoints: k()?,
        })),
        _ => None,
    })
}

fn handler(type_name: &str, p: &mut Params<'_>) -> Result<Option<HandlerSpec>, ConfigError> {
    Ok(match type_name {
        "single-profile-handler" => Some(HandlerSpec::Single),
        "pd-profile-handler" => {
            let d = crate::epp::handler::pd::PdProfileHandler::default();
            let h = crate::epp::handler::pd::PdProfileHandler {
                threshold_chars: p.u64("threshold")?.unwrap_or(d.threshold_chars),
                hash_block_size_chars: p.u64("hashBlockSize")?.unwrap_or(d.hash_block_size_chars),
                decode_profile: p
                    .str("decodeProfile")?
                    .unwrap_or(&d.decode_profile)
                    .to_string(),
                prefill_profile: p
                    .str("prefillProfile")?
                    .unwrap_or(&d.prefill_profile)
                    .to_string(),
                prefix_source: None,
            };
            let prefix_plugin = p.str("prefixPluginName")?.map(str::to_string);
            p.ignore("primaryPort");
            Some(HandlerSpec::Pd(h, prefix_plugin))
        }
        "disagg-profile-handler" => {
            let decode_profile = p.str("decodeProfile")?.unwrap_or("decode").to_string();
            let prefill_profile = p.str("prefillProfile")?.unwrap_or("prefill").to_string();
            let mut prefill_decider = p
                .str("prefillDeciderPluginName")?
                .map(|n| ("prefillDeciderPluginName".to_string(), n.to_string()));
            if let Some(mut ds) = p.nested("deciders")? {
                if let Some(n) = ds.str("prefill")? {
                    prefill_decider = Some(("deciders.prefill".to_string(), n.to_string()));
                }
                ds.ignore("encode");
                ds.finish()?;
            }
            p.ignore("encodeProfile");
            p.ignore("encodeDeciderPluginName");
            p.ignore("prefixPluginName");
            p.ignore("prefixPluginType");
            p.ignore("primaryPort");
            Some(HandlerSpec::Disagg {
                decode_profile,
                prefill_profile,
                prefill_decider,
            })
        }
        _ => None,
    })
}

fn decider(type_name: &str, p: &mut Params<'_>) -> Result<Option<PdDecider>, ConfigError> {
    Ok(match type_name {
        "always-disagg-pd-decider" => Some(PdDecider::Always),
        "prefix-based-pd-decider" => Some(PdDecider::PrefixBased {
            non_cached_tokens: p
                .u64("nonCachedTokens")?
                .unwrap_or(0)
                .min(u64::from(u32::MAX)) as u32,
            zero_means_always: p.bool("zeroMeansAlways")?.unwrap_or(false),
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approx(yaml: &str) -> ApproxPrefixConfig {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        approx_prefix_config(&mut Params::new("prefix-cache-scorer", Some(&v)).unwrap()).unwrap()
    }

    /// Spec §3.1: `B = blockSizeTokens * 4` chars at HEAD (auto-tuned),
    /// `blockSize` = 64 chars in Y1, which had no autoTune.
    #[test]
    fn approx_block_sizes_by_era() {
        let y1 = approx("{blockSize: 64}");
        assert_eq!((y1.block_size_tokens, y1.auto_tune), (16, false));
        let gie = approx("{hashBlockSize: 256}");
        assert_eq!((gie.block_size_tokens, gie.auto_tune), (64, false));
        let head = approx("{blockSizeTokens: 32}");
        assert_eq!((head.block_size_tokens, head.auto_tune), (32, true));
        let pinned = approx("{blockSize: 64, autoTune: true}");
        assert!(pinned.auto_tune);
        let d = approx("{}");
        assert_eq!(d, ApproxPrefixConfig::default());
        let ll = approx("{normalization: min-max, indexTargets: prefill}");
        assert_eq!(ll.normalization, Normalization::MinMax);
        assert_eq!(ll.indexed_targets, IndexedTargets::Prefill);
    }
}
