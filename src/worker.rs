//! The worker loop: take a job from the pool's queue, decide its fate (run, expire or
//! cancel), count the outcome in the worker's own slot, repeat.
//!
//! A worker takes jobs with a non-blocking `try_recv` while the queue has work, and blocks
//! (parks in crossbeam's `select`, burning no CPU) only when it is empty. It reads the pool's
//! admission word only on that slow path, to learn whether shutdown began; see the protocol in
//! [`pool`](crate::pool).
//!
//! # Latency
//!
//! With metrics on, a task that ran is recorded into the worker's own recorder (one
//! uncontended lock, no allocation) as soon as it returns, before its handle is resolved, so
//! a caller who joined sees it in the histograms. The clock read that ends one task also
//! starts the next one when the worker finds another job at once, so tasks run back to back
//! cost one clock read each, as with metrics off; the next task's queue wait is then measured
//! up to that instant, a few tens of nanoseconds before the worker actually took it.

use std::cell::{Cell, RefCell};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{select, RecvTimeoutError, Sender};
use crossbeam_utils::Backoff;

use crate::error::SetupError;
use crate::hooks::{WorkerId, WorkerThread};
use crate::job::{Job, NotRun, Outcome, Work};
use crate::keys::KeyRef;
use crate::pool::{PoolShared, CLOSED, IN_FLIGHT};
use crate::sync::{Arc, Ordering};
use crate::sys;
use crate::unwind::{drop_quietly, payload_str};

/// How often a worker re-checks the admission word while shutdown waits for a submitter
/// still blocked in a `*_timeout` call (the only time a worker polls).
const SHUTDOWN_POLL: Duration = Duration::from_millis(1);

/// Starts worker `index` of the pool. The thread holds `exit_token` until it returns; the
/// pool learns that all its workers are gone when the last token is dropped.
///
/// Before it serves, the worker sets itself up (publishes its thread id, applies the pool's
/// placement) and reports the result on `ready`; if set-up failed it exits without serving,
/// and `build()` fails with that error. Workers started after build (elastic growth,
/// replacements, resizing) have no `ready`: one whose set-up fails just exits.
pub(crate) fn spawn(
    shared: Arc<PoolShared>,
    index: usize,
    exit_token: Sender<()>,
    ready: Option<Sender<Result<(), SetupError>>>,
) -> io::Result<JoinHandle<()>> {
    let mut builder = thread::Builder::new().name(shared.workers[index].thread_name.clone());
    if let Some(bytes) = shared.config.stack_size {
        builder = builder.stack_size(bytes);
    }
    builder.spawn(move || {
        let _exit_token = exit_token;
        // Dropped last but for the token, also on unwind: the thread's CPU time goes into its
        // slot's retired total as its very last act (see `RetireCpuTime`).
        let _cpu_time = RetireCpuTime::new(shared.clone(), index);
        let worker = Worker {
            shared,
            index,
            retired: Cell::new(false),
            spin_next: Cell::new(true),
        };
        // Placement first, so that the start hook sees the final placement.
        let setup = worker
            .set_up()
            .and_then(|()| thread_started(&worker.shared, index));
        let ok = setup.is_ok();
        if !ok {
            // Stop being counted before anyone hears of the failure, so that a resize that
            // reports it also reports the thread count that really runs.
            worker.exit();
        }
        // The starter may be waiting on the other end; if it is gone there is nobody to serve.
        let starter_gone = ready.is_some_and(|ready| ready.send(setup).is_err());
        if starter_gone || !ok {
            if ok {
                worker.exit();
                thread_stopped(&worker.shared, index);
            }
            worker.leave();
            return;
        }
        worker.run();
        thread_stopped(&worker.shared, index);
        worker.leave();
    })
}

/// Held by a worker thread for its whole life, declared right after its exit token so that it
/// is dropped last but for that token, also on unwind: its drop is the thread's last act,
/// which adds the thread's own CPU time to its slot (`WorkerSlot::retire_cpu_time`).
struct RetireCpuTime {
    shared: Arc<PoolShared>,
    index: usize,
}

