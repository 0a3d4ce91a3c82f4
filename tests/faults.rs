//! Fault injection, one test per failure mode of the bulkhead pattern. Each asserts outcomes
//! (what ran, what was refused, what was reported), never speed: the only time bounds are
//! generous hang guards, and "the caller waited no longer than it asked" with slack.
//!
//! - blocking hang: every worker of pool A is stuck; B keeps serving; A refuses at once;
//!   `shutdown_timeout` returns and names A's stuck workers;
//! - panic storm: every task of A panics (including panics from a result's or a payload's
//!   `Drop`); A's workers stay alive, B is untouched;
//! - queue flood: submitters hammer A far beyond its capacity; refused closures come back;
//!   the number of live closures stays bounded by the queue capacity;
//! - submitter death: a thread holding handles panics; its tasks still run, nothing leaks.

mod support;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bulkhead::{Runtime, TaskError};
use support::{occupy_all, wait_until, HANG_GUARD};

/// Slack allowed over a caller's requested wait before we call it a hang. Only a hang guard:
/// it never asserts speed, it catches a caller blocked far beyond what it asked for. Under
/// Miri the clock is virtual and advances with every interpreted step of every thread, so a
/// descheduled caller's overshoot there measured 3.7 s: the slack is the hang guard itself.
const WAIT_SLACK: Duration = if cfg!(miri) {
    Duration::from_secs(30)
} else {
    Duration::from_secs(2)
};

/// Counts live values: one is "live" from `new` to `drop`. `peak` keeps the high-water mark.
#[derive(Default)]
struct Census {
    live: AtomicUsize,
    peak: AtomicUsize,
    created: AtomicU64,
    dropped: AtomicU64,
}

struct Tracked(Arc<Census>);

impl Tracked {
    fn new(c: &Arc<Census>) -> Self {
        let now = c.live.fetch_add(1, Ordering::SeqCst) + 1;
        c.peak.fetch_max(now, Ordering::SeqCst);
        c.created.fetch_add(1, Ordering::SeqCst);
        Tracked(c.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Panics when dropped: a hostile result value or panic payload.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// Silences the panics these tests cause on purpose: messages containing `marker`, and
/// payloads of type [`PanicOnDrop`] (whose message the default hook cannot show).
fn quiet(marker: &'static str) {
    support::quiet_panics(marker);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<PanicOnDrop>() {
            prev(info);
        }
    }));
}

fn identity_holds(s: &bulkhead::PoolStats) -> bool {
    s.submitted == s.refused() + s.completed + s.panicked + s.expired + s.cancelled
}

#[test]
#[cfg_attr(miri, ignore)] // 10,000 tasks and timed waits: too slow under Miri
fn blocking_hang_isolates_refuses_and_is_reported() {
    const B_TASKS: u64 = if cfg!(miri) { 50 } else { 10_000 };
    let rt = Runtime::builder()
        .pool("a", |p| p.threads(2).queue_capacity(4))
        .pool("b", |p| p.threads(2).queue_capacity(64))
        .build()
        .unwrap();
    let (a, b) = (rt.pool("a").unwrap(), rt.pool("b").unwrap());

    // Every worker of A enters a task that does not return until the test lets it.
    let mut hang = occupy_all(&a);
    let queued: Vec<_> = (0..4).map(|i| a.try_submit(move || i).unwrap()).collect();

    // B completes its work while A hangs.
    let b2 = b.clone();
    let b_side = std::thread::spawn(move || {
        let mut handles = Vec::new();
        for i in 0..B_TASKS {
            handles.push(b2.submit_timeout(move || i * 2, HANG_GUARD).unwrap());
            if handles.len() == 64 {
                for (j, h) in handles.drain(..).enumerate() {
                    assert!(h.join().is_ok(), "task {j} of a batch failed");
                }
            }
        }
        for h in handles {
            h.join().unwrap();
        }
    });

    // A refuses at once: its queue is full and nobody will make room.
    for _ in 0..100 {
        let t = Instant::now();
        assert!(a.try_submit(|| 0).unwrap_err().is_full());
        assert!(a.execute(|| ()).unwrap_err().is_full());
        assert!(t.elapsed() < WAIT_SLACK, "a non-blocking refusal blocked");
    }
    let asked = Duration::from_millis(20);
    let t = Instant::now();
    let err = a.submit_timeout(|| 0, asked).unwrap_err();
    let waited = t.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert!(waited >= asked && waited < asked + WAIT_SLACK, "{waited:?}");

    b_side.join().unwrap();
    assert_eq!(b.stats().completed, B_TASKS);

    let t = Instant::now();
    let report = rt.shutdown_timeout(Duration::from_millis(100));
    assert!(t.elapsed() < HANG_GUARD, "shutdown_timeout hung");
    assert!(report.timed_out);
    let ra = &report.pools[0];
    let mut stuck: Vec<_> = ra.still_running.iter().map(|w| &*w.thread_name).collect();
    stuck.sort_unstable();
    assert_eq!(stuck, ["a-0", "a-1"], "{report}");
    assert_eq!(ra.cancelled_at_shutdown, 4);
    assert!(report.pools[1].still_running.is_empty(), "{report}");
    assert_eq!(report.pools[1].stats.completed, B_TASKS);
    for h in queued {
        assert!(h.join().unwrap_err().is_cancelled());
    }

    // Release the stuck tasks: the detached workers exit and the books balance.
    hang.open();
    wait_until("a's workers to exit", || {
        a.workers().iter().all(|w| w.exited)
    });
    let s = a.stats();
    assert!(identity_holds(&s), "{s:?}");
    assert_eq!((s.completed, s.cancelled), (2, 4), "{s:?}");
    assert_eq!(s.refused_full, 200);
    assert_eq!(s.refused_timeout, 1);
}

