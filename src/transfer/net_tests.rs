//! Hand-computed and property tests of [`TransferNet`].
//!
//! Reference request: Llama-3.2-1B, 1000 prompt tokens at bs 16 ⇒ 63 blocks, 2016 descriptors,
//! 33 030 144 bytes (31.5 MiB); fixed time with defaults 1 ms + 2016 × 2 µs = 5.032 ms.

use proptest::prelude::*;

use super::cost::{flow_time, lcm, KvShape};
use super::net::{TransferDone, TransferId, TransferNet};
use super::spec::TransferSpec;
use crate::catalog::model;
use crate::engine::time::SimTime;

const BYTES_63: u64 = 33_030_144;
const FIXED_63_NS: u64 = 5_032_000;
/// With `rdma_bytes_per_s: 32e9` (32 bytes/ns), 63 blocks flow in exactly this long.
const FLOW_63_AT_32_NS: u64 = 1_032_192;

/// No handshake, no fixed cost, one GPU per node, 32 GB/s NICs: flow times are exact.
const BARE: &str =
    "{t_handshake_ms: 0, t_launch_us: 0, t_desc_us: 0, gpus_per_node: 1, rdma_bytes_per_s: 32e9}";

fn net(yaml: &str, pod_tps: &[u32]) -> TransferNet {
    let spec: TransferSpec = serde_yaml_ng::from_str(yaml).unwrap();
    TransferNet::new(spec.resolve().unwrap(), pod_tps).unwrap()
}

fn kv(tp: u32) -> KvShape {
    KvShape::for_pod(model("Llama-3.2-1B").unwrap(), 16, tp)
}

fn t(ns: u64) -> SimTime {
    SimTime(ns)
}

/// Runs everything to completion; returns completions by id.
fn finish_all(n: &mut TransferNet) -> Vec<TransferDone> {
    let mut done = n.pop_completed(t(1_000_000_000_000_000));
    done.sort_by_key(|d| d.id);
    done
}

#[test]
fn known_request_under_each_link_type() {
    // RDMA, pods on separate nodes: 33 030 144 B / 40 B/ns = 825 753.6 ⇒ 825 754 ns.
    let mut n = net("{t_handshake_ms: 0, gpus_per_node: 1}", &[1, 1]);
    let id = n.start(t(0), 0, 1, 63, &kv(1));
    let d = &finish_all(&mut n)[0];
    assert_eq!(d.id, id);
    let s = &d.stats;
    assert_eq!(
        (s.bytes_per_rank, s.bytes_total, s.n_desc),
        (BYTES_63, BYTES_63, 2016)
    );
    assert_eq!(
        (s.queued_ns, s.fixed_ns, s.flow_ns),
        (0, FIXED_63_NS, 825_754)
    );
    assert_eq!(s.done_at, t(5_857_754));
    assert!(!s.intra_node);
    assert_eq!(s.flow_ns, flow_time(BYTES_63 as f64, 40e9).as_ns());

    // NVLink, both pods on node 0: / 300 B/ns = 110 100.48 ⇒ 110 101 ns.
    let mut n = net("{t_handshake_ms: 0}", &[1, 1]);
    n.start(t(0), 0, 1, 63, &kv(1));
    let s = &finish_all(&mut n)[0].stats;
    assert!(s.intra_node);
    assert_eq!(s.flow_ns, 110_101);
    assert_eq!(s.done_at, t(FIXED_63_NS + 110_101));

    // TCP fallback: / 2 B/ns = 16 515 072 ns exactly.
    let mut n = net(
        "{t_handshake_ms: 0, gpus_per_node: 1, backend: tcp}",
        &[1, 1],
    );
    n.start(t(0), 0, 1, 63, &kv(1));
    let s = &finish_all(&mut n)[0].stats;
    assert_eq!(s.flow_ns, 16_515_072);
    assert_eq!(s.done_at, t(FIXED_63_NS + 16_515_072));
}

