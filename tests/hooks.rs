//! Context propagation, thread lifecycle hooks and deadlock detection.
//!
//! Each context test records `install`, `body`/`drop` and `clear` events with the task's tag
//! and the thread they ran on, and checks the pairs for one path: run, panic, expiry, cancel
//! through the handle, cancel by an abandoned shutdown, and refusal (no install at all).

mod support;

use std::cell::Cell;
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bulkhead::{Pool, Runtime, RuntimeBuilder, TaskError};
use support::{block_worker, quiet_panics, wait_until, HANG_GUARD};

thread_local! {
    /// The "context": a tag set by the test before submitting, read by the capture hook.
    static TAG: Cell<u32> = const { Cell::new(0) };
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(String, u32, String)>>>);

impl Log {
    fn push(&self, what: &str, tag: u32) {
        let thread = thread::current().name().unwrap_or("?").to_owned();
        self.0.lock().unwrap().push((what.to_owned(), tag, thread));
    }

    /// The events of one tag, as (what, thread).
    fn of(&self, tag: u32) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.1 == tag)
            .map(|e| (e.0.clone(), e.2.clone()))
            .collect()
    }

    fn whats(&self, tag: u32) -> Vec<String> {
        self.of(tag).into_iter().map(|e| e.0).collect()
    }
}

/// Logs its drop: proves the closure is dropped inside the installed context.
struct DropProbe(Log, u32);

impl Drop for DropProbe {
    fn drop(&mut self) {
        self.0.push("drop", self.1);
    }
}

/// A runtime whose pool "p" has a context hook logging into `log`.
fn runtime(
    log: &Log,
    configure: impl FnOnce(bulkhead::PoolBuilder) -> bulkhead::PoolBuilder,
) -> Runtime {
    let install_log = log.clone();
    Runtime::builder()
        .pool("p", move |p| {
            configure(p).context(
                || TAG.with(Cell::get),
                move |tag| {
                    install_log.push("install", tag);
                    TAG.with(|t| t.set(tag));
                    let clear_log = install_log.clone();
                    bulkhead::on_drop(move || {
                        clear_log.push("clear", tag);
                        TAG.with(|t| t.set(0));
                    })
                },
            )
        })
        .build()
        .unwrap()
}

fn submit_tagged<T: Send + 'static>(
    pool: &Pool,
    tag: u32,
    f: impl FnOnce() -> T + Send + 'static,
) -> bulkhead::TaskHandle<T> {
    TAG.with(|t| t.set(tag));
    let h = pool.try_submit(f).unwrap();
    TAG.with(|t| t.set(0));
    h
}

#[test]
fn context_run_path_installs_around_the_task_and_clears_after() {
    let log = Log::default();
    let rt = runtime(&log, |p| p.threads(2));
    let pool = rt.pool("p").unwrap();
    let body_log = log.clone();
    let seen = submit_tagged(&pool, 1, move || {
        let seen = TAG.with(Cell::get);
        body_log.push("body", seen);
        seen
    })
    .join()
    .unwrap();
    assert_eq!(seen, 1, "the task saw the submitter's context");
    assert_eq!(log.whats(1), ["install", "body", "clear"]);
    assert!(
        log.of(1).iter().all(|(_, t)| t.starts_with("p-")),
        "{:?}",
        log.of(1)
    );
    // Cleared on the worker afterwards: the next task without a context sees none.
    assert_eq!(
        pool.try_submit(|| TAG.with(Cell::get))
            .unwrap()
            .join()
            .unwrap(),
        0
    );

    // A fire-and-forget task carries its context too.
    let (tx, rx) = mpsc::channel();
    TAG.with(|t| t.set(7));
    pool.execute(move || tx.send(TAG.with(Cell::get)).unwrap())
        .unwrap();
    TAG.with(|t| t.set(0));
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap(), 7);
    wait_until("clear of the detached task", || log.whats(7).len() == 2);
    assert_eq!(log.whats(7), ["install", "clear"]);
}

