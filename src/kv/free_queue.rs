//! vLLM's `FreeKVCacheBlockQueue`: an intrusive doubly-linked list of block ids.
//!
//! Free blocks, including cached blocks with ref count 0 that are still
//! hit-able, sit here in eviction order: the head is evicted (reused) first.
//! A prefix hit unlinks a block from the middle in O(1), which is why this is
//! a linked list over arrays and not a `VecDeque`.

const NIL: u32 = u32::MAX;
/// `prev` of a block that is not in the queue.
const OUT: u32 = u32::MAX - 1;

/// A block's neighbours, in one word so an unlink touches one cache line
/// per block.
#[derive(Copy, Clone, Debug)]
struct Link {
    /// Previous block, [`NIL`] at the head, [`OUT`] when not queued.
    prev: u32,
    /// Next block, [`NIL`] at the tail.
    next: u32,
}

/// Doubly-linked list over block ids `0..n`, with O(1) push, pop and unlink.
#[derive(Clone, Debug)]
pub struct FreeQueue {
    links: Vec<Link>,
    head: u32,
    tail: u32,
    len: u32,
}

impl FreeQueue {
    /// A queue holding every block `0..n_blocks` in id order.
    pub fn new(n_blocks: u32) -> FreeQueue {
        assert!(n_blocks < OUT, "block ids must stay below the sentinels");
        let links = (0..n_blocks)
            .map(|i| Link {
                prev: if i == 0 { NIL } else { i - 1 },
                next: if i + 1 == n_blocks { NIL } else { i + 1 },
            })
            .collect();
        FreeQueue {
            links,
            head: if n_blocks == 0 { NIL } else { 0 },
            tail: if n_blocks == 0 { NIL } else { n_blocks - 1 },
            len: n_blocks,
        }
    }

    /// Number of blocks in the queue.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when no block is free.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `block` is currently in the queue.
    pub fn contains(&self, block: u32) -> bool {
        self.links[block as usize].prev != OUT
    }

    /// Removes and returns the head (the next block to reuse).
    pub fn pop_front(&mut self) -> Option<u32> {
        if self.head == NIL {
            return None;
        }
        let b = self.head;
        self.unlink(b);
        Some(b)
    }

    /// Unlinks `block` from anywhere in the queue. The block must be queued.
    pub fn unlink(&mut self, block: u32) {
        let Link { prev: p, next: n } = self.links[block as usize];
        assert!(p != OUT, "block {block} is not in the free queue");
        if p == NIL {
            self.head = n;
        } else {
            self.links[p as usize].next = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.links[n as usize].prev = p;
        }
        self.links[block as usize] = Link {
            prev: OUT,
            next: NIL,
        };
        self.len -= 1;
    }

    /// Appends `block` at the tail (evicted last).
    pub fn push_back(&mut self, block: u32) {
        assert!(!self.contains(block), "block {block} is already free");
        self.links[block as usize] = Link {
            prev: self.tail,
            next: NIL,
        };
        if self.tail == NIL {
            self.head = block;
        } else {
            self.links[self.tail as usize].next = block;
        }
        self.tail = block;
        self.len += 1;
    }

    /// Puts `blocks` at the head so that `blocks[0]` becomes the new head
    /// (vLLM's `prepend_n`: the given order is kept).
    pub fn push_front_n(&mut self, blocks: &[u32]) {
        for &b in blocks.iter().rev() {
            self.push_front(b);
        }
    }

    fn push_front(&mut self, block: u32) {
        assert!(!self.contains(block), "block {block} is already free");
        self.links[block as usize] = Link {
            prev: NIL,
            next: self.head,
        };
        if self.head == NIL {
            self.tail = block;
        } else {
            self.links[self.head as usize].prev = block;
        }
        self.head = block;
        self.len += 1;
    }

    /// Block ids from head to tail (for tests and debugging).
    pub fn to_vec(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.len as usize);
        let mut cur = self.head;
        while cur != NIL {
            out.push(cur);
            cur = self.links[cur as usize].next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn starts_in_id_order_and_unlinks_from_middle() {
        let mut q = FreeQueue::new(5);
        assert_eq!(q.to_vec(), vec![0, 1, 2, 3, 4]);
        q.unlink(2);
        assert_eq!(q.to_vec(), vec![0, 1, 3, 4]);
        assert_eq!(q.pop_front(), Some(0));
        q.push_back(2);
        q.push_front_n(&[0]);
        assert_eq!(q.to_vec(), vec![0, 1, 3, 4, 2]);
        assert_eq!(q.len(), 5);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Pop,
        Unlink(u32),
        PushBack(u32),
        PushFront(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Pop),
            (0u32..16).prop_map(Op::Unlink),
            (0u32..16).prop_map(Op::PushBack),
            (0u32..16).prop_map(Op::PushFront),
        ]
    }

    proptest! {
        /// The linked list behaves exactly like a naive `VecDeque` model.
        #[test]
        fn matches_naive_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut q = FreeQueue::new(16);
            let mut model: VecDeque<u32> = (0..16).collect();
            for op in ops {
                match op {
                    Op::Pop => prop_assert_eq!(q.pop_front(), model.pop_front()),
                    Op::Unlink(b) => if model.contains(&b) {
                        q.unlink(b);
                        model.retain(|&x| x != b);
                    },
                    Op::PushBack(b) => if !model.contains(&b) {
                        q.push_back(b);
                        model.push_back(b);
                    },
                    Op::PushFront(b) => if !model.contains(&b) {
                        q.push_front_n(&[b]);
                        model.push_front(b);
                    },
                }
                prop_assert_eq!(q.to_vec(), model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(q.len() as usize, model.len());
                for b in 0..16 {
                    prop_assert_eq!(q.contains(b), model.contains(&b));
                }
            }
        }
    }
}