impl RetireCpuTime {
    fn new(shared: Arc<PoolShared>, index: usize) -> Self {
        RetireCpuTime { shared, index }
    }
}

impl Drop for RetireCpuTime {
    fn drop(&mut self) {
        self.shared.workers[self.index].retire_cpu_time();
    }
}

/// What a worker's accounting step does for a task's key: nothing for an unkeyed task (`()`:
/// the processing step is compiled without any key code), release its place under the key's
/// cap and count its outcome for a keyed one (its `KeyRef`).
trait TaskKey: Copy {
    /// True for `()`: a job processed as unkeyed may still be a keyed turn.
    const UNKEYED: bool;
    fn release(self, shared: &PoolShared, outcome: Outcome, waited: Option<Duration>);
}

impl TaskKey for () {
    const UNKEYED: bool = true;
    #[inline(always)]
    fn release(self, _: &PoolShared, _: Outcome, _: Option<Duration>) {}
}

impl TaskKey for KeyRef {
    const UNKEYED: bool = false;
    #[inline]
    fn release(self, shared: &PoolShared, outcome: Outcome, waited: Option<Duration>) {
        shared.keys.release(self, outcome, waited);
    }
}

/// Why a worker asks to retire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retire {
    /// After a task, or woken while idle: retire if `active > max` or it was replaced.
    Check,
    /// Idle for `keep_alive`: retire if `active > min`.
    KeepAlive,
    /// Exiting anyway (shutdown, failed set-up): always.
    Exit,
}

struct Worker {
    shared: Arc<PoolShared>,
    index: usize,
    /// Set once a dynamic pool's worker has retired (and is no longer counted).
    retired: Cell<bool>,
    /// Whether the last wait for a task was shorter than the pool's `idle_spin`, so that the
    /// next one spins that long before parking.
    spin_next: Cell<bool>,
}

impl Worker {
    /// Runs on the new thread before it takes any task.
    fn set_up(&self) -> Result<(), SetupError> {
        let slot = &self.shared.workers[self.index];
        if let Some(tid) = sys::current_tid() {
            slot.set_tid(tid);
        }
        // Affinity, policy, nice: before the first task, and any refusal fails `build()`.
        self.shared.config.cpu.apply(self.index)
    }

    fn run(&self) {
        let shared = &*self.shared;
        let slot = &shared.workers[self.index];
        // A clock reading taken as the previous task ended, reused as the next task's start
        // when the next job is taken at once (metrics on only).
        let mut boundary: Option<u64> = None;
        loop {
            // Step 1: take work without blocking while there is some.
            let job = match shared.rx.try_recv() {
                Ok(job) => job,
                // Step 2: the queue is empty: block, or learn that it is time to exit.
                Err(_) => {
                    boundary = None;
                    // An empty queue ends any standing queue: CoDel resumes normal service.
                    if let Some(codel) = &shared.codel {
                        codel.queue_empty();
                    }
                    match self.wait_for_job() {
                        Some(job) => job,
                        None => break,
                    }
                }
            };
            // Step 3: one clock read per task boundary, in nanoseconds on the pool's clock.
            let start = boundary.take().unwrap_or_else(|| shared.now_nanos());
            // Step 4: run, expire or cancel it; its outcome is counted (and, with metrics on,
            // its latency recorded) before its handle, if any, is resolved. A keyed turn is
            // exchanged for the next keyed job in the pool's order (`keys.rs`).
            boundary = self.process(job, start, ());
            // Step 5 (elastic, replaceable or resizable pools only): retire if the pool
            // shrinks or a replacement took this worker's place while it was stuck.
            if let Some(d) = &shared.dynamic {
                if (slot.is_replaced() || d.shrink.load(Ordering::Relaxed))
                    && shared.retire(self.index, Retire::Check)
                {
                    self.retired.set(true);
                    return;
                }
            }
        }
        self.exit();
    }

