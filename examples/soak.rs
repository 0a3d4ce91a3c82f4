//! Soak: mixed load with faults for a chosen time, then a report whose books must balance.
//!
//! ```text
//! cargo run --release --example soak -- [--seconds 60] [--submitters 4]
//! ```
//!
//! Three pools: `steady` (short tasks), `flaky` (a third of its tasks panic, queued tasks
//! expire after 2 ms), and `stuck` (tasks that sleep, so its queue stays full and shutdown
//! may have to give up on it). Submitter threads mix every submission form, cancel some
//! handles, drop others, and join the rest. At the end the runtime is shut down with a
//! timeout, and the soak prints tasks processed, each pool's outcome counts, and resident
//! memory (VmRSS) at start and end. It exits non-zero if any pool's counters do not add up
//! to its submissions, or if memory grew by more than a fixed allowance (the queues are
//! bounded, so steady-state memory must not grow with time).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead::{Runtime, TaskError};

/// Memory growth allowed between the sample after warm-up and the end, in KiB. Queues hold
/// at most a few hundred small closures; anything proportional to run time is far above this.
const RSS_ALLOWANCE_KIB: u64 = 16 * 1024;

struct Args {
    seconds: u64,
    submitters: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 60,
        submitters: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))?
                .parse()
                .map_err(|e| format!("{name}: {e}"))
        };
        match a.as_str() {
            "--seconds" => args.seconds = value("--seconds")?,
            "--submitters" => args.submitters = value("--submitters")?.clamp(1, 64) as usize,
            "-h" | "--help" => {
                println!("usage: soak [--seconds N (default 60)] [--submitters N (default 4)]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(args)
}

/// Resident set size of this process in KiB, from /proc/self/status (Linux); 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    // Panics are part of the load; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));

    let rt = Runtime::builder()
        .pool("steady", |p| p.threads(2).queue_capacity(256))
        .pool("flaky", |p| {
            p.threads(1)
                .queue_capacity(64)
                .max_queue_wait(Duration::from_millis(2))
        })
        .pool("stuck", |p| p.threads(1).queue_capacity(8))
        .build()
        .expect("valid configuration");
    let pools: Vec<_> = rt.pools().to_vec();
    let stop = Arc::new(AtomicBool::new(false));
    let run_for = Duration::from_secs(args.seconds);

    let rss_start = rss_kib();
    // The growth check compares the end with a sample taken after a warm-up (a tenth of the
    // run, at most 5 s), once thread stacks, queue slots and allocator arenas exist.
    let warm_up = (run_for / 10).min(Duration::from_secs(5));
    let mut rss_warm = None;
    let started = Instant::now();
    let submitters: Vec<_> = (0..args.submitters)
        .map(|t| {
            let (pools, stop) = (pools.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                let mut handles = Vec::with_capacity(256);
                let mut joined = [0u64; 4]; // ok, panicked, expired, cancelled
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let which = (x % 3) as usize;
                    let pool = &pools[which];
                    // The fault depends on the pool: flaky panics a third of the time, stuck
                    // sleeps, so its queue stays full.
                    let task = move || -> u64 {
                        match which {
                            1 if (x >> 16) % 3 == 0 => panic!("soak fault"),
                            2 => std::thread::sleep(Duration::from_millis(1)),
                            _ => {}
                        }
                        std::hint::black_box((0..64u64).sum())
                    };
                    match (x >> 4) % 5 {
                        0 => drop(pool.execute(move || {
                            let _ = task();
                        })),
                        1 => drop(pool.execute_timeout(
                            move || {
                                let _ = task();
                            },
                            Duration::from_micros(200),
                        )),
                        2 => {
                            if let Ok(h) = pool.submit_timeout(task, Duration::from_micros(500)) {
                                handles.push(h);
                            }
                        }
                        _ => {
                            if let Ok(h) = pool.try_submit(task) {
                                match (x >> 20) % 8 {
                                    0 => drop(h), // detached
                                    1 => {
                                        h.cancel();
                                        handles.push(h);
                                    }
                                    _ => handles.push(h),
                                }
                            }
                        }
                    }
                    if handles.len() >= 256 {
                        for h in handles.drain(..) {
                            tally(&mut joined, h.join());
                        }
                    }
                }
                for h in handles {
                    tally(&mut joined, h.join());
                }
                joined
            })
        })
        .collect();

    // Bounded: the main thread sleeps in steps and then stops everyone.
    while started.elapsed() < run_for {
        if rss_warm.is_none() && started.elapsed() >= warm_up {
            rss_warm = Some(rss_kib());
        }
        std::thread::sleep(
            Duration::from_millis(100).min(run_for.saturating_sub(started.elapsed())),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut joined = [0u64; 4];
    for s in submitters {
        let j = s.join().expect("a submitter panicked");
        for i in 0..4 {
            joined[i] += j[i];
        }
    }
    let report = rt.shutdown_timeout(Duration::from_secs(5));
    let rss_end = rss_kib();
    let rss_warm = rss_warm.unwrap_or(rss_start);

    println!(
        "soak: {:?} with {} submitters",
        started.elapsed(),
        args.submitters
    );
    let mut balanced = true;
    let mut processed = 0;
    for p in &report.pools {
        let s = &p.stats;
        let sum = s.refused() + s.completed + s.panicked + s.expired + s.shed + s.cancelled;
        processed += s.completed + s.panicked + s.expired + s.shed + s.cancelled;
        let ok = sum == s.submitted;
        balanced &= ok;
        println!(
            "  {:<7} submitted {:>9} = refused {:>9} (full {}, timeout {}, shutting down {}) \
             + completed {} + panicked {} + expired {} + cancelled {}  [{}]",
            s.name,
            s.submitted,
            s.refused(),
            s.refused_full,
            s.refused_timeout,
            s.refused_shutting_down,
            s.completed,
            s.panicked,
            s.expired,
            s.cancelled,
            if ok { "adds up" } else { "DOES NOT ADD UP" }
        );
    }
    println!(
        "  handles joined: ok {}, panicked {}, expired {}, cancelled {}",
        joined[0], joined[1], joined[2], joined[3]
    );
    println!("  tasks processed: {processed}");
    println!("  shutdown: {report}");
    println!(
        "  resident memory: start {rss_start} KiB, after warm-up {rss_warm} KiB, end {rss_end} KiB \
         (allowed growth after warm-up: {RSS_ALLOWANCE_KIB} KiB)"
    );
    let grew_too_much = rss_end > rss_warm + RSS_ALLOWANCE_KIB;
    if !balanced || grew_too_much {
        eprintln!(
            "soak: FAILED ({})",
            if balanced {
                "memory grew beyond the allowance"
            } else {
                "counters do not add up"
            }
        );
        std::process::exit(1);
    }
    println!("soak: ok");
}

fn tally(joined: &mut [u64; 4], r: Result<u64, TaskError>) {
    let i = match r {
        Ok(_) => 0,
        Err(TaskError::Panicked(_)) => 1,
        Err(TaskError::Expired { .. }) => 2,
        Err(TaskError::Cancelled) => 3,
        Err(e) => panic!("join returned {e:?}"),
    };
    joined[i] += 1;
}
