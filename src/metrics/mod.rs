//! Latency recording and the plain-data snapshot types the supervisor produces.
//!
//! # Recording
//!
//! Each worker owns a `LatencyRecorder`: three HdrHistograms (queue wait, run time, end to
//! end) behind a per-worker `parking_lot::Mutex` that only that worker and the supervisor
//! ever lock. A worker locks it once per task that ran; the supervisor locks it once per
//! sampling interval, just long enough to swap the three histograms with empty ones (a move
//! of three small structs, not a copy of their counts). So the worker's lock is uncontended
//! except during that swap, there is no pool-wide or global lock, and recording allocates
//! nothing. The supervisor then adds what it took into the pool's cumulative histograms and
//! into the open interval, outside the worker's lock.
//!
//! hdrhistogram's own `sync` module was considered and not used: its
//! `SyncHistogram::refresh()` waits until every `Recorder` has noticed the phase change,
//! and a worker parked on an empty queue records nothing, so a refresh would stall until its
//! timeout whenever a pool is idle.
//!
//! # Range and precision
//!
//! Values are recorded in nanoseconds, 3 significant digits, from 1 ns up to
//! [`HIGHEST_TRACKABLE`] (one hour); longer values are recorded as one hour. Each histogram
//! takes about 270 KB of (lazily touched) memory; a worker has three, and the supervisor
//! keeps nine per pool (cumulative, open interval, last interval) plus three spare.

mod snapshot;

pub use snapshot::{
    Health, LatencySummary, LatencyView, PoolLatency, PoolSnapshot, RuntimeSnapshot, StuckTask,
};

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The longest latency the histograms track exactly: one hour. Longer values are recorded
/// as this value.
pub const HIGHEST_TRACKABLE: Duration = Duration::from_secs(3600);

/// Significant decimal digits every histogram keeps.
pub const SIGNIFICANT_DIGITS: u8 = 3;

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's rules (low >= 1,
    // high >= 2 * low, sigfig <= 5), so creation cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_TRACKABLE.as_nanos() as u64, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

#[inline]
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The three latency histograms of one worker, one interval, or one pool.
pub(crate) struct Latencies {
    pub(crate) queue_wait: Histogram<u64>,
    pub(crate) run: Histogram<u64>,
    pub(crate) end_to_end: Histogram<u64>,
}

impl Latencies {
    pub(crate) fn new() -> Self {
        Latencies {
            queue_wait: new_histogram(),
            run: new_histogram(),
            end_to_end: new_histogram(),
        }
    }

    /// Records one task that ran: enqueued, started, ended.
    #[inline]
    pub(crate) fn record(&mut self, enqueued: Instant, start: Instant, end: Instant) {
        let wait = nanos(start.saturating_duration_since(enqueued));
        let run = nanos(end.saturating_duration_since(start));
        self.queue_wait.saturating_record(wait);
        self.run.saturating_record(run);
        // enqueued <= start <= end, so end - enqueued is exactly the sum.
        self.end_to_end.saturating_record(wait.saturating_add(run));
    }

    /// Adds `other` into `self`. All histograms share one configuration, so adding cannot
    /// fail; should it ever, the sample is dropped rather than the supervisor stopped.
    pub(crate) fn add(&mut self, other: &Latencies) {
        let _ = self.queue_wait.add(&other.queue_wait);
        let _ = self.run.add(&other.run);
        let _ = self.end_to_end.add(&other.end_to_end);
    }

    pub(crate) fn reset(&mut self) {
        if !self.queue_wait.is_empty() {
            self.queue_wait.reset();
        }
        if !self.run.is_empty() {
            self.run.reset();
        }
        if !self.end_to_end.is_empty() {
            self.end_to_end.reset();
        }
    }

    pub(crate) fn view(&self) -> LatencyView {
        LatencyView {
            queue_wait: LatencySummary::of(&self.queue_wait),
            run: LatencySummary::of(&self.run),
            end_to_end: LatencySummary::of(&self.end_to_end),
        }
    }
}

/// One worker's recorder: written by the worker once per task, swapped out by the supervisor
/// once per interval. See the module docs.
pub(crate) struct LatencyRecorder {
    inner: parking_lot::Mutex<Latencies>,
}

impl LatencyRecorder {
    pub(crate) fn new() -> Self {
        LatencyRecorder {
            inner: parking_lot::Mutex::new(Latencies::new()),
        }
    }

    /// Records one task that ran. Only the owning worker calls this.
    #[inline]
    pub(crate) fn record(&self, enqueued: Instant, start: Instant, end: Instant) {
        self.inner.lock().record(enqueued, start, end);
    }

    /// Swaps the worker's histograms with `spare` (which must be empty), so that `spare`
    /// then holds what the worker recorded since the last swap.
    pub(crate) fn swap(&self, spare: &mut Latencies) {
        std::mem::swap(&mut *self.inner.lock(), spare);
    }
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        let at = |q: f64| Duration::from_nanos(h.value_at_quantile(q));
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean: Duration::from_nanos(h.mean().round() as u64),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_nanos(h.max()),
        }
    }
}
