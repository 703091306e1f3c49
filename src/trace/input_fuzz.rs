//! Property: no edit of a real trace line makes a reader panic. Lines of
//! the shipped Mooncake, Azure and native traces, with byte ranges replaced
//! by hostile tokens, either fail with `file:line` or are skipped and
//! counted (`--skip-bad-lines`); what is read keeps the reader's promises
//! (ids in order, times non-decreasing) and hashes into block keys.

use std::io::BufRead;
use std::path::Path;

use proptest::prelude::*;

use super::error::{SkippedLines, TraceError};
use super::reader::ReadOptions;
use super::request::TraceRequest;

/// Tokens a broken or hostile trace might hold.
const HOSTILE: &[&str] = &[
    "-1",
    "0",
    "1e308",
    "-1e308",
    "NaN",
    "18446744073709551616",
    "4294967296",
    "\"x\"",
    "null",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\"",
    "\\",
    "ü",
    "\u{0}",
    "\r",
    "\n",
    "",
    "2023-13-45 99:99:99.9",
];

/// The first lines of each shipped trace, with the reader for its format.
fn samples() -> Vec<(&'static str, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let head = |p: &str, n: usize| -> String {
        let f = std::fs::File::open(root.join(p)).unwrap();
        let lines: Vec<String> = std::io::BufReader::new(f)
            .lines()
            .take(n)
            .map(Result::unwrap)
            .collect();
        lines.join("\n") + "\n"
    };
    vec![
        ("mooncake", head("mooncake/conversation_trace.jsonl", 6)),
        (
            "azure",
            head("azure_llm_2023/AzureLLMInferenceTrace_conv.csv", 6),
        ),
        ("native", head("quickstart.jsonl", 6)),
    ]
}

fn read(format: &str, text: &str, skip: bool) -> (Vec<Result<TraceRequest, TraceError>>, u64) {
    let skipped = SkippedLines::new();
    let opts = ReadOptions {
        file: "t".into(),
        skip_bad_lines: skip,
        skipped: skipped.clone(),
    };
    let input = text.as_bytes();
    let out: Vec<_> = match format {
        "mooncake" => super::mooncake::read_mooncake(input, 512, opts).collect(),
        "azure" => super::azure::read_azure(input, opts).collect(),
        _ => super::native::read_native(input, opts).collect(),
    };
    (out, skipped.n_skipped())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::test_support::proptest_cases(1024)))]
    #[test]
    fn edited_trace_lines_error_or_skip_but_never_panic(
        which in 0usize..3,
        edits in prop::collection::vec((any::<usize>(), 0usize..8, 0..HOSTILE.len()), 1..5),
    ) {
        let (format, mut text) = samples().swap_remove(which);
        for (at, len, token) in edits {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + len).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(at..end, HOSTILE[token]);
        }
        let (strict, _) = read(format, &text, false);
        if let Some(Err(e)) = strict.last() {
            let msg = e.to_string();
            prop_assert!(msg.starts_with("t:"), "{msg}");
        }
        prop_assert!(strict.iter().rev().skip(1).all(Result::is_ok), "reading goes on after an error");
        let (lenient, n_skipped) = read(format, &text, true);
        let reqs: Vec<TraceRequest> = lenient.into_iter().map(Result::unwrap).collect();
        let n_lines = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        prop_assert!(reqs.len() as u64 + n_skipped <= n_lines);
        for (i, r) in reqs.iter().enumerate() {
            prop_assert_eq!(r.id, i as u64);
            if i > 0 {
                prop_assert!(r.arrival_ns >= reqs[i - 1].arrival_ns);
            }
            let keys = r.prompt.block_keys(16, r.cache_salt.as_deref());
            prop_assert_eq!(keys.len(), r.prompt.n_full_blocks(16));
        }
    }
}
