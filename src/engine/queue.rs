//! The event queue, and *the* event order: defined here and only here.
//!
//! Events take effect in order of `(time, class, tie)`: earliest time first;
//! at equal times by [`EventClass`] (declaration order below); at equal time
//! and class:
//! - within one queue, in insertion order (`seq`, a per-queue counter; the
//!   derived `Ord` on [`Key`] is this order);
//! - a router event (the cluster's queue: arrivals, transfer wake-ups, hold
//!   timeouts) before a pod's own events (its step ends and the requests
//!   dispatched to it, kept by the pod's lane in `cluster::lane` and run in
//!   the same `(time, class)` order);
//! - what pods' calls leave for the router (KV events, finished requests, KV
//!   pulls) is taken in `(time, class, dispatch order, pod index, call)`
//!   order, where dispatch order ranks a dispatch's call among all the
//!   router's dispatches (other calls rank equal).
//!
//! An event scheduled for the current instant in an earlier class (a
//! zero-latency dispatch made by an arrival) takes effect next. The cluster
//! may run such a dispatch only after the instant's later arrivals are
//! routed when the router cannot observe it before then (see
//! `Simulation::barrier_class` in `cluster`): the result is the same.
//!
//! Classes without events of their own still place work: a metrics scrape
//! ([`EventClass::MetricsScrape`]) is what a pod's lane snapshots at each
//! scrape instant, and KV-event batches reach the index
//! ([`EventClass::IndexUpdate`]) in their own queue, applied before any
//! arrival they precede.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::time::SimTime;

/// Same-time ordering of event kinds, earliest first.
///
/// A pod's step end is processed before anything else at the same instant,
/// so tokens and frees it produces are visible to routing decisions and KV
/// events made at that instant; KV events reach the index before a
/// metrics scrape, and both before new arrivals are routed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventClass {
    /// A KV transfer between pods completes.
    TransferDone,
    /// A pod's engine step completes.
    StepEnd,
    /// A batch of KV events reaches the router's index.
    IndexUpdate,
    /// The router scrapes pod metrics.
    MetricsScrape,
    /// A request reaches a pod (after routing latency).
    Dispatch,
    /// A request arrives at the router.
    Arrival,
}

/// Queue key. The derived `Ord` is the only ordering of events.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// When.
    pub time: SimTime,
    /// Same-time order.
    pub class: EventClass,
    /// Insertion order, for FIFO on ties.
    pub seq: u64,
}

/// Layout of a packed key, high to low: time (64 bits), class (3), seq
/// (37: 137 billion events), payload slot (24: 16 million pending events).
/// The slot never decides the order: seqs are unique.
const SEQ_BITS: u32 = 37;
const SLOT_BITS: u32 = 24;
const CLASS_SHIFT: u32 = SEQ_BITS + SLOT_BITS;

impl Key {
    /// The key as one integer whose order is the derived `Ord` of [`Key`]
    /// (time, then class, then seq), with `slot` in the low bits, so the
    /// heap holds and compares plain `u128`s.
    fn packed(self, slot: u32) -> u128 {
        assert!(self.seq < 1 << SEQ_BITS, "event sequence space exhausted");
        assert!(slot < 1 << SLOT_BITS, "too many pending events");
        ((self.time.as_ns() as u128) << 64)
            | ((self.class as u128) << CLASS_SHIFT)
            | ((self.seq as u128) << SLOT_BITS)
            | slot as u128
    }

    /// The key and payload slot of a packed key.
    fn unpack(k: u128) -> (Key, u32) {
        const CLASSES: [EventClass; 6] = [
            EventClass::TransferDone,
            EventClass::StepEnd,
            EventClass::IndexUpdate,
            EventClass::MetricsScrape,
            EventClass::Dispatch,
            EventClass::Arrival,
        ];
        let low = k as u64;
        let key = Key {
            time: SimTime((k >> 64) as u64),
            class: CLASSES[(low >> CLASS_SHIFT) as usize],
            seq: (low >> SLOT_BITS) & ((1 << SEQ_BITS) - 1),
        };
        (key, (low & ((1 << SLOT_BITS) - 1)) as u32)
    }
}

