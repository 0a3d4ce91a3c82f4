//! [`PoolBuilder`]: every per-pool setter, each with its default and what 0 or unset means;
//! and the plain values `build()` turns the builders into ([`PoolSettings`],
//! [`RuntimeSettings`]), with each pool setting's own validation rule.
//!
//! A new pool setting is a field of [`PoolSettings`] with its default and rule, its setter
//! here, and its line in the settings table (`table.rs`).

use std::time::Duration;

use super::limits::*;
use crate::adaptive::{LimitAlgorithm, LimitSignal};
use crate::cpuset::CpuSet;
use crate::error::{BuildError, BuildErrorKind};
use crate::events::Listeners;
use crate::hooks::{ContextPair, Hooks, PanicPolicy, WorkerThread};
use crate::keys::KeyOrder;
use crate::overload::{CodelConfig, ShedHandler, ShedTask};
use crate::placement::{CpuConfig, Placement, SchedPolicy, MAX_NICE, MIN_NICE};
use crate::sync::Arc;

/// One pool's settings as `build()` hands them to the engine: plain data, validated
/// ([`PoolSettings::problems`]) before any thread starts.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) name: String,
    pub(crate) threads: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) max_queue_wait: Option<Duration>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) thread_name: Option<String>,
    /// CPU set, placement, exclusivity and priority, applied by `placement.rs`.
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
    /// Context, lifecycle and panic hooks.
    pub(crate) hooks: Hooks,
    /// An adaptive concurrency limit and its minimum, if set.
    pub(crate) adaptive: Option<(LimitAlgorithm, usize)>,
    /// What latency the adaptive limit reacts to.
    pub(crate) adaptive_signal: LimitSignal,
    /// The most tasks one key may have in flight, if capped.
    pub(crate) key_cap: Option<usize>,
    pub(crate) key_order: KeyOrder,
    /// How many keys the stats name.
    pub(crate) key_metrics: usize,
    /// Weights of keys in the fair order, in the order they were set (a later one wins).
    pub(crate) key_weights: Vec<(String, u32)>,
}

/// The whole runtime's settings as `build()` hands them to the engine.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeSettings {
    pub(crate) pools: Vec<PoolSettings>,
    pub(crate) drop_timeout: Duration,
    pub(crate) metrics: bool,
    pub(crate) supervisor_interval: Duration,
    pub(crate) latency_buckets: Vec<Duration>,
    pub(crate) listeners: Listeners,
}

/// Configures one pool. Obtained inside [`RuntimeBuilder::pool`](super::RuntimeBuilder::pool).
///
/// Every setter consumes and returns the builder, so settings chain:
/// `|p| p.threads(2).queue_capacity(256)`.
#[derive(Debug, Clone)]
pub struct PoolBuilder(pub(crate) PoolSettings);

impl PoolSettings {
    /// The defaults of a pool named `name`.
    pub(crate) fn new(name: String) -> Self {
        PoolSettings {
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
            adaptive: None,
            adaptive_signal: LimitSignal::RunTime,
            key_cap: None,
            key_order: KeyOrder::Fair,
            key_metrics: DEFAULT_KEY_METRICS,
            key_weights: Vec::new(),
        }
    }
}

impl PoolBuilder {
    pub(crate) fn new(name: String) -> Self {
        PoolBuilder(PoolSettings::new(name))
    }

    /// The number of worker threads: a fixed size (replaces an earlier
    /// [`elastic`](PoolBuilder::elastic)).
    ///
    /// Default: [`DEFAULT_THREADS`] (1). Must be at least 1 and at most [`MAX_THREADS`];
    /// 0 is a build error. Fixed for the life of the pool unless
    /// [`max_threads_limit`](PoolBuilder::max_threads_limit) allows
    /// [resizing](crate::Pool::set_threads).
    pub fn threads(mut self, n: usize) -> Self {
        self.0.threads = n;
        self.0.max_threads = None;
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
        self.0.threads = min;
        self.0.max_threads = Some(max);
        self
    }

