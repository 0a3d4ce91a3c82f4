//! The worker loop: take a job from the pool's queue, decide its fate (run, expire or
//! cancel), count the outcome in the worker's own slot, repeat.
//!
//! A worker takes jobs with a non-blocking `try_recv` while the queue has work, and blocks
//! (parks in crossbeam's `select`, burning no CPU) only when it is empty. It reads the pool's
//! admission word only on that slow path, to learn whether shutdown began; see the protocol in
//! [`pool`](crate::pool).
//!
//! # Latency
//!
//! With metrics on, a task that ran is recorded into the worker's own recorder (one
//! uncontended lock, no allocation) as soon as it returns, before its handle is resolved, so
//! a caller who joined sees it in the histograms. The clock read that ends one task also
//! starts the next one when the worker finds another job at once, so tasks run back to back
//! cost one clock read each, as with metrics off; the next task's queue wait is then measured
//! up to that instant, a few tens of nanoseconds before the worker actually took it.

use std::io;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, RecvTimeoutError, Sender};

use crate::hooks;
use crate::pool::{PoolShared, CLOSED, IN_FLIGHT};
use crate::sync::{Arc, Ordering};
use crate::sys;
use crate::task::{Job, Outcome};

/// How often a worker re-checks the admission word while shutdown waits for a submitter
/// still blocked in a `*_timeout` call (the only time a worker polls).
const SHUTDOWN_POLL: Duration = Duration::from_millis(1);

/// Starts worker `index` of the pool. The thread holds `exit_token` until it returns; the
/// pool learns that all its workers are gone when the last token is dropped.
///
/// Before it serves, the worker sets itself up (publishes its thread id, applies the pool's
/// placement) and reports the result on `ready`; if set-up failed it exits without serving,
/// and `build()` fails with that error.
pub(crate) fn spawn(
    shared: Arc<PoolShared>,
    index: usize,
    exit_token: Sender<()>,
    ready: Sender<io::Result<()>>,
) -> io::Result<JoinHandle<()>> {
    let mut builder = thread::Builder::new().name(shared.workers[index].thread_name.clone());
    if let Some(bytes) = shared.config.stack_size {
        builder = builder.stack_size(bytes);
    }
    builder.spawn(move || {
        let _exit_token = exit_token;
        let worker = Worker { shared, index };
        // Placement first, so that the start hook sees the final placement.
        let setup = worker
            .set_up()
            .and_then(|()| hooks::thread_started(&worker.shared, index));
        let ok = setup.is_ok();
        // The builder is waiting on the other end; if it is gone there is nobody to serve.
        if ready.send(setup).is_err() || !ok {
            worker.shared.workers[index].mark_exited();
            if ok {
                hooks::thread_stopped(&worker.shared, index);
            }
            return;
        }
        worker.run();
        hooks::thread_stopped(&worker.shared, index);
    })
}

struct Worker {
    shared: Arc<PoolShared>,
    index: usize,
}

impl Worker {
    /// Runs on the new thread before it takes any task.
    fn set_up(&self) -> io::Result<()> {
        let slot = &self.shared.workers[self.index];
        if let Some(tid) = sys::current_tid() {
            slot.set_tid(tid);
        }
        // Affinity, policy, nice: before the first task, and any refusal fails `build()`.
        self.shared.config.cpu.apply(self.index)
    }

    fn run(&self) {
        let shared = &*self.shared;
        let slot = &shared.workers[self.index];
        // A clock reading taken as the previous task ended, reused as the next task's start
        // when the next job is taken at once (metrics on only).
        let mut boundary: Option<Instant> = None;
        loop {
            // Step 1: take work without blocking while there is some.
            let job = match shared.rx.try_recv() {
                Ok(job) => job,
                // Step 2: the queue is empty: block, or learn that it is time to exit.
                Err(_) => {
                    boundary = None;
                    match self.wait_for_job() {
                        Some(job) => job,
                        None => break,
                    }
                }
            };
            // Step 3: one clock read per task boundary.
            let start = boundary.take().unwrap_or_else(Instant::now);
            // Step 4: run, expire or cancel it; its outcome is counted (and, with metrics on,
            // its latency recorded) before its handle, if any, is resolved.
            boundary = self.process(job, start);
        }
        slot.mark_exited();
    }

    /// Runs, expires or cancels one job that a worker took at `start`. Returns the instant
    /// the task ended if the clock was read for it (metrics on and the closure ran).
    #[inline]
    fn process(&self, job: Job, start: Instant) -> Option<Instant> {
        let shared = &*self.shared;
        let slot = &shared.workers[self.index];
        let mut account = |outcome| slot.count(outcome);
        if shared.abandoned.load(Ordering::Relaxed) {
            job.cancel(&mut account);
            return None;
        }
        let enqueued = job.enqueued;
        if let Some(max) = shared.config.max_queue_wait {
            let waited = start.saturating_duration_since(enqueued);
            if waited > max {
                job.expire(waited, &mut account);
                return None;
            }
        }
        slot.set_busy(shared.nanos_since_epoch(start));
        let mut end = None;
        job.run(&mut |outcome| {
            if let (Some(recorders), Outcome::Completed | Outcome::Panicked) =
                (&shared.recorders, outcome)
            {
                let now = Instant::now();
                recorders[self.index].record(enqueued, start, now);
                end = Some(now);
            }
            slot.set_idle();
            slot.count(outcome);
        });
        end
    }

    /// Blocks until a job arrives; returns `None` when the worker should exit: shutdown began,
    /// no submitter is still inside `send`, and the queue is empty.
    #[cold]
    fn wait_for_job(&self) -> Option<Job> {
        let shared = &*self.shared;
        loop {
            let state = shared.state.load(Ordering::Acquire);
            if state & CLOSED == 0 {
                // Normal operation: park until a job or the shutdown signal arrives.
                select! {
                    recv(shared.rx) -> job => match job {
                        Ok(job) => return Some(job),
                        // Unreachable: the pool holds a sender as long as workers run.
                        Err(_) => return None,
                    },
                    recv(shared.shutdown_rx) -> _ => continue,
                }
            } else if state / IN_FLIGHT == 0 {
                // Closed and nobody is mid-send: whatever is queued now is all there will be.
                return shared.rx.try_recv().ok();
            } else {
                // Closed, but a submitter is still inside a `*_timeout` send; its task may
                // still land. Poll until it leaves.
                match shared.rx.recv_timeout(SHUTDOWN_POLL) {
                    Ok(job) => return Some(job),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return None,
                }
            }
        }
    }
}
