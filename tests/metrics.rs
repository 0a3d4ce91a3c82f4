//! The supervisor and its metrics: exact outcome counts, histogram counts, queue depth at
//! capacity, stuck tasks, events, health, metrics switched off, configuration errors.
//!
//! Workers are blocked with channels, never with sleeps that hope; waits are bounded by a
//! hang guard only.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bulkhead::{Event, Health, RefusalReason, Runtime};
use support::{block_worker, block_worker_counted, quiet_panics, wait_until, EventLog};

const TICK: Duration = Duration::from_millis(10);

#[test]
fn outcome_counts_are_exact_and_histograms_count_tasks_that_ran() {
    let log = EventLog::default();
    let rt = Runtime::builder()
        .supervisor_interval(TICK)
        .pool("acc", |p| p.threads(1).queue_capacity(2))
        .pool("exp", |p| {
            // The blocker below may itself expire on a busy machine: it is counted.
            p.threads(1)
                .queue_capacity(8)
                .max_queue_wait(Duration::from_millis(50))
        })
        .on_event(log.listener())
        .build()
        .unwrap();
    let acc = rt.pool("acc").unwrap();
    let exp = rt.pool("exp").unwrap();

    // 10 completed, 3 panicked.
    for _ in 0..10 {
        acc.try_submit(|| ()).unwrap().join().unwrap();
    }
    for _ in 0..3 {
        assert!(acc.try_submit(|| panic!("boom")).unwrap().join().is_err());
    }

    // Block the worker, fill the queue, then 4 refusals because full and 2 after waiting.
    let release = block_worker(&acc);
    let queued_a = acc.try_submit(|| ()).unwrap();
    let queued_b = acc.try_submit(|| ()).unwrap();
    for _ in 0..4 {
        assert!(acc.try_submit(|| ()).unwrap_err().is_full());
    }
    for _ in 0..2 {
        let e = acc
            .submit_timeout(|| (), Duration::from_millis(1))
            .unwrap_err();
        assert_eq!(e.reason(), RefusalReason::Timeout);
    }
    // The supervisor sees the queue at capacity while the pool is blocked.
    log.wait_for(
        "saturated",
        |e| matches!(e, Event::HealthChanged { pool, to: Health::Saturated, .. } if pool == "acc"),
    );
    let snap = rt.snapshot();
    let p = snap.pool("acc").unwrap();
    assert_eq!(p.stats.queued, p.stats.queue_capacity);
    assert_eq!((p.stats.busy, p.idle), (1, 0));
    assert_eq!(p.health, Health::Saturated);
    // One queued task cancelled through its handle: it keeps its slot until reached.
    assert!(queued_b.cancel());
    release.send(()).unwrap();
    queued_a.join().unwrap();

    // 3 expired: they wait behind a blocked worker longer than max_queue_wait (50 ms).
    let (release, blockers_expired) = block_worker_counted(&exp);
    for _ in 0..3 {
        exp.execute(|| ()).unwrap();
    }
    // They cannot be reached before this sleep ends: sleeping longer can only make expiry
    // more certain.
    std::thread::sleep(Duration::from_millis(100));
    release.send(()).unwrap();
    wait_until("expiries counted", || {
        exp.stats().expired == 3 + blockers_expired
    });
    wait_until("acc quiet", || {
        acc.stats().finished() == acc.stats().accepted()
    });

    let report = rt.shutdown();
    assert!(report.is_clean());
    for _ in 0..2 {
        let e = acc.try_submit(|| ()).unwrap_err();
        assert_eq!(e.reason(), RefusalReason::ShuttingDown);
    }

    let snap = rt.snapshot();
    let a = &snap.pool("acc").unwrap().stats;
    // 10 + 3 + blocker + 2 queued + 4 full + 2 timeout + 2 after shutdown
    assert_eq!(a.submitted, 24);
    assert_eq!(a.completed, 12); // 10, the blocker, queued_a
    assert_eq!(a.panicked, 3);
    assert_eq!(a.cancelled, 1);
    assert_eq!(a.expired, 0);
    assert_eq!(
        (a.refused_full, a.refused_timeout, a.refused_shutting_down),
        (4, 2, 2)
    );
    let e = &snap.pool("exp").unwrap().stats;
    assert_eq!(
        (e.submitted, e.completed, e.expired),
        (4 + blockers_expired, 1, 3 + blockers_expired)
    );

    // Histograms count exactly the tasks that ran: completed + panicked.
    let lat = snap.pool("acc").unwrap().latency.as_ref().unwrap();
    let ran = a.completed + a.panicked;
    assert_eq!(lat.cumulative.queue_wait.count, ran);
    assert_eq!(lat.cumulative.run.count, ran);
    assert_eq!(lat.cumulative.end_to_end.count, ran);
    let lat = snap.pool("exp").unwrap().latency.as_ref().unwrap();
    assert_eq!(lat.cumulative.run.count, 1);
    // The blocker ran for at least as long as the test held it.
    let run = lat.cumulative.run;
    assert!(run.max >= Duration::from_millis(100), "{run:?}");
    assert!(run.p50 <= run.max && run.mean <= run.max);
}

