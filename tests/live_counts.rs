//! Counts that follow the live pool (issue 12, items 4 and 6): own-pool deadlock detection
//! compares with the workers running now, not the build-time count, and a resize whose new
//! workers fail to start says so and leaves the thread count true.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use bulkhead::{Pool, ResizeErrorKind, Runtime, TaskError};
use support::{wait_until, HANG_GUARD};

/// Submits to `pool` a task that submits an inner task to the same pool and joins it; returns
/// what that inner join returned, waiting at most the hang guard for the outer task.
///
/// The inner task waits for a gate that opens only after the outer task announced that it is
/// about to join (plus a short grace), so the join finds the inner task unfinished and the
/// deadlock rule is really consulted. (If the outer thread is preempted for longer than the
/// grace, the join may find the task done: the test then proves less, but never fails falsely.)
fn join_own_pool(pool: &Pool) -> Result<u32, TaskError> {
    let inner_pool = pool.clone();
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (joining_tx, joining_rx) = crossbeam_channel::bounded::<()>(1);
    let mut outer = pool
        .try_submit(move || {
            let inner = inner_pool
                .try_submit(move || {
                    let _ = gate_rx.recv();
                    7u32
                })
                .unwrap();
            let _ = joining_tx.send(());
            inner.join()
        })
        .unwrap();
    joining_rx
        .recv_timeout(HANG_GUARD)
        .expect("the outer task did not start");
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(gate_tx);
    outer
        .join_timeout(HANG_GUARD)
        .expect("the outer task hung: its join was not detected as a deadlock")
}

#[test]
fn after_shrinking_to_one_thread_an_own_pool_join_is_a_deadlock() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(2).max_threads_limit(2))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    assert_eq!(join_own_pool(&pool).unwrap(), 7, "two threads: no deadlock");
    pool.set_threads(1).unwrap();
    wait_until("the pool to shrink to 1", || pool.threads() == 1);
    assert!(matches!(
        join_own_pool(&pool),
        Err(TaskError::WouldDeadlock)
    ));
    drop(rt);
}

#[test]
fn after_growing_from_one_thread_an_own_pool_join_is_no_deadlock() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).max_threads_limit(4))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    assert!(matches!(
        join_own_pool(&pool),
        Err(TaskError::WouldDeadlock)
    ));
    pool.set_threads(4).unwrap();
    assert_eq!(pool.threads(), 4);
    assert_eq!(join_own_pool(&pool).unwrap(), 7);
}

#[test]
fn an_elastic_pool_with_every_live_worker_joining_grows_instead_of_refusing() {
    let rt = Runtime::builder()
        .pool("p", |p| p.elastic(2, 4).queue_capacity(8))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    // Both live workers run an outer task, meet at the barrier, then each joins a gated task
    // of its own pool: the pool may still grow, so neither is a deadlock.
    let barrier = Arc::new(Barrier::new(2));
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (joining_tx, joining_rx) = crossbeam_channel::bounded::<()>(2);
    let outers: Vec<_> = (0..2u32)
        .map(|i| {
            let (pool2, barrier) = (pool.clone(), barrier.clone());
            let (gate_rx, joining_tx) = (gate_rx.clone(), joining_tx.clone());
            pool.try_submit(move || {
                barrier.wait();
                let inner = pool2
                    .try_submit(move || {
                        let _ = gate_rx.recv();
                        i
                    })
                    .unwrap();
                let _ = joining_tx.send(());
                inner.join()
            })
            .unwrap()
        })
        .collect();
    for _ in 0..2 {
        joining_rx
            .recv_timeout(HANG_GUARD)
            .expect("outer task did not start");
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(gate_tx);
    for (i, mut outer) in outers.into_iter().enumerate() {
        let inner = outer.join_timeout(HANG_GUARD).expect("outer task hung");
        assert_eq!(inner.unwrap(), i as u32);
    }
}

#[test]
fn set_threads_reports_workers_whose_start_hook_panics_and_counts_only_what_runs() {
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    support::quiet_panics("start hook refuses");
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.threads(1).max_threads_limit(4).on_thread_start(move |_| {
                if f.load(Ordering::Relaxed) {
                    panic!("start hook refuses");
                }
            })
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    fail.store(true, Ordering::Relaxed);
    let err = pool.set_threads(3).unwrap_err();
    assert!(matches!(err.kind(), ResizeErrorKind::StartHook), "{err}");
    assert_eq!(err.pool(), "p");
    let msg = err.to_string();
    assert!(msg.contains("start hook refuses"), "{msg}");
    // By the time set_threads returned, the failed workers were no longer counted.
    assert_eq!(pool.threads(), 1);
    // And the pool still works, and can grow once the hook lets workers start.
    assert_eq!(pool.try_submit(|| 5).unwrap().join().unwrap(), 5);
    fail.store(false, Ordering::Relaxed);
    pool.set_threads(3).unwrap();
    assert_eq!(pool.threads(), 3);
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
}
