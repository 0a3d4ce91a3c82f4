//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead::{Event, Pool};

/// Upper bound on any wait in a test: a hang guard, never a timing assumption.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(10);

/// Occupies one worker of `pool` until the returned sender is dropped or sent to; returns
/// once the task has started.
pub(crate) fn block_worker(pool: &Pool) -> Sender<()> {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    pool.execute(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv();
    })
    .unwrap_or_else(|_| panic!("could not submit the blocking task"));
    started_rx
        .recv_timeout(HANG_GUARD)
        .expect("blocking task did not start");
    release_tx
}

/// Collects every event a runtime's listener receives.
#[derive(Clone, Default)]
pub(crate) struct EventLog(Arc<Mutex<Vec<Event>>>);

impl EventLog {
    pub(crate) fn listener(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let log = self.0.clone();
        move |e: &Event| log.lock().unwrap().push(e.clone())
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (bounded by [`HANG_GUARD`]) until some event satisfies `pred`, and returns it.
    pub(crate) fn wait_for(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let start = Instant::now();
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
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

/// Waits (bounded by [`HANG_GUARD`]) until `cond` holds.
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG_GUARD, "{what} within {HANG_GUARD:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}
