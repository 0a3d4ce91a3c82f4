//! Stale work is shed: a task that waited longer than max_queue_wait is not run.
//!
//! Lateness is built, not hoped for: tasks queue behind a held worker, which is released
//! only after they are past the limit. The blocking task itself may expire on a busy machine
//! (a short limit is a slow wake-up): `block_worker_counted` resubmits it and says how often.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bulkhead::{Runtime, TaskError};
use support::block_worker_counted;

#[test]
fn expired_tasks_are_not_run() {
    let max = Duration::from_millis(20);
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).queue_capacity(16).max_queue_wait(max))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let (hold, blockers_expired) = block_worker_counted(&pool);
    let mut handles = Vec::new();
    for _ in 0..5 {
        let r = ran.clone();
        handles.push(
            pool.try_submit(move || r.fetch_add(1, Ordering::SeqCst))
                .unwrap(),
        );
        let r = ran.clone();
        pool.execute(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    // Hold the worker well past the limit, then let it reach the queue.
    std::thread::sleep(max * 3);
    drop(hold);
    for h in handles {
        match h.join() {
            Err(TaskError::Expired { waited }) => assert!(waited > max, "{waited:?}"),
            other => panic!("expected Expired, got {other:?}"),
        }
    }
    rt.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let s = pool.stats();
    assert_eq!(s.expired, 10 + blockers_expired);
    assert_eq!(s.completed, 1);
}

#[test]
fn fresh_tasks_run_under_a_queue_wait_limit() {
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.threads(1).max_queue_wait(Duration::from_secs(3600))
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    for i in 0..100 {
        assert_eq!(pool.try_submit(move || i).unwrap().join().unwrap(), i);
    }
    assert_eq!(pool.stats().expired, 0);
}

#[test]
fn a_cancelled_task_that_also_expired_counts_once_as_cancelled() {
    let max = Duration::from_millis(5);
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).max_queue_wait(max))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let (hold, blockers_expired) = block_worker_counted(&pool);
    let h = pool.try_submit(|| ()).unwrap();
    assert!(h.cancel());
    std::thread::sleep(max * 4);
    drop(hold);
    assert!(h.join().unwrap_err().is_cancelled());
    rt.shutdown();
    let s = pool.stats();
    assert_eq!(
        (s.cancelled, s.expired, s.completed),
        (1, blockers_expired, 1)
    );
}