    /// How long a worker of an elastic pool stays idle before it exits, while the pool has
    /// more than its minimum.
    ///
    /// Default: [`DEFAULT_KEEP_ALIVE`] (10 s). From [`MIN_KEEP_ALIVE`] (1 ms) to
    /// [`MAX_KEEP_ALIVE`] (1 h). Applies to every pool that may start threads after build
    /// (elastic, with a replacement budget, or resizable).
    pub fn keep_alive(mut self, idle: Duration) -> Self {
        self.0.keep_alive = idle;
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
    /// plus one [`supervisor_interval`](crate::RuntimeBuilder::supervisor_interval) after the task
    /// started.
    pub fn replacement_budget(mut self, budget: usize) -> Self {
        self.0.replacement_budget = budget;
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
        self.0.max_threads_limit = Some(limit);
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
        self.0.queue_capacity_limit = Some(limit);
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
        self.0.queue_capacity = n;
        self
    }

    /// The longest a task may wait in the queue. A task that waited longer when a worker
    /// reaches it is not run: it resolves as [`TaskError::Expired`](crate::TaskError::Expired)
    /// and is counted as expired. Stale work is shed, not done.
    ///
    /// Default: unset, no limit. Zero is a build error (every task would expire).
    pub fn max_queue_wait(mut self, wait: Duration) -> Self {
        self.0.max_queue_wait = Some(wait);
        self
    }

    /// The stack size of each worker thread, in bytes.
    ///
    /// Default: unset, Rust's default for spawned threads (2 MiB unless `RUST_MIN_STACK`
    /// says otherwise). Must be between [`MIN_STACK_SIZE`] and [`MAX_STACK_SIZE`]; 0 is a
    /// build error.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.0.stack_size = Some(bytes);
        self
    }

    /// The prefix of the worker thread names; worker `i` is named `"{prefix}-{i}"`.
    ///
    /// Default: the pool name. On Linux the kernel keeps only the first 15 bytes of a
    /// thread name, which is what `ps -L` and `top -H` show; keep prefixes short.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.0.thread_name = Some(prefix.into());
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
        self.0.idle_spin = spin;
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
        self.0.stuck_after = threshold;
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
        self.0.codel = Some(CodelConfig { target, interval });
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
        self.0.on_shed = Some(ShedHandler(Arc::new(handler)));
        self
    }

    /// Lets the pool learn its in-flight limit (tasks admitted and not yet ended) from
    /// measured latency instead of a fixed `threads + queue_capacity`: a controller
    /// ([`LimitAlgorithm`]: AIMD, Vegas or Gradient2, after Netflix's concurrency-limits)
    /// moves the limit between `min` and the pool's maximum (its maximum threads plus queue
    /// capacity), from one sample per task ([`adaptive_signal`](Self::adaptive_signal)).
    /// Admission refuses (or a waiting submission waits) above the limit, exactly as at a
    /// full queue. The limit, each move and why, are in the pool's stats, events
    /// ([`Event::LimitChanged`](crate::Event::LimitChanged)) and metrics.
    ///
    /// Where it starts: AIMD and Vegas at the maximum (they learn downward); Gradient2 at
    /// `min` (it grows while the pool uses what it has and queued tasks start quickly), so a
    /// downstream that slows before any task has ended finds a short queue, not a full one.
    ///
    /// Default: unset, the limit is the fixed capacity and nothing is sampled. `min` must be
    /// at least 1 and at most the pool's maximum; the algorithm's parameters are checked by
    /// `build()`. Docs/OVERLOAD.md says when to use which control.
    pub fn adaptive_limit(mut self, algorithm: LimitAlgorithm, min: usize) -> Self {
        self.0.adaptive = Some((algorithm, min));
        self
    }

    /// Which latency the adaptive limit reacts to: the run time (the default; CPU work) or
    /// queue wait plus run time (blocking calls to a downstream). See [`LimitSignal`].
    pub fn adaptive_signal(mut self, signal: LimitSignal) -> Self {
        self.0.adaptive_signal = signal;
        self
    }

    /// The most tasks one key ([`Pool::key`](crate::Pool::key)) may have in flight (queued
    /// or running) in this pool: a keyed submission over it is refused at once with the
    /// closure back and [`RefusalReason::KeyCap`](crate::RefusalReason::KeyCap); other keys
    /// and unkeyed submissions are not affected. A cap below the thread count keeps workers
    /// free for other keys however hard one key floods.
    ///
    /// Default: unset, a key may take the whole pool (the fair order still interleaves
    /// keys). Must be at least 1; 0 is a build error.
    pub fn key_cap(mut self, n: usize) -> Self {
        self.0.key_cap = Some(n);
        self
    }

    /// The order in which keyed tasks are served: [`KeyOrder::Fair`] (weighted deficit
    /// round robin across keys) or [`KeyOrder::Fifo`] (arrival order). Unkeyed tasks are
    /// always served in arrival order, interleaved with keyed ones as they arrived.
    ///
    /// Default: [`KeyOrder::Fair`].
    pub fn key_order(mut self, order: KeyOrder) -> Self {
        self.0.key_order = order;
        self
    }

    /// Gives `key` a weight in the fair order: it is served up to `weight` tasks per round
    /// while other keys wait (each other key: its own weight, 1 unless set). Also settable
    /// while the pool runs ([`Pool::set_key_weight`](crate::Pool::set_key_weight)).
    ///
    /// Default: every key weighs 1. Must be between 1 and [`MAX_KEY_WEIGHT`]; otherwise
    /// `build()` fails naming the field `key_weights` and the key.
    pub fn key_weight(mut self, key: impl Into<String>, weight: u32) -> Self {
        let key = key.into();
        self.0.key_weights.retain(|(k, _)| *k != key);
        self.0.key_weights.push((key, weight));
        self
    }

    /// How many keys the pool's stats and metrics name (the most loaded by submissions);
    /// the others are summed into one row ([`PoolStats::other_keys`](crate::PoolStats)), so
    /// the number of exported series stays bounded however many keys there are.
    ///
    /// Default: [`DEFAULT_KEY_METRICS`] (10). At most [`MAX_KEY_METRICS`]; 0 sums every
    /// key into the other row.
    pub fn key_metrics(mut self, n: usize) -> Self {
        self.0.key_metrics = n;
        self
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }
}

