//! Deadlines that are kept (issue 16, item 1): a task with a deadline is refused at once
//! when its deadline has passed or the pool predicts it would start too late; admitted, it
//! is resolved as expired at its deadline by the runtime's deadline timer, even while every
//! worker is stuck, and its slot is free at once; it is counted once, whoever gets there
//! first. `max_queue_wait` is the default deadline of every task with a handle.
//!
//! No timing is asserted: a stuck pool is stuck deterministically (a gate), and the only
//! clock reads are hang guards and the deadlines themselves.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead::{Pool, RefusalReason, Runtime, TaskError};
use support::{occupy_all, wait_until, HANG_GUARD};

fn one_pool(
    configure: impl FnOnce(bulkhead::PoolBuilder) -> bulkhead::PoolBuilder,
) -> (Runtime, Pool) {
    let rt = Runtime::builder().pool("p", configure).build().unwrap();
    let pool = rt.pool("p").unwrap();
    (rt, pool)
}

#[test]
fn a_queued_task_resolves_at_its_deadline_while_every_worker_is_stuck() {
    let (rt, pool) = one_pool(|p| p.threads(1).queue_capacity(1));
    let gate = occupy_all(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let mut handle = pool
        .try_submit_within(
            move || r.store(true, Ordering::SeqCst),
            Duration::from_millis(50),
        )
        .unwrap();
    // The worker stays stuck: only the deadline timer can resolve the task.
    match handle.join_timeout(HANG_GUARD) {
        Err(TaskError::Expired { waited }) => assert!(waited >= Duration::from_millis(50)),
        other => panic!("expected Expired at the deadline, got {other:?}"),
    }
    // Counted once, and its slot is free at once: the queue slot takes a new task although
    // the expired one is still in the queue behind the stuck worker.
    assert_eq!(pool.stats().expired, 1);
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    pool.execute(move || {
        let _ = rx.recv();
    })
    .expect("the expired task's slot was not freed");
    assert!(pool.execute(|| ()).unwrap_err().is_full());
    drop(gate);
    drop(tx);
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    assert!(!ran.load(Ordering::SeqCst), "an expired task ran");
    // The worker reached the dead job later and counted nothing more.
    let s = pool.stats();
    assert_eq!(s.expired, 1);
    assert_eq!(
        s.submitted,
        s.refused() + s.completed + s.panicked + s.expired + s.shed + s.cancelled,
        "{s:?}"
    );
}

#[test]
fn max_queue_wait_is_the_default_deadline_of_tasks_with_a_handle() {
    let (rt, pool) = one_pool(|p| {
        p.threads(1)
            .queue_capacity(2)
            .max_queue_wait(Duration::from_millis(30))
    });
    let gate = occupy_all(&pool);
    let mut handle = pool.try_submit(|| 1).unwrap();
    assert!(matches!(
        handle.join_timeout(HANG_GUARD),
        Err(TaskError::Expired { .. })
    ));
    drop(gate);
    drop(rt);
}

#[test]
fn a_passed_deadline_is_refused_at_once_with_the_closure() {
    let (rt, pool) = one_pool(|p| p);
    let err = pool
        .try_submit_by(|| 5, Instant::now() - Duration::from_millis(1))
        .unwrap_err();
    assert_eq!(err.reason(), RefusalReason::Deadline);
    assert_eq!((err.into_inner())(), 5);
    let s = pool.stats();
    assert_eq!((s.submitted, s.refused_deadline), (1, 1));
    drop(rt);
}

#[test]
fn a_deadline_the_queue_makes_unreachable_is_refused_by_prediction() {
    let rt = Runtime::builder()
        .supervisor_interval(Duration::from_millis(10))
        .pool("p", |p| p.threads(1).queue_capacity(8))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    // Teach the pool its run time: tasks that run at least 20 ms each.
    for _ in 0..3 {
        pool.try_submit(|| std::thread::sleep(Duration::from_millis(20)))
            .unwrap()
            .join()
            .unwrap();
    }
    // Once a supervisor tick has closed an interval holding them, the estimate is >= 20 ms.
    let probe = Instant::now() + HANG_GUARD;
    wait_until("a run-time estimate", || {
        // A deadline an hour away is never refused; 1 ms behind 3 queued 20 ms tasks is.
        pool.stats().completed == 3 && {
            let gate = occupy_all(&pool);
            let mut queued = Vec::new();
            for _ in 0..3 {
                let (tx, rx) = crossbeam_channel::bounded::<()>(0);
                pool.execute(move || {
                    let _ = rx.recv();
                })
                .unwrap();
                queued.push(tx);
            }
            let refused = match pool.try_submit_within(|| 0, Duration::from_millis(1)) {
                Err(e) => e.is_deadline(),
                Ok(h) => {
                    drop(h);
                    false
                }
            };
            let far = pool.try_submit_by(|| 1, probe);
            drop(gate);
            drop(queued);
            assert!(far.is_ok(), "a far deadline was refused");
            refused
        }
    });
    assert!(pool.stats().refused_deadline >= 1);
    drop(rt);
}

#[test]
fn stress_deadline_timer_and_workers_race_and_every_task_ends_once() {
    const ROUNDS: u64 = if cfg!(miri) { 2 } else { 800 };
    // Well below the pool's 2 + 64 slots. A task the timer expired frees its slot at once but
    // keeps its place in the channel until a worker passes it; on a loaded machine the
    // workers may fall rounds behind the timer, and once the channel (twice the capacity) is
    // full of such jobs a submission is refused as full: a valid end, counted like the others.
    const BATCH: u64 = 30;
    let (rt, pool) = one_pool(|p| p.threads(2).queue_capacity(64));
    let ran = Arc::new(AtomicU64::new(0));
    let (mut ok, mut expired, mut refused) = (0u64, 0u64, 0u64);
    for round in 0..ROUNDS {
        let mut handles = Vec::new();
        for i in 0..BATCH {
            let r = ran.clone();
            let ran_flag = Arc::new(AtomicBool::new(false));
            let flag = ran_flag.clone();
            // Budgets from 0 (refused: already passed) to 300 us: many expire in the queue,
            // some at the very moment a worker takes them.
            let budget = Duration::from_micros((round * 7 + i * 5) % 300);
            match pool.try_submit_within(
                move || {
                    flag.store(true, Ordering::SeqCst);
                    r.fetch_add(1, Ordering::SeqCst);
                },
                budget,
            ) {
                Ok(h) => handles.push((h, ran_flag)),
                Err(e) => {
                    assert!(
                        matches!(e.reason(), RefusalReason::Deadline | RefusalReason::Full),
                        "{e}"
                    );
                    refused += 1;
                }
            }
        }
        for (h, ran_flag) in handles {
            match h.join() {
                Ok(()) => {
                    assert!(ran_flag.load(Ordering::SeqCst));
                    ok += 1;
                }
                Err(TaskError::Expired { .. }) => {
                    assert!(!ran_flag.load(Ordering::SeqCst), "an expired task ran");
                    expired += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    let s = pool.stats();
    eprintln!("deadline stress: {ok} ran, {expired} expired, {refused} refused");
    assert_eq!(ok + expired + refused, ROUNDS * BATCH);
    assert_eq!(ran.load(Ordering::SeqCst), ok);
    assert_eq!(
        (s.completed, s.expired, s.refused()),
        (ok, expired, refused),
        "{s:?}"
    );
    assert_eq!(s.submitted, ROUNDS * BATCH);
}
