//! `kvsim hash`: print vLLM's prefix-cache block hashes of a token sequence.
//!
//! One line per full block: `index digest_hex event_u64`, where `event_u64` is the hash
//! vLLM publishes in KV events. Useful to check an indexer or a recorded event stream.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::compat::VllmVersion;
use crate::kv::hash::{HashAlgo, VllmBlockHasher};

/// Flags of `kvsim hash`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
#[command(group(clap::ArgGroup::new("token_input").required(true).args(["tokens", "tokens_file"])))]
pub struct HashArgs {
    /// vLLM --prefix-caching-hash-algo: sha256, sha256_cbor, xxhash or xxhash_cbor.
    #[arg(long)]
    pub algo: String,
    /// PYTHONHASHSEED of the vLLM process (needed for xxhash* and for 0.11).
    #[arg(long)]
    pub seed: Option<String>,
    /// vLLM release whose hashing rules apply: 0.33 or 0.11.
    #[arg(long = "vllm-version", default_value = "0.33")]
    pub vllm_version: String,
    /// Tokens per KV block (vLLM --block-size).
    #[arg(long)]
    pub block_size: usize,
    /// Token ids separated by commas or whitespace, e.g. 0,1,2.
    #[arg(long, allow_hyphen_values = true)]
    pub tokens: Option<String>,
    /// File of token ids separated by commas/whitespace/newlines, or a JSON array.
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// Per-request cache_salt; it enters the first block's hash.
    #[arg(long)]
    pub cache_salt: Option<String>,
}

/// Runs `kvsim hash`, writing one line per full block to `out`.
pub fn run(args: &HashArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let algo: HashAlgo = args.algo.parse().context("--algo")?;
    let version: VllmVersion = args
        .vllm_version
        .parse()
        .map_err(anyhow::Error::msg)
        .context("--vllm-version")?;
    if args.block_size == 0 {
        bail!("--block-size must be at least 1");
    }
    let tokens = match (&args.tokens, &args.tokens_file) {
        (Some(text), None) => parse_token_list(text).context("--tokens")?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_token_list(&text).with_context(|| format!("tokens file {}", path.display()))?
        }
        _ => bail!("give exactly one of --tokens and --tokens-file"),
    };
    let hasher = VllmBlockHasher::new(algo, version, args.seed.as_deref())
        .context("deriving NONE_HASH (--seed sets the vLLM process's PYTHONHASHSEED)")?;

    let mut text = String::new();
    for (idx, digest) in hasher
        .hash_full_blocks(&tokens, args.block_size, args.cache_salt.as_deref())
        .iter()
        .enumerate()
    {
        // Writing into a String cannot fail.
        let _ = writeln!(text, "{idx} {} {}", digest.to_hex(), digest.event_hash());
    }
    if text.is_empty() {
        // vLLM hashes full blocks only: say why the output is empty.
        eprintln!(
            "note: no full block: {} token(s), block size {}",
            tokens.len(),
            args.block_size
        );
    }
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A token list that is not a sequence of u32 ids.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenListError {
    /// An entry is not an integer in `0..=u32::MAX`.
    #[error(
        "token at index {index}: expected an integer token id in 0..=4294967295, got \"{value}\""
    )]
    BadToken {
        /// 0-based position in the list.
        index: usize,
        /// The entry as written.
        value: String,
    },
    /// Two commas with nothing between them.
    #[error("empty entry before token index {index} (two commas in a row)")]
    EmptyEntry {
        /// 0-based position the missing token would have had.
        index: usize,
    },
    /// Text starting with `[` that is not a JSON array.
    #[error("invalid JSON array: {0}")]
    Json(String),
}

/// Parses token ids separated by commas and/or whitespace (a trailing comma is fine), or,
/// when the text starts with `[`, a JSON array of integers.
pub fn parse_token_list(text: &str) -> Result<Vec<u32>, TokenListError> {
    let text = text.trim();
    if text.starts_with('[') {
        return parse_json_tokens(text);
    }
    let mut tokens = Vec::new();
    let fields: Vec<&str> = text.split(',').collect();
    for (field_idx, field) in fields.iter().enumerate() {
        let is_last = field_idx + 1 == fields.len();
        if field.trim().is_empty() && !is_last {
            return Err(TokenListError::EmptyEntry {
                index: tokens.len(),
            });
        }
        for item in field.split_whitespace() {
            let token = item.parse::<u32>().map_err(|_| TokenListError::BadToken {
                index: tokens.len(),
                value: item.to_string(),
            })?;
            tokens.push(token);
        }
    }
    Ok(tokens)
}

