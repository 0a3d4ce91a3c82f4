//! Containment inside a pool: a panicking task never kills its worker.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bulkhead::Runtime;

#[test]
fn a_thousand_panicking_tasks_leave_the_pool_serving() {
    support::quiet_panics("storm");
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(2).queue_capacity(1024))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let handles: Vec<_> = (0..500)
        .map(|i| {
            pool.try_submit(move || -> u32 { panic!("storm {i}") })
                .unwrap()
        })
        .collect();
    for i in 0..500 {
        pool.execute(move || panic!("storm detached {i}")).unwrap();
    }
    for (i, h) in handles.into_iter().enumerate() {
        let err = h.join().unwrap_err();
        assert_eq!(err.panic_message(), Some(format!("storm {i}").as_str()));
    }
    // Both workers are still alive and serving.
    let ran = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..100)
        .map(|_| {
            let r = ran.clone();
            pool.try_submit(move || {
                r.fetch_add(1, Ordering::SeqCst);
                std::thread::current().name().unwrap().to_owned()
            })
            .unwrap()
        })
        .collect();
    for h in hs {
        assert!(h.join().unwrap().starts_with("p-"));
    }
    rt.shutdown();
    let s = pool.stats();
    assert_eq!(s.panicked, 1000);
    assert_eq!(s.completed, 100);
    assert!(pool.workers().iter().all(|w| w.exited));
}

#[test]
fn panic_payload_can_be_resumed() {
    support::quiet_panics("payload");
    let rt = Runtime::builder().pool("p", |p| p).build().unwrap();
    let err = rt
        .pool("p")
        .unwrap()
        .try_submit(|| std::panic::panic_any(String::from("payload 7")))
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err.to_string(), "task panicked: payload 7");
    let payload = err.into_panic().unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::panic::resume_unwind(payload)
    }))
    .unwrap_err();
    assert_eq!(caught.downcast_ref::<String>().unwrap(), "payload 7");
}

#[test]
fn a_panic_in_a_captured_values_drop_does_not_kill_the_worker() {
    support::quiet_panics("drop bomb");
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("drop bomb");
        }
    }
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let bomb = Bomb;
    // The closure's captures are dropped when it returns: inside catch_unwind.
    let r = pool.try_submit(move || drop(bomb)).unwrap().join();
    assert!(r.unwrap_err().is_panic());
    assert_eq!(pool.try_submit(|| 3).unwrap().join().unwrap(), 3);
}

#[test]
fn a_panic_dropping_a_detached_result_does_not_kill_the_worker() {
    support::quiet_panics("result bomb");
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("result bomb");
        }
    }
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    // Hold the worker so that every handle is dropped before its task ends: the worker then
    // holds the last reference and drops the result itself.
    let mut gate = support::occupy_all(&pool);
    for _ in 0..10 {
        drop(pool.try_submit(|| Bomb).unwrap());
    }
    gate.open();
    assert_eq!(pool.try_submit(|| 3).unwrap().join().unwrap(), 3);
    rt.shutdown();
    assert_eq!(pool.stats().completed, 12); // with the gate's task
    assert!(pool.workers()[0].exited);
}
