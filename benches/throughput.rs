//! `execute` throughput of empty tasks, one submitter.
//!
//! Matrix: pool in {bare crossbeam loop, bulkhead (metrics as built), threadpool, rayon
//! `spawn`, tokio `spawn_blocking`} x worker threads in {1, 2}. Each measured batch submits
//! `iters` tasks that each bump one padded counter, then waits until all have run, so the
//! figure is submit-to-completion throughput, not just enqueue speed.
//!
//! Run: `cargo bench --bench throughput`. Compare ratios within one run (MEASURING.md).

#![allow(missing_docs)] // criterion's macros generate undocumented items

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Anchor, NAMES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_utils::CachePadded;

fn run_batch(anchor: &Anchor, iters: u64) -> Duration {
    let done = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let start = Instant::now();
    for _ in 0..iters {
        let d = done.clone();
        anchor.spawn(move || {
            d.fetch_add(1, Ordering::Relaxed);
        });
    }
    while done.load(Ordering::Relaxed) < iters {
        std::hint::spin_loop();
    }
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("execute_empty");
    group.throughput(Throughput::Elements(1));
    for threads in [1, 2] {
        for name in NAMES {
            let anchor = Anchor::new(name, threads);
            group.bench_with_input(BenchmarkId::new(name, threads), &anchor, |b, a| {
                b.iter_custom(|iters| run_batch(a, iters))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = throughput
}
criterion_main!(benches);
