//! Overload control at dequeue: the queue-delay controller (CoDel) and the shed handler that
//! receives fire-and-forget tasks a pool did not run.
//!
//! # Queue-delay control (CoDel)
//!
//! The controller follows CoDel (Nichols & Jacobson, "Controlling Queue Delay", ACM Queue
//! 2012) as adapted to request queues in "Fail at Scale" (Maurer, ACM Queue 2015): the signal
//! is each task's *sojourn time* (how long it waited in the queue), measured by the worker that
//! dequeues it, and the controller sheds at dequeue, not at admission.
//!
//! - While tasks wait less than `target`, nothing happens.
//! - The first task that waited `target` or longer arms a timer: `first_above = now + interval`.
//! - If tasks keep waiting `target` or longer until `first_above`, the queue has been standing
//!   for a whole interval: the controller enters *dropping*. While dropping, every dequeued
//!   task that waited longer than `target` is shed (resolved as
//!   [`TaskError::Shed`](crate::TaskError::Shed), or handed to the shed handler) instead of
//!   run, so the standing queue drains fast and fresh tasks are served.
//! - A worker finding the queue empty ends the dropping state: normal service resumes. A
//!   dequeued task that waited less than `target` is run, and disarms the timer if the
//!   controller was not dropping yet; while dropping it does not end the episode.
//!
//! Two departures from packet CoDel, both Fail at Scale's: while dropping, every task above
//! target is shed (packet CoDel drops one packet per `interval / sqrt(count)`, to signal TCP
//! senders gently; a task that waited too long is stale for its caller anyway, and serving
//! it only delays the next); and the episode ends when the queue empties ("if the queue has
//! not been empty for the last interval, the queue timeout is the target"), not at the first
//! task below target. Under sustained overload shedding keeps the queue short, so fresh tasks
//! keep arriving below target; ending the episode on each of them let the standing queue
//! grow back for a whole interval every time (measured in docs/BENCHMARKS.md).
//!
//! ## State word
//!
//! The controller is one `AtomicU64` on its own cache line, written only when a task's wait
//! crosses the target (or when the state must be reset), so a pool whose tasks wait less than
//! the target only reads it:
//!
//! | value             | state                                                    |
//! |-------------------|----------------------------------------------------------|
//! | `0`               | idle: no task above target since the last reset          |
//! | `1..u64::MAX`     | armed: `first_above` in nanoseconds since the pool's epoch, plus 1 |
//! | `u64::MAX`        | dropping: shed every task that waited longer than target |
//!
//! Several workers update it without a lock: a lost race only moves the arming instant by a
//! few microseconds or delays entering or leaving the dropping state by one task.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::job::DetachedTask;
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::unwind::drop_quietly;

const IDLE: u64 = 0;
const DROPPING: u64 = u64::MAX;

/// The CoDel settings of a pool, from [`PoolBuilder::codel`](crate::PoolBuilder::codel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodelConfig {
    pub(crate) target: Duration,
    pub(crate) interval: Duration,
}

/// One pool's queue-delay controller; see the module docs.
pub(crate) struct Codel {
    target: Duration,
    interval_nanos: u64,
    state: AtomicU64,
}

impl Codel {
    pub(crate) fn new(config: CodelConfig) -> Self {
        Codel {
            target: config.target,
            interval_nanos: u64::try_from(config.interval.as_nanos()).unwrap_or(u64::MAX / 2),
            state: AtomicU64::new(IDLE),
        }
    }

    /// Decides for one dequeued task that waited `waited`, dequeued at `now_nanos` (since the
    /// pool's epoch): true if it must be shed.
    #[inline]
    pub(crate) fn should_shed(&self, waited: Duration, now_nanos: u64) -> bool {
        if waited < self.target {
            // Below target: run it. If the controller was only armed, the queue is not
            // standing after all: disarm (write only if there is state to clear). While
            // dropping, a fresh task does not end the episode: only an empty queue does.
            let s = self.state.load(Ordering::Relaxed);
            if s != IDLE && s != DROPPING {
                self.reset();
            }
            return false;
        }
        self.above_target(now_nanos)
    }

