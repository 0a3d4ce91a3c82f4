//! Tasks in the queue, and the [`TaskHandle`] a caller keeps.
//!
//! A task submitted with a handle lives in one heap allocation, a [`TaskCell`], shared by
//! the queued job (as `Arc<dyn Runnable>`) and the handle (as `Arc<dyn Completion<T>>`).
//! The cell holds the closure and, later, its result, in one [`Stage`] behind a per-task
//! mutex (never a pool-wide or global lock):
//!
//! | stage       | meaning                                         | next                              |
//! |-------------|-------------------------------------------------|-----------------------------------|
//! | `Pending`   | queued; holds the closure                       | `Running` (a worker claims it), `Done(Cancelled)` (cancel, shutdown), `Done(Expired)`, `Done(Shed)` |
//! | `Running`   | a worker took the closure and is calling it     | `Done(Ok)` or `Done(Panicked)`    |
//! | `Done`      | holds the outcome until the handle takes it     | `Taken`                           |
//! | `Taken`     | the handle took the outcome                     | (final)                           |
//!
//! Exactly one party moves a cell out of `Pending`: whoever does so under the lock owns the
//! closure. That is what makes "run at most once" and "never both run and cancelled" hold.
//! The closure and the result are always dropped *outside* the lock, so user `Drop` code can
//! never deadlock against the cell.
//!
//! Fire-and-forget tasks ([`Pool::execute`](crate::Pool::execute)) skip the cell: they are a
//! single `Box<dyn DetachedTask>`.

use std::any::Any;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::TaskError;
use crate::sync::{Arc, AtomicBool, Condvar, Mutex, Ordering};
use crossbeam_utils::Backoff;

/// What a worker (or a shutdown drain) learnt from handling one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Panicked,
    Expired,
    Cancelled,
    /// Not run: shed by the pool's queue-delay controller (CoDel).
    Shed,
}

/// Why a worker (or a shutdown drain) resolves a job without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotRun {
    /// A shutdown gave up on queued work.
    Cancelled,
    /// It waited longer than the pool's maximum queue wait.
    Expired(Duration),
    /// The queue-delay controller shed it.
    Shed(Duration),
}

/// Told a job's outcome *before* its handle is resolved, so that whoever joins the handle
/// already sees the outcome counted (and the worker idle) in the pool's stats.
pub(crate) type Account<'a> = &'a mut dyn FnMut(Outcome);

