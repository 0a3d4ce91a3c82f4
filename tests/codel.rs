//! Queue-delay control (CoDel) and the shed handler: under a standing queue, work older than
//! the target is shed and fresh work completes; with CoDel off nothing changes; fire-and-forget
//! tasks that are not run reach the handler with their reason.
//!
//! The standing queue is made deterministic: the worker is held on a gate while tasks queue
//! (so they all wait longer than the target), then the first of them runs for longer than the
//! interval, so every later one is dequeued after the controller's interval has passed.
//!
//! Nothing here assumes a task is picked up quickly: on a busy machine (the suite must pass
//! with the CPUs 2x oversubscribed) a worker can take longer than a 5 ms target or a 10 ms
//! `max_queue_wait` to wake. So lateness is built (a held worker, a sleep that has passed
//! before it is released), a task the test needs run is checked to have met an idle
//! controller, a blocking helper that itself expired or was shed is counted, and where a
//! task may legitimately be late the test checks the lateness it reports instead.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use bulkhead::{BuildErrorKind, Pool, PoolStats, Runtime, ShedReason, ShedTask, TaskError};
use support::{block_worker_counted, occupy_all, wait_until, HANG_GUARD};

const TARGET: Duration = Duration::from_millis(5);
const INTERVAL: Duration = Duration::from_millis(40);

fn identity_holds(s: &PoolStats) -> bool {
    s.submitted
        == s.refused()
            + s.completed
            + s.panicked
            + s.expired
            + s.shed
            + s.cancelled
            + s.queued as u64
            + s.busy as u64
}

/// Queues `old` tasks behind a held worker, makes the first of them outlast the interval,
/// and returns the handles of the rest and how many of them ran.
///
/// On a loaded machine the task that holds the worker may itself have waited longer than
/// the target (a slow wake-up) and armed the controller; then `first` may already be shed.
/// Either way every task behind `first` is dequeued more than an interval after the
/// controller was armed, so all of them are shed. If the controller is still armed from
/// earlier work, the blocking task itself may be shed: it is submitted again, and counted.
struct Standing {
    first: bulkhead::TaskHandle<()>,
    rest: Vec<bulkhead::TaskHandle<usize>>,
    ran: Arc<AtomicUsize>,
    /// Blocking tasks shed before one held the worker (0 on a fresh pool).
    blockers_shed: u64,
}

fn standing_queue(pool: &Pool, old: usize) -> Standing {
    let (hold, blockers_shed) = block_worker_counted(pool);
    let first = pool
        .try_submit(|| std::thread::sleep(INTERVAL * 2))
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let rest = (0..old)
        .map(|i| {
            let r = ran.clone();
            pool.try_submit(move || {
                r.fetch_add(1, Ordering::SeqCst);
                i
            })
            .unwrap()
        })
        .collect();
    // Every queued task now waits longer than the target: all were enqueued before this
    // sleep, and the worker can dequeue none of them before it is released after it.
    std::thread::sleep(TARGET * 3);
    drop(hold);
    Standing {
        first,
        rest,
        ran,
        blockers_shed,
    }
}

/// Runs `n` fresh tasks one at a time once a standing queue has drained, and returns how
/// many of them the controller shed.
///
/// First it waits until the controller has left its dropping state: the worker found the
/// queue empty (nothing is submitted meanwhile, so it does). The controller is then idle,
/// and an idle controller never sheds: the first fresh task must run. A later one may be
/// shed only if it really waited the target or longer (on a busy machine, a slow wake-up
/// twice, an interval apart): that is checked on each.
fn fresh_work(pool: &Pool, n: usize) -> u64 {
    wait_until("the controller to leave dropping", || {
        !pool.stats().codel_dropping
    });
    let mut shed = 0;
    for i in 0..n {
        match pool.try_submit(move || i).unwrap().join() {
            Ok(v) => assert_eq!(v, i),
            Err(TaskError::Shed { waited }) if i > 0 => {
                assert!(waited >= TARGET, "fresh task {i} shed after {waited:?}");
                shed += 1;
            }
            Err(e) => panic!("fresh task {i} did not run: {e:?}"),
        }
    }
    shed
}

/// 0 if the task ran, 1 if it was shed.
fn ran_or_shed(h: bulkhead::TaskHandle<()>) -> u64 {
    match h.join() {
        Ok(()) => 0,
        Err(TaskError::Shed { .. }) => 1,
        Err(e) => panic!("expected the task to run or be shed, got {e:?}"),
    }
}