#[test]
fn listener_sees_each_event_kind() {
    let log = EventLog::default();
    let rt = Runtime::builder()
        .supervisor_interval(TICK)
        .pool("ev", |p| {
            // The task meant to expire waits behind a blocker until it is reported stuck,
            // so at least stuck_after (200 ms) > max_queue_wait (100 ms); other tasks start
            // at once.
            p.threads(1)
                .queue_capacity(1)
                .max_queue_wait(Duration::from_millis(100))
                .stuck_after(Duration::from_millis(200))
        })
        .on_event(log.listener())
        .build()
        .unwrap();
    let pool = rt.pool("ev").unwrap();

    // Without this, the default hook captures a backtrace inside the task (RUST_BACKTRACE=1):
    // on a loaded machine that can keep the panicking task past stuck_after, and its Stuck
    // event would be taken for the blocker's below.
    quiet_panics("listener test");
    pool.execute(|| panic!("listener test")).unwrap();
    log.wait_for("panicked", |e| {
        matches!(e, Event::Panicked { count: 1, .. })
    });

    // Only a Stuck event about the blocker counts below: the panic above can itself look
    // stuck while the panic hook prints a backtrace on a loaded machine.
    let from = log.events().len();
    let release = block_worker(&pool);
    pool.execute(|| ()).unwrap(); // will expire
    assert!(pool.execute(|| ()).unwrap_err().is_full());
    log.wait_for("refused", |e| {
        matches!(
            e,
            Event::Refused {
                reason: RefusalReason::Full,
                count: 1,
                ..
            }
        )
    });
    let stuck = log.wait_for_from(from, "stuck", |e| matches!(e, Event::Stuck { .. }));
    match &stuck {
        Event::Stuck {
            pool,
            worker,
            running_for,
        } => {
            assert_eq!((pool.as_str(), worker.as_str()), ("ev", "ev-0"));
            assert!(*running_for > Duration::from_millis(200));
        }
        _ => unreachable!(),
    }
    release.send(()).unwrap();
    log.wait_for_from(
        from,
        "recovered",
        |e| matches!(e, Event::Recovered { worker, .. } if worker == "ev-0"),
    );
    log.wait_for("expired", |e| matches!(e, Event::Expired { count: 1, .. }));
    log.wait_for("healthy again", |e| {
        matches!(
            e,
            Event::HealthChanged {
                to: Health::Healthy,
                ..
            }
        )
    });

    rt.shutdown();
    assert!(pool.execute(|| ()).is_err());
    // Events from after shutdown's last tick are not delivered; the refusal is still counted.
    assert_eq!(pool.stats().refused_shutting_down, 1);
    assert!(log.events().iter().all(|e| e.pool() == "ev"));
    // Each stuck task is reported once (counted from the blocker on: see above).
    let stucks = log
        .events()
        .iter()
        .skip(from)
        .filter(|e| matches!(e, Event::Stuck { .. }))
        .count();
    assert_eq!(stucks, 1);
}

#[test]
fn stuck_task_is_reported_with_its_worker_name() {
    let rt = Runtime::builder()
        .supervisor_interval(TICK)
        .pool("slow", |p| {
            p.threads(2)
                .thread_name("slw")
                .stuck_after(Duration::from_millis(20))
        })
        .build()
        .unwrap();
    let pool = rt.pool("slow").unwrap();
    let release = block_worker(&pool);
    wait_until("stuck in snapshot", || {
        !rt.snapshot().pool("slow").unwrap().stuck.is_empty()
    });
    let snap = rt.snapshot();
    let p = snap.pool("slow").unwrap();
    assert_eq!(p.health, Health::Stuck);
    assert_eq!(p.stuck.len(), 1);
    assert!(p.stuck[0].worker.starts_with("slw-"), "{:?}", p.stuck);
    assert!(p.stuck[0].running_for > Duration::from_millis(20));
    assert_eq!(p.stuck_after, Duration::from_millis(20));
    release.send(()).unwrap();
    wait_until("not stuck", || {
        rt.snapshot().pool("slow").unwrap().stuck.is_empty()
    });
}

