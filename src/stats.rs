//! Accounting: the per-worker slots workers write their outcome counters into, and the
//! [`PoolStats`] snapshot read from them.
//!
//! Each worker owns one cache-padded [`WorkerSlot`] and is the only thread that writes its
//! counters, so counting an outcome is a plain load and store, with no read-modify-write and
//! no cache line shared with another worker. Readers sum the slots.

use std::time::Duration;

use crate::cpuset::CpuSet;
use crate::job::Outcome;
use crate::placement::{self, SchedPolicy};
use crate::sync::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use crate::sys;

/// One worker's published state.
pub(crate) struct WorkerSlot {
    pub(crate) thread_name: String,
    /// The kernel thread id, published by the worker before it serves (0 until then, or
    /// where the OS has none).
    tid: AtomicI32,
    completed: AtomicU64,
    panicked: AtomicU64,
    expired: AtomicU64,
    cancelled: AtomicU64,
    shed: AtomicU64,
    /// Nanoseconds since the pool's epoch, plus one, at which the current task started;
    /// 0 while the worker is not running a task.
    busy_since: AtomicU64,
    /// [`VACANT`], [`LIVE`] or [`EXITED`]. A slot is reused (EXITED back to LIVE) only by a
    /// new worker started after the previous one marked it exited, so its counters keep a
    /// single writer at a time.
    state: AtomicU8,
    /// Set by the supervisor when it started a replacement for this worker's stuck task: the
    /// worker retires when its task returns.
    replaced: AtomicBool,
    /// CPU time, in nanoseconds, of every worker that has left this slot: each adds its own
    /// thread CPU clock as the last thing its thread does (after it marked the slot exited).
    /// One word carries both the time and the fact that it is in, so the supervisor can stop
    /// counting that worker's `/proc` reading exactly when this moves (see `supervisor`).
    retired_cpu_nanos: AtomicU64,
}

/// A slot no worker has used yet (room for elastic growth, replacements, resizing).
pub(crate) const VACANT: u8 = 0;
/// A worker thread owns the slot.
pub(crate) const LIVE: u8 = 1;
/// The slot's last worker has exited (or retired); it may be reused.
pub(crate) const EXITED: u8 = 2;