#[test]
fn standing_queue_sheds_old_work_and_fresh_work_completes() {
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.threads(1).queue_capacity(64).codel(TARGET, INTERVAL)
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let st = standing_queue(&pool, 20);
    // The first old task arms the controller and runs; it outlasts the interval.
    let first_shed = ran_or_shed(st.first);
    for h in st.rest {
        match h.join() {
            Err(TaskError::Shed { waited }) => assert!(waited > TARGET, "{waited:?}"),
            other => panic!("expected Shed, got {other:?}"),
        }
    }
    assert_eq!(st.ran.load(Ordering::SeqCst), 0);
    // The queue emptied: normal service resumes, fresh work completes.
    let fresh_shed = fresh_work(&pool, 50);
    rt.shutdown();
    let s = pool.stats();
    assert_eq!(
        s.shed,
        20 + first_shed + st.blockers_shed + fresh_shed,
        "{s:?}"
    );
    assert_eq!(s.completed, 1 + (1 - first_shed) + 50 - fresh_shed, "{s:?}");
    assert!(!s.codel_dropping);
    assert!(identity_holds(&s), "{s:?}");
}

#[test]
fn codel_off_runs_the_standing_queue_as_before() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).queue_capacity(64))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    assert_eq!(pool.codel(), None);
    let st = standing_queue(&pool, 20);
    st.first.join().unwrap();
    for (i, h) in st.rest.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i);
    }
    rt.shutdown();
    let s = pool.stats();
    assert_eq!((s.shed, s.completed), (0, 22), "{s:?}");
    assert!(identity_holds(&s), "{s:?}");
}

#[test]
fn a_fresh_task_behind_a_standing_queue_runs_and_ends_dropping() {
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.threads(1).queue_capacity(64).codel(TARGET, INTERVAL)
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let st = standing_queue(&pool, 5);
    let mut first_shed = ran_or_shed(st.first);
    let mut blockers_shed = st.blockers_shed;
    for h in st.rest {
        assert!(h.join().unwrap_err().is_shed());
    }
    // Dropping ended when the queue emptied; a fresh task runs.
    assert_eq!(fresh_work(&pool, 1), 0);
    let st = standing_queue(&pool, 5);
    first_shed += ran_or_shed(st.first);
    blockers_shed += st.blockers_shed;
    for h in st.rest {
        assert!(h.join().unwrap_err().is_shed());
    }
    rt.shutdown();
    let s = pool.stats();
    assert_eq!(s.shed, 10 + first_shed + blockers_shed, "{s:?}");
}

