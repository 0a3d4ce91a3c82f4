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
//! | `cpu_limit`        | [`MIN_CPU_LIMIT`] to the CPUs in [`CpuSet::available`], if set; Linux unless best effort |
//! | `cpu_limit_best_effort`, `cpu_limit_parent` | only with `cpu_limit`                |
//! | `cpu_limit_period` | [`MIN_CPU_LIMIT_PERIOD`] to [`MAX_CPU_LIMIT_PERIOD`], quota (`cpu_limit` x period) at least [`MIN_CPU_QUOTA`]; only with `cpu_limit` |
//! | `cpu_weight`       | [`MIN_CPU_WEIGHT`] to [`MAX_CPU_WEIGHT`]; only with `cpu_limit` |
//! | `key_cap`          | 1 or more, if set                                             |
//! | `key_weights`      | each weight 1 to [`MAX_KEY_WEIGHT`]                           |
//! | `key_metrics`      | 0 to [`MAX_KEY_METRICS`]                                      |
//! | `stuck_after`      | [`MIN_STUCK_AFTER`] or more                                   |
//! | `threads`, `elastic` | `1 <= min <= max <= ` [`MAX_THREADS`]                       |
//! | `keep_alive`       | [`MIN_KEEP_ALIVE`] to [`MAX_KEEP_ALIVE`]                      |
//! | `replacement_budget` | 0 to [`MAX_THREADS`]                                        |
//! | `max_threads_limit` | the maximum thread count to [`MAX_THREADS`], if set          |
//! | `queue_capacity_limit` | `queue_capacity` (at least 1) to [`MAX_QUEUE_CAPACITY`], if set |
//! | `codel`            | target and interval in (0, [`MAX_CODEL_DURATION`]], target < interval, if set |
//! | `supervisor_interval` | [`MIN_SUPERVISOR_INTERVAL`] to [`MAX_SUPERVISOR_INTERVAL`] |
//! | `latency_buckets`  | 1 to [`MAX_LATENCY_BUCKETS`] bounds, above zero, strictly increasing |
//!
//! A value outside its range is an error naming the pool and the setting; nothing is
//! clamped or rounded silently.

//!
//! # Layout
//!
//! - `pool.rs`: [`PoolBuilder`], every per-pool setter, and the plain, validated values
//!   `build()` hands the engine (`PoolSettings`, `RuntimeSettings`), with each pool
//!   setting's own rule;
//! - `limits.rs`: defaults and limits;
//! - `table.rs`: the settings table, every setting that can be given by name (key ->
//!   setter), which the configuration file, the environment and [`PoolBuilder::set`] read;
//! - this file: [`RuntimeBuilder`], the cross-pool checks, and `build()`.
//!
//! The engine reads only the settings values: nothing below this module imports the
//! builder API.

pub mod limits;
pub(crate) mod pool;
pub(crate) mod table;

use std::time::Duration;

pub(crate) use limits::*;
pub use pool::PoolBuilder;
pub use table::{parse_duration, pool_settings, runtime_settings, SettingError};

use crate::error::{BuildError, BuildErrorKind, UnknownPool};
use crate::events::{EventListener, Listeners};
use crate::runtime::Runtime;
#[cfg(doc)]
use crate::{
    placement::{MAX_NICE, MIN_NICE},
    CpuSet,
};
use pool::{check_name, validate_cpus, RuntimeSettings};

impl Runtime {
    /// Starts configuring a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }
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
    pub(crate) latency_buckets: Vec<Duration>,
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
            latency_buckets: DEFAULT_LATENCY_BUCKETS.to_vec(),
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
        match self.pools.iter().position(|p| p.0.name == name) {
            Some(i) => {
                let p = self.pools.remove(i);
                self.pools.insert(i, configure(p));
                Ok(self)
            }
            None => Err(UnknownPool {
                name: name.to_owned(),
                known: self.pools.iter().map(|p| p.0.name.clone()).collect(),
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

    /// The upper bounds of the latency buckets that [`Runtime::snapshot`] counts and
    /// [`RuntimeSnapshot::to_prometheus`](crate::RuntimeSnapshot::to_prometheus) exports as
    /// the `le` buckets of the `bulkhead_queue_wait_seconds`, `bulkhead_run_seconds` and
    /// `bulkhead_end_to_end_seconds` histograms (a `+Inf` bucket is always added).
    ///
    /// Default: [`DEFAULT_LATENCY_BUCKETS`], 50 µs to 30 s in a 1-2.5-5 series. From 1 to
    /// [`MAX_LATENCY_BUCKETS`] bounds, each above zero, strictly increasing; anything else is
    /// a build error. The bounds only decide how the exact histograms are cut up at
    /// snapshot time: they cost nothing per task, and every instance of a fleet must use the
    /// same ones for `histogram_quantile` to add them up. Without `metrics(true)` there are
    /// no histograms to cut.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ms = Duration::from_millis;
    /// let rt = bulkhead::Runtime::builder()
    ///     .latency_buckets([ms(1), ms(10), ms(100), ms(1000)])
    ///     .pool("api", |p| p)
    ///     .build()?;
    /// rt.pool("api")?.try_submit(|| ())?.join()?;
    /// let text = rt.snapshot().to_prometheus();
    /// assert!(text.contains(r#"bulkhead_run_seconds_bucket{pool="api",le="0.01"} 1"#));
    /// assert!(text.contains(r#"bulkhead_run_seconds_bucket{pool="api",le="+Inf"} 1"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn latency_buckets(mut self, bounds: impl IntoIterator<Item = Duration>) -> Self {
        self.latency_buckets = bounds.into_iter().collect();
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
        self.listeners.0.push(crate::sync::Arc::new(listener));
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
        Runtime::start(self.into_settings())
    }

    /// The plain settings the engine reads (valid once `problems()` is empty).
    fn into_settings(self) -> RuntimeSettings {
        RuntimeSettings {
            pools: self.pools.into_iter().map(|p| p.0).collect(),
            drop_timeout: self.drop_timeout,
            metrics: self.metrics,
            supervisor_interval: self.supervisor_interval,
            latency_buckets: self.latency_buckets,
            listeners: self.listeners,
        }
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
        if let Err(why) = crate::buckets::check_bounds(&self.latency_buckets) {
            out.push(BuildError::new(
                None,
                "latency_buckets",
                BuildErrorKind::OutOfRange,
                why,
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
        let pools: Vec<_> = self.pools.iter().map(|b| &b.0).collect();
        for (i, p) in pools.iter().enumerate() {
            if let Err(why) = check_name(&p.name) {
                out.push(BuildError::new(
                    Some(&p.name),
                    "name",
                    BuildErrorKind::InvalidName,
                    format!("pool #{i} name {why}"),
                ));
            }
            if pools[..i].iter().any(|q| q.name == p.name) {
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
            if let Err(e) = validate_cpus(&pools) {
                out.push(e);
            }
        }
        out
    }
}
