//! Error types: configuration errors from [`build()`](crate::RuntimeBuilder::build), refusals
//! at submission (which hand the closure back), task outcomes other than success, and
//! look-ups of unknown pools.
//!
//! Like crossbeam's `TrySendError<T>`, a refusal owns the value that was refused, and its
//! `Debug`/`Display` impls do not require that value to be `Debug` (closures never are).

use std::any::Any;
use std::fmt;
use std::time::Duration;

use crate::sync::Arc;
use crate::unwind::payload_str;

/// Why a pool refused a task at submission.
///
/// Every refusal is counted per pool under its reason (see
/// [`PoolStats`](crate::PoolStats)), so an operator can tell "queue full" from "shutting down".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The queue was full at the moment of a non-blocking submission.
    Full,
    /// The queue stayed full for the whole timeout of a `*_timeout` submission.
    Timeout,
    /// The pool is shutting down (or has shut down) and takes no new work.
    ShuttingDown,
    /// The task carried a deadline ([`Pool::try_submit_by`](crate::Pool::try_submit_by))
    /// that had passed, or that the pool predicted it would miss: with every thread busy,
    /// the tasks ahead of it times the recent mean run time put its start past the deadline.
    Deadline,
    /// The task's key ([`Pool::key`](crate::Pool::key)) already had as many tasks in flight
    /// (queued or running) as the pool's per-key cap
    /// ([`PoolBuilder::key_cap`](crate::PoolBuilder::key_cap)). Other keys are not affected.
    KeyCap,
}

impl RefusalReason {
    /// A short lowercase label, stable for use in logs and metric labels
    /// (`"full"`, `"timeout"`, `"shutting_down"`, `"deadline"`, `"key_cap"`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Full => "full",
            RefusalReason::Timeout => "timeout",
            RefusalReason::ShuttingDown => "shutting_down",
            RefusalReason::Deadline => "deadline",
            RefusalReason::KeyCap => "key_cap",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefusalReason::Full => "queue is full",
            RefusalReason::Timeout => "queue stayed full for the whole timeout",
            RefusalReason::ShuttingDown => "pool is shutting down",
            RefusalReason::Deadline => "the task would not start before its deadline",
            RefusalReason::KeyCap => "the task's key is at its in-flight cap",
        })
    }
}

/// A task refused at submission, with the closure handed back.
///
/// Nothing is lost on refusal: [`into_inner`](SubmitError::into_inner) returns the closure
/// so the caller can retry, fall back, or run it itself.
///
/// ```
/// # use bulkhead::Runtime;
/// let rt = Runtime::builder().pool("p", |p| p.threads(1).queue_capacity(1)).build().unwrap();
/// let pool = rt.pool("p").unwrap();
/// rt.shutdown();
/// let err = pool.try_submit(|| 1 + 1).unwrap_err();
/// assert!(err.is_shutting_down());
/// let task = err.into_inner();
/// assert_eq!(task(), 2); // run it here instead
/// ```
pub struct SubmitError<F> {
    task: F,
    reason: RefusalReason,
    pool: Arc<str>,
}

impl<F> SubmitError<F> {
    #[cold]
    pub(crate) fn new(task: F, reason: RefusalReason, pool: Arc<str>) -> Self {
        SubmitError { task, reason, pool }
    }

    /// Returns the refused closure.
    pub fn into_inner(self) -> F {
        self.task
    }

    /// Why the task was refused.
    pub fn reason(&self) -> RefusalReason {
        self.reason
    }

    /// The name of the pool that refused the task.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// True if the queue was full at a non-blocking submission.
    pub fn is_full(&self) -> bool {
        self.reason == RefusalReason::Full
    }

    /// True if the queue stayed full for the whole timeout.
    pub fn is_timeout(&self) -> bool {
        self.reason == RefusalReason::Timeout
    }

    /// True if the pool was shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.reason == RefusalReason::ShuttingDown
    }

    /// True if refused because of its deadline ([`RefusalReason::Deadline`]).
    pub fn is_deadline(&self) -> bool {
        self.reason == RefusalReason::Deadline
    }

    /// True if its key was at the pool's per-key cap ([`RefusalReason::KeyCap`]).
    pub fn is_key_cap(&self) -> bool {
        self.reason == RefusalReason::KeyCap
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self.reason {
            RefusalReason::Full => "Full",
            RefusalReason::Timeout => "Timeout",
            RefusalReason::ShuttingDown => "ShuttingDown",
            RefusalReason::Deadline => "Deadline",
            RefusalReason::KeyCap => "KeyCap",
        };
        write!(f, "{variant}(pool: {:?}, ..)", &*self.pool)
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool {:?} refused the task: {}",
            &*self.pool, self.reason
        )
    }
}

