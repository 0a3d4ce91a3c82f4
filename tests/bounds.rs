//! Every bound is a bound (issue 12, item 3): `shutdown_timeout` and `Drop` return within
//! their timeout even when an `on_thread_stop` hook never returns, and the never-blocking
//! submission paths never wait for a thread that is still in its stop hook.
//!
//! The stop hooks here block until the test opens a gate, i.e. "never" as far as the call
//! under test is concerned; each call runs on a helper thread and must come back within the
//! hang guard. Before the fix these calls joined the thread in its stop hook and hung.

mod support;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bulkhead::Runtime;
use std::sync::Mutex;
use support::{wait_until, HANG_GUARD};

/// A gate that stop hooks wait on: closed until opened (its sender dropped).
struct StopGate {
    tx: Mutex<Option<crossbeam_channel::Sender<()>>>,
    rx: crossbeam_channel::Receiver<()>,
}

impl StopGate {
    fn closed() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        StopGate {
            tx: Mutex::new(Some(tx)),
            rx,
        }
    }

    /// A stop hook that blocks until the gate opens.
    fn hook(&self) -> impl Fn(&bulkhead::WorkerThread<'_>) + Send + Sync + 'static {
        let rx = self.rx.clone();
        move |_| {
            let _ = rx.recv();
        }
    }

    fn open(&self) {
        self.tx.lock().unwrap().take();
    }
}

/// Runs `f` on another thread and returns its result, or fails the test after the hang guard.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG_GUARD)
        .unwrap_or_else(|_| panic!("{what} did not return: it waited for a stop hook"))
}

#[test]
fn shutdown_timeout_returns_while_a_stop_hook_hangs() {
    let gate = StopGate::closed();
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(2).on_thread_stop(gate.hook()))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    pool.try_submit(|| 1).unwrap().join().unwrap();
    let rt = Arc::new(rt);
    let r = rt.clone();
    let report = bounded("shutdown_timeout", move || {
        r.shutdown_timeout(Duration::from_millis(200))
    });
    // The workers left their loop (nothing was running or queued); only the hook lingers.
    assert_eq!(report.completed(), 1);
    assert_eq!(report.cancelled(), 0);
    gate.open();
}

#[test]
fn drop_returns_while_a_stop_hook_hangs() {
    let gate = StopGate::closed();
    let rt = Runtime::builder()
        .drop_timeout(Duration::from_millis(200))
        .pool("p", |p| p.threads(2).on_thread_stop(gate.hook()))
        .build()
        .unwrap();
    rt.pool("p").unwrap().execute(|| ()).unwrap();
    bounded("drop", move || drop(rt));
    gate.open();
}

#[test]
fn an_elastic_pool_regrows_without_waiting_for_a_retired_threads_stop_hook() {
    let gate = StopGate::closed();
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.elastic(1, 2)
                .keep_alive(Duration::from_millis(20))
                .queue_capacity(4)
                .on_thread_stop(gate.hook())
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    // Grow to two threads, then let the second retire after its keep-alive: its thread is
    // now inside the stop hook, which does not return.
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    for _ in 0..2 {
        let rx = rx.clone();
        pool.execute(move || {
            let _ = rx.recv();
        })
        .unwrap();
    }
    wait_until("the pool to grow to 2", || pool.threads() == 2);
    drop(tx);
    wait_until("the extra thread to retire", || pool.threads() == 1);

    // Load again: submissions that make the pool grow must not wait for that thread.
    let p = pool.clone();
    let gates = bounded("try_submit into a regrowing pool", move || {
        let mut held = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = mpsc::channel::<()>();
            let handle = p
                .try_submit(move || {
                    let _ = rx.recv();
                })
                .map_err(|e| e.to_string())
                .unwrap();
            drop(handle);
            held.push(tx);
        }
        held
    });
    drop(gates);
    gate.open();
    let r = bounded("shutdown", move || rt.shutdown());
    assert!(r.is_clean(), "{r}");
}