#[test]
fn context_panic_path_clears_before_the_panic_is_caught() {
    quiet_panics("context-panic");
    let log = Log::default();
    let rt = runtime(&log, |p| p);
    let pool = rt.pool("p").unwrap();
    let body_log = log.clone();
    let err = submit_tagged(&pool, 2, move || -> u32 {
        body_log.push("body", TAG.with(Cell::get));
        panic!("context-panic");
    })
    .join()
    .unwrap_err();
    assert_eq!(err.panic_message(), Some("context-panic"));
    assert_eq!(log.whats(2), ["install", "body", "clear"]);

    // Detached: same pairs, and the worker goes on with a clean context.
    let body_log = log.clone();
    TAG.with(|t| t.set(3));
    pool.execute(move || {
        body_log.push("body", TAG.with(Cell::get));
        panic!("context-panic");
    })
    .unwrap();
    TAG.with(|t| t.set(0));
    assert_eq!(
        pool.try_submit(|| TAG.with(Cell::get))
            .unwrap()
            .join()
            .unwrap(),
        0
    );
    assert_eq!(log.whats(3), ["install", "body", "clear"]);
}

#[test]
fn context_expiry_path_installs_around_the_drop_on_the_deadline_timer() {
    // A task with a handle is resolved at its deadline by the runtime's deadline timer,
    // while the only worker is still blocked: the closure is dropped in its context there.
    let log = Log::default();
    let max_wait = Duration::from_millis(20);
    let rt = runtime(&log, |p| p.threads(1).max_queue_wait(max_wait));
    let pool = rt.pool("p").unwrap();
    let release = block_worker(&pool);
    let probe = DropProbe(log.clone(), 4);
    let handle = submit_tagged(&pool, 4, move || drop(probe));
    assert!(handle.join().unwrap_err().is_expired());
    // The timer resolves the handle first, then drops the closure in its context.
    wait_until("the expired closure's clean-up", || log.whats(4).len() == 3);
    assert_eq!(log.whats(4), ["install", "drop", "clear"]);
    assert!(
        log.of(4).iter().all(|(_, t)| t == "bulkhead-deadlines"),
        "{:?}",
        log.of(4)
    );
    drop(release);
}

#[test]
fn context_expiry_path_of_a_detached_task_installs_around_the_drop_on_the_worker() {
    // A fire-and-forget task has no handle to resolve early: the worker that reaches it
    // after the limit expires it and drops it in its context.
    let log = Log::default();
    let max_wait = Duration::from_millis(20);
    let rt = runtime(&log, |p| p.threads(1).max_queue_wait(max_wait));
    let pool = rt.pool("p").unwrap();
    let release = block_worker(&pool);
    let probe = DropProbe(log.clone(), 4);
    let submitted = Instant::now();
    TAG.with(|t| t.set(4));
    pool.execute(move || drop(probe)).unwrap();
    TAG.with(|t| t.set(0));
    wait_until("the task to be stale", || {
        submitted.elapsed() > max_wait * 2
    });
    drop(release);
    wait_until("the expired closure's clean-up", || log.whats(4).len() == 3);
    assert_eq!(log.whats(4), ["install", "drop", "clear"]);
    assert!(log.of(4).iter().all(|(_, t)| t == "p-0"), "{:?}", log.of(4));
    assert_eq!(pool.stats().expired, 1);
}

