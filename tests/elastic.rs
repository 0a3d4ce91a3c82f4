//! Elastic pools: threads start before work queues up, the maximum is a hard wall, the queue
//! bound still applies, and threads above the minimum exit after the keep-alive.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bulkhead::{BuildErrorKind, Pool, Runtime};
use support::{wait_until, HANG_GUARD};

/// Submits a task that reports its start and then blocks until `release` disconnects.
fn blocking(
    pool: &Pool,
    started: &mpsc::Sender<()>,
    release: &crossbeam_channel::Receiver<()>,
) -> bulkhead::TaskHandle<()> {
    let (s, r) = (started.clone(), release.clone());
    pool.try_submit(move || {
        s.send(()).unwrap();
        let _ = r.recv();
    })
    .unwrap()
}

#[test]
fn grows_to_its_maximum_before_queueing_and_shrinks_back_after_keep_alive() {
    let rt = Runtime::builder()
        .pool("blocking", |p| {
            p.elastic(1, 4)
                .queue_capacity(2)
                .keep_alive(Duration::from_millis(30))
        })
        .build()
        .unwrap();
    let pool = rt.pool("blocking").unwrap();
    assert_eq!(pool.thread_range(), (1, 4));
    assert_eq!(pool.threads(), 1);
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = crossbeam_channel::bounded::<()>(0);
    // Four blocking tasks, one after the other: each starts a thread instead of waiting in
    // the queue behind the busy ones (Java's ThreadPoolExecutor would queue tasks 2 and 3
    // until the queue is full, and run only one).
    let mut handles = Vec::new();
    for n in 1..=4 {
        handles.push(blocking(&pool, &started_tx, &release_rx));
        started
            .recv_timeout(HANG_GUARD)
            .expect("a blocking task waited in the queue instead of getting a thread");
        assert_eq!(pool.threads(), n);
    }
    // At the maximum, work queues; the queue bound still applies; no fifth thread.
    handles.push(blocking(&pool, &started_tx, &release_rx));
    handles.push(blocking(&pool, &started_tx, &release_rx));
    let err = pool.try_submit(|| ()).unwrap_err();
    assert!(err.is_full(), "{err}");
    let s = pool.stats();
    assert_eq!((s.threads, s.busy, s.queued), (4, 4, 2), "{s:?}");
    assert!(pool.workers().len() <= 4);
    drop(release);
    for h in handles {
        h.join().unwrap();
    }
    // Idle for the keep-alive, the three extra threads exit; the minimum stays.
    wait_until("the pool to shrink back to its minimum", || {
        pool.threads() == 1
    });
    assert_eq!(pool.try_submit(|| 5).unwrap().join().unwrap(), 5);
    rt.shutdown();
    let s = pool.stats();
    assert_eq!((s.completed, s.refused_full), (7, 1), "{s:?}");
    assert_eq!(s.submitted, s.refused() + s.finished(), "{s:?}");
}

#[test]
fn never_exceeds_its_maximum_under_a_burst() {
    let rt = Runtime::builder()
        .pool("blocking", |p| {
            p.elastic(1, 3)
                .queue_capacity(10_000)
                .keep_alive(Duration::from_secs(60))
        })
        .build()
        .unwrap();
    let pool = rt.pool("blocking").unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            let done = done.clone();
            let peak = peak.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let d = done.clone();
                    pool.execute(move || {
                        std::thread::sleep(Duration::from_micros(50));
                        d.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                    peak.fetch_max(pool.threads(), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    wait_until("all tasks", || done.load(Ordering::Relaxed) == 2000);
    assert!(peak.load(Ordering::Relaxed) <= 3, "{peak:?}");
    assert!(pool.threads() <= 3);
    assert!(pool.workers().len() <= 3);
    rt.shutdown();
    let s = pool.stats();
    assert_eq!(s.completed, 2000, "{s:?}");
}

#[test]
fn a_minimum_of_zero_or_a_maximum_below_it_is_a_build_error() {
    for (min, max) in [(0, 4), (3, 2), (1, 100_000)] {
        let err = Runtime::builder()
            .pool("p", |p| p.elastic(min, max))
            .build()
            .unwrap_err();
        assert_eq!((err.pool(), err.field()), (Some("p"), "elastic"), "{err}");
        assert!(matches!(err.kind(), BuildErrorKind::OutOfRange));
    }
    let err = Runtime::builder()
        .pool("p", |p| p.elastic(1, 2).keep_alive(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "keep_alive");
}

#[test]
fn shutdown_waits_for_threads_started_after_build() {
    let rt = Runtime::builder()
        .pool("blocking", |p| p.elastic(1, 4).queue_capacity(8))
        .build()
        .unwrap();
    let pool = rt.pool("blocking").unwrap();
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = crossbeam_channel::bounded::<()>(0);
    let handles: Vec<_> = (0..3)
        .map(|_| blocking(&pool, &started_tx, &release_rx))
        .collect();
    for _ in 0..3 {
        started.recv_timeout(HANG_GUARD).unwrap();
    }
    let waiter = {
        let rt_pool = pool.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(rt_pool.threads(), 3);
            drop(release);
        })
    };
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    waiter.join().unwrap();
    for h in handles {
        h.join().unwrap();
    }
    assert!(pool.workers().iter().all(|w| w.exited));
    assert_eq!(pool.threads(), 0);
}
