//! The builders: [`RuntimeBuilder`] registers pools by name, [`PoolBuilder`] holds one pool's
//! settings, and [`RuntimeBuilder::build`] validates the whole configuration before it starts
//! a single thread.
//!
//! # Validation rules
//!
//! | setting            | rule                                                          |
//! |--------------------|---------------------------------------------------------------|
//! | pools              | at least one                                                  |
//! | pool name          | 1 to 64 bytes, no control characters, unique in the runtime   |
//! | `threads`          | 1 to [`MAX_THREADS`]                                          |
//! | `queue_capacity`   | 0 to [`MAX_QUEUE_CAPACITY`]                                   |
//! | `stack_size`       | [`MIN_STACK_SIZE`] to [`MAX_STACK_SIZE`] bytes, if set        |
//! | `max_queue_wait`   | greater than zero, if set                                     |
//! | `thread_name`      | 1 to 64 bytes, no control characters, if set                  |
//! | `cpus`             | not empty, every CPU in [`CpuSet::available`], if set; Linux  |
//! | `placement`        | only with `cpus`                                              |
//! | `exclusive`        | only with `cpus`; no other pool may run on those CPUs         |
//! | `nice`             | [`MIN_NICE`] to [`MAX_NICE`], if set; Linux                   |
//! | `sched_policy`     | Linux                                                         |
//! | `stuck_after`      | [`MIN_STUCK_AFTER`] or more                                   |
//! | `threads`, `elastic` | `1 <= min <= max <= ` [`MAX_THREADS`]                       |
//! | `keep_alive`       | [`MIN_KEEP_ALIVE`] to [`MAX_KEEP_ALIVE`]                      |
//! | `replacement_budget` | 0 to [`MAX_THREADS`]                                        |
//! | `max_threads_limit` | the maximum thread count to [`MAX_THREADS`], if set          |
//! | `queue_capacity_limit` | `queue_capacity` (at least 1) to [`MAX_QUEUE_CAPACITY`], if set |
//! | `codel`            | target and interval in (0, [`MAX_CODEL_DURATION`]], target < interval, if set |
//! | `supervisor_interval` | [`MIN_SUPERVISOR_INTERVAL`] to [`MAX_SUPERVISOR_INTERVAL`] |
//!
//! A value outside its range is an error naming the pool and the setting; nothing is
//! clamped or rounded silently.

use std::time::Duration;

use crate::error::{BuildError, BuildErrorKind, UnknownPool};
use crate::events::{EventListener, Listeners};
use crate::hooks::Hooks;
use crate::overload::{CodelConfig, ShedHandler, ShedTask};
use crate::placement::{self, CpuConfig};
use crate::runtime::Runtime;
#[cfg(doc)]
use crate::{
    placement::{MAX_NICE, MIN_NICE},
    CpuSet,
};