impl PoolSettings {
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
    pub(crate) fn problems(&self) -> Vec<BuildError> {
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
        if let Some((algorithm, min)) = self.adaptive {
            let max = self.max_threads() + self.queue_capacity;
            if let Err(why) = algorithm.check() {
                range("adaptive_limit", why);
            } else if min == 0 || min > max {
                range(
                    "adaptive_limit",
                    format!(
                        "the minimum must be between 1 and the pool's maximum threads plus queue capacity ({max}), got {min}"
                    ),
                );
            }
        }
        if self.key_cap == Some(0) {
            range(
                "key_cap",
                "must be at least 1 (leave it unset for no per-key cap), got 0".to_owned(),
            );
        }
        if self.key_metrics > MAX_KEY_METRICS {
            range(
                "key_metrics",
                format!(
                    "must be at most {MAX_KEY_METRICS}, got {}",
                    self.key_metrics
                ),
            );
        }
        for (key, weight) in &self.key_weights {
            if *weight == 0 || *weight > MAX_KEY_WEIGHT {
                range(
                    "key_weights",
                    format!(
                        "the weight of key {key:?} must be between 1 and {MAX_KEY_WEIGHT}, got {weight}"
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

pub(crate) fn check_name(name: &str) -> Result<(), String> {
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

/// The CPU and priority setters of [`PoolBuilder`]; see [`CpuSet`] and `docs/CPU_SETS.md`
/// for choosing sets.
impl PoolBuilder {
    /// The CPUs this pool's workers may run on, placed by [`placement`](Self::placement)
    /// (by default [`Placement::Spread`]: every worker may run on any CPU of the set).
    ///
    /// Default: unset, every worker runs with the affinity of the thread that called
    /// `build()` (normally every CPU the process may use), including workers started later
    /// by another pool's pinned thread: a worker restores that affinity if it inherited
    /// another. Every CPU must be in
    /// [`CpuSet::available`] when `build()` runs, else it fails with
    /// [`BuildErrorKind::UnavailableCpu`] naming the CPU; an empty set is a build error.
    /// Off Linux, setting this fails the build with [`BuildErrorKind::Unsupported`].
    pub fn cpus(mut self, cpus: CpuSet) -> Self {
        self.0.cpu.cpus = Some(cpus);
        self
    }

    /// How workers are placed on the [`cpus`](Self::cpus): all on the whole set
    /// ([`Placement::Spread`]) or each pinned to one CPU in turn ([`Placement::PinEach`]).
    ///
    /// Default: unset, which means [`Placement::Spread`]. Setting a placement without a CPU
    /// set is a build error.
    pub fn placement(mut self, placement: Placement) -> Self {
        self.0.cpu.placement = Some(placement);
        self
    }

    /// Claims the pool's [`cpus`](Self::cpus) for it alone: `build()` fails with
    /// [`BuildErrorKind::OverlappingExclusive`] if any other pool of the runtime may run on
    /// one of them, including a pool with no CPU set (which may run anywhere).
    ///
    /// Default: `false`. Needs a CPU set. The claim binds this runtime's pools only: other
    /// threads of the process (the submitters, an async runtime) and other processes can
    /// still run on those CPUs; see `docs/CPU_SETS.md`.
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.0.cpu.exclusive = exclusive;
        self
    }

    /// The nice value of every worker thread, from [`MIN_NICE`] (-20, most CPU) to
    /// [`MAX_NICE`] (19, least). On Linux the nice value is per thread, so this affects only
    /// this pool's workers: a pool at 10 gets about a tenth of the CPU time of a pool at 0
    /// when both compete for a CPU.
    ///
    /// Default: unset, every worker runs with the nice value of the thread that called
    /// `build()`, also when started later by a thread with another (see
    /// [`cpus`](Self::cpus)).
    /// A value outside -20..=19 is a build error. Lowering it below the inherited value
    /// usually needs `CAP_SYS_NICE` or `RLIMIT_NICE`; if the OS refuses, `build()` fails
    /// with [`BuildErrorKind::Os`] (`EPERM`/`EACCES`). Off Linux: [`BuildErrorKind::Unsupported`].
    pub fn nice(mut self, nice: i32) -> Self {
        self.0.cpu.nice = Some(nice);
        self
    }

    /// The scheduling policy of every worker thread.
    ///
    /// Default: unset, every worker runs with the policy of the thread that called `build()`,
    /// also when started later by a thread with another
    /// (normally [`SchedPolicy::Normal`]). If the OS refuses (leaving `SCHED_IDLE` or a
    /// real-time policy needs privilege), `build()` fails with [`BuildErrorKind::Os`].
    /// Off Linux: [`BuildErrorKind::Unsupported`].
    pub fn sched_policy(mut self, policy: SchedPolicy) -> Self {
        self.0.cpu.policy = Some(policy);
        self
    }

    /// Caps the CPU time of the pool's workers together at `cpus` CPUs' worth, enforced by
    /// the kernel's CPU bandwidth control: `0.5` is half of one CPU, `2.0` two whole CPUs,
    /// whatever CPUs the workers run on. Unlike [`cpus`](Self::cpus) it needs no spare CPU
    /// to give away: a runaway pool is held to its quota even when it shares every CPU with
    /// the others. It bounds CPU time, not when the pool runs: a capped pool with as many
    /// threads as CPUs holds all of them while it has quota, which a neighbour's tail latency
    /// feels; give it fewer threads than CPUs, or pin. docs/CPU_SETS.md ("Caps vs pinning")
    /// says when to use which, with measurements.
    ///
    /// `build()` creates a cgroup for the pool under the process's own (or under
    /// [`cpu_limit_parent`](Self::cpu_limit_parent)), named `bulkhead-<pid>-<n>-<pool>`, with
    /// a quota of `cpus` x the period per period ([`cpu_limit_period`](Self::cpu_limit_period),
    /// 100 ms unless set; [`cpu_weight`](Self::cpu_weight) sets its weight) (cgroup v2
    /// `cpu.max` in a threaded
    /// subtree where the host has it, else cgroup v1 `cpu.cfs_quota_us`); each worker moves
    /// itself into it as the last step of its set-up, before the start hook. The runtime
    /// removes the cgroup at shutdown (moving any thread still in it, such as a detached
    /// worker, back to the parent); it never touches a cgroup it did not create. Threads that
    /// a task spawns inherit the cap. The snapshot's
    /// [`cpu_cap`](crate::PoolSnapshot::cpu_cap) shows the quota and the kernel's throttling
    /// counters.
    ///
    /// Default: unset, no cap. From 0.01 (the kernel's smallest quota, 1 ms per period) to
    /// the number of CPUs this process may use; anything else (NaN included) is a build
    /// error naming the pool, `cpu_limit` and the value. Where the host does not allow a
    /// cgroup (no `cpu` controller, not root and no delegated cgroup, off Linux), `build()`
    /// fails with [`BuildErrorKind::Os`] or [`BuildErrorKind::Unsupported`] saying why, unless
    /// [`cpu_limit_best_effort`](Self::cpu_limit_best_effort) is set.
    ///
    /// ```no_run
    /// // A runaway batch pool held to half of one CPU, beside an uncapped api pool.
    /// let rt = bulkhead::Runtime::builder()
    ///     .pool("api", |p| p.threads(2))
    ///     .pool("batch", |p| p.threads(2).cpu_limit(0.5))
    ///     .build()?;
    /// let snap = rt.snapshot();
    /// let cap = snap.pool("batch").unwrap().cpu_cap.as_ref().unwrap();
    /// assert_eq!(cap.quota, std::time::Duration::from_millis(50));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cpu_limit(mut self, cpus: f64) -> Self {
        self.0.cpu.cpu_limit = Some(cpus);
        self
    }

    /// With `true`, a [`cpu_limit`](Self::cpu_limit) the host does not allow leaves the pool
    /// running uncapped instead of failing `build()`; the pool's snapshot says so, and why
    /// ([`CpuCapStatus::uncapped`](crate::CpuCapStatus::uncapped)).
    ///
    /// Default: `false`: a cap that cannot be set is a build error. Needs `cpu_limit`.
    pub fn cpu_limit_best_effort(mut self, best_effort: bool) -> Self {
        self.0.cpu.cpu_limit_best_effort = best_effort;
        self
    }

    /// The cgroup directory under which the pool's [`cpu_limit`](Self::cpu_limit) cgroup is
    /// created, for example a subtree delegated to this service's user.
    ///
    /// Default: unset, the process's own `cpu` cgroup (from `/proc/self/cgroup`). It must be a
    /// cgroup v2 directory whose `cgroup.subtree_control` has `cpu`, or a cgroup v1
    /// directory of the `cpu` hierarchy; anything else fails `build()` (or, with best effort,
    /// leaves the pool uncapped). Needs `cpu_limit`.
    pub fn cpu_limit_parent(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.0.cpu.cpu_limit_parent = Some(dir.into());
        self
    }

    /// The enforcement period of the pool's [`cpu_limit`](Self::cpu_limit): the pool may use
    /// `cpu_limit x period` of CPU time in each period. A shorter period bounds how long the
    /// capped pool itself waits once throttled (at 0.5 CPU: at most 5 ms per 10 ms period,
    /// not 50 ms per 100 ms), so its own tail latency is shorter; it does not shield a
    /// neighbour: measured beside an unpinned neighbour, a 10 ms period made the
    /// neighbour's p99 worse than the default (docs/BENCHMARKS.md, "cpu-cap").
    ///
    /// Default: [`DEFAULT_CPU_LIMIT_PERIOD`] (100 ms, the kernel's). From
    /// [`MIN_CPU_LIMIT_PERIOD`] (1 ms) to [`MAX_CPU_LIMIT_PERIOD`] (1 s), and the quota
    /// (`cpu_limit x period`) must be at least [`MIN_CPU_QUOTA`] (1 ms); needs `cpu_limit`.
    /// Otherwise `build()` fails naming `cpu_limit_period`.
    pub fn cpu_limit_period(mut self, period: Duration) -> Self {
        self.0.cpu.cpu_limit_period = Some(period);
        self
    }

    /// The weight of the pool's [`cpu_limit`](Self::cpu_limit) cgroup against its sibling
    /// cgroups and the threads of its parent, while both want the CPU: below the quota, a
    /// pool of weight 10 gets a tenth of the share a default one (100) does. Written as
    /// `cpu.weight` on cgroup v2 and as `cpu.shares` (`weight x 1024 / 100`) on v1. It
    /// divides CPU time between busy groups; it does not bound a neighbour's wake-up
    /// latency (measured: no reliable gain in a neighbour's p99, docs/BENCHMARKS.md).
    ///
    /// Default: unset, the kernel's default (100; v1 1024). From [`MIN_CPU_WEIGHT`] (1) to
    /// [`MAX_CPU_WEIGHT`] (10,000); needs `cpu_limit` (the cgroup exists only for a cap).
    /// Otherwise `build()` fails naming `cpu_weight`.
    pub fn cpu_weight(mut self, weight: u32) -> Self {
        self.0.cpu.cpu_weight = Some(weight);
        self
    }
}

/// The hook and policy setters of [`PoolBuilder`].
impl PoolBuilder {
    /// Carries context (a tracing span, a request id, a locale) from the submitting thread
    /// into the pool: `capture` runs on the submitting thread and its value travels with the
    /// task; on the worker, `install` receives it just before the task and returns a guard
    /// whose `Drop` clears it just after. Install and clear run exactly once per accepted task
    /// on every path (run, panic, expiry, cancellation); the table below says on which thread
    /// for each.
    ///
    /// # Where the hooks run
    ///
    /// The *capture* hook runs on the submitting thread, inside `try_submit`, `submit_timeout`,
    /// `execute`, `execute_timeout` or [`TaskHandle::then_in`](crate::TaskHandle::then_in) (for a
    /// continuation, on the thread that calls `then_in`, not the one that later queues it). The
    /// captured value travels with the task. *Install* runs exactly once for every task that was
    /// accepted, and the guard it returns is dropped (that is the *clear*) right after, on every
    /// path:
    ///
    /// | path                                   | thread that installs and clears          | between install and clear              |
    /// |----------------------------------------|------------------------------------------|----------------------------------------|
    /// | run                                    | the worker                               | the closure                            |
    /// | panic                                  | the worker                               | the closure, up to its panic; the guard is dropped while unwinding, then the panic is caught |
    /// | expiry (`max_queue_wait`)              | the worker that reached the task         | the closure is dropped, not called     |
    /// | cancel through [`TaskHandle::cancel`](crate::TaskHandle::cancel) | the thread calling `cancel` | the closure is dropped             |
    /// | cancel by an abandoned shutdown        | the thread draining the queue (the one in `shutdown_timeout` or `drop`, or a worker or submitter that finds the queue abandoned) | the closure is dropped |
    ///
    /// On the run and panic paths the context is cleared before the task's handle resolves; on
    /// the expiry and shutdown paths the handle resolves first and the closure is dropped, in its
    /// context, just after (on the same thread); a cancel through the handle has done all three
    /// by the time `cancel` returns.
    ///
    /// A task *refused* at submission never enters the pool: its captured context is dropped
    /// without being installed, and the closure is handed back in the [`SubmitError`](crate::SubmitError).
    /// A panic in the capture hook unwinds into the submitter; a panic in the install hook is the
    /// task's panic (its closure is then dropped, not called); the guard's `Drop` must not panic
    /// (while a task unwinds, that aborts the process, as any panic during unwinding does).
    ///
    /// Default: unset, and then no per-task cost. Set, each submission costs one call of
    /// `capture` and one allocation for the captured value. Setting it again replaces it.
    ///
    /// ```
    /// use std::cell::Cell;
    /// thread_local!(static REQUEST_ID: Cell<u64> = const { Cell::new(0) });
    ///
    /// let rt = bulkhead::Runtime::builder()
    ///     .pool("api", |p| {
    ///         p.context(
    ///             || REQUEST_ID.with(Cell::get),
    ///             |id| {
    ///                 REQUEST_ID.with(|r| r.set(id));
    ///                 bulkhead::on_drop(|| REQUEST_ID.with(|r| r.set(0)))
    ///             },
    ///         )
    ///     })
    ///     .build()?;
    ///
    /// REQUEST_ID.with(|r| r.set(42));
    /// let seen = rt.pool("api")?.try_submit(|| REQUEST_ID.with(Cell::get))?.join()?;
    /// assert_eq!(seen, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn context<C, G>(
        mut self,
        capture: impl Fn() -> C + Send + Sync + 'static,
        install: impl Fn(C) -> G + Send + Sync + 'static,
    ) -> Self
    where
        C: Send + 'static,
        G: 'static,
    {
        self.0.hooks.context = Some(Arc::new(ContextPair::new(capture, install)));
        self
    }

    /// Runs `hook` on every new worker thread of the pool before it takes its first task,
    /// after its CPU placement and priority were applied (so [`WorkerThread::info`] shows the
    /// final placement). `build()` returns only after every start hook returned; a panic in
    /// the hook fails `build()` with the panic message.
    ///
    /// Default: unset. Like rayon's `start_handler` and tokio's `on_thread_start`.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let started = Arc::new(Mutex::new(Vec::new()));
    /// let log = started.clone();
    /// let rt = bulkhead::Runtime::builder()
    ///     .pool("io", move |p| {
    ///         p.threads(2).on_thread_start(move |w| log.lock().unwrap().push(w.thread_name().to_owned()))
    ///     })
    ///     .build()?;
    /// let mut names = started.lock().unwrap().clone();
    /// names.sort();
    /// assert_eq!(names, ["io-0", "io-1"]);
    /// # drop(rt);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_thread_start(
        mut self,
        hook: impl Fn(&WorkerThread<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.0.hooks.on_start = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` on each worker thread as it exits its loop at shutdown, after its last
    /// task. A graceful shutdown returns after every stop hook returned; a worker detached by
    /// a timed-out shutdown runs its hook when its task finally returns. A panic in the hook
    /// is caught and dropped. Not called for a worker whose start hook did not succeed.
    ///
    /// Default: unset.
    pub fn on_thread_stop(
        mut self,
        hook: impl Fn(&WorkerThread<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.0.hooks.on_stop = Some(Arc::new(hook));
        self
    }

    /// What to do when a task without a handle panics (see [`PanicPolicy`]).
    ///
    /// Default: [`PanicPolicy::Count`]. Tasks with a handle always hand the payload to the
    /// handle.
    pub fn panic_policy(mut self, policy: PanicPolicy) -> Self {
        self.0.hooks.panic = policy;
        self
    }
}

/// The CPU checks that concern one pool alone.
fn validate_cpu(cfg: &CpuConfig, pool: &str) -> Result<(), BuildError> {
    let err = |field, kind, msg: String| Err(BuildError::new(Some(pool), field, kind, msg));
    if !cfg!(target_os = "linux") && cfg.is_set() {
        let field = if cfg.cpus.is_some() || cfg.placement.is_some() || cfg.exclusive {
            "cpus"
        } else if cfg.nice.is_some() {
            "nice"
        } else {
            "sched_policy"
        };
        return err(
            field,
            BuildErrorKind::Unsupported,
            "CPU placement and scheduling priority are only supported on Linux; \
             leave cpus, placement, exclusive, nice and sched_policy unset on this target"
                .into(),
        );
    }
    if let Some(nice) = cfg.nice {
        if !(MIN_NICE..=MAX_NICE).contains(&nice) {
            return err(
                "nice",
                BuildErrorKind::OutOfRange,
                format!("must be between {MIN_NICE} and {MAX_NICE}, got {nice}"),
            );
        }
    }
    if let Some(limit) = cfg.cpu_limit {
        let most = CpuSet::available().map(|s| s.len()).unwrap_or(1).max(1);
        if !(MIN_CPU_LIMIT..=most as f64).contains(&limit) {
            return err(
                "cpu_limit",
                BuildErrorKind::OutOfRange,
                format!(
                    "must be between {MIN_CPU_LIMIT} (1 ms per 100 ms period) and {most} (the CPUs \
                     this process may use), got {limit}"
                ),
            );
        }
        let period = cfg.cpu_limit_period.unwrap_or(DEFAULT_CPU_LIMIT_PERIOD);
        if !(MIN_CPU_LIMIT_PERIOD..=MAX_CPU_LIMIT_PERIOD).contains(&period) {
            return err(
                "cpu_limit_period",
                BuildErrorKind::OutOfRange,
                format!(
                    "must be between {MIN_CPU_LIMIT_PERIOD:?} and {MAX_CPU_LIMIT_PERIOD:?}, got \
                     {period:?}"
                ),
            );
        }
        if period.mul_f64(limit) < MIN_CPU_QUOTA {
            return err(
                "cpu_limit_period",
                BuildErrorKind::OutOfRange,
                format!(
                    "a cap of {limit} CPUs per {period:?} is a quota of {:?}, below the kernel's \
                     smallest ({MIN_CPU_QUOTA:?}); give a longer period or a larger cpu_limit",
                    period.mul_f64(limit)
                ),
            );
        }
        if let Some(w) = cfg.cpu_weight {
            if !(MIN_CPU_WEIGHT..=MAX_CPU_WEIGHT).contains(&w) {
                return err(
                    "cpu_weight",
                    BuildErrorKind::OutOfRange,
                    format!("must be between {MIN_CPU_WEIGHT} and {MAX_CPU_WEIGHT}, got {w}"),
                );
            }
        }
        if !cfg!(target_os = "linux") && !cfg.cpu_limit_best_effort {
            return err(
                "cpu_limit",
                BuildErrorKind::Unsupported,
                "kernel CPU caps need Linux cgroups; leave cpu_limit unset on this target, or \
                 set cpu_limit_best_effort(true) to run uncapped"
                    .into(),
            );
        }
    } else if cfg.cpu_limit_best_effort
        || cfg.cpu_limit_parent.is_some()
        || cfg.cpu_limit_period.is_some()
        || cfg.cpu_weight.is_some()
    {
        let field = if cfg.cpu_limit_best_effort {
            "cpu_limit_best_effort"
        } else if cfg.cpu_limit_parent.is_some() {
            "cpu_limit_parent"
        } else if cfg.cpu_limit_period.is_some() {
            "cpu_limit_period"
        } else {
            "cpu_weight"
        };
        return err(
            field,
            BuildErrorKind::OutOfRange,
            format!("{field} needs a cpu_limit; set cpu_limit(..) too, or leave {field} unset"),
        );
    }
    match &cfg.cpus {
        Some(cpus) if cpus.is_empty() => err(
            "cpus",
            BuildErrorKind::InvalidCpus,
            "the CPU set is empty; give at least one CPU, or leave cpus unset to run \
             anywhere"
                .into(),
        ),
        None if cfg.placement.is_some() => err(
            "placement",
            BuildErrorKind::InvalidCpus,
            "a placement needs a CPU set; set cpus(..) too, for example \
             cpus(CpuSet::available()?)"
                .into(),
        ),
        None if cfg.exclusive => err(
            "exclusive",
            BuildErrorKind::InvalidCpus,
            "an exclusive claim needs a CPU set; set cpus(..) to the CPUs to claim".into(),
        ),
        _ => Ok(()),
    }
}

/// Checks every pool's CPU settings and those that concern several pools: every CPU is
/// available to the calling thread, and no pool overlaps an exclusive one. Runs before any
/// thread starts.
pub(crate) fn validate_cpus(pools: &[&PoolSettings]) -> Result<(), BuildError> {
    for p in pools {
        validate_cpu(&p.cpu, &p.name)?;
    }
    if pools.iter().all(|p| p.cpu.cpus.is_none()) {
        return Ok(());
    }
    let available = CpuSet::available().map_err(|e| {
        let msg = format!("could not read the CPUs this thread may use (sched_getaffinity): {e}");
        let pool = pools
            .iter()
            .find(|p| p.cpu.cpus.is_some())
            .map(|p| p.name.as_str());
        BuildError::new(pool, "cpus", BuildErrorKind::Os(e), msg)
    })?;
    for p in pools {
        let Some(cpus) = &p.cpu.cpus else { continue };
        if let Some(cpu) = cpus.iter().find(|c| !available.contains(*c)) {
            return Err(BuildError::new(
                Some(&p.name),
                "cpus",
                BuildErrorKind::UnavailableCpu {
                    cpu,
                    available: available.clone(),
                },
                format!(
                    "CPU {cpu} is not available to this process; the CPUs it may use are \
                     {:?} (see taskset, container cpusets and /sys/devices/system/cpu/online)",
                    available.to_string()
                ),
            ));
        }
    }
    for (i, p) in pools.iter().enumerate() {
        if !p.cpu.exclusive {
            continue;
        }
        let Some(claimed) = &p.cpu.cpus else { continue };
        for (j, q) in pools.iter().enumerate() {
            if i == j {
                continue;
            }
            // A pool without a set may run on every available CPU.
            let theirs = q.cpu.cpus.as_ref().unwrap_or(&available);
            let shared = claimed.intersection(theirs);
            if shared.is_empty() {
                continue;
            }
            let how = if q.cpu.cpus.is_some() {
                format!("whose CPUs are {:?}", theirs.to_string())
            } else {
                "which has no CPU set and so may run on any available CPU".to_owned()
            };
            return Err(BuildError::new(
                Some(&p.name),
                "exclusive",
                BuildErrorKind::OverlappingExclusive {
                    other: q.name.clone(),
                    shared: shared.clone(),
                },
                format!(
                    "claims CPUs {:?} exclusively, but pool {:?}, {how}, shares CPUs {:?}; give \
                     pool {:?} a disjoint CPU set (CpuSet::partition can split them)",
                    claimed.to_string(),
                    q.name,
                    shared.to_string(),
                    q.name,
                ),
            ));
        }
    }
    Ok(())
}