    #[cold]
    fn above_target(&self, now_nanos: u64) -> bool {
        match self.state.load(Ordering::Relaxed) {
            DROPPING => true,
            IDLE => {
                // First task above target: arm the timer. If another worker armed it first,
                // its instant stands.
                let first_above = now_nanos
                    .saturating_add(self.interval_nanos)
                    .saturating_add(1)
                    .min(DROPPING - 1);
                let _ = self.state.compare_exchange(
                    IDLE,
                    first_above,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                false
            }
            armed => {
                if now_nanos.saturating_add(1) >= armed {
                    // Above target for a whole interval: a standing queue. Shed.
                    self.state.store(DROPPING, Ordering::Relaxed);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// A worker found the queue empty: whatever queue there was has drained.
    #[inline]
    pub(crate) fn queue_empty(&self) {
        if self.state.load(Ordering::Relaxed) != IDLE {
            self.reset();
        }
    }

    #[cold]
    fn reset(&self) {
        self.state.store(IDLE, Ordering::Relaxed);
    }

    /// True while the controller sheds.
    pub(crate) fn is_dropping(&self) -> bool {
        self.state.load(Ordering::Relaxed) == DROPPING
    }
}

/// Why a pool did not run a task; given to the [shed handler](crate::PoolBuilder::on_shed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShedReason {
    /// It waited longer than the pool's [`max_queue_wait`](crate::PoolBuilder::max_queue_wait).
    Expired,
    /// The pool's queue-delay controller shed it (see [`PoolBuilder::codel`](crate::PoolBuilder::codel)).
    Shed,
    /// A shutdown gave up on queued work (its deadline passed) before the task ran.
    CancelledByShutdown,
}

impl ShedReason {
    /// A short lowercase label, stable for logs and metric labels (`"expired"`, `"shed"`,
    /// `"cancelled_by_shutdown"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::Expired => "expired",
            ShedReason::Shed => "shed",
            ShedReason::CancelledByShutdown => "cancelled_by_shutdown",
        }
    }
}

impl fmt::Display for ShedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShedReason::Expired => "waited longer than the maximum queue wait",
            ShedReason::Shed => "shed by queue-delay control",
            ShedReason::CancelledByShutdown => {
                "cancelled by a shutdown that gave up on queued work"
            }
        })
    }
}

/// A fire-and-forget task ([`Pool::execute`](crate::Pool::execute)) that its pool did not
/// run, handed to the pool's [shed handler](crate::PoolBuilder::on_shed) with the reason.
///
/// The closure comes back unrun: call [`task`](ShedTask::task) to run it here, send it to
/// another pool, or drop it.
#[non_exhaustive]
pub struct ShedTask {
    /// The pool that did not run it.
    pub pool: Arc<str>,
    /// Why.
    pub reason: ShedReason,
    /// How long it had waited in the queue, when a worker measured it (`Expired`, `Shed`);
    /// `None` for tasks cancelled by a shutdown drain.
    pub waited: Option<Duration>,
    /// The task's closure, not run.
    pub task: Box<dyn FnOnce() + Send>,
}

impl fmt::Debug for ShedTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShedTask")
            .field("pool", &&*self.pool)
            .field("reason", &self.reason)
            .field("waited", &self.waited)
            .finish_non_exhaustive()
    }
}

/// A pool's shed handler: cheap to clone, shown as `on_shed(..)` by `Debug`.
#[derive(Clone)]
pub(crate) struct ShedHandler(pub(crate) Arc<dyn Fn(ShedTask) + Send + Sync + 'static>);

impl fmt::Debug for ShedHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("on_shed(..)")
    }
}

impl ShedHandler {
    /// Hands one unrun task to the handler on this thread. A panic in the handler (or in
    /// dropping the closure) is caught and dropped, so it never unwinds into a worker.
    #[cold]
    pub(crate) fn deliver(
        &self,
        pool: &Arc<str>,
        reason: ShedReason,
        waited: Option<Duration>,
        task: Box<dyn DetachedTask>,
    ) {
        let shed = ShedTask {
            pool: pool.clone(),
            reason,
            waited,
            task: task.into_fn(),
        };
        let call = AssertUnwindSafe(|| (self.0)(shed));
        if let Err(payload) = panic::catch_unwind(call) {
            drop_quietly(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codel() -> Codel {
        Codel::new(CodelConfig {
            target: Duration::from_millis(5),
            interval: Duration::from_millis(100),
        })
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn sheds_only_after_a_whole_interval_above_target() {
        let c = codel();
        let above = Duration::from_millis(6);
        assert!(!c.should_shed(above, 0));
        assert!(!c.should_shed(above, 50 * MS));
        assert!(!c.is_dropping());
        assert!(c.should_shed(above, 100 * MS));
        assert!(c.is_dropping());
        // While dropping, every task above target is shed.
        assert!(c.should_shed(above, 101 * MS));
    }

    #[test]
    fn only_an_empty_queue_ends_dropping() {
        let c = codel();
        let above = Duration::from_millis(6);
        c.should_shed(above, 0);
        assert!(c.should_shed(above, 200 * MS));
        // A fresh task runs, and the episode goes on.
        assert!(!c.should_shed(Duration::from_millis(1), 201 * MS));
        assert!(c.is_dropping());
        assert!(c.should_shed(above, 202 * MS));
        c.queue_empty();
        assert!(!c.is_dropping());
        // Re-armed from scratch: another whole interval is needed.
        assert!(!c.should_shed(above, 300 * MS));
        assert!(!c.should_shed(above, 350 * MS));
        assert!(c.should_shed(above, 400 * MS));
    }

    #[test]
    fn a_task_below_target_disarms_before_dropping() {
        let c = codel();
        let above = Duration::from_millis(6);
        assert!(!c.should_shed(above, 0));
        assert!(!c.should_shed(Duration::from_millis(1), 50 * MS));
        assert!(!c.should_shed(above, 120 * MS));
        assert!(!c.should_shed(above, 200 * MS));
        assert!(c.should_shed(above, 220 * MS));
    }
}
