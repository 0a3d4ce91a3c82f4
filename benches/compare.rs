//! Side-by-side comparison with medians and ratios, the way MEASURING.md asks for: every
//! repetition runs each pool once, interleaved, so the drift of these shared VMs hits all
//! pools alike, and ratios are taken inside a repetition.
//!
//! Matrix:
//! - `execute` throughput of empty tasks, one submitter, 1 and 2 worker threads, task shape
//!   {unboxed closure, already boxed `Box<dyn FnOnce() + Send>`}: bare crossbeam loop,
//!   bulkhead with metrics on, bulkhead with metrics off, threadpool, rayon `spawn`, tokio
//!   `spawn_blocking`. Each sample submits a batch and waits until every task has run (a
//!   padded counter), so it is submit-to-completion throughput. Boxed tasks are boxed by
//!   the submitter inside the timed loop for every pool alike (the bare loop sends the box
//!   as it is; the others take it as they take any closure, see `common::Anchor::spawn_boxed`).
//! - round trip from a caller thread, 1 worker: bare loop + crossbeam oneshot, bulkhead
//!   `try_submit` + `join`.
//!
//! - idle cost: a runtime whose workers are all parked, CPU time of the process over 5 s.
//!
//! Run: `cargo bench --bench compare` (about a minute). Prints per cell the median and range
//! over the repetitions, and the median of the per-repetition ratios to the bare loop. Under
//! `cargo test` it does one short repetition as a smoke test.
#![allow(missing_docs)]

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Anchor;
use crossbeam_utils::CachePadded;

fn batch(anchor: &Anchor, n: u64, boxed: bool) -> f64 {
    let done = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let start = Instant::now();
    for _ in 0..n {
        let d = done.clone();
        let task = move || {
            d.fetch_add(1, Ordering::Relaxed);
        };
        if boxed {
            anchor.spawn_boxed(Box::new(task));
        } else {
            anchor.spawn(task);
        }
    }
    while done.load(Ordering::Relaxed) < n {
        std::hint::spin_loop();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn round_trip_bare(anchor: &Anchor, n: u64) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        let (tx, rx) = crossbeam_channel::bounded(1);
        anchor.spawn(move || tx.send(i).unwrap());
        assert_eq!(rx.recv().unwrap(), i);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn round_trip_bulkhead(pool: &bulkhead::Pool, n: u64) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        assert_eq!(pool.try_submit(move || i).unwrap().join().unwrap(), i);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn report(name: &str, unit: &str, samples: &mut [f64], ratios: Option<&mut [f64]>) {
    let (lo, hi) = (
        samples.iter().cloned().fold(f64::MAX, f64::min),
        samples.iter().cloned().fold(f64::MIN, f64::max),
    );
    let m = median(samples);
    let ratio = ratios.map_or(String::new(), |r| format!("{:>6.2}x", median(r)));
    println!("{name:<26} {m:>12.0} {unit:<8} [{lo:>10.0} .. {hi:>10.0}]  {ratio}");
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (reps, n, rt_n) = if full {
        (11, 200_000u64, 20_000u64)
    } else {
        (1, 2_000, 200)
    };
    println!(
        "{reps} repetitions, {n} tasks per throughput sample; ratio = median over repetitions \
         of (cell / bare in the same repetition)"
    );
    let names = [
        "bare",
        "bulkhead",
        "bulkhead-nometrics",
        "threadpool",
        "rayon",
        "tokio",
    ];
    for threads in [1, 2] {
        let anchors: Vec<Anchor> = names
            .iter()
            .map(|&name| match name {
                "bulkhead-nometrics" => {
                    Anchor::bulkhead(bulkhead::Runtime::builder().metrics(false), threads)
                }
                other => Anchor::new(other, threads),
            })
            .collect();
        for boxed in [false, true] {
            // Warm every pool.
            for a in &anchors {
                batch(a, n / 10, boxed);
            }
            let mut samples = vec![Vec::new(); names.len()];
            let mut ratios = vec![Vec::new(); names.len()];
            let mut vs_threadpool = vec![Vec::new(); names.len()];
            for _ in 0..reps {
                let row: Vec<f64> = anchors.iter().map(|a| batch(a, n, boxed)).collect();
                for (i, v) in row.iter().enumerate() {
                    samples[i].push(*v);
                    ratios[i].push(v / row[0]);
                    vs_threadpool[i].push(v / row[3]);
                }
            }
            let shape = if boxed {
                "boxed Box<dyn FnOnce>"
            } else {
                "unboxed closure"
            };
            println!("\nexecute throughput, {shape}, {threads} worker thread(s), tasks/s:");
            for (i, name) in names.iter().enumerate() {
                report(name, "tasks/s", &mut samples[i], Some(&mut ratios[i]));
                if name.starts_with("bulkhead") {
                    println!(
                        "{:>26} {:>57.2}x threadpool",
                        "",
                        median(&mut vs_threadpool[i])
                    );
                }
            }
        }
    }

    let bare = Anchor::new("bare", 1);
    let rt = bulkhead::Runtime::builder()
        .pool("rt", |p| p.threads(1).queue_capacity(common::QUEUE))
        .build()
        .unwrap();
    let pool = rt.pool("rt").unwrap();
    round_trip_bare(&bare, rt_n / 10);
    round_trip_bulkhead(&pool, rt_n / 10);
    let (mut b, mut h, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let x = round_trip_bare(&bare, rt_n);
        let y = round_trip_bulkhead(&pool, rt_n);
        b.push(x);
        h.push(y);
        r.push(y / x);
    }
    println!("\nround trip (submit one task from a caller thread, wait for its result), ns:");
    report("bare + oneshot", "ns", &mut b, None);
    report("bulkhead try_submit+join", "ns", &mut h, Some(&mut r));
    drop(rt);
    drop(bare);

    // Idle cost: a runtime of 4 pools x 2 workers with the supervisor at its default 1 s,
    // all workers parked; the process's CPU time over the window, as a share of one core.
    let window = if full {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(200)
    };
    let mut b = bulkhead::Runtime::builder();
    for name in ["a", "b", "c", "d"] {
        b = b.pool(name, |p| p.threads(2));
    }
    let rt = b.build().unwrap();
    for p in rt.pools() {
        p.try_submit(|| ()).unwrap().join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(100)); // let every worker park
    let (cpu0, t0) = (process_cpu(), Instant::now());
    std::thread::sleep(window);
    let (cpu1, t1) = (process_cpu(), Instant::now());
    let share = (cpu1 - cpu0).as_secs_f64() / (t1 - t0).as_secs_f64();
    println!(
        "\nidle: 4 pools x 2 parked workers + supervisor, process CPU over {window:?}: {:.3} % of one core",
        share * 100.0
    );
}

/// User plus system CPU time of this process, from /proc/self/stat (clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: field 3 is index 0, so utime (14) and stime (15) are 11, 12.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}