#[test]
fn handshake_once_per_pair_and_shared_by_concurrent_first_transfers() {
    // Default handshake 2 s.
    let mut n = net("{gpus_per_node: 1}", &[1, 1, 1]);
    let a = n.start(t(0), 0, 1, 63, &kv(1));
    let b = n.start(t(1_000_000_000), 0, 1, 63, &kv(1));
    let first = n.pop_completed(t(3_000_000_000));
    assert_eq!(first.iter().map(|d| d.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(first[0].stats.queued_ns, 2_000_000_000);
    // B waits for A's handshake: 1 s left of it.
    assert_eq!(first[1].stats.queued_ns, 1_000_000_000);
    // Both start flowing at 2 s + 5.032 ms on the same links: each at half rate, same end.
    assert_eq!(first[0].stats.done_at, first[1].stats.done_at);
    assert_eq!(first[0].stats.flow_ns, 2 * 825_754);

    let now = t(3_000_000_000);
    let c = n.start(now, 0, 1, 63, &kv(1)); // same pair: no handshake again
    let d = n.start(now, 0, 2, 63, &kv(1)); // new decode pod
    let e = n.start(now, 1, 0, 63, &kv(1)); // reverse direction is a new pair
    let done = finish_all(&mut n);
    let q = |id: TransferId| done.iter().find(|x| x.id == id).unwrap().stats.queued_ns;
    assert_eq!(q(c), 0);
    assert_eq!(q(d), 2_000_000_000);
    assert_eq!(q(e), 2_000_000_000);

    // t_handshake_ms: 0 disables it.
    let mut n = net("{gpus_per_node: 1, t_handshake_ms: 0}", &[1, 1]);
    n.start(t(7), 0, 1, 1, &kv(1));
    assert_eq!(finish_all(&mut n)[0].stats.queued_ns, 0);
}

#[test]
fn two_concurrent_transfers_on_one_link_each_take_twice_as_long() {
    let mut n = net(BARE, &[1, 1, 1]);
    n.start(t(0), 0, 1, 63, &kv(1));
    assert_eq!(finish_all(&mut n)[0].stats.flow_ns, FLOW_63_AT_32_NS);

    // Same prefill pod: they share its NIC egress.
    let mut n = net(BARE, &[1, 1, 1]);
    n.start(t(0), 0, 1, 63, &kv(1));
    n.start(t(0), 0, 2, 63, &kv(1));
    for d in finish_all(&mut n) {
        assert_eq!(d.stats.flow_ns, 2 * FLOW_63_AT_32_NS);
    }
    // Same decode pod: they share its NIC ingress.
    let mut n = net(BARE, &[1, 1, 1]);
    n.start(t(0), 1, 0, 63, &kv(1));
    n.start(t(0), 2, 0, 63, &kv(1));
    for d in finish_all(&mut n) {
        assert_eq!(d.stats.flow_ns, 2 * FLOW_63_AT_32_NS);
    }
    // With the default fixed cost only the bytes part doubles.
    let mut n = net(
        "{t_handshake_ms: 0, gpus_per_node: 1, rdma_bytes_per_s: 32e9}",
        &[1, 1, 1],
    );
    n.start(t(0), 0, 1, 63, &kv(1));
    n.start(t(0), 0, 2, 63, &kv(1));
    for d in finish_all(&mut n) {
        assert_eq!(d.stats.done_at, t(FIXED_63_NS + 2 * FLOW_63_AT_32_NS));
    }
}

#[test]
fn a_transfer_starting_half_way_slows_the_first() {
    // T1 alone at 32 B/ns; T2 on the same egress starts when T1 has moved half its bytes.
    // T1: B/2 left at 16 B/ns ⇒ +1 032 192 ⇒ ends at 1 548 288.
    // T2: B/2 by then, the rest alone at 32 B/ns ⇒ +516 096 ⇒ ends at 2 064 384.
    let half = FLOW_63_AT_32_NS / 2;
    let mut n = net(BARE, &[1, 1, 1]);
    let t1 = n.start(t(0), 0, 1, 63, &kv(1));
    let t2 = n.start(t(half), 0, 2, 63, &kv(1));
    let done = finish_all(&mut n);
    assert_eq!((done[0].id, done[1].id), (t1, t2));
    assert_eq!(done[0].stats.done_at, t(1_548_288));
    assert_eq!(done[1].stats.done_at, t(2_064_384));
    assert_eq!(done[1].stats.flow_ns, 1_548_288);
    for d in &done {
        assert!((d.stats.delivered_bytes - BYTES_63 as f64).abs() < 1e-3);
    }
}

#[test]
fn different_nics_do_not_interfere() {
    // Two GPUs per node: pods 0, 1 on node 0; pods 2, 3 on node 1.
    let cfg = "{t_handshake_ms: 0, t_launch_us: 0, t_desc_us: 0, gpus_per_node: 2, rdma_bytes_per_s: 32e9}";
    let mut n = net(cfg, &[1, 1, 1, 1]);
    n.start(t(0), 0, 2, 63, &kv(1));
    n.start(t(0), 1, 3, 63, &kv(1));
    // NVLink egress of GPU 0 is not its NIC: an intra-node pull from pod 0 does not slow it.
    n.start(t(0), 0, 1, 63, &kv(1));
    let done = finish_all(&mut n);
    assert_eq!(done[0].stats.flow_ns, FLOW_63_AT_32_NS);
    assert_eq!(done[1].stats.flow_ns, FLOW_63_AT_32_NS);
    assert_eq!(done[2].stats.flow_ns, 110_101);

    // tp 2 pods: each rank pair uses its own NICs, half the bytes each, in parallel.
    let mut n = net(cfg, &[2, 2]);
    n.start(t(0), 0, 1, 63, &kv(2));
    let s = &finish_all(&mut n)[0].stats;
    assert_eq!(s.bytes_per_rank, BYTES_63 / 2);
    assert_eq!(s.bytes_total, BYTES_63);
    assert_eq!(s.flow_ns, FLOW_63_AT_32_NS / 2);
}

#[test]
fn unused_share_on_a_link_goes_to_the_other_flows() {
    // Prefill pods 0, 1, 2; decode pods 3, 4; one GPU per node; 32 B/ns.
    // A: 0→3, B: 0→4, C: 1→4, D: 2→4. Pod 4's ingress caps B, C, D at 32/3; A gets 64/3.
    let mut n = net(BARE, &[1; 5]);
    for (p, d) in [(0, 3), (0, 4), (1, 4), (2, 4)] {
        n.start(t(0), p, d, 63, &kv(1));
    }
    for (_, load, cap) in n.link_loads() {
        assert!(load <= cap * (1.0 + 1e-12), "{load} > {cap}");
    }
    let done = finish_all(&mut n);
    // A: B / (64/3) = 1.5 × 1 032 192; then B, C, D keep 32/3: 3 × 1 032 192.
    assert!(done[0].stats.done_at.as_ns().abs_diff(1_548_288) <= 1);
    for d in &done[1..] {
        assert!(d.stats.done_at.as_ns().abs_diff(3_096_576) <= 1);
    }
}

#[test]
fn wakeups_cover_flow_starts_and_generations_change() {
    let mut n = net("{t_handshake_ms: 0, gpus_per_node: 1}", &[1, 1]);
    assert_eq!(n.next_wakeup(), None);
    let g0 = n.generation();
    let id = n.start(t(0), 0, 1, 63, &kv(1));
    assert_ne!(n.generation(), g0);
    // First the bytes start (rates change), then the transfer ends.
    assert_eq!(n.next_wakeup(), Some(t(FIXED_63_NS)));
    assert_eq!(n.next_completion(), None);
    let g1 = n.generation();
    assert!(n.pop_completed(t(FIXED_63_NS)).is_empty());
    assert_ne!(n.generation(), g1);
    assert_eq!(n.next_wakeup(), Some(t(5_857_754)));
    assert_eq!(n.next_completion(), Some((t(5_857_754), id)));
    let g2 = n.generation();
    assert!(n.pop_completed(t(5_857_753)).is_empty());
    assert_eq!(n.generation(), g2, "nothing happened, nothing is stale");
    assert_eq!(n.n_in_flight(), 1);
    let done = n.pop_completed(t(5_857_754));
    assert_eq!(done.len(), 1);
    assert_eq!(n.n_in_flight(), 0);
    assert_eq!(n.next_wakeup(), None);
}

#[test]
fn equal_end_times_pop_in_id_order() {
    let mut n = net(BARE, &[1, 1, 1, 1]);
    let a = n.start(t(0), 3, 2, 63, &kv(1));
    let b = n.start(t(0), 1, 0, 63, &kv(1));
    assert_eq!(n.next_completion(), Some((t(FLOW_63_AT_32_NS), a)));
    let done = n.pop_completed(t(FLOW_63_AT_32_NS));
    assert_eq!(done.iter().map(|d| d.id).collect::<Vec<_>>(), [a, b]);
}

#[test]
fn zero_blocks_end_after_the_fixed_time() {
    let mut n = net("{t_handshake_ms: 0, gpus_per_node: 1}", &[1, 1]);
    n.start(t(10), 0, 1, 0, &kv(1));
    let s = &finish_all(&mut n)[0].stats;
    assert_eq!((s.fixed_ns, s.flow_ns, s.bytes_total), (1_000_000, 0, 0));
    assert_eq!(s.done_at, t(1_000_010));
    // With nothing to wait for, it is done at once.
    let mut n = net(BARE, &[1, 1]);
    let id = n.start(t(5), 0, 1, 0, &kv(1));
    assert_eq!(n.pop_completed(t(5))[0].id, id);
}

/// One random step: wait `dt_ns`, optionally pop, then start a transfer.
#[derive(Clone, Debug)]
struct Op {
    dt_ns: u64,
    pop: bool,
    src: u32,
    dst: u32,
    n_blocks: u64,
}

fn op() -> impl Strategy<Value = Op> {
    (0u64..3_000_000, any::<bool>(), 0u32..6, 0u32..6, 0u64..120).prop_map(
        |(dt_ns, pop, src, dst, n_blocks)| Op {
            dt_ns,
            pop,
            src,
            dst,
            n_blocks,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_transfer_completes_conserving_bytes(
        tps in prop::collection::vec(1u32..=2, 2..6),
        gpus_per_node in 2u32..=4,
        tcp in any::<bool>(),
        handshake_ms in prop::sample::select(vec![0u32, 1, 3]),
        launch_us in 0u32..2000,
        desc_us in 0u32..4,
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let backend = if tcp { "tcp" } else { "rdma" };
        let yaml = format!(
            "{{backend: {backend}, gpus_per_node: {gpus_per_node}, t_handshake_ms: {handshake_ms}, \
             t_launch_us: {launch_us}, t_desc_us: {desc_us}}}"
        );
        let mut n = net(&yaml, &tps);
        let n_pods = tps.len() as u32;
        let cap_max = 300.0_f64; // NVLink, bytes/ns: the fastest link
        let mut now = 0u64;
        let mut popped: Vec<(TransferDone, u64)> = Vec::new();
        let mut n_started = 0u64;
        for o in &ops {
            now += o.dt_ns;
            if o.pop {
                popped.extend(n.pop_completed(t(now)).into_iter().map(|d| (d, now)));
            }
            let (src, dst) = (o.src % n_pods, o.dst % n_pods);
            let id = n.start(t(now), src, dst, o.n_blocks, &kv(tps[dst as usize]));
            prop_assert_eq!(id, TransferId(n_started));
            n_started += 1;
            for (_, load, cap) in n.link_loads() {
                prop_assert!(load <= cap * (1.0 + 1e-9), "link over capacity: {} > {}", load, cap);
            }
        }
        let end = now + 1_000_000_000_000;
        popped.extend(n.pop_completed(t(end)).into_iter().map(|d| (d, end)));
        prop_assert_eq!(n.n_in_flight(), 0);
        prop_assert_eq!(n.next_wakeup(), None);
        prop_assert_eq!(popped.len() as u64, n_started);

        let keys: Vec<(SimTime, TransferId)> =
            popped.iter().map(|(d, _)| (d.stats.done_at, d.id)).collect();
        prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "completions out of order");
        let (mut sum_bytes, mut sum_delivered) = (0.0, 0.0);
        for (d, popped_at) in &popped {
            let s = &d.stats;
            prop_assert!(s.done_at.as_ns() <= *popped_at);
            let flow_start = s.started_at.as_ns() + s.queued_ns + s.fixed_ns;
            prop_assert!(s.done_at.as_ns() >= flow_start);
            prop_assert_eq!(s.done_at.as_ns(), flow_start + s.flow_ns);
            let n_sub = lcm(tps[s.src_pod as usize], tps[s.dst_pod as usize]) as f64;
            let sub_bytes = s.bytes_total as f64 / n_sub;
            // No sub-flow beats the fastest link alone.
            prop_assert!(s.flow_ns as f64 + 1.0 >= sub_bytes / cap_max);
            let slack = n_sub * cap_max + 1e-9 * s.bytes_total as f64 + 1e-6;
            prop_assert!(
                (s.delivered_bytes - s.bytes_total as f64).abs() <= slack,
                "transfer {:?}: delivered {} of {}", d.id, s.delivered_bytes, s.bytes_total
            );
            sum_bytes += s.bytes_total as f64;
            sum_delivered += s.delivered_bytes;
        }
        prop_assert!((sum_delivered - sum_bytes).abs() <= 1e-6 * sum_bytes + popped.len() as f64 * 600.0);
    }
}