/// The type-erased job side of a task with a handle.
pub(crate) trait Runnable: Send + Sync {
    /// Claims the closure and runs it under `catch_unwind`. If the task was cancelled while
    /// queued, accounts `Cancelled` without running anything.
    fn run(&self, account: Account<'_>);
    /// Resolves the task as expired (or accounts that it was already cancelled).
    fn expire(&self, waited: Duration, account: Account<'_>);
    /// Resolves the task as cancelled (shutdown gave up on it).
    fn cancel_queued(&self, account: Account<'_>);
    /// Resolves the task as shed by the queue-delay controller (or accounts that it was
    /// already cancelled).
    fn shed(&self, waited: Duration, account: Account<'_>);
}

/// The type-erased job side of a fire-and-forget task.
pub(crate) trait DetachedTask: Send {
    /// Runs the closure. The caller catches panics.
    fn run(self: Box<Self>);
    /// Gives the closure back as `Box<dyn Any>` (for refusals, which hand the closure back).
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    /// Gives the closure back as a callable box (for the pool's shed handler), without a
    /// second allocation.
    fn into_fn(self: Box<Self>) -> Box<dyn FnOnce() + Send>;
}

impl<F: FnOnce() + Send + 'static> DetachedTask for F {
    #[inline]
    fn run(self: Box<Self>) {
        (*self)()
    }

    #[cold]
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }

    #[cold]
    fn into_fn(self: Box<Self>) -> Box<dyn FnOnce() + Send> {
        self
    }
}

/// One queued task. The enqueue time travels with it in the channel slot (no allocation),
/// so the worker can measure queue wait and apply the pool's maximum queue wait.
pub(crate) struct Job {
    /// Nanoseconds since the pool's epoch at submission; 0 for a pool that reads it for
    /// nothing (metrics off, no maximum queue wait), which then skips the clock read.
    pub(crate) enqueued: u64,
    pub(crate) work: Work,
}

pub(crate) enum Work {
    Detached(Box<dyn DetachedTask>),
    Handle(Arc<dyn Runnable>),
}

impl Job {
    /// Resolves a job that will not run, and accounts its outcome. A task with a handle is
    /// resolved through its cell (the handle reports why); a fire-and-forget task's closure
    /// is handed back, still unrun, for the pool's shed handler (or to be dropped).
    pub(crate) fn not_run(
        self,
        why: NotRun,
        account: Account<'_>,
    ) -> Option<Box<dyn DetachedTask>> {
        match self.work {
            Work::Detached(task) => {
                account(match why {
                    NotRun::Cancelled => Outcome::Cancelled,
                    NotRun::Expired(_) => Outcome::Expired,
                    NotRun::Shed(_) => Outcome::Shed,
                });
                Some(task)
            }
            Work::Handle(cell) => {
                match why {
                    NotRun::Cancelled => cell.cancel_queued(account),
                    NotRun::Expired(waited) => cell.expire(waited, account),
                    NotRun::Shed(waited) => cell.shed(waited, account),
                }
                release(cell);
                None
            }
        }
    }

    /// Runs the job on the current thread; panics are caught.
    #[inline]
    pub(crate) fn run(self, account: Account<'_>) {
        match self.work {
            Work::Detached(task) => match panic::catch_unwind(AssertUnwindSafe(|| task.run())) {
                Ok(()) => account(Outcome::Completed),
                Err(payload) => {
                    drop_quietly(payload);
                    account(Outcome::Panicked);
                }
            },
            Work::Handle(cell) => {
                cell.run(account);
                release(cell);
            }
        }
    }
}

/// Drops the job's reference to a task cell. If the handle was already dropped, this is the
/// last reference and drops the task's result (or panic payload): user code, so a panic in it
/// must not unwind into the worker.
#[inline]
fn release(cell: Arc<dyn Runnable>) {
    drop_quietly(cell);
}

/// Drops a value whose `Drop` is user code (a closure's captures, a panic payload) without
/// letting a panic in that `Drop` unwind into the worker loop. A value whose drop panics is
/// leaked rather than retried.
pub(crate) fn drop_quietly<T>(value: T) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
        std::mem::forget(payload);
    }
}

enum Stage<F, T> {
    Pending(F),
    Running,
    Done(Result<T, TaskError>),
    Taken,
}

struct CellState<F, T> {
    stage: Stage<F, T>,
    waker: Option<Waker>,
}

/// The shared allocation of a task with a handle: closure, result slot and wake-up
/// machinery, fused so that `try_submit` allocates once.
pub(crate) struct TaskCell<F, T> {
    state: Mutex<CellState<F, T>>,
    done: Condvar,
    /// Set (after the stage) once the cell is `Done`, so a joiner can spin briefly on it
    /// without taking the lock before it parks.
    finished: AtomicBool,
}

