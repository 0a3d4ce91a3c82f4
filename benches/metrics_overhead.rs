//! The cost of latency metrics: empty-task throughput with metrics on and off.
//!
//! Matrix: metrics {off, on} x pool threads {1, 2}; one submitter thread (the bench's own),
//! queue capacity 1024, batches of 10,000 empty fire-and-forget tasks (`Pool::execute`;
//! when the queue is full, `Pool::execute_timeout` waits for room). A batch ends when the pool has counted every task.
//! Criterion reports time per batch and throughput in tasks/s.
//!
//! Run: `cargo bench --bench metrics_overhead`. The figures and their ratios are in
//! docs/BENCHMARKS.md. Under `cargo test --all-targets` each case runs once, as a smoke test.

use std::time::{Duration, Instant};

use bulkhead::{Pool, Runtime};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BATCH: u64 = 10_000;

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
                .pool("bench", |p| p.threads(threads).queue_capacity(1024))
                .build()
                .expect("bench runtime");
            let pool = rt.pool("bench").expect("bench pool");
            let label = if metrics { "metrics_on" } else { "metrics_off" };
            group.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter(|| run_batch(&pool, BATCH))
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