/// The largest number of worker threads one pool may have.
pub const MAX_THREADS: usize = 1024;
/// The largest queue capacity one pool may have (the queue's slots are allocated up front).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;
/// The smallest stack size a worker may be given, in bytes.
pub const MIN_STACK_SIZE: usize = 64 * 1024;
/// The largest stack size a worker may be given, in bytes (1 GiB).
pub const MAX_STACK_SIZE: usize = 1 << 30;
/// The longest pool name or thread-name prefix, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Default number of worker threads of a pool.
pub const DEFAULT_THREADS: usize = 1;
/// Default queue capacity of a pool.
pub const DEFAULT_QUEUE_CAPACITY: usize = 128;
/// Default grace period that dropping a [`Runtime`] gives running and queued tasks.
pub const DEFAULT_DROP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default threshold past which a running task counts as stuck.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(30);
/// Default [`PoolBuilder::idle_spin`]: 100 µs (0 when the crate is interpreted by Miri, in
/// our own test runs, where spinning only slows the interpreter).
pub const DEFAULT_IDLE_SPIN: Duration = if cfg!(miri) {
    Duration::ZERO
} else {
    Duration::from_micros(100)
};
/// The longest [`PoolBuilder::idle_spin`].
pub const MAX_IDLE_SPIN: Duration = Duration::from_millis(10);
/// The smallest `stuck_after` threshold.
pub const MIN_STUCK_AFTER: Duration = Duration::from_millis(1);
/// The queue-delay target that "Fail at Scale" suggests for CoDel (5 ms); see
/// [`PoolBuilder::codel`].
pub const SUGGESTED_CODEL_TARGET: Duration = Duration::from_millis(5);
/// The CoDel interval that "Fail at Scale" suggests (100 ms); see [`PoolBuilder::codel`].
pub const SUGGESTED_CODEL_INTERVAL: Duration = Duration::from_millis(100);
/// The longest CoDel target or interval (one hour).
pub const MAX_CODEL_DURATION: Duration = Duration::from_secs(3600);
/// Default time an elastic pool's worker above its minimum stays idle before it exits.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);
/// The shortest keep-alive.
pub const MIN_KEEP_ALIVE: Duration = Duration::from_millis(1);
/// The longest keep-alive (one hour).
pub const MAX_KEEP_ALIVE: Duration = Duration::from_secs(3600);
/// Default interval at which the supervisor samples every pool.
pub const DEFAULT_SUPERVISOR_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest supervisor interval.
pub const MIN_SUPERVISOR_INTERVAL: Duration = Duration::from_millis(10);
/// The longest supervisor interval (one hour).
pub const MAX_SUPERVISOR_INTERVAL: Duration = Duration::from_secs(3600);

/// Configures one pool. Obtained inside [`RuntimeBuilder::pool`].
///
/// Every setter consumes and returns the builder, so settings chain:
/// `|p| p.threads(2).queue_capacity(256)`.
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    pub(crate) name: String,
    pub(crate) threads: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) max_queue_wait: Option<Duration>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) thread_name: Option<String>,
    /// CPU set, placement, exclusivity and priority; setters in `placement.rs`.
    pub(crate) cpu: CpuConfig,
    pub(crate) stuck_after: Duration,
    pub(crate) idle_spin: Duration,
    pub(crate) codel: Option<CodelConfig>,
    pub(crate) on_shed: Option<ShedHandler>,
    /// The maximum of an elastic pool (`threads` is then its minimum).
    pub(crate) max_threads: Option<usize>,
    pub(crate) keep_alive: Duration,
    pub(crate) replacement_budget: usize,
    pub(crate) max_threads_limit: Option<usize>,
    pub(crate) queue_capacity_limit: Option<usize>,
    /// Context, lifecycle and panic hooks; setters in `hooks.rs`.
    pub(crate) hooks: Hooks,
}

impl PoolBuilder {
    pub(crate) fn new(name: String) -> Self {
        PoolBuilder {
            name,
            threads: DEFAULT_THREADS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_queue_wait: None,
            stack_size: None,
            thread_name: None,
            cpu: CpuConfig::default(),
            stuck_after: DEFAULT_STUCK_AFTER,
            idle_spin: DEFAULT_IDLE_SPIN,
            codel: None,
            on_shed: None,
            max_threads: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
            replacement_budget: 0,
            max_threads_limit: None,
            queue_capacity_limit: None,
            hooks: Hooks::default(),
        }
    }

