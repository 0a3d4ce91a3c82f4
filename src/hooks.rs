//! Per-pool hooks and policies that fit a pool into a service: context propagation
//! ([`PoolBuilder::context`]), thread lifecycle hooks ([`PoolBuilder::on_thread_start`],
//! [`PoolBuilder::on_thread_stop`]) and what happens when a task without a handle panics
//! ([`PanicPolicy`]).
//!
//! Every hook is optional and per pool. Unset, they cost nothing per task beyond one `Option`
//! check at submission (is there a capture hook?) and one in the worker (did this task capture
//! a context?); a pool without a context hook allocates nothing extra per task.
//!
//!
//! Where each context hook runs, path by path, is on [`PoolBuilder::context`].

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};

use crate::stats::{WorkerInfo, WorkerSlot};
use crate::sync::Arc;
use crate::unwind::drop_quietly;

#[cfg(doc)]
use crate::PoolBuilder;

/// The handler of [`PanicPolicy::Handler`]: called with the pool's name and the payload.
pub type PanicHandler = Arc<dyn Fn(&str, Box<dyn Any + Send>) + Send + Sync>;

/// What a pool does when a task submitted without a handle ([`Pool::execute`](crate::Pool::execute),
/// [`execute_timeout`](crate::Pool::execute_timeout)) panics.
///
/// A task submitted with a handle always hands its panic payload to the handle
/// ([`TaskError::Panicked`](crate::TaskError::Panicked)), whatever the policy. In every case
/// the panic is counted (`panicked` in [`PoolStats`](crate::PoolStats), an
/// [`Event::Panicked`](crate::Event) for listeners) and, except with [`Abort`](PanicPolicy::Abort),
/// the worker goes on with the next task. The standard panic hook has already printed the
/// message when the policy acts.
///
/// The default is [`Count`](PanicPolicy::Count).
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum PanicPolicy {
    /// Count the panic and drop its payload (the default).
    #[default]
    Count,
    /// Count the panic and call the handler with the pool's name and the payload, on the
    /// worker thread, after the task's context (if any) was cleared. A panic in the handler
    /// is caught and dropped. Build one with [`PanicPolicy::handler`].
    Handler(PanicHandler),
    /// Abort the process (`std::process::abort`, SIGABRT on Unix) after printing the pool's
    /// name to standard error: for services that prefer a restart to running on after a bug.
    Abort,
}

impl PanicPolicy {
    /// Applies the policy to the panic payload of a fire-and-forget task of `pool`, on the
    /// worker thread that caught it.
    #[cold]
    pub(crate) fn handle(&self, pool: &str, payload: Box<dyn Any + Send>) {
        match self {
            PanicPolicy::Count => drop_quietly(payload),
            PanicPolicy::Handler(handler) => {
                if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| handler(pool, payload))) {
                    std::mem::forget(p);
                }
            }
            PanicPolicy::Abort => {
                eprintln!(
                    "bulkhead: a task of pool {pool:?} panicked and the pool's panic policy is \
                     Abort; aborting the process"
                );
                std::process::abort();
            }
        }
    }

    /// A [`Handler`](PanicPolicy::Handler) policy calling `f(pool_name, payload)`.
    ///
    /// ```
    /// use bulkhead::{PanicPolicy, Runtime};
    /// let rt = Runtime::builder()
    ///     .pool("jobs", |p| p.panic_policy(PanicPolicy::handler(|pool, payload| {
    ///         let msg = payload.downcast_ref::<&str>().copied().unwrap_or("?");
    ///         eprintln!("a task of pool {pool} panicked: {msg}");
    ///     })))
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handler(f: impl Fn(&str, Box<dyn Any + Send>) + Send + Sync + 'static) -> Self {
        PanicPolicy::Handler(Arc::new(f))
    }

    /// `"count"`, `"handler"` or `"abort"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PanicPolicy::Count => "count",
            PanicPolicy::Handler(_) => "handler",
            PanicPolicy::Abort => "abort",
        }
    }
}

