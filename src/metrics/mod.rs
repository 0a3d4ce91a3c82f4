//! Latency recording and the plain-data snapshot types the supervisor produces.
//!
//! # Recording
//!
//! Each worker owns a `LatencyRecorder`: a ring of `RING` (4096) entries, each one task's
//! three latencies (queue wait, run time, end to end) as their bucket indices in
//! HdrHistogram's layout, packed into one word. The worker writes an entry and publishes it
//! with a release store of its head: no lock, no read-modify-write, one sequential cache line
//! per eight tasks. The ring's memory (32 KiB) is allocated at the worker's first record, so
//! reserved slots of a resizable pool cost nothing.
//!
//! The entries are consumed under the pool's `LatencySink` lock: by the supervisor once per
//! interval (and by `snapshot()`), which moves them straight into the pool's cumulative and
//! open-interval HdrHistograms; or by the worker itself when its ring is full, which folds
//! them into the sink's per-pool bucket counts (plain integers, allocated zeroed and touched
//! only where latencies fall), which the supervisor adds into its histograms and clears at
//! its next collection. No sample is dropped: a full ring is emptied before the next entry is
//! written. A worker records a task before resolving its handle, so whoever joined a task and
//! then asks for a snapshot sees it counted. A recorder whose head has not moved since the
//! last collection is skipped after two loads.
//!
//! History (issue 14): the previous recorder kept three full bucket arrays of atomic counts
//! per worker (about 0.75 MB per worker, plus the supervisor's copy of what it had seen);
//! 4 pools x 8 threads took 27-31 MB of RSS with metrics on against 3.7 MB off. (An earlier
//! version still kept HdrHistograms behind a per-worker mutex; the lock and unlock per task
//! cost more than the recording itself.)
//!
//! hdrhistogram's own `sync` module was considered and not used: its
//! `SyncHistogram::refresh()` waits until every `Recorder` has noticed the phase change,
//! and a worker parked on an empty queue records nothing, so a refresh would stall until its
//! timeout whenever a pool is idle.
//!
//! # Range and precision
//!
//! Values are recorded in nanoseconds, 3 significant digits, from 1 ns up to
//! [`HIGHEST_TRACKABLE`] (one hour); longer values are recorded as one hour. A ring keeps
//! bucket indices, so it loses no precision. Each HdrHistogram takes about 270 KB of (lazily
//! touched) memory; the supervisor keeps nine per pool (cumulative, open interval, last
//! interval), and each pool's sink three count arrays of the same size, touched only where
//! the pool's latencies fall: bounded per pool, whatever the uptime.

mod snapshot;

pub use snapshot::{
    CpuCapStatus, CpuThrottling, Health, LatencySummary, LatencyView, PoolLatency, PoolSnapshot,
    RuntimeSnapshot, StuckTask,
};

use crate::sync::{AtomicU64, Mutex, OnceLock, Ordering};
use crossbeam_utils::CachePadded;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest latency the histograms track exactly: one hour. Longer values are recorded
/// as this value.
pub const HIGHEST_TRACKABLE: Duration = Duration::from_secs(3600);