#[test]
fn shed_fire_and_forget_tasks_reach_the_handler_with_their_reason() {
    let (tx, rx) = mpsc::channel::<(ShedReason, Option<Duration>, bool)>();
    let tx = Mutex::new(tx);
    let pool_cell: Arc<OnceLock<Pool>> = Arc::new(OnceLock::new());
    let cell = pool_cell.clone();
    let rt = Runtime::builder()
        .pool("p", move |p| {
            p.threads(1)
                .queue_capacity(64)
                .codel(TARGET, INTERVAL)
                .on_shed(move |t: ShedTask| {
                    assert_eq!(&*t.pool, "p");
                    let dropping = cell.get().is_some_and(|p| p.stats().codel_dropping);
                    // The closure comes back unrun: run it here.
                    (t.task)();
                    tx.lock()
                        .unwrap()
                        .send((t.reason, t.waited, dropping))
                        .unwrap();
                })
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    pool_cell.set(pool.clone()).unwrap();
    // The gate is the fresh pool's first task: the idle controller cannot shed it, however
    // late it is picked up. (This handler runs what it gets, so a shed gate would block in
    // it: block_worker_counted could not tell.)
    let mut gate = occupy_all(&pool);
    let first = pool
        .try_submit(|| std::thread::sleep(INTERVAL * 2))
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let r = ran.clone();
        pool.execute(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    // Every queued task has now waited longer than the target.
    std::thread::sleep(TARGET * 3);
    gate.open();
    let first_shed = ran_or_shed(first);
    for _ in 0..10 {
        let (reason, waited, dropping) = rx.recv_timeout(HANG_GUARD).unwrap();
        assert_eq!(reason, ShedReason::Shed);
        assert!(waited.unwrap() > TARGET);
        assert!(dropping, "the controller reports dropping while it sheds");
    }
    rt.shutdown();
    // Each closure ran once, in the handler, not on the pool.
    assert_eq!(ran.load(Ordering::SeqCst), 10);
    let s = pool.stats();
    assert_eq!(
        (s.shed, s.completed),
        (10 + first_shed, 2 - first_shed),
        "{s:?}"
    );
    assert!(identity_holds(&s), "{s:?}");
}

#[test]
fn expired_and_shutdown_cancelled_tasks_reach_the_handler() {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let r = reasons.clone();
    let max = Duration::from_millis(10);
    let rt = Runtime::builder()
        .pool("p", move |p| {
            p.threads(1)
                .queue_capacity(64)
                .max_queue_wait(max)
                .on_shed(move |t: ShedTask| r.lock().unwrap().push(t.reason))
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    // On a busy machine the blocking task itself may expire (a 10 ms wait is a slow
    // wake-up): each such expiry reaches the handler too, and is counted.
    let (hold, blockers_expired) = block_worker_counted(&pool);
    for _ in 0..3 {
        pool.execute(|| ()).unwrap();
    }
    // Past the limit before the worker can reach them: they are certain to expire.
    std::thread::sleep(max * 3);
    drop(hold);
    let expired = 3 + blockers_expired;
    wait_until("three expiries", || pool.stats().expired == expired);
    assert_eq!(
        *reasons.lock().unwrap(),
        vec![ShedReason::Expired; expired as usize]
    );

    // A hung worker and queued tasks: a shutdown that gives up cancels them.
    let (hang, more_expired) = block_worker_counted(&pool);
    let expired = (expired + more_expired) as usize;
    for _ in 0..4 {
        pool.execute(|| ()).unwrap();
    }
    let report = rt.shutdown_timeout(Duration::from_millis(50));
    assert!(report.timed_out);
    drop(hang);
    let got = reasons.lock().unwrap().clone();
    assert_eq!(got.len(), expired + 4, "{got:?}");
    assert!(got[..expired].iter().all(|r| *r == ShedReason::Expired));
    assert!(got[expired..]
        .iter()
        .all(|r| *r == ShedReason::CancelledByShutdown));
}

#[test]
fn a_panicking_handler_does_not_hurt_the_worker() {
    support::quiet_panics("handler boom");
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let max = Duration::from_millis(5);
    let rt = Runtime::builder()
        .pool("p", move |p| {
            p.threads(1).max_queue_wait(max).on_shed(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
                panic!("handler boom");
            })
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    // A blocking task that expires first (a slow wake-up) also meets the panicking handler.
    let (hold, blockers_expired) = block_worker_counted(&pool);
    pool.execute(|| ()).unwrap();
    std::thread::sleep(max * 4);
    drop(hold);
    let expected = blockers_expired as usize + 1;
    wait_until("the handler", || calls.load(Ordering::SeqCst) == expected);
    // The worker survived its handler's panics: it runs a new task. On a busy machine a
    // 5 ms limit can expire a fresh task too (its handle then says so): try again until one
    // runs.
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        match pool.try_submit(|| 7).unwrap().join() {
            Ok(v) => break assert_eq!(v, 7),
            Err(TaskError::Expired { waited }) => assert!(waited > max, "{waited:?}"),
            Err(e) => panic!("expected the task to run, got {e:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "no task ever ran");
    }
    assert_eq!(pool.workers().iter().filter(|w| !w.exited).count(), 1);
}

#[test]
fn bad_codel_settings_are_build_errors_naming_the_field() {
    for (target, interval) in [
        (Duration::ZERO, INTERVAL),
        (TARGET, Duration::ZERO),
        (INTERVAL, TARGET),
        (TARGET, Duration::from_secs(7200)),
    ] {
        let err = Runtime::builder()
            .pool("p", |p| p.codel(target, interval))
            .build()
            .unwrap_err();
        assert_eq!(err.pool(), Some("p"));
        assert_eq!(err.field(), "codel");
        assert!(matches!(err.kind(), BuildErrorKind::OutOfRange), "{err}");
    }
}

/// Regression: with metrics off, jobs skip the enqueue clock read unless something reads it;
/// CoDel does, so fresh work in a short standing queue must not look as if it had waited
/// since the pool started.
///
/// The bug shows as a shed task whose reported wait is longer than it has existed: the pool
/// is 200 ms old before the first submission, so a wait measured from the pool's start
/// exceeds the real one by at least that. Every task must run, unless it really waited the
/// target or longer (possible only on a very busy machine), and no reported wait may exceed
/// the time since its submission.
#[test]
fn codel_with_metrics_off_still_runs_fresh_work() {
    // A generous target: real waits here are a few milliseconds, even on a loaded machine.
    let target = Duration::from_millis(100);
    let interval = Duration::from_millis(150);
    let rt = Runtime::builder()
        .metrics(false)
        .pool("p", |p| {
            p.threads(1).queue_capacity(64).codel(target, interval)
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    // Let the pool's clock run past the target before submitting anything.
    std::thread::sleep(target * 2);
    let check = |(submitted, h): (std::time::Instant, bulkhead::TaskHandle<()>)| -> u64 {
        match h.join() {
            Ok(()) => 0,
            Err(TaskError::Shed { waited }) => {
                let existed = submitted.elapsed();
                assert!(
                    waited >= target && waited <= existed,
                    "shed after a reported wait of {waited:?}, submitted {existed:?} ago"
                );
                1
            }
            Err(e) => panic!("expected the task to run, got {e:?}"),
        }
    };
    // Keep a short standing queue (about two 1 ms tasks) for several intervals.
    let until = std::time::Instant::now() + interval * 3;
    let mut handles = std::collections::VecDeque::new();
    let (mut n, mut shed) = (0u64, 0u64);
    while std::time::Instant::now() < until {
        let submitted = std::time::Instant::now();
        let h = pool
            .try_submit(|| std::thread::sleep(Duration::from_millis(1)))
            .unwrap();
        handles.push_back((submitted, h));
        n += 1;
        if handles.len() > 2 {
            shed += check(handles.pop_front().unwrap());
        }
    }
    for h in handles {
        shed += check(h);
    }
    rt.shutdown();
    let s = pool.stats();
    assert_eq!((s.completed, s.shed), (n - shed, shed), "{s:?}");
}