#[test]
fn panic_storm_leaves_workers_alive_and_neighbour_untouched() {
    const N: usize = if cfg!(miri) { 40 } else { 5_000 };
    quiet("storm");
    let rt = Runtime::builder()
        .pool("a", |p| p.threads(2).queue_capacity(64))
        .pool("b", |p| p.threads(1).queue_capacity(64))
        .build()
        .unwrap();
    let (a, b) = (rt.pool("a").unwrap(), rt.pool("b").unwrap());
    let tids_before: Vec<_> = a.workers().iter().map(|w| w.tid).collect();

    let b2 = b.clone();
    let b_side = std::thread::spawn(move || {
        (0..N)
            .map(|i| b2.submit_timeout(move || i, HANG_GUARD).unwrap())
            .collect::<Vec<_>>()
            .into_iter()
            .enumerate()
            .all(|(i, h)| h.join().unwrap() == i)
    });

    let mut handles = Vec::new();
    for i in 0..N {
        match i % 4 {
            0 => a
                .execute_timeout(move || panic!("storm {i}"), HANG_GUARD)
                .unwrap(),
            1 => handles.push(
                a.submit_timeout(move || -> u8 { panic!("storm {i}") }, HANG_GUARD)
                    .unwrap(),
            ),
            // A panic whose payload panics again when dropped, handle kept.
            2 => handles.push(
                a.submit_timeout(
                    || -> u8 { std::panic::panic_any(PanicOnDrop("storm payload")) },
                    HANG_GUARD,
                )
                .unwrap(),
            ),
            // Same, handle dropped at once: whoever lets go last drops the payload; if that
            // is this thread (the task already ran), the panic is ours and is caught here.
            _ => {
                let h = a
                    .submit_timeout(
                        || -> u8 { std::panic::panic_any(PanicOnDrop("storm payload")) },
                        HANG_GUARD,
                    )
                    .unwrap();
                if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| drop(h))) {
                    std::mem::forget(p);
                }
            }
        }
    }
    for h in handles {
        let err = h.join().unwrap_err();
        assert!(err.is_panic());
        // Dropping a payload that panics on drop is the caller's business: forget it.
        std::mem::forget(err);
    }
    assert!(b_side.join().unwrap(), "pool b returned a wrong value");

    // A's workers are the same threads as before and still serve, one task each at least.
    wait_until("a to finish the storm", || a.stats().panicked == N as u64);
    let tids_after: Vec<_> = a.workers().iter().map(|w| w.tid).collect();
    assert_eq!(tids_before, tids_after);
    let gate = occupy_all(&a); // returns only once *both* workers run a task
    drop(gate);
    rt.shutdown();
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.panicked, sa.completed), (N as u64, 2), "{sa:?}");
    assert_eq!((sb.completed, sb.panicked), (N as u64, 0), "{sb:?}");
    assert!(identity_holds(&sa) && identity_holds(&sb));
}

