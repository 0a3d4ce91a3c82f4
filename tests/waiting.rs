//! Admission that waits for room (issue 15, item 1): `Pool::submit` blocks a thread until a
//! slot frees; `Pool::submit_async` awaits one without blocking the executor, from real
//! tokio, and is cancel-safe: a future dropped while waiting admits nothing, holds no slot,
//! counts nothing, and drops its closure unrun. Both are refused, closure back, when the
//! pool shuts down while they wait.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bulkhead::{Pool, RefusalReason, Runtime};
use support::{occupy_all, HANG_GUARD};

fn one_pool(threads: usize, queue: usize) -> (Runtime, Pool) {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(threads).queue_capacity(queue))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    (rt, pool)
}

/// Fills every slot of `pool` (threads busy, queue full) with tasks that end when the
/// returned sender is dropped.
fn fill(pool: &Pool, queue: usize) -> (support::Gate, crossbeam_channel::Sender<()>) {
    let gate = occupy_all(pool);
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    for _ in 0..queue {
        let rx = rx.clone();
        pool.execute(move || {
            let _ = rx.recv();
        })
        .unwrap();
    }
    assert!(pool.execute(|| ()).unwrap_err().is_full());
    (gate, tx)
}

/// Counts how often a value is dropped: proves a closure was dropped exactly once, unrun.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn submit_blocks_until_a_slot_frees_then_runs_the_task() {
    let (rt, pool) = one_pool(1, 1);
    let (gate, queued) = fill(&pool, 1);
    let p = pool.clone();
    let (returned_tx, returned_rx) = crossbeam_channel::bounded(1);
    let submitter = std::thread::spawn(move || {
        let h = p.submit(|| 42);
        returned_tx.send(()).unwrap();
        h.map_err(|e| e.reason())
    });
    // Every slot is held: the submitter cannot have been admitted.
    assert!(returned_rx.try_recv().is_err());
    drop(gate);
    drop(queued);
    let h = submitter
        .join()
        .unwrap()
        .expect("admitted once a slot freed");
    assert_eq!(h.join().unwrap(), 42);
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    let s = pool.stats();
    // The held task, the queued one, the refused probe and the waiting submission.
    assert_eq!((s.submitted, s.completed, s.refused()), (4, 3, 1));
}

#[test]
fn submit_waiting_for_room_is_refused_with_its_closure_when_the_pool_closes() {
    let (rt, pool) = one_pool(1, 0);
    let (gate, _none) = fill(&pool, 0);
    let p = pool.clone();
    let submitter = std::thread::spawn(move || match p.submit(|| 7) {
        Ok(_) => panic!("admitted into a closed pool"),
        Err(e) => (e.reason(), (e.into_inner())()),
    });
    let rt = Arc::new(rt);
    let r = rt.clone();
    let shutdown = std::thread::spawn(move || r.shutdown());
    assert_eq!(submitter.join().unwrap(), (RefusalReason::ShuttingDown, 7));
    drop(gate);
    assert!(shutdown.join().unwrap().is_clean());
}

#[test]
fn submit_async_waits_without_blocking_the_executor() {
    let (rt, pool) = one_pool(1, 0);
    let (gate, _none) = fill(&pool, 0);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let value = tokio.block_on(async {
        let p = pool.clone();
        let waiting = tokio::spawn(async move {
            let h = p.submit_async(|| 6 * 7).await.map_err(|e| e.reason())?;
            h.await.map_err(|_| RefusalReason::ShuttingDown)
        });
        // On the same single executor thread, other tasks keep running while it waits.
        let mut ticks = 0;
        while ticks < 20 {
            tokio::task::yield_now().await;
            ticks += 1;
        }
        assert!(
            !waiting.is_finished(),
            "admitted although every slot was held"
        );
        drop(gate);
        tokio::time::timeout(HANG_GUARD, waiting)
            .await
            .expect("the waiting submission hung")
            .unwrap()
    });
    assert_eq!(value, Ok(42));
    drop(rt);
}

