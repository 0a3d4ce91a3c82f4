//! A live per-pool table, printed once a second while a workload runs, for about 5 seconds.
//!
//! Three pools: `api` (short tasks at a steady rate), `batch` (a runaway: CPU-heavy tasks
//! submitted faster than it can run them, so it saturates and refuses), and `legacy` (one
//! task hangs past `stuck_after`). Events are printed as the supervisor reports them.
//!
//! Run: `cargo run --release --example metrics`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bulkhead::{Event, Runtime};

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .supervisor_interval(Duration::from_millis(250))
        .pool("api", |p| p.threads(1).queue_capacity(64))
        .pool("batch", |p| p.threads(1).queue_capacity(8))
        .pool("legacy", |p| {
            p.threads(1).stuck_after(Duration::from_millis(1500))
        })
        .on_event(|e: &Event| println!("  event: {e}"))
        .build()?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    // api: 1,000 tasks/s of 100 µs.
    let (api, s) = (rt.pool("api")?, stop.clone());
    load.push(thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let _ = api.execute(|| spin(Duration::from_micros(100)));
            thread::sleep(Duration::from_millis(1));
        }
    }));
    // batch: 5 ms tasks offered every millisecond: it saturates and refuses.
    let (batch, s) = (rt.pool("batch")?, stop.clone());
    load.push(thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let _ = batch.execute(|| spin(Duration::from_millis(5)));
            thread::sleep(Duration::from_millis(1));
        }
    }));
    // legacy: one task that hangs for 3 s.
    rt.pool("legacy")?
        .execute(|| thread::sleep(Duration::from_secs(3)))?;

    for _ in 0..5 {
        thread::sleep(Duration::from_secs(1));
        print_table(&rt);
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    println!("{}", rt.shutdown_timeout(Duration::from_secs(5)));
    Ok(())
}

fn print_table(rt: &Runtime) {
    let snap = rt.snapshot();
    println!(
        "\n{:<8} {:<10} {:>5} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10} {:>7} cpus",
        "pool",
        "health",
        "busy",
        "queue",
        "done",
        "refused",
        "stuck",
        "wait p99",
        "run p50",
        "e2e p99",
        "cpu s"
    );
    for p in &snap.pools {
        let s = &p.stats;
        let (wait, run, e2e) = p.latency.as_ref().map_or(Default::default(), |l| {
            let v = &l.last_interval;
            (v.queue_wait.p99, v.run.p50, v.end_to_end.p99)
        });
        println!(
            "{:<8} {:<10} {:>5} {:>9} {:>9} {:>8} {:>8} {:>10.1?} {:>10.1?} {:>10.1?} {:>7.2} {:?}",
            s.name,
            p.health.as_str(),
            format!("{}/{}", s.busy, s.threads),
            format!("{}/{}", s.queued, s.queue_capacity),
            s.completed,
            s.refused(),
            p.stuck.len(),
            wait,
            run,
            e2e,
            p.cpu_time.unwrap_or_default().as_secs_f64(),
            p.cpus_seen,
        );
    }
}
