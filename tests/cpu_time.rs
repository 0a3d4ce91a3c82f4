//! CPU time is not lost when workers leave (issue 12): a pool's reported `cpu_time` includes
//! what workers burnt before they exited at shutdown, retired as an elastic pool shrank,
//! retired after a resize down, or retired after a replacement took over their stuck task.
//!
//! Each task burns a fixed amount of CPU as measured by its own thread's CPU clock (not wall
//! time), and logs what it measured. The reported CPU time must then be at least the sum of
//! what the tasks measured (and not far above it: nothing is counted twice).
//!
//! Linux only: the tasks read their clock from `/proc/thread-self/schedstat`.
#![cfg(target_os = "linux")]

mod support;

use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use bulkhead::{Pool, Runtime};
use support::{wait_until, HANG_GUARD};

/// What each task burns, by its own thread's CPU clock.
const BURN: Duration = Duration::from_millis(150);
/// How far above the tasks' own measure the report may be: the workers' own work between
/// tasks (start-up, parking, retiring) and up to one scheduler tick per task that the tasks'
/// last reading had not yet seen. Smaller than `BURN`, so a worker counted twice fails.
const SLACK: Duration = Duration::from_millis(120);
/// Long enough that the supervisor never samples on its own during a test: what is reported
/// comes from the workers' exit accounting and from `snapshot()` alone.
const NO_TICK: Duration = Duration::from_secs(3600);

/// This thread's CPU time as the kernel has accounted it so far: the first field of
/// `/proc/thread-self/schedstat`, the same running total `CLOCK_THREAD_CPUTIME_ID` reads,
/// as of the kernel's last update of it (at most a scheduler tick behind). `None` on a
/// kernel without schedstat.
fn own_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// This thread's kernel thread id: `/proc/thread-self` links to `<pid>/task/<tid>`.
fn own_tid() -> i32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .expect("a thread id")
}

/// What the tasks burnt: (thread id, CPU time measured by the task itself).
///
/// Why the sum is a lower bound of the workers' CPU time: every reading is the kernel's
/// running total for the reading thread, and successive readings on one thread never
/// decrease, so the intervals that the tasks of one worker measured are disjoint parts of
/// that worker's total, which its thread CPU clock at exit counts in full.
#[derive(Clone, Default)]
struct Burnt(Arc<Mutex<Vec<(i32, Duration)>>>);

impl Burnt {
    /// Spins until this thread's own CPU clock has advanced by at least [`BURN`].
    fn burn(&self) {
        let start = own_cpu().expect("schedstat");
        let mut now = start;
        while now - start < BURN {
            for _ in 0..10_000 {
                std::hint::spin_loop();
            }
            now = own_cpu().expect("schedstat");
        }
        self.0.lock().unwrap().push((own_tid(), now - start));
    }

    fn total(&self) -> Duration {
        self.0.lock().unwrap().iter().map(|(_, d)| *d).sum()
    }

    /// What tasks on threads other than `tids` burnt.
    fn total_except(&self, tids: &[i32]) -> Duration {
        let burns = self.0.lock().unwrap();
        burns
            .iter()
            .filter(|(tid, _)| !tids.contains(tid))
            .map(|(_, d)| *d)
            .sum()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn schedstat_missing() -> bool {
    if own_cpu().is_none() {
        eprintln!("skipped: this kernel has no /proc/thread-self/schedstat");
        return true;
    }
    false
}

fn cpu_time(rt: &Runtime, pool: &str) -> Duration {
    // Measured on Linux (the only place these tests run): never absent.
    rt.snapshot()
        .pool(pool)
        .unwrap()
        .cpu_time
        .expect("CPU time is measured on Linux")
}

/// Runs `n` burning tasks at once, each on its own worker (they meet at a barrier before
/// burning, so the pool must have `n` workers), and waits for all of them.
fn burn_on_n_workers(pool: &Pool, n: usize, burnt: &Burnt) {
    let meet = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (meet, burnt) = (meet.clone(), burnt.clone());
            pool.try_submit(move || {
                meet.wait();
                burnt.burn();
            })
            .unwrap()
        })
        .collect();
    for mut h in handles {
        h.join_timeout(HANG_GUARD).unwrap();
    }
    assert_eq!(burnt.count(), n);
}