fn parse_json_tokens(text: &str) -> Result<Vec<u32>, TokenListError> {
    let items: Vec<Value> =
        serde_json::from_str(text).map_err(|e| TokenListError::Json(e.to_string()))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| TokenListError::BadToken {
                    index,
                    value: item.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: HashArgs,
    }

    fn args(algo: &str, tokens: &str, block_size: usize) -> HashArgs {
        HashArgs {
            algo: algo.to_string(),
            seed: None,
            vllm_version: "0.33".to_string(),
            block_size,
            tokens: Some(tokens.to_string()),
            tokens_file: None,
            cache_salt: None,
        }
    }

    fn output(args: &HashArgs) -> anyhow::Result<String> {
        let mut out = Vec::new();
        run(args, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn range_csv(n: u32) -> String {
        (0..n).map(|t| t.to_string()).collect::<Vec<_>>().join(",")
    }

    fn temp_file(name: &str, contents: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("kvsim-hash-cmd-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn prints_spec_vector() {
        let text = output(&args("sha256_cbor", &range_csv(35), 16)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "the 3-token tail is not a full block");
        assert_eq!(
            lines[0],
            "0 dc918a88b139e5afe60b88eda27508d4aee16c10fdc354791efea06206ac0749 2233398808101521225"
        );
        assert_eq!(
            lines[1],
            "1 c300ec275d7bf08af8fc63e76cdc0086911bbc7091e03c5cf892553bef84ef0c 17911472383915781900"
        );
    }

    #[test]
    fn tokens_file_forms_agree() {
        let want = output(&args("sha256", &range_csv(48), 16)).unwrap();
        let json = format!("[{}]", range_csv(48));
        let lines = (0..48)
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let mixed = "0 1 2 3,4,5\n6\t7, 8 9 10 11 12 13 14 15\n".to_string()
            + &(16..48)
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
            + ",\n";
        for (name, contents) in [("json", json), ("lines", lines), ("mixed", mixed)] {
            let path = temp_file(name, &contents);
            let mut a = args("sha256", "", 16);
            a.tokens = None;
            a.tokens_file = Some(path.clone());
            let got = output(&a);
            std::fs::remove_file(&path).unwrap();
            assert_eq!(got.unwrap(), want, "{name}");
        }
    }

    #[test]
    fn salt_seed_and_version_change_output() {
        let base = output(&args("sha256", &range_csv(32), 16)).unwrap();
        let mut salted = args("sha256", &range_csv(32), 16);
        salted.cache_salt = Some("tenant-a".into());
        let salted = output(&salted).unwrap();
        assert_ne!(base.lines().nth(1), salted.lines().nth(1));
        let mut old = args("sha256", &range_csv(16), 16);
        old.vllm_version = "0.11".into();
        old.seed = Some("42".into());
        let old = output(&old).unwrap();
        // CPython: sha256(pickle((sha256(pickle("42")), tuple(range(16)), None))).
        assert_eq!(
            old,
            "0 63921f8159563637aa932c18cfc4224074360df1a31b1c60a90e3b9363805a81 12181739546299357825\n"
        );
        assert_ne!(old.lines().next(), base.lines().next());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let cases: Vec<(HashArgs, &str)> = vec![
            (args("sha256", "0,1,x,3", 2), "token at index 2"),
            (args("sha256", "0,1,-1", 2), "\"-1\""),
            (args("sha256", "0,1,4294967296", 2), "\"4294967296\""),
            (
                args("sha256", "0,,1", 2),
                "empty entry before token index 1",
            ),
            (args("sha256", "[1, 2.5]", 2), "token at index 1"),
            (args("sha256", "[1, 2", 2), "invalid JSON array"),
            (args("sha256", "0,1", 0), "--block-size must be at least 1"),
            (
                args("sha256-cbor", "0,1", 2),
                "did you mean \"sha256_cbor\"",
            ),
            (args("xxhash", "0,1", 2), "pass a seed"),
            (
                HashArgs {
                    vllm_version: "0.12".into(),
                    ..args("sha256", "0,1", 2)
                },
                "unknown vLLM version",
            ),
            (
                HashArgs {
                    vllm_version: "0.11".into(),
                    ..args("sha256", "0,1", 2)
                },
                "os.urandom",
            ),
            (
                HashArgs {
                    tokens_file: Some(PathBuf::from("/nonexistent/kvsim/tokens")),
                    ..args("sha256", "0,1", 2)
                },
                "exactly one of",
            ),
        ];
        for (a, want) in cases {
            let err = output(&a).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(want), "want {want:?} in {msg:?}");
        }
        let mut missing = args("sha256", "", 2);
        missing.tokens = None;
        missing.tokens_file = Some(PathBuf::from("/nonexistent/kvsim/tokens"));
        assert!(format!("{:#}", output(&missing).unwrap_err())
            .contains("reading /nonexistent/kvsim/tokens"));
    }

    #[test]
    fn xxhash_with_seed_prints_16_byte_digests() {
        let mut a = args("xxhash_cbor", &range_csv(16), 16);
        a.seed = Some("pod-0".into());
        let text = output(&a).unwrap();
        let fields: Vec<&str> = text.trim_end().split(' ').collect();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[1].len(), 32);
        let digest = crate::kv::hash::BlockDigest::from_hex(fields[1]).unwrap();
        assert_eq!(fields[2], digest.event_hash().to_string());
    }

    #[test]
    fn short_input_prints_nothing() {
        assert_eq!(output(&args("sha256", "1,2,3", 16)).unwrap(), "");
        assert_eq!(output(&args("sha256", "", 16)).unwrap(), "");
    }

    #[test]
    fn clap_flags() {
        let cli = Cli::try_parse_from([
            "hash",
            "--algo",
            "sha256",
            "--block-size",
            "16",
            "--tokens",
            "-1,2",
            "--cache-salt",
            "s",
            "--vllm-version",
            "0.11",
            "--seed",
            "42",
        ])
        .unwrap();
        assert_eq!(cli.args.tokens.as_deref(), Some("-1,2"));
        assert_eq!(cli.args.vllm_version, "0.11");
        assert_eq!(cli.args.cache_salt.as_deref(), Some("s"));
        let cli = Cli::try_parse_from([
            "hash",
            "--algo",
            "sha256",
            "--block-size",
            "16",
            "--tokens-file",
            "t.json",
        ])
        .unwrap();
        assert_eq!(cli.args.vllm_version, "0.33");
        assert_eq!(cli.args.tokens_file, Some(PathBuf::from("t.json")));
        // Exactly one token source is required.
        assert!(Cli::try_parse_from(["hash", "--algo", "sha256", "--block-size", "16"]).is_err());
        assert!(Cli::try_parse_from([
            "hash",
            "--algo",
            "sha256",
            "--block-size",
            "16",
            "--tokens",
            "1",
            "--tokens-file",
            "t"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "hash",
            "--algo",
            "sha256",
            "--block-size",
            "x",
            "--tokens",
            "1"
        ])
        .is_err());
    }

    #[test]
    fn token_list_parsing() {
        assert_eq!(
            parse_token_list(" 1, 2 ,3\n4\t5,\n").unwrap(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(parse_token_list("").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_token_list("[]").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_token_list("[4294967295]").unwrap(), [u32::MAX]);
        assert_eq!(
            parse_token_list("1 2 abc").unwrap_err(),
            TokenListError::BadToken {
                index: 2,
                value: "abc".into()
            }
        );
        assert_eq!(
            parse_token_list("[1, -2]").unwrap_err(),
            TokenListError::BadToken {
                index: 1,
                value: "-2".into()
            }
        );
        assert_eq!(
            parse_token_list(",1").unwrap_err(),
            TokenListError::EmptyEntry { index: 0 }
        );
    }
}
