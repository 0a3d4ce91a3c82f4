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

use std::fmt;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};
use crossbeam_utils::CachePadded;

use crate::cpuset::CpuSet;
use crate::error::{RefusalReason, SubmitError};
use crate::hooks::{Hooks, InContext};
use crate::metrics::LatencyRecorder;
use crate::placement::CpuConfig;
use crate::stats::{PoolStats, WorkerInfo, WorkerSlot};
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::task::{DetachedTask, Job, Runnable, TaskCell, TaskHandle, Work};

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
    /// Context, lifecycle and panic hooks (all optional).
    pub(crate) hooks: Hooks,
}

#[derive(Default)]
pub(crate) struct RefusalCounters {
    pub(crate) full: AtomicU64,
    pub(crate) timeout: AtomicU64,
    pub(crate) shutting_down: AtomicU64,
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
    /// One latency recorder per worker (same index), or `None` when metrics are off.
    pub(crate) recorders: Option<Box<[CachePadded<LatencyRecorder>]>>,
    /// The instant worker timestamps are counted from.
    pub(crate) epoch: Instant,
    /// Disconnected (dropped) when shutdown begins, to wake idle workers.
    pub(crate) shutdown_tx: Mutex<Option<Sender<()>>>,
    pub(crate) shutdown_rx: Receiver<()>,
    /// Disconnected when the last worker thread has exited.
    pub(crate) exit_rx: Receiver<()>,
    pub(crate) joins: Mutex<Vec<(usize, JoinHandle<()>)>>,
    /// Workers blocked in `join`/`join_timeout` on an unfinished task of this pool (deadlock
    /// detection, see `task.rs`).
    pub(crate) blocked_joins: AtomicUsize,
}

impl PoolShared {
    /// The pool's identity for task cells and worker threads: the address of this shared
    /// state, stable while any handle, worker or queued task keeps it alive.
    #[inline]
    pub(crate) fn id(&self) -> usize {
        self as *const PoolShared as usize
    }