#[test]
fn cpu_time_and_cpus_seen_are_reported() {
    let rt = Runtime::builder()
        .supervisor_interval(TICK)
        .pool("spin", |p| p.threads(1))
        .build()
        .unwrap();
    let pool = rt.pool("spin").unwrap();
    // Burn CPU until the supervisor has accounted at least 50 ms of it (bounded).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    pool.execute(move || {
        let t = std::time::Instant::now();
        while !s.load(std::sync::atomic::Ordering::Relaxed) && t.elapsed() < support::HANG_GUARD {
            std::hint::spin_loop();
        }
    })
    .unwrap();
    wait_until("cpu time accounted", || {
        rt.snapshot()
            .pool("spin")
            .unwrap()
            .cpu_time
            .unwrap_or_default()
            >= Duration::from_millis(50)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let snap = rt.snapshot();
    let p = snap.pool("spin").unwrap();
    assert!(!p.cpus_seen.is_empty());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(p.cpus_seen.iter().all(|&c| c < cpus.max(1024)));
}

/// Issue 12: the supervisor skips slots never used and recorders with nothing new. In a pool
/// that reserves 1024 slots, every task is still counted exactly once, while snapshots and
/// 10 ms ticks take from the recorders as the tasks are recorded, and after workers retired.
#[test]
fn histograms_count_every_task_of_a_1024_slot_pool() {
    let rt = Runtime::builder()
        .supervisor_interval(TICK)
        .pool("wide", |p| {
            p.threads(1).max_threads_limit(1024).queue_capacity(1024)
        })
        .build()
        .unwrap();
    let pool = rt.pool("wide").unwrap();
    pool.set_threads(16).unwrap();
    const PER_SUBMITTER: u64 = 2_000;
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for _ in 0..PER_SUBMITTER {
                    let mut task = || {
                        std::hint::black_box(1u64);
                    };
                    while let Err(e) = pool.execute(task) {
                        task = e.into_inner();
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let n = 4 * PER_SUBMITTER;
    let counted = |rt: &Runtime| {
        let snap = rt.snapshot();
        let l = snap.pool("wide").unwrap().latency.clone().unwrap();
        let c = &l.cumulative;
        (c.queue_wait.count, c.run.count, c.end_to_end.count)
    };
    // Snapshots race with the recording on purpose.
    while !submitters.iter().all(|s| s.is_finished()) {
        let (q, r, e) = counted(&rt);
        assert!(q <= n && r <= n && e <= n);
    }
    for s in submitters {
        s.join().unwrap();
    }
    wait_until("all tasks counted", || pool.stats().completed == n);
    assert_eq!(counted(&rt), (n, n, n));
    pool.set_threads(1).unwrap();
    wait_until("shrunk", || pool.stats().threads == 1);
    for _ in 0..100 {
        pool.try_submit(|| ()).unwrap().join().unwrap();
    }
    assert_eq!(counted(&rt), (n + 100, n + 100, n + 100));
}

#[test]
fn metrics_off_records_no_latency_but_keeps_counters() {
    let rt = Runtime::builder()
        .metrics(false)
        .pool("p", |p| p)
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    for _ in 0..5 {
        pool.try_submit(|| ()).unwrap().join().unwrap();
    }
    // A handle resolves just before its worker counts the outcome.
    wait_until("outcomes counted", || pool.stats().completed == 5);
    let snap = rt.snapshot();
    assert!(!snap.metrics_enabled);
    let p = snap.pool("p").unwrap();
    assert!(p.latency.is_none());
    assert_eq!(p.stats.completed, 5);
    assert_eq!(p.health, Health::Healthy);
}

#[test]
fn interval_view_covers_the_last_closed_interval() {
    let rt = Runtime::builder()
        .supervisor_interval(TICK)
        .pool("p", |p| p)
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    for _ in 0..7 {
        pool.try_submit(|| ()).unwrap().join().unwrap();
    }
    // Some later interval holds the 7 tasks; then an empty interval follows.
    wait_until("interval with the tasks", || {
        let s = rt.snapshot();
        let l = s.pool("p").unwrap().latency.clone().unwrap();
        l.cumulative.run.count == 7
            && l.last_interval.run.count == 0
            && l.last_interval_length > Duration::ZERO
    });
}

#[test]
fn bad_supervisor_and_stuck_settings_are_build_errors() {
    let e = Runtime::builder()
        .supervisor_interval(Duration::from_millis(9))
        .pool("p", |p| p)
        .build()
        .unwrap_err();
    assert_eq!((e.pool(), e.field()), (None, "supervisor_interval"));
    let e = Runtime::builder()
        .supervisor_interval(Duration::from_secs(3601))
        .pool("p", |p| p)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "supervisor_interval");
    let e = Runtime::builder()
        .pool("p", |p| p.stuck_after(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!((e.pool(), e.field()), (Some("p"), "stuck_after"));
    assert!(e.to_string().contains("stuck_after"), "{e}");
}

#[test]
fn panicking_listener_does_not_stop_the_supervisor() {
    let log = EventLog::default();
    let rt = Runtime::builder()
        .supervisor_interval(TICK)
        .pool("p", |p| p)
        .on_event(|_: &Event| panic!("listener bug"))
        .on_event(log.listener())
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    pool.execute(|| panic!("one")).unwrap();
    log.wait_for("first panic", |e| matches!(e, Event::Panicked { .. }));
    pool.execute(|| panic!("two")).unwrap();
    wait_until("second panic delivered", || {
        log.events()
            .iter()
            .filter_map(|e| match e {
                Event::Panicked { count, .. } => Some(*count),
                _ => None,
            })
            .sum::<u64>()
            == 2
    });
}