impl<F> std::error::Error for SubmitError<F> {}

/// Why a task did not produce a value.
///
/// Returned by [`TaskHandle::join`](crate::TaskHandle::join) and its relatives, and as the
/// output of awaiting a handle.
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the payload is what it panicked with (see
    /// [`panic_message`](TaskError::panic_message)). The worker caught the panic and went on.
    Panicked(Box<dyn Any + Send + 'static>),
    /// The task waited in the queue longer than the pool's
    /// [`max_queue_wait`](crate::PoolBuilder::max_queue_wait) and was not run.
    Expired {
        /// How long it had waited when a worker reached it.
        waited: Duration,
    },
    /// The task waited longer than the pool's queue-delay target while the pool's CoDel
    /// controller was shedding (a standing queue), and was not run; see
    /// [`PoolBuilder::codel`](crate::PoolBuilder::codel).
    Shed {
        /// How long it had waited when a worker reached it.
        waited: Duration,
    },
    /// The task was cancelled before it started, by [`TaskHandle::cancel`](crate::TaskHandle::cancel)
    /// or by a shutdown that gave up on queued work. It never ran; its closure was dropped.
    Cancelled,
    /// Only from [`try_join`](crate::TaskHandle::try_join) and
    /// [`join_timeout`](crate::TaskHandle::join_timeout): the task has not finished yet. The handle
    /// is still valid; ask again later.
    TimedOut,
    /// The result was already taken by an earlier `try_join`, `join_timeout` or poll.
    AlreadyJoined,
    /// Only from [`join`](crate::TaskHandle::join) and
    /// [`join_timeout`](crate::TaskHandle::join_timeout) called on a worker of the pool the
    /// task is queued on: every worker of that pool would then be blocked waiting on a task of
    /// the pool, so nobody could run it. Returned at once instead of hanging; the task is not
    /// cancelled, and with `join_timeout` the handle stays valid. See
    /// [`TaskHandle::join`](crate::TaskHandle::join) for the exact rule.
    WouldDeadlock,
    /// From a continuation's handle ([`TaskHandle::then_in`](crate::TaskHandle::then_in)):
    /// its pool refused it when the first task ended; the continuation, with its input bound,
    /// comes back inside ([`RefusedContinuation::into_task`]). Also an item of
    /// [`Pool::map`](crate::Pool::map) that was never submitted because the pool shut down:
    /// the mapping function bound to that item comes back the same way.
    Refused(RefusedContinuation),
}

/// Work that its pool refused after the call that asked for it had returned, from
/// [`TaskError::Refused`]: a continuation, or an item of [`Pool::map`](crate::Pool::map).
///
/// Like a [`SubmitError`], it names the pool and the reason and hands the work back: the
/// continuation's closure with the first task's outcome already bound to it (or the mapping
/// function bound to its item), as a `Box<dyn FnOnce() -> U + Send>` (typed by
/// [`into_task`](RefusedContinuation::into_task)).
///
/// ```
/// use bulkhead::{Runtime, TaskError};
/// let rt = Runtime::builder().pool("a", |p| p).pool("b", |p| p).build()?;
/// let b = rt.pool("b")?;
/// let first = rt.pool("a")?.try_submit(|| 20)?;
/// rt.shutdown(); // runs the queued task, then every pool refuses new work
/// assert!(first.is_finished());
/// let next = first.then_in(&b, |n| n.unwrap() + 1);
/// match next.join() {
///     Err(TaskError::Refused(refused)) => {
///         assert_eq!(refused.pool(), "b");
///         assert!(refused.reason() == bulkhead::RefusalReason::ShuttingDown);
///         let task = refused.into_task::<i32>().unwrap();
///         assert_eq!(task(), 21); // run it here instead
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RefusedContinuation(Box<Refusal>);

/// Boxed so that [`TaskError`], returned by every join, stays as small as its other variants.
struct Refusal {
    pool: Arc<str>,
    reason: RefusalReason,
    task: Box<dyn Any + Send>,
}

impl RefusedContinuation {
    #[cold]
    pub(crate) fn new(pool: Arc<str>, reason: RefusalReason, task: Box<dyn Any + Send>) -> Self {
        RefusedContinuation(Box::new(Refusal { pool, reason, task }))
    }

    /// The name of the pool that refused the continuation.
    pub fn pool(&self) -> &str {
        &self.0.pool
    }

    /// Why it was refused.
    pub fn reason(&self) -> RefusalReason {
        self.0.reason
    }

    /// The refused continuation, with the first task's outcome bound: calling it runs the
    /// closure given to `then_in` on the calling thread. `U` is the continuation's output
    /// type; with any other type the error comes back unchanged.
    pub fn into_task<U: 'static>(self) -> Result<Box<dyn FnOnce() -> U + Send>, Self> {
        if !self.0.task.is::<Box<dyn FnOnce() -> U + Send>>() {
            return Err(self);
        }
        let mut this = self;
        // A zero-sized placeholder: no allocation. `Drop` then drops only the placeholder.
        let task = std::mem::replace(&mut this.0.task, Box::new(()));
        match task.downcast::<Box<dyn FnOnce() -> U + Send>>() {
            Ok(task) => Ok(*task),
            Err(_) => unreachable!("checked just above"),
        }
    }
}

