//! Resident memory of a runtime of 4 pools x 8 threads, metrics on or off, and whether it
//! grows with uptime.
//!
//! ```text
//! cargo run --release --example footprint -- [on|off] [seconds, default 4]
//! ```
//!
//! Builds the runtime, runs a mix of tasks whose queue waits and run times spread over many
//! histogram buckets (empty tasks, short spins, sleeps of 10 µs to 2 ms, bursts that queue),
//! takes a snapshot (so the supervisor has read every recorder), and prints VmRSS: before
//! the runtime, after build, after the first round of load, and after `seconds` more of the
//! same load. With metrics on, the difference to metrics off is what latency recording costs;
//! the last two figures must not differ by more than noise (no growth with uptime).

use std::time::{Duration, Instant};

use bulkhead::Runtime;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

fn load(rt: &Runtime, round: u64) {
    for p in rt.pools() {
        let mut handles = Vec::new();
        for i in 0..2_000u64 {
            let k = (i + round) % 10;
            let h = p.submit_timeout(
                move || match k {
                    0..=4 => {}
                    5..=7 => {
                        let mut x = i;
                        for _ in 0..(i % 5_000) {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                        }
                        std::hint::black_box(x);
                    }
                    _ => std::thread::sleep(Duration::from_micros(10 << (i % 8))),
                },
                Duration::from_secs(10),
            );
            if let Ok(h) = h {
                handles.push(h);
            }
        }
        for h in handles {
            let _ = h.join();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let metrics = args.next().map_or(true, |a| a != "off");
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(4);
    let before = rss_kib();
    let mut b = Runtime::builder()
        .metrics(metrics)
        .supervisor_interval(Duration::from_millis(100));
    for name in ["a", "b", "c", "d"] {
        b = b.pool(name, |p| p.threads(8).queue_capacity(1024));
    }
    let rt = b.build().expect("runtime");
    let built = rss_kib();
    load(&rt, 0);
    let _ = rt.snapshot();
    let first = rss_kib();
    let t0 = Instant::now();
    let mut round = 1;
    while t0.elapsed() < Duration::from_secs(seconds) {
        load(&rt, round);
        round += 1;
    }
    let snap = rt.snapshot();
    let last = rss_kib();
    let tasks: u64 = snap.pools.iter().map(|p| p.stats.completed).sum();
    println!(
        "metrics {}: VmRSS KiB: before runtime {before}, built {built}, after first load {first}, \
         after {seconds} s more ({round} rounds, {tasks} tasks) {last}; runtime {} KiB, growth {} KiB",
        if metrics { "on" } else { "off" },
        last.saturating_sub(before),
        last as i64 - first as i64,
    );
}
