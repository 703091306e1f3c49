//! The event queue: one total order over all events, defined here and only here.
//!
//! Events pop in order of `(time, class, seq)`: earliest time first; at equal
//! times by [`EventClass`] (declaration order below); at equal time and class
//! in insertion order (`seq` is a per-queue counter). The derived `Ord` on
//! [`Key`] is that order.

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

/// Bits of [`Key::packed`] below the class byte.
const SEQ_BITS: u32 = 56;

impl Key {
    /// The key as one integer whose order is the derived `Ord` of [`Key`]
    /// (time, then class, then seq), so the heap compares one `u128`.
    fn packed(self) -> u128 {
        debug_assert!(self.seq < 1 << SEQ_BITS);
        ((self.time.as_ns() as u128) << 64) | ((self.class as u128) << SEQ_BITS) | self.seq as u128
    }

    fn unpack(k: u128) -> Key {
        const CLASSES: [EventClass; 6] = [
            EventClass::TransferDone,
            EventClass::StepEnd,
            EventClass::IndexUpdate,
            EventClass::MetricsScrape,
            EventClass::Dispatch,
            EventClass::Arrival,
        ];
        Key {
            time: SimTime((k >> 64) as u64),
            class: CLASSES[((k >> SEQ_BITS) & 0xff) as usize],
            seq: (k as u64) & ((1 << SEQ_BITS) - 1),
        }
    }
}

/// A priority queue of `T` payloads in [`Key`] order.
#[derive(Debug)]
pub struct EventQueue<T> {
    heap: BinaryHeap<Reverse<(u128, Slot<T>)>>,
    seq: u64,
    now: SimTime,
}

/// Wrapper so payloads need no `Ord`: only the key orders (keys are unique).
#[derive(Debug)]
struct Slot<T>(T);

impl<T> PartialEq for Slot<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
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
        self.heap.push(Reverse((key.packed(), Slot(payload))));
    }

    /// Removes the next event and advances `now` to its time.
    pub fn pop(&mut self) -> Option<(Key, T)> {
        let Reverse((packed, Slot(p))) = self.heap.pop()?;
        let key = Key::unpack(packed);
        debug_assert!(key.time >= self.now);
        self.now = key.time;
        Some((key, p))
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
        Key::unpack((i as u128 % 6) << SEQ_BITS).class
    }

    proptest! {
        /// Packing keeps the order of keys and loses nothing.
        #[test]
        fn packed_keys_order_like_keys(
            a in (any::<u64>(), 0u8..6, 0u64..1 << SEQ_BITS),
            b in (any::<u64>(), 0u8..6, 0u64..1 << SEQ_BITS),
        ) {
            let ka = Key { time: SimTime(a.0), class: class(a.1), seq: a.2 };
            let kb = Key { time: SimTime(b.0), class: class(b.1), seq: b.2 };
            prop_assert_eq!(ka.packed().cmp(&kb.packed()), ka.cmp(&kb));
            prop_assert_eq!(Key::unpack(ka.packed()), ka);
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