    /// The number of worker threads: a fixed size (replaces an earlier
    /// [`elastic`](PoolBuilder::elastic)).
    ///
    /// Default: [`DEFAULT_THREADS`] (1). Must be at least 1 and at most [`MAX_THREADS`];
    /// 0 is a build error. Fixed for the life of the pool unless
    /// [`max_threads_limit`](PoolBuilder::max_threads_limit) allows
    /// [resizing](crate::Pool::set_threads).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self.max_threads = None;
        self
    }

    /// Makes the pool elastic, for blocking work: `min` threads always, up to `max` under
    /// load (replaces an earlier [`threads`](PoolBuilder::threads)).
    ///
    /// # Order
    ///
    /// A task submitted while no worker is idle starts a new thread, if the pool has fewer
    /// than `max`, *before* it waits in the queue; only at `max` does it queue, and only with
    /// the queue full is it refused. (Java's `ThreadPoolExecutor` does the opposite: it
    /// queues first and adds threads only once the queue is full.) `max` is a hard wall;
    /// threads above `min` exit after [`keep_alive`](PoolBuilder::keep_alive) idle. See
    /// docs/OVERLOAD.md for the diagram and the cost.
    ///
    /// Default: not elastic (a fixed size of [`threads`](PoolBuilder::threads)). `1 <= min
    /// <= max <= ` [`MAX_THREADS`]; otherwise `build()` fails naming the field `elastic`.
    /// With a queue capacity of 0, a task submitted while no worker is idle is refused even
    /// as a thread starts for the next one: give elastic pools a queue of at least 1.
    pub fn elastic(mut self, min: usize, max: usize) -> Self {
        self.threads = min;
        self.max_threads = Some(max);
        self
    }

    /// How long a worker of an elastic pool stays idle before it exits, while the pool has
    /// more than its minimum.
    ///
    /// Default: [`DEFAULT_KEEP_ALIVE`] (10 s). From [`MIN_KEEP_ALIVE`] (1 ms) to
    /// [`MAX_KEEP_ALIVE`] (1 h). Applies to every pool that may start threads after build
    /// (elastic, with a replacement budget, or resizable).
    pub fn keep_alive(mut self, idle: Duration) -> Self {
        self.keep_alive = idle;
        self
    }

    /// How many replacement threads the pool may run for workers stuck in a task: when the
    /// supervisor finds a worker running one task for longer than
    /// [`stuck_after`](PoolBuilder::stuck_after), it starts a new worker in its place if fewer
    /// than `budget` stuck workers are already replaced. A replaced worker is still counted
    /// (in `threads`, and against the budget) until its task returns; then it exits. So one
    /// hung call does not idle the pool, and a runaway that hangs every call still cannot
    /// create more than `budget` extra threads.
    ///
    /// Default: 0 (stuck workers are reported, never replaced). At most [`MAX_THREADS`].
    /// Replacement happens at supervisor samples: between `stuck_after` and `stuck_after`
    /// plus one [`supervisor_interval`](RuntimeBuilder::supervisor_interval) after the task
    /// started.
    pub fn replacement_budget(mut self, budget: usize) -> Self {
        self.replacement_budget = budget;
        self
    }

    /// The largest thread count a live resize ([`Pool::set_threads`](crate::Pool::set_threads),
    /// [`Pool::set_thread_range`](crate::Pool::set_thread_range)) may set. Setting it makes the
    /// pool resizable; worker slots for this many threads (plus the replacement budget) are
    /// allocated at build.
    ///
    /// Default: unset: the pool keeps its build-time size (an elastic pool keeps its range).
    /// At least the pool's maximum thread count, at most [`MAX_THREADS`].
    pub fn max_threads_limit(mut self, limit: usize) -> Self {
        self.max_threads_limit = Some(limit);
        self
    }

    /// The largest queue capacity a live resize ([`Pool::set_queue_capacity`](crate::Pool::set_queue_capacity))
    /// may set. Setting it makes the queue resizable: the queue is allocated at this capacity,
    /// and the current capacity is an admission limit checked at submission (which concurrent
    /// submitters may overshoot by at most their number).
    ///
    /// Default: unset: the capacity is fixed. At least [`queue_capacity`](PoolBuilder::queue_capacity),
    /// which must then be at least 1, and at most [`MAX_QUEUE_CAPACITY`].
    pub fn queue_capacity_limit(mut self, limit: usize) -> Self {
        self.queue_capacity_limit = Some(limit);
        self
    }

    /// The capacity of the pool's bounded queue: how many tasks may wait for a worker.
    ///
    /// Default: [`DEFAULT_QUEUE_CAPACITY`] (128). At most [`MAX_QUEUE_CAPACITY`].
    ///
    /// # Queue behaviour
    ///
    /// The pool holds up to `threads + queue_capacity` tasks at once: one running on each
    /// thread (for an elastic pool, each thread up to its maximum) plus `queue_capacity`
    /// waiting. Admission counts these slots, not which workers happen to be awake: a burst
    /// of `threads + queue_capacity` submissions into an idle pool is accepted in full, and
    /// the next one is refused, even before any worker has woken up. A slot is free again as
    /// soon as its task ends (before its handle resolves). When every slot is taken, the
    /// non-blocking submissions refuse at once and the `*_timeout` ones wait at most their
    /// timeout for a slot. The queue never grows.
    /// **0 is allowed** and means a pure hand-off: a task is accepted only if a thread is
    /// free for it at that moment.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// The longest a task may wait in the queue. A task that waited longer when a worker
    /// reaches it is not run: it resolves as [`TaskError::Expired`](crate::TaskError::Expired)
    /// and is counted as expired. Stale work is shed, not done.
    ///
    /// Default: unset, no limit. Zero is a build error (every task would expire).
    pub fn max_queue_wait(mut self, wait: Duration) -> Self {
        self.max_queue_wait = Some(wait);
        self
    }

    /// The stack size of each worker thread, in bytes.
    ///
    /// Default: unset, Rust's default for spawned threads (2 MiB unless `RUST_MIN_STACK`
    /// says otherwise). Must be between [`MIN_STACK_SIZE`] and [`MAX_STACK_SIZE`]; 0 is a
    /// build error.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// The prefix of the worker thread names; worker `i` is named `"{prefix}-{i}"`.
    ///
    /// Default: the pool name. On Linux the kernel keeps only the first 15 bytes of a
    /// thread name, which is what `ps -L` and `top -H` show; keep prefixes short.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = Some(prefix.into());
        self
    }

    /// How long a worker of a fixed-size pool that just ran out of work keeps looking for the
    /// next task (spinning and yielding the CPU) before it parks, while tasks have been
    /// arriving at shorter intervals than this.
    ///
    /// Parking and being woken costs a futex wake-up, tens of microseconds on a VM; a steady
    /// stream of tasks closer together than `idle_spin` is served without it. The spin adapts:
    /// a worker that waited longer than `idle_spin` for its last task parks at once next time
    /// (after a few microseconds of back-off), so an idle pool burns no CPU; a busy one trades
    /// CPU time between tasks for latency. Elastic pools always park at once (their growth
    /// decision counts parked workers).
    ///
    /// Default: [`DEFAULT_IDLE_SPIN`] (100 µs). Zero disables it. At most
    /// [`MAX_IDLE_SPIN`] (10 ms); more is a build error.
    pub fn idle_spin(mut self, spin: Duration) -> Self {
        self.idle_spin = spin;
        self
    }

    /// How long a task may run before the supervisor reports it as stuck (a
    /// [`StuckTask`](crate::StuckTask) in the snapshot, an [`Event::Stuck`](crate::Event::Stuck)
    /// for listeners, and the pool's health [`Stuck`](crate::Health::Stuck)). Nothing is done
    /// to the task: it is reported, not stopped.
    ///
    /// Default: [`DEFAULT_STUCK_AFTER`] (30 s). At least [`MIN_STUCK_AFTER`] (1 ms); less is a
    /// build error. Detection happens at supervisor samples, so a task is flagged between
    /// `stuck_after` and `stuck_after` plus one supervisor interval after it started.
    pub fn stuck_after(mut self, threshold: Duration) -> Self {
        self.stuck_after = threshold;
        self
    }

    /// Turns on queue-delay control (CoDel) for this pool: once tasks have waited `target` or
    /// longer for a whole `interval` (a standing queue), workers shed, instead of run, every
    /// dequeued task that waited longer than `target`, until a task waits less than `target`
    /// or the queue empties. A shed task's handle reports
    /// [`TaskError::Shed`](crate::TaskError::Shed); a fire-and-forget task goes to the
    /// [shed handler](PoolBuilder::on_shed). docs/OVERLOAD.md says when to use it.
    ///
    /// Default: off (tasks are never shed; only [`max_queue_wait`](PoolBuilder::max_queue_wait)
    /// applies). "Fail at Scale" suggests [`SUGGESTED_CODEL_TARGET`] (5 ms) and
    /// [`SUGGESTED_CODEL_INTERVAL`] (100 ms). Both must be greater than zero and at most
    /// [`MAX_CODEL_DURATION`], and `target` less than `interval`; otherwise `build()` fails
    /// naming the field `codel`. With `max_queue_wait` also set, a task past
    /// `max_queue_wait` is expired first, whatever the controller's state.
    ///
    /// Cost: one branch per task when off; when on, one read of a shared word per task and a
    /// write only when a task's wait crosses the target.
    pub fn codel(mut self, target: Duration, interval: Duration) -> Self {
        self.codel = Some(CodelConfig { target, interval });
        self
    }

    /// Sets the handler that receives every fire-and-forget task ([`Pool::execute`](crate::Pool::execute))
    /// that the pool accepted but will not run: expired, shed by CoDel, or cancelled by a
    /// shutdown that gave up on queued work, with the reason and the unrun closure (to log,
    /// count, run elsewhere or drop). Tasks with a handle do not go here: their handle reports
    /// why.
    ///
    /// The handler runs **on the thread that dropped the task**: a worker of this pool (so a
    /// slow handler delays the pool's next task), or the thread running a shutdown or a
    /// submission that drains an abandoned queue. It runs under `catch_unwind`: a panic in it
    /// is caught and dropped. Submitting from it is allowed; waiting on this pool from it is
    /// not wise (it may be running on this pool's only worker).
    ///
    /// Default: none; such tasks are dropped, and only counted.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// let dropped = Arc::new(AtomicU64::new(0));
    /// let d = dropped.clone();
    /// let rt = bulkhead::Runtime::builder()
    ///     .pool("p", move |p| p.on_shed(move |t: bulkhead::ShedTask| {
    ///         eprintln!("pool {} did not run a task: {}", t.pool, t.reason);
    ///         d.fetch_add(1, Ordering::Relaxed);
    ///     }))
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_shed(mut self, handler: impl Fn(ShedTask) + Send + Sync + 'static) -> Self {
        self.on_shed = Some(ShedHandler(std::sync::Arc::new(handler)));
        self
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn thread_prefix(&self) -> &str {
        self.thread_name.as_deref().unwrap_or(&self.name)
    }

    /// The maximum thread count at build.
    pub(crate) fn max_threads(&self) -> usize {
        self.max_threads.unwrap_or(self.threads)
    }

    /// The largest maximum a resize may set.
    pub(crate) fn threads_limit(&self) -> usize {
        self.max_threads_limit.unwrap_or_else(|| self.max_threads())
    }

    /// True if the pool may start workers after build.
    pub(crate) fn is_dynamic(&self) -> bool {
        self.max_threads() > self.threads
            || self.replacement_budget > 0
            || self.max_threads_limit.is_some()
    }

    /// Worker slots to allocate: the most threads the pool can ever have at once.
    pub(crate) fn slots(&self) -> usize {
        if self.is_dynamic() {
            self.threads_limit().max(self.threads) + self.replacement_budget
        } else {
            self.threads
        }
    }

    /// Every problem with this pool's own settings (not the cross-pool checks).
    fn problems(&self) -> Vec<BuildError> {
        let pool = Some(self.name.as_str());
        let mut out = Vec::new();
        let mut range = |field, message: String| {
            out.push(BuildError::new(
                pool,
                field,
                BuildErrorKind::OutOfRange,
                message,
            ))
        };
        match self.max_threads {
            None => {
                if self.threads == 0 || self.threads > MAX_THREADS {
                    range(
                        "threads",
                        format!("must be between 1 and {MAX_THREADS}, got {}", self.threads),
                    );
                }
            }
            Some(max) => {
                if let Err(why) = check_thread_range(self.threads, max, MAX_THREADS) {
                    range("elastic", why);
                }
            }
        }
        if !(MIN_KEEP_ALIVE..=MAX_KEEP_ALIVE).contains(&self.keep_alive) {
            range(
                "keep_alive",
                format!(
                    "must be between {MIN_KEEP_ALIVE:?} and {MAX_KEEP_ALIVE:?}, got {:?}",
                    self.keep_alive
                ),
            );
        }
        if self.replacement_budget > MAX_THREADS {
            range(
                "replacement_budget",
                format!(
                    "must be at most {MAX_THREADS}, got {}",
                    self.replacement_budget
                ),
            );
        }
        if let Some(limit) = self.max_threads_limit {
            if limit < self.max_threads() || limit > MAX_THREADS {
                range(
                    "max_threads_limit",
                    format!(
                        "must be between the pool's maximum thread count ({}) and {MAX_THREADS}, got {limit}",
                        self.max_threads()
                    ),
                );
            }
        }
        if let Some(limit) = self.queue_capacity_limit {
            if self.queue_capacity == 0 {
                range(
                    "queue_capacity",
                    "must be at least 1 when queue_capacity_limit is set (a resizable queue cannot be a pure hand-off)".to_owned(),
                );
            }
            if limit < self.queue_capacity || limit > MAX_QUEUE_CAPACITY {
                range(
                    "queue_capacity_limit",
                    format!(
                        "must be between queue_capacity ({}) and {MAX_QUEUE_CAPACITY}, got {limit}",
                        self.queue_capacity
                    ),
                );
            }
        }
        if self.queue_capacity > MAX_QUEUE_CAPACITY {
            range(
                "queue_capacity",
                format!(
                    "must be at most {MAX_QUEUE_CAPACITY}, got {}",
                    self.queue_capacity
                ),
            );
        }
        if let Some(bytes) = self.stack_size {
            if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&bytes) {
                range(
                    "stack_size",
                    format!(
                        "must be between {MIN_STACK_SIZE} and {MAX_STACK_SIZE} bytes, got {bytes}"
                    ),
                );
            } else if bytes.checked_mul(self.slots()).is_none() {
                range(
                    "stack_size",
                    format!(
                        "{} threads of {bytes} bytes overflow the address space",
                        self.slots()
                    ),
                );
            }
        }
        if self.max_queue_wait == Some(Duration::ZERO) {
            range(
                "max_queue_wait",
                "must be greater than zero (leave it unset for no limit)".to_owned(),
            );
        }
        if self.idle_spin > MAX_IDLE_SPIN {
            range(
                "idle_spin",
                format!(
                    "must be at most {MAX_IDLE_SPIN:?}, got {:?}",
                    self.idle_spin
                ),
            );
        }
        if self.stuck_after < MIN_STUCK_AFTER {
            range(
                "stuck_after",
                format!(
                    "must be at least {MIN_STUCK_AFTER:?}, got {:?}",
                    self.stuck_after
                ),
            );
        }
        if let Some(c) = self.codel {
            if c.target.is_zero() || c.interval.is_zero() {
                range(
                    "codel",
                    format!(
                        "target and interval must be greater than zero, got target {:?} and interval {:?} (leave codel unset to turn it off)",
                        c.target, c.interval
                    ),
                );
            } else if c.target > MAX_CODEL_DURATION || c.interval > MAX_CODEL_DURATION {
                range(
                    "codel",
                    format!(
                        "target and interval must be at most {MAX_CODEL_DURATION:?}, got target {:?} and interval {:?}",
                        c.target, c.interval
                    ),
                );
            } else if c.target >= c.interval {
                range(
                    "codel",
                    format!(
                        "target must be less than interval, got target {:?} and interval {:?} (suggested: {SUGGESTED_CODEL_TARGET:?} and {SUGGESTED_CODEL_INTERVAL:?})",
                        c.target, c.interval
                    ),
                );
            }
        }
        if let Some(prefix) = &self.thread_name {
            if let Err(why) = check_name(prefix) {
                out.push(BuildError::new(
                    pool,
                    "thread_name",
                    BuildErrorKind::InvalidName,
                    why,
                ));
            }
        }
        out
    }
}

