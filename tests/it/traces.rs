//! Checks on the real traces in `traces/` (numbers computed independently
//! with a short Python script over the same files) and parser fuzzing.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use kvsim::curve::curve_of;
use kvsim::trace::azure::read_azure;
use kvsim::trace::mooncake::read_mooncake;
use kvsim::trace::native::read_native;
use kvsim::trace::reader::ReadOptions;
use kvsim::trace::stats::{StatsAccumulator, TraceStats};
use kvsim::trace::{open_trace, OpenOptions, SkippedLines, TraceFormat};
use proptest::prelude::*;

fn trace_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("traces")
        .join(rel)
}

fn stats(rel: &str, block_size: u32) -> TraceStats {
    let mut acc = StatsAccumulator::new(block_size);
    for r in open_trace(&trace_path(rel), &OpenOptions::default()).unwrap() {
        acc.push(&r.unwrap());
    }
    acc.finish()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn mooncake_conversation_stats() {
    let path = trace_path("mooncake/conversation_trace.jsonl");
    assert_eq!(TraceFormat::detect(&path).unwrap(), TraceFormat::Mooncake);
    let s = stats("mooncake/conversation_trace.jsonl", 16);
    assert_eq!(s.n_requests, 12_031);
    assert!(close(s.duration_s, 3536.999), "{}", s.duration_s);
    assert!(close(s.input_len.mean, 144_793_823.0 / 12_031.0));
    assert!(close(s.output_len.mean, 4_122_048.0 / 12_031.0));
    assert_eq!(s.input_len.max, 126_195);
    assert_eq!(s.n_prompt_tokens, 144_793_823);
    assert_eq!(
        (s.n_blocks_total, s.n_blocks_unique, s.n_blocks_hit_ideal),
        (9_044_013, 5_662_916, 3_381_097)
    );
    let s512 = stats("mooncake/conversation_trace.jsonl", 512);
    assert_eq!(
        (
            s512.n_blocks_total,
            s512.n_blocks_unique,
            s512.n_blocks_hit_ideal
        ),
        (276_491, 170_899, 105_592)
    );
    assert!(close(s512.ideal_hit_rate_blocks, 105_592.0 / 276_491.0));
    assert!(close(
        s512.ideal_hit_rate_tokens,
        105_592.0 * 512.0 / 144_793_823.0
    ));
}

#[test]
fn azure_code_and_conv_stats() {
    let code = stats("azure_llm_2023/AzureLLMInferenceTrace_code.csv", 16);
    assert_eq!(code.n_requests, 8_819);
    assert!(close(code.duration_s, 3435.948056), "{}", code.duration_s);
    assert!(close(code.input_len.mean, 18_059_974.0 / 8_819.0));
    assert!(close(code.output_len.mean, 245_896.0 / 8_819.0));
    // No prefix information: nothing is ever shared.
    assert_eq!(code.n_blocks_hit_ideal, 0);
    assert_eq!(code.n_blocks_unique, code.n_blocks_total);

    let conv = stats("azure_llm_2023/AzureLLMInferenceTrace_conv.csv", 16);
    assert_eq!(conv.n_requests, 19_366);
    assert!(close(conv.duration_s, 3501.721937), "{}", conv.duration_s);
    assert!(close(conv.input_len.mean, 22_361_870.0 / 19_366.0));
    assert!(close(conv.output_len.mean, 4_088_665.0 / 19_366.0));
}

#[test]
fn mooncake_curve_reaches_the_ideal_hit_rate() {
    let open = || {
        open_trace(
            &trace_path("mooncake/conversation_trace.jsonl"),
            &OpenOptions::default(),
        )
        .unwrap()
    };
    let curve = curve_of(open(), 512).unwrap();
    assert_eq!(curve.n_blocks_total, 276_491);
    assert_eq!(curve.n_blocks_unique, 170_899);
    assert_eq!(curve.hit_blocks(u64::MAX), 105_592);
    assert_eq!(curve.hit_blocks(0), 0);
    // Monotone in capacity.
    let caps: Vec<u64> = (0..20).map(|i| 1u64 << i).collect();
    assert!(caps
        .windows(2)
        .all(|w| curve.hit_blocks(w[0]) <= curve.hit_blocks(w[1])));
    // The universal block 0 alone is a hit for every request after the first
    // at any capacity >= 1 block (it is touched last, so always most recent).
    assert!(curve.hit_blocks(1) >= 12_030);
}

fn lines_of(rel: &str, n: usize) -> Vec<String> {
    std::fs::read_to_string(trace_path(rel))
        .unwrap()
        .lines()
        .take(n)
        .map(str::to_string)
        .collect()
}

/// Runs all three parsers, strict and lenient, over `bytes`; they must not panic.
fn parse_all(bytes: &[u8]) {
    for skip in [false, true] {
        let opts = || ReadOptions {
            file: "fuzz".into(),
            skip_bad_lines: skip,
            skipped: SkippedLines::new(),
        };
        let n = read_mooncake(Cursor::new(bytes), 512, opts()).count();
        let m = read_azure(Cursor::new(bytes), opts()).count();
        let k = read_native(Cursor::new(bytes), opts()).count();
        assert!(n + m + k <= 3 * (bytes.len() + 1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        parse_all(&bytes);
    }

    #[test]
    fn mutated_real_lines_never_panic(
        idx in 0usize..40, cut in 0usize..200, pos in 0usize..200, byte in any::<u8>(), which in 0usize..3
    ) {
        let file = ["mooncake/conversation_trace.jsonl", "azure_llm_2023/AzureLLMInferenceTrace_code.csv", "azure_llm_2023/AzureLLMInferenceTrace_conv.csv"][which];
        let lines = lines_of(file, 41);
        let mut text = String::from("{\"kvsim_trace\": 1}\n");
        text.push_str(&lines.join("\n"));
        let mut bytes = text.into_bytes();
        let at = (idx * 97 + pos) % bytes.len();
        bytes[at] = byte;
        bytes.truncate(bytes.len() - cut.min(bytes.len()));
        parse_all(&bytes);
    }

    #[test]
    fn json_like_lines_with_odd_values_never_panic(
        ts in prop_oneof![Just("0".to_string()), Just("-1".to_string()), Just("1e30".to_string()), Just("\"x\"".to_string()), Just("18446744073709551615".to_string())],
        n in prop_oneof![Just("0".to_string()), Just("4294967295".to_string()), Just("4294967296".to_string()), Just("null".to_string()), Just("513".to_string())],
        ids in prop_oneof![Just("[]".to_string()), Just("[0]".to_string()), Just("[0, 1]".to_string()), Just("[-1]".to_string()), Just("{}".to_string())],
    ) {
        let moon = format!("{{\"timestamp\": {ts}, \"input_length\": {n}, \"output_length\": {n}, \"hash_ids\": {ids}}}\n");
        let native = format!("{{\"kvsim_trace\": 1}}\n{{\"arrival_ns\": {ts}, \"hash_ids\": {ids}, \"tokens_per_id\": {n}, \"input_length\": {n}, \"output_length\": 1}}\n");
        parse_all(moon.as_bytes());
        parse_all(native.as_bytes());
        for r in read_native(Cursor::new(native.as_bytes()), ReadOptions::strict("n")).flatten() {
            // Whatever parses must hash without panicking at any block size.
            for bs in [16u32, 512, 1000] {
                let _ = r.prompt.block_keys(bs, None);
            }
        }
    }
}

#[test]
fn example_scenario_fragments_open() {
    use kvsim::engine::rng::RngStreams;
    use kvsim::trace::open_workload;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    let mut counts = Vec::new();
    for p in &names {
        let f: kvsim::scenario::Scenario =
            serde_yaml_ng::from_str(&std::fs::read_to_string(p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let stream = open_workload(&f.workload, &dir, &RngStreams::new(1)).unwrap();
        let mut last = 0;
        let mut n = 0u64;
        for r in stream {
            let r = r.unwrap();
            assert!(r.arrival_ns >= last && r.id == n, "{}", p.display());
            last = r.arrival_ns;
            n += 1;
        }
        counts.push((p.file_name().unwrap().to_string_lossy().into_owned(), n));
    }
    let get = |name: &str| counts.iter().find(|(n, _)| n == name).map(|x| x.1);
    assert_eq!(get("azure_code.yaml"), Some(2000));
    assert_eq!(get("azure_conv.yaml"), Some(19_366));
    assert_eq!(get("llm_d_benchmark_shared_prefix.yaml"), Some(3600));
    assert_eq!(get("sglang_generated_shared_prefix.yaml"), Some(1024));
    assert!(get("multi_turn_chat.yaml").unwrap() >= 400);
    assert!(get("mooncake_conversation.yaml").unwrap() > 1000);
}
