//! Live resizing: thread count (fixed or min/max) and queue capacity change at runtime with
//! the build-time validation; shrinking is cooperative; no task is lost.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bulkhead::{ResizeErrorKind, Runtime};
use support::{wait_until, HANG_GUARD};

#[test]
fn resizing_up_and_down_under_load_loses_no_task() {
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.threads(2)
                .max_threads_limit(8)
                .queue_capacity(64)
                .queue_capacity_limit(1024)
                .keep_alive(Duration::from_millis(5))
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicU64::new(0));
    let submitters: Vec<_> = (0..3)
        .map(|t| {
            let pool = pool.clone();
            let ran = ran.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut accepted, mut handles) = (0u64, Vec::new());
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) && i < 20_000 {
                    i += 1;
                    let r = ran.clone();
                    let work = move || {
                        r.fetch_add(1, Ordering::Relaxed);
                        std::hint::black_box(i)
                    };
                    if t == 0 {
                        if let Ok(h) = pool.try_submit(work) {
                            handles.push(h);
                        }
                    } else if pool
                        .execute(move || {
                            work();
                        })
                        .is_ok()
                    {
                        accepted += 1;
                    }
                }
                for h in handles {
                    h.join().unwrap();
                    accepted += 1;
                }
                accepted
            })
        })
        .collect();
    let sizes = [
        (1, 1),
        (8, 8),
        (3, 3),
        (1, 6),
        (2, 2),
        (6, 8),
        (1, 1),
        (4, 4),
    ];
    let caps = [1, 1024, 16, 200, 64];
    for round in 0..40 {
        let (min, max) = sizes[round % sizes.len()];
        pool.set_thread_range(min, max).unwrap();
        pool.set_queue_capacity(caps[round % caps.len()]).unwrap();
        assert!(pool.threads() <= 8);
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    let accepted: u64 = submitters.into_iter().map(|s| s.join().unwrap()).sum();
    pool.set_threads(2).unwrap();
    wait_until("the queue to drain", || {
        let s = pool.stats();
        s.queued == 0 && s.busy == 0 && s.finished() == s.accepted()
    });
    let s = pool.stats();
    // The accounting identity, and every accepted task ran exactly once.
    assert_eq!(s.submitted, s.refused() + s.finished(), "{s:?}");
    assert_eq!(s.accepted(), accepted, "{s:?}");
    assert_eq!(s.completed, accepted, "{s:?}");
    assert_eq!(ran.load(Ordering::Relaxed), accepted);
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
}

#[test]
fn shrinking_retires_idle_workers_first_and_lets_busy_ones_finish() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(4).max_threads_limit(4))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = crossbeam_channel::bounded::<()>(0);
    let busy: Vec<_> = (0..2)
        .map(|i| {
            let (s, r) = (started_tx.clone(), release_rx.clone());
            pool.try_submit(move || {
                s.send(()).unwrap();
                let _ = r.recv();
                i
            })
            .unwrap()
        })
        .collect();
    for _ in 0..2 {
        started.recv_timeout(HANG_GUARD).unwrap();
    }
    pool.set_threads(1).unwrap();
    // The two idle workers exit at once; the two busy ones are not interrupted.
    wait_until("the idle workers to exit", || pool.threads() == 2);
    assert_eq!(pool.stats().busy, 2);
    drop(release);
    let results: Vec<_> = busy.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, vec![0, 1]);
    // One of the two finishes its task and exits: one thread serves on.
    wait_until("the pool to reach one thread", || pool.threads() == 1);
    assert_eq!(pool.try_submit(|| 9).unwrap().join().unwrap(), 9);
    // And growing starts threads at once.
    pool.set_threads(3).unwrap();
    assert_eq!(pool.threads(), 3);
    assert_eq!(pool.thread_range(), (3, 3));
}

#[test]
fn queue_capacity_resizes_as_an_admission_limit() {
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.threads(1).queue_capacity(4).queue_capacity_limit(16)
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let mut gate = support::occupy_all(&pool);
    let mut handles: Vec<_> = (0..4)
        .map(|i| pool.try_submit(move || i).unwrap())
        .collect();
    assert!(pool.try_submit(|| 0).unwrap_err().is_full());
    pool.set_queue_capacity(8).unwrap();
    assert_eq!(pool.queue_capacity(), 8);
    handles.extend((4..8).map(|i| pool.try_submit(move || i).unwrap()));
    assert!(pool.try_submit(|| 0).unwrap_err().is_full());
    let err = pool
        .submit_timeout(|| 0, Duration::from_millis(5))
        .unwrap_err();
    assert!(err.is_timeout());
    // Shrinking below what is queued keeps the queued tasks, refuses new ones.
    pool.set_queue_capacity(2).unwrap();
    assert!(pool.try_submit(|| 0).unwrap_err().is_full());
    assert_eq!(pool.stats().queue_capacity, 2);
    gate.open();
    let got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    assert_eq!(pool.try_submit(|| 42).unwrap().join().unwrap(), 42);
}

#[test]
fn resizing_is_validated_like_the_build() {
    let rt = Runtime::builder()
        .pool("fixed", |p| p.threads(2))
        .pool("resizable", |p| p.threads(2).max_threads_limit(4))
        .build()
        .unwrap();
    let fixed = rt.pool("fixed").unwrap();
    let err = fixed.set_threads(3).unwrap_err();
    assert_eq!((err.pool(), err.field()), ("fixed", "max_threads_limit"));
    assert!(matches!(err.kind(), ResizeErrorKind::NotResizable));
    let err = fixed.set_queue_capacity(3).unwrap_err();
    assert_eq!(err.field(), "queue_capacity_limit");
    assert!(matches!(err.kind(), ResizeErrorKind::NotResizable));

    let pool = rt.pool("resizable").unwrap();
    for (min, max, field) in [(0, 0, "threads"), (5, 5, "threads")] {
        let err = pool.set_threads(min.max(max)).unwrap_err();
        assert_eq!((err.pool(), err.field()), ("resizable", field), "{err}");
        assert!(matches!(err.kind(), ResizeErrorKind::OutOfRange));
    }
    for (min, max) in [(0, 2), (3, 2), (1, 5)] {
        let err = pool.set_thread_range(min, max).unwrap_err();
        assert_eq!(err.field(), "elastic", "{err}");
    }
    assert_eq!(pool.threads(), 2);

    for (field, build) in [
        (
            "max_threads_limit",
            Runtime::builder().pool("p", |p| p.threads(4).max_threads_limit(2)),
        ),
        (
            "queue_capacity_limit",
            Runtime::builder().pool("p", |p| p.queue_capacity(8).queue_capacity_limit(4)),
        ),
        (
            "queue_capacity",
            Runtime::builder().pool("p", |p| p.queue_capacity(0).queue_capacity_limit(4)),
        ),
        (
            "replacement_budget",
            Runtime::builder().pool("p", |p| p.replacement_budget(100_000)),
        ),
    ] {
        let err = build.build().unwrap_err();
        assert_eq!((err.pool(), err.field()), (Some("p"), field), "{err}");
    }
}
