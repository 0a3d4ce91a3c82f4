//! The cost of latency metrics: empty-task throughput with metrics on and off.
//!
//! Matrix: metrics {off, on} x pool threads {1, 2} x scenario {submit, drain}; batches of
//! 10,000 empty fire-and-forget tasks (`Pool::execute`), queue capacity 16,384.
//!
//! - `submit`: one submitter thread (the bench's own) submits the batch while the workers
//!   run it (when the queue is full, `Pool::execute_timeout` waits for room); the batch ends
//!   when the pool has counted every task. This is end-to-end throughput.
//! - `drain`: every worker is held on a gate, the batch is queued, the gate opens, and only
//!   the time until the pool has counted every task is measured: the worker loop's own cost
//!   per task, which is where metrics add theirs.
//!
//! Criterion reports time per batch and throughput in tasks/s.
//!
//! Run: `cargo bench --bench metrics_overhead`. The figures and their ratios are in
//! docs/BENCHMARKS.md. Under `cargo test --all-targets` each case runs once, as a smoke test.

use std::time::{Duration, Instant};

use bulkhead::{Pool, Runtime};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BATCH: u64 = 10_000;
/// Room for a whole batch, for the drain scenario; the submit scenario never fills it.
const QUEUE: usize = 16_384;

/// Submits `n` empty tasks and waits until the pool has run them all.
fn run_batch(pool: &Pool, n: u64) {
    let target = pool.stats().completed + n;
    for _ in 0..n {
        // Non-blocking first; when the queue is full, wait for room in the channel (spin,
        // then park) rather than hammering the queue's cache lines with refused attempts,
        // which would slow the worker and measure the contention instead of the pool.
        if let Err(e) = pool.execute(|| {}) {
            let task = e.into_inner();
            if pool.execute_timeout(task, Duration::from_secs(60)).is_err() {
                panic!("pool refused for 60 s");
            }
        }
    }
    wait_completed(pool, target);
}

/// Blocks every worker, queues `n` empty tasks, then measures only how long the workers take
/// to run them all: the worker loop's own cost per task, without the submitter.
fn drain_batch(pool: &Pool, n: u64) -> Duration {
    let target = pool.stats().completed + n + pool.threads() as u64;
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let (started_tx, started_rx) = crossbeam_channel::unbounded::<()>();
    for _ in 0..pool.threads() {
        let (rx, tx) = (release_rx.clone(), started_tx.clone());
        pool.execute(move || {
            tx.send(()).ok();
            rx.recv().ok();
        })
        .unwrap_or_else(|_| panic!("gate refused"));
    }
    for _ in 0..pool.threads() {
        started_rx.recv().expect("gate started");
    }
    for _ in 0..n {
        if pool.execute(|| {}).is_err() {
            panic!("queue too small for the batch");
        }
    }
    let start = Instant::now();
    drop(release_tx);
    wait_completed(pool, target);
    start.elapsed()
}

fn wait_completed(pool: &Pool, target: u64) {
    let guard = Instant::now();
    while pool.stats().completed < target {
        assert!(guard.elapsed() < Duration::from_secs(60), "pool stalled");
        std::thread::yield_now();
    }
}

fn metrics_overhead(c: &mut Criterion) {
    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("empty_tasks/threads={threads}"));
        group.throughput(Throughput::Elements(BATCH));
        group.sample_size(20);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        for metrics in [false, true] {
            let rt = Runtime::builder()
                .metrics(metrics)
                .pool("bench", |p| p.threads(threads).queue_capacity(QUEUE))
                .build()
                .expect("bench runtime");
            let pool = rt.pool("bench").expect("bench pool");
            let label = if metrics { "metrics_on" } else { "metrics_off" };
            group.bench_function(BenchmarkId::new("submit", label), |b| {
                b.iter(|| run_batch(&pool, BATCH))
            });
            group.bench_function(BenchmarkId::new("drain", label), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| drain_batch(&pool, BATCH)).sum())
            });
        }
        group.finish();
    }
}

mod group {
    // criterion's macro generates an undocumented `pub fn`.
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(benches, metrics_overhead);
}
criterion_main!(group::benches);