    /// Stops being counted as one of the pool's workers (a dynamic pool's counts), unless the
    /// worker already retired. The slot stays this worker's until [`leave`](Worker::leave).
    fn exit(&self) {
        if self.retired.replace(true) {
            return;
        }
        if self.shared.dynamic.is_some() {
            self.shared.retire(self.index, Retire::Exit);
        }
    }

    /// The thread's last step, after its stop hook: gives the slot up. Until then the slot is
    /// not reused (the stop hook may read it), and a shutdown report lists the thread as
    /// still running; the runtime never joins a thread that has not finished, so a slow or
    /// hung stop hook delays neither a bounded shutdown nor a new worker.
    fn leave(&self) {
        self.shared.workers[self.index].mark_exited();
    }

    /// Runs, expires or cancels one job that a worker took at `start` (pool clock). Returns
    /// the time the task ended if the clock was read for it (metrics on and the closure ran).
    ///
    /// `inline(always)`: called from the loop and from `take_turn`; with plain `#[inline]`
    /// the second call site left it out of line, which cost every unkeyed task ~40
    /// instructions (callgrind, `examples/instructions.rs`).
    #[inline(always)]
    fn process<K: TaskKey>(&self, job: Job, start: u64, key: K) -> Option<u64> {
        if K::UNKEYED {
            if let Work::Keyed = job.work {
                return self.take_turn(start);
            }
        }
        let shared = &*self.shared;
        let slot = &shared.workers[self.index];
        if shared.abandoned.load(Ordering::Relaxed) {
            self.not_run(job, NotRun::Cancelled, key, None);
            return None;
        }
        let enqueued = job.enqueued;
        if let Some(max) = shared.max_queue_wait_nanos {
            let waited = start.saturating_sub(enqueued);
            if waited > max {
                let waited = Duration::from_nanos(waited);
                self.not_run(job, NotRun::Expired(waited), key, Some(waited));
                return None;
            }
        }
        // Queue-delay control: with CoDel off this is the only cost.
        if let Some(codel) = &shared.codel {
            let waited = Duration::from_nanos(start.saturating_sub(enqueued));
            if codel.should_shed(waited, start) {
                self.not_run(job, NotRun::Shed(waited), key, Some(waited));
                return None;
            }
        }
        slot.set_busy(start);
        let mut end = None;
        job.run(
            &mut |outcome| {
                let ran = matches!(outcome, Outcome::Completed | Outcome::Panicked);
                if ran && (shared.recorders.is_some() || shared.adaptive.is_some()) {
                    let now = shared.now_nanos();
                    if let Some(recorders) = &shared.recorders {
                        recorders.record(self.index, enqueued, start, now);
                    }
                    if let Some(adaptive) = &shared.adaptive {
                        shared.adapt(adaptive, enqueued, start, now, false);
                    }
                    end = Some(now);
                }
                slot.set_idle();
                if outcome != Outcome::Settled {
                    slot.count(outcome);
                    shared.release_slot();
                }
                let waited = Duration::from_nanos(start.saturating_sub(enqueued));
                key.release(shared, outcome, Some(waited));
            },
            &|payload| shared.config.hooks.panic.handle(&shared.name, payload),
        );
        end
    }

    /// Handles a keyed turn taken at `start`: takes the next keyed job in the pool's order
    /// and processes it under its key. Kept out of line, so that the loop pays one compare
    /// per job for keys.
    #[cold]
    #[inline(never)]
    fn take_turn(&self, start: u64) -> Option<u64> {
        let next = self.shared.keys.next();
        debug_assert!(next.is_some(), "a keyed turn with no job behind it");
        let (job, key) = next?;
        self.process(job, start, key)
    }

