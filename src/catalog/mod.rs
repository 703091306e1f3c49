//! Hardware and model catalogs: the published facts latency and capacity models start from.
//!
//! Lookups are case-insensitive, accept common aliases (`"H100-SXM"`, `"hf://meta-llama/Llama-3.2-1B"`)
//! and suggest the nearest valid name on a miss. Every number carries a provenance tag in its doc
//! table, as in `latency-models.md`: **\[pub: X]** published by X, **\[derived]** computed from published
//! specs, **\[est]** an assumption to calibrate.

pub mod gpu;
pub mod model;

pub use gpu::{gpu, GpuSpec, GPUS};
pub use model::{model, ModelSpec, MODELS};

/// Why a catalog lookup or a `config.json` parse failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The GPU name matches no entry or alias.
    #[error("unknown GPU \"{name}\" (valid: {valid}){}", did_you_mean(*.suggestion))]
    UnknownGpu {
        name: String,
        valid: String,
        suggestion: Option<&'static str>,
    },
    /// The model name matches no entry or alias.
    #[error("unknown model \"{name}\" (valid: {valid}){}", did_you_mean(*.suggestion))]
    UnknownModel {
        name: String,
        valid: String,
        suggestion: Option<&'static str>,
    },
    /// `config.json` is not valid JSON.
    #[error("{source_name}:{line}:{column}: invalid JSON: {message}")]
    Json {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A required `config.json` field is absent.
    #[error("{source_name}: missing field \"{field}\"")]
    MissingField {
        source_name: String,
        field: &'static str,
    },
    /// A `config.json` field has the wrong type or an impossible value.
    #[error("{source_name}: field \"{field}\": expected {expected}, got {value}")]
    InvalidField {
        source_name: String,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// The architecture is outside what the catalog models (e.g. mixture-of-experts).
    #[error("{source_name}: unsupported model: {what}")]
    Unsupported { source_name: String, what: String },
}

fn did_you_mean(suggestion: Option<&'static str>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean \"{s}\"?"),
        None => String::new(),
    }
}

/// Canonical name of the alias nearest to `key` (already normalised), if it is close enough
/// to be a plausible typo. Ties go to the earlier table entry, so the answer is deterministic.
pub(crate) fn nearest_name<'a>(
    key: &str,
    aliases: impl Iterator<Item = (&'a str, &'static str)>,
) -> Option<&'static str> {
    // Below this normalised similarity a suggestion is noise rather than help.
    const MIN_SIMILARITY: f64 = 0.5;
    let mut best: Option<(f64, &'static str)> = None;
    for (alias, canonical) in aliases {
        let score = strsim::normalized_levenshtein(key, alias);
        if score >= MIN_SIMILARITY && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, canonical));
        }
    }
    best.map(|(_, c)| c)
}
