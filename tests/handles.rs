//! Task handles: join, join_timeout, try_join, cancel, detach, and awaiting from async code.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bulkhead::{Pool, Runtime, TaskError};
use support::{occupy_all, HANG_GUARD};

fn pool(threads: usize) -> (Runtime, Pool) {
    let rt = Runtime::builder()
        .pool("h", |p| p.threads(threads).queue_capacity(64))
        .build()
        .unwrap();
    let pool = rt.pool("h").unwrap();
    (rt, pool)
}

#[test]
fn join_timeout_times_out_then_succeeds() {
    let (_rt, pool) = pool(1);
    let mut gate = occupy_all(&pool);
    let mut h = pool.try_submit(|| "late").unwrap();
    assert!(h
        .join_timeout(Duration::from_millis(10))
        .unwrap_err()
        .is_timeout());
    assert!(h.try_join().unwrap_err().is_timeout());
    assert!(!h.is_finished());
    gate.open();
    assert_eq!(h.join_timeout(HANG_GUARD).unwrap(), "late");
    // The result is gone once taken.
    assert!(matches!(h.try_join(), Err(TaskError::AlreadyJoined)));
}

#[test]
fn try_join_returns_result_once_finished() {
    let (_rt, pool) = pool(1);
    let mut h = pool.try_submit(|| 5).unwrap();
    support::wait_until("task to finish", || h.is_finished());
    assert_eq!(h.try_join().unwrap(), 5);
}

#[test]
fn cancel_before_start_never_runs_and_drops_closure() {
    let (rt, pool) = pool(1);
    let mut gate = occupy_all(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    struct OnDrop(Arc<AtomicBool>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let guard = OnDrop(dropped.clone());
    let r = ran.clone();
    let h = pool
        .try_submit(move || {
            let _g = &guard;
            r.store(true, Ordering::SeqCst);
        })
        .unwrap();
    assert!(h.cancel());
    // The closure was dropped by cancel, on this thread.
    assert!(dropped.load(Ordering::SeqCst));
    assert!(!h.cancel(), "cancelling twice reports false");
    gate.open();
    assert!(h.join().unwrap_err().is_cancelled());
    rt.shutdown();
    assert!(!ran.load(Ordering::SeqCst));
    let s = pool.stats();
    assert_eq!(s.cancelled, 1);
    assert_eq!(s.completed, 1); // the occupier
}

#[test]
fn cancel_after_start_returns_false_and_task_completes() {
    let (_rt, pool) = pool(1);
    let (started_tx, started_rx) = crossbeam_channel::bounded(1);
    let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
    let h = pool
        .try_submit(move || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            9
        })
        .unwrap();
    started_rx.recv_timeout(HANG_GUARD).unwrap();
    assert!(!h.cancel());
    go_tx.send(()).unwrap();
    assert_eq!(h.join().unwrap(), 9);
}

#[test]
fn dropping_a_handle_detaches_the_task() {
    let (rt, pool) = pool(2);
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let c = count.clone();
        drop(
            pool.try_submit(move || c.fetch_add(1, Ordering::SeqCst))
                .unwrap(),
        );
    }
    rt.shutdown();
    assert_eq!(count.load(Ordering::SeqCst), 50);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "tokio's runtime is slow under Miri and not ours to check"
)]
fn await_from_tokio() {
    let (_rt, pool) = pool(2);
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let p = pool.clone();
    let v = tokio_rt.block_on(async move {
        let a = p.try_submit(|| 20).unwrap();
        let b = p.submit_timeout(|| 22, Duration::from_millis(50)).unwrap();
        a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(v, 42);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "tokio's runtime is slow under Miri and not ours to check"
)]
fn await_a_task_that_finishes_later_from_tokio() {
    let (_rt, pool) = pool(1);
    let mut gate = occupy_all(&pool);
    let h = pool.try_submit(|| "woken").unwrap();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let join = tokio_rt.spawn(h);
    gate.open();
    let v = tokio_rt.block_on(async { tokio::time::timeout(HANG_GUARD, join).await });
    assert_eq!(v.unwrap().unwrap().unwrap(), "woken");
}

/// The smallest executor: poll, park until woken, poll again.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct ThreadWaker(std::thread::Thread, AtomicUsize);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.unpark();
        }
    }
    let tw = Arc::new(ThreadWaker(std::thread::current(), AtomicUsize::new(0)));
    let waker = Waker::from(tw.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "future never completed"
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn await_from_a_hand_written_executor() {
    let (_rt, pool) = pool(1);
    let mut gate = occupy_all(&pool);
    let h = pool.try_submit(|| 1234).unwrap();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        gate.open();
    });
    assert_eq!(block_on(h).unwrap(), 1234);
    opener.join().unwrap();
    // Failures come through the future too.
    let h = pool.try_submit(|| -> u8 { panic!("in a future") }).unwrap();
    assert!(block_on(h).unwrap_err().is_panic());
}
