//! `TaskHandle::then_in`: follow-ups queued onto another pool without any thread waiting,
//! and what a chain reports when a pool in the middle is hung.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bulkhead::{Pool, RefusalReason, Runtime, TaskError};
use support::{block_worker_counted, occupy_all, quiet_panics, wait_until, HANG_GUARD};

fn three_pools(
    configure_b: impl FnOnce(bulkhead::PoolBuilder) -> bulkhead::PoolBuilder,
) -> (Runtime, Pool, Pool, Pool) {
    let rt = Runtime::builder()
        .pool("a", |p| p.threads(1))
        .pool("b", configure_b)
        .pool("c", |p| p.threads(1))
        .build()
        .unwrap();
    let (a, b, c) = (
        rt.pool("a").unwrap(),
        rt.pool("b").unwrap(),
        rt.pool("c").unwrap(),
    );
    (rt, a, b, c)
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("?").to_owned()
}

#[test]
fn smoke_the_continuation_runs_on_the_other_pool_with_the_value() {
    let rt = Runtime::builder()
        .pool("a", |p| p)
        .pool("b", |p| p)
        .build()
        .unwrap();
    let b = rt.pool("b").unwrap();
    let h = rt
        .pool("a")
        .unwrap()
        .try_submit(|| (21, thread_name()))
        .unwrap()
        .then_in(&b, |r| {
            let (n, first) = r.unwrap();
            (n * 2, first, thread_name())
        });
    let (n, first, second) = h.join().unwrap();
    assert_eq!((n, first.as_str(), second.as_str()), (42, "a-0", "b-0"));
    wait_until("b to count the continuation", || b.stats().completed == 1);
    assert_eq!(b.stats().submitted, 1);
}

#[test]
fn a_task_that_already_ended_is_continued_at_once() {
    let rt = Runtime::builder()
        .pool("a", |p| p)
        .pool("b", |p| p)
        .build()
        .unwrap();
    let (a, b) = (rt.pool("a").unwrap(), rt.pool("b").unwrap());
    let mut first = a.try_submit(|| 1).unwrap();
    let deadline = Instant::now() + HANG_GUARD;
    while !first.is_finished() {
        assert!(Instant::now() < deadline);
        thread::yield_now();
    }
    assert_eq!(first.then_in(&b, |r| r.unwrap() + 1).join().unwrap(), 2);

    // A result already taken reaches the continuation as AlreadyJoined.
    first = a.try_submit(|| 1).unwrap();
    assert_eq!(first.join_timeout(HANG_GUARD).unwrap(), 1);
    let r = first.then_in(&b, |r| matches!(r, Err(TaskError::AlreadyJoined)));
    assert!(r.join().unwrap());
}

#[test]
fn a_panic_reaches_the_continuation_as_an_error() {
    quiet_panics("first-task-panic");
    let rt = Runtime::builder()
        .pool("a", |p| p)
        .pool("b", |p| p)
        .build()
        .unwrap();
    let b = rt.pool("b").unwrap();
    let h = rt
        .pool("a")
        .unwrap()
        .try_submit(|| -> u32 { panic!("first-task-panic") })
        .unwrap()
        .then_in(&b, |r| r.unwrap_err().panic_message().map(str::to_owned));
    assert_eq!(h.join().unwrap().as_deref(), Some("first-task-panic"));
}

#[test]
fn a_chain_through_a_hung_full_pool_reports_the_refusal_and_the_others_keep_serving() {
    let (_rt, a, b, c) = three_pools(|p| p.threads(1).queue_capacity(1));
    // Hang "b": its worker is stuck and its queue is full.
    let _gate = occupy_all(&b);
    b.execute(|| ()).unwrap();
    assert!(b.execute(|| ()).unwrap_err().is_full());

    let chain = a
        .try_submit(|| 1)
        .unwrap()
        .then_in(&b, |r| r.unwrap() + 1)
        .then_in(&c, |r: Result<i32, TaskError>| match r {
            Err(TaskError::Refused(refused)) => {
                let (pool, reason) = (refused.pool().to_owned(), refused.reason());
                // The refused continuation comes back with its input: run it here instead.
                let value = refused.into_task::<i32>().unwrap()();
                Ok((pool, reason, value, thread_name()))
            }
            other => Err(format!("{other:?}")),
        });
    let (pool, reason, value, ran_on) = chain.join().unwrap().unwrap();
    assert_eq!(
        (pool.as_str(), reason, value),
        ("b", RefusalReason::Full, 2)
    );
    assert_eq!(ran_on, "c-0");

    // "a" and "c" keep serving while "b" is hung; no worker of theirs is parked on "b".
    for i in 0..20 {
        assert_eq!(a.try_submit(move || i).unwrap().join().unwrap(), i);
        assert_eq!(c.try_submit(move || i).unwrap().join().unwrap(), i);
    }
    assert_eq!(a.stats().busy, 0);
    assert_eq!(b.stats().refused_full, 2);
}

