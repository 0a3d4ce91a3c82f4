//! Chains of `then_in` continuations as long as a user cares to build: resolving them, and
//! dropping what they leave behind, must not need stack depth proportional to the chain
//! (issue 12, item 2). Before the fix a refused chain of 10,000 links overflowed the
//! worker's stack and aborted the process.

mod support;

use std::sync::mpsc;

use bulkhead::{Pool, RefusalReason, Runtime, TaskError, TaskHandle};
use support::{block_worker, occupy_all, HANG_GUARD};

const LINKS: usize = if cfg!(miri) { 200 } else { 100_000 };

fn chain(first: TaskHandle<u64>, next: &Pool) -> TaskHandle<u64> {
    let mut h = first;
    for _ in 0..LINKS {
        h = h.then_in(next, |r: Result<u64, TaskError>| r.unwrap_or(0) + 1);
    }
    h
}

/// Waits for `h` on another thread, so that a hang fails the test instead of blocking it.
fn join_bounded(h: TaskHandle<u64>) -> Result<u64, TaskError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(h.join());
    });
    rx.recv_timeout(HANG_GUARD)
        .expect("the chain did not resolve")
}

/// The last link of a refused chain: refused with `reason`, and its bound task runs here.
/// Running it drops the nested refusals of every earlier link, on this thread.
fn check_refused(result: Result<u64, TaskError>, reason: RefusalReason) {
    match result {
        Err(TaskError::Refused(refused)) => {
            assert_eq!(refused.reason(), reason);
            assert_eq!(refused.pool(), "next");
            let task = refused.into_task::<u64>().expect("typed as u64");
            // Its input is the refusal of the link before: `unwrap_or(0) + 1`.
            assert_eq!(task(), 1);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_chain_refused_as_shutting_down_resolves_and_drops_flat() {
    let first_rt = Runtime::builder()
        .pool("first", |p| p.threads(1))
        .build()
        .unwrap();
    let next_rt = Runtime::builder()
        .pool("next", |p| p.threads(1))
        .build()
        .unwrap();
    let first = first_rt.pool("first").unwrap();
    let next = next_rt.pool("next").unwrap();
    next_rt.shutdown();

    let release = block_worker(&first);
    let h = chain(first.try_submit(|| 0u64).unwrap(), &next);
    // The first task ends on the worker of `first`, which then resolves every link.
    drop(release);
    check_refused(join_bounded(h), RefusalReason::ShuttingDown);
    assert_eq!(next.stats().refused_shutting_down, LINKS as u64);
}

#[test]
fn a_chain_refused_as_full_resolves_and_drops_flat() {
    let first_rt = Runtime::builder()
        .pool("first", |p| p.threads(1))
        .build()
        .unwrap();
    let next_rt = Runtime::builder()
        .pool("next", |p| p.threads(1).queue_capacity(1))
        .build()
        .unwrap();
    let first = first_rt.pool("first").unwrap();
    let next = next_rt.pool("next").unwrap();
    let gate = occupy_all(&next);
    let (fill_tx, fill_rx) = mpsc::channel::<()>();
    next.execute(move || {
        let _ = fill_rx.recv();
    })
    .unwrap();
    assert!(next.execute(|| ()).unwrap_err().is_full());

    let release = block_worker(&first);
    let h = chain(first.try_submit(|| 0u64).unwrap(), &next);
    drop(release);
    check_refused(join_bounded(h), RefusalReason::Full);
    drop(fill_tx);
    drop(gate);
    next_rt.shutdown();
    // The refused probe above plus every link.
    assert_eq!(next.stats().refused_full, LINKS as u64 + 1);
}

#[test]
fn a_chain_of_accepted_links_runs_every_link() {
    let rt = Runtime::builder()
        .pool("first", |p| p.threads(1))
        .pool("next", |p| p.threads(1))
        .build()
        .unwrap();
    let first = rt.pool("first").unwrap();
    let next = rt.pool("next").unwrap();
    let release = block_worker(&first);
    let h = chain(first.try_submit(|| 0u64).unwrap(), &next);
    drop(release);
    assert_eq!(join_bounded(h).unwrap(), LINKS as u64);
    rt.shutdown();
    assert_eq!(next.stats().completed, LINKS as u64);
}

#[test]
fn a_chain_whose_first_task_is_cancelled_by_shutdown_resolves_every_link() {
    // The first task is still queued when its runtime gives up on it: the drain resolves it
    // as cancelled, and the links are refused by the closed `next` pool, all from the drain.
    let first_rt = Runtime::builder()
        .pool("first", |p| p.threads(1))
        .build()
        .unwrap();
    let next_rt = Runtime::builder()
        .pool("next", |p| p.threads(1))
        .build()
        .unwrap();
    let first = first_rt.pool("first").unwrap();
    let next = next_rt.pool("next").unwrap();
    next_rt.shutdown();
    let release = block_worker(&first);
    let h = chain(first.try_submit(|| 0u64).unwrap(), &next);
    let report = first_rt.shutdown_timeout(std::time::Duration::ZERO);
    assert_eq!(report.cancelled(), 1);
    check_refused(join_bounded(h), RefusalReason::ShuttingDown);
    drop(release);
}
