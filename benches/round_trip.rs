//! Round trip from a caller thread: submit one empty task and wait for its result.
//!
//! Matrix: {bulkhead `try_submit` + `join`, bare crossbeam loop + crossbeam oneshot
//! (`bounded(1)`) for the result} x 1 worker thread. The target is bulkhead at most 1.3x
//! the bare round trip.
//!
//! Run: `cargo bench --bench round_trip`.

#![allow(missing_docs)] // criterion's macros generate undocumented items

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::Anchor;
use criterion::{criterion_group, criterion_main, Criterion};

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    let bare = Anchor::new("bare", 1);
    group.bench_function("bare_oneshot", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            bare.spawn(move || tx.send(1u64).unwrap());
            rx.recv().unwrap()
        })
    });
    let rt = bulkhead::Runtime::builder()
        .pool("rt", |p| p.threads(1).queue_capacity(common::QUEUE))
        .build()
        .unwrap();
    let pool = rt.pool("rt").unwrap();
    group.bench_function("bulkhead_try_submit_join", |b| {
        b.iter(|| pool.try_submit(|| 1u64).unwrap().join().unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = round_trip
}
criterion_main!(benches);
