//! Which vLLM release's behaviour to reproduce where releases differ.

use std::fmt;
use std::str::FromStr;

/// vLLM release whose semantics a pod follows (`vllm.md` tags [0.33] and [0.11]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VllmVersion {
    /// vLLM 0.11.0 (Oct 2025, llm-d 0.3 era).
    V0_11,
    /// vLLM 0.33.0, the default.
    #[default]
    V0_33,
}

impl VllmVersion {
    /// Names accepted on the command line and in scenarios.
    pub const NAMES: &'static [&'static str] = &["0.33", "0.11"];
}

impl FromStr for VllmVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().trim_start_matches('v') {
            "0.33" | "0.33.0" => Ok(VllmVersion::V0_33),
            "0.11" | "0.11.0" => Ok(VllmVersion::V0_11),
            other => Err(format!(
                "unknown vLLM version \"{other}\" (valid: {})",
                VllmVersion::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for VllmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VllmVersion::V0_11 => "0.11",
            VllmVersion::V0_33 => "0.33",
        })
    }
}
