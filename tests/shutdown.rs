//! Shutdown: graceful, bounded, idempotent, and by drop; nothing accepted is ever stranded.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead::Runtime;
use support::{occupy_all, HANG_GUARD};

#[test]
fn shutdown_runs_what_is_queued_and_joins_workers() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(2).queue_capacity(256))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let mut gate = occupy_all(&pool);
    for _ in 0..200 {
        let c = count.clone();
        pool.execute(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        gate.open();
    });
    let report = rt.shutdown();
    opener.join().unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 200);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.completed(), 202);
    assert!(pool.workers().iter().all(|w| w.exited));
    // Intake is closed, and refusals say why.
    let err = pool.try_submit(|| ()).unwrap_err();
    assert!(err.is_shutting_down());
    assert!(pool.execute(|| ()).unwrap_err().is_shutting_down());
    assert!(pool
        .submit_timeout(|| (), Duration::from_millis(1))
        .unwrap_err()
        .is_shutting_down());
    assert_eq!(pool.stats().refused_shutting_down, 3);
}

#[test]
fn shutdown_timeout_returns_while_a_task_hangs() {
    let rt = Runtime::builder()
        .pool("stuck", |p| p.threads(1).queue_capacity(8))
        .pool("fine", |p| p.threads(1))
        .build()
        .unwrap();
    let stuck = rt.pool("stuck").unwrap();
    let (started_tx, started_rx) = crossbeam_channel::bounded(1);
    stuck
        .execute(move || {
            started_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        })
        .unwrap();
    started_rx.recv_timeout(HANG_GUARD).unwrap();
    let queued: Vec<_> = (0..3)
        .map(|i| stuck.try_submit(move || i).unwrap())
        .collect();
    // The healthy pool's task has ended before shutdown starts: on a busy machine it might
    // not even have started within the 200 ms, and the report would show it cancelled.
    rt.pool("fine")
        .unwrap()
        .try_submit(|| ())
        .unwrap()
        .join()
        .unwrap();

    let start = Instant::now();
    let report = rt.shutdown_timeout(Duration::from_millis(200));
    let took = start.elapsed();
    // A generous hang bound, not a speed assertion: 60 s is what a hang would cost.
    assert!(
        took < Duration::from_secs(20),
        "shutdown_timeout took {took:?}"
    );
    assert!(report.timed_out);
    assert_eq!(report.still_running(), 1);
    let p = &report.pools[0];
    assert_eq!(p.stats.name, "stuck");
    assert_eq!(p.still_running[0].thread_name, "stuck-0");
    assert!(p.still_running[0].running_for >= Duration::from_millis(200));
    assert_eq!(p.cancelled_at_shutdown, 3);
    assert!(report.to_string().contains("stuck-0"), "{report}");
    assert_eq!(report.pools[1].stats.completed, 1);
    assert!(report.pools[1].still_running.is_empty());
    // Queued handles were resolved as cancelled.
    for h in queued {
        assert!(h.join().unwrap_err().is_cancelled());
    }
}

#[test]
fn dropping_the_runtime_is_bounded_by_drop_timeout() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).queue_capacity(4))
        .drop_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let (started_tx, started_rx) = crossbeam_channel::bounded(1);
    pool.execute(move || {
        started_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    })
    .unwrap();
    started_rx.recv_timeout(HANG_GUARD).unwrap();
    let h = pool.try_submit(|| 1).unwrap();
    let start = Instant::now();
    drop(rt);
    assert!(start.elapsed() < Duration::from_secs(20));
    // Outstanding handles are resolved, and the pool handle now refuses.
    assert!(h.join().unwrap_err().is_cancelled());
    assert!(pool.try_submit(|| ()).unwrap_err().is_shutting_down());
}

#[test]
fn shutdown_is_idempotent() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(2))
        .build()
        .unwrap();
    rt.pool("p")
        .unwrap()
        .try_submit(|| ())
        .unwrap()
        .join()
        .unwrap();
    let a = rt.shutdown();
    let b = rt.shutdown_timeout(Duration::from_millis(10));
    assert!(a.is_clean() && b.is_clean());
    assert_eq!(a.completed(), 1);
    assert_eq!(b.completed(), 1);
    drop(rt); // and Drop after an explicit shutdown
}

#[test]
fn a_stuck_worker_detached_by_shutdown_exits_when_its_task_returns() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let mut gate = occupy_all(&pool);
    let report = rt.shutdown_timeout(Duration::from_millis(20));
    assert_eq!(report.still_running(), 1);
    assert!(!pool.workers()[0].exited);
    gate.open();
    support::wait_until("detached worker to exit", || pool.workers()[0].exited);
    // A later shutdown reaps it and reports clean.
    assert_eq!(rt.shutdown().still_running(), 0);
}

#[test]
fn blocked_submitter_during_abandoned_shutdown_gets_an_answer() {
    // The worker hangs and the queue is full; a submitter waits for room. Shutdown gives up,
    // drains the queue, the waiter's task lands and must still be resolved (cancelled).
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).queue_capacity(1))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let _gate = occupy_all(&pool);
    pool.execute(|| ()).unwrap();
    let p2 = pool.clone();
    let waiter = std::thread::spawn(move || p2.submit_timeout(|| 5, Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(20));
    rt.shutdown_timeout(Duration::from_millis(20));
    match waiter.join().unwrap() {
        Ok(h) => assert!(h.join().unwrap_err().is_cancelled()),
        Err(e) => assert!(e.is_shutting_down() || e.is_timeout(), "{e}"),
    }
}
