//! The adaptive concurrency limit in a real pool (issue 16, item 2): the controller's limit
//! is the pool's admission limit, moves from measured latency, and is reported in stats,
//! events and the Prometheus export. The controllers' behaviour on scripted latency sequences
//! (settling, recovering, never oscillating) is tested in `src/adaptive.rs`; here only
//! outcomes that scheduling cannot change: a task that sleeps 20 ms is slower than a 5 ms
//! timeout, always.

mod support;

use std::time::Duration;

use bulkhead::{Event, LimitAlgorithm, Pool, Runtime};
use support::{EventLog, HANG_GUARD};

const SLOW_AIMD: LimitAlgorithm = LimitAlgorithm::Aimd {
    timeout: Duration::from_millis(5),
    backoff: 0.5,
};

fn slow_tasks(pool: &Pool, n: usize) {
    for _ in 0..n {
        let mut h = pool
            .submit(|| std::thread::sleep(Duration::from_millis(20)))
            .unwrap();
        h.join_timeout(HANG_GUARD).unwrap();
    }
}

#[test]
fn slow_tasks_shrink_the_limit_and_admission_follows_it() {
    let events = EventLog::default();
    let rt = Runtime::builder()
        .supervisor_interval(Duration::from_millis(10))
        .on_event(events.listener())
        .pool("p", |p| {
            p.threads(2).queue_capacity(8).adaptive_limit(SLOW_AIMD, 1)
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    // Wide open at the start: threads + queue capacity.
    assert_eq!(pool.stats().concurrency_limit, Some(10));
    // Every sample is slow (20 ms > 5 ms): 10 -> 5 -> 2 (2.5) -> 1, the minimum.
    slow_tasks(&pool, 4);
    assert_eq!(pool.stats().concurrency_limit, Some(1));
    // Admission follows: one task in flight, the next is refused as full although the pool
    // has two threads and a queue of eight.
    let gate = occupy_all_but_one(&pool);
    assert!(pool.execute(|| ()).unwrap_err().is_full());
    // No task ends while the gate holds: the exported limit is still 1.
    let text = rt.snapshot().to_prometheus();
    assert!(
        text.contains("bulkhead_concurrency_limit{pool=\"p\"} 1"),
        "{text}"
    );
    // The moves are reported as events, with the controller's reason: every move so far
    // was for a slow task (none can happen while the gate holds the only slot).
    let e = events.wait_for("a limit change", |e| {
        matches!(e, Event::LimitChanged { .. })
    });
    match e {
        Event::LimitChanged { from, why, .. } => {
            assert_eq!(from, 10);
            assert_eq!(why, "slow");
        }
        _ => unreachable!(),
    }
    drop(gate);
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
}

/// Occupies exactly one slot (the limit is 1): a task blocked on the returned gate.
fn occupy_all_but_one(pool: &Pool) -> crossbeam_channel::Sender<()> {
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    pool.execute(move || {
        let _ = rx.recv();
    })
    .unwrap();
    tx
}

#[test]
fn the_adaptive_limit_is_a_configuration_key_and_checked() {
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.threads(1)
                .queue_capacity(3)
                .set("adaptive_limit", "vegas, 2")
                .unwrap()
        })
        .build()
        .unwrap();
    assert_eq!(rt.pool("p").unwrap().stats().concurrency_limit, Some(4));
    drop(rt);
    let err = Runtime::builder()
        .pool("p", |p| {
            p.threads(1)
                .queue_capacity(3)
                .adaptive_limit(LimitAlgorithm::Vegas, 9)
        })
        .build()
        .unwrap_err();
    assert_eq!((err.pool(), err.field()), (Some("p"), "adaptive_limit"));
    assert!(err.to_string().contains("got 9"), "{err}");
    let err = Runtime::builder()
        .pool("p", |p| {
            p.adaptive_limit(
                LimitAlgorithm::Aimd {
                    timeout: Duration::from_secs(1),
                    backoff: 2.0,
                },
                1,
            )
        })
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "adaptive_limit");
}

#[test]
fn gradient2_starts_at_its_minimum_and_admission_follows_it() {
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.threads(2)
                .queue_capacity(8)
                .adaptive_limit(LimitAlgorithm::GRADIENT2, 2)
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    // No queue beyond the minimum until it has earned one: two tasks in flight, the third
    // is refused as full although the queue has room for eight.
    assert_eq!(pool.stats().concurrency_limit, Some(2));
    let a = occupy_all_but_one(&pool);
    let b = occupy_all_but_one(&pool);
    assert!(pool.execute(|| ()).unwrap_err().is_full());
    drop((a, b));
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
}
