//! The pool: [`Pool`], the cheap public handle, and `PoolShared`, the state its handles and
//! workers share: the bounded queue, the admission word, the counters and one slot per worker.
//!
//! # Admission protocol
//!
//! Submissions and shutdown meet in one atomic word, `state`:
//!
//! | bits   | name        | meaning                                                     |
//! |--------|-------------|-------------------------------------------------------------|
//! | 0      | `CLOSED`    | shutdown began: no new submission is admitted               |
//! | 1      | `ABANDONED` | a shutdown gave up waiting: everything dequeued is cancelled |
//! | 2..    | in-flight   | submitters between admission and leaving `send`             |
//!
//! 1. A submitter adds one in-flight unit with `fetch_add`; if the old value had `CLOSED`, it
//!    leaves at once and the task is refused with [`RefusalReason::ShuttingDown`].
//! 2. Otherwise it sends (non-blocking, or until its deadline) and then removes its unit with
//!    `fetch_sub`. If the old value had `ABANDONED`, it drains and cancels the queue itself,
//!    because its own task may have landed after the shutdown's drain.
//! 3. A worker exits only once `CLOSED` is set, in-flight is zero and the queue is empty, in
//!    that order of observation. After that nothing can enter the queue: every later
//!    submitter sees `CLOSED`. So a graceful shutdown never strands an accepted task.
//! 4. A timed-out shutdown sets `ABANDONED` with a read-modify-write on the same word, then
//!    drains. A submitter whose `fetch_sub` came first is ordered before that drain (release
//!    sequence on `state`), so the drain sees its task; one whose `fetch_sub` came after sees
//!    `ABANDONED` and drains itself (step 2). Either way the task is resolved.
//!
//! Workers never touch `state` while there is work: they read it only before they block.
//!
//! # Capacity: slots, not the race with the workers
//!
//! A pool of `T` threads and queue capacity `Q` holds up to `T` running plus `Q` waiting
//! tasks, whatever the workers are doing at the instant of a submission (the rule of
//! Java's `ThreadPoolExecutor`, Resilience4j and Polly). Admission counts *slots*:
//! `occupied` is the number of tasks admitted and not yet ended (queued or running), and a
//! submission reserves one slot with a compare-and-swap below `limit = T + Q` before it
//! sends. The channel is allocated with room for the most slots the pool can ever have, so a
//! reserved send never finds it full. Whoever ends a task (a worker, an expiry, a drain)
//! releases its slot *before* the task's handle resolves, so a caller that joined a task
//! finds its slot free. So a burst of `T + Q` submissions into an idle pool is always
//! admitted, and the next one refused as full, even before any worker has woken up.
//!
//! The live values count: `T` is the maximum thread count of an elastic pool, and after a
//! resize the new maximum (plus replaced stuck workers, whose tasks still hold slots); `Q`
//! is the current queue capacity. A submitter with a deadline that finds no free slot waits
//! on `room` until a slot is released, the limit grows, the pool closes, or the deadline.

use std::fmt;
use std::num::NonZeroU32;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use crossbeam_utils::CachePadded;

use crate::builder::pool::{check_thread_range, PoolSettings};
use crate::cpuset::CpuSet;
use crate::error::{
    BuildError, RefusalReason, RefusedContinuation, ResizeError, ResizeErrorKind, SetupError,
    SubmitError, TaskError,
};
use crate::hooks::{Hooks, InContext};
use crate::job::{same_type, BoxedFn, DetachedTask, Job, NotRun, Outcome, Runnable, Work};
use crate::keys::{KeyOrder, KeyRef, Keys};
use crate::metrics::LatencySink;
use crate::overload::{Codel, CodelConfig, ShedHandler, ShedReason};
use crate::placement::{Baseline, CpuConfig};
use crate::stats::{PoolStats, WorkerInfo, WorkerSlot};
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};
use crate::sys;
use crate::task::{TaskCell, TaskHandle};
use crate::worker;

use crate::adaptive::{Controller, LimitAlgorithm, LimitSignal, Sample};
use crate::timer::Timer;

/// A pool's adaptive concurrency limit: its controller and the limit it set.
pub(crate) struct Adaptive {
    signal: LimitSignal,
    controller: Mutex<Controller>,
    /// The limit the controller set last, applied by `update_limit`.
    pub(crate) current: AtomicUsize,
    /// How many times it moved, and the last move `(from, to, why)`, for the supervisor.
    pub(crate) changes: AtomicU64,
    pub(crate) last_change: Mutex<Option<(usize, usize, &'static str)>>,
}

impl Adaptive {
    fn new(algorithm: LimitAlgorithm, signal: LimitSignal, min: usize, max: usize) -> Self {
        // Where it starts depends on the algorithm (`LimitAlgorithm::initial_limit`).
        let controller = Controller::new(algorithm, min, max, algorithm.initial_limit(min, max));
        Adaptive {
            signal,
            current: AtomicUsize::new(controller.limit()),
            controller: Mutex::new(controller),
            changes: AtomicU64::new(0),
            last_change: Mutex::new(None),
        }
    }
}

pub(crate) mod dynamic;
mod wait;
use dynamic::Dynamic;
pub use wait::Admission;
pub(crate) use wait::RoomWakers;

pub(crate) const CLOSED: usize = 1;
pub(crate) const ABANDONED: usize = 2;
pub(crate) const IN_FLIGHT: usize = 4;

/// Settings fixed when the pool is built.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub(crate) threads: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) max_queue_wait: Option<Duration>,
    pub(crate) stack_size: Option<usize>,
    /// CPU set, placement and priority, applied by each worker as it starts.
    pub(crate) cpu: CpuConfig,
    pub(crate) stuck_after: Duration,
    pub(crate) codel: Option<CodelConfig>,
    /// Context, lifecycle and panic hooks (all optional).
    pub(crate) hooks: Hooks,
}

#[derive(Default)]
pub(crate) struct RefusalCounters {
    pub(crate) full: AtomicU64,
    pub(crate) timeout: AtomicU64,
    pub(crate) shutting_down: AtomicU64,
    pub(crate) deadline: AtomicU64,
    pub(crate) key_cap: AtomicU64,
}

/// State shared by a pool's handles and its workers.
pub(crate) struct PoolShared {
    pub(crate) name: Arc<str>,
    pub(crate) config: PoolConfig,
    pub(crate) tx: Sender<Job>,
    /// Workers receive from clones of this; the pool keeps one to drain on abandonment.
    pub(crate) rx: Receiver<Job>,
    pub(crate) state: CachePadded<AtomicUsize>,
    pub(crate) submitted: CachePadded<AtomicU64>,
    /// Read by workers for every task; written once, at abandonment.
    pub(crate) abandoned: CachePadded<AtomicBool>,
    pub(crate) refused: CachePadded<RefusalCounters>,
    /// Tasks cancelled by a drain (abandoned shutdown), not by a worker.
    pub(crate) drained: AtomicU64,
    pub(crate) workers: Box<[CachePadded<WorkerSlot>]>,
    /// One latency recorder per worker slot (same index) and what full ones spill into, or
    /// `None` when metrics are off.
    pub(crate) recorders: Option<LatencySink>,
    /// Whether anything reads a job's enqueue time (latency metrics, a maximum queue wait or
    /// CoDel); if not, submissions skip the clock read.
    pub(crate) stamp_enqueue: bool,
    /// `config.max_queue_wait` in nanoseconds, for the worker's integer comparison.
    pub(crate) max_queue_wait_nanos: Option<u64>,
    /// `PoolBuilder::idle_spin` in nanoseconds.
    pub(crate) idle_spin_nanos: u64,
    /// Set while one of the pool's workers spins for `idle_spin` (at most one at a time, so
    /// idle workers never take more than one CPU from the submitters; see `worker.rs`).
    pub(crate) spinning: CachePadded<AtomicBool>,
    /// The monotonic-clock reading (`sys::monotonic_nanos`) the pool clock counts from.
    pub(crate) epoch_nanos: u64,
    /// Disconnected (dropped) when shutdown begins, to wake idle workers.
    pub(crate) shutdown_tx: Mutex<Option<Sender<()>>>,
    pub(crate) shutdown_rx: Receiver<()>,
    /// Disconnected when the last worker thread has exited.
    pub(crate) exit_rx: Receiver<()>,
    pub(crate) joins: Mutex<Vec<(usize, JoinHandle<()>)>>,
    /// The queue-delay controller, when CoDel is on; owned by the workers that dequeue.
    pub(crate) codel: Option<CachePadded<Codel>>,
    /// Receives fire-and-forget tasks that were accepted but not run.
    pub(crate) on_shed: Option<ShedHandler>,
    /// Workers started after build (elastic, replacement, resizing), if the pool uses any.
    pub(crate) dynamic: Option<Dynamic>,
    /// Tasks admitted and not yet ended (queued or running): the slots in use. See the
    /// module docs ("Capacity").
    pub(crate) occupied: CachePadded<AtomicUsize>,
    /// The admission limit: the thread capacity plus the queue capacity, live values.
    pub(crate) limit: CachePadded<AtomicUsize>,
    /// The queue capacity now.
    pub(crate) queue_cap: AtomicUsize,
    /// The largest queue capacity a resize may set (`queue_capacity_limit`), if resizable.
    pub(crate) queue_cap_limit: Option<usize>,
    /// Serialises updates of `limit` (resizes; rare).
    pub(crate) limit_lock: Mutex<()>,
    /// Submitters waiting for a free slot: blocked ones (`room_cv`) plus async ones (their
    /// wakers in `room`).
    pub(crate) room_waiters: AtomicUsize,
    pub(crate) room: Mutex<RoomWakers>,
    pub(crate) room_cv: Condvar,
    /// Workers blocked in `join`/`join_timeout` on an unfinished task of this pool (deadlock
    /// detection, see `task.rs`).
    pub(crate) blocked_joins: AtomicUsize,
    /// The runtime's deadline timer: resolves queued tasks at their deadline.
    pub(crate) timer: Arc<Timer>,
    /// Tasks the timer expired while queued (their outcome; see `Runnable::expire_early`).
    pub(crate) timer_expired: AtomicU64,
    /// The recent mean run time in nanoseconds (the supervisor's last interval; 0 until a
    /// task ran with metrics on): what deadline admission predicts with.
    pub(crate) est_run_nanos: AtomicU64,
    /// The adaptive concurrency limit, if the pool has one (`PoolBuilder::adaptive_limit`).
    pub(crate) adaptive: Option<Adaptive>,
    /// Keyed submissions: per-key queues, caps, order and counts (`keys.rs`). Untouched by
    /// unkeyed tasks.
    pub(crate) keys: Keys,
}

