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
    /// The pool's kernel CPU cap ([`PoolBuilder::cpu_limit`](crate::PoolBuilder::cpu_limit)):
    /// its quota, whether it is in force, and the kernel's throttling counters. `None` for a
    /// pool without a cap.
    pub cpu_cap: Option<CpuCapStatus>,
    /// Latency histograms, or `None` when metrics are switched off.
    pub latency: Option<PoolLatency>,
}

/// A pool's kernel CPU cap as the snapshot saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct CpuCapStatus {
    /// CPU time the pool's workers may use together per `period` (`quota / period` is the
    /// limit in CPUs: 50 ms per 100 ms is half of one CPU).
    pub quota: Duration,
    /// The enforcement period ([`cpu_limit_period`](crate::PoolBuilder::cpu_limit_period),
    /// 100 ms unless set).
    pub period: Duration,
    /// The cgroup's weight ([`cpu_weight`](crate::PoolBuilder::cpu_weight)), if set.
    #[cfg_attr(feature = "serde", serde(default))]
    pub weight: Option<u32>,
    /// The pool's cgroup directory; `None` if it could not be created (best effort).
    pub cgroup: Option<std::path::PathBuf>,
    /// Why the cap is not in force, or not for every worker: set only with
    /// [`cpu_limit_best_effort`](crate::PoolBuilder::cpu_limit_best_effort), where the host
    /// refused (for example `"could not create the cgroup ...: Permission denied"`). `None`
    /// while every worker runs capped.
    pub uncapped: Option<String>,
    /// The kernel's counters from the cgroup's `cpu.stat`, as of this snapshot (after
    /// shutdown: as read just before the cgroup was removed); `None` while uncapped.
    pub throttling: Option<CpuThrottling>,
}

/// The kernel's CPU bandwidth counters of a capped pool (cumulative since build).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct CpuThrottling {
    /// Enforcement periods in which the pool's threads were runnable (`nr_periods`).
    pub periods: u64,
    /// Periods in which the pool used up its quota and its threads were held back
    /// (`nr_throttled`).
    pub throttled_periods: u64,
    /// How long the pool's threads were held back in total (`throttled_time` on cgroup v1,
    /// `throttled_usec` on v2).
    pub throttled_time: Duration,
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