/// The tids of the pool's live workers.
fn live_tids(pool: &Pool) -> Vec<i32> {
    pool.workers()
        .into_iter()
        .filter(|w| !w.exited)
        .filter_map(|w| w.tid)
        .collect()
}

/// Once workers have retired (the pool is down to `live` threads), the CPU time of those
/// that left is reported while the runtime lives, and everything after shutdown.
fn check_after_retirement(rt: &Runtime, pool: &Pool, live: usize, burnt: &Burnt) {
    wait_until("workers retired", || pool.stats().threads == live);
    let retired = burnt.total_except(&live_tids(pool));
    assert!(retired >= BURN, "no burn ran on a retired worker");
    // A retired worker adds its CPU time as its thread's last act, a moment after the pool
    // stopped counting it: wait for that, bounded.
    wait_until("the retired workers' CPU time", || {
        cpu_time(rt, pool.name()) >= retired
    });
    rt.shutdown();
    check_reported(cpu_time(rt, pool.name()), burnt.total());
}

fn check_reported(reported: Duration, measured: Duration) {
    assert!(
        reported >= measured,
        "reported {reported:?} < the {measured:?} the tasks measured"
    );
    assert!(
        reported <= measured + SLACK,
        "reported {reported:?}, far above the {measured:?} the tasks measured"
    );
}

#[test]
fn cpu_time_burnt_before_shutdown_is_reported_after_it() {
    if schedstat_missing() {
        return;
    }
    let rt = Runtime::builder()
        .supervisor_interval(NO_TICK)
        .pool("p", |p| p.threads(2).idle_spin(Duration::ZERO))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let burnt = Burnt::default();
    burn_on_n_workers(&pool, 2, &burnt);
    rt.shutdown();
    check_reported(cpu_time(&rt, "p"), burnt.total());
}

#[test]
fn cpu_time_of_workers_retired_by_elastic_shrink_is_kept() {
    if schedstat_missing() {
        return;
    }
    let rt = Runtime::builder()
        .supervisor_interval(NO_TICK)
        .pool("e", |p| {
            p.elastic(1, 3)
                .keep_alive(Duration::from_millis(20))
                .idle_spin(Duration::ZERO)
        })
        .build()
        .unwrap();
    let pool = rt.pool("e").unwrap();
    let burnt = Burnt::default();
    burn_on_n_workers(&pool, 3, &burnt);
    check_after_retirement(&rt, &pool, 1, &burnt);
}

#[test]
fn cpu_time_of_workers_retired_by_resize_is_kept() {
    if schedstat_missing() {
        return;
    }
    let rt = Runtime::builder()
        .supervisor_interval(NO_TICK)
        .pool("r", |p| {
            p.threads(3).max_threads_limit(3).idle_spin(Duration::ZERO)
        })
        .build()
        .unwrap();
    let pool = rt.pool("r").unwrap();
    let burnt = Burnt::default();
    burn_on_n_workers(&pool, 3, &burnt);
    pool.set_threads(1).unwrap();
    check_after_retirement(&rt, &pool, 1, &burnt);
}

#[test]
fn cpu_time_of_a_replaced_stuck_worker_is_kept() {
    if schedstat_missing() {
        return;
    }
    // The supervisor must tick here: it is what replaces the stuck worker.
    let rt = Runtime::builder()
        .supervisor_interval(Duration::from_millis(250))
        .pool("s", |p| {
            p.threads(1)
                .replacement_budget(1)
                .stuck_after(Duration::from_millis(20))
                .idle_spin(Duration::ZERO)
        })
        .build()
        .unwrap();
    let pool = rt.pool("s").unwrap();
    let burnt = Burnt::default();
    let (p, b) = (pool.clone(), burnt.clone());
    // Stuck (off the CPU) until replaced, then burn, return, and retire.
    let mut h = pool
        .try_submit(move || {
            wait_until("a replacement", || p.stats().replacements == 1);
            b.burn();
        })
        .unwrap();
    h.join_timeout(HANG_GUARD).unwrap();
    wait_until("the replaced worker retired", || pool.stats().replaced == 0);
    check_after_retirement(&rt, &pool, 1, &burnt);
}