/// Regression: a task whose handle was dropped leaves its result to be dropped by the worker.
/// A result (or panic payload) whose `Drop` panicked unwound through the worker loop and
/// killed the worker, so a one-thread pool stopped serving for good.
#[test]
fn a_result_that_panics_on_drop_does_not_kill_the_worker() {
    quiet("hostile");
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).queue_capacity(8))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    for round in 0..2 {
        let gate = occupy_all(&pool);
        // Queued behind the gate, handles dropped before the tasks run.
        if round == 0 {
            drop(pool.try_submit(|| PanicOnDrop("hostile result")).unwrap());
        } else {
            drop(
                pool.try_submit(|| -> u8 { std::panic::panic_any(PanicOnDrop("hostile payload")) })
                    .unwrap(),
            );
        }
        drop(gate);
        let mut h = pool.try_submit(|| 7).unwrap();
        match h.join_timeout(HANG_GUARD) {
            Ok(v) => assert_eq!(v, 7),
            Err(e) => panic!("round {round}: the worker stopped serving: {e:?}"),
        }
    }
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    let s = pool.stats();
    assert_eq!((s.completed, s.panicked), (5, 1), "{s:?}");
}

#[test]
fn queue_flood_never_blocks_past_the_ask_and_stays_bounded() {
    const SUBMITTERS: usize = 4;
    const ATTEMPTS: usize = if cfg!(miri) { 30 } else { 20_000 };
    const CAPACITY: usize = 16;
    const THREADS: usize = 2;
    let rt = Runtime::builder()
        .pool("a", |p| p.threads(THREADS).queue_capacity(CAPACITY))
        .build()
        .unwrap();
    let a = rt.pool("a").unwrap();
    let census = Arc::new(Census::default());
    let ran_in_pool = Arc::new(AtomicU64::new(0));
    let ran_by_caller = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let worst_overshoot = Arc::new(parking_lot::Mutex::new(Duration::ZERO));
    let barrier = Arc::new(Barrier::new(SUBMITTERS));

    let threads: Vec<_> = (0..SUBMITTERS)
        .map(|t| {
            let (a, census, barrier) = (a.clone(), census.clone(), barrier.clone());
            let (in_pool, by_caller) = (ran_in_pool.clone(), ran_by_caller.clone());
            let (refused, worst) = (refused.clone(), worst_overshoot.clone());
            std::thread::spawn(move || {
                let mut handles = Vec::new();
                barrier.wait();
                for i in 0..ATTEMPTS {
                    let guard = Tracked::new(&census);
                    let in_pool = in_pool.clone();
                    // The closure reports where it ran: a refused closure that comes back is
                    // run by the caller, so "it came back" is checked by it having run.
                    let task = move || {
                        let _guard = guard;
                        let on_worker = std::thread::current()
                            .name()
                            .is_some_and(|n| n.starts_with("a-"));
                        if on_worker {
                            in_pool.fetch_add(1, Ordering::SeqCst);
                            // A little work, so the queue stays full.
                            std::hint::black_box((0..200u64).sum::<u64>());
                        }
                        on_worker
                    };
                    let asked = match (i + t) % 4 {
                        0 | 1 => Duration::ZERO,
                        2 => Duration::from_micros(100),
                        _ => Duration::from_millis(1),
                    };
                    let start = Instant::now();
                    let back = match (i + t) % 4 {
                        0 => a
                            .try_submit(task)
                            .map(|h| handles.push(h))
                            .err()
                            .map(|e| e.into_inner()),
                        1 => match a.execute(move || {
                            task();
                        }) {
                            Ok(()) => None,
                            Err(e) => {
                                (e.into_inner())();
                                refused.fetch_add(1, Ordering::SeqCst);
                                by_caller.fetch_add(1, Ordering::SeqCst);
                                None
                            }
                        },
                        2 => a
                            .submit_timeout(task, asked)
                            .map(|h| handles.push(h))
                            .err()
                            .map(|e| e.into_inner()),
                        _ => match a.execute_timeout(
                            move || {
                                task();
                            },
                            asked,
                        ) {
                            Ok(()) => None,
                            Err(e) => {
                                (e.into_inner())();
                                refused.fetch_add(1, Ordering::SeqCst);
                                by_caller.fetch_add(1, Ordering::SeqCst);
                                None
                            }
                        },
                    };
                    let over = start.elapsed().saturating_sub(asked);
                    {
                        let mut w = worst.lock();
                        *w = (*w).max(over);
                    }
                    if let Some(f) = back {
                        assert!(!f(), "a refused closure came back already run");
                        refused.fetch_add(1, Ordering::SeqCst);
                        by_caller.fetch_add(1, Ordering::SeqCst);
                    }
                    if handles.len() >= 256 {
                        for h in handles.drain(..) {
                            assert!(h.join().unwrap());
                        }
                    }
                }
                for h in handles {
                    assert!(h.join().unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    let s = a.stats();
    let worst = *worst_overshoot.lock();
    assert!(worst < WAIT_SLACK, "a caller waited {worst:?} past its ask");
    assert_eq!(s.submitted, (SUBMITTERS * ATTEMPTS) as u64);
    assert!(identity_holds(&s), "{s:?}");
    assert!(s.refused() > 0, "the flood never filled the queue: {s:?}");
    assert_eq!(s.refused(), refused.load(Ordering::SeqCst), "{s:?}");
    assert_eq!(s.completed, ran_in_pool.load(Ordering::SeqCst), "{s:?}");
    assert_eq!(ran_by_caller.load(Ordering::SeqCst), s.refused());
    // Every closure made was dropped exactly once, and at no time were more alive than the
    // queue holds, plus one per worker (running) and one per submitter (in hand).
    assert_eq!(census.live.load(Ordering::SeqCst), 0);
    assert_eq!(
        census.created.load(Ordering::SeqCst),
        census.dropped.load(Ordering::SeqCst)
    );
    let peak = census.peak.load(Ordering::SeqCst);
    assert!(
        peak <= CAPACITY + THREADS + SUBMITTERS,
        "{peak} closures alive at once"
    );
}

#[test]
fn submitter_death_still_runs_its_tasks_and_leaks_nothing() {
    const N: usize = if cfg!(miri) { 10 } else { 200 };
    support::quiet_panics("submitter dies");
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(2).queue_capacity(2 * N))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let census = Arc::new(Census::default());
    let ran = Arc::new(AtomicU64::new(0));
    let gate = occupy_all(&pool);

    let (p2, c2, r2) = (pool.clone(), census.clone(), ran.clone());
    let submitter = std::thread::spawn(move || {
        let mut handles = Vec::new();
        for i in 0..N {
            let (guard, ran) = (Tracked::new(&c2), r2.clone());
            let result = Tracked::new(&c2);
            handles.push(
                p2.try_submit(move || {
                    drop(guard);
                    ran.fetch_add(1, Ordering::SeqCst);
                    result // the result outlives the dead submitter's handle
                })
                .unwrap(),
            );
            let (guard, ran) = (Tracked::new(&c2), r2.clone());
            p2.execute(move || {
                drop(guard);
                ran.fetch_add(1, Ordering::SeqCst);
                if i % 2 == 0 {
                    panic!("submitter dies too: detached task {i}");
                }
            })
            .unwrap();
        }
        let _held = handles;
        panic!("submitter dies holding {N} handles");
    });
    assert!(submitter.join().is_err());
    drop(gate);
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    assert_eq!(ran.load(Ordering::SeqCst), 2 * N as u64);
    let s = pool.stats();
    assert_eq!(s.completed, (N + N / 2 + 2) as u64, "{s:?}");
    assert_eq!(s.panicked, N.div_ceil(2) as u64, "{s:?}");
    assert!(identity_holds(&s));
    // Every closure and every orphaned result was dropped exactly once.
    assert_eq!(census.live.load(Ordering::SeqCst), 0);
    assert_eq!(census.created.load(Ordering::SeqCst), 3 * N as u64);
    assert_eq!(census.dropped.load(Ordering::SeqCst), 3 * N as u64);
}

/// A handle joined from one thread while the runtime shuts down from another: whatever the
/// interleaving, the join returns with a definite outcome.
#[test]
fn join_during_abandoned_shutdown_returns() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).queue_capacity(4))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let mut gate = occupy_all(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = pool
        .try_submit(move || r.store(true, Ordering::SeqCst))
        .unwrap();
    let joiner = std::thread::spawn(move || h.join());
    rt.shutdown_timeout(Duration::from_millis(10));
    let outcome = joiner.join().unwrap();
    assert!(matches!(outcome, Err(TaskError::Cancelled)), "{outcome:?}");
    gate.open();
    wait_until("worker exit", || pool.workers()[0].exited);
    assert!(!ran.load(Ordering::SeqCst));
}
