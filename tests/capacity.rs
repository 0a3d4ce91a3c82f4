//! Capacity is threads + queue capacity, under bursts too (issue 12, item 1).
//!
//! A pool of T threads and queue capacity Q holds up to T running plus Q waiting tasks. A
//! back-to-back burst into an idle pool (workers parked, none has taken anything yet) is
//! admitted in full up to T + Q and refused as full after that, whatever the scheduler does;
//! the same with an elastic pool's maximum, and with the live values after a resize. Before
//! the fix, threads=4, queue_capacity=2 admitted 2 to 4 of a burst of 6.

mod support;

use bulkhead::{Pool, PoolBuilder, RefusalReason, Runtime};
use proptest::prelude::*;
use support::{wait_until, HANG_GUARD};

/// Submits `n` tasks back to back, each blocking on `gate` until it is dropped; returns how
/// many were admitted before the first refusal, and checks that every later one is refused
/// as full too (no task ends while the gate is closed, so no slot frees up).
fn burst(pool: &Pool, n: usize, gate: &crossbeam_channel::Receiver<()>) -> usize {
    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..n {
        let rx = gate.clone();
        match pool.execute(move || {
            let _ = rx.recv();
        }) {
            Ok(()) => {
                assert_eq!(refused, 0, "submission {i} admitted after a refusal");
                admitted += 1;
            }
            Err(e) => {
                assert_eq!(e.reason(), RefusalReason::Full, "{e}");
                refused += 1;
            }
        }
    }
    admitted
}

fn one_pool(configure: impl FnOnce(PoolBuilder) -> PoolBuilder) -> (Runtime, Pool) {
    let rt = Runtime::builder().pool("p", configure).build().unwrap();
    let pool = rt.pool("p").unwrap();
    (rt, pool)
}

/// Ends the runtime; every admitted task ran (the gate is open by then).
fn finish(rt: Runtime, pool: &Pool, admitted: usize) {
    let report = rt.shutdown_timeout(HANG_GUARD);
    assert!(report.is_clean(), "{report}");
    let s = pool.stats();
    assert_eq!(s.completed, admitted as u64);
    assert_eq!(s.submitted, s.completed + s.refused_full);
}

#[test]
fn a_burst_of_threads_plus_queue_into_an_idle_pool_is_admitted_in_full() {
    // The case from the issue: 4 threads, queue 2, a burst of 6, then one more.
    let (rt, pool) = one_pool(|p| p.threads(4).queue_capacity(2));
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    assert_eq!(burst(&pool, 7, &rx), 6);
    assert_eq!(pool.stats().refused_full, 1);
    drop(tx);
    finish(rt, &pool, 6);
}

#[test]
fn queue_capacity_zero_admits_one_task_per_thread() {
    let (rt, pool) = one_pool(|p| p.threads(3).queue_capacity(0));
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    assert_eq!(burst(&pool, 5, &rx), 3);
    drop(tx);
    finish(rt, &pool, 3);
}

#[test]
fn a_slot_is_free_again_as_soon_as_a_joined_task_ends() {
    // A caller that joined a task sees its slot released: the next submission is admitted
    // even though the pool was full a moment before.
    let (rt, pool) = one_pool(|p| p.threads(1).queue_capacity(0));
    for i in 0..1_000 {
        let h = pool.try_submit(move || i).unwrap();
        assert_eq!(h.join().unwrap(), i);
    }
    finish(rt, &pool, 1_000);
}

#[test]
fn an_elastic_pool_admits_its_maximum_plus_the_queue() {
    let (rt, pool) = one_pool(|p| p.elastic(1, 3).queue_capacity(2));
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    assert_eq!(burst(&pool, 8, &rx), 5);
    drop(tx);
    finish(rt, &pool, 5);
}

#[test]
fn after_a_resize_the_live_values_count() {
    let (rt, pool) = one_pool(|p| {
        p.threads(2)
            .max_threads_limit(4)
            .queue_capacity(1)
            .queue_capacity_limit(8)
    });
    pool.set_threads(4).unwrap();
    pool.set_queue_capacity(3).unwrap();
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    assert_eq!(burst(&pool, 10, &rx), 7);
    drop(tx);
    wait_until("the burst to finish", || pool.stats().completed == 7);
    // Shrink: 1 thread + 1 queue slot.
    pool.set_threads(1).unwrap();
    pool.set_queue_capacity(1).unwrap();
    wait_until("the pool to shrink", || pool.threads() == 1);
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    assert_eq!(burst(&pool, 4, &rx), 2);
    drop(tx);
    finish(rt, &pool, 9);
}

#[test]
fn a_timed_submission_waits_for_a_slot_and_gets_it_when_a_task_ends() {
    let (rt, pool) = one_pool(|p| p.threads(1).queue_capacity(1));
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    assert_eq!(burst(&pool, 2, &rx), 2);
    let p = pool.clone();
    let waiter =
        std::thread::spawn(move || p.submit_timeout(|| 42, HANG_GUARD).map_err(|e| e.reason()));
    // Let one task end: the waiting submission takes its slot.
    drop(tx);
    let h = waiter.join().unwrap().expect("admitted once a slot freed");
    assert_eq!(h.join().unwrap(), 42);
    finish(rt, &pool, 3);
}

#[test]
fn a_timed_submission_waiting_for_a_slot_is_refused_when_the_pool_closes() {
    let (rt, pool) = one_pool(|p| p.threads(1).queue_capacity(0));
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    assert_eq!(burst(&pool, 1, &rx), 1);
    let p = pool.clone();
    let (waiting_tx, waiting_rx) = crossbeam_channel::bounded::<()>(1);
    let waiter = std::thread::spawn(move || {
        waiting_tx.send(()).unwrap();
        p.submit_timeout(|| 1, HANG_GUARD)
            .map(|_| ())
            .map_err(|e| e.reason())
    });
    waiting_rx.recv().unwrap();
    // Whether the waiter is already waiting for a slot or not yet admitted, the pool closes
    // under it: either way it is refused as shutting down, never left waiting.
    let rt = std::sync::Arc::new(rt);
    let r = rt.clone();
    let shutdown = std::thread::spawn(move || r.shutdown());
    assert_eq!(waiter.join().unwrap(), Err(RefusalReason::ShuttingDown));
    drop(tx);
    assert!(shutdown.join().unwrap().is_clean());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 48 },
        ..ProptestConfig::default()
    })]

    /// Fixed pools: any T, Q and burst size.
    #[test]
    fn bursts_into_an_idle_fixed_pool_admit_exactly_min_of_burst_and_capacity(
        threads in 1usize..6,
        queue in 0usize..8,
        extra in 0usize..4,
        short in 0usize..3,
    ) {
        let cap = threads + queue;
        let n = (cap + extra).saturating_sub(short);
        let (rt, pool) = one_pool(|p| p.threads(threads).queue_capacity(queue));
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let admitted = burst(&pool, n, &rx);
        prop_assert_eq!(admitted, n.min(cap));
        drop(tx);
        finish(rt, &pool, admitted);
    }

    /// Elastic pools: the maximum thread count plus Q.
    #[test]
    fn bursts_into_an_idle_elastic_pool_admit_max_threads_plus_queue(
        min in 1usize..3,
        more in 0usize..3,
        queue in 0usize..5,
        extra in 0usize..3,
    ) {
        let max = min + more;
        let n = max + queue + extra;
        let (rt, pool) = one_pool(|p| p.elastic(min, max).queue_capacity(queue));
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        prop_assert_eq!(burst(&pool, n, &rx), max + queue);
        drop(tx);
        finish(rt, &pool, max + queue);
    }
}
