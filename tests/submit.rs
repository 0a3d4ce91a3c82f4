//! Submission: the non-blocking, timed and fire-and-forget paths, refusal with the closure
//! handed back, look-up by name, and submitting from inside a task.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead::{Pool, RefusalReason, Runtime, TaskHandle};
use support::{occupy_all, HANG_GUARD};

fn one_pool(threads: usize, capacity: usize) -> (Runtime, Pool) {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(threads).queue_capacity(capacity))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    (rt, pool)
}

#[test]
fn smoke() {
    let (_rt, pool) = one_pool(2, 16);
    let h = pool.try_submit(|| 6 * 7).unwrap();
    assert_eq!(h.join().unwrap(), 42);
}

#[test]
fn handles_are_send_sync_clone_static() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    fn assert_send<T: Send + 'static>() {}
    assert_traits::<Pool>();
    assert_send::<TaskHandle<String>>();
    assert_send::<Runtime>();
}

#[test]
fn execute_runs_every_task() {
    let (rt, pool) = one_pool(2, 1024);
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..1000 {
        let c = count.clone();
        // Retry on Full: the caller owns the back-pressure policy.
        let mut task = move || {
            c.fetch_add(1, Ordering::Relaxed);
        };
        loop {
            match pool.execute(task) {
                Ok(()) => break,
                Err(e) => {
                    assert!(e.is_full());
                    task = e.into_inner();
                    std::thread::yield_now();
                }
            }
        }
    }
    let report = rt.shutdown();
    assert_eq!(count.load(Ordering::Relaxed), 1000);
    assert_eq!(report.completed(), 1000);
}

#[test]
fn try_submit_refuses_when_full_and_hands_closure_back() {
    let (_rt, pool) = one_pool(1, 2);
    let mut gate = occupy_all(&pool);
    let queued: Vec<_> = (0..2)
        .map(|i| pool.try_submit(move || i).unwrap())
        .collect();
    assert_eq!(pool.queued(), 2);

    let err = pool.try_submit(|| String::from("mine")).unwrap_err();
    assert!(err.is_full());
    assert_eq!(err.reason(), RefusalReason::Full);
    assert_eq!(err.pool(), "p");
    assert!(err.to_string().contains("\"p\""), "{err}");
    assert!(format!("{err:?}").starts_with("Full("), "{err:?}");
    // The refused closure comes back and the caller can run it.
    assert_eq!(err.into_inner()(), "mine");

    let err = pool.execute(|| ()).unwrap_err();
    assert!(err.is_full());
    err.into_inner()();

    gate.open();
    let got: Vec<i32> = queued.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, vec![0, 1]);
    let s = pool.stats();
    assert_eq!(s.refused_full, 2);
    assert_eq!(s.submitted, 2 + 2 + 1); // occupier, 2 queued, 2 refused
}

#[test]
fn submit_timeout_waits_for_room() {
    let (_rt, pool) = one_pool(1, 1);
    let mut gate = occupy_all(&pool);
    pool.execute(|| ()).unwrap(); // fills the queue
    let p2 = pool.clone();
    let waiter = std::thread::spawn(move || p2.submit_timeout(|| 7, HANG_GUARD));
    // Let the waiter block, then make room.
    support::wait_until("submitter to block", || !waiter.is_finished());
    gate.open();
    let h = waiter
        .join()
        .unwrap()
        .expect("room appeared before the timeout");
    assert_eq!(h.join().unwrap(), 7);
    assert_eq!(pool.stats().refused(), 0);
}

#[test]
fn submit_timeout_refuses_after_timeout_with_closure() {
    let (_rt, pool) = one_pool(1, 1);
    let _gate = occupy_all(&pool);
    pool.execute(|| ()).unwrap();
    let timeout = Duration::from_millis(20);
    let start = Instant::now();
    let err = pool.submit_timeout(|| 5, timeout).unwrap_err();
    // It waited (at least its timeout), and gave the closure back.
    assert!(start.elapsed() >= timeout);
    assert!(err.is_timeout());
    assert_eq!(err.into_inner()(), 5);
    let err = pool.execute_timeout(|| (), timeout).unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(pool.stats().refused_timeout, 2);
}

#[test]
fn zero_capacity_is_a_direct_hand_off() {
    let (_rt, pool) = one_pool(1, 0);
    // An idle worker is waiting: the hand-off succeeds (retry while the worker gets there).
    support::wait_until("hand-off to the idle worker", || {
        pool.try_submit(|| ()).map(|h| h.join().unwrap()).is_ok()
    });
    // With the only worker busy, nothing can be accepted.
    let _gate = occupy_all(&pool);
    assert!(pool.try_submit(|| ()).unwrap_err().is_full());
}

#[test]
fn unknown_pool_is_an_error_naming_it() {
    let (rt, _pool) = one_pool(1, 1);
    let err = rt.pool("nope").unwrap_err();
    assert_eq!(err.name(), "nope");
    let msg = err.to_string();
    assert!(msg.contains("\"nope\"") && msg.contains("\"p\""), "{msg}");
}