impl fmt::Debug for PanicPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PanicPolicy::Count => f.write_str("Count"),
            PanicPolicy::Handler(_) => f.write_str("Handler(..)"),
            PanicPolicy::Abort => f.write_str("Abort"),
        }
    }
}

/// The worker thread a lifecycle hook runs on, passed to [`PoolBuilder::on_thread_start`] and
/// [`PoolBuilder::on_thread_stop`].
pub struct WorkerThread<'a> {
    pub(crate) pool: &'a str,
    pub(crate) index: usize,
    pub(crate) slot: &'a WorkerSlot,
}

/// Which worker the calling thread is, from [`current_worker`](crate::current_worker): the
/// pool's name and the worker's index in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerId {
    pub(crate) pool: Arc<str>,
    pub(crate) index: usize,
}

impl WorkerId {
    /// The name of the pool the thread is a worker of.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// The worker's index in its pool, from 0.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl WorkerThread<'_> {
    /// The pool's name.
    pub fn pool(&self) -> &str {
        self.pool
    }

    /// The worker's index in its pool, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The thread's name (`"{prefix}-{index}"`).
    pub fn thread_name(&self) -> &str {
        &self.slot.thread_name
    }

    /// The worker as the OS knows it now: thread id, affinity, nice value and scheduling
    /// policy, read back from the OS at this call (so a start hook sees the final placement).
    pub fn info(&self) -> WorkerInfo {
        self.slot.info(self.index)
    }
}

impl fmt::Debug for WorkerThread<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerThread")
            .field("pool", &self.pool)
            .field("index", &self.index)
            .finish()
    }
}

/// A guard that runs a closure when dropped: a ready-made "clear" for
/// [`PoolBuilder::context`] when the context lives in a thread-local.
///
/// ```
/// let mut cleared = false;
/// {
///     let _guard = bulkhead::on_drop(|| cleared = true);
/// }
/// assert!(cleared);
/// ```
#[must_use = "the closure runs when the guard is dropped"]
pub struct OnDrop<F: FnOnce()>(Option<F>);

/// Returns a guard that calls `f` when dropped.
pub fn on_drop<F: FnOnce()>(f: F) -> OnDrop<F> {
    OnDrop(Some(f))
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl<F: FnOnce()> fmt::Debug for OnDrop<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnDrop(..)")
    }
}

type LifecycleHook = Arc<dyn Fn(&WorkerThread<'_>) + Send + Sync>;

/// One pool's hooks and policies, as set on its [`PoolBuilder`].
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) context: Option<Arc<dyn ContextHook>>,
    pub(crate) on_start: Option<LifecycleHook>,
    pub(crate) on_stop: Option<LifecycleHook>,
    pub(crate) panic: PanicPolicy,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |b: bool| if b { "set" } else { "unset" };
        f.debug_struct("Hooks")
            .field("context", &set(self.context.is_some()))
            .field("on_thread_start", &set(self.on_start.is_some()))
            .field("on_thread_stop", &set(self.on_stop.is_some()))
            .field("panic_policy", &self.panic)
            .finish()
    }
}

impl Hooks {
    /// Runs the capture hook, if the pool has one (on the submitting thread).
    #[inline]
    pub(crate) fn capture(&self) -> Option<Captured> {
        match &self.context {
            None => None,
            Some(hook) => Some(hook.capture()),
        }
    }
}

/// A pool's context hook pair, with the context type erased.
pub(crate) trait ContextHook: Send + Sync {
    fn capture(&self) -> Captured;
}

/// A context captured at submission, travelling with its task.
pub(crate) type Captured = Box<dyn CapturedContext>;

pub(crate) trait CapturedContext: Send {
    /// Installs the context on this thread, calls `body` once, and clears the context (drops
    /// the install hook's guard), also when `body` unwinds.
    fn scope(self: Box<Self>, body: &mut dyn FnMut());
}

pub(crate) struct ContextPair<C, G, Cap, Ins> {
    capture: Cap,
    install: Arc<Ins>,
    _types: PhantomData<fn() -> (C, G)>,
}

