//! The queued job and the type-erased interfaces the queue holds: a fire-and-forget
//! [`DetachedTask`], or a task cell seen as [`Runnable`]; and what handling a job can end in
//! ([`Outcome`], [`NotRun`]). A leaf below the engine: it imports only the unwinding helpers.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::sync::Arc;
use crate::unwind::drop_quietly;

/// What a worker (or a shutdown drain) learnt from handling one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Panicked,
    Expired,
    Cancelled,
    /// Not run: shed by the pool's queue-delay controller (CoDel).
    Shed,
    /// Already accounted: the task expired at its deadline while queued (the deadline timer
    /// counted it and freed its slot); whoever dequeues it later counts nothing more.
    Settled,
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

impl NotRun {
    /// The outcome a job resolved this way is counted as.
    fn outcome(self) -> Outcome {
        match self {
            NotRun::Cancelled => Outcome::Cancelled,
            NotRun::Expired(_) => Outcome::Expired,
            NotRun::Shed(_) => Outcome::Shed,
        }
    }
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
    /// The deadline timer: resolves the task as expired if it is still queued, accounting
    /// `Expired` under the cell's lock before its handle can see it, and marks it settled so
    /// that the worker that dequeues it later accounts `Settled`. Does nothing (and accounts
    /// nothing) once the task started, ended, or was cancelled.
    fn expire_early(&self, waited: Duration, account: Account<'_>);
}

/// The type-erased job side of a fire-and-forget task.
pub(crate) trait DetachedTask: Send {
    /// Runs the closure. The caller catches panics.
    fn run(self: Box<Self>);
    /// Drops the closure of a task that will not run (expired or cancelled); panics in user
    /// code are caught.
    fn discard(self: Box<Self>) {
        drop_quietly(self);
    }
    /// Gives the closure back as `Box<dyn Any>` (for refusals, which hand the closure back).
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    /// Gives the task back as a callable box (for the pool's shed handler), without a second
    /// allocation where the task is a plain closure.
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

/// What a task cell runs: a submitted closure, or a continuation bound to its input.
pub(crate) trait Body<T>: Send + 'static {
    fn call(self) -> T;
}

impl<T, F: FnOnce() -> T + Send + 'static> Body<T> for F {
    #[inline]
    fn call(self) -> T {
        self()
    }
}

/// One queued task. The enqueue time travels with it in the channel slot (no allocation),
/// so the worker can measure queue wait and apply the pool's maximum queue wait.
pub(crate) struct Job {
    /// Nanoseconds since the pool's epoch at submission; 0 for a pool that reads it for
    /// nothing (metrics off, no maximum queue wait, no CoDel), which then skips the clock read.
    pub(crate) enqueued: u64,
    pub(crate) work: Work,
}

/// A fire-and-forget task that arrived already boxed (`Pool::execute_boxed`, or `execute`
/// given a box): queued as it is, not boxed a second time.
pub(crate) type BoxedFn = Box<dyn FnOnce() + Send + 'static>;

pub(crate) enum Work {
    Detached(Box<dyn DetachedTask>),
    /// A fire-and-forget task that came boxed, and runs in no captured context.
    Boxed(BoxedFn),
    Handle(Arc<dyn Runnable>),
    /// A turn of the pool's keyed queue (`keys.rs`): whoever dequeues it takes the next keyed
    /// job in the pool's order and handles that instead. Never run or resolved itself.
    Keyed,
}

/// `a` as a `B` if `A` and `B` are the same type, else `a` back; no allocation. A type of
/// another size is told apart at compile time; only one of the same size pays the type-id
/// comparison (which the compiler does not fold: ~6 instructions, callgrind).
#[inline(always)]
pub(crate) fn same_type<A: 'static, B: 'static>(a: A) -> Result<B, A> {
    if std::mem::size_of::<A>() != std::mem::size_of::<B>() {
        return Err(a);
    }
    let mut slot = Some(a);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<B>>() {
        Some(b) => b
            .take()
            .ok_or_else(|| unreachable!("the slot was just filled")),
        None => match slot {
            Some(a) => Err(a),
            None => unreachable!("the slot is only emptied when the types match"),
        },
    }
}

impl Job {
    /// Resolves a job that will not run, and accounts its outcome. A task with a handle is
    /// resolved through its cell (the handle reports why, and a captured context sees its
    /// install and clean-up); a fire-and-forget task is handed back, still unrun, for the
    /// pool's shed handler, or to be discarded (`DetachedTask::discard`).
    pub(crate) fn not_run(
        self,
        why: NotRun,
        account: Account<'_>,
    ) -> Option<Box<dyn DetachedTask>> {
        match self.work {
            Work::Detached(task) => {
                account(why.outcome());
                Some(task)
            }
            Work::Boxed(f) => {
                account(why.outcome());
                // Cold: one allocation to give the shed handler its usual interface.
                Some(Box::new(f))
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
            // Turns are exchanged for their keyed job before any job is handled.
            Work::Keyed => None,
        }
    }

    /// Runs the job on the current thread; panics are caught. A fire-and-forget task's panic
    /// payload goes to `on_panic` (the pool's panic policy) before the outcome is accounted.
    ///
    /// `inline(always)`: the worker calls this from two copies of its processing step
    /// (unkeyed jobs, keyed turns); left to the inliner, it was called out of line, at ~40
    /// instructions per task (callgrind, `examples/instructions.rs`).
    #[inline(always)]
    pub(crate) fn run(self, account: Account<'_>, on_panic: &dyn Fn(Box<dyn Any + Send>)) {
        match self.work {
            Work::Detached(task) => match panic::catch_unwind(AssertUnwindSafe(|| task.run())) {
                Ok(()) => account(Outcome::Completed),
                Err(payload) => {
                    on_panic(payload);
                    account(Outcome::Panicked);
                }
            },
            Work::Boxed(f) => match panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(()) => account(Outcome::Completed),
                Err(payload) => {
                    on_panic(payload);
                    account(Outcome::Panicked);
                }
            },
            Work::Handle(cell) => {
                cell.run(account);
                release(cell);
            }
            // Turns are exchanged for their keyed job before any job is handled.
            Work::Keyed => {}
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