/// The thread-count rule shared by build and live resizing: `1 <= min <= max <= limit`.
pub(crate) fn check_thread_range(min: usize, max: usize, limit: usize) -> Result<(), String> {
    if min == 0 || min > max || max > limit {
        return Err(format!(
            "must satisfy 1 <= min <= max <= {limit}, got min {min} and max {max}"
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{name:?} is {} bytes long, the limit is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("{name:?} contains the control character {c:?}"));
    }
    Ok(())
}

/// Registers pools by name and builds a [`Runtime`]. Obtained from [`Runtime::builder`].
///
/// ```
/// use std::time::Duration;
/// let rt = bulkhead::Runtime::builder()
///     .pool("api", |p| p.threads(2).queue_capacity(256))
///     .pool("thumbnails", |p| {
///         p.threads(1).queue_capacity(32).max_queue_wait(Duration::from_millis(200))
///     })
///     .build()?;
/// assert_eq!(rt.pool("api")?.threads(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    pub(crate) pools: Vec<PoolBuilder>,
    pub(crate) drop_timeout: Duration,
    pub(crate) metrics: bool,
    pub(crate) supervisor_interval: Duration,
    pub(crate) listeners: Listeners,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            pools: Vec::new(),
            drop_timeout: DEFAULT_DROP_TIMEOUT,
            // Under Miri (our own test runs only) the histograms' memory dominates the
            // interpretation time, so they are off unless a test turns them on.
            metrics: !cfg!(miri),
            supervisor_interval: DEFAULT_SUPERVISOR_INTERVAL,
            listeners: Listeners::default(),
        }
    }
}