/// A priority queue of `T` payloads in [`Key`] order. The heap holds packed
/// keys only; payloads wait in a slab, so sifting moves 16 bytes per level.
#[derive(Debug)]
pub struct EventQueue<T> {
    heap: BinaryHeap<Reverse<u128>>,
    payloads: Vec<Option<T>>,
    free_slots: Vec<u32>,
    seq: u64,
    now: SimTime,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            payloads: Vec::new(),
            free_slots: Vec::new(),
            seq: 0,
            now: SimTime::ZERO,
        }
    }
}

impl<T> EventQueue<T> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Time of the last popped event.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `payload` at `time`. Scheduling in the past is a bug.
    pub fn push(&mut self, time: SimTime, class: EventClass, payload: T) {
        assert!(
            time >= self.now,
            "event scheduled at {time} before now {}",
            self.now
        );
        let key = Key {
            time,
            class,
            seq: self.seq,
        };
        self.seq += 1;
        let slot = match self.free_slots.pop() {
            Some(i) => {
                self.payloads[i as usize] = Some(payload);
                i
            }
            None => {
                self.payloads.push(Some(payload));
                (self.payloads.len() - 1) as u32
            }
        };
        self.heap.push(Reverse(key.packed(slot)));
    }

    /// Removes the next event and advances `now` to its time.
    pub fn pop(&mut self) -> Option<(Key, T)> {
        let Reverse(packed) = self.heap.pop()?;
        let (key, slot) = Key::unpack(packed);
        let p = self.payloads[slot as usize]
            .take()
            .expect("a queued key has its payload");
        self.free_slots.push(slot);
        debug_assert!(key.time >= self.now);
        self.now = key.time;
        Some((key, p))
    }

    /// The next event's key, without removing it.
    pub fn peek(&self) -> Option<Key> {
        self.heap.peek().map(|&Reverse(k)| Key::unpack(k).0)
    }

    /// Pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// No pending events.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn class(i: u8) -> EventClass {
        Key::unpack((i as u128 % 6) << CLASS_SHIFT).0.class
    }

    proptest! {
        /// Packing keeps the order of keys and loses nothing.
        #[test]
        fn packed_keys_order_like_keys(
            a in (any::<u64>(), 0u8..6, 0u64..1 << SEQ_BITS, 0u32..1 << SLOT_BITS),
            b in (any::<u64>(), 0u8..6, 0u64..1 << SEQ_BITS, 0u32..1 << SLOT_BITS),
        ) {
            let ka = Key { time: SimTime(a.0), class: class(a.1), seq: a.2 };
            let kb = Key { time: SimTime(b.0), class: class(b.1), seq: b.2 };
            if ka != kb {
                prop_assert_eq!(ka.packed(a.3).cmp(&kb.packed(b.3)), ka.cmp(&kb));
            }
            prop_assert_eq!(Key::unpack(ka.packed(a.3)), (ka, a.3));
        }
    }

    #[test]
    fn orders_by_time_then_class_then_insertion() {
        let mut q = EventQueue::new();
        q.push(SimTime(5), EventClass::Arrival, "a5");
        q.push(SimTime(5), EventClass::StepEnd, "s5");
        q.push(SimTime(1), EventClass::Arrival, "a1");
        q.push(SimTime(5), EventClass::Arrival, "a5b");
        q.push(SimTime(5), EventClass::StepEnd, "s5b");
        let order: Vec<_> = std::iter::from_fn(|| q.pop().map(|(_, p)| p)).collect();
        assert_eq!(order, vec!["a1", "s5", "s5b", "a5", "a5b"]);
        assert_eq!(q.now(), SimTime(5));
    }
}