impl PoolShared {
    /// The pool's identity for task cells and worker threads: the address of this shared
    /// state, stable while any handle, worker or queued task keeps it alive.
    #[inline]
    pub(crate) fn id(&self) -> usize {
        self as *const PoolShared as usize
    }

    /// When a job is enqueued, in nanoseconds since the pool's epoch, or 0 when nothing will
    /// read it.
    #[inline]
    pub(crate) fn enqueue_stamp(&self) -> u64 {
        if self.stamp_enqueue {
            self.now_nanos()
        } else {
            0
        }
    }

    /// The pool's clock: nanoseconds since its epoch, on the monotonic clock. Workers,
    /// submitters and the supervisor keep times in this form, so per-task arithmetic is plain
    /// integer arithmetic.
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        sys::monotonic_nanos().saturating_sub(self.epoch_nanos)
    }

    /// Admits and enqueues one job. On refusal the job comes back with the reason.
    ///
    /// `inline(always)`: `#[inline]` alone did not get `send` inlined into `execute` once
    /// it had a cold branch, which cost a fixed pool 30 instructions per task instead of 14
    /// (callgrind, docs/BENCHMARKS.md "Overload control").
    #[inline(always)]
    fn send(&self, job: Job, deadline: Option<Instant>) -> Result<(), (Job, RefusalReason)> {
        self.submitted.fetch_add(1, Ordering::Relaxed);
        let prev = self.state.fetch_add(IN_FLIGHT, Ordering::Acquire);
        let result = if prev & CLOSED != 0 {
            Err((job, RefusalReason::ShuttingDown))
        } else if self.try_reserve(Ordering::Relaxed) {
            self.enqueue(job)
        } else if let Some(d) = deadline {
            self.reserve_until(job, d)
        } else {
            Err((job, RefusalReason::Full))
        };
        let prev = self.state.fetch_sub(IN_FLIGHT, Ordering::AcqRel);
        if prev & ABANDONED != 0 {
            self.drain_cancel();
        }
        if let Err((_, reason)) = &result {
            self.count_refusal(*reason);
        }
        result
    }

    /// Takes one slot if one is free (see the module docs, "Capacity").
    #[inline]
    pub(crate) fn try_reserve(&self, order: Ordering) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut cur = self.occupied.load(order);
        while cur < limit {
            match self.occupied.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    /// Sends a job that holds a slot. The channel has room for every slot, so it is never
    /// full; should it be, the slot is released and the task refused, never lost.
    #[inline]
    fn enqueue(&self, job: Job) -> Result<(), (Job, RefusalReason)> {
        self.tx.try_send(job).map_err(|e| {
            self.release_slot();
            match e {
                TrySendError::Full(j) => (j, RefusalReason::Full),
                TrySendError::Disconnected(j) => (j, RefusalReason::ShuttingDown),
            }
        })
    }

    /// Sends a keyed turn for a job that holds a slot, under the key lock: on failure the
    /// caller gives the slot back once the lock is released (`Keys::admit`).
    fn send_turn(&self, turn: Job) -> Result<(), (Job, RefusalReason)> {
        self.tx.try_send(turn).map_err(|e| match e {
            TrySendError::Full(j) => (j, RefusalReason::Full),
            TrySendError::Disconnected(j) => (j, RefusalReason::ShuttingDown),
        })
    }

    /// A submitter with a deadline found every slot taken: waits for one until the deadline
    /// (refused as `Timeout`) or until the pool closes (refused as `ShuttingDown`).
    ///
    /// No lost wake-up: the waiter counts itself in `room_waiters`, then re-checks the slots
    /// under `room`; a releaser frees its slot, then reads `room_waiters` (both SeqCst), so
    /// either the waiter sees the free slot or the releaser sees the waiter and notifies
    /// under the same lock.
    #[cold]
    #[inline(never)]
    fn reserve_until(&self, mut job: Job, deadline: Instant) -> Result<(), (Job, RefusalReason)> {
        match self.wait_for_slot(deadline) {
            Ok(()) => {
                // Queue wait counts from admission, not from when the wait for a slot began.
                job.enqueued = self.enqueue_stamp();
                self.enqueue(job)
            }
            Err(reason) => Err((job, reason)),
        }
    }

    /// Waits until a slot is free and takes it (`Ok`: the caller holds it), or until the
    /// deadline (`Timeout`) or the pool closes (`ShuttingDown`). See `reserve_until`.
    #[cold]
    fn wait_for_slot(&self, deadline: Instant) -> Result<(), RefusalReason> {
        let mut room = self.room.lock();
        self.room_waiters.fetch_add(1, Ordering::SeqCst);
        let outcome = loop {
            if self.state.load(Ordering::Acquire) & CLOSED != 0 {
                break Err(RefusalReason::ShuttingDown);
            }
            if self.try_reserve(Ordering::SeqCst) {
                break Ok(());
            }
            if self.room_cv.wait_until(&mut room, deadline).timed_out() {
                break if self.try_reserve(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err(RefusalReason::Timeout)
                };
            }
        };
        self.room_waiters.fetch_sub(1, Ordering::SeqCst);
        drop(room);
        outcome
    }

    /// Sends a job for which the caller already took a slot (async admission), with the
    /// admission word's in-flight protocol; a pool that closed meanwhile refuses it and the
    /// slot is released.
    pub(crate) fn send_reserved(&self, job: Job) -> Result<(), (Job, RefusalReason)> {
        let prev = self.state.fetch_add(IN_FLIGHT, Ordering::Acquire);
        let result = if prev & CLOSED != 0 {
            self.release_slot();
            Err((job, RefusalReason::ShuttingDown))
        } else {
            self.enqueue(job)
        };
        let prev = self.state.fetch_sub(IN_FLIGHT, Ordering::AcqRel);
        if prev & ABANDONED != 0 {
            self.drain_cancel();
        }
        result
    }

    /// Admits and enqueues one keyed job: its key's cap, then a slot, then the job into its
    /// key's queue and a turn into the channel (`keys.rs`), inside the same admission-word
    /// protocol as `send`. On refusal the job comes back with the reason.
    ///
    /// With `wait`, a submission that finds no free slot waits for one until then, outside
    /// the key lock (as `reserve_until`), and is admitted under its key once it holds one; a
    /// key at its cap is refused at once, never waited for.
    fn send_keyed(
        &self,
        key: &str,
        mut job: Job,
        wait: Option<Instant>,
    ) -> Result<(), (Job, RefusalReason)> {
        self.submitted.fetch_add(1, Ordering::Relaxed);
        // The per-key counts report queue wait, so a keyed job always carries its stamp.
        job.enqueued = self.now_nanos();
        let prev = self.state.fetch_add(IN_FLIGHT, Ordering::Acquire);
        let result = if prev & CLOSED != 0 {
            Err((job, RefusalReason::ShuttingDown))
        } else {
            match self.keys.admit(
                key,
                job,
                || self.try_reserve(Ordering::Relaxed),
                |turn| self.send_turn(turn),
                || self.release_slot(),
            ) {
                Err((mut job, RefusalReason::Full)) if wait.is_some() => {
                    match wait.map(|d| self.wait_for_slot(d)) {
                        Some(Ok(())) => {
                            job.enqueued = self.now_nanos();
                            // The slot is held: admit without reserving another, and give it
                            // back if the key refuses (it reached its cap meanwhile).
                            let mut held = true;
                            let admitted = self.keys.admit(
                                key,
                                job,
                                || std::mem::take(&mut held),
                                |turn| self.send_turn(turn),
                                || self.release_slot(),
                            );
                            if held {
                                self.release_slot();
                            }
                            admitted
                        }
                        Some(Err(reason)) => Err((job, reason)),
                        None => Err((job, RefusalReason::Full)),
                    }
                }
                other => other,
            }
        };
        let prev = self.state.fetch_sub(IN_FLIGHT, Ordering::AcqRel);
        if prev & ABANDONED != 0 {
            self.drain_cancel();
        }
        if let Err((_, reason)) = &result {
            self.count_refusal(*reason);
            if !matches!(reason, RefusalReason::KeyCap) {
                // The key counted its cap refusals itself.
                self.keys.count_refused(key);
            }
        }
        result
    }

    /// The job a shutdown drain handles for one it dequeued: itself, or for a keyed turn the
    /// next keyed job in the pool's order, with its key. `None` for a turn with no job
    /// behind it, which the queueing protocol rules out (nothing is lost: there is no job).
    #[cold]
    fn take_turn(&self, job: Job) -> Option<(Job, Option<KeyRef>)> {
        if let Work::Keyed = job.work {
            let taken = self.keys.next();
            debug_assert!(taken.is_some(), "a keyed turn with no job behind it");
            taken.map(|(job, key)| (job, Some(key)))
        } else {
            Some((job, None))
        }
    }

    /// Sends a keyed job for which the caller already took a slot (async admission), with
    /// the admission word's protocol: the key's cap is checked again (the slot is given back
    /// if it refuses), and a pool that closed meanwhile refuses it. Refusals are counted by
    /// the caller.
    pub(crate) fn send_reserved_keyed(
        &self,
        key: &str,
        mut job: Job,
    ) -> Result<(), (Job, RefusalReason)> {
        job.enqueued = self.now_nanos();
        let prev = self.state.fetch_add(IN_FLIGHT, Ordering::Acquire);
        let result = if prev & CLOSED != 0 {
            self.release_slot();
            Err((job, RefusalReason::ShuttingDown))
        } else {
            let mut held = true;
            let admitted = self.keys.admit(
                key,
                job,
                || std::mem::take(&mut held),
                |turn| self.send_turn(turn),
                || self.release_slot(),
            );
            if held {
                self.release_slot();
            }
            admitted
        };
        let prev = self.state.fetch_sub(IN_FLIGHT, Ordering::AcqRel);
        if prev & ABANDONED != 0 {
            self.drain_cancel();
        }
        result
    }

    /// A task ended (or was taken out of the queue to be cancelled): frees its slot. Called
    /// before the task's handle resolves.
    #[inline]
    pub(crate) fn release_slot(&self) {
        self.occupied.fetch_sub(1, Ordering::SeqCst);
        if self.room_waiters.load(Ordering::SeqCst) != 0 {
            self.wake_room_waiters();
        }
    }

    /// Wakes submitters waiting for a slot (a slot was freed, the limit grew, or shutdown):
    /// every blocked one, and every async one (whose waker is taken: it registers again if
    /// it still finds no slot).
    #[cold]
    pub(crate) fn wake_room_waiters(&self) {
        let wakers = {
            let mut room = self.room.lock();
            self.room_cv.notify_all();
            let wakers = std::mem::take(&mut room.wakers);
            if !wakers.is_empty() {
                self.room_waiters.fetch_sub(wakers.len(), Ordering::SeqCst);
            }
            wakers
        };
        // Outside the lock: a waker is executor code.
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// The threads that count towards the admission limit now: the fixed size, or a dynamic
    /// pool's maximum plus its replaced stuck workers.
    fn thread_capacity(&self) -> usize {
        match &self.dynamic {
            None => self.config.threads,
            Some(d) => d.thread_capacity(),
        }
    }

    /// Recomputes the admission limit after a resize (thread bounds, replacements, queue
    /// capacity) or a move of the adaptive limit, and wakes waiting submitters if it grew.
    pub(crate) fn update_limit(&self) {
        let _guard = self.limit_lock.lock();
        let mut limit = self.thread_capacity() + self.queue_cap.load(Ordering::Relaxed);
        if let Some(a) = &self.adaptive {
            limit = limit.min(a.current.load(Ordering::Relaxed));
        }
        let old = self.limit.swap(limit, Ordering::SeqCst);
        if limit > old && self.room_waiters.load(Ordering::SeqCst) != 0 {
            self.wake_room_waiters();
        }
    }

    /// How many of this pool's workers may block joining tasks of their own pool before that
    /// is a deadlock: the workers it counts on now (after a resize, the live count). A pool
    /// that may still grow and has queued work no idle worker will take starts a thread
    /// first, as a submission would have, so the awaited task finds a worker.
    #[cold]
    pub(crate) fn join_capacity(self: &Arc<Self>) -> usize {
        match &self.dynamic {
            None => self.config.threads,
            Some(d) => {
                if d.wants_growth(|| self.tx.len()) {
                    self.grow();
                }
                d.active()
            }
        }
    }

    /// Whether a task submitted `now` with `deadline` would start too late, by the pool's
    /// prediction: with every thread busy, the tasks ahead of it (those queued, plus one
    /// finishing) run in waves of `threads`, each as long as the recent mean run time. No
    /// prediction (false) until the supervisor has measured a run time (metrics on).
    fn predicts_late(&self, now: Instant, deadline: Instant) -> bool {
        let est = self.est_run_nanos.load(Ordering::Relaxed);
        if est == 0 {
            return false;
        }
        let threads = match &self.dynamic {
            None => self.config.threads,
            Some(d) => d.active(),
        }
        .max(1);
        let occupied = self.occupied.load(Ordering::Relaxed);
        if occupied < threads {
            return false;
        }
        let waves = (occupied - threads + 1).div_ceil(threads) as u64;
        let wait = Duration::from_nanos(est.saturating_mul(waves));
        now.checked_add(wait).map_or(true, |start| start > deadline)
    }

    /// Resolves `cell` as expired at `at` if it is still queued then (see
    /// `Runnable::expire_early`): counted, its slot freed, its handle resolved, on the
    /// timer's thread, even while every worker is stuck. `since` is when it was submitted.
    ///
    /// The expired job itself stays in the channel (a crossbeam channel cannot remove from
    /// its middle) until a worker passes it and counts nothing more. The channel has room for
    /// twice the pool's capacity, so a pool whose workers are all stuck absorbs as many
    /// expirations as its capacity before submissions are refused as full; they are admitted
    /// again as soon as a worker moves.
    pub(crate) fn watch(self: &Arc<Self>, cell: Arc<dyn Runnable>, at: Instant, since: Instant) {
        let cell = Arc::downgrade(&cell);
        let pool = Arc::downgrade(self);
        let expire = Box::new(move || {
            let (Some(cell), Some(pool)) = (cell.upgrade(), pool.upgrade()) else {
                return;
            };
            let waited = since.elapsed();
            cell.expire_early(waited, &mut |_| {
                pool.timer_expired.fetch_add(1, Ordering::Relaxed);
                pool.release_slot();
            });
        });
        // A timer that stopped (shutdown) leaves the task to the shutdown.
        let _ = self.timer.schedule(at, expire);
    }

    /// Feeds one task's end to the adaptive limit (times on the pool clock). A sample that
    /// finds the controller busy with another worker's is skipped: it is a sampling.
    #[cold]
    pub(crate) fn adapt(&self, a: &Adaptive, enqueued: u64, start: u64, end: u64, dropped: bool) {
        let Some(mut ctl) = a.controller.try_lock() else {
            return;
        };
        let latency = match a.signal {
            LimitSignal::RunTime => end.saturating_sub(start),
            LimitSignal::EndToEnd => end.saturating_sub(enqueued),
        };
        let sample = Sample {
            latency,
            wait: if self.stamp_enqueue {
                start.saturating_sub(enqueued)
            } else {
                0
            },
            run: end.saturating_sub(start),
            inflight: self.occupied.load(Ordering::Relaxed),
            dropped,
        };
        if let Some((limit, why)) = ctl.sample(sample) {
            let from = a.current.swap(limit, Ordering::Relaxed);
            *a.last_change.lock() = Some((from, limit, why));
            a.changes.fetch_add(1, Ordering::Relaxed);
            drop(ctl);
            self.update_limit();
        }
    }

    /// Registers a task with a handle just admitted for its default deadline (the pool's
    /// `max_queue_wait`). Callers check `config.max_queue_wait` first, so a pool without one
    /// reads no clock here.
    #[cold]
    pub(crate) fn watch_default(self: &Arc<Self>, cell: Arc<dyn Runnable>) {
        let now = Instant::now();
        if let Some(at) = self.default_deadline(now) {
            self.watch(cell, at, now);
        }
    }

    /// The deadline the pool's `max_queue_wait` gives a task submitted at `now`, if any.
    pub(crate) fn default_deadline(&self, now: Instant) -> Option<Instant> {
        self.config.max_queue_wait.and_then(|w| now.checked_add(w))
    }

    /// The current queue capacity.
    pub(crate) fn queue_capacity(&self) -> usize {
        self.queue_cap.load(Ordering::Relaxed)
    }

    #[cold]
    pub(crate) fn count_refusal(&self, reason: RefusalReason) {
        let c = match reason {
            RefusalReason::Full => &self.refused.full,
            RefusalReason::Timeout => &self.refused.timeout,
            RefusalReason::ShuttingDown => &self.refused.shutting_down,
            RefusalReason::Deadline => &self.refused.deadline,
            RefusalReason::KeyCap => &self.refused.key_cap,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops intake and wakes idle workers so they drain the queue and exit.
    pub(crate) fn begin_shutdown(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        // Submitters waiting for a slot leave, refused as shutting down.
        self.wake_room_waiters();
        if let Some(d) = &self.dynamic {
            d.close();
        }
        drop(self.shutdown_tx.lock().take());
    }

    /// Gives up on queued work: everything in the queue now, or dequeued later, is cancelled.
    #[cold]
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
        self.state.fetch_or(ABANDONED, Ordering::AcqRel);
        self.drain_cancel();
    }

    #[cold]
    pub(crate) fn drain_cancel(&self) {
        while let Ok(job) = self.rx.try_recv() {
            let Some((job, key)) = self.take_turn(job) else {
                continue;
            };
            let unrun = job.not_run(NotRun::Cancelled, &mut |outcome| {
                if outcome != Outcome::Settled {
                    self.drained.fetch_add(1, Ordering::Relaxed);
                    self.release_slot();
                }
                if let Some(key) = key {
                    self.keys.release(key, outcome, None);
                }
            });
            self.dispose(unrun, NotRun::Cancelled);
        }
    }

    /// Hands a fire-and-forget task that was not run to the pool's shed handler, on this
    /// thread, or discards it if there is none (its captured context, if any, sees its
    /// install and clean-up; its `Drop` runs under `catch_unwind`).
    #[cold]
    pub(crate) fn dispose(&self, unrun: Option<Box<dyn DetachedTask>>, why: NotRun) {
        let Some(task) = unrun else { return };
        match &self.on_shed {
            None => task.discard(),
            Some(handler) => {
                let (reason, waited) = match why {
                    NotRun::Cancelled => (ShedReason::CancelledByShutdown, None),
                    NotRun::Expired(w) => (ShedReason::Expired, Some(w)),
                    NotRun::Shed(w) => (ShedReason::Shed, Some(w)),
                };
                handler.deliver(&self.name, reason, waited, task);
            }
        }
    }

    /// Waits until every worker thread has exited, or the deadline passes. True if all exited.
    pub(crate) fn wait_workers(&self, deadline: Option<Instant>) -> bool {
        loop {
            let r = match deadline {
                None => self.exit_rx.recv().map_err(|_| true),
                Some(d) => self
                    .exit_rx
                    .recv_deadline(d)
                    .map_err(|e| e.is_disconnected()),
            };
            if let Err(all_exited) = r {
                // Every token is gone: the threads are returning. A graceful shutdown joins
                // them; a bounded one joins only those already finished.
                self.reap(deadline.is_none() && all_exited);
                return all_exited;
            }
        }
    }

    /// Joins the threads that have finished (with `all`, every thread: only when each has
    /// dropped its exit token); the others stay detached until a later call. Without `all`
    /// it never blocks: a thread still in its stop hook is not waited for.
    fn reap(&self, all: bool) {
        let finished: Vec<_> = {
            let mut joins = self.joins.lock();
            let (done, running) = std::mem::take(&mut *joins)
                .into_iter()
                .partition(|(_, h)| all || h.is_finished());
            *joins = running;
            done
        };
        for (_, handle) in finished {
            // A worker's thread has no path that panics outside `catch_unwind`; if one ever
            // did, the shutdown still completes.
            let _ = handle.join();
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let mut s = PoolStats::empty(&self.name, self.config.threads, self.config.queue_capacity);
        let now = self.now_nanos();
        for w in self.workers.iter() {
            w.add_to(&mut s);
            if w.busy_for(now).is_some() {
                s.busy += 1;
            }
        }
        s.cancelled += self.drained.load(Ordering::Relaxed);
        s.refused_full = self.refused.full.load(Ordering::Relaxed);
        s.refused_timeout = self.refused.timeout.load(Ordering::Relaxed);
        s.refused_shutting_down = self.refused.shutting_down.load(Ordering::Relaxed);
        s.refused_deadline = self.refused.deadline.load(Ordering::Relaxed);
        s.refused_key_cap = self.refused.key_cap.load(Ordering::Relaxed);
        (s.keys, s.other_keys) = self.keys.snapshot();
        s.concurrency_limit = self
            .adaptive
            .as_ref()
            .map(|a| a.current.load(Ordering::Relaxed));
        s.expired += self.timer_expired.load(Ordering::Relaxed);
        s.queued = self.tx.len();
        s.shutting_down = self.state.load(Ordering::Relaxed) & CLOSED != 0;
        s.codel_dropping = self.codel.as_ref().is_some_and(|c| c.is_dropping());
        s.queue_capacity = self.queue_capacity();
        if let Some(d) = &self.dynamic {
            s.threads = d.live();
            s.replaced = d.replaced();
            s.replacements = d.replacements.load(Ordering::Relaxed);
        }
        // Read last, so that a snapshot never shows more outcomes than submissions.
        s.submitted = self.submitted.load(Ordering::Relaxed);
        s
    }
}

/// A handle to one named pool: cheap to clone (`Arc`), `Send + Sync`, obtained from
/// [`Runtime::pool`](crate::Runtime::pool).
///
/// A submission waits only as you ask: the `try_` forms and `execute` never block, the
/// `_timeout` forms block at most their timeout, `submit` and `submit_async` wait for room
/// until the pool shuts down. A refused task is handed back inside the [`SubmitError`].
///
/// | method                                        | result slot         | when the pool is full  |
/// |-----------------------------------------------|---------------------|------------------------|
/// | [`try_submit`](Pool::try_submit)              | [`TaskHandle`]      | refused at once        |
/// | [`submit_timeout`](Pool::submit_timeout)      | [`TaskHandle`]      | waits up to a timeout  |
/// | [`submit`](Pool::submit)                      | [`TaskHandle`]      | blocks until room      |
/// | [`submit_async`](Pool::submit_async)          | [`TaskHandle`]      | awaits room (a future) |
/// | [`execute`](Pool::execute)                    | none (cheapest)     | refused at once        |
/// | [`execute_timeout`](Pool::execute_timeout)    | none                | waits up to a timeout  |
/// | [`map`](Pool::map)                            | results, in order   | waits for room         |
///
/// A handle stays usable after the runtime shuts down: submissions are then refused with
/// [`RefusalReason::ShuttingDown`].
#[derive(Clone)]
pub struct Pool {
    pub(crate) shared: Arc<PoolShared>,
}

impl Pool {
    /// Builds the pool's shared state from its validated settings and starts its first
    /// workers; returns once every one of them has finished its set-up. On error, the
    /// workers already started are stopped first.
    pub(crate) fn start(
        p: &PoolSettings,
        metrics: bool,
        baseline: &Baseline,
        timer: &Arc<Timer>,
    ) -> Result<Pool, BuildError> {
        // One slot per thread the pool can ever have at once (see `dynamic`).
        let slots = p.slots();
        // Admission counts slots (threads + queue capacity, see `pool`): the channel has room
        // for the most the pool can ever admit, so a send that holds a slot does not find it
        // full; twice that, because a task the deadline timer expired has freed its slot but
        // keeps its place in the channel until a worker passes it (see `watch`).
        let queue_cap_limit = p.queue_capacity_limit.unwrap_or(p.queue_capacity);
        let (tx, rx) = bounded(2 * (slots + queue_cap_limit));
        // Capacity 1, not 0: a zero-capacity channel allocates each time a worker parks on it.
        let (shutdown_tx, shutdown_rx) = bounded(1);
        let (exit_tx, exit_rx) = unbounded::<()>();
        let prefix = p.thread_prefix();
        let workers = (0..slots)
            .map(|i| CachePadded::new(WorkerSlot::new(format!("{prefix}-{i}"))))
            .collect();
        let shared = Arc::new(PoolShared {
            name: Arc::from(p.name.as_str()),
            config: PoolConfig {
                threads: p.threads,
                queue_capacity: p.queue_capacity,
                max_queue_wait: p.max_queue_wait,
                stack_size: p.stack_size,
                cpu: CpuConfig {
                    baseline: baseline.clone(),
                    ..p.cpu.clone()
                },
                stuck_after: p.stuck_after,
                codel: p.codel,
                hooks: p.hooks.clone(),
            },
            tx,
            rx,
            state: CachePadded::new(AtomicUsize::new(0)),
            submitted: CachePadded::new(AtomicU64::new(0)),
            abandoned: CachePadded::new(AtomicBool::new(false)),
            refused: CachePadded::new(RefusalCounters::default()),
            drained: AtomicU64::new(0),
            workers,
            stamp_enqueue: metrics
                || p.max_queue_wait.is_some()
                || p.codel.is_some()
                || (p.adaptive.is_some() && p.adaptive_signal == LimitSignal::EndToEnd),
            idle_spin_nanos: u64::try_from(p.idle_spin.as_nanos()).unwrap_or(u64::MAX),
            spinning: CachePadded::new(AtomicBool::new(false)),
            max_queue_wait_nanos: p
                .max_queue_wait
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            recorders: metrics.then(|| LatencySink::new(slots)),
            epoch_nanos: sys::monotonic_nanos(),
            shutdown_tx: Mutex::new(Some(shutdown_tx)),
            shutdown_rx,
            exit_rx,
            joins: Mutex::new(Vec::with_capacity(p.threads)),
            codel: p.codel.map(|c| CachePadded::new(Codel::new(c))),
            on_shed: p.on_shed.clone(),
            dynamic: p.is_dynamic().then(|| {
                Dynamic::new(
                    p.threads,
                    p.max_threads(),
                    p.keep_alive,
                    p.replacement_budget,
                    p.threads_limit(),
                    exit_tx.clone(),
                )
            }),
            occupied: CachePadded::new(AtomicUsize::new(0)),
            // Set by `update_limit` below, once the dynamic state exists.
            limit: CachePadded::new(AtomicUsize::new(0)),
            queue_cap: AtomicUsize::new(p.queue_capacity),
            queue_cap_limit: p.queue_capacity_limit,
            limit_lock: Mutex::new(()),
            room_waiters: AtomicUsize::new(0),
            room: Mutex::new(RoomWakers::default()),
            room_cv: Condvar::new(),
            blocked_joins: AtomicUsize::new(0),
            timer: timer.clone(),
            timer_expired: AtomicU64::new(0),
            est_run_nanos: AtomicU64::new(0),
            adaptive: p.adaptive.map(|(algorithm, min)| {
                let max = p.max_threads() + p.queue_capacity;
                Adaptive::new(algorithm, p.adaptive_signal, min, max)
            }),
            keys: Keys::new(p.key_cap, p.key_order, p.key_metrics, &p.key_weights),
        });
        shared.update_limit();
        let pool = Pool { shared };
        let (ready_tx, ready_rx) = unbounded();
        let mut failure = None;
        if let Some(d) = &pool.shared.dynamic {
            // Dynamic pools start their first `min` workers like any later one.
            let mut counts = d.lock();
            for _ in 0..p.threads {
                if let Err(e) = pool
                    .shared
                    .start_worker(&mut counts, Some(ready_tx.clone()))
                {
                    failure = Some(e);
                    break;
                }
            }
        } else {
            for i in 0..p.threads {
                pool.shared.workers[i].mark_live();
                match worker::spawn(
                    pool.shared.clone(),
                    i,
                    exit_tx.clone(),
                    Some(ready_tx.clone()),
                ) {
                    Ok(handle) => pool.shared.joins.lock().push((i, handle)),
                    Err(e) => {
                        pool.shared.workers[i].mark_exited();
                        failure = Some(SetupError::Spawn(e));
                        break;
                    }
                }
            }
        }
        drop(exit_tx);
        drop(ready_tx);
        // Every started worker reports its set-up before `build()` returns, so a placement the OS
        // refuses fails the build instead of being skipped.
        let started = pool.shared.joins.lock().len();
        for _ in 0..started {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(_) => break,
            }
        }
        if let Some(e) = failure {
            pool.shared.begin_shutdown();
            pool.shared.wait_workers(None);
            return Err(e.into_build_error(&p.name));
        }
        Ok(pool)
    }

    /// Submits `f` and returns a handle to its result; never blocks.
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back if the queue is full
    /// ([`RefusalReason::Full`]) or the pool is shutting down.
    ///
    /// ```
    /// # let rt = bulkhead::Runtime::builder().pool("api", |p| p).build().unwrap();
    /// let api = rt.pool("api")?;
    /// let handle = api.try_submit(|| 6 * 7)?;
    /// assert_eq!(handle.join()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_with(f, None, None)
    }

    /// Submits `f`, waiting at most `timeout` for room in the queue.
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back if the queue stayed full for the whole timeout
    /// ([`RefusalReason::Timeout`]) or the pool is shutting down.
    pub fn submit_timeout<F, T>(
        &self,
        f: F,
        timeout: Duration,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_with(f, Some(deadline_after(timeout)), None)
    }

    /// Submits `f`, waiting as long as it takes for room in the queue: back-pressure for a
    /// thread that has nothing better to do than wait. Refused only when the pool shuts down
    /// (before or while waiting), with the closure handed back.
    ///
    /// For async code use [`submit_async`](Pool::submit_async), which waits without blocking
    /// a thread of the executor.
    ///
    /// # Errors
    ///
    /// [`RefusalReason::ShuttingDown`], with the closure, if the pool is or begins shutting
    /// down before `f` was admitted.
    ///
    /// ```
    /// # let rt = bulkhead::Runtime::builder().pool("batch", |p| p.threads(1).queue_capacity(1)).build().unwrap();
    /// let batch = rt.pool("batch")?;
    /// // 100 tasks through a pool that holds at most 2 at once: each waits for room.
    /// let handles: Vec<_> = (0..100).map(|i| batch.submit(move || i * 2)).collect::<Result<_, _>>()?;
    /// let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    /// assert_eq!(sum, 9900);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_with(f, Some(deadline_after(Duration::MAX)), None)
    }

    /// Submits `f` from async code, awaiting room in the queue without blocking a thread.
    ///
    /// The returned future resolves to the task's [`TaskHandle`] (itself a future of the
    /// result) once `f` was admitted, or to a refusal with the closure handed back if the
    /// pool is or begins shutting down first. It is **cancel-safe**: dropping it before it
    /// resolved leaves nothing behind: `f` was not admitted (it is dropped with the future,
    /// unrun), holds no slot, and the pool counts nothing for it. Once it resolved, the task
    /// is the handle's. A pool's [context hook](crate::PoolBuilder::context) captures when
    /// `f` is admitted, in the task polling the future. Works on any executor.
    ///
    /// Many futures waiting on one full pool are all woken when a slot frees; one takes it
    /// and the others wait again.
    ///
    /// ```
    /// # let rt = bulkhead::Runtime::builder().pool("cpu", |p| p.threads(1).queue_capacity(1)).build().unwrap();
    /// # let tokio = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let cpu = rt.pool("cpu")?;
    /// let total = tokio.block_on(async {
    ///     let mut handles = Vec::new();
    ///     for i in 0..10u64 {
    ///         handles.push(cpu.submit_async(move || i * i).await?); // waits for room
    ///     }
    ///     let mut total = 0;
    ///     for h in handles {
    ///         total += h.await?;
    ///     }
    ///     Ok::<u64, Box<dyn std::error::Error>>(total)
    /// })?;
    /// assert_eq!(total, 285);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_async<F, T>(&self, f: F) -> Admission<F, T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Admission::new(self.clone(), f)
    }

    /// Submits `f` with a deadline: the task must *start* by `deadline`, or not run at all.
    /// Never blocks.
    ///
    /// - Refused at once ([`RefusalReason::Deadline`], closure handed back) if `deadline`
    ///   has passed, or if the pool predicts it would start too late: with every thread
    ///   busy, the tasks ahead of it run in waves of the pool's threads, each as long as the
    ///   recent mean run time (the supervisor's last interval; with metrics off, or before
    ///   any task ran, there is no prediction and only a passed deadline is refused).
    /// - Admitted, it runs if a worker takes it before `deadline`. If it is still queued at
    ///   `deadline`, it is resolved then, by the runtime's deadline timer, not when a worker
    ///   next reaches it: its handle reports [`TaskError::Expired`](crate::TaskError::Expired),
    ///   its slot is free at once, and it never runs, even while every worker of the pool is
    ///   stuck. It is counted as expired once, whoever gets there first.
    /// - The pool's [`max_queue_wait`](crate::PoolBuilder::max_queue_wait), if set, is the
    ///   default deadline of every task with a handle; the earlier of the two applies.
    ///
    /// # Errors
    ///
    /// [`RefusalReason::Deadline`] as above, [`RefusalReason::Full`] or
    /// [`RefusalReason::ShuttingDown`], with the closure.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// # let rt = bulkhead::Runtime::builder().pool("api", |p| p).build().unwrap();
    /// let api = rt.pool("api")?;
    /// let answer = api.try_submit_by(|| 42, Instant::now() + Duration::from_secs(5))?;
    /// assert_eq!(answer.join()?, 42);
    /// let late = api.try_submit_by(|| 0, Instant::now() - Duration::from_millis(1));
    /// assert!(late.unwrap_err().is_deadline());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_submit_by<F, T>(
        &self,
        f: F,
        deadline: Instant,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_by(f, deadline, None)
    }

    /// `try_submit_by`, unkeyed or under `key`.
    fn submit_by<F, T>(
        &self,
        f: F,
        deadline: Instant,
        key: Option<&str>,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = &self.shared;
        let now = Instant::now();
        if deadline <= now || shared.predicts_late(now, deadline) {
            shared.submitted.fetch_add(1, Ordering::Relaxed);
            shared.count_refusal(RefusalReason::Deadline);
            if let Some(key) = key {
                shared.keys.count_refused(key);
            }
            return Err(SubmitError::new(
                f,
                RefusalReason::Deadline,
                shared.name.clone(),
            ));
        }
        let (cell, job) = self.prepare(f);
        cell.set_deadline(deadline, now);
        match self.send(job, None, key) {
            Ok(()) => {
                self.grow_if_needed();
                let at = shared
                    .default_deadline(now)
                    .map_or(deadline, |d| d.min(deadline));
                shared.watch(cell.clone(), at, now);
                Ok(TaskHandle::new(cell))
            }
            Err((job, reason)) => {
                drop(job);
                Err(SubmitError::new(
                    cell.reclaim(),
                    reason,
                    shared.name.clone(),
                ))
            }
        }
    }

    /// [`try_submit_by`](Pool::try_submit_by) with a budget: the task must start within
    /// `budget` from now.
    ///
    /// # Errors
    ///
    /// As [`try_submit_by`](Pool::try_submit_by).
    pub fn try_submit_within<F, T>(
        &self,
        f: F,
        budget: Duration,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.try_submit_by(f, deadline_after(budget))
    }

    /// Runs `f` on every item of `items` in this pool and returns the results in the order of
    /// the items: fan-out with back-pressure.
    ///
    /// Items are submitted one by one as room frees ([`submit`](Pool::submit)), so a long
    /// iterator never floods the queue and nothing is refused for being too many; the call
    /// returns once every task ended. Each entry is the task's value or why there is none
    /// (a panic, an expiry by `max_queue_wait`, a shed, a cancellation by a timed-out
    /// shutdown). If the pool shuts down before every item was submitted, each item not
    /// submitted comes back as [`TaskError::Refused`](crate::TaskError::Refused), holding
    /// `f` bound to that item ([`RefusedContinuation::into_task`](crate::RefusedContinuation::into_task)),
    /// so nothing is lost.
    ///
    /// How it differs from rayon's `par_iter().map()`: the work runs on this bulkhead's own
    /// threads, never on a global pool; at most the pool's capacity is admitted at once (the
    /// caller waits for room instead of queueing without bound); and failures are values in
    /// the result, one per item, instead of a panic propagated to the caller. Tasks are
    /// `'static`: move or share (`Arc`) what they need.
    ///
    /// Call it from outside the pool: a task of this pool that fans out into its own pool
    /// waits for room its own worker holds.
    ///
    /// ```
    /// # let rt = bulkhead::Runtime::builder().pool("cpu", |p| p.threads(2).queue_capacity(4)).build().unwrap();
    /// let cpu = rt.pool("cpu")?;
    /// // 1,000 tasks through a pool that holds 6 at once, results in order.
    /// let squares = cpu.map(0..1_000u64, |n| n * n);
    /// assert_eq!(squares.len(), 1_000);
    /// assert_eq!(squares[999].as_ref().ok(), Some(&998_001));
    /// assert!(squares.iter().all(Result::is_ok));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<I, T, F>(
        &self,
        items: impl IntoIterator<Item = I>,
        f: F,
    ) -> Vec<Result<T, TaskError>>
    where
        I: Send + 'static,
        T: Send + 'static,
        F: Fn(I) -> T + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let mut pending: Vec<Result<TaskHandle<T>, crate::TaskError>> = Vec::new();
        let mut refused = None;
        for item in items {
            let g = f.clone();
            let task = move || g(item);
            let outcome = match refused {
                // The pool refused an earlier item: it is shutting down; do not wait again.
                Some(reason) => Err((Box::new(task) as Box<dyn FnOnce() -> T + Send>, reason)),
                None => self.submit(task).map_err(|e| {
                    let reason = e.reason();
                    (
                        Box::new(e.into_inner()) as Box<dyn FnOnce() -> T + Send>,
                        reason,
                    )
                }),
            };
            pending.push(match outcome {
                Ok(handle) => Ok(handle),
                Err((task, reason)) => {
                    refused = Some(reason);
                    Err(TaskError::Refused(RefusedContinuation::new(
                        self.shared.name.clone(),
                        reason,
                        Box::new(task),
                    )))
                }
            });
        }
        pending
            .into_iter()
            .map(|h| h.and_then(TaskHandle::join))
            .collect()
    }

    /// Builds the task cell and job of `f` (capturing the context here).
    #[inline]
    pub(crate) fn prepare<F, T>(&self, f: F) -> (Arc<TaskCell<F, T>>, Job)
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ctx = self.shared.config.hooks.capture();
        let cell = TaskCell::new(f, ctx, self.shared.id());
        let job = Job {
            enqueued: self.shared.enqueue_stamp(),
            work: Work::Handle(cell.clone()),
        };
        (cell, job)
    }

    #[inline(always)]
    fn submit_with<F, T>(
        &self,
        f: F,
        deadline: Option<Instant>,
        key: Option<&str>,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (cell, job) = self.prepare(f);
        match self.send(job, deadline, key) {
            Ok(()) => {
                self.grow_if_needed();
                if self.shared.config.max_queue_wait.is_some() {
                    self.shared.watch_default(cell.clone());
                }
                Ok(TaskHandle::new(cell))
            }
            Err((job, reason)) => {
                drop(job);
                Err(SubmitError::new(
                    cell.reclaim(),
                    reason,
                    self.shared.name.clone(),
                ))
            }
        }
    }

    /// Runs `f` on the pool without a result slot: the cheapest submission (one allocation).
    /// Never blocks.
    ///
    /// If `f` panics, the panic is caught and counted, and the worker goes on.
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back if the queue is full or the pool is shutting down.
    #[inline(always)]
    pub fn execute<F>(&self, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_with(f, None, None)
    }

    /// Like [`execute`](Pool::execute), but waits at most `timeout` for room in the queue.
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back if the queue stayed full for the whole timeout or
    /// the pool is shutting down.
    pub fn execute_timeout<F>(&self, f: F, timeout: Duration) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_with(f, Some(deadline_after(timeout)), None)
    }

    /// Runs an already boxed closure on the pool: the box is queued as it is, not boxed a
    /// second time, so a task that arrives boxed still costs one allocation (its own). Never
    /// blocks. [`execute`](Pool::execute) given a `Box<dyn FnOnce() + Send>` takes the same
    /// path; this method names it.
    ///
    /// In a pool with a [context hook](crate::PoolBuilder::context), the box is wrapped
    /// with the captured context, as any closure is (one more allocation).
    ///
    /// # Errors
    ///
    /// Refused with the box handed back if the queue is full or the pool is shutting down.
    ///
    /// ```
    /// # let rt = bulkhead::Runtime::builder().pool("api", |p| p).build().unwrap();
    /// let api = rt.pool("api")?;
    /// let task: Box<dyn FnOnce() + Send> = Box::new(|| println!("hello from a pool"));
    /// api.execute_boxed(task)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn execute_boxed(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> Result<(), SubmitError<Box<dyn FnOnce() + Send + 'static>>> {
        self.execute_with(f, None, None)
    }

    /// Like [`execute_boxed`](Pool::execute_boxed), but waits at most `timeout` for room in
    /// the queue.
    ///
    /// # Errors
    ///
    /// Refused with the box handed back if the queue stayed full for the whole timeout or the
    /// pool is shutting down.
    pub fn execute_boxed_timeout(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
        timeout: Duration,
    ) -> Result<(), SubmitError<Box<dyn FnOnce() + Send + 'static>>> {
        self.execute_with(f, Some(deadline_after(timeout)), None)
    }

    #[inline(always)]
    fn execute_with<F>(
        &self,
        f: F,
        deadline: Option<Instant>,
        key: Option<&str>,
    ) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let work = match self.shared.config.hooks.capture() {
            // A task that came boxed is queued as it is (the type test is resolved at
            // compile time).
            None => match same_type::<F, BoxedFn>(f) {
                Ok(boxed) => Work::Boxed(boxed),
                Err(f) => Work::Detached(Box::new(f)),
            },
            Some(ctx) => Work::Detached(Box::new(InContext { f, ctx })),
        };
        let job = Job {
            enqueued: self.shared.enqueue_stamp(),
            work,
        };
        match self.send(job, deadline, key) {
            Ok(()) => {
                self.grow_if_needed();
                Ok(())
            }
            Err((job, reason)) => Err(SubmitError::new(
                refused_closure::<F>(job.work),
                reason,
                self.shared.name.clone(),
            )),
        }
    }

    /// Sends a job, unkeyed (`PoolShared::send`) or under `key` (`PoolShared::send_keyed`);
    /// `wait` bounds a wait for room. Inlined with a constant `None` key, the unkeyed
    /// submission paths compile to `send` alone.
    #[inline(always)]
    fn send(
        &self,
        job: Job,
        wait: Option<Instant>,
        key: Option<&str>,
    ) -> Result<(), (Job, RefusalReason)> {
        match key {
            None => self.shared.send(job, wait),
            Some(key) => self.shared.send_keyed(key, job, wait),
        }
    }

    /// Elastic pools, after an enqueue: starts a thread rather than let the task wait, while
    /// below the maximum. A fixed pool pays one `Option` check.
    #[inline]
    pub(crate) fn grow_if_needed(&self) {
        if let Some(d) = &self.shared.dynamic {
            if d.wants_growth(|| self.shared.tx.len()) {
                self.shared.grow();
            }
        }
    }

    /// Queues a continuation's cell without blocking (see `TaskHandle::then_in`).
    pub(crate) fn submit_cell(&self, cell: Arc<dyn Runnable>) -> Result<(), RefusalReason> {
        let watched = self
            .shared
            .config
            .max_queue_wait
            .is_some()
            .then(|| cell.clone());
        let job = Job {
            enqueued: self.shared.enqueue_stamp(),
            work: Work::Handle(cell),
        };
        self.shared
            .send(job, None)
            .map(|()| {
                self.grow_if_needed();
                if let Some(cell) = watched {
                    self.shared.watch_default(cell);
                }
            })
            .map_err(|(job, reason)| {
                // The job holds one of two references to the cell: dropping it leaves the
                // cell to the caller, which resolves it as refused.
                drop(job);
                reason
            })
    }

    /// This pool seen through one key (a tenant, a customer, a route): submissions through
    /// the [`Keyed`] view carry `key`, count against the pool's per-key cap
    /// ([`PoolBuilder::key_cap`](crate::PoolBuilder::key_cap)) and are served in the pool's
    /// key order ([`PoolBuilder::key_order`](crate::PoolBuilder::key_order); fair by
    /// default: a key that floods the pool gets its share of the workers while other keys
    /// wait, and no more). They share the pool's threads and slots with every other key and
    /// with unkeyed submissions, which are not affected and pay nothing for keys.
    ///
    /// A key is any string; a key costs memory only while it has tasks in flight, and the
    /// stats name at most [`key_metrics`](crate::PoolBuilder::key_metrics) keys.
    ///
    /// ```
    /// use bulkhead::{Runtime, RefusalReason};
    ///
    /// let rt = Runtime::builder()
    ///     .pool("api", |p| p.threads(2).queue_capacity(8).key_cap(2))
    ///     .build()?;
    /// let api = rt.pool("api")?;
    /// let gate = std::sync::Arc::new(std::sync::Barrier::new(3));
    /// // Two tasks of tenant-a hold both threads until the barrier...
    /// let held: Vec<_> = (0..2)
    ///     .map(|_| {
    ///         let gate = gate.clone();
    ///         api.key("tenant-a").try_submit(move || { gate.wait(); })
    ///     })
    ///     .collect::<Result<_, _>>()?;
    /// // ...so a third is over tenant-a's cap, and comes back,
    /// let refused = api.key("tenant-a").try_submit(|| ()).unwrap_err();
    /// assert_eq!(refused.reason(), RefusalReason::KeyCap);
    /// // while tenant-b is still admitted.
    /// let b = api.key("tenant-b").try_submit(|| "b")?;
    /// gate.wait();
    /// for h in held { h.join()?; }
    /// assert_eq!(b.join()?, "b");
    /// let stats = api.stats();
    /// let a = stats.keys.iter().find(|k| k.key.as_deref() == Some("tenant-a")).unwrap();
    /// assert_eq!((a.completed, a.refused_key_cap), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key<'a>(&'a self, key: &'a str) -> Keyed<'a> {
        Keyed { pool: self, key }
    }

    /// Sets the weight of `key` in the pool's fair order while it runs: the key is served up
    /// to `weight` tasks per round while other keys wait (each other key: its own weight, 1
    /// unless set). Takes effect from the key's next round. Unknown keys may be weighted
    /// ahead of their first task; the weights set are kept for the pool's life.
    ///
    /// ```
    /// # let rt = bulkhead::Runtime::builder().pool("api", |p| p).build().unwrap();
    /// # let api = rt.pool("api")?;
    /// use std::num::NonZeroU32;
    /// api.set_key_weight("gold", NonZeroU32::new(4).unwrap());
    /// assert_eq!(api.key("gold").weight(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_key_weight(&self, key: &str, weight: NonZeroU32) {
        self.shared.keys.set_weight(key, weight);
    }

    /// The per-key cap on tasks in flight, if the pool has one.
    pub fn key_cap(&self) -> Option<usize> {
        self.shared.keys.cap()
    }

    /// The order in which the pool serves keyed tasks.
    pub fn key_order(&self) -> KeyOrder {
        self.shared.keys.order()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The number of worker threads now: the fixed size, or for an elastic or resizable
    /// pool its live workers (including stuck workers that were replaced, until they return).
    pub fn threads(&self) -> usize {
        match &self.shared.dynamic {
            Some(d) => d.live(),
            None => self.shared.config.threads,
        }
    }

    /// The bounds of the pool's thread count, `(min, max)`: equal for a fixed size; see
    /// [`PoolBuilder::elastic`](crate::PoolBuilder::elastic) and
    /// [`set_thread_range`](Pool::set_thread_range).
    pub fn thread_range(&self) -> (usize, usize) {
        match &self.shared.dynamic {
            Some(d) => d.range(),
            None => (self.shared.config.threads, self.shared.config.threads),
        }
    }

    /// Resizes the pool to a fixed `n` threads at runtime (see [`set_thread_range`](Pool::set_thread_range)).
    ///
    /// # Errors
    ///
    /// As [`set_thread_range`](Pool::set_thread_range), naming the field `threads`.
    pub fn set_threads(&self, n: usize) -> Result<(), ResizeError> {
        self.resize_threads("threads", n, n)
    }

    /// Changes the pool's thread bounds at runtime: `min` threads always, up to `max` under
    /// load (an elastic pool; `min == max` is a fixed size).
    ///
    /// Growing starts threads up to `min` before this returns. Shrinking is cooperative:
    /// idle workers are woken and exit first; busy ones finish their task, then exit, until
    /// the pool has at most `max`. No task is lost: queued tasks stay queued, running tasks
    /// finish. Stuck workers that were replaced are not counted against the bounds.
    ///
    /// # Errors
    ///
    /// The same validation as at build: `1 <= min <= max <= max_threads_limit`, else
    /// [`ResizeErrorKind::OutOfRange`] naming the pool and the field `elastic`;
    /// [`ResizeErrorKind::NotResizable`] if the pool was built without
    /// [`max_threads_limit`](crate::PoolBuilder::max_threads_limit), without an elastic range
    /// and without a replacement budget; [`ResizeErrorKind::Spawn`] if a thread could not be
    /// started, [`ResizeErrorKind::Os`] or [`ResizeErrorKind::StartHook`] if one failed its
    /// set-up (placement, a panicking start hook): the call waits for the new threads'
    /// set-up, and by the time it returns, such a thread is no longer counted, so
    /// [`threads`](Pool::threads) says what really runs.
    pub fn set_thread_range(&self, min: usize, max: usize) -> Result<(), ResizeError> {
        self.resize_threads("elastic", min, max)
    }

    fn resize_threads(
        &self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<(), ResizeError> {
        let name = &*self.shared.name;
        let Some(d) = &self.shared.dynamic else {
            return Err(ResizeError::new(
                name,
                "max_threads_limit",
                ResizeErrorKind::NotResizable,
                "the pool was built with a fixed size; set max_threads_limit at build to resize it",
            ));
        };
        check_thread_range(min, max, d.threads_limit)
            .map_err(|why| ResizeError::new(name, field, ResizeErrorKind::OutOfRange, why))?;
        self.shared
            .set_range(min, max)
            .map_err(|e| e.into_resize_error(name, field))
    }

    /// Changes the queue capacity at runtime. Tasks already queued are kept even above the
    /// new capacity; new submissions are refused (or wait) until the queue is below it.
    ///
    /// # Errors
    ///
    /// [`ResizeErrorKind::NotResizable`] (field `queue_capacity_limit`) if the pool was built
    /// without [`queue_capacity_limit`](crate::PoolBuilder::queue_capacity_limit);
    /// [`ResizeErrorKind::OutOfRange`] (field `queue_capacity`) unless `1 <= n <= ` that limit.
    pub fn set_queue_capacity(&self, n: usize) -> Result<(), ResizeError> {
        let name = &*self.shared.name;
        let Some(cap) = self.shared.queue_cap_limit else {
            return Err(ResizeError::new(
                name,
                "queue_capacity_limit",
                ResizeErrorKind::NotResizable,
                "the queue capacity is fixed; set queue_capacity_limit at build to resize it",
            ));
        };
        if n == 0 || n > cap {
            return Err(ResizeError::new(
                name,
                "queue_capacity",
                ResizeErrorKind::OutOfRange,
                format!("must be between 1 and queue_capacity_limit ({cap}), got {n}"),
            ));
        }
        self.shared.queue_cap.store(n, Ordering::Relaxed);
        self.shared.update_limit();
        Ok(())
    }

    /// The pool's replacement budget for stuck workers (0 when none).
    pub fn replacement_budget(&self) -> usize {
        self.shared.dynamic.as_ref().map_or(0, |d| d.budget)
    }

    /// The queue capacity now (see [`set_queue_capacity`](Pool::set_queue_capacity)).
    pub fn queue_capacity(&self) -> usize {
        self.shared.queue_capacity()
    }

    /// The maximum queue wait, if one is set.
    pub fn max_queue_wait(&self) -> Option<Duration> {
        self.shared.config.max_queue_wait
    }

    /// The queue-delay controller's `(target, interval)`, if [`codel`](crate::PoolBuilder::codel)
    /// is on.
    pub fn codel(&self) -> Option<(Duration, Duration)> {
        self.shared.config.codel.map(|c| (c.target, c.interval))
    }

    /// The CPUs the pool was configured to run on, if [`cpus`](crate::PoolBuilder::cpus) was
    /// set. What each worker actually got is in [`workers`](Pool::workers), read from the OS.
    pub fn cpus(&self) -> Option<&CpuSet> {
        self.shared.config.cpu.cpus.as_ref()
    }

    /// How many tasks wait in the queue right now.
    pub fn queued(&self) -> usize {
        self.shared.tx.len()
    }

    /// True once the runtime began shutting down; submissions are then refused.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.state.load(Ordering::Relaxed) & CLOSED != 0
    }

    /// The pool's worker threads as the OS knows them, in index order: thread id, and the
    /// affinity, nice value and scheduling policy read back from the OS at this call.
    ///
    /// One entry per worker slot ever used: in an elastic, replaceable or resizable pool,
    /// slots of retired workers stay listed (`exited`), and a slot reused by a later worker
    /// shows that worker.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.shared
            .workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.was_used())
            .map(|(i, w)| w.info(i))
            .collect()
    }

    /// A snapshot of the pool's counters, queue length and busy workers.
    ///
    /// The counters are read one by one without stopping the pool, so while tasks flow the
    /// snapshot is not one instant; once the pool is quiet, the accounting identity holds
    /// exactly (see [`PoolStats`]).
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &&*self.shared.name)
            .field("threads", &self.threads())
            .field("queue_capacity", &self.queue_capacity())
            .finish_non_exhaustive()
    }
}

