//! A second thread that runs part of the pods between two router events.
//!
//! Why not rayon: on this project's 2-vCPU machines a worker that sleeps
//! between windows wakes late and to cold caches, and work stealing moves
//! pods, with their KV pools, between cores. Measured on the Mooncake
//! benchmark: 0.70 s on one thread, 0.74–0.82 s with `par_iter` over the
//! pods, 1.4–1.5 s with a one-worker pool woken per window, 0.60 s with this
//! helper, which spins between windows (sleeping only after
//! [`SPIN_BEFORE_SLEEP`] without work) and keeps each pod on one thread
//! until the balance of work between the threads is redone.
//!
//! Results do not depend on which thread runs a pod: lanes touch nothing
//! but their own pod.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::lane::{At, Lane};
use crate::pod::engine::Pod;

/// How long the helper waits for work before it sleeps.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_millis(2);
/// Windows between two looks at the balance.
const WINDOWS_PER_BALANCE: u32 = 256;
/// Drop in work imbalance (|main − helper| / total) that a new split of the
/// pods must bring.
const MIN_GAIN_TO_SPLIT: f64 = 0.1;
/// `posted` value that tells the helper to exit.
const QUIT: u64 = u64::MAX;

/// Work the helper does while it waits for a window, a unit at a time: it
/// looks for a window between units, so a unit should be short (µs).
pub trait IdleWork: Send + Sync {
    /// Does one unit; `false` when there is nothing to do now.
    fn work_once(&self) -> bool;
}

/// What the helper runs: its own pods, then whichever of the caller's it
/// claims first, up to `limit`.
struct Job {
    pods: *mut Pod,
    lanes: *mut Lane,
    own: Vec<usize>,
    others: Vec<usize>,
    limit: At,
    /// The pods the helper ran and how long each took.
    work_ns: Vec<(usize, u64)>,
    /// A pod's panic on the helper, for the caller to resume.
    panic: Option<Box<dyn std::any::Any + Send>>,
}

// SAFETY: the pointers are only dereferenced by the helper between a post
// and its completion, while `Crew::run_until` holds the exclusive borrows
// they come from and touches none of the helper's pods (see there).
unsafe impl Send for Job {}

struct Shared {
    /// The last job posted ([`QUIT`]: exit).
    posted: AtomicU64,
    /// The last job the helper finished.
    finished: AtomicU64,
    /// The helper is (about to be) parked: a post must unpark it.
    sleeping: AtomicBool,
    /// Per pod: taken by one of the threads in the current window.
    claimed: Vec<AtomicBool>,
    job: Mutex<Job>,
}

impl Shared {
    /// The job; no thread panics while holding it.
    fn lock_job(&self) -> std::sync::MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this thread is the one to run pod `i` now.
    fn claim(&self, i: usize) -> bool {
        !self.claimed[i].swap(true, Ordering::AcqRel)
    }
}

/// The helper thread and how the pods are split between it and the caller.
pub struct Crew {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    n_posted: u64,
    /// Per pod: run by the helper.
    on_helper: Vec<bool>,
    /// Per pod: run time since the last balance.
    work_ns: Vec<u64>,
    windows_since_balance: u32,
    /// Scratch: this window's due pods, this thread's and the helper's.
    mine: Vec<usize>,
    theirs: Vec<usize>,
}

