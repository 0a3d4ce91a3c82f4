//! `Pool::map` (issue 15, item 2): fan-out with back-pressure. Results come back in the
//! order of the items, one per item, whatever the pool's size; a long iterator waits for
//! room instead of being refused; each failure is a value; items the pool refused because
//! it shut down come back with the mapping function bound to them.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bulkhead::{RefusalReason, Runtime, TaskError};
use support::{quiet_panics, HANG_GUARD};

#[test]
fn a_thousand_items_through_a_pool_of_six_slots_keep_their_order() {
    let rt = Runtime::builder()
        .pool("cpu", |p| p.threads(2).queue_capacity(4))
        .build()
        .unwrap();
    let cpu = rt.pool("cpu").unwrap();
    let out = cpu.map(0..1_000u64, |n| n * 3);
    assert_eq!(out.len(), 1_000);
    for (i, r) in out.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as u64 * 3);
    }
    let s = cpu.stats();
    assert_eq!((s.submitted, s.completed, s.refused()), (1_000, 1_000, 0));
}

#[test]
fn each_failure_is_a_value_in_its_place() {
    quiet_panics("odd item");
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).queue_capacity(0))
        .build()
        .unwrap();
    let out = rt.pool("p").unwrap().map(0..10u32, |n| {
        if n % 2 == 1 {
            panic!("odd item {n}");
        }
        n
    });
    for (i, r) in out.into_iter().enumerate() {
        match r {
            Ok(v) => assert_eq!((i % 2, v), (0, i as u32)),
            Err(e) => {
                assert_eq!(i % 2, 1);
                assert!(e.is_panic(), "{e}");
            }
        }
    }
}

#[test]
fn items_not_submitted_before_shutdown_come_back_with_the_function_bound() {
    let rt = Arc::new(
        Runtime::builder()
            .pool("p", |p| p.threads(1).queue_capacity(1))
            .build()
            .unwrap(),
    );
    let pool = rt.pool("p").unwrap();
    // The first item blocks the only worker until the runtime has begun shutting down.
    let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let mapper = std::thread::spawn(move || {
        pool.map(0..10u32, move |n| {
            if n == 0 {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv();
            }
            r.fetch_add(1, Ordering::SeqCst);
            n + 100
        })
    });
    started_rx.recv_timeout(HANG_GUARD).unwrap();
    // Item 1 is queued and item 2 waits for room once three submissions are counted (a
    // waiting submission counts when it starts waiting); then shut down, and let item 0 end.
    let p = rt.pool("p").unwrap();
    support::wait_until("items 1 and 2 to be submitted", || p.stats().submitted == 3);
    let rt2 = rt.clone();
    let shutdown = std::thread::spawn(move || rt2.shutdown());
    support::wait_until("the pool to close", || {
        rt.pool("p").unwrap().is_shutting_down()
    });
    drop(release_tx);
    let out = mapper.join().unwrap();
    assert!(shutdown.join().unwrap().is_clean());
    assert_eq!(out.len(), 10);
    let mut refused = 0;
    for (i, r) in out.into_iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(v, i as u32 + 100),
            Err(TaskError::Refused(work)) => {
                refused += 1;
                assert_eq!(work.pool(), "p");
                assert_eq!(work.reason(), RefusalReason::ShuttingDown);
                // Nothing is lost: run the item here.
                let task = work.into_task::<u32>().unwrap();
                assert_eq!(task(), i as u32 + 100);
            }
            Err(e) => panic!("item {i}: {e}"),
        }
    }
    // Items 0 and 1 were admitted before the close and ran on the pool; every other item
    // came back refused and ran here.
    assert_eq!(refused, 8);
    assert_eq!(ran.load(Ordering::SeqCst), 10);
}
