//! Latency recording and the plain-data snapshot types the supervisor produces.
//!
//! # Recording
//!
//! Each worker owns a `LatencyRecorder`: three histograms (queue wait, run time, end to
//! end) with HdrHistogram's bucket layout, whose counts are atomics that only that worker
//! writes. Recording a value computes its bucket and bumps the count with a relaxed load and
//! store: no lock, no read-modify-write, no fence, no allocation; after the three, the worker
//! bumps its recorder's count of tasks recorded (a release store). The supervisor reads the
//! counts once per interval (and on `snapshot()`), keeps what it saw, and adds the difference
//! into real HdrHistograms: the pool's cumulative one and the open interval's. It reads the
//! buckets only of recorders whose task count moved since it last took from them, and none of
//! worker slots never used, so its cost follows the workers that record, not the slots a
//! resizable pool reserves. A worker
//! records a task before resolving its handle, so whoever joined a task and then asks for a
//! snapshot sees it counted. (An earlier version kept HdrHistograms behind a per-worker
//! mutex; the lock and unlock per task cost more than the recording itself.)
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
//! keeps nine per pool (cumulative, open interval, last interval).

mod snapshot;

pub use snapshot::{
    Health, LatencySummary, LatencyView, PoolLatency, PoolSnapshot, RuntimeSnapshot, StuckTask,
};

use crate::sync::{AtomicU64, Mutex, Ordering};
use std::time::Duration;

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

/// One worker's recorder: written by the worker once per task, read by the supervisor once
/// per interval. See the module docs.
pub(crate) struct LatencyRecorder {
    queue_wait: AtomicCounts,
    run: AtomicCounts,
    end_to_end: AtomicCounts,
    /// Tasks recorded so far. The worker stores it (release) after the three counts, so a
    /// reader that sees a value also sees the counts of that many tasks.
    recorded: AtomicU64,
    /// `recorded` as of the last [`take_into`](LatencyRecorder::take_into): a recorder whose
    /// count has not moved since is skipped without reading its buckets. Only the supervisor
    /// touches it (under its own lock).
    taken: AtomicU64,
}

impl LatencyRecorder {
    pub(crate) fn new() -> Self {
        LatencyRecorder {
            queue_wait: AtomicCounts::new(),
            run: AtomicCounts::new(),
            end_to_end: AtomicCounts::new(),
            recorded: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }

    /// Records one task that ran. Only the owning worker calls this.
    #[inline]
    pub(crate) fn record(&self, enqueued: u64, start: u64, end: u64) {
        // All three are nanoseconds on the pool's clock.
        let wait = start.saturating_sub(enqueued);
        let run = end.saturating_sub(start);
        self.queue_wait.record(wait);
        self.run.record(run);
        // enqueued <= start <= end, so end - enqueued is exactly the sum.
        self.end_to_end.record(wait.saturating_add(run));
        // Single writer; release: the counts above are visible to whoever sees this value.
        let n = self.recorded.load(Ordering::Relaxed) + 1;
        self.recorded.store(n, Ordering::Release);
    }

    /// Adds into both `a` and `b` what the worker recorded since the previous call; returns
    /// false, having read one word, if it recorded nothing since. Only the supervisor calls
    /// this (under its own lock).
    ///
    /// Nothing is lost to a task recorded while the buckets are read: its counts are handed
    /// on now or, if not yet seen, at the next call, because its count is then above `taken`.
    pub(crate) fn take_into(&self, a: &mut Latencies, b: &mut Latencies) -> bool {
        let recorded = self.recorded.load(Ordering::Acquire);
        if recorded == self.taken.load(Ordering::Relaxed) {
            return false;
        }
        self.taken.store(recorded, Ordering::Relaxed);
        self.queue_wait
            .take_into(&mut a.queue_wait, &mut b.queue_wait);
        self.run.take_into(&mut a.run, &mut b.run);
        self.end_to_end
            .take_into(&mut a.end_to_end, &mut b.end_to_end);
        true
    }
}

/// A single-writer histogram with HdrHistogram's bucket layout (1 ns to one hour, 3
/// significant digits): the worker bumps a count with a relaxed load and store (no
/// read-modify-write, no lock, no fence); the supervisor reads the counts and keeps the
/// values it saw last time, so it can hand on the difference. Counts are never reset, so
/// the two never race on a value. Memory is allocated zeroed and touched lazily.
struct AtomicCounts {
    counts: Box<[AtomicU64]>,
    /// What the supervisor read last time; only the supervisor touches it.
    seen: Mutex<Box<[u64]>>,
}

/// HdrHistogram layout for lowest value 1 and 3 significant digits: 2048 sub-buckets (half
/// count 1024, magnitude 10), unit magnitude 0.
const SUB_BUCKET_HALF_MAGNITUDE: u32 = 10;
const SUB_BUCKET_HALF: usize = 1 << SUB_BUCKET_HALF_MAGNITUDE;
const SUB_BUCKET_MASK: u64 = (2 * SUB_BUCKET_HALF as u64) - 1;

#[inline]
fn counts_index(value: u64) -> usize {
    // The bucket is how far the value's top bit sits above the first bucket's range.
    let pow2_ceiling = 64 - (value | SUB_BUCKET_MASK).leading_zeros();
    let bucket = pow2_ceiling - (SUB_BUCKET_HALF_MAGNITUDE + 1);
    let sub_bucket = (value >> bucket) as usize;
    ((bucket as usize + 1) << SUB_BUCKET_HALF_MAGNITUDE) + sub_bucket - SUB_BUCKET_HALF
}

/// The lowest value that `counts_index` maps to `index`.
fn value_at_index(index: usize) -> u64 {
    let mut bucket = (index >> SUB_BUCKET_HALF_MAGNITUDE) as i64 - 1;
    let mut sub_bucket = (index & (SUB_BUCKET_HALF - 1)) + SUB_BUCKET_HALF;
    if bucket < 0 {
        sub_bucket -= SUB_BUCKET_HALF;
        bucket = 0;
    }
    (sub_bucket as u64) << bucket
}

fn highest_trackable_nanos() -> u64 {
    nanos(HIGHEST_TRACKABLE)
}

impl AtomicCounts {
    fn new() -> Self {
        let len = counts_index(highest_trackable_nanos()) + 1;
        AtomicCounts {
            counts: (0..len).map(|_| AtomicU64::new(0)).collect(),
            seen: Mutex::new(vec![0; len].into_boxed_slice()),
        }
    }