#[test]
fn context_cancel_through_the_handle_runs_on_the_caller() {
    let log = Log::default();
    let rt = runtime(&log, |p| p.threads(1));
    let pool = rt.pool("p").unwrap();
    let release = block_worker(&pool);
    let probe = DropProbe(log.clone(), 5);
    let handle = submit_tagged(&pool, 5, move || drop(probe));
    let caller = thread::Builder::new()
        .name("canceller".into())
        .spawn(move || {
            assert!(handle.cancel());
            handle
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(log.whats(5), ["install", "drop", "clear"]);
    assert!(
        log.of(5).iter().all(|(_, t)| t == "canceller"),
        "{:?}",
        log.of(5)
    );
    drop(release);
    assert!(caller.join().unwrap_err().is_cancelled());
    // The worker reaching the cancelled job installs nothing more.
    wait_until("the cancel to be counted", || pool.stats().cancelled == 1);
    assert_eq!(log.whats(5).len(), 3);
}

#[test]
fn context_cancel_by_shutdown_runs_on_the_draining_thread() {
    let log = Log::default();
    let rt = runtime(&log, |p| p.threads(1));
    let pool = rt.pool("p").unwrap();
    let release = block_worker(&pool);
    let probe = DropProbe(log.clone(), 6);
    let handle = submit_tagged(&pool, 6, move || drop(probe));
    // The worker stays stuck, so the shutdown gives up and drains the queue on this thread.
    let report = thread::Builder::new()
        .name("shutdown".into())
        .spawn(move || rt.shutdown_timeout(Duration::from_millis(10)))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(report.pools[0].cancelled_at_shutdown, 1);
    assert!(handle.join().unwrap_err().is_cancelled());
    assert_eq!(log.whats(6), ["install", "drop", "clear"]);
    assert!(
        log.of(6).iter().all(|(_, t)| t == "shutdown"),
        "{:?}",
        log.of(6)
    );
    drop(release);
}

#[test]
fn refused_task_is_never_installed() {
    let log = Log::default();
    let rt = runtime(&log, |p| p.threads(1).queue_capacity(0));
    let pool = rt.pool("p").unwrap();
    let release = block_worker(&pool);
    TAG.with(|t| t.set(8));
    let err = pool.try_submit(|| 8).unwrap_err();
    TAG.with(|t| t.set(0));
    assert!(err.is_full());
    assert_eq!(err.into_inner()(), 8);
    assert!(log.of(8).is_empty());
    drop(release);
}

#[test]
fn lifecycle_hooks_see_every_worker_start_and_stop() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (start_log, stop_log) = (events.clone(), events.clone());
    let rt = Runtime::builder()
        .pool("life", move |p| {
            p.threads(3)
                .on_thread_start(move |w| {
                    // On the worker thread itself.
                    assert_eq!(thread::current().name(), Some(w.thread_name()));
                    let info = w.info();
                    assert!(!info.exited);
                    let me = bulkhead::current_worker().map(|w| (w.pool().to_owned(), w.index()));
                    assert_eq!(me, Some((w.pool().to_owned(), w.index())));
                    start_log
                        .lock()
                        .unwrap()
                        .push(format!("start {} {}", w.pool(), w.index()));
                })
                .on_thread_stop(move |w| {
                    stop_log
                        .lock()
                        .unwrap()
                        .push(format!("stop {} {}", w.pool(), w.index()));
                })
        })
        .build()
        .unwrap();
    // build() returns after every start hook.
    let mut got = events.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, ["start life 0", "start life 1", "start life 2"]);
    rt.pool("life")
        .unwrap()
        .try_submit(|| ())
        .unwrap()
        .join()
        .unwrap();
    assert!(rt.shutdown().is_clean());
    // A graceful shutdown returns after every stop hook.
    let mut got = events.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        [
            "start life 0",
            "start life 1",
            "start life 2",
            "stop life 0",
            "stop life 1",
            "stop life 2"
        ]
    );
}

#[cfg(target_os = "linux")]
#[test]
fn start_hook_sees_the_final_placement() {
    let available = bulkhead::CpuSet::available().unwrap();
    let first = available.iter().next().unwrap();
    let set = bulkhead::CpuSet::new([first]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let rt = Runtime::builder()
        .pool("pinned", |p| {
            p.threads(1)
                .cpus(set.clone())
                .placement(bulkhead::Placement::PinEach)
                .on_thread_start(move |w| log.lock().unwrap().push(w.info().affinity))
        })
        .build()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [Some(set)]);
    drop(rt);
}

#[test]
fn a_panicking_start_hook_fails_build_and_stops_the_started_workers() {
    quiet_panics("start-hook-boom");
    let stopped = Arc::new(Mutex::new(0));
    let count = stopped.clone();
    let err = Runtime::builder()
        .pool("bad", move |p| {
            p.threads(2)
                .on_thread_start(|w| {
                    if w.index() == 1 {
                        panic!("start-hook-boom");
                    }
                })
                .on_thread_stop(move |_| *count.lock().unwrap() += 1)
        })
        .build()
        .unwrap_err();
    assert_eq!(err.pool(), Some("bad"));
    assert!(err.to_string().contains("start-hook-boom"), "{err}");
    // Worker 0 started, so it stopped; worker 1 never started.
    assert_eq!(*stopped.lock().unwrap(), 1);
}