impl Drop for RefusedContinuation {
    /// The task holds its input, which may be another refused continuation: a chain of N
    /// refusals nests N deep, so it is dropped flat, not by recursion.
    fn drop(&mut self) {
        let task = std::mem::replace(&mut self.0.task, Box::new(()));
        crate::trampoline::drop_flat(task);
    }
}

impl fmt::Debug for RefusedContinuation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefusedContinuation")
            .field("pool", &&*self.0.pool)
            .field("reason", &self.0.reason)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for RefusedContinuation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool {:?} refused the continuation: {}",
            &*self.0.pool, self.0.reason
        )
    }
}

impl TaskError {
    /// True for [`TaskError::Panicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }

    /// True for [`TaskError::Expired`].
    pub fn is_expired(&self) -> bool {
        matches!(self, TaskError::Expired { .. })
    }

    /// True for [`TaskError::Shed`].
    pub fn is_shed(&self) -> bool {
        matches!(self, TaskError::Shed { .. })
    }

    /// True for [`TaskError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled)
    }

    /// True for [`TaskError::TimedOut`]: the task is still pending and the handle still valid.
    pub fn is_timeout(&self) -> bool {
        matches!(self, TaskError::TimedOut)
    }

    /// True for [`TaskError::WouldDeadlock`].
    pub fn is_would_deadlock(&self) -> bool {
        matches!(self, TaskError::WouldDeadlock)
    }

    /// The refusal, for [`TaskError::Refused`].
    pub fn refused(&self) -> Option<&RefusedContinuation> {
        match self {
            TaskError::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// The panic message, when the task panicked with a `&str` or `String` payload
    /// (which is what `panic!` produces).
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            TaskError::Panicked(p) => payload_str(p.as_ref()),
            _ => None,
        }
    }

    /// Consumes the error and returns the panic payload, if it is a panic; pass it to
    /// [`std::panic::resume_unwind`] to propagate the panic.
    pub fn into_panic(self) -> Option<Box<dyn Any + Send + 'static>> {
        match self {
            TaskError::Panicked(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(p) => match payload_str(p.as_ref()) {
                Some(msg) => f.debug_tuple("Panicked").field(&msg).finish(),
                None => f.write_str("Panicked(..)"),
            },
            TaskError::Expired { waited } => {
                f.debug_struct("Expired").field("waited", waited).finish()
            }
            TaskError::Shed { waited } => f.debug_struct("Shed").field("waited", waited).finish(),
            TaskError::Cancelled => f.write_str("Cancelled"),
            TaskError::TimedOut => f.write_str("TimedOut"),
            TaskError::AlreadyJoined => f.write_str("AlreadyJoined"),
            TaskError::WouldDeadlock => f.write_str("WouldDeadlock"),
            TaskError::Refused(r) => f.debug_tuple("Refused").field(r).finish(),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(p) => match payload_str(p.as_ref()) {
                Some(msg) => write!(f, "task panicked: {msg}"),
                None => f.write_str("task panicked"),
            },
            TaskError::Expired { waited } => {
                write!(f, "task expired after waiting {waited:?} in the queue")
            }
            TaskError::Shed { waited } => write!(
                f,
                "task shed after waiting {waited:?} in a standing queue (queue-delay control)"
            ),
            TaskError::Cancelled => f.write_str("task was cancelled before it started"),
            TaskError::TimedOut => f.write_str("task has not finished yet"),
            TaskError::AlreadyJoined => f.write_str("task result was already taken"),
            TaskError::WouldDeadlock => f.write_str(
                "joining would deadlock: every worker of the task's pool would be waiting on a task of that pool",
            ),
            TaskError::Refused(r) => fmt::Display::fmt(r, f),
        }
    }
}