impl WorkerSlot {
    pub(crate) fn new(thread_name: String) -> Self {
        WorkerSlot {
            thread_name,
            tid: AtomicI32::new(0),
            completed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            state: AtomicU8::new(VACANT),
            replaced: AtomicBool::new(false),
            retired_cpu_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one outcome. Only the owning worker calls this.
    #[inline]
    pub(crate) fn count(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Completed => &self.completed,
            Outcome::Panicked => &self.panicked,
            Outcome::Expired => &self.expired,
            Outcome::Cancelled => &self.cancelled,
            Outcome::Shed => &self.shed,
            Outcome::Settled => return,
        };
        // Single writer: no read-modify-write needed.
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn set_busy(&self, since_nanos: u64) {
        self.busy_since
            .store(since_nanos.saturating_add(1), Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn set_idle(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }

    /// How long the current task has run, as of `now_nanos`, or `None` if idle.
    pub(crate) fn busy_for(&self, now_nanos: u64) -> Option<Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            s => Some(Duration::from_nanos(now_nanos.saturating_sub(s - 1))),
        }
    }

    /// The raw `busy_since` word: 0 while idle, otherwise a stamp that identifies the
    /// current task (its start, in nanoseconds since the pool's epoch, plus one).
    pub(crate) fn busy_stamp(&self) -> u64 {
        self.busy_since.load(Ordering::Relaxed)
    }

    pub(crate) fn set_tid(&self, tid: i32) {
        self.tid.store(tid, Ordering::Release);
    }

    /// The kernel thread id, once the worker has started.
    pub(crate) fn tid(&self) -> Option<i32> {
        match self.tid.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// Claims the slot for a worker about to start.
    pub(crate) fn mark_live(&self) {
        self.replaced.store(false, Ordering::Relaxed);
        // The previous worker's thread id is stale until the new worker publishes its own.
        self.tid.store(0, Ordering::Release);
        self.state.store(LIVE, Ordering::Release);
    }

    pub(crate) fn mark_exited(&self) {
        self.state.store(EXITED, Ordering::Release);
    }

    /// True unless a worker owns the slot now (never started, or exited).
    pub(crate) fn has_exited(&self) -> bool {
        self.state.load(Ordering::Acquire) != LIVE
    }

    /// True once a worker has used the slot.
    pub(crate) fn was_used(&self) -> bool {
        self.state.load(Ordering::Acquire) != VACANT
    }

    pub(crate) fn set_replaced(&self, replaced: bool) {
        self.replaced.store(replaced, Ordering::Release);
    }

    /// True if a replacement was started for this worker's stuck task.
    #[inline]
    pub(crate) fn is_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    /// Adds the CPU time of the calling worker thread, which is leaving the slot for good
    /// (and has already marked it exited), to the slot's retired total.
    pub(crate) fn retire_cpu_time(&self) {
        if let Some(nanos) = sys::thread_cpu_nanos() {
            // Release: whoever sees this total also sees the slot marked exited.
            self.retired_cpu_nanos.fetch_add(nanos, Ordering::Release);
        }
    }

    /// The CPU time of the workers that have left this slot, in nanoseconds.
    pub(crate) fn retired_cpu_nanos(&self) -> u64 {
        self.retired_cpu_nanos.load(Ordering::Acquire)
    }

    pub(crate) fn add_to(&self, s: &mut PoolStats) {
        s.completed += self.completed.load(Ordering::Relaxed);
        s.panicked += self.panicked.load(Ordering::Relaxed);
        s.expired += self.expired.load(Ordering::Relaxed);
        s.cancelled += self.cancelled.load(Ordering::Relaxed);
        s.shed += self.shed.load(Ordering::Relaxed);
    }
}

/// A snapshot of one pool's accounting, from [`Pool::stats`](crate::Pool::stats).
///
/// # The accounting identity
///
/// Every submission ends exactly one way, so at any moment
///
/// ```text
/// submitted == refused() + completed + panicked + expired + shed + cancelled + queued + busy
/// ```
///
/// where a task cancelled through its handle while queued still occupies its queue slot (and
/// is counted in `queued`) until a worker reaches it and counts it as `cancelled`. Counters
/// are read one by one while the pool runs, so the identity is exact once the pool is quiet
/// (nothing being submitted or run), and approximate while tasks flow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// Worker threads now: the fixed size of a fixed pool, or the live workers of an elastic
    /// or resizable pool (including stuck workers that were replaced, until they return).
    pub threads: usize,
    /// Queue capacity.
    pub queue_capacity: usize,
    /// Tasks waiting in the queue now.
    pub queued: usize,
    /// Workers running a task now.
    pub busy: usize,
    /// True once shutdown began.
    pub shutting_down: bool,
    /// Every submission attempt, accepted or refused.
    pub submitted: u64,
    /// Refused because the queue was full (non-blocking submission).
    pub refused_full: u64,
    /// Refused because the queue stayed full for the whole timeout.
    pub refused_timeout: u64,
    /// Refused because the pool was shutting down.
    pub refused_shutting_down: u64,
    /// Refused because the task's deadline had passed or would be missed
    /// ([`RefusalReason::Deadline`](crate::RefusalReason::Deadline)).
    #[cfg_attr(feature = "serde", serde(default))]
    pub refused_deadline: u64,
    /// Refused because the task's key was at the pool's per-key cap
    /// ([`RefusalReason::KeyCap`](crate::RefusalReason::KeyCap)).
    #[cfg_attr(feature = "serde", serde(default))]
    pub refused_key_cap: u64,
    /// The in-flight limit an adaptive controller set
    /// ([`PoolBuilder::adaptive_limit`](crate::PoolBuilder::adaptive_limit)); `None`
    /// without one (the limit is then the fixed `threads + queue_capacity`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub concurrency_limit: Option<usize>,
    /// Ran and returned.
    pub completed: u64,
    /// Ran and panicked (the panic was caught).
    pub panicked: u64,
    /// Not run: waited longer than the pool's maximum queue wait.
    pub expired: u64,
    /// Not run: cancelled through its handle, or by a shutdown that gave up on queued work.
    pub cancelled: u64,
    /// Not run: shed by the pool's queue-delay controller (CoDel) while the queue was
    /// standing; always 0 when [`codel`](crate::PoolBuilder::codel) is off.
    #[cfg_attr(feature = "serde", serde(default))]
    pub shed: u64,
    /// True while the pool's queue-delay controller is in its dropping state (shedding tasks
    /// that waited longer than its target); always false when CoDel is off.
    #[cfg_attr(feature = "serde", serde(default))]
    pub codel_dropping: bool,
    /// Workers stuck in a task for which a replacement thread was started
    /// ([`replacement_budget`](crate::PoolBuilder::replacement_budget)); each is counted in
    /// `threads` until its task returns and it retires.
    #[cfg_attr(feature = "serde", serde(default))]
    pub replaced: usize,
    /// Replacement threads started over the pool's life.
    #[cfg_attr(feature = "serde", serde(default))]
    pub replacements: u64,
    /// Keyed submissions ([`Pool::key`](crate::Pool::key)): the most loaded keys, heaviest
    /// first, at most [`key_metrics`](crate::PoolBuilder::key_metrics) of them; empty if the
    /// pool has had no keyed submission.
    #[cfg_attr(feature = "serde", serde(default))]
    pub keys: Vec<KeyStats>,
    /// Every other key's counts summed (its `key` is `None`), or `None` if `keys` names every
    /// key. `keys` plus this row add up to every keyed submission.
    #[cfg_attr(feature = "serde", serde(default))]
    pub other_keys: Option<KeyStats>,
}

/// Counts of one key of a pool's keyed submissions (or of several keys summed), over the
/// pool's life, with its tasks in flight now. See [`Pool::key`](crate::Pool::key).
///
/// `accepted = completed + panicked + expired + shed + cancelled + in_flight` once the pool
/// is quiet; `refused_key_cap + refused_other` were never accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct KeyStats {
    /// The key, or `None` for the other keys summed.
    pub key: Option<String>,
    /// Submissions accepted.
    pub accepted: u64,
    /// Refused because the key was at its cap
    /// ([`RefusalReason::KeyCap`](crate::RefusalReason::KeyCap)).
    pub refused_key_cap: u64,
    /// Refused for any other reason (the pool was full or shutting down).
    pub refused_other: u64,
    /// Ran to completion.
    pub completed: u64,
    /// Panicked.
    pub panicked: u64,
    /// Expired before they ran (a deadline or the pool's maximum queue wait).
    pub expired: u64,
    /// Shed by the pool's queue-delay controller.
    pub shed: u64,
    /// Cancelled (through the handle, or by a shutdown).
    pub cancelled: u64,
    /// Queued or running now.
    pub in_flight: usize,
    /// Queued now.
    pub queued: usize,
    /// Queue wait of the `dequeued` tasks, summed: `queue_wait_total / dequeued` is the mean.
    pub queue_wait_total: Duration,
    /// Tasks a worker took from the queue (run, or found expired or cancelled there).
    pub dequeued: u64,
}

impl KeyStats {
    /// Accepted tasks that have ended, however they ended.
    pub fn finished(&self) -> u64 {
        self.completed + self.panicked + self.expired + self.shed + self.cancelled
    }

