//! Defaults and limits of every setting: the numbers the builder's rules and setter docs
//! refer to, and the fixed precision of the latency histograms.

use std::time::Duration;

pub use crate::buckets::{DEFAULT_LATENCY_BUCKETS, MAX_LATENCY_BUCKETS};
pub use crate::metrics::{HIGHEST_TRACKABLE, SIGNIFICANT_DIGITS};
pub use crate::placement::{MAX_NICE, MIN_NICE};

#[cfg(doc)]
use crate::{PoolBuilder, Runtime};

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

/// Default number of keys a pool's stats name ([`PoolBuilder::key_metrics`]).
pub const DEFAULT_KEY_METRICS: usize = 10;
/// The most keys a pool's stats may name.
pub const MAX_KEY_METRICS: usize = 1000;
/// The largest weight of a key in the fair order ([`PoolBuilder::key_weight`]).
pub const MAX_KEY_WEIGHT: u32 = 1_000_000;

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

/// The smallest [`cpu_limit`](crate::PoolBuilder::cpu_limit): 1 % of one CPU, the kernel's
/// smallest quota (1 ms) per the default 100 ms period. With a shorter
/// [`cpu_limit_period`](crate::PoolBuilder::cpu_limit_period) the quota (limit x period)
/// must still be at least [`MIN_CPU_QUOTA`].
pub const MIN_CPU_LIMIT: f64 = 0.01;
/// The kernel's smallest CPU quota per period.
pub const MIN_CPU_QUOTA: Duration = Duration::from_millis(1);
/// Default [`cpu_limit_period`](crate::PoolBuilder::cpu_limit_period): the kernel's own
/// default CFS bandwidth period.
pub const DEFAULT_CPU_LIMIT_PERIOD: Duration = Duration::from_millis(100);
/// The shortest [`cpu_limit_period`](crate::PoolBuilder::cpu_limit_period) the kernel takes.
pub const MIN_CPU_LIMIT_PERIOD: Duration = Duration::from_millis(1);
/// The longest [`cpu_limit_period`](crate::PoolBuilder::cpu_limit_period) the kernel takes.
pub const MAX_CPU_LIMIT_PERIOD: Duration = Duration::from_secs(1);
/// The smallest [`cpu_weight`](crate::PoolBuilder::cpu_weight) (cgroup v2's range).
pub const MIN_CPU_WEIGHT: u32 = 1;
/// The largest [`cpu_weight`](crate::PoolBuilder::cpu_weight) (cgroup v2's range).
pub const MAX_CPU_WEIGHT: u32 = 10_000;