impl Crew {
    /// A helper for `n_pods` pods, which starts with every other pod and does
    /// `idle` work while it waits; an error if the OS gives no thread.
    pub fn new(n_pods: usize, idle: Option<Arc<dyn IdleWork>>) -> std::io::Result<Crew> {
        let shared = Arc::new(Shared {
            posted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            claimed: (0..n_pods).map(|_| AtomicBool::new(true)).collect(),
            job: Mutex::new(Job {
                pods: std::ptr::null_mut(),
                lanes: std::ptr::null_mut(),
                own: Vec::new(),
                others: Vec::new(),
                limit: super::lane::END,
                work_ns: Vec::new(),
                panic: None,
            }),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kvsim-pods".into())
            .spawn(move || helper_loop(&s, idle.as_deref()))?;
        Ok(Crew {
            shared,
            thread: Some(thread),
            n_posted: 0,
            on_helper: (0..n_pods).map(|i| i % 2 == 1).collect(),
            work_ns: vec![0; n_pods],
            windows_since_balance: 0,
            mine: Vec::new(),
            theirs: Vec::new(),
        })
    }

    /// Runs every lane's events before `limit`: each thread its own pods
    /// first, then the other's that it claims before the other starts them.
    /// A panic on the helper resumes here.
    pub fn run_until(&mut self, pods: &mut [Pod], lanes: &mut [Lane], limit: At) {
        assert_eq!(pods.len(), self.on_helper.len());
        assert_eq!(lanes.len(), self.on_helper.len());
        self.mine.clear();
        self.theirs.clear();
        for (i, lane) in lanes.iter().enumerate() {
            if lane.next_at().is_some_and(|a| a < limit) {
                if self.on_helper[i] {
                    self.theirs.push(i);
                } else {
                    self.mine.push(i);
                }
            }
        }
        let pods_ptr = pods.as_mut_ptr();
        let lanes_ptr = lanes.as_mut_ptr();
        // SAFETY: `pods` and `lanes` are exclusively borrowed for this call,
        // `i` is in bounds, and each pod runs on the one thread that claimed it.
        let run = |i: usize| unsafe { (*lanes_ptr.add(i)).run_until(&mut *pods_ptr.add(i), limit) };
        if self.theirs.is_empty() {
            for &i in &self.mine {
                let t0 = Instant::now();
                run(i);
                self.work_ns[i] += t0.elapsed().as_nanos() as u64;
            }
        } else {
            for &i in self.mine.iter().chain(&self.theirs) {
                self.shared.claimed[i].store(false, Ordering::Relaxed);
            }
            {
                let mut job = self.shared.lock_job();
                job.pods = pods_ptr;
                job.lanes = lanes_ptr;
                job.limit = limit;
                job.own.clone_from(&self.theirs);
                job.others.clone_from(&self.mine);
            }
            self.n_posted += 1;
            self.shared.posted.store(self.n_posted, Ordering::SeqCst);
            if self.shared.sleeping.load(Ordering::SeqCst) {
                if let Some(t) = &self.thread {
                    t.thread().unpark();
                }
            }
            // Waits for the helper even if a pod panics here: its pointers
            // must not outlive the borrows.
            let guard = WaitOnDrop {
                shared: &self.shared,
                n_posted: self.n_posted,
            };
            // With none of its own, this thread leaves the helper's pods on
            // the helper's core.
            let steal = if self.mine.is_empty() {
                0
            } else {
                self.theirs.len()
            };
            for &i in self.mine.iter().chain(self.theirs.iter().rev().take(steal)) {
                if self.shared.claim(i) {
                    let t0 = Instant::now();
                    run(i);
                    self.work_ns[i] += t0.elapsed().as_nanos() as u64;
                }
            }
            drop(guard);
            let mut job = self.shared.lock_job();
            if let Some(panic) = job.panic.take() {
                drop(job);
                std::panic::resume_unwind(panic);
            }
            for &(i, ns) in &job.work_ns {
                self.work_ns[i] += ns;
            }
        }
        self.windows_since_balance += 1;
        if self.windows_since_balance >= WINDOWS_PER_BALANCE {
            self.balance();
        }
    }

    /// Splits the pods anew (heaviest first, each to the lighter side) when
    /// that evens the threads' recent work out by [`MIN_GAIN_TO_SPLIT`].
    fn balance(&mut self) {
        self.windows_since_balance = 0;
        let side = |helper: bool| -> u64 {
            (0..self.work_ns.len())
                .filter(|&i| self.on_helper[i] == helper)
                .map(|i| self.work_ns[i])
                .sum()
        };
        let (main, helper) = (side(false), side(true));
        let mut order: Vec<usize> = (0..self.work_ns.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.work_ns[i]), i));
        let (mut m, mut h) = (0u64, 0u64);
        let mut split = vec![false; self.work_ns.len()];
        for i in order {
            split[i] = h < m;
            *(if split[i] { &mut h } else { &mut m }) += self.work_ns[i];
        }
        // Moving a pod costs its cache: split anew only for a clear gain.
        let total = (main + helper).max(1) as f64;
        let gain = (main.abs_diff(helper) as f64 - m.abs_diff(h) as f64) / total;
        if gain > MIN_GAIN_TO_SPLIT {
            self.on_helper = split;
        }
        // Older work counts for less.
        for w in &mut self.work_ns {
            *w /= 2;
        }
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        self.shared.posted.store(QUIT, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Blocks until the helper finished job `n_posted`.
struct WaitOnDrop<'a> {
    shared: &'a Shared,
    n_posted: u64,
}

impl Drop for WaitOnDrop<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.shared.finished.load(Ordering::Acquire) != self.n_posted {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

fn helper_loop(shared: &Shared, idle: Option<&dyn IdleWork>) {
    let mut seen = 0;
    let (mut own, mut others, mut work_ns) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let mut idle_since = None::<Instant>;
        let mut spins = 0u32;
        loop {
            let p = shared.posted.load(Ordering::Acquire);
            if p != seen {
                seen = p;
                break;
            }
            if idle.is_some_and(|w| w.work_once()) {
                idle_since = None;
                continue;
            }
            // No `yield_now` while spinning: on a 2-vCPU VM each is a
            // syscall that the next post often waits out (measured: the
            // helper took 2-5 µs on average to see a post with them, 0.5 µs
            // without).
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 256 != 0 {
                continue;
            }
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() < SPIN_BEFORE_SLEEP {
                continue;
            }
            shared.sleeping.store(true, Ordering::SeqCst);
            if shared.posted.load(Ordering::SeqCst) == seen {
                std::thread::park();
            }
            shared.sleeping.store(false, Ordering::SeqCst);
        }
        if seen == QUIT {
            return;
        }
        let (pods, lanes, limit) = {
            let job = shared.lock_job();
            own.clone_from(&job.own);
            others.clone_from(&job.others);
            (job.pods, job.lanes, job.limit)
        };
        work_ns.clear();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for &i in own.iter().chain(others.iter().rev()) {
                if !shared.claim(i) {
                    continue;
                }
                // SAFETY: the main thread posted this job, keeps the borrows
                // of `pods` and `lanes` alive until `finished` says it is
                // done, and runs no pod this thread claimed.
                let (pod, lane) = unsafe { (&mut *pods.add(i), &mut *lanes.add(i)) };
                let t0 = Instant::now();
                lane.run_until(pod, limit);
                work_ns.push((i, t0.elapsed().as_nanos() as u64));
            }
        }));
        {
            let mut job = shared.lock_job();
            job.work_ns.clone_from(&work_ns);
            job.panic = ran.err();
        }
        shared.finished.store(seen, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn pods_and_lanes_may_move_between_threads() {
        assert_send::<Pod>();
        assert_send::<Lane>();
    }

    #[test]
    fn balance_splits_heaviest_first_and_only_when_uneven() {
        let mut c = Crew::new(4, None).unwrap();
        assert_eq!(c.on_helper, vec![false, true, false, true]);
        // Even enough (10 vs 10): no change, counts halve.
        c.work_ns = vec![6, 5, 4, 5];
        c.balance();
        assert_eq!(c.on_helper, vec![false, true, false, true]);
        assert_eq!(c.work_ns, vec![3, 2, 2, 2]);
        // 90 vs 12: heaviest stays here, the rest go to the helper.
        c.work_ns = vec![80, 10, 10, 2];
        c.balance();
        assert_eq!(c.on_helper, vec![false, true, true, true]);
    }
}