/// Significant decimal digits every histogram keeps.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A histogram with the full range (1 ns to one hour) and layout, whose count array grows
/// with the largest value recorded (auto-resize) instead of taking its ~270 KB up front: the
/// supervisor keeps nine per pool, most of which never see a value above milliseconds.
/// Recorded values are clamped to one hour, so it never grows past the full range; the
/// bucket layout does not depend on the current size.
fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's rules (low >= 1,
    // high >= 2 * low, sigfig <= 5), so creation cannot fail.
    let mut h = Histogram::new_with_bounds(1, 2048, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

/// The full-range histogram, allocated at once (tests compare layouts against it).
#[cfg(test)]
fn full_histogram() -> Histogram<u64> {
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

    /// Histogram `k`: 0 queue wait, 1 run, 2 end to end (the order of a ring entry).
    fn get_mut(&mut self, k: usize) -> &mut Histogram<u64> {
        match k {
            0 => &mut self.queue_wait,
            1 => &mut self.run,
            _ => &mut self.end_to_end,
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

/// Entries in a worker's ring: 4096 words, 32 KiB.
pub(crate) const RING: usize = 4096;
const RING_MASK: u64 = RING as u64 - 1;

/// Packs one task's three bucket indices (each below 2^16, see `counts_len`) into a word.
#[inline]
fn pack(wait: usize, run: usize, e2e: usize) -> u64 {
    wait as u64 | (run as u64) << 16 | (e2e as u64) << 32
}

#[inline]
fn unpack(entry: u64) -> [usize; 3] {
    [
        (entry & 0xffff) as usize,
        ((entry >> 16) & 0xffff) as usize,
        ((entry >> 32) & 0xffff) as usize,
    ]
}

/// The bucket index of a latency, clamped to 1 ns ..= one hour.
#[inline]
fn index_of(value: u64) -> usize {
    counts_index(value.clamp(1, highest_trackable_nanos()))
}

/// The number of buckets of one histogram (about 33,000: an index fits in 16 bits).
fn counts_len() -> usize {
    counts_index(highest_trackable_nanos()) + 1
}

/// The worker's side of a ring, on its own cache line: only the worker writes it.
struct Producer {
    /// Entries written so far (release: the entries before it are visible to a consumer).
    head: AtomicU64,
    /// The last value of `tail` the worker read, so that it reads the consumers' word only
    /// when the ring looks full.
    tail_seen: AtomicU64,
}

/// One worker's recorder: a single-producer ring of packed bucket indices, consumed under
/// its pool's [`LatencySink`] lock. See the module docs.
pub(crate) struct LatencyRecorder {
    ring: OnceLock<Box<[AtomicU64]>>,
    producer: CachePadded<Producer>,
    /// Entries consumed so far; written only under the sink's lock (release: a consumer's
    /// reads of those entries come before the worker overwrites them).
    tail: CachePadded<AtomicU64>,
}

impl LatencyRecorder {
    fn new() -> Self {
        LatencyRecorder {
            ring: OnceLock::new(),
            producer: CachePadded::new(Producer {
                head: AtomicU64::new(0),
                tail_seen: AtomicU64::new(0),
            }),
            tail: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Records one task that ran. Only the owning worker calls this.
    #[inline]
    fn record(&self, enqueued: u64, start: u64, end: u64, counts: &Mutex<SinkCounts>) {
        // All three are nanoseconds on the pool's clock.
        let wait = start.saturating_sub(enqueued);
        let run = end.saturating_sub(start);
        // enqueued <= start <= end, so end - enqueued is exactly the sum.
        let entry = pack(
            index_of(wait),
            index_of(run),
            index_of(wait.saturating_add(run)),
        );
        let ring = self.ring.get_or_init(new_ring);
        let head = self.producer.head.load(Ordering::Relaxed);
        if head - self.producer.tail_seen.load(Ordering::Relaxed) >= RING as u64 {
            self.make_room(head, counts);
        }
        ring[(head & RING_MASK) as usize].store(entry, Ordering::Relaxed);
        // Single writer; release: the entry is visible to whoever sees this head.
        self.producer.head.store(head + 1, Ordering::Release);
    }

    /// The ring looked full: re-reads the consumers' tail and, if it is still full, empties
    /// the ring into the pool's bucket counts itself.
    #[cold]
    #[inline(never)]
    fn make_room(&self, head: u64, counts: &Mutex<SinkCounts>) {
        let mut tail = self.tail.load(Ordering::Acquire);
        if head - tail >= RING as u64 {
            let mut guard = counts.lock();
            let sink = &mut *guard;
            let buckets = sink.buckets.get_or_insert_with(|| {
                let n = counts_len();
                // Zeroed allocations: pages are touched only where latencies fall.
                [vec![0u64; n], vec![0u64; n], vec![0u64; n]]
            });
            self.consume(&mut |entry| {
                for (h, i) in buckets.iter_mut().zip(unpack(entry)) {
                    h[i] += 1;
                }
            });
            sink.pending = true;
            tail = self.tail.load(Ordering::Relaxed);
        }
        self.producer.tail_seen.store(tail, Ordering::Relaxed);
    }

    /// Hands every published entry to `f` and frees its place. Callers hold the sink's lock,
    /// so there is one consumer at a time. Returns false, having read two words, if there
    /// was nothing new.
    fn consume(&self, f: &mut dyn FnMut(u64)) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.producer.head.load(Ordering::Acquire);
        if head == tail {
            return false;
        }
        let Some(ring) = self.ring.get() else {
            return false;
        };
        for i in tail..head {
            f(ring[(i & RING_MASK) as usize].load(Ordering::Relaxed));
        }
        self.tail.store(head, Ordering::Release);
        true
    }
}

fn new_ring() -> Box<[AtomicU64]> {
    (0..RING).map(|_| AtomicU64::new(0)).collect()
}

/// What full rings were emptied into, per pool: bucket counts of the three histograms.
#[derive(Default)]
struct SinkCounts {
    /// Allocated (zeroed) at the first overflow.
    buckets: Option<[Vec<u64>; 3]>,
    /// Whether any count may be non-zero.
    pending: bool,
}

/// A pool's latency recording: one ring per worker slot, and the bucket counts full rings
/// are emptied into. The lock is taken once per supervisor collection and by a worker whose
/// ring is full (at most once per `RING` tasks); it is per pool, so pools never wait for
/// each other.
pub(crate) struct LatencySink {
    recorders: Box<[LatencyRecorder]>,
    counts: Mutex<SinkCounts>,
}

impl LatencySink {
    /// Recorders for `slots` worker slots; no ring is allocated until its worker records.
    pub(crate) fn new(slots: usize) -> Self {
        LatencySink {
            recorders: (0..slots).map(|_| LatencyRecorder::new()).collect(),
            counts: Mutex::new(SinkCounts::default()),
        }
    }

    /// Records one task that ran on worker `index`. Only that worker calls this.
    #[inline]
    pub(crate) fn record(&self, index: usize, enqueued: u64, start: u64, end: u64) {
        self.recorders[index].record(enqueued, start, end, &self.counts);
    }

    /// Adds into both `a` and `b` what the pool's workers recorded since the previous call,
    /// reading only the recorders of slots `used` admits; returns how many recorders had
    /// something new. Only the supervisor calls this (under its own lock).
    ///
    /// Nothing is lost to a task recorded meanwhile: its entry is published after the head
    /// was read, and is consumed at the next call (or by its worker, into the counts).
    pub(crate) fn take_into(
        &self,
        used: impl Fn(usize) -> bool,
        a: &mut Latencies,
        b: &mut Latencies,
    ) -> usize {
        let mut guard = self.counts.lock();
        let mut read = 0;
        for (i, r) in self.recorders.iter().enumerate() {
            if !used(i) {
                continue;
            }
            let mut add = |entry: u64| {
                for (k, idx) in unpack(entry).into_iter().enumerate() {
                    let value = value_at_index(idx);
                    // Same layout, so this lands in the matching bucket; it cannot fail for
                    // a value within the histogram's range.
                    let _ = a.get_mut(k).record(value);
                    let _ = b.get_mut(k).record(value);
                }
            };
            if r.consume(&mut add) {
                read += 1;
            }
        }
        let sink = &mut *guard;
        if std::mem::take(&mut sink.pending) {
            if let Some(buckets) = &mut sink.buckets {
                for (k, h) in buckets.iter_mut().enumerate() {
                    for (idx, n) in h.iter_mut().enumerate() {
                        if *n != 0 {
                            let value = value_at_index(idx);
                            let _ = a.get_mut(k).record_n(value, *n);
                            let _ = b.get_mut(k).record_n(value, *n);
                            *n = 0;
                        }
                    }
                }
            }
        }
        read
    }
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
        let h = full_histogram();
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
    fn take_into_hands_on_what_was_recorded_once() {
        let sink = LatencySink::new(2);
        let (mut a, mut b) = (Latencies::new(), Latencies::new());
        // The last is two hours: recorded as one.
        for v in [1, 10, 1000, 123_456, 7_200_000_000_000] {
            sink.record(0, 0, 0, v);
        }
        assert_eq!(sink.take_into(|_| true, &mut a, &mut b), 1);
        assert_eq!((a.run.len(), b.run.len()), (5, 5));
        // Clamped to one hour.
        assert!(a.run.equivalent(a.run.max(), highest_trackable_nanos()));
        sink.record(1, 0, 0, 10);
        let mut a2 = Latencies::new();
        assert_eq!(sink.take_into(|_| true, &mut a2, &mut b), 1);
        assert_eq!(a2.run.len(), 1);
        assert!(a2.run.equivalent(a2.run.max(), 10));
        assert_eq!(b.run.len(), 6);
    }

    #[test]
    fn a_recorder_with_nothing_new_is_skipped() {
        let sink = LatencySink::new(1);
        let (mut a, mut b) = (Latencies::new(), Latencies::new());
        assert_eq!(sink.take_into(|_| true, &mut a, &mut b), 0);
        sink.record(0, 10, 20, 50);
        sink.record(0, 10, 20, 50);
        assert_eq!(sink.take_into(|_| true, &mut a, &mut b), 1);
        assert_eq!(sink.take_into(|_| true, &mut a, &mut b), 0);
        for h in [&a, &b] {
            assert_eq!(h.queue_wait.len(), 2);
            assert_eq!(h.run.len(), 2);
            assert_eq!(h.end_to_end.len(), 2);
            assert!(h.end_to_end.equivalent(h.end_to_end.max(), 40));
        }
    }

    /// A worker that records more than its ring holds between two collections loses
    /// nothing: the overflow goes into the pool's counts, at the same precision.
    #[test]
    fn a_full_ring_spills_into_the_pool_counts_without_loss() {
        let sink = LatencySink::new(1);
        let n = 3 * RING as u64 + 17;
        for i in 0..n {
            sink.record(0, 0, i % 7, 1000 + i);
        }
        let (mut a, mut b) = (Latencies::new(), Latencies::new());
        sink.take_into(|_| true, &mut a, &mut b);
        let mut exact = new_histogram();
        for i in 0..n {
            exact.record(1000 + i - i % 7).unwrap();
        }
        assert_eq!(a.run.len(), n);
        assert_eq!(a.end_to_end.len(), n);
        for q in [0.0, 0.5, 0.99, 1.0] {
            assert_eq!(
                a.run.value_at_quantile(q),
                exact.value_at_quantile(q),
                "quantile {q}"
            );
        }
        // Taken once: nothing left for the next collection.
        let mut again = Latencies::new();
        assert_eq!(sink.take_into(|_| true, &mut again, &mut b), 0);
        assert_eq!(again.run.len(), 0);
        assert_eq!(b.run.len(), n);
    }

    /// The footprint of a worker's recording: its ring, at most 64 KiB.
    #[test]
    fn a_recorder_fits_in_64_kib() {
        let ring = RING * std::mem::size_of::<AtomicU64>();
        let fixed = std::mem::size_of::<LatencyRecorder>();
        assert!(ring + fixed <= 64 * 1024, "{ring} + {fixed} bytes");
    }
}