#[test]
fn a_chain_through_a_hung_pool_with_a_deadline_reports_the_expiry() {
    let max_wait = Duration::from_millis(20);
    let (_rt, a, b, c) = three_pools(|p| p.threads(1).queue_capacity(8).max_queue_wait(max_wait));
    // (The blocking task is resubmitted if it expires on a busy machine, and counted.)
    let (gate, blockers_expired) = block_worker_counted(&b);
    let chain = a
        .try_submit(|| 1)
        .unwrap()
        .then_in(&b, |r| r.unwrap() + 1)
        .then_in(&c, |r: Result<i32, TaskError>| {
            r.map_err(|e| e.is_expired())
        });
    // The continuation sits in "b"'s queue; "a" and "c" serve meanwhile.
    for i in 0..20 {
        assert_eq!(a.try_submit(move || i).unwrap().join().unwrap(), i);
        assert_eq!(c.try_submit(move || i).unwrap().join().unwrap(), i);
    }
    // "b" is still hung: the deadline timer expires the continuation at its deadline, and
    // the chain's last link (on "c") reports it, without waiting for "b" to recover.
    let mut chain = chain;
    assert_eq!(chain.join_timeout(HANG_GUARD).unwrap(), Err(true));
    drop(gate);
    // The continuation, and any blocking task that expired before one held the worker.
    assert_eq!(b.stats().expired, 1 + blockers_expired);
}

#[test]
fn a_continuation_cancelled_while_waiting_is_never_queued() {
    let rt = Runtime::builder()
        .pool("a", |p| p.threads(1))
        .pool("b", |p| p)
        .build()
        .unwrap();
    let (a, b) = (rt.pool("a").unwrap(), rt.pool("b").unwrap());
    let (release, blocked) = mpsc::channel::<()>();
    let first = a
        .try_submit(move || {
            let _ = blocked.recv_timeout(HANG_GUARD);
            1
        })
        .unwrap();
    let (ran_tx, ran) = mpsc::channel::<()>();
    let next = first.then_in(&b, move |_| ran_tx.send(()).unwrap());
    assert!(next.cancel());
    release.send(()).unwrap();
    assert!(next.join().unwrap_err().is_cancelled());
    wait_until("a to finish the first task", || a.stats().completed == 1);
    // The closure was dropped with the cancel: its sender is gone, nothing ran.
    assert!(ran.recv_timeout(HANG_GUARD).is_err());
    assert_eq!(b.stats().submitted, 0);
}

#[test]
fn a_continuation_onto_a_pool_shutting_down_is_refused_with_the_closure() {
    let rt = Runtime::builder()
        .pool("a", |p| p)
        .pool("b", |p| p)
        .build()
        .unwrap();
    let (a, b) = (rt.pool("a").unwrap(), rt.pool("b").unwrap());
    let first = a.try_submit(|| String::from("input")).unwrap();
    rt.shutdown();
    let err = first
        .then_in(&b, |r| r.unwrap() + " continued")
        .join()
        .unwrap_err();
    let refused = match err {
        TaskError::Refused(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused.reason(), RefusalReason::ShuttingDown);
    assert!(refused.to_string().contains("\"b\""));
    // The wrong type gives the refusal back intact.
    let Err(refused) = refused.into_task::<u32>() else {
        panic!("the continuation's output is a String, not a u32");
    };
    let Ok(task) = refused.into_task::<String>() else {
        panic!("into_task::<String> failed");
    };
    assert_eq!(task(), "input continued");
}

#[test]
fn a_one_thread_pool_can_continue_onto_itself_without_deadlock() {
    let rt = Runtime::builder()
        .pool("solo", |p| p.threads(1))
        .build()
        .unwrap();
    let solo = rt.pool("solo").unwrap();
    let inner = solo.clone();
    // A task queues a follow-up on its own pool and returns: nothing waits.
    let h = solo
        .try_submit(move || {
            inner
                .try_submit(|| 20)
                .unwrap()
                .then_in(&inner, |r| r.unwrap() + 1)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(h.join().unwrap(), 21);
}

#[test]
fn a_first_task_cancelled_by_shutdown_still_reaches_its_continuation() {
    let rt = Runtime::builder()
        .pool("a", |p| p.threads(1))
        .pool("b", |p| p)
        .build()
        .unwrap();
    let (a, b) = (rt.pool("a").unwrap(), rt.pool("b").unwrap());
    let gate = occupy_all(&a);
    let chain = a
        .try_submit(|| 1)
        .unwrap()
        .then_in(&b, |r| r.unwrap_err().is_cancelled());
    // "a" is stuck: the shutdown gives up and cancels the queued first task; the
    // continuation is then refused by "b", which is shutting down too.
    let report = rt.shutdown_timeout(Duration::from_millis(10));
    assert_eq!(report.pools[0].cancelled_at_shutdown, 1);
    let refused = chain.join().unwrap_err();
    let task = refused.refused().map(|r| r.reason());
    assert_eq!(task, Some(RefusalReason::ShuttingDown));
    drop(gate);
}
