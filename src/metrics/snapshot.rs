//! The plain-data snapshot of a runtime: what the supervisor saw, as values that can be
//! cloned, compared, printed, and (with the `serde` feature) serialized.

use std::fmt;
use std::time::Duration;

use crate::buckets::LatencyHistograms;
use crate::stats::PoolStats;

/// Everything the supervisor knows about a runtime, from
/// [`Runtime::snapshot`](crate::Runtime::snapshot). See docs/METRICS.md for each field's
/// meaning and unit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RuntimeSnapshot {
    /// Time since the runtime was built.
    pub uptime: Duration,
    /// The supervisor's sampling interval.
    pub interval: Duration,
    /// Whether latency histograms are recorded ([`RuntimeBuilder::metrics`](crate::RuntimeBuilder::metrics)).
    pub metrics_enabled: bool,
    /// One entry per pool, in registration order.
    pub pools: Vec<PoolSnapshot>,
}

impl RuntimeSnapshot {
    /// The snapshot of the pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolSnapshot> {
        self.pools.iter().find(|p| p.stats.name == name)
    }
}

/// One pool as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PoolSnapshot {
    /// Counters per outcome and per refusal reason, queue length and busy workers, read when
    /// the snapshot was taken.
    pub stats: PoolStats,
    /// Workers not running a task (`threads - busy`).
    pub idle: usize,
    /// The pool's health; see [`Health`] for the rules.
    pub health: Health,
    /// The pool's threshold past which a running task counts as stuck.
    pub stuck_after: Duration,
    /// Tasks running longer than `stuck_after` now, one per worker.
    pub stuck: Vec<StuckTask>,
    /// CPU time (user + system) consumed by every worker thread the pool has had: the exact
    /// time of workers that have exited (each adds its own thread CPU clock as it leaves),
    /// plus the live workers' time as of the last `/proc` read (resolution: one clock tick,
    /// 10 ms on Linux). See docs/METRICS.md.
    ///
    /// `None` when nothing was measured: off Linux, or where `/proc` cannot be read (under
    /// Miri, in some sandboxes). Prometheus then gets no `bulkhead_cpu_seconds_total`
    /// sample for the pool rather than a false zero.
    pub cpu_time: Option<Duration>,
    /// The CPUs on which the supervisor has seen the pool's workers, sorted. Sampled: it is
    /// the CPU each worker last ran on at each supervisor tick, so a CPU used only briefly
    /// between two samples may be missing.
    pub cpus_seen: Vec<usize>,
    /// Latency histograms, or `None` when metrics are switched off.
    pub latency: Option<PoolLatency>,
}

/// A task running longer than its pool's `stuck_after` threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct StuckTask {
    /// The name of the worker thread running it.
    pub worker: String,
    /// How long it has been running.
    pub running_for: Duration,
}

/// A pool's latency, over its whole life and over the last closed sampling interval.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PoolLatency {
    /// Every task that ran since the runtime started (up to this snapshot).
    pub cumulative: LatencyView,
    /// Tasks that ended during the last interval the supervisor closed.
    pub last_interval: LatencyView,
    /// The length of that interval (about the sampling interval; zero before the first).
    pub last_interval_length: Duration,
    /// Every task that ran since the runtime started, as cumulative buckets with the
    /// runtime's bounds ([`RuntimeBuilder::latency_buckets`](crate::RuntimeBuilder::latency_buckets)):
    /// the Prometheus histograms, which add up across instances and windows.
    pub buckets: LatencyHistograms,
}

/// The three latencies of a set of tasks that ran (completed or panicked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LatencyView {
    /// From submission (enqueue) to the moment a worker started the task.
    pub queue_wait: LatencySummary,
    /// From start to end of the task's closure.
    pub run: LatencySummary,
    /// From submission to end: `queue_wait + run`.
    pub end_to_end: LatencySummary,
}

/// Quantiles of one latency histogram. All zero when `count` is zero. Values are exact to
/// 3 significant digits (each is the highest value equivalent to the recorded one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LatencySummary {
    /// Number of values recorded.
    pub count: u64,
    /// Mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest value.
    pub max: Duration,
}

/// A pool's health, derived at each sample by the first rule that applies:
///
/// | state          | rule                                                                  |
/// |----------------|-----------------------------------------------------------------------|
/// | `Stuck`        | at least one task has run longer than the pool's `stuck_after`        |
/// | `ShuttingDown` | the runtime began shutting down                                       |
/// | `Saturated`    | every worker is busy and the queue is full, or tasks were refused because the queue was full (`full` or `timeout`) since the previous supervisor sample |
/// | `Healthy`      | none of the above                                                     |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Health {
    /// Serving within its capacity.
    Healthy,
    /// At capacity: new work is, or is about to be, refused.
    Saturated,
    /// A task is running longer than `stuck_after`.
    Stuck,
    /// Shutdown began; no new work is taken.
    ShuttingDown,
}

impl Health {
    /// Every state, in the order of the rules.
    pub const ALL: [Health; 4] = [
        Health::Stuck,
        Health::ShuttingDown,
        Health::Saturated,
        Health::Healthy,
    ];

    /// A short lowercase label, stable for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Saturated => "saturated",
            Health::Stuck => "stuck",
            Health::ShuttingDown => "shutting_down",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