impl<C, G, Cap, Ins> ContextPair<C, G, Cap, Ins> {
    pub(crate) fn new(capture: Cap, install: Ins) -> Self {
        ContextPair {
            capture,
            install: Arc::new(install),
            _types: PhantomData,
        }
    }
}

impl<C, G, Cap, Ins> ContextHook for ContextPair<C, G, Cap, Ins>
where
    C: Send + 'static,
    G: 'static,
    Cap: Fn() -> C + Send + Sync + 'static,
    Ins: Fn(C) -> G + Send + Sync + 'static,
{
    fn capture(&self) -> Captured {
        Box::new(CapturedWith {
            ctx: (self.capture)(),
            install: self.install.clone(),
            _guard: PhantomData::<fn() -> G>,
        })
    }
}

struct CapturedWith<C, G, Ins> {
    ctx: C,
    install: Arc<Ins>,
    _guard: PhantomData<fn() -> G>,
}

impl<C, G, Ins> CapturedContext for CapturedWith<C, G, Ins>
where
    C: Send + 'static,
    G: 'static,
    Ins: Fn(C) -> G + Send + Sync + 'static,
{
    fn scope(self: Box<Self>, body: &mut dyn FnMut()) {
        let this = *self;
        let _guard = (this.install)(this.ctx);
        body();
        // `_guard` drops here, or while `body` unwinds: the context is cleared either way.
    }
}

/// Runs `f` with the captured context installed; a panic (of `f` or of the install hook) is
/// caught and returned, after the context was cleared.
#[inline]
pub(crate) fn call_in<R>(ctx: Captured, f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let mut f = Some(f);
    let mut out = None;
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        ctx.scope(&mut || {
            if let Some(f) = f.take() {
                out = Some(f());
            }
        })
    }));
    // The install hook panicked before the body ran: drop the closure, quietly.
    drop_quietly(f);
    match (caught, out) {
        (Ok(()), Some(r)) => Ok(r),
        (Err(payload), _) => Err(payload),
        // `scope` returned without calling the body: only a broken hook could do that.
        (Ok(()), None) => Err(Box::new("context hook did not run the task")),
    }
}

/// Drops a task that will not run (expired or cancelled), with its context installed around
/// the drop if it captured one. Panics in user code are caught and dropped.
pub(crate) fn discard<F>(f: F, ctx: Option<Captured>) {
    match ctx {
        None => drop_quietly(f),
        Some(ctx) => {
            let mut f = Some(f);
            let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                ctx.scope(&mut || drop_quietly(f.take()))
            }));
            drop_quietly(f);
            if let Err(payload) = caught {
                std::mem::forget(payload);
            }
        }
    }
}

/// Like [`discard`], but a panic of the closure's `Drop` propagates: for a cancel through
/// the handle, which runs on the caller's thread.
pub(crate) fn discard_loudly<F>(f: F, ctx: Option<Captured>) {
    match ctx {
        None => drop(f),
        Some(ctx) => {
            let mut f = Some(f);
            ctx.scope(&mut || drop(f.take()));
        }
    }
}

/// A fire-and-forget task that captured a context.
pub(crate) struct InContext<F> {
    pub(crate) f: F,
    pub(crate) ctx: Captured,
}

impl<F: FnOnce() + Send + 'static> crate::job::DetachedTask for InContext<F> {
    fn run(self: Box<Self>) {
        let InContext { f, ctx } = *self;
        let mut f = Some(f);
        ctx.scope(&mut || {
            if let Some(f) = f.take() {
                f()
            }
        });
    }

    fn discard(self: Box<Self>) {
        let InContext { f, ctx } = *self;
        discard(f, Some(ctx));
    }

    #[cold]
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        // A refusal hands the user's own closure back; the context was never installed.
        Box::new(self.f)
    }

    #[cold]
    fn into_fn(self: Box<Self>) -> Box<dyn FnOnce() + Send> {
        // For the shed handler: whoever runs it later runs it in the captured context.
        Box::new(move || crate::job::DetachedTask::run(self))
    }
}
