//! Trace file formats by name, format detection and opening a file as a stream.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::azure::read_azure;
use super::error::{suggest, TraceError};
use super::mooncake::{read_mooncake, MOONCAKE_TOKENS_PER_ID};
use super::native::read_native;
use super::reader::ReadOptions;
use super::request::TraceRequest;

/// A boxed stream of requests (what every source becomes).
pub type RequestIter = Box<dyn Iterator<Item = Result<TraceRequest, TraceError>> + Send>;

/// A trace file format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// Mooncake JSONL (`timestamp`, `input_length`, `output_length`, `hash_ids`).
    Mooncake,
    /// Azure LLM inference CSV (`TIMESTAMP,ContextTokens,GeneratedTokens`).
    Azure,
    /// kvsim native JSONL, `{"kvsim_trace": 1}` header.
    Native,
}

impl TraceFormat {
    /// Names accepted on the command line and in scenarios.
    pub const NAMES: &'static [&'static str] = &["mooncake", "azure", "native"];

    /// Guesses the format from the extension and the first line: `.csv` is
    /// Azure; JSONL whose first line has `"kvsim_trace"` is native, otherwise
    /// Mooncake.
    pub fn detect(path: &Path) -> Result<TraceFormat, TraceError> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            return Ok(TraceFormat::Azure);
        }
        let file = File::open(path).map_err(|source| io_err(path, source))?;
        let mut first = String::new();
        BufReader::new(file.take(64 * 1024))
            .read_line(&mut first)
            .map_err(|source| io_err(path, source))?;
        Ok(if first.contains("\"kvsim_trace\"") {
            TraceFormat::Native
        } else if first.trim_start().starts_with('{') {
            TraceFormat::Mooncake
        } else {
            TraceFormat::Azure
        })
    }
}

impl FromStr for TraceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mooncake" => Ok(TraceFormat::Mooncake),
            "azure" | "azure_csv" => Ok(TraceFormat::Azure),
            "native" | "kvsim" => Ok(TraceFormat::Native),
            other => Err(format!(
                "unknown trace format \"{other}\" (valid: {}){}",
                TraceFormat::NAMES.join(", "),
                suggest(other, TraceFormat::NAMES)
            )),
        }
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceFormat::Mooncake => "mooncake",
            TraceFormat::Azure => "azure",
            TraceFormat::Native => "native",
        })
    }
}

/// Options for opening a trace file.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Format; `None` detects it ([`TraceFormat::detect`]).
    pub format: Option<TraceFormat>,
    /// Tokens per Mooncake hash id; `None` is 512.
    pub tokens_per_hash_id: Option<u32>,
    /// Lenient mode and its skip counter; `file` is filled from the path.
    pub read: ReadOptions,
}

/// Opens `path` as a streaming request iterator.
pub fn open_trace(path: &Path, opts: &OpenOptions) -> Result<RequestIter, TraceError> {
    let format = match opts.format {
        Some(f) => f,
        None => TraceFormat::detect(path)?,
    };
    let file = File::open(path).map_err(|source| io_err(path, source))?;
    let input = BufReader::with_capacity(256 * 1024, file);
    let mut read = opts.read.clone();
    read.file = path.display().to_string();
    Ok(match format {
        TraceFormat::Mooncake => Box::new(read_mooncake(
            input,
            opts.tokens_per_hash_id.unwrap_or(MOONCAKE_TOKENS_PER_ID),
            read,
        )),
        TraceFormat::Azure => Box::new(read_azure(input, read)),
        TraceFormat::Native => Box::new(read_native(input, read)),
    })
}

fn io_err(path: &Path, source: std::io::Error) -> TraceError {
    TraceError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_suggest() {
        assert_eq!("Mooncake".parse::<TraceFormat>(), Ok(TraceFormat::Mooncake));
        assert_eq!("azure".parse::<TraceFormat>(), Ok(TraceFormat::Azure));
        let e = "natve".parse::<TraceFormat>().unwrap_err();
        assert!(e.contains("did you mean \"native\""), "{e}");
        for n in TraceFormat::NAMES {
            assert_eq!(n.parse::<TraceFormat>().unwrap().to_string(), *n);
        }
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let e = open_trace(Path::new("/nonexistent/x.jsonl"), &OpenOptions::default())
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("/nonexistent/x.jsonl: "), "{e}");
    }
}
