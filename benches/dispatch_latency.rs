//! Open-loop dispatch latency: task start minus its intended send instant.
//!
//! Matrix: pool in {bare crossbeam loop, bulkhead, threadpool, rayon `spawn`, tokio
//! `spawn_blocking`} x rate in {20k, 100k tasks/s}, 2 worker threads, empty tasks. One
//! generator thread schedules sends at fixed intervals, sleeping until shortly before each
//! send instant and spinning the rest (sleep overshoots by ~80 µs on these VMs), and each
//! task records `start - intended` into its worker thread's own HdrHistogram; histograms are
//! merged after the run. Measuring from the intended instant means a stalled pool cannot hide
//! its stall (no coordinated omission). The generator's own lateness (actual minus intended
//! send instant) is reported apart, at p50, p99 and p99.9: a pool whose idle workers take
//! the CPU from the submitter shows it there.
//!
//! Each rate runs 3 repetitions; a repetition runs every pool once, interleaved, 2 s each.
//! Every figure is the median over the repetitions (range of p99 in brackets); `p99/best`
//! is the pool's p99 over the lowest anchor p99 (bare, threadpool, rayon, tokio) of the same
//! repetition, median over repetitions.
//!
//! Criterion does not fit an open-loop latency measurement, so this is a small harness of our
//! own. Run: `cargo bench --bench dispatch_latency` (about 70 s); under `cargo test` it does
//! a short smoke run.

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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (duration, reps) = if full {
        (Duration::from_secs(2), 3)
    } else {
        (Duration::from_millis(50), 1)
    };
    println!(
        "{:>7} {:>10} {:>8} {:>8} {:>18} {:>9} {:>8} {:>8} | {:>27}",
        "rate/s",
        "pool",
        "count",
        "p50 µs",
        "p99 µs [range]",
        "p99.9 µs",
        "max µs",
        "p99/best",
        "gen late p50/p99/p99.9 µs"
    );
    for rate in [20_000, 100_000] {
        // Per repetition, per pool: [p50, p99, p99.9, max, late p50, late p99, late p99.9].
        let mut cells = vec![vec![[0.0f64; 7]; NAMES.len()]; reps];
        let mut counts = vec![0u64; NAMES.len()];
        for row in cells.iter_mut() {
            for (i, name) in NAMES.iter().enumerate() {
                let anchor = Anchor::new(name, 2);
                // Warm the pool's threads before measuring.
                run(&anchor, rate, duration / 10);
                let (h, late) = run(&anchor, rate, duration);
                counts[i] = h.len();
                row[i] = [
                    us(&h, 0.5),
                    us(&h, 0.99),
                    us(&h, 0.999),
                    h.max() as f64 / 1000.0,
                    us(&late, 0.5),
                    us(&late, 0.99),
                    us(&late, 0.999),
                ];
            }
        }
        for (i, name) in NAMES.iter().enumerate() {
            let col = |k: usize| -> Vec<f64> { cells.iter().map(|row| row[i][k]).collect() };
            let mut ratio: Vec<f64> = (0..reps)
                .map(|r| {
                    let best = (0..NAMES.len())
                        .filter(|&j| NAMES[j] != "bulkhead")
                        .map(|j| cells[r][j][1])
                        .fold(f64::MAX, f64::min);
                    cells[r][i][1] / best
                })
                .collect();
            let p99 = col(1);
            let (lo, hi) = (
                p99.iter().cloned().fold(f64::MAX, f64::min),
                p99.iter().cloned().fold(f64::MIN, f64::max),
            );
            println!(
                "{rate:>7} {name:>10} {:>8} {:>8.1} {:>7.1} [{lo:>4.0}-{hi:>4.0}] {:>9.1} {:>8.1} {:>7.2}x | {:>8.1} {:>8.1} {:>8.1}",
                counts[i],
                median(&mut col(0)),
                median(&mut col(1)),
                median(&mut col(2)),
                median(&mut col(3)),
                median(&mut ratio),
                median(&mut col(4)),
                median(&mut col(5)),
                median(&mut col(6)),
            );
        }
    }
}
