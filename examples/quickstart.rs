//! Two bulkheads side by side: a flood of slow work fills and overflows its own pool while
//! the latency-sensitive pool keeps answering.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::{Duration, Instant};

use bulkhead::Runtime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .pool("api", |p| p.threads(1).queue_capacity(64))
        .pool("reports", |p| {
            p.threads(1)
                .queue_capacity(8)
                .max_queue_wait(Duration::from_millis(500))
        })
        .build()?;
    let api = rt.pool("api")?;
    let reports = rt.pool("reports")?;

    // A flood of slow report jobs: the first few are queued, the rest refused at once and
    // handed back, so the caller decides what to do with them.
    let mut refused = 0;
    for i in 0..100 {
        let job = move || {
            std::thread::sleep(Duration::from_millis(50));
            i
        };
        if let Err(err) = reports.try_submit(job) {
            refused += 1;
            let _job_back = err.into_inner(); // retry later, run elsewhere, or drop
        }
    }
    println!("reports: refused {refused} of 100 submissions (queue capacity 8)");

    // Meanwhile the api pool answers promptly: it has its own thread and queue.
    let start = Instant::now();
    for i in 0..5 {
        let answer = api.try_submit(move || i * 2)?.join()?;
        println!("api answer {answer} after {:?}", start.elapsed());
    }

    // A panicking task is contained: the handle gets the payload, the worker goes on.
    let err = api
        .try_submit(|| -> u32 { panic!("bad request") })?
        .join()
        .unwrap_err();
    println!("api task failed: {err}");
    println!("api still serving: {}", api.try_submit(|| "yes")?.join()?);

    for s in rt.stats() {
        println!(
            "{:>8}: submitted {:>3}, completed {:>3}, panicked {}, refused {:>3}, queued {}",
            s.name,
            s.submitted,
            s.completed,
            s.panicked,
            s.refused(),
            s.queued
        );
    }
    let report = rt.shutdown_timeout(Duration::from_secs(2));
    println!("{report}");
    Ok(())
}
