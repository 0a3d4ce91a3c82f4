//! Tasks in the queue, and the [`TaskHandle`] a caller keeps.
//!
//! A task submitted with a handle lives in one heap allocation, a [`TaskCell`], shared by
//! the queued job (as `Arc<dyn Runnable>`) and the handle (as `Arc<dyn Completion<T>>`).
//! The cell holds the closure and, later, its result, in one [`Stage`] behind a per-task
//! mutex (never a pool-wide or global lock):
//!
//! | stage       | meaning                                         | next                              |
//! |-------------|-------------------------------------------------|-----------------------------------|
//! | `Pending`   | queued (or, for a continuation, waiting for its input); holds the closure (its captured context, if any, is in the out-of-line `Extra`) | `Running` (a worker claims it), `Done(Cancelled)` (cancel, shutdown), `Done(Expired)`, `Done(Shed)`, `Done(Refused)` (a continuation its pool refused) |
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
//!
//! # Continuations
//!
//! [`TaskHandle::then_in`] consumes the handle and leaves a *listener* in the cell instead of
//! a waker (in the cell's out-of-line `Extra` part, with the captured context and the
//! deadlock waiter, so a plain task's cell pays one `None` pointer for all three): whoever resolves the cell (the worker, an expiry, a shutdown drain, or `then_in`
//! itself when the task had already ended) hands the outcome to the listener outside the
//! lock, and the listener feeds it to the continuation's own cell and queues that cell on the
//! second pool with a non-blocking send. No thread ever waits for the first task to end.
//!
//! # Deadlock detection
//!
//! Each cell records the pool it is queued on (`origin`, the address of the pool's shared
//! state). A worker that blocks in `join` or `join_timeout` on an unfinished cell of *its own*
//! pool counts itself in the pool's `blocked_joins` and leaves the pool in the cell (`waiter`);
//! whoever resolves the cell un-counts it in the same critical section that publishes the
//! outcome. A count equal to the workers the pool counts on now (its live count after a resize; an elastic pool first starts a thread if it may grow) means every worker is blocked on a task
//! only this pool can run: the worker that would complete the count gets
//! [`TaskError::WouldDeadlock`] instead of blocking.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{RefusalReason, RefusedContinuation, TaskError};
use crate::hooks::{self, Captured};
use crate::job::{Account, Body, Outcome, Runnable};
use crate::pool::{Pool, PoolShared};
use crate::sync::{Arc, AtomicBool, Condvar, Mutex, MutexGuard, Ordering};
use crate::trampoline;
use crate::unwind::drop_quietly;
use crate::worker;
use crossbeam_utils::Backoff;

enum Stage<B, T> {
    Pending(B),
    Running,
    Done(Result<T, TaskError>),
    Taken,
}

/// A continuation's entry point: takes the first task's outcome.
type Then<T> = Box<dyn FnOnce(Result<T, TaskError>) + Send>;

/// The parts of a cell that most tasks never use, kept out of line so that a plain task's
/// cell stays as small as before they existed: one `None` pointer.
struct Extra<T> {
    /// The context captured at submission, while the task is pending.
    ctx: Option<Captured>,
    /// A continuation registered by [`TaskHandle::then_in`]; it takes the outcome.
    then: Option<Then<T>>,
    /// The pool whose `blocked_joins` counts a worker blocked on this cell (see the module
    /// docs); taken by whoever resolves the cell, or by the waiter when it stops waiting.
    waiter: Option<Arc<PoolShared>>,
}

impl<T> Default for Extra<T> {
    fn default() -> Self {
        Extra {
            ctx: None,
            then: None,
            waiter: None,
        }
    }
}

struct CellState<B, T> {
    stage: Stage<B, T>,
    waker: Option<Waker>,
    extra: Option<Box<Extra<T>>>,
    /// Set by the deadline timer when it expired the task while queued: its outcome is
    /// counted and its slot freed already (see `Runnable::expire_early`).
    settled: bool,
    /// A task's own deadline (`Pool::try_submit_by`) and when it was submitted: a worker
    /// that reaches it after the deadline, before the timer did, expires it instead of
    /// running it.
    deadline: Option<(Instant, Instant)>,
}