    /// Resolves a job without running it, counts it, and hands a fire-and-forget closure to
    /// the pool's shed handler (on this worker's thread).
    #[cold]
    fn not_run<K: TaskKey>(&self, job: Job, why: NotRun, key: K, waited: Option<Duration>) {
        let slot = &self.shared.workers[self.index];
        let unrun = job.not_run(why, &mut |outcome| {
            if let (Some(adaptive), Outcome::Expired | Outcome::Shed) =
                (&self.shared.adaptive, outcome)
            {
                // Dropped for overload: evidence the limit is too high.
                let now = self.shared.now_nanos();
                self.shared.adapt(adaptive, now, now, now, true);
            }
            if outcome != Outcome::Settled {
                slot.count(outcome);
                self.shared.release_slot();
            }
            key.release(&self.shared, outcome, waited);
        });
        self.shared.dispose(unrun, why);
    }

    /// Blocks until a job arrives; returns `None` when the worker should exit: shutdown began,
    /// no submitter is still inside `send`, and the queue is empty.
    #[cold]
    fn wait_for_job(&self) -> Option<Job> {
        let shared = &*self.shared;
        loop {
            let state = shared.state.load(Ordering::Acquire);
            if state & CLOSED == 0 {
                if let Some(d) = &shared.dynamic {
                    // Dynamic pool: count this worker idle while parked, and also wake to
                    // retire (shrink) or after `keep_alive` idle.
                    d.idle.fetch_add(1, Ordering::Relaxed);
                    let woke = select! {
                        recv(shared.rx) -> job => Ok(job),
                        recv(shared.shutdown_rx) -> _ => Err(None),
                        recv(d.wake_rx) -> _ => Err(Some(Retire::Check)),
                        default(d.keep_alive) => Err(Some(Retire::KeepAlive)),
                    };
                    d.idle.fetch_sub(1, Ordering::Relaxed);
                    match woke {
                        Ok(Ok(job)) => {
                            // A submitter may have counted this worker idle a moment ago and
                            // not started a thread for the task behind this one.
                            if d.wants_growth(|| shared.rx.len()) {
                                self.shared.grow();
                            }
                            return Some(job);
                        }
                        Ok(Err(_)) => return None,
                        Err(None) => continue,
                        Err(Some(why)) => {
                            if shared.retire(self.index, why) {
                                self.retired.set(true);
                                return None;
                            }
                            continue;
                        }
                    }
                }
                // Fixed pool. Spin and yield briefly first, as crossbeam's own `recv`
                // does, so a steady stream rarely pays a park and a futex wake per task.
                let backoff = Backoff::new();
                while !backoff.is_completed() {
                    if let Ok(job) = shared.rx.try_recv() {
                        return Some(job);
                    }
                    backoff.snooze();
                }
                // Then, if tasks have been arriving closer together than `idle_spin`, keep
                // looking (yielding the CPU between tries) for up to that long: one worker
                // of the pool at a time. Every spinner but one would only take CPU time from
                // the submitters (with 2 workers on 2 vCPUs, both spinning left the
                // submitter none: its send lateness p99 was 0.2-0.6 ms at 100k tasks/s);
                // the others park, and the spinner takes the next task.
                let waiting_since = shared.now_nanos();
                if self.spin_next.get()
                    && shared.idle_spin_nanos > 0
                    && !shared.spinning.load(Ordering::Relaxed)
                    && !shared.spinning.swap(true, Ordering::Acquire)
                {
                    let found = loop {
                        if let Ok(job) = shared.rx.try_recv() {
                            break Some(job);
                        }
                        if shared.now_nanos().saturating_sub(waiting_since) > shared.idle_spin_nanos
                        {
                            break None;
                        }
                        thread::yield_now();
                    };
                    shared.spinning.store(false, Ordering::Release);
                    if found.is_some() {
                        return found;
                    }
                }
                // Then park until a job or the shutdown signal arrives. A wait longer than
                // `idle_spin` means tasks are sparse: the next wait parks at once, so an idle
                // pool burns no CPU.
                select! {
                    recv(shared.rx) -> job => match job {
                        Ok(job) => {
                            let waited = shared.now_nanos().saturating_sub(waiting_since);
                            self.spin_next.set(waited <= shared.idle_spin_nanos);
                            return Some(job);
                        }
                        // Unreachable: the pool holds a sender as long as workers run.
                        Err(_) => return None,
                    },
                    recv(shared.shutdown_rx) -> _ => continue,
                }
            } else if state / IN_FLIGHT == 0 {
                // Closed and nobody is mid-send: whatever is queued now is all there will be.
                return shared.rx.try_recv().ok();
            } else {
                // Closed, but a submitter is still inside a `*_timeout` send; its task may
                // still land. Poll until it leaves.
                match shared.rx.recv_timeout(SHUTDOWN_POLL) {
                    Ok(job) => return Some(job),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return None,
                }
            }
        }
    }
}

