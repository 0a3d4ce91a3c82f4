//! Open-loop dispatch latency: task start minus its intended send instant.
//!
//! Matrix: pool in {bare crossbeam loop, bulkhead, threadpool, rayon `spawn`, tokio
//! `spawn_blocking`} x rate in {20k, 100k tasks/s}, 2 worker threads, empty tasks. One
//! generator thread schedules sends at fixed intervals, sleeping until shortly before each
//! send instant and spinning the rest (sleep overshoots by ~80 µs on these VMs), and each
//! task records `start - intended` into its worker thread's own HdrHistogram; histograms are
//! merged after the run. Measuring from the intended instant means a stalled pool cannot hide
//! its stall (no coordinated omission). The generator's own lateness is reported apart.
//!
//! Criterion does not fit an open-loop latency measurement, so this is a small harness of our
//! own. Run: `cargo bench --bench dispatch_latency` (3 s per cell, anchors interleaved per
//! rate); under `cargo test` it does a short smoke run.

#![allow(missing_docs)] // criterion's macros generate undocumented items

#[path = "common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Anchor, NAMES};
use hdrhistogram::Histogram;

type Shard = Arc<Mutex<Histogram<u64>>>;

static SHARDS: Mutex<Vec<Shard>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: RefCell<Option<Shard>> = const { RefCell::new(None) };
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

/// Records into the calling thread's own shard (its mutex is only contended at merge time).
fn record(nanos: u64) {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        let shard = l.get_or_insert_with(|| {
            let s = Arc::new(Mutex::new(new_hist()));
            SHARDS.lock().unwrap().push(s.clone());
            s
        });
        shard.lock().unwrap().saturating_record(nanos.max(1));
    });
}

/// Merges and resets every shard.
fn take_merged() -> Histogram<u64> {
    let mut merged = new_hist();
    for s in SHARDS.lock().unwrap().iter() {
        let mut h = s.lock().unwrap();
        merged.add(&*h).unwrap();
        h.reset();
    }
    merged
}

const SPIN_WINDOW: Duration = Duration::from_micros(200);

fn run(anchor: &Anchor, rate: u64, duration: Duration) -> (Histogram<u64>, Histogram<u64>) {
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let n = (duration.as_nanos() / period.as_nanos()) as u64;
    let warm = n / 10;
    let mut lateness = new_hist();
    let start = Instant::now() + Duration::from_millis(2);
    for i in 0..n {
        let intended = start + period * i as u32;
        let now = Instant::now();
        if intended > now + SPIN_WINDOW {
            std::thread::sleep(intended - now - SPIN_WINDOW);
        }
        while Instant::now() < intended {
            std::hint::spin_loop();
        }
        let sent = Instant::now();
        if i >= warm {
            lateness.saturating_record((sent - intended).as_nanos() as u64 + 1);
            anchor.spawn(move || record(intended.elapsed().as_nanos() as u64));
        } else {
            anchor.spawn(|| ());
        }
    }
    // Let the tail drain before merging.
    std::thread::sleep(Duration::from_millis(50));
    (take_merged(), lateness)
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let duration = if full {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(50)
    };
    println!(
        "{:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>12}",
        "rate/s", "pool", "count", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "gen late p99"
    );
    for rate in [20_000, 100_000] {
        for name in NAMES {
            let anchor = Anchor::new(name, 2);
            // Warm the pool's threads before measuring.
            run(&anchor, rate, duration / 10);
            let (h, late) = run(&anchor, rate, duration);
            println!(
                "{rate:>7} {name:>10} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1} | {:>9.1} µs",
                h.len(),
                us(&h, 0.5),
                us(&h, 0.99),
                us(&h, 0.999),
                h.max() as f64 / 1000.0,
                us(&late, 0.99)
            );
        }
    }
}
