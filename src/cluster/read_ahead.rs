//! The workload, read ahead by the pods' helper thread.
//!
//! Reading a request (a trace line's JSON, its prompt) needs nothing of the
//! simulation, yet it lies on the main thread's path between two windows of
//! pod work, while the helper thread waits for the next window. So the helper
//! reads up to [`READ_AHEAD`] requests ahead while it waits, and the main
//! thread takes them in order, reading one itself when none is ready.
//!
//! Which thread read a request changes nothing: the source is read in order,
//! under one lock, and a request read ahead joins the ready queue before the
//! lock is released.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::crew::IdleWork;
use crate::trace::request::TraceRequest;

/// Requests read ahead at most (memory stays bounded, as streaming promises).
pub(super) const READ_AHEAD: usize = 32;

/// A workload that one other thread may read ahead.
pub(super) struct ReadAhead<W> {
    /// The source, locked while a request is read from it.
    source: Mutex<Source<W>>,
    /// Read ahead and not taken yet, in source order.
    ready: Mutex<VecDeque<TraceRequest>>,
    /// `ready.len()`, to look at without the lock.
    n_ready: AtomicUsize,
    /// The source has ended (or panicked): nothing more to read ahead.
    exhausted: AtomicBool,
}

struct Source<W> {
    iter: W,
    /// A panic of the source on the reading-ahead thread, for the taker to
    /// resume where the request would have been.
    panic: Option<Box<dyn Any + Send>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoned only by a panic already on its way: the source's panics on
    // the reading-ahead thread are caught and kept for `next`.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<W: Iterator<Item = TraceRequest>> ReadAhead<W> {
    pub(super) fn new(iter: W) -> ReadAhead<W> {
        ReadAhead {
            source: Mutex::new(Source { iter, panic: None }),
            ready: Mutex::new(VecDeque::with_capacity(READ_AHEAD)),
            n_ready: AtomicUsize::new(0),
            exhausted: AtomicBool::new(false),
        }
    }

    /// The source's next request.
    pub(super) fn next(&self) -> Option<TraceRequest> {
        if let Some(r) = self.take_ready() {
            return Some(r);
        }
        let mut src = lock(&self.source);
        // The other thread may have read one while this one waited.
        if let Some(r) = self.take_ready() {
            return Some(r);
        }
        if let Some(p) = src.panic.take() {
            std::panic::resume_unwind(p);
        }
        if self.exhausted.load(Ordering::Acquire) {
            return None;
        }
        let r = src.iter.next();
        if r.is_none() {
            self.exhausted.store(true, Ordering::Release);
        }
        r
    }

    fn take_ready(&self) -> Option<TraceRequest> {
        if self.n_ready.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = lock(&self.ready);
        let r = q.pop_front();
        self.n_ready.store(q.len(), Ordering::Release);
        r
    }
}

impl<W: Iterator<Item = TraceRequest> + Send> IdleWork for ReadAhead<W> {
    /// Reads one request ahead, unless enough wait, the source has ended or
    /// the main thread is reading.
    fn work_once(&self) -> bool {
        if self.n_ready.load(Ordering::Acquire) >= READ_AHEAD
            || self.exhausted.load(Ordering::Acquire)
        {
            return false;
        }
        let Ok(mut src) = self.source.try_lock() else {
            return false;
        };
        if self.exhausted.load(Ordering::Acquire) {
            return false;
        }
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| src.iter.next()));
        match read {
            Ok(Some(r)) => {
                let mut q = lock(&self.ready);
                q.push_back(r);
                self.n_ready.store(q.len(), Ordering::Release);
                true
            }
            Ok(None) => {
                self.exhausted.store(true, Ordering::Release);
                false
            }
            Err(p) => {
                src.panic = Some(p);
                self.exhausted.store(true, Ordering::Release);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::request::Prompt;
    use std::sync::Arc;

    fn req(id: u64) -> TraceRequest {
        TraceRequest {
            id,
            arrival_ns: id,
            prompt: Prompt::HashIds {
                ids: vec![id],
                tokens_per_id: 16,
                n_tokens: 16,
            },
            output_len: 1,
            session_id: None,
            cache_salt: None,
            output_token_ids: None,
        }
    }

    #[test]
    fn requests_come_out_in_source_order_whoever_reads_them() {
        let n = 2_000u64;
        let ra = Arc::new(ReadAhead::new((0..n).map(req)));
        let helper = {
            let ra = ra.clone();
            std::thread::spawn(move || {
                let mut n_ahead = 0;
                while !ra.exhausted.load(Ordering::Acquire) {
                    n_ahead += u64::from(ra.work_once());
                }
                n_ahead
            })
        };
        let ids: Vec<u64> = std::iter::from_fn(|| ra.next()).map(|r| r.id).collect();
        let n_ahead = helper.join().unwrap();
        assert_eq!(ids, (0..n).collect::<Vec<_>>());
        assert!(n_ahead <= n);
        assert!(ra.next().is_none());
    }

    #[test]
    fn read_ahead_stops_at_the_bound_and_the_end() {
        let ra = ReadAhead::new((0..40).map(req));
        let mut n = 0;
        while ra.work_once() {
            n += 1;
        }
        assert_eq!(n, READ_AHEAD);
        assert_eq!(ra.next().unwrap().id, 0);
        assert!(ra.work_once());
        assert!(!ra.work_once());
        let ids: Vec<u64> = std::iter::from_fn(|| ra.next()).map(|r| r.id).collect();
        assert_eq!(ids, (1..40).collect::<Vec<_>>());
        assert!(!ra.work_once());
    }

    #[test]
    fn a_panic_while_reading_ahead_resumes_at_its_place() {
        let ra = ReadAhead::new((0..5u64).map(|i| {
            assert!(i != 2, "bad line");
            req(i)
        }));
        while ra.work_once() {}
        assert_eq!(ra.next().unwrap().id, 0);
        assert_eq!(ra.next().unwrap().id, 1);
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ra.next()));
        assert!(err.is_err());
    }
}
