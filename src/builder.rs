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
//! | `supervisor_interval` | [`MIN_SUPERVISOR_INTERVAL`] to [`MAX_SUPERVISOR_INTERVAL`] |
//!
//! A value outside its range is an error naming the pool and the setting; nothing is
//! clamped or rounded silently.

use std::time::Duration;

use crate::error::{BuildError, BuildErrorKind, UnknownPool};
use crate::events::{EventListener, Listeners};
use crate::hooks::Hooks;
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
/// The smallest `stuck_after` threshold.
pub const MIN_STUCK_AFTER: Duration = Duration::from_millis(1);
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
            hooks: Hooks::default(),
        }
    }

    /// The number of worker threads, fixed for the life of the pool.
    ///
    /// Default: [`DEFAULT_THREADS`] (1). Must be at least 1 and at most [`MAX_THREADS`];
    /// 0 is a build error.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// The capacity of the pool's bounded queue: how many tasks may wait for a worker.
    ///
    /// Default: [`DEFAULT_QUEUE_CAPACITY`] (128). At most [`MAX_QUEUE_CAPACITY`].
    ///
    /// # Queue behaviour
    ///
    /// A task is accepted only if there is room; otherwise the non-blocking submissions refuse
    /// it at once and the `*_timeout` ones wait at most their timeout. The queue never grows.
    /// **0 is allowed** and means a pure hand-off: a task is accepted only if a worker is
    /// idle and waiting for it at that moment.
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

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn thread_prefix(&self) -> &str {
        self.thread_name.as_deref().unwrap_or(&self.name)
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
        if self.threads == 0 || self.threads > MAX_THREADS {
            range(
                "threads",
                format!("must be between 1 and {MAX_THREADS}, got {}", self.threads),
            );
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
            } else if bytes.checked_mul(self.threads).is_none() {
                range(
                    "stack_size",
                    format!(
                        "{} threads of {bytes} bytes overflow the address space",
                        self.threads
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
        if self.stuck_after < MIN_STUCK_AFTER {
            range(
                "stuck_after",
                format!(
                    "must be at least {MIN_STUCK_AFTER:?}, got {:?}",
                    self.stuck_after
                ),
            );
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
            metrics: true,
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
    /// Default: `true`. With `false`, workers skip the extra clock read and the recording,
    /// and [`PoolSnapshot::latency`](crate::PoolSnapshot::latency) is `None`. The outcome
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