/// Where a cell stood when a worker, an expiry or a drain came to resolve it.
#[derive(Clone, Copy)]
enum Prior {
    /// Still queued: the caller resolves it.
    Pending,
    /// Left `Pending` through its handle (cancelled): not counted yet.
    Left,
    /// Expired at its deadline by the timer: counted already.
    Settled,
}

impl Prior {
    /// What to account: `pending` for a task resolved now, `Cancelled` for one cancelled
    /// through its handle, nothing more (`Settled`) for one the timer counted.
    fn outcome(self, pending: Outcome) -> Outcome {
        match self {
            Prior::Pending => pending,
            Prior::Left => Outcome::Cancelled,
            Prior::Settled => Outcome::Settled,
        }
    }
}

impl<B, T> CellState<B, T> {
    #[inline]
    fn take_ctx(&mut self) -> Option<Captured> {
        match &mut self.extra {
            None => None,
            Some(e) => e.ctx.take(),
        }
    }

    fn extra(&mut self) -> &mut Extra<T> {
        self.extra.get_or_insert_with(Box::default)
    }

    fn has_waiter(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.waiter.is_some())
    }

    /// Un-counts the worker blocked on this cell, if one is.
    fn release_waiter(&mut self) {
        if let Some(pool) = self.extra.as_mut().and_then(|e| e.waiter.take()) {
            pool.blocked_joins.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The shared allocation of a task with a handle: closure, result slot and wake-up
/// machinery, fused so that `try_submit` allocates once.
pub(crate) struct TaskCell<B, T> {
    state: Mutex<CellState<B, T>>,
    done: Condvar,
    /// The identity of the pool the task is queued on ([`PoolShared::id`]).
    origin: usize,
    /// Set (after the stage) once the cell is `Done`, so a joiner can spin briefly on it
    /// without taking the lock before it parks.
    finished: AtomicBool,
}

impl<B, T> TaskCell<B, T>
where
    B: Body<T>,
    T: Send + 'static,
{
    pub(crate) fn new(body: B, ctx: Option<Captured>, origin: usize) -> Arc<Self> {
        Arc::new(TaskCell {
            state: Mutex::new(CellState {
                stage: Stage::Pending(body),
                waker: None,
                settled: false,
                deadline: None,
                extra: ctx.map(|ctx| {
                    Box::new(Extra {
                        ctx: Some(ctx),
                        ..Extra::default()
                    })
                }),
            }),
            done: Condvar::new(),
            origin,
            finished: AtomicBool::new(false),
        })
    }

    /// Gives the task a deadline (before it is queued): see `CellState::deadline`.
    pub(crate) fn set_deadline(&self, at: Instant, since: Instant) {
        self.state.lock().deadline = Some((at, since));
    }

    /// Takes the closure back after a refusal. The cell was never shared with a worker, and
    /// the captured context, never installed, is dropped.
    #[cold]
    pub(crate) fn reclaim(&self) -> B {
        let mut st = self.state.lock();
        match std::mem::replace(&mut st.stage, Stage::Taken) {
            Stage::Pending(f) => f,
            _ => unreachable!("a refused task cell always still holds its closure"),
        }
    }

    /// Publishes the outcome and releases the lock: un-counts a blocked worker, then hands the
    /// outcome to a continuation (outside the lock) or stores it for the handle and wakes it.
    #[inline]
    fn complete(&self, mut st: MutexGuard<'_, CellState<B, T>>, result: Result<T, TaskError>) {
        if st.extra.is_some() {
            st.release_waiter();
            if let Some(then) = st.extra.as_mut().and_then(|e| e.then.take()) {
                st.stage = Stage::Taken;
                drop(st);
                // A refused continuation resolves the next link from here: hand it on
                // through the trampoline so a chain of any length runs at constant depth.
                trampoline::hand_on(move || then(result));
                return;
            }
        }
        st.stage = Stage::Done(result);
        let waker = st.waker.take();
        self.finished.store(true, Ordering::Release);
        drop(st);
        self.done.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Moves the cell from `Pending` to `Done(err)`. Returns the body and context it took, to
    /// be dropped by the caller outside the lock, or `None` if the cell had already left
    /// `Pending` (it was cancelled through its handle). `before` runs under the lock just
    /// before the handle can see the new stage.
    fn resolve_pending(
        &self,
        err: impl FnOnce() -> TaskError,
        before: impl FnOnce(Prior),
    ) -> Option<(B, Option<Captured>)> {
        let mut st = self.state.lock();
        if !matches!(st.stage, Stage::Pending(_)) {
            before(if st.settled {
                Prior::Settled
            } else {
                Prior::Left
            });
            return None;
        }
        before(Prior::Pending);
        let taken = match std::mem::replace(&mut st.stage, Stage::Running) {
            Stage::Pending(f) => (f, st.take_ctx()),
            _ => unreachable!(),
        };
        self.complete(st, Err(err()));
        Some(taken)
    }

    fn finish(&self, result: Result<T, TaskError>) {
        let st = self.state.lock();
        self.complete(st, result);
    }

    /// Calls `feed` on the body if the cell is still pending (a continuation waiting for its
    /// input). Returns false if it was cancelled meanwhile.
    fn with_pending(&self, feed: impl FnOnce(&mut B)) -> bool {
        let mut st = self.state.lock();
        match &mut st.stage {
            Stage::Pending(body) => {
                feed(body);
                true
            }
            _ => false,
        }
    }
}

impl<B, T> Runnable for TaskCell<B, T>
where
    B: Body<T>,
    T: Send + 'static,
{
    #[inline]
    fn run(&self, account: Account<'_>) {
        let (f, ctx) = {
            let mut st = self.state.lock();
            if !matches!(st.stage, Stage::Pending(_)) {
                // Cancelled through the handle while it sat in the queue, or expired at its
                // deadline (already accounted).
                let settled = st.settled;
                drop(st);
                account(if settled {
                    Outcome::Settled
                } else {
                    Outcome::Cancelled
                });
                return;
            }
            if let Some((at, since)) = st.deadline {
                let now = Instant::now();
                if now >= at {
                    // Its deadline passed while it was queued and the timer has not come
                    // yet: it must not run. Counted and resolved here, as an expiry.
                    account(Outcome::Expired);
                    let (f, ctx) = match std::mem::replace(&mut st.stage, Stage::Running) {
                        Stage::Pending(f) => (f, st.take_ctx()),
                        _ => unreachable!(),
                    };
                    let waited = now.saturating_duration_since(since);
                    self.complete(st, Err(TaskError::Expired { waited }));
                    hooks::discard(f, ctx);
                    return;
                }
            }
            match std::mem::replace(&mut st.stage, Stage::Running) {
                Stage::Pending(f) => (f, st.take_ctx()),
                _ => unreachable!(),
            }
        };
        let result = match ctx {
            None => panic::catch_unwind(AssertUnwindSafe(|| f.call())),
            Some(ctx) => hooks::call_in(ctx, || f.call()),
        };
        account(match result {
            Ok(_) => Outcome::Completed,
            Err(_) => Outcome::Panicked,
        });
        self.finish(result.map_err(TaskError::Panicked));
    }

    fn expire(&self, waited: Duration, account: Account<'_>) {
        let taken = self.resolve_pending(
            || TaskError::Expired { waited },
            |prior| account(prior.outcome(Outcome::Expired)),
        );
        if let Some((f, ctx)) = taken {
            hooks::discard(f, ctx);
        }
    }

    fn cancel_queued(&self, account: Account<'_>) {
        let taken = self.resolve_pending(
            || TaskError::Cancelled,
            |prior| account(prior.outcome(Outcome::Cancelled)),
        );
        if let Some((f, ctx)) = taken {
            hooks::discard(f, ctx);
        }
    }

    fn shed(&self, waited: Duration, account: Account<'_>) {
        let taken = self.resolve_pending(
            || TaskError::Shed { waited },
            |prior| account(prior.outcome(Outcome::Shed)),
        );
        if let Some((f, ctx)) = taken {
            hooks::discard(f, ctx);
        }
    }

    fn expire_early(&self, waited: Duration, account: Account<'_>) {
        let mut st = self.state.lock();
        if !matches!(st.stage, Stage::Pending(_)) {
            return;
        }
        st.settled = true;
        account(Outcome::Expired);
        let (f, ctx) = match std::mem::replace(&mut st.stage, Stage::Running) {
            Stage::Pending(f) => (f, st.take_ctx()),
            _ => unreachable!(),
        };
        self.complete(st, Err(TaskError::Expired { waited }));
        hooks::discard(f, ctx);
    }
}

/// The type-erased handle side of a task cell.
trait Completion<T>: Send + Sync {
    /// Blocks until the task ends or the deadline passes. With `detect`, a worker waiting on a
    /// task of its own pool takes part in deadlock detection.
    fn wait(&self, deadline: Option<Instant>, detect: bool) -> Result<T, TaskError>;
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    fn cancel(&self) -> bool;
    fn is_finished(&self) -> bool;
    /// Hands the outcome to `then` when the task ends, or at once if it has.
    fn on_done(&self, then: Then<T>);
}

impl<B, T> Completion<T> for TaskCell<B, T>
where
    B: Body<T>,
    T: Send + 'static,
{
    fn wait(&self, deadline: Option<Instant>, detect: bool) -> Result<T, TaskError> {
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
        let result = loop {
            match st.stage {
                Stage::Done(_) => {
                    break match std::mem::replace(&mut st.stage, Stage::Taken) {
                        Stage::Done(r) => r,
                        _ => unreachable!(),
                    }
                }
                Stage::Taken => break Err(TaskError::AlreadyJoined),
                Stage::Pending(_) | Stage::Running => {
                    if detect && !st.has_waiter() {
                        if let Some(pool) = worker::current_pool_if(self.origin) {
                            // This thread is a worker of the pool that must run the task.
                            let blocked = pool.blocked_joins.fetch_add(1, Ordering::AcqRel) + 1;
                            if blocked >= pool.join_capacity() {
                                pool.blocked_joins.fetch_sub(1, Ordering::AcqRel);
                                return Err(TaskError::WouldDeadlock);
                            }
                            st.extra().waiter = Some(pool);
                        }
                    }
                    match deadline {
                        None => self.done.wait(&mut st),
                        Some(d) => {
                            if self.done.wait_until(&mut st, d).timed_out()
                                && !matches!(st.stage, Stage::Done(_) | Stage::Taken)
                            {
                                break Err(TaskError::TimedOut);
                            }
                        }
                    }
                }
            }
        };
        // Timed out while counted: un-count (a resolver would have taken `waiter`).
        st.release_waiter();
        result
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
            Some((f, ctx)) => {
                // On the caller's thread, with the task's context installed around the drop.
                hooks::discard_loudly(f, ctx);
                true
            }
            None => false,
        }
    }

    fn is_finished(&self) -> bool {
        matches!(self.state.lock().stage, Stage::Done(_) | Stage::Taken)
    }

    fn on_done(&self, then: Then<T>) {
        let mut st = self.state.lock();
        match std::mem::replace(&mut st.stage, Stage::Taken) {
            Stage::Done(r) => {
                drop(st);
                then(r);
            }
            Stage::Taken => {
                drop(st);
                then(Err(TaskError::AlreadyJoined));
            }
            stage => {
                st.stage = stage;
                // The handle is consumed: no waker will be needed again.
                st.waker = None;
                st.extra().then = Some(then);
            }
        }
    }
}

/// The body of a continuation: the closure given to [`TaskHandle::then_in`] and, once the
/// first task ended, its outcome.
struct Deferred<I, F> {
    input: Option<Result<I, TaskError>>,
    f: F,
}

impl<I, U, F> Body<U> for Deferred<I, F>
where
    I: Send + 'static,
    F: FnOnce(Result<I, TaskError>) -> U + Send + 'static,
{
    fn call(self) -> U {
        // A continuation is queued only after its input was fed.
        let input = self.input.unwrap_or(Err(TaskError::Cancelled));
        (self.f)(input)
    }
}

impl<I, U, F> TaskCell<Deferred<I, F>, U>
where
    I: Send + 'static,
    U: Send + 'static,
    F: FnOnce(Result<I, TaskError>) -> U + Send + 'static,
{
    /// The first task ended with `input`: bind it and queue the continuation on `pool`
    /// without blocking; a refusal resolves the continuation with the closure inside.
    fn resume(self: Arc<Self>, pool: &Pool, input: Result<I, TaskError>) {
        let mut input = Some(input);
        if !self.with_pending(|d| d.input = input.take()) {
            // The continuation was cancelled through its handle: drop the outcome.
            drop_quietly(input);
            return;
        }
        let reason = match pool.submit_cell(self.clone()) {
            Ok(()) => return,
            Err(reason) => reason,
        };
        self.refuse(reason, pool.shared.name.clone());
    }

    #[cold]
    fn refuse(&self, reason: RefusalReason, pool: Arc<str>) {
        let mut st = self.state.lock();
        let body = match std::mem::replace(&mut st.stage, Stage::Running) {
            Stage::Pending(body) => {
                drop(st.take_ctx()); // never installed: the continuation did not enter the pool
                body
            }
            other => {
                // Cancelled between the feed and the refusal.
                st.stage = other;
                return;
            }
        };
        let task: Box<dyn FnOnce() -> U + Send> = Box::new(move || body.call());
        let err = TaskError::Refused(RefusedContinuation::new(pool, reason, Box::new(task)));
        self.complete(st, Err(err));
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
/// - [`then_in`](TaskHandle::then_in) queues a follow-up onto another pool when the task ends,
///   without any thread waiting for it.
/// - Dropping the handle detaches the task: it still runs, and its result is dropped.
///
/// # Waiting on a handle from inside a pool
///
/// A task may submit to any pool, including its own, and may wait on the handle. Waiting on
/// a handle of *its own* pool occupies the waiting worker: if every worker of the pool waits
/// like that, nobody is left to run the awaited tasks (the classic thread-pool deadlock).
/// `join` and `join_timeout` detect exactly that situation and return
/// [`TaskError::WouldDeadlock`] instead of blocking: see [`join`](TaskHandle::join) for the
/// precise rule. Better still, do not wait: hand the follow-up to
/// [`then_in`](TaskHandle::then_in).
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
    pub(crate) fn new<B>(cell: Arc<TaskCell<B, T>>) -> Self
    where
        B: Body<T>,
    {
        TaskHandle { cell }
    }

    /// Blocks until the task ends and returns its value, or why there is none.
    ///
    /// Never returns [`TaskError::TimedOut`].
    ///
    /// # Deadlock detection
    ///
    /// When called on a worker thread of the pool the task was queued on, while the task has
    /// not ended, the worker counts itself as *blocked on its own pool* for as long as it
    /// waits. If that would make every worker of the pool blocked like that (with one thread,
    /// at once), nobody could ever run the awaited tasks, and `join` returns
    /// [`TaskError::WouldDeadlock`] instead of waiting. The task is not cancelled: it stays
    /// queued and runs once a worker is free (its result is then dropped, as the handle is
    /// consumed; use [`join_timeout`](TaskHandle::join_timeout) to keep the handle).
    ///
    /// What is not detected: waits that are not `join`/`join_timeout` on a handle of the
    /// waiter's own pool (a channel, a lock, `.await` inside `block_on`, or a cycle through
    /// another pool). A worker inside a `join_timeout` counts as blocked until its timeout,
    /// so it can complete the count even though it would eventually give up.
    pub fn join(self) -> Result<T, TaskError> {
        self.cell.wait(None, true)
    }

    /// Blocks at most `timeout` for the task to end.
    ///
    /// Returns [`TaskError::TimedOut`] if it has not ended by then, and
    /// [`TaskError::WouldDeadlock`] at once under the rule given for
    /// [`join`](TaskHandle::join); in both cases the handle stays valid and may be joined,
    /// polled or cancelled again.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T, TaskError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.cell.wait(Some(deadline), true),
            None => self.cell.wait(None, true),
        }
    }

    /// Returns the task's outcome if it has ended, or [`TaskError::TimedOut`] without
    /// blocking if it has not.
    pub fn try_join(&mut self) -> Result<T, TaskError> {
        self.cell.wait(Some(Instant::now()), false)
    }

    /// True once the task has ended (completed, panicked, expired or cancelled).
    pub fn is_finished(&self) -> bool {
        self.cell.is_finished()
    }

    /// Cancels the task if it has not started.
    ///
    /// Returns `true` if this call cancelled it: the closure is dropped (on this thread, with
    /// the task's context installed if the pool has a [context hook](crate::PoolBuilder::context))
    /// and will never run, and the handle reports [`TaskError::Cancelled`]. Returns `false` if
    /// the task was already running or finished; a running task is never interrupted. The
    /// task's queue slot is released, and the pool counts it as cancelled, when a worker
    /// reaches it.
    ///
    /// A continuation ([`then_in`](TaskHandle::then_in)) can be cancelled while it waits for
    /// the first task as well as while it is queued; it is then never queued (and not counted
    /// by its pool).
    pub fn cancel(&self) -> bool {
        self.cell.cancel()
    }

    /// Queues `f` onto `pool` when this task ends, and returns the continuation's handle.
    ///
    /// `f` receives this task's outcome (`Ok(value)`, or the [`TaskError`] that `join` would
    /// have returned). Nothing blocks: the thread that ends this task (a worker of its pool,
    /// an expiry, a shutdown drain, or this call if the task has already ended) submits the
    /// continuation to `pool` with a non-blocking send, so a slow or hung pool can only refuse
    /// the continuation, never hold a thread of another pool.
    ///
    /// If `pool` refuses it (queue full, shutting down), the continuation's handle resolves to
    /// [`TaskError::Refused`], which carries the reason and the continuation with its input
    /// bound ([`RefusedContinuation::into_task`]), so the caller may run it elsewhere.
    /// `pool`'s [context hook](crate::PoolBuilder::context), if any, captures on the thread
    /// calling `then_in`. Continuations chain: call `then_in` on the returned handle.
    ///
    /// ```
    /// use bulkhead::Runtime;
    /// let rt = Runtime::builder()
    ///     .pool("decode", |p| p)
    ///     .pool("render", |p| p)
    ///     .build()?;
    /// let render = rt.pool("render")?;
    /// let handle = rt.pool("decode")?
    ///     .try_submit(|| 21)?
    ///     .then_in(&render, |decoded| decoded.map(|n| n * 2));
    /// assert_eq!(handle.join()?.unwrap(), 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn then_in<U, F>(self, pool: &Pool, f: F) -> TaskHandle<U>
    where
        U: Send + 'static,
        F: FnOnce(Result<T, TaskError>) -> U + Send + 'static,
    {
        let ctx = pool.shared.config.hooks.capture();
        let next = TaskCell::new(Deferred { input: None, f }, ctx, pool.shared.id());
        let resume = next.clone();
        let pool = pool.clone();
        self.cell
            .on_done(Box::new(move |outcome| resume.resume(&pool, outcome)));
        TaskHandle::new(next)
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