#[test]
fn joining_a_task_of_your_own_single_thread_pool_would_deadlock() {
    let rt = Runtime::builder()
        .pool("one", |p| p.threads(1))
        .build()
        .unwrap();
    let pool = rt.pool("one").unwrap();
    let inner_pool = pool.clone();
    let (err, inner) = pool
        .try_submit(move || {
            let inner = inner_pool.try_submit(|| "inner ran").unwrap();
            let started = Instant::now();
            let mut inner = inner;
            // join_timeout keeps the handle: the error comes at once, not after the timeout.
            let err = inner.join_timeout(HANG_GUARD).unwrap_err();
            assert!(started.elapsed() < HANG_GUARD);
            (err, inner)
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(err.is_would_deadlock(), "{err:?}");
    assert!(err.to_string().contains("deadlock"));
    // The task was not cancelled: it ran once the worker was free.
    assert_eq!(inner.join().unwrap(), "inner ran");

    // join (by value) says the same.
    let inner_pool = pool.clone();
    let err = pool
        .try_submit(move || inner_pool.try_submit(|| 1).unwrap().join().unwrap_err())
        .unwrap()
        .join()
        .unwrap();
    assert!(matches!(err, TaskError::WouldDeadlock));
}

#[test]
fn a_busy_but_not_blocked_worker_is_no_deadlock() {
    let rt = Runtime::builder()
        .pool("two", |p| p.threads(2))
        .build()
        .unwrap();
    let pool = rt.pool("two").unwrap();
    // Worker A runs a task that is busy (not joining); the other joins a queued task.
    let release = block_worker(&pool);
    let inner_pool = pool.clone();
    let (joining_tx, joining) = mpsc::channel();
    let outer = pool
        .try_submit(move || {
            let inner = inner_pool.try_submit(|| 5).unwrap();
            joining_tx.send(()).unwrap();
            inner.join()
        })
        .unwrap();
    joining.recv_timeout(HANG_GUARD).unwrap();
    drop(release); // the busy worker frees up and runs the inner task
    assert_eq!(outer.join().unwrap().unwrap(), 5);
}

#[test]
fn when_every_worker_joins_its_own_pool_the_last_one_gets_would_deadlock() {
    let rt = Runtime::builder()
        .pool("two", |p| p.threads(2))
        .build()
        .unwrap();
    let pool = rt.pool("two").unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let outers: Vec<_> = (0..2)
        .map(|i| {
            let (pool2, barrier) = (pool.clone(), barrier.clone());
            pool.try_submit(move || {
                // Both workers are inside an outer task before either submits.
                barrier.wait();
                pool2.try_submit(move || i).unwrap().join()
            })
            .unwrap()
        })
        .collect();
    let results: Vec<_> = outers.into_iter().map(|h| h.join().unwrap()).collect();
    let deadlocks = results
        .iter()
        .filter(|r| matches!(r, Err(TaskError::WouldDeadlock)))
        .count();
    let oks = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((deadlocks, oks), (1, 1), "{results:?}");
    // Nobody stays counted as blocked: the pool joins fine afterwards.
    assert_eq!(pool.try_submit(|| 9).unwrap().join().unwrap(), 9);
}

#[test]
fn joins_from_outside_or_on_another_pool_are_never_refused() {
    let rt = RuntimeBuilder::new()
        .pool("a", |p| p.threads(1))
        .pool("b", |p| p.threads(1))
        .build()
        .unwrap();
    let (a, b) = (rt.pool("a").unwrap(), rt.pool("b").unwrap());
    let a2 = a.clone();
    // A worker of "b" joins a task of "a": not its own pool, so it waits.
    let got = b
        .try_submit(move || a2.try_submit(|| 3).unwrap().join().unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(got, 3);
    assert_eq!(a.try_submit(|| 4).unwrap().join().unwrap(), 4);
}

#[test]
fn a_continuation_captures_on_the_thread_calling_then_in() {
    let log = Log::default();
    let rt = runtime(&log, |p| p.threads(1));
    let pool = rt.pool("p").unwrap();
    let first = submit_tagged(&pool, 10, || TAG.with(Cell::get));
    TAG.with(|t| t.set(11));
    let next = first.then_in(&pool, |r| (r.unwrap(), TAG.with(Cell::get)));
    TAG.with(|t| t.set(0));
    assert_eq!(next.join().unwrap(), (10, 11));
    wait_until("both clears", || log.whats(11).len() == 2);
    assert_eq!(log.whats(10), ["install", "clear"]);
    assert_eq!(log.whats(11), ["install", "clear"]);
}