#[test]
fn submit_from_inside_a_task_to_own_and_other_pool() {
    let rt = Runtime::builder()
        .pool("a", |p| p.threads(2))
        .pool("b", |p| p.threads(1))
        .build()
        .unwrap();
    let a = rt.pool("a").unwrap();
    let b = rt.pool("b").unwrap();
    let a2 = a.clone();
    let h = a
        .try_submit(move || {
            // To another pool, waiting on it: fine, it has its own workers.
            let other = b.try_submit(|| 2).unwrap().join().unwrap();
            // To its own pool: the second worker is free to run it.
            let own = a2.try_submit(|| 3).unwrap().join().unwrap();
            other * own
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), 6);
}

#[test]
fn waiting_on_own_pool_with_every_worker_blocked_is_refused_as_would_deadlock() {
    let (_rt, pool) = one_pool(1, 4);
    let p2 = pool.clone();
    let h = pool
        .try_submit(move || {
            // The only worker waits on a task queued behind itself: it can never run, so the
            // wait is refused at once instead of timing out (tests/hooks.rs has the rest).
            let mut inner = p2.try_submit(|| 1).unwrap();
            let r = inner.join_timeout(Duration::from_secs(30));
            (r.unwrap_err().is_would_deadlock(), inner.cancel())
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), (true, true));
}

#[test]
fn pools_are_isolated_from_each_others_queues() {
    let rt = Runtime::builder()
        .pool("slow", |p| p.threads(1).queue_capacity(4))
        .pool("fast", |p| p.threads(1).queue_capacity(4))
        .build()
        .unwrap();
    let slow = rt.pool("slow").unwrap();
    let fast = rt.pool("fast").unwrap();
    let _gate = occupy_all(&slow);
    while slow.execute(|| ()).is_ok() {}
    // slow is full and stuck; fast serves.
    for i in 0..100 {
        assert_eq!(fast.try_submit(move || i).unwrap().join().unwrap(), i);
    }
}

#[test]
fn execute_boxed_runs_and_hands_the_same_box_back_when_refused() {
    let (rt, pool) = one_pool(1, 1);
    let (tx, rx) = crossbeam_channel::unbounded::<u32>();
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
    pool.execute_boxed(Box::new(move || {
        started_tx.send(()).unwrap();
        let _ = gate_rx.recv();
    }))
    .unwrap();
    started_rx.recv().unwrap();
    // The worker is held: one queue slot is left.
    let t1 = tx.clone();
    pool.execute_boxed(Box::new(move || t1.send(1).unwrap()))
        .unwrap();
    let t2 = tx.clone();
    let refused = pool
        .execute_boxed(Box::new(move || t2.send(2).unwrap()))
        .unwrap_err();
    assert!(refused.is_full());
    // `execute` given a box takes the same path and hands the box back the same way.
    let t3 = tx.clone();
    let b: Box<dyn FnOnce() + Send> = Box::new(move || t3.send(3).unwrap());
    let refused3 = pool.execute(b).unwrap_err();
    assert!(refused3.is_full());
    // The boxes that came back are the caller's closures: calling them runs them here.
    (refused.into_inner())();
    (refused3.into_inner())();
    assert_eq!(rx.recv().unwrap(), 2);
    assert_eq!(rx.recv().unwrap(), 3);
    drop(gate_tx);
    assert_eq!(rx.recv().unwrap(), 1);
    // A boxed task that panics is caught and counted like any other.
    pool.execute_boxed_timeout(Box::new(|| panic!("boxed")), Duration::from_secs(5))
        .unwrap();
    rt.shutdown();
    let s = pool.stats();
    assert_eq!((s.completed, s.panicked, s.refused_full), (2, 1, 2));
}

#[test]
fn an_expired_boxed_task_reaches_the_shed_handler_whole() {
    let (shed_tx, shed_rx) = crossbeam_channel::unbounded::<bulkhead::ShedTask>();
    let rt = Runtime::builder()
        .pool("p", move |p| {
            p.threads(1)
                .queue_capacity(4)
                .max_queue_wait(Duration::from_millis(1))
                .on_shed(move |t| shed_tx.send(t).unwrap())
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    // Block the only worker. With a 1 ms limit the blocking task itself may expire before
    // the worker reaches it on a busy machine: it then arrives at the shed handler (holding
    // its `started` sender, so waiting on `started` alone would never end) and is submitted
    // again.
    let deadline = std::time::Instant::now() + HANG_GUARD;
    let mut expired_blockers = 0;
    loop {
        let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
        let gate = gate_rx.clone();
        pool.execute(move || {
            started_tx.send(()).unwrap();
            let _ = gate.recv();
        })
        .unwrap();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        crossbeam_channel::select! {
            recv(started_rx) -> r => { r.unwrap(); break; }
            recv(shed_rx) -> expired_blocker => {
                drop(expired_blocker);
                expired_blockers += 1;
            }
            default(left) => panic!("the blocking task neither started nor expired"),
        }
    }
    let (tx, rx) = crossbeam_channel::unbounded::<u32>();
    pool.execute_boxed(Box::new(move || tx.send(7).unwrap()))
        .unwrap();
    // Held past the maximum queue wait (the test asserts no time, only the outcome).
    let queued = std::time::Instant::now();
    while queued.elapsed() < Duration::from_millis(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(gate_tx);
    let shed = shed_rx.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(shed.reason, bulkhead::ShedReason::Expired);
    assert!(rx.try_recv().is_err(), "an expired task does not run");
    (shed.task)();
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap(), 7);
    rt.shutdown();
    // The boxed task, and any blocking task that expired before one held the worker.
    assert_eq!(pool.stats().expired, 1 + expired_blockers);
}