/// The worker record of a worker thread.
struct CurrentWorker {
    shared: Arc<PoolShared>,
    index: usize,
}

thread_local! {
    /// The pool and index of the worker this thread is, if it is one.
    static CURRENT: RefCell<Option<CurrentWorker>> = const { RefCell::new(None) };
}

/// Called on a new worker thread after its set-up (placement) succeeded: records the thread
/// as a worker of `shared`, then runs the pool's start hook. A panic in the hook fails the
/// set-up, and so `build()`.
fn thread_started(shared: &Arc<PoolShared>, index: usize) -> Result<(), SetupError> {
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(CurrentWorker {
            shared: shared.clone(),
            index,
        })
    });
    if let Some(hook) = &shared.config.hooks.on_start {
        let thread = WorkerThread {
            pool: &shared.name,
            index,
            slot: &shared.workers[index],
        };
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| hook(&thread))) {
            let msg = payload_str(payload.as_ref()).unwrap_or("a non-string payload");
            let msg = format!("the on_thread_start hook of worker {index} panicked: {msg}");
            drop_quietly(payload);
            CURRENT.with(|c| drop(c.borrow_mut().take()));
            return Err(SetupError::StartHook(msg));
        }
    }
    Ok(())
}

/// Called on a worker thread as its loop returns: runs the pool's stop hook (a panic in it is
/// caught and dropped) and forgets the thread's worker record.
fn thread_stopped(shared: &Arc<PoolShared>, index: usize) {
    if let Some(hook) = &shared.config.hooks.on_stop {
        let thread = WorkerThread {
            pool: &shared.name,
            index,
            slot: &shared.workers[index],
        };
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| hook(&thread))) {
            drop_quietly(payload);
        }
    }
    CURRENT.with(|c| drop(c.borrow_mut().take()));
}

/// The pool this thread is a worker of, if its identity is `origin` (see
/// [`PoolShared::id`]).
#[cold]
pub(crate) fn current_pool_if(origin: usize) -> Option<Arc<PoolShared>> {
    CURRENT
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .filter(|w| w.shared.id() == origin)
                .map(|w| w.shared.clone())
        })
        .ok()
        .flatten()
}

/// Which worker of which pool the calling thread is, or `None` if it is not a worker thread
/// (or is one whose start hook has not succeeded, or that is running its stop hook's end).
///
/// ```
/// let rt = bulkhead::Runtime::builder().pool("api", |p| p.threads(1)).build()?;
/// let me = rt.pool("api")?.try_submit(bulkhead::current_worker)?.join()?.unwrap();
/// assert_eq!((me.pool(), me.index()), ("api", 0));
/// assert!(bulkhead::current_worker().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn current_worker() -> Option<WorkerId> {
    CURRENT
        .try_with(|c| {
            c.borrow().as_ref().map(|w| WorkerId {
                pool: w.shared.name.clone(),
                index: w.index,
            })
        })
        .ok()
        .flatten()
}