    /// The mean queue wait of the tasks dequeued so far, if any were.
    pub fn mean_queue_wait(&self) -> Option<Duration> {
        if self.dequeued == 0 {
            return None;
        }
        let mean = self.queue_wait_total.as_nanos() / u128::from(self.dequeued);
        Some(Duration::from_nanos(
            u64::try_from(mean).unwrap_or(u64::MAX),
        ))
    }
}

impl PoolStats {
    /// All zero, for a pool named `name` of `threads` threads and `queue_capacity`.
    pub(crate) fn empty(name: &str, threads: usize, queue_capacity: usize) -> Self {
        PoolStats {
            name: name.to_owned(),
            threads,
            queue_capacity,
            queued: 0,
            busy: 0,
            shutting_down: false,
            submitted: 0,
            refused_full: 0,
            refused_timeout: 0,
            refused_shutting_down: 0,
            refused_deadline: 0,
            refused_key_cap: 0,
            concurrency_limit: None,
            completed: 0,
            panicked: 0,
            expired: 0,
            cancelled: 0,
            shed: 0,
            codel_dropping: false,
            replaced: 0,
            replacements: 0,
            keys: Vec::new(),
            other_keys: None,
        }
    }

    /// All refusals, whatever the reason.
    pub fn refused(&self) -> u64 {
        self.refused_full
            + self.refused_timeout
            + self.refused_shutting_down
            + self.refused_deadline
            + self.refused_key_cap
    }

    /// Submissions that were accepted into the queue.
    pub fn accepted(&self) -> u64 {
        self.submitted.saturating_sub(self.refused())
    }

    /// Accepted tasks that have ended: completed, panicked, expired, shed or cancelled.
    pub fn finished(&self) -> u64 {
        self.completed + self.panicked + self.expired + self.shed + self.cancelled
    }
}

/// What one worker thread is, as the OS knows it; from [`Pool::workers`](crate::Pool::workers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The worker's index in its pool.
    pub index: usize,
    /// The thread's name (the kernel keeps its first 15 bytes on Linux).
    pub thread_name: String,
    /// The kernel thread id (`/proc/self/task/<tid>`), where the OS has one.
    pub tid: Option<i32>,
    /// True while the worker is running a task.
    pub busy: bool,
    /// True once the worker thread has exited (after shutdown, or once it retired: an
    /// elastic pool shrinking, a resize, a replaced stuck worker whose task returned).
    pub exited: bool,
    /// The CPUs the thread may run on, read from the OS (`sched_getaffinity`) when
    /// [`Pool::workers`](crate::Pool::workers) was called; `None` once the worker has exited,
    /// before it started, or off Linux.
    pub affinity: Option<CpuSet>,
    /// The thread's nice value, read from the OS (`getpriority`); `None` as for `affinity`.
    pub nice: Option<i32>,
    /// The thread's scheduling policy, read from the OS (`sched_getscheduler`); `None` as
    /// for `affinity`, or if it is a real-time policy, which this crate does not set.
    pub sched_policy: Option<SchedPolicy>,
}

impl WorkerSlot {
    pub(crate) fn info(&self, index: usize) -> WorkerInfo {
        let tid = self.tid();
        let exited = self.has_exited();
        // An exited worker's thread id may already name another thread: do not ask.
        let (affinity, nice, sched_policy) = match tid {
            Some(tid) if !exited => placement::read_back(tid),
            _ => (None, None, None),
        };
        WorkerInfo {
            index,
            thread_name: self.thread_name.clone(),
            tid,
            busy: self.busy_since.load(Ordering::Relaxed) != 0,
            exited,
            affinity,
            nice,
            sched_policy,
        }
    }
}