    /// Admits and enqueues one job. On refusal the job comes back with the reason.
    #[inline]
    fn send(&self, job: Job, deadline: Option<Instant>) -> Result<(), (Job, RefusalReason)> {
        self.submitted.fetch_add(1, Ordering::Relaxed);
        let prev = self.state.fetch_add(IN_FLIGHT, Ordering::Acquire);
        let result = if prev & CLOSED != 0 {
            Err((job, RefusalReason::ShuttingDown))
        } else {
            match deadline {
                None => self.tx.try_send(job).map_err(|e| match e {
                    TrySendError::Full(j) => (j, RefusalReason::Full),
                    TrySendError::Disconnected(j) => (j, RefusalReason::ShuttingDown),
                }),
                Some(d) => self.tx.send_deadline(job, d).map_err(|e| match e {
                    SendTimeoutError::Timeout(j) => (j, RefusalReason::Timeout),
                    SendTimeoutError::Disconnected(j) => (j, RefusalReason::ShuttingDown),
                }),
            }
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

    #[cold]
    fn count_refusal(&self, reason: RefusalReason) {
        let c = match reason {
            RefusalReason::Full => &self.refused.full,
            RefusalReason::Timeout => &self.refused.timeout,
            RefusalReason::ShuttingDown => &self.refused.shutting_down,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops intake and wakes idle workers so they drain the queue and exit.
    pub(crate) fn begin_shutdown(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
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
            job.cancel(&mut |_| {
                self.drained.fetch_add(1, Ordering::Relaxed);
            });
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
                self.reap();
                return all_exited;
            }
        }
    }

    /// Joins the threads of workers that have exited; the others stay detached until a
    /// later call.
    fn reap(&self) {
        let finished: Vec<_> = {
            let mut joins = self.joins.lock();
            let (done, running) = std::mem::take(&mut *joins)
                .into_iter()
                .partition(|(i, _)| self.workers[*i].has_exited());
            *joins = running;
            done
        };
        for (_, handle) in finished {
            // A worker's thread has no path that panics outside `catch_unwind`; if one ever
            // did, the shutdown still completes.
            let _ = handle.join();
        }
    }

    pub(crate) fn nanos_since_epoch(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let mut s = PoolStats::empty(&self.name, &self.config);
        let now = self.nanos_since_epoch(Instant::now());
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
        s.queued = self.tx.len();
        s.shutting_down = self.state.load(Ordering::Relaxed) & CLOSED != 0;
        // Read last, so that a snapshot never shows more outcomes than submissions.
        s.submitted = self.submitted.load(Ordering::Relaxed);
        s
    }
}

/// A handle to one named pool: cheap to clone (`Arc`), `Send + Sync`, obtained from
/// [`Runtime::pool`](crate::Runtime::pool).
///
/// Every submission is bounded in time: the `try_` and plain forms never block, the
/// `_timeout` forms block at most their timeout. A refused task is handed back inside the
/// [`SubmitError`].
///
/// | method                                        | result slot         | when the queue is full |
/// |-----------------------------------------------|---------------------|------------------------|
/// | [`try_submit`](Pool::try_submit)              | [`TaskHandle`]      | refused at once        |
/// | [`submit_timeout`](Pool::submit_timeout)      | [`TaskHandle`]      | waits up to a timeout  |
/// | [`execute`](Pool::execute)                    | none (cheapest)     | refused at once        |
/// | [`execute_timeout`](Pool::execute_timeout)    | none                | waits up to a timeout  |
///
/// A handle stays usable after the runtime shuts down: submissions are then refused with
/// [`RefusalReason::ShuttingDown`].
#[derive(Clone)]
pub struct Pool {
    pub(crate) shared: Arc<PoolShared>,
}

impl Pool {
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
        self.submit_with(f, None)
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
        self.submit_with(f, Some(deadline_after(timeout)))
    }

    #[inline]
    fn submit_with<F, T>(
        &self,
        f: F,
        deadline: Option<Instant>,
    ) -> Result<TaskHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ctx = self.shared.config.hooks.capture();
        let cell = TaskCell::new(f, ctx, self.shared.id());
        let job = Job {
            enqueued: Instant::now(),
            work: Work::Handle(cell.clone()),
        };
        match self.shared.send(job, deadline) {
            Ok(()) => Ok(TaskHandle::new(cell)),
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
    #[inline]
    pub fn execute<F>(&self, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_with(f, None)
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
        self.execute_with(f, Some(deadline_after(timeout)))
    }

    #[inline]
    fn execute_with<F>(&self, f: F, deadline: Option<Instant>) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let task: Box<dyn DetachedTask> = match self.shared.config.hooks.capture() {
            None => Box::new(f),
            Some(ctx) => Box::new(InContext { f, ctx }),
        };
        let job = Job {
            enqueued: Instant::now(),
            work: Work::Detached(task),
        };
        match self.shared.send(job, deadline) {
            Ok(()) => Ok(()),
            Err((job, reason)) => {
                let Work::Detached(task) = job.work else {
                    unreachable!("execute always sends a detached job")
                };
                match task.into_any().downcast::<F>() {
                    Ok(f) => Err(SubmitError::new(*f, reason, self.shared.name.clone())),
                    Err(_) => unreachable!("a detached job holds the closure it was built from"),
                }
            }
        }
    }

    /// Queues a continuation's cell without blocking (see `TaskHandle::then_in`).
    pub(crate) fn submit_cell(&self, cell: Arc<dyn Runnable>) -> Result<(), RefusalReason> {
        let job = Job {
            enqueued: Instant::now(),
            work: Work::Handle(cell),
        };
        self.shared.send(job, None).map_err(|(job, reason)| {
            // The job holds one of two references to the cell: dropping it leaves the cell
            // to the caller, which resolves it as refused.
            drop(job);
            reason
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The number of worker threads.
    pub fn threads(&self) -> usize {
        self.shared.config.threads
    }

    /// The queue capacity.
    pub fn queue_capacity(&self) -> usize {
        self.shared.config.queue_capacity
    }

    /// The maximum queue wait, if one is set.
    pub fn max_queue_wait(&self) -> Option<Duration> {
        self.shared.config.max_queue_wait
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
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.shared
            .workers
            .iter()
            .enumerate()
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
            .field("threads", &self.shared.config.threads)
            .field("queue_capacity", &self.shared.config.queue_capacity)
            .finish_non_exhaustive()
    }
}

/// `now + timeout`, or a deadline far enough away to mean "no deadline" when that overflows.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