impl RuntimeBuilder {
    /// A builder with no pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a pool named `name`, configured by `configure`.
    ///
    /// Names are checked by [`build`](RuntimeBuilder::build), not here: an empty or duplicate
    /// name is reported there with every other configuration error.
    pub fn pool(
        mut self,
        name: impl Into<String>,
        configure: impl FnOnce(PoolBuilder) -> PoolBuilder,
    ) -> Self {
        self.pools.push(configure(PoolBuilder::new(name.into())));
        self
    }

    /// Changes the pool already registered as `name`: for example one loaded from a
    /// configuration file, to add what only code can set (hooks, a panic handler).
    ///
    /// # Errors
    ///
    /// [`UnknownPool`] if no pool of that name was registered.
    ///
    /// ```
    /// use bulkhead::{PanicPolicy, Runtime};
    /// let rt = Runtime::builder()
    ///     .pool("api", |p| p.threads(2)) // or RuntimeBuilder::from_toml_file(..)?
    ///     .configure_pool("api", |p| {
    ///         p.panic_policy(PanicPolicy::handler(|pool, _| eprintln!("panic in {pool}")))
    ///     })?
    ///     .build()?;
    /// assert_eq!(rt.pool("api")?.threads(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn configure_pool(
        mut self,
        name: &str,
        configure: impl FnOnce(PoolBuilder) -> PoolBuilder,
    ) -> Result<Self, UnknownPool> {
        match self.pools.iter().position(|p| p.name == name) {
            Some(i) => {
                let p = self.pools.remove(i);
                self.pools.insert(i, configure(p));
                Ok(self)
            }
            None => Err(UnknownPool {
                name: name.to_owned(),
                known: self.pools.iter().map(|p| p.name.clone()).collect(),
            }),
        }
    }

    /// How long dropping the [`Runtime`] waits for queued and running tasks, as if by
    /// [`Runtime::shutdown_timeout`].
    ///
    /// Default: [`DEFAULT_DROP_TIMEOUT`] (5 s). Dropping a runtime never waits longer than
    /// this (plus scheduling noise): tasks still queued then are cancelled, and workers still
    /// inside a task are detached. `Duration::ZERO` cancels queued work at once.
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Whether workers record latency histograms (queue wait, run time, end to end).
    ///
    /// Default: `true` (`false` only when the crate is interpreted by Miri, in our own test
    /// runs). With `false`, submissions skip the enqueue clock read (unless the pool has a
    /// [`max_queue_wait`](PoolBuilder::max_queue_wait) or CoDel), workers skip the recording, and
    /// [`PoolSnapshot::latency`](crate::PoolSnapshot::latency) is `None`. The outcome
    /// counters of [`PoolStats`](crate::PoolStats), the supervisor, stuck-task detection,
    /// CPU time and events stay on: they cost nothing per task beyond the accounting the
    /// runtime always does. docs/BENCHMARKS.md gives the measured cost of `true`.
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled;
        self
    }

    /// How often the supervisor thread samples every pool: queue depth, CPU time, latency
    /// intervals, stuck tasks, health, and the events it derives.
    ///
    /// Default: [`DEFAULT_SUPERVISOR_INTERVAL`] (1 s). From [`MIN_SUPERVISOR_INTERVAL`]
    /// (10 ms) to [`MAX_SUPERVISOR_INTERVAL`] (1 h); outside that is a build error.
    pub fn supervisor_interval(mut self, interval: Duration) -> Self {
        self.supervisor_interval = interval;
        self
    }

    /// Registers a listener told of every [`Event`](crate::Event) (refusals, panics,
    /// expiries, stuck tasks, recoveries, health changes), on the supervisor thread, once per
    /// sampling interval. Never called on a submitting or worker thread.
    ///
    /// Default: no listener. Listeners are called in registration order.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// let (tx, events) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let rt = bulkhead::Runtime::builder()
    ///     .pool("p", |p| p)
    ///     .on_event(move |e: &bulkhead::Event| { let _ = tx.lock().unwrap().send(e.to_string()); })
    ///     .build()?;
    /// # drop((rt, events));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_event(mut self, listener: impl EventListener) -> Self {
        self.listeners.0.push(std::sync::Arc::new(listener));
        self
    }

    /// Validates the whole configuration, then starts every pool's threads.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the pool and the setting at fault (see the module's rules), or
    /// the OS error if a thread could not be started; in that case the threads already started
    /// are stopped before this returns.
    pub fn build(self) -> Result<Runtime, BuildError> {
        self.validate()?;
        Runtime::start(self)
    }

    fn validate(&self) -> Result<(), BuildError> {
        match self.problems().into_iter().next() {
            Some(first) => Err(first),
            None => Ok(()),
        }
    }

    /// Every configuration error `build()` would find, in pool order, without starting a
    /// thread: each pool's own settings are all checked; the cross-pool checks (CPU
    /// availability, exclusive overlaps) report their first problem. `build()` returns the
    /// first of these; the configuration file loader reports them all.
    pub fn problems(&self) -> Vec<BuildError> {
        let mut out = Vec::new();
        if !(MIN_SUPERVISOR_INTERVAL..=MAX_SUPERVISOR_INTERVAL).contains(&self.supervisor_interval)
        {
            out.push(BuildError::new(
                None,
                "supervisor_interval",
                BuildErrorKind::OutOfRange,
                format!(
                    "must be between {MIN_SUPERVISOR_INTERVAL:?} and {MAX_SUPERVISOR_INTERVAL:?}, got {:?}",
                    self.supervisor_interval
                ),
            ));
        }
        if self.pools.is_empty() {
            out.push(BuildError::new(
                None,
                "pools",
                BuildErrorKind::NoPools,
                "no pool was registered; add one with RuntimeBuilder::pool",
            ));
            return out;
        }
        for (i, p) in self.pools.iter().enumerate() {
            if let Err(why) = check_name(&p.name) {
                out.push(BuildError::new(
                    Some(&p.name),
                    "name",
                    BuildErrorKind::InvalidName,
                    format!("pool #{i} name {why}"),
                ));
            }
            if self.pools[..i].iter().any(|q| q.name == p.name) {
                out.push(BuildError::new(
                    Some(&p.name),
                    "name",
                    BuildErrorKind::DuplicateName,
                    "registered twice; pool names must be unique",
                ));
            }
            out.extend(p.problems());
        }
        if out.is_empty() {
            if let Err(e) = placement::validate(&self.pools) {
                out.push(e);
            }
        }
        out
    }
}