impl<F, T> TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(f: F) -> Arc<Self> {
        Arc::new(TaskCell {
            state: Mutex::new(CellState {
                stage: Stage::Pending(f),
                waker: None,
            }),
            done: Condvar::new(),
            finished: AtomicBool::new(false),
        })
    }

    /// Takes the closure back after a refusal. The cell was never shared with a worker.
    #[cold]
    pub(crate) fn reclaim(&self) -> F {
        let mut st = self.state.lock();
        match std::mem::replace(&mut st.stage, Stage::Taken) {
            Stage::Pending(f) => f,
            _ => unreachable!("a refused task cell always still holds its closure"),
        }
    }

    /// Moves the cell from `Pending` to `Done(err)`. Returns the closure it took, to be
    /// dropped by the caller outside the lock, or `None` if the cell had already left
    /// `Pending` (it was cancelled through its handle). `before` runs under the lock just
    /// before the handle can see the new stage.
    fn resolve_pending(
        &self,
        err: impl FnOnce() -> TaskError,
        before: impl FnOnce(bool),
    ) -> Option<F> {
        let mut st = self.state.lock();
        if !matches!(st.stage, Stage::Pending(_)) {
            before(false);
            return None;
        }
        before(true);
        let f = match std::mem::replace(&mut st.stage, Stage::Done(Err(err()))) {
            Stage::Pending(f) => f,
            _ => unreachable!(),
        };
        let waker = st.waker.take();
        self.finished.store(true, Ordering::Release);
        drop(st);
        self.done.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
        Some(f)
    }

    fn finish(&self, result: Result<T, TaskError>) {
        let mut st = self.state.lock();
        st.stage = Stage::Done(result);
        let waker = st.waker.take();
        self.finished.store(true, Ordering::Release);
        drop(st);
        self.done.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<F, T> Runnable for TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    #[inline]
    fn run(&self, account: Account<'_>) {
        let f = {
            let mut st = self.state.lock();
            if !matches!(st.stage, Stage::Pending(_)) {
                // Cancelled through the handle while it sat in the queue.
                drop(st);
                account(Outcome::Cancelled);
                return;
            }
            match std::mem::replace(&mut st.stage, Stage::Running) {
                Stage::Pending(f) => f,
                _ => unreachable!(),
            }
        };
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        account(match result {
            Ok(_) => Outcome::Completed,
            Err(_) => Outcome::Panicked,
        });
        self.finish(result.map_err(TaskError::Panicked));
    }

    fn expire(&self, waited: Duration, account: Account<'_>) {
        let taken = self.resolve_pending(
            || TaskError::Expired { waited },
            |pending| {
                account(if pending {
                    Outcome::Expired
                } else {
                    Outcome::Cancelled
                })
            },
        );
        if let Some(f) = taken {
            drop_quietly(f);
        }
    }

    fn cancel_queued(&self, account: Account<'_>) {
        let taken = self.resolve_pending(|| TaskError::Cancelled, |_| account(Outcome::Cancelled));
        if let Some(f) = taken {
            drop_quietly(f);
        }
    }

    fn shed(&self, waited: Duration, account: Account<'_>) {
        let taken = self.resolve_pending(
            || TaskError::Shed { waited },
            |pending| {
                account(if pending {
                    Outcome::Shed
                } else {
                    Outcome::Cancelled
                })
            },
        );
        if let Some(f) = taken {
            drop_quietly(f);
        }
    }
}

/// The type-erased handle side of a task cell.
trait Completion<T>: Send + Sync {
    fn wait(&self, deadline: Option<Instant>) -> Result<T, TaskError>;
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    fn cancel(&self) -> bool;
    fn is_finished(&self) -> bool;
}

