//! Helpers shared by the integration tests: deterministic ways to occupy workers.
#![allow(dead_code, unreachable_pub)]

pub mod prometheus;

use std::sync::mpsc;
use std::time::Duration;

use bulkhead::Pool;

/// A generous bound used only to turn a hang into a failure; never a speed assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// Occupies every worker of `pool` with a task that blocks until the returned gate is
/// dropped or opened. Returns once every worker is inside its blocking task.
pub fn occupy_all(pool: &Pool) -> Gate {
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let (started_tx, started_rx) = mpsc::channel();
    for _ in 0..pool.threads() {
        let rx = release_rx.clone();
        let started = started_tx.clone();
        let mut task = move || {
            started.send(()).unwrap();
            // Returns when the gate's sender is dropped.
            let _ = rx.recv();
        };
        // A pool with queue capacity 0 accepts only when a worker is waiting: retry.
        let deadline = std::time::Instant::now() + HANG_GUARD;
        while let Err(e) = pool.execute(task) {
            assert!(e.is_full() && std::time::Instant::now() < deadline, "{e}");
            task = e.into_inner();
            std::thread::yield_now();
        }
    }
    for _ in 0..pool.threads() {
        started_rx
            .recv_timeout(HANG_GUARD)
            .expect("worker did not start the blocking task");
    }
    Gate {
        release: Some(release_tx),
    }
}

/// Keeps workers blocked until opened or dropped.
pub struct Gate {
    release: Option<crossbeam_channel::Sender<()>>,
}

impl Gate {
    pub fn open(&mut self) {
        self.release.take();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

/// Waits (bounded by HANG_GUARD) until `cond` holds; panics with `what` otherwise.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Silences the default panic hook's output for panics whose message contains `marker`.
pub fn quiet_panics(marker: &'static str) {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !msg.contains(marker) {
            prev(info);
        }
    }));
}

/// Occupies one worker of `pool` until the returned sender is dropped or sent to; returns
/// once the task has started. In a pool with a `max_queue_wait` (or queue-delay control), a
/// loaded machine may let the blocking task itself expire (or be shed) before a worker
/// reaches it: it is then submitted again. See [`block_worker_counted`] for tests that count
/// outcomes.
pub fn block_worker(pool: &Pool) -> std::sync::mpsc::Sender<()> {
    block_worker_counted(pool).0
}

/// Like [`block_worker`], and also returns how many of its blocking tasks the pool did not
/// run (each expired or was shed in the queue: a slow wake-up on a loaded machine). Each of
/// those is counted in the pool's stats like any fire-and-forget task, and, by the time this
/// returns, has been through the pool's shed handler if it has one: a test that counts
/// outcomes adds this number instead of hoping it is 0.
///
/// "Not run" is seen as the task's closure being dropped unrun. A shed handler that *runs*
/// the closures it gets would run the blocking task in the handler: use [`occupy_all`] on a
/// fresh pool there.
pub fn block_worker_counted(pool: &Pool) -> (std::sync::mpsc::Sender<()>, u64) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    let mut not_run = 0;
    loop {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel();
        pool.execute(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
        })
        .unwrap_or_else(|_| panic!("could not submit the blocking task"));
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match started_rx.recv_timeout(left) {
            Ok(()) => return (release_tx, not_run),
            // Dropped unrun: it expired (or was shed) in the queue. Try again.
            Err(mpsc::RecvTimeoutError::Disconnected) => not_run += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("blocking task did not start"),
        }
    }
}

/// Collects every event a runtime's listener receives.
#[derive(Clone, Default)]
pub struct EventLog(std::sync::Arc<std::sync::Mutex<Vec<bulkhead::Event>>>);

impl EventLog {
    pub fn listener(&self) -> impl Fn(&bulkhead::Event) + Send + Sync + 'static {
        let log = self.0.clone();
        move |e: &bulkhead::Event| log.lock().unwrap().push(e.clone())
    }

    pub fn events(&self) -> Vec<bulkhead::Event> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (bounded by [`HANG_GUARD`]) until some event satisfies `pred`, and returns it.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&bulkhead::Event) -> bool) -> bulkhead::Event {
        self.wait_for_from(0, what, pred)
    }

    /// Like `wait_for`, but only among events from index `from` on (those logged after a
    /// point the caller noted with `events().len()`).
    pub fn wait_for_from(
        &self,
        from: usize,
        what: &str,
        pred: impl Fn(&bulkhead::Event) -> bool,
    ) -> bulkhead::Event {
        let start = std::time::Instant::now();
        loop {
            if let Some(e) = self.events().into_iter().skip(from).find(|e| pred(e)) {
                return e;
            }
            assert!(
                start.elapsed() < HANG_GUARD,
                "no {what} event within {HANG_GUARD:?}; got {:?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
