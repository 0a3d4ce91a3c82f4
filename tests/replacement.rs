//! Replacement budget for stuck workers: a pool whose workers all hang serves new work
//! through replacement threads, never more than its budget; a stuck worker is counted until
//! its task returns, then it retires.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use bulkhead::{Event, Pool, Runtime};
use support::{wait_until, EventLog, HANG_GUARD};

const STUCK_AFTER: Duration = Duration::from_millis(20);
const TICK: Duration = Duration::from_millis(10);

/// Occupies one worker with a task that hangs until `release` disconnects; returns once it
/// has started.
fn hang(pool: &Pool, release: &crossbeam_channel::Receiver<()>) {
    let (started_tx, started) = mpsc::channel();
    let r = release.clone();
    pool.execute(move || {
        started_tx.send(()).unwrap();
        let _ = r.recv();
    })
    .unwrap();
    started
        .recv_timeout(HANG_GUARD)
        .expect("hanging task did not start");
}

fn runtime(threads: usize, budget: usize, log: &EventLog) -> Runtime {
    Runtime::builder()
        .supervisor_interval(TICK)
        .on_event(log.listener())
        .pool("downstream", |p| {
            p.threads(threads)
                .queue_capacity(64)
                .stuck_after(STUCK_AFTER)
                .replacement_budget(budget)
        })
        .build()
        .unwrap()
}

fn replaced_events(log: &EventLog) -> usize {
    log.events()
        .iter()
        .filter(|e| matches!(e, Event::Replaced { .. }))
        .count()
}

#[test]
fn all_workers_hung_with_a_budget_of_two_serve_new_work_through_two_replacements() {
    let log = EventLog::default();
    let rt = runtime(2, 2, &log);
    let pool = rt.pool("downstream").unwrap();
    assert_eq!(pool.replacement_budget(), 2);
    let (release_first, first_rx) = crossbeam_channel::bounded::<()>(0);
    hang(&pool, &first_rx);
    hang(&pool, &first_rx);
    // Both workers hang; new work is served by the two replacements.
    for i in 0..20 {
        let mut h = pool.try_submit(move || i).unwrap();
        assert_eq!(h.join_timeout(HANG_GUARD).unwrap(), i);
    }
    // The two hangs may be flagged at different samples: the first replacement alone may
    // have served those; both are replaced soon after.
    wait_until("both hung workers to be replaced", || {
        pool.stats().replacements == 2
    });
    let s = pool.stats();
    assert_eq!((s.threads, s.replaced, s.replacements), (4, 2, 2), "{s:?}");
    log.wait_for("the second Replaced event", |_| replaced_events(&log) == 2);

    // The replacements hang too: the budget is spent, so no third replacement starts and
    // new work waits in the queue.
    let (release_second, second_rx) = crossbeam_channel::bounded::<()>(0);
    hang(&pool, &second_rx);
    hang(&pool, &second_rx);
    let mut waiting = pool.try_submit(|| "served").unwrap();
    log.wait_for("both replacements flagged stuck", |_| {
        log.events()
            .iter()
            .filter(|e| matches!(e, Event::Stuck { .. }))
            .count()
            >= 4
    });
    // Several more samples: still no thread beyond the budget.
    std::thread::sleep(TICK * 10);
    let s = pool.stats();
    assert_eq!((s.threads, s.replaced, s.replacements), (4, 2, 2), "{s:?}");
    assert!(waiting.try_join().unwrap_err().is_timeout());

    // The first two return: they retire, freeing the budget, and the supervisor replaces
    // the two stuck replacements; the waiting task is served.
    drop(release_first);
    assert_eq!(waiting.join_timeout(HANG_GUARD).unwrap(), "served");
    wait_until("the first stuck workers to retire", || {
        let s = pool.stats();
        s.replacements == 4 && s.threads == 4 && s.replaced == 2
    });
    drop(release_second);
    wait_until("every stuck worker to retire", || {
        let s = pool.stats();
        s.replaced == 0 && s.threads == 2
    });
    assert_eq!(pool.try_submit(|| 1).unwrap().join().unwrap(), 1);
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    let s = pool.stats();
    assert_eq!(s.submitted, s.refused() + s.finished(), "{s:?}");
    assert_eq!(s.completed, 4 + 20 + 1 + 1, "{s:?}");
}

#[test]
fn without_a_budget_stuck_workers_are_reported_not_replaced() {
    let log = EventLog::default();
    let rt = runtime(1, 0, &log);
    let pool = rt.pool("downstream").unwrap();
    let (release, rx) = crossbeam_channel::bounded::<()>(0);
    hang(&pool, &rx);
    let mut waiting = pool.try_submit(|| ()).unwrap();
    log.wait_for("a stuck event", |e| matches!(e, Event::Stuck { .. }));
    std::thread::sleep(TICK * 5);
    assert!(waiting.try_join().unwrap_err().is_timeout());
    let s = pool.stats();
    assert_eq!((s.threads, s.replacements), (1, 0), "{s:?}");
    assert_eq!(replaced_events(&log), 0);
    drop(release);
    waiting.join_timeout(HANG_GUARD).unwrap();
}

#[test]
fn a_runaway_hanging_every_call_never_gets_more_than_its_budget() {
    let log = EventLog::default();
    let rt = runtime(1, 3, &log);
    let pool = rt.pool("downstream").unwrap();
    let (release, rx) = crossbeam_channel::bounded::<()>(0);
    // Keep offering hanging work; every replacement hangs in turn.
    for _ in 0..4 {
        hang(&pool, &rx);
    }
    for _ in 0..10 {
        let r = rx.clone();
        pool.execute(move || {
            let _ = r.recv();
        })
        .unwrap();
    }
    wait_until("the budget to be spent", || pool.stats().replacements == 3);
    std::thread::sleep(TICK * 10);
    let s = pool.stats();
    assert_eq!((s.threads, s.replaced, s.replacements), (4, 3, 3), "{s:?}");
    assert!(pool.workers().len() <= 4);
    drop(release);
    let report = rt.shutdown_timeout(HANG_GUARD);
    assert!(report.is_clean(), "{report}");
}