impl<F, T> Completion<T> for TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn wait(&self, deadline: Option<Instant>) -> Result<T, TaskError> {
        // Spin and yield briefly before parking, as crossbeam's `recv` does: a short task's
        // result often arrives within microseconds, and parking then costs a futex wake-up
        // (tens of microseconds on a VM). `try_join` (a deadline of now) does not spin.
        if deadline.map_or(true, |d| d > Instant::now()) {
            let backoff = Backoff::new();
            while !backoff.is_completed() && !self.finished.load(Ordering::Acquire) {
                backoff.snooze();
            }
        }
        let mut st = self.state.lock();
        loop {
            match st.stage {
                Stage::Done(_) => {
                    return match std::mem::replace(&mut st.stage, Stage::Taken) {
                        Stage::Done(r) => r,
                        _ => unreachable!(),
                    }
                }
                Stage::Taken => return Err(TaskError::AlreadyJoined),
                Stage::Pending(_) | Stage::Running => match deadline {
                    None => self.done.wait(&mut st),
                    Some(d) => {
                        if self.done.wait_until(&mut st, d).timed_out()
                            && !matches!(st.stage, Stage::Done(_) | Stage::Taken)
                        {
                            return Err(TaskError::TimedOut);
                        }
                    }
                },
            }
        }
    }

    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>> {
        let mut st = self.state.lock();
        match st.stage {
            Stage::Done(_) => match std::mem::replace(&mut st.stage, Stage::Taken) {
                Stage::Done(r) => Poll::Ready(r),
                _ => unreachable!(),
            },
            Stage::Taken => Poll::Ready(Err(TaskError::AlreadyJoined)),
            Stage::Pending(_) | Stage::Running => {
                match &st.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    fn cancel(&self) -> bool {
        match self.resolve_pending(|| TaskError::Cancelled, |_| ()) {
            Some(f) => {
                drop(f);
                true
            }
            None => false,
        }
    }

    fn is_finished(&self) -> bool {
        matches!(self.state.lock().stage, Stage::Done(_) | Stage::Taken)
    }
}

/// A handle to the result of a task submitted with [`Pool::try_submit`](crate::Pool::try_submit)
/// or [`Pool::submit_timeout`](crate::Pool::submit_timeout).
///
/// - [`join`](TaskHandle::join) blocks until the task ends; [`join_timeout`](TaskHandle::join_timeout)
///   and [`try_join`](TaskHandle::try_join) bound the wait.
/// - The handle is a [`Future`]: `handle.await` works on any executor (tokio, smol, a
///   hand-written one); the crate depends on no async runtime.
/// - [`cancel`](TaskHandle::cancel) stops a task that has not started yet.
/// - Dropping the handle detaches the task: it still runs, and its result is dropped.
///
/// # Waiting on a handle from inside a pool
///
/// A task may submit to any pool, including its own, and may wait on the handle. Waiting on
/// a handle of *its own* pool occupies the waiting worker: if every worker of the pool waits
/// like that, nobody is left to run the awaited tasks and `join` never returns (the classic
/// thread-pool deadlock). Prefer `join_timeout` in that situation, or submit the follow-up
/// work instead of waiting for it.
///
/// ```
/// # use bulkhead::Runtime;
/// let rt = Runtime::builder().pool("p", |p| p.threads(1)).build().unwrap();
/// let handle = rt.pool("p").unwrap().try_submit(|| "done").unwrap();
/// assert_eq!(handle.join().unwrap(), "done");
/// ```
#[must_use = "dropping a TaskHandle detaches the task; use `execute` for fire-and-forget work"]
pub struct TaskHandle<T> {
    cell: Arc<dyn Completion<T>>,
}

impl<T: Send + 'static> TaskHandle<T> {
    pub(crate) fn new<F>(cell: Arc<TaskCell<F, T>>) -> Self
    where
        F: FnOnce() -> T + Send + 'static,
    {
        TaskHandle { cell }
    }

    /// Blocks until the task ends and returns its value, or why there is none.
    ///
    /// Never returns [`TaskError::TimedOut`].
    pub fn join(self) -> Result<T, TaskError> {
        self.cell.wait(None)
    }

    /// Blocks at most `timeout` for the task to end.
    ///
    /// Returns [`TaskError::TimedOut`] if it has not ended by then; the handle stays valid
    /// and may be joined, polled or cancelled again.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T, TaskError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.cell.wait(Some(deadline)),
            None => self.cell.wait(None),
        }
    }

    /// Returns the task's outcome if it has ended, or [`TaskError::TimedOut`] without
    /// blocking if it has not.
    pub fn try_join(&mut self) -> Result<T, TaskError> {
        self.cell.wait(Some(Instant::now()))
    }

    /// True once the task has ended (completed, panicked, expired or cancelled).
    pub fn is_finished(&self) -> bool {
        self.cell.is_finished()
    }

    /// Cancels the task if it has not started.
    ///
    /// Returns `true` if this call cancelled it: the closure is dropped (on this thread) and
    /// will never run, and the handle reports [`TaskError::Cancelled`]. Returns `false` if the
    /// task was already running or finished; a running task is never interrupted. The task's
    /// queue slot is released, and the pool counts it as cancelled, when a worker reaches it.
    pub fn cancel(&self) -> bool {
        self.cell.cancel()
    }
}

impl<T: Send + 'static> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cell.poll_result(cx)
    }
}

impl<T> std::fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle").finish_non_exhaustive()
    }
}