#[test]
fn a_dropped_admission_admits_nothing_holds_no_slot_and_drops_its_closure_unrun() {
    let (rt, pool) = one_pool(1, 1);
    let (gate, queued) = fill(&pool, 1);
    let before = pool.stats();
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    tokio.block_on(async {
        for _ in 0..100 {
            let (d, r) = (DropCount(drops.clone()), ran.clone());
            let fut = pool.submit_async(move || {
                let _keep = d;
                r.fetch_add(1, Ordering::SeqCst);
            });
            // Polled at least once (it registers its waker), then dropped while waiting.
            let outcome = tokio::time::timeout(Duration::from_millis(1), fut).await;
            assert!(outcome.is_err(), "admitted although every slot was held");
        }
    });
    assert_eq!(drops.load(Ordering::SeqCst), 100);
    let after = pool.stats();
    assert_eq!(
        after.submitted, before.submitted,
        "a dropped future was counted"
    );
    // No slot leaked: once the held tasks end, the full capacity is there again.
    drop(gate);
    drop(queued);
    support::wait_until("the held tasks to end", || pool.stats().completed == 2);
    let (gate, queued) = fill(&pool, 1);
    drop((gate, queued));
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn submit_async_is_refused_with_its_closure_when_the_pool_closes_while_waiting() {
    let (rt, pool) = one_pool(1, 0);
    let (gate, _none) = fill(&pool, 0);
    let rt = Arc::new(rt);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let p = pool.clone();
    let waiting = tokio.spawn(async move {
        match p.submit_async(|| 5).await {
            Ok(_) => panic!("admitted into a closed pool"),
            Err(e) => (e.reason(), (e.into_inner())()),
        }
    });
    let r = rt.clone();
    let shutdown = std::thread::spawn(move || r.shutdown());
    let got = tokio.block_on(async { tokio::time::timeout(HANG_GUARD, waiting).await });
    assert_eq!(got.unwrap().unwrap(), (RefusalReason::ShuttingDown, 5));
    drop(gate);
    assert!(shutdown.join().unwrap().is_clean());
}

#[test]
fn stress_many_async_submitters_through_a_small_pool_lose_nothing() {
    const TASKS: usize = if cfg!(miri) { 20 } else { 400 };
    const SUBMITTERS: usize = 8;
    let (rt, pool) = one_pool(1, 2);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let dropped_unrun = Arc::new(AtomicUsize::new(0));
    let (admitted, gave_up) = tokio.block_on(async {
        let mut joins = Vec::new();
        for s in 0..SUBMITTERS {
            let (pool, ran, dropped_unrun) = (pool.clone(), ran.clone(), dropped_unrun.clone());
            joins.push(tokio::spawn(async move {
                let (mut admitted, mut gave_up) = (0usize, 0usize);
                let mut handles = Vec::new();
                for i in 0..TASKS {
                    let (ran, d) = (ran.clone(), DropCount(dropped_unrun.clone()));
                    let fut = pool.submit_async(move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                        std::mem::forget(d); // ran: not counted as dropped unrun
                    });
                    // Every third submission of some submitters gives up quickly.
                    let patience = if s % 2 == 0 && i % 3 == 0 {
                        Duration::from_micros(50)
                    } else {
                        HANG_GUARD
                    };
                    match tokio::time::timeout(patience, fut).await {
                        Ok(Ok(h)) => {
                            admitted += 1;
                            handles.push(h);
                        }
                        Ok(Err(e)) => panic!("refused: {e}"),
                        Err(_) => gave_up += 1,
                    }
                }
                for h in handles {
                    h.await.unwrap();
                }
                (admitted, gave_up)
            }));
        }
        let mut totals = (0, 0);
        for j in joins {
            let (a, g) = tokio::time::timeout(HANG_GUARD, j).await.unwrap().unwrap();
            totals.0 += a;
            totals.1 += g;
        }
        totals
    });
    assert_eq!(admitted + gave_up, SUBMITTERS * TASKS);
    assert_eq!(ran.load(Ordering::SeqCst), admitted);
    assert_eq!(dropped_unrun.load(Ordering::SeqCst), gave_up);
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    let s = pool.stats();
    assert_eq!(s.submitted, admitted as u64);
    assert_eq!(s.completed, admitted as u64);
    assert_eq!(s.refused(), 0);
}

#[test]
fn a_capture_hook_that_panics_at_async_admission_gives_its_slot_back() {
    use std::sync::atomic::AtomicBool;
    support::quiet_panics("capture refuses");
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    let rt = Runtime::builder()
        .pool("p", move |p| {
            p.threads(1).queue_capacity(1).context(
                move || {
                    if f.load(Ordering::SeqCst) {
                        panic!("capture refuses");
                    }
                },
                |()| (),
            )
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    fail.store(true, Ordering::SeqCst);
    let joined = tokio.block_on(async {
        let p = pool.clone();
        tokio::spawn(async move { p.submit_async(|| 1).await.map(drop).map_err(drop) }).await
    });
    assert!(joined.unwrap_err().is_panic());
    fail.store(false, Ordering::SeqCst);
    // Both slots are free: a thread and the queue slot.
    let (gate, queued) = fill(&pool, 1);
    drop((gate, queued));
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
}