    /// Counts one value (clamped to 1 ns ..= one hour). Single writer.
    #[inline]
    fn record(&self, value: u64) {
        let v = value.clamp(1, highest_trackable_nanos());
        let c = &self.counts[counts_index(v)];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Records into both `a` and `b` the counts added since the previous call.
    fn take_into(&self, a: &mut Histogram<u64>, b: &mut Histogram<u64>) {
        let mut seen = self.seen.lock();
        for (i, (c, s)) in self.counts.iter().zip(seen.iter_mut()).enumerate() {
            let now = c.load(Ordering::Relaxed);
            if now != *s {
                // Same layout, so this lands in the matching bucket; it cannot fail for a
                // value within the histogram's range.
                let (value, n) = (value_at_index(i), now.wrapping_sub(*s));
                let _ = a.record_n(value, n);
                let _ = b.record_n(value, n);
                *s = now;
            }
        }
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

#[cfg(test)]
mod layout_tests {
    use super::*;

    /// Our index function must agree with HdrHistogram's own bucketing, value by value.
    #[test]
    fn counts_index_matches_hdrhistogram() {
        let h = new_histogram();
        let mut values: Vec<u64> = (1..5000).collect();
        let mut v = 5000u64;
        while v < highest_trackable_nanos() {
            values.extend([v - 1, v, v + 1]);
            v = v * 3 / 2;
        }
        values.push(highest_trackable_nanos());
        for v in values {
            let i = counts_index(v);
            let low = value_at_index(i);
            assert!(h.equivalent(low, v), "value {v}: bucket starts at {low}");
            assert!(low <= v);
        }
        assert!(counts_index(highest_trackable_nanos()) < h.distinct_values());
    }

    #[test]
    fn take_into_hands_on_only_the_difference() {
        let c = AtomicCounts::new();
        let mut h = new_histogram();
        for v in [1, 10, 1000, 123_456, 7_000_000_000] {
            c.record(v);
        }
        let mut h_too = new_histogram();
        c.take_into(&mut h, &mut h_too);
        assert_eq!(h.len(), 5);
        assert_eq!(h_too.len(), 5);
        c.record(10);
        let mut h2 = new_histogram();
        c.take_into(&mut h2, &mut h_too);
        assert_eq!(h2.len(), 1);
        assert!(h2.equivalent(h2.max(), 10));
        assert_eq!(h_too.len(), 6);
    }

    #[test]
    fn a_recorder_with_nothing_new_is_skipped() {
        let r = LatencyRecorder::new();
        let (mut a, mut b) = (Latencies::new(), Latencies::new());
        assert!(!r.take_into(&mut a, &mut b));
        r.record(10, 20, 50);
        r.record(10, 20, 50);
        assert!(r.take_into(&mut a, &mut b));
        assert!(!r.take_into(&mut a, &mut b));
        for h in [&a, &b] {
            assert_eq!(h.queue_wait.len(), 2);
            assert_eq!(h.run.len(), 2);
            assert_eq!(h.end_to_end.len(), 2);
        }
    }
}