impl std::error::Error for TaskError {}

/// A pool name that the runtime does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPool {
    pub(crate) name: String,
    pub(crate) known: Vec<String>,
}

impl UnknownPool {
    /// The name that was looked up.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for UnknownPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no pool named {:?} (pools: ", self.name)?;
        for (i, n) in self.known.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n:?}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownPool {}

/// What is wrong with a runtime's configuration, from [`RuntimeBuilder::build`](crate::RuntimeBuilder::build).
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildErrorKind {
    /// No pool was registered.
    NoPools,
    /// A pool name is empty, too long, or contains a control character.
    InvalidName,
    /// Two pools share a name.
    DuplicateName,
    /// A numeric setting is out of its allowed range.
    OutOfRange,
    /// The operating system could not start a worker thread.
    Spawn(std::io::Error),
    /// A CPU set is empty, or a CPU setting needs a set that was not given
    /// ([`placement`](crate::PoolBuilder::placement) or
    /// [`exclusive`](crate::PoolBuilder::exclusive) without [`cpus`](crate::PoolBuilder::cpus)).
    InvalidCpus,
    /// A pool's [`cpus`](crate::PoolBuilder::cpus) names a CPU this process may not use.
    UnavailableCpu {
        /// The first such CPU.
        cpu: usize,
        /// The CPUs the thread calling `build()` may use ([`CpuSet::available`](crate::CpuSet::available)).
        available: crate::cpuset::CpuSet,
    },
    /// A pool claims its CPUs [`exclusive`](crate::PoolBuilder::exclusive)ly, and another
    /// pool may run on some of them. [`BuildError::pool`] is the claiming pool.
    OverlappingExclusive {
        /// The other pool.
        other: String,
        /// The CPUs both may run on.
        shared: crate::cpuset::CpuSet,
    },
    /// The operating system refused a CPU placement, scheduling policy or nice value
    /// (for example `EPERM` for a negative nice value without privilege), or could not
    /// report the CPUs available. [`BuildError::field`] names the setting.
    Os(std::io::Error),
    /// The setting is not supported on this target: CPU placement and priority are
    /// Linux-only.
    Unsupported,
}

/// A configuration error from [`RuntimeBuilder::build`](crate::RuntimeBuilder::build).
///
/// It names the pool and the setting at fault and says how to fix it. Build never panics
/// on bad input and never silently corrects a value. If threads had already been started
/// when the error occurred, they are stopped before the error is returned.
#[derive(Debug)]
pub struct BuildError {
    pool: Option<String>,
    field: &'static str,
    kind: BuildErrorKind,
    message: String,
}

impl BuildError {
    #[cold]
    pub(crate) fn new(
        pool: Option<&str>,
        field: &'static str,
        kind: BuildErrorKind,
        message: impl Into<String>,
    ) -> Self {
        BuildError {
            pool: pool.map(str::to_owned),
            field,
            kind,
            message: message.into(),
        }
    }

