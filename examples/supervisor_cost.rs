//! What an idle runtime's supervisor costs, and how long `Runtime::snapshot()` takes.
//!
//! Matrix: three idle runtimes, each with the default supervisor interval (1 s) and metrics on:
//!
//! - `1024-slot`: one pool of 1 thread built with `max_threads_limit(1024)` (1024 worker
//!   slots, each with its latency recorder), after 10,000 tasks;
//! - `4x8`: four fixed pools of 8 threads, after 10,000 tasks each;
//! - `1024-slot, 64 used`: the first pool resized to 64 threads, 10,000 tasks run, then
//!   resized back to 1 (so 64 slots have been used, 1 is live).
//!
//! For each it prints the CPU time the `bulkhead-supervisor` thread used over the idle period
//! (read from `/proc/self/task/<tid>/schedstat`, as a share of one core) and the median and worst
//! time of 20 `Runtime::snapshot()` calls. Linux only (it reads `/proc`).
//!
//! Run: `cargo run --release --example supervisor_cost [idle seconds, default 10]`

use std::time::{Duration, Instant};

use bulkhead::{Pool, Runtime};

/// The supervisor thread's CPU time, from `/proc`: the first field of its `schedstat`
/// (nanoseconds on the CPU), or, on a kernel without schedstat, `utime + stime` from its
/// `stat` (10 ms clock ticks).
fn supervisor_cpu() -> Option<Duration> {
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        // The kernel keeps the first 15 bytes of a thread's name.
        if comm.trim_end() != "bulkhead-superv" {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(path.join("schedstat")) {
            let nanos = text.split_whitespace().next()?.parse().ok()?;
            return Some(Duration::from_nanos(nanos));
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        // Fields 14 and 15 (utime, stime), counted from field 3 just after the comm.
        let ticks: u64 = fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?;
        // USER_HZ is 100 on every Linux ABI.
        return Some(Duration::from_millis(ticks * 10));
    }
    None
}

fn run_tasks(pool: &Pool, n: u64) {
    let target = pool.stats().completed + n;
    for _ in 0..n {
        let mut task = || {
            std::hint::black_box(0u64);
        };
        while let Err(e) = pool.execute(task) {
            task = e.into_inner();
            std::thread::yield_now();
        }
    }
    while pool.stats().completed < target {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn measure(label: &str, rt: &Runtime, idle: Duration) {
    // One snapshot first, so the first timed call does not pay for the tasks just run.
    let _ = rt.snapshot();
    let before = supervisor_cpu().expect("the supervisor thread in /proc");
    let started = Instant::now();
    std::thread::sleep(idle);
    let used = supervisor_cpu().expect("the supervisor thread in /proc") - before;
    let elapsed = started.elapsed();
    let share = used.as_secs_f64() / elapsed.as_secs_f64();
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(rt.snapshot());
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{label:<20} supervisor CPU {:>8.3} ms over {:.1} s = {:>7.3} % of a core; \
         snapshot median {:>10.1?}, worst {:>10.1?}",
        used.as_secs_f64() * 1e3,
        elapsed.as_secs_f64(),
        share * 100.0,
        times[times.len() / 2],
        times[times.len() - 1],
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let idle = Duration::from_secs(secs);

    let rt = Runtime::builder()
        .pool("wide", |p| p.threads(1).max_threads_limit(1024))
        .build()?;
    let wide = rt.pool("wide")?;
    run_tasks(&wide, 10_000);
    measure("1024-slot", &rt, idle);
    wide.set_threads(64)?;
    run_tasks(&wide, 10_000);
    wide.set_threads(1)?;
    measure("1024-slot, 64 used", &rt, idle);
    rt.shutdown();

    let mut b = Runtime::builder();
    for i in 0..4 {
        b = b.pool(format!("p{i}"), |p| p.threads(8));
    }
    let rt = b.build()?;
    for p in rt.pools() {
        run_tasks(p, 10_000);
    }
    measure("4x8", &rt, idle);
    rt.shutdown();
    Ok(())
}
