//! Recording: per-thread HdrHistograms written from inside the tasks and merged afterwards,
//! the not-run guard that counts expired, shed and cancelled tasks per workload, and the
//! 100 ms time series behind the live line and the plot.
//!
//! # Sharding
//!
//! Each worker thread that runs a task of a workload registers one [`Shard`] with that
//! workload's [`Recorder`] the first time (one lock on the registry per thread and run) and
//! keeps it in a thread-local cache. Every later sample locks only its own shard's mutex,
//! which nobody else touches except the sampler every 100 ms and the final merge, so a
//! sample never waits on another worker.
//!
//! # Timing
//!
//! All latencies are measured from the task's **intended** arrival instant (open loop):
//! queue wait = start - intended, end to end = end - intended. Only tasks whose intended
//! instant falls inside the measurement window (after warmup, before the end) enter the
//! histograms; every task enters the outcome counts.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The largest latency recorded exactly: one hour, in nanoseconds. Larger values saturate.
const MAX_NANOS: u64 = 3_600_000_000_000;

/// A fresh histogram of nanoseconds, 1 ns to one hour, 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NANOS, 3).expect("constant bounds are valid")
}

/// Records `d` in nanoseconds (at least 1, saturating at one hour).
#[inline]
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_NANOS);
    h.saturating_record(ns);
}

/// One worker thread's samples for one workload.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) queue_wait: Histogram<u64>,
    pub(crate) end_to_end: Histogram<u64>,
    /// End-to-end latencies of tasks that ended since the sampler last looked.
    pub(crate) tick_e2e: Histogram<u64>,
    /// Tasks that returned within the load's deadline since the sampler last looked.
    pub(crate) tick_good: u64,
    /// Tasks that started running.
    pub(crate) started: u64,
    /// Tasks that returned.
    pub(crate) completed: u64,
    /// Tasks that panicked (injected).
    pub(crate) panicked: u64,
    /// Tasks that ended (returned or panicked) inside the measurement window.
    pub(crate) ended_in_window: u64,
    /// Tasks intended inside the window that returned within the load's deadline.
    pub(crate) good: u64,
    /// Tasks intended inside the window that started after their caller's deadline
    /// (intended + the load's deadline): work done for nobody.
    pub(crate) wasted: u64,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            queue_wait: new_histogram(),
            end_to_end: new_histogram(),
            tick_e2e: new_histogram(),
            tick_good: 0,
            started: 0,
            completed: 0,
            panicked: 0,
            ended_in_window: 0,
            good: 0,
            wasted: 0,
        }
    }
}

static NEXT_RECORDER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shards, by recorder id.
    static SHARDS: RefCell<Vec<(u64, Arc<Mutex<Shard>>)>> = const { RefCell::new(Vec::new()) };
    /// Set while a generator drops a refused task: its guard must not count it as not run.
    static DISCARDING: Cell<bool> = const { Cell::new(false) };
    /// Set while the pool's shed handler drops a task CoDel shed: its guard counts it shed.
    static SHEDDING: Cell<bool> = const { Cell::new(false) };
}

/// One workload's recording in one run.
#[derive(Debug)]
pub(crate) struct Recorder {
    id: u64,
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
    /// Start and end of the measurement window.
    pub(crate) window: (Instant, Instant),
    /// Accepted tasks dropped without running, before / after the drain deadline.
    not_run_expired: AtomicU64,
    not_run_cancelled: AtomicU64,
    /// Accepted tasks the pool's queue-delay controller shed (told by the shed handler).
    not_run_shed: AtomicU64,
    /// The load's deadline, for goodput.
    deadline: Option<Duration>,
    /// Nanoseconds after `window.0` of the drain deadline; `u64::MAX` until set.
    drain_deadline: AtomicU64,
    /// Set when the results are taken: tasks ending later (released hangs) record nothing.
    closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    pub(crate) fn new(window: (Instant, Instant), deadline: Option<Duration>) -> Arc<Recorder> {
        Arc::new(Recorder {
            id: NEXT_RECORDER.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            window,
            not_run_expired: AtomicU64::new(0),
            not_run_cancelled: AtomicU64::new(0),
            not_run_shed: AtomicU64::new(0),
            deadline,
            drain_deadline: AtomicU64::new(u64::MAX),
            closed: AtomicBool::new(false),
        })
    }