/// A [`Pool`] seen through one key: see [`Pool::key`]. Cheap to make; borrows the pool and
/// the key.
#[derive(Clone, Copy)]
pub struct Keyed<'a> {
    pool: &'a Pool,
    key: &'a str,
}

impl Keyed<'_> {
    /// Submits `f` under this key and returns a handle to its result; never blocks.
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back if the key is at the pool's per-key cap
    /// ([`RefusalReason::KeyCap`]), the pool is full ([`RefusalReason::Full`]) or it is
    /// shutting down.
    pub fn try_submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_waiting(f, None)
    }

    /// Submits `f` under this key, waiting for room in the pool until it has some, the pool
    /// shuts down, or forever. A key at its cap is refused at once, not waited for: a key
    /// that waits for its own cap would only queue its flood somewhere else.
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back if the key is at its cap
    /// ([`RefusalReason::KeyCap`]) or the pool is shutting down.
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_waiting(f, Some(deadline_after(Duration::MAX)))
    }

    /// Submits `f` under this key, waiting at most `timeout` for room in the pool (not for
    /// the key's cap: see [`submit`](Keyed::submit)).
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back if the key is at its cap, the pool stayed full
    /// for the whole timeout ([`RefusalReason::Timeout`]) or it is shutting down.
    pub fn submit_timeout<F, T>(
        &self,
        f: F,
        timeout: Duration,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_waiting(f, Some(deadline_after(timeout)))
    }

    /// Submits `f` under this key with a deadline by which it must start, as
    /// [`Pool::try_submit_by`] does: refused at once if the deadline has passed or the pool
    /// predicts a late start, resolved as expired at the deadline if still queued then.
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back as [`RefusalReason::Deadline`], or for the
    /// reasons of [`try_submit`](Keyed::try_submit).
    pub fn try_submit_by<F, T>(
        &self,
        f: F,
        deadline: Instant,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.pool.submit_by(f, deadline, Some(self.key))
    }

    /// Submits `f` under this key from async code: the returned future resolves once the
    /// pool has room (to the task's handle), or refuses at once if the key is at its cap, or
    /// when the pool shuts down (the closure comes back in the error). Cancel-safe, as
    /// [`Pool::submit_async`]: dropping the future before it resolved admits nothing.
    ///
    /// ```
    /// # let rt = bulkhead::Runtime::builder().pool("api", |p| p.key_cap(8)).build().unwrap();
    /// # let api = rt.pool("api")?;
    /// # let tenant = "tenant-7";
    /// # let fut = async {
    /// let report = api.key(tenant).submit_async(|| "rendered").await?.await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(report)
    /// # };
    /// # drop(fut);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_async<F, T>(&self, f: F) -> Admission<F, T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Admission::keyed(self.pool.clone(), Arc::from(self.key), f)
    }

    /// [`try_submit_by`](Keyed::try_submit_by) with a deadline `budget` from now.
    ///
    /// # Errors
    ///
    /// As [`try_submit_by`](Keyed::try_submit_by).
    pub fn try_submit_within<F, T>(
        &self,
        f: F,
        budget: Duration,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.try_submit_by(f, deadline_after(budget))
    }

    fn submit_waiting<F, T>(
        &self,
        f: F,
        wait: Option<Instant>,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.pool.submit_with(f, wait, Some(self.key))
    }

    /// Runs `f` under this key without a result slot; never blocks. A panic in `f` is
    /// caught and counted (for the pool and the key).
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back if the key is at the pool's per-key cap, the
    /// pool is full or it is shutting down.
    pub fn execute<F>(&self, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_waiting(f, None)
    }

    /// Like [`execute`](Keyed::execute), but waits at most `timeout` for room in the pool
    /// (not for the key's cap: see [`submit`](Keyed::submit)).
    ///
    /// # Errors
    ///
    /// Refused with the closure handed back if the key is at its cap, the pool stayed full
    /// for the whole timeout or it is shutting down.
    pub fn execute_timeout<F>(&self, f: F, timeout: Duration) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_waiting(f, Some(deadline_after(timeout)))
    }

    fn execute_waiting<F>(&self, f: F, wait: Option<Instant>) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.pool.execute_with(f, wait, Some(self.key))
    }

    /// The key.
    pub fn key(&self) -> &str {
        self.key
    }

    /// The key's tasks in flight (queued or running) now.
    pub fn in_flight(&self) -> usize {
        self.pool.shared.keys.in_flight(self.key)
    }

    /// The key's weight in the pool's fair order (1 unless set).
    pub fn weight(&self) -> u32 {
        self.pool.shared.keys.weight(self.key)
    }
}

impl fmt::Debug for Keyed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("pool", &self.pool.name())
            .field("key", &self.key)
            .finish()
    }
}

/// The closure of a refused fire-and-forget job, as the caller gave it.
#[cold]
fn refused_closure<F: FnOnce() + Send + 'static>(work: Work) -> F {
    match work {
        Work::Boxed(boxed) => match same_type::<BoxedFn, F>(boxed) {
            Ok(f) => f,
            Err(_) => unreachable!("a boxed job comes from a closure of type BoxedFn"),
        },
        Work::Detached(task) => match task.into_any().downcast::<F>() {
            Ok(f) => *f,
            Err(_) => unreachable!("a detached job holds the closure it was built from"),
        },
        Work::Handle(_) | Work::Keyed => unreachable!("execute always sends a detached job"),
    }
}

/// `now + timeout`, or a deadline far enough away to mean "no deadline" when that overflows.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