    /// The pool whose configuration is at fault, if the error concerns one pool.
    pub fn pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }

    /// The setting at fault, as named by the builder method (for example `"threads"`).
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The kind of error.
    pub fn kind(&self) -> &BuildErrorKind {
        &self.kind
    }

    /// What is wrong and how to fix it, without the pool and the field that `Display` puts
    /// before it (for example `must be between 1 and 1024, got 0`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pool) = &self.pool {
            write!(f, "pool {pool:?}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            BuildErrorKind::Spawn(e) | BuildErrorKind::Os(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a live resize was refused, from [`Pool::set_threads`](crate::Pool::set_threads),
/// [`Pool::set_thread_range`](crate::Pool::set_thread_range) or
/// [`Pool::set_queue_capacity`](crate::Pool::set_queue_capacity).
#[derive(Debug)]
#[non_exhaustive]
pub enum ResizeErrorKind {
    /// The pool was not built resizable: set
    /// [`max_threads_limit`](crate::PoolBuilder::max_threads_limit) (threads) or
    /// [`queue_capacity_limit`](crate::PoolBuilder::queue_capacity_limit) (queue) at build.
    NotResizable,
    /// The new value is outside the range the pool was built to allow.
    OutOfRange,
    /// The operating system could not start a new worker thread; the pool keeps the threads
    /// it has and the new bounds.
    Spawn(std::io::Error),
    /// The operating system refused a new worker's CPU placement or priority
    /// ([`ResizeError::field`] names the setting); the worker did not start.
    Os(std::io::Error),
    /// A new worker's [`on_thread_start`](crate::PoolBuilder::on_thread_start) hook
    /// panicked (the message says with what); the worker did not start.
    StartHook,
}

/// A refused live resize. It names the pool and the setting; the pool is left as the message
/// says (a refused value changes nothing; a worker that failed to start is not counted).
#[derive(Debug)]
pub struct ResizeError {
    pool: String,
    field: &'static str,
    kind: ResizeErrorKind,
    message: String,
}

impl ResizeError {
    #[cold]
    pub(crate) fn new(
        pool: &str,
        field: &'static str,
        kind: ResizeErrorKind,
        message: impl Into<String>,
    ) -> Self {
        ResizeError {
            pool: pool.to_owned(),
            field,
            kind,
            message: message.into(),
        }
    }

    /// The pool that was being resized.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// The setting at fault, as named by the builder method (for example `"threads"`).
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The kind of error.
    pub fn kind(&self) -> &ResizeErrorKind {
        &self.kind
    }

    /// What is wrong and how to fix it, without the pool and setting that `Display` adds.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ResizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool {:?}: {}: {}", self.pool, self.field, self.message)
    }
}

impl std::error::Error for ResizeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ResizeErrorKind::Spawn(e) | ResizeErrorKind::Os(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a worker thread did not start serving: carried from the new thread (or the spawning
/// call) to whoever started it, which turns it into a [`BuildError`] or a [`ResizeError`].
#[derive(Debug)]
pub(crate) enum SetupError {
    /// The OS could not start the thread, or the pool cannot take another worker now.
    Spawn(std::io::Error),
    /// The OS refused a placement or priority setting of the worker.
    Os {
        field: &'static str,
        message: String,
        source: std::io::Error,
    },
    /// The pool's start hook panicked, with this message.
    StartHook(String),
}

impl SetupError {
    /// As a build error of pool `pool`.
    pub(crate) fn into_build_error(self, pool: &str) -> BuildError {
        match self {
            SetupError::Spawn(e) => {
                let msg = format!("could not start a worker thread: {e}");
                BuildError::new(Some(pool), "threads", BuildErrorKind::Spawn(e), msg)
            }
            SetupError::Os {
                field,
                message,
                source,
            } => {
                let msg = format!("{message}: {source}");
                BuildError::new(Some(pool), field, BuildErrorKind::Os(source), msg)
            }
            SetupError::StartHook(msg) => BuildError::new(
                Some(pool),
                "on_thread_start",
                BuildErrorKind::Spawn(std::io::Error::other(msg.clone())),
                format!("a worker could not be set up: {msg}"),
            ),
        }
    }

    /// As a resize error of pool `pool`, resizing `field`.
    pub(crate) fn into_resize_error(self, pool: &str, field: &'static str) -> ResizeError {
        match self {
            SetupError::Spawn(e) => {
                let msg = format!("a new worker thread did not start: {e}");
                ResizeError::new(pool, field, ResizeErrorKind::Spawn(e), msg)
            }
            SetupError::Os {
                field,
                message,
                source,
            } => {
                let msg = format!("{message}: {source}");
                ResizeError::new(pool, field, ResizeErrorKind::Os(source), msg)
            }
            SetupError::StartHook(msg) => ResizeError::new(
                pool,
                "on_thread_start",
                ResizeErrorKind::StartHook,
                format!("a new worker thread did not start: {msg}"),
            ),
        }
    }
}