    fn in_window(&self, t: Instant) -> bool {
        t >= self.window.0 && t < self.window.1
    }

    /// Runs `f` on this thread's shard, registering one on first use.
    #[inline]
    fn with_shard<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        let shard = SHARDS.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((_, s)) = cache.iter().find(|(id, _)| *id == self.id) {
                return s.clone();
            }
            // Drop shards of finished runs (their recorders hold them if still needed).
            cache.retain(|(_, s)| Arc::strong_count(s) > 1);
            let s = Arc::new(Mutex::new(Shard::new()));
            lock(&self.shards).push(s.clone());
            cache.push((self.id, s.clone()));
            s
        });
        let mut guard = lock(&shard);
        f(&mut guard)
    }

    /// A task began at `start`, intended at `intended`.
    #[inline]
    pub(crate) fn started(&self, intended: Instant, start: Instant) {
        let measured = self.in_window(intended);
        let waited = start.saturating_duration_since(intended);
        let wasted = self.deadline.is_some_and(|d| waited > d);
        self.with_shard(|s| {
            s.started += 1;
            if measured {
                record(&mut s.queue_wait, waited);
                if wasted {
                    s.wasted += 1;
                }
            }
        });
    }

    /// A task ended at `end` (returned, or is about to panic).
    #[inline]
    pub(crate) fn ended(&self, intended: Instant, end: Instant, panicked: bool) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let measured = self.in_window(intended);
        let in_window = self.in_window(end);
        self.with_shard(|s| {
            if panicked {
                s.panicked += 1;
            } else {
                s.completed += 1;
            }
            if in_window {
                s.ended_in_window += 1;
            }
            let e2e = end.saturating_duration_since(intended);
            let good = !panicked && self.deadline.is_some_and(|d| e2e <= d);
            if good {
                s.tick_good += 1;
            }
            if measured {
                record(&mut s.end_to_end, e2e);
                if good {
                    s.good += 1;
                }
            }
            record(&mut s.tick_e2e, e2e);
        });
    }

    /// Marks the drain deadline: accepted tasks dropped unrun after it count as cancelled.
    pub(crate) fn set_drain_deadline(&self, deadline: Instant) {
        let ns = deadline.saturating_duration_since(self.window.0).as_nanos();
        self.drain_deadline
            .store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn note_not_run(&self) {
        if SHEDDING.with(Cell::get) {
            self.not_run_shed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = Instant::now()
            .saturating_duration_since(self.window.0)
            .as_nanos();
        if u64::try_from(now).unwrap_or(u64::MAX) < self.drain_deadline.load(Ordering::Relaxed) {
            self.not_run_expired.fetch_add(1, Ordering::Relaxed);
        } else {
            self.not_run_cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the end-to-end latencies recorded since the last call, merged, and how many
    /// of those tasks returned within the deadline.
    pub(crate) fn take_tick(&self) -> (Histogram<u64>, u64) {
        let mut merged = new_histogram();
        let mut good = 0;
        let shards: Vec<_> = lock(&self.shards).clone();
        for s in shards {
            // Swap in a fresh histogram (allocated outside the lock), so the worker that
            // owns the shard waits for an O(1) swap, never for a merge.
            let fresh = new_histogram();
            let mut shard = lock(&s);
            let taken = std::mem::replace(&mut shard.tick_e2e, fresh);
            good += std::mem::take(&mut shard.tick_good);
            drop(shard);
            merged.add(&taken).ok();
        }
        (merged, good)
    }

    /// Tasks that returned or panicked so far.
    pub(crate) fn ended_count(&self) -> u64 {
        lock(&self.shards)
            .iter()
            .map(|s| {
                let s = lock(s);
                s.completed + s.panicked
            })
            .sum()
    }

    /// Accepted tasks accounted for so far: started, expired or cancelled.
    pub(crate) fn finish_peek(&self) -> u64 {
        let started: u64 = lock(&self.shards).iter().map(|s| lock(s).started).sum();
        started
            + self.not_run_expired.load(Ordering::Relaxed)
            + self.not_run_cancelled.load(Ordering::Relaxed)
            + self.not_run_shed.load(Ordering::Relaxed)
    }

    /// Stops recording and merges every shard.
    pub(crate) fn finish(&self) -> Totals {
        self.closed.store(true, Ordering::Relaxed);
        let mut t = Totals {
            queue_wait: new_histogram(),
            end_to_end: new_histogram(),
            started: 0,
            completed: 0,
            panicked: 0,
            ended_in_window: 0,
            good: 0,
            wasted: 0,
            expired: self.not_run_expired.load(Ordering::Relaxed),
            shed: self.not_run_shed.load(Ordering::Relaxed),
            cancelled: self.not_run_cancelled.load(Ordering::Relaxed),
        };
        for s in lock(&self.shards).iter() {
            let s = lock(s);
            t.queue_wait.add(&s.queue_wait).ok();
            t.end_to_end.add(&s.end_to_end).ok();
            t.started += s.started;
            t.completed += s.completed;
            t.panicked += s.panicked;
            t.ended_in_window += s.ended_in_window;
            t.good += s.good;
            t.wasted += s.wasted;
        }
        t
    }
}

/// A workload's merged samples and counts.
#[derive(Debug)]
pub(crate) struct Totals {
    pub(crate) queue_wait: Histogram<u64>,
    pub(crate) end_to_end: Histogram<u64>,
    pub(crate) started: u64,
    pub(crate) completed: u64,
    pub(crate) panicked: u64,
    pub(crate) ended_in_window: u64,
    /// Tasks intended inside the window that completed within the load's deadline.
    pub(crate) good: u64,
    /// Tasks intended inside the window that started after their caller's deadline.
    pub(crate) wasted: u64,
    /// Accepted but dropped unrun by a worker before the drain deadline (queue wait limit).
    pub(crate) expired: u64,
    /// Accepted but shed by the pool's queue-delay controller (CoDel).
    pub(crate) shed: u64,
    /// Accepted but dropped unrun after the drain deadline (shutdown gave up on them).
    pub(crate) cancelled: u64,
}

/// Travels inside every task. Dropped without [`disarm`](NotRunGuard::disarm) — the pool
/// dropped the task unrun — it counts the task as expired or cancelled; dropped at all, it
/// returns the task's in-flight token, if any.
#[derive(Debug)]
pub(crate) struct NotRunGuard {
    rec: Arc<Recorder>,
    armed: bool,
    token: Option<crossbeam_channel::Receiver<()>>,
}

impl NotRunGuard {
    pub(crate) fn new(rec: Arc<Recorder>, token: Option<crossbeam_channel::Receiver<()>>) -> Self {
        NotRunGuard {
            rec,
            armed: true,
            token,
        }
    }

    /// The task is running: it will be counted by its own outcome.
    #[inline]
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for NotRunGuard {
    fn drop(&mut self) {
        if self.armed && !DISCARDING.with(Cell::get) {
            self.rec.note_not_run();
        }
        if let Some(t) = &self.token {
            let _ = t.try_recv();
        }
    }
}

/// Drops a refused task without counting it as not run (the generator counts the refusal).
pub(crate) fn discard<T>(task: T) {
    DISCARDING.with(|d| d.set(true));
    drop(task);
    DISCARDING.with(|d| d.set(false));
}

/// Drops a task that the pool's queue-delay controller shed, counting it as shed (called
/// by the bench's shed handler, on the worker that shed it).
pub(crate) fn drop_as_shed<T>(task: T) {
    SHEDDING.with(|d| d.set(true));
    drop(task);
    SHEDDING.with(|d| d.set(false));
}

/// One 100 ms sample of a workload, for the live line and the plot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    /// Seconds since the start of the measurement window (negative during warmup).
    pub(crate) t: f64,
    /// End-to-end latency percentiles of tasks that ended in this tick, nanoseconds
    /// (0 when none ended).
    pub(crate) e2e_p50: u64,
    pub(crate) e2e_p99: u64,
    pub(crate) e2e_max: u64,
    /// Tasks that ended in this tick.
    pub(crate) ended: u64,
    /// Tasks that ended in this tick within the load's deadline (0 without one).
    pub(crate) good: u64,
    /// Queue length of the workload's pool at the sample.
    pub(crate) queue_depth: usize,
}
