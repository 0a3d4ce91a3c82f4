//! The deadline timer: one thread per runtime that runs an action at a given instant. Pools
//! use it to resolve a queued task at its deadline (as expired, its slot freed at once)
//! instead of when a worker next dequeues it, which may be never if every worker is stuck.
//!
//! A binary heap of `(deadline, action)` under one mutex, and a condvar the thread waits on
//! until the earliest deadline or a new, earlier entry. The runtime starts the thread at
//! build, on the thread that builds it (so it never inherits a pool worker's CPU set,
//! priority or CPU cap, as a thread started later by whoever scheduled first would); it
//! parks until there is an entry, and stops when the runtime shuts down;
//! entries still waiting then are dropped without running (their tasks are resolved by the
//! shutdown itself). An action runs on the timer thread, outside the lock; actions are short
//! (resolve a cell, count, release a slot) and must not block.
//!
//! This module knows nothing of pools or tasks: it imports only the synchronisation seam.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::sync::{Arc, Condvar, Mutex};

/// What runs at a deadline.
pub(crate) type Action = Box<dyn FnOnce() + Send>;

struct Entry {
    at: Instant,
    /// Ties broken by insertion order, so equal deadlines fire first in, first out.
    seq: u64,
    action: Action,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: `BinaryHeap` is a max-heap, the earliest deadline must come out first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Entry>,
    seq: u64,
    stopped: bool,
    started: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// A runtime's deadline timer (see the module docs).
pub(crate) struct Timer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Timer {
    pub(crate) fn new() -> Self {
        Timer {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
            }),
            thread: Mutex::new(None),
        }
    }

    /// Runs `action` on the timer thread at `at` (at once if `at` has passed). Returns the
    /// action back if the timer has stopped or its thread could not be started.
    pub(crate) fn schedule(&self, at: Instant, action: Action) -> Result<(), Action> {
        let mut st = self.shared.state.lock();
        if st.stopped {
            return Err(action);
        }
        if !st.started {
            if let Err(e) = self.spawn() {
                drop(e);
                return Err(action);
            }
            st.started = true;
        }
        let earliest = st.heap.peek().map(|e| e.at);
        st.seq += 1;
        let seq = st.seq;
        st.heap.push(Entry { at, seq, action });
        if earliest.map_or(true, |e| at < e) {
            self.shared.wake.notify_all();
        }
        Ok(())
    }

    /// Starts the timer's thread (once); `schedule` starts it too if it was not.
    #[cold]
    pub(crate) fn start(&self) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        if st.started || st.stopped {
            return Ok(());
        }
        self.spawn()?;
        st.started = true;
        Ok(())
    }

    #[cold]
    fn spawn(&self) -> io::Result<()> {
        let shared = self.shared.clone();
        let handle = thread::Builder::new()
            .name("bulkhead-deadlines".to_owned())
            .spawn(move || run(&shared))?;
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    /// Stops the thread and drops the entries still waiting. Waits for the thread to return
    /// (it is never inside user code for long: actions are short).
    pub(crate) fn stop(&self) {
        let dropped = {
            let mut st = self.shared.state.lock();
            st.stopped = true;
            self.shared.wake.notify_all();
            std::mem::take(&mut st.heap)
        };
        drop(dropped);
        if let Some(handle) = self.thread.lock().take() {
            // The last owner may let go on the timer thread itself (an action held the last
            // reference to a pool): it is returning already; never join oneself.
            if handle.thread().id() != thread::current().id() {
                let _ = handle.join();
            }
        }
    }

    /// Entries waiting now (for tests and stats).
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.shared.state.lock().heap.len()
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}

fn run(shared: &Shared) {
    let mut st = shared.state.lock();
    loop {
        if st.stopped {
            return;
        }
        let now = Instant::now();
        match st.heap.peek().map(|e| e.at) {
            None => shared.wake.wait(&mut st),
            Some(at) if at > now => {
                let _ = shared.wake.wait_until(&mut st, at);
            }
            Some(_) => {
                let entry = st.heap.pop().expect("peeked");
                drop(st);
                // An action is crate code (resolve, count, release); contain a panic anyway
                // so one bad entry cannot stop every later deadline.
                crate::unwind::drop_quietly(std::panic::catch_unwind(
                    std::panic::AssertUnwindSafe(entry.action),
                ));
                st = shared.state.lock();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn actions_run_in_deadline_order_and_stop_drops_the_rest() {
        let timer = Timer::new();
        let (tx, rx) = mpsc::channel();
        let base = Instant::now() + Duration::from_millis(20);
        for (i, ms) in [(0u32, 30u64), (1, 10), (2, 20), (3, 10)] {
            let tx = tx.clone();
            timer
                .schedule(
                    base + Duration::from_millis(ms),
                    Box::new(move || {
                        tx.send(i).unwrap();
                    }),
                )
                .unwrap_or_else(|_| panic!("timer refused"));
        }
        let got: Vec<u32> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
            .collect();
        // Equal deadlines keep insertion order.
        assert_eq!(got, [1, 3, 2, 0]);
        let far = Instant::now() + Duration::from_secs(3600);
        timer
            .schedule(far, Box::new(|| panic!("must not run")))
            .ok();
        assert_eq!(timer.pending(), 1);
        timer.stop();
        assert_eq!(timer.pending(), 0);
        assert!(timer.schedule(far, Box::new(|| ())).is_err());
    }
}
