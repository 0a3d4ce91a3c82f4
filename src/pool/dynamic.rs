//! Workers started after `build()`: elastic growth and keep-alive, replacement of stuck
//! workers, and live resizing. Only pools that use one of these have this state
//! (`PoolShared::dynamic` is `Some`); a fixed pool pays one `Option` check per task.
//!
//! # Slots
//!
//! A pool's worker slots are allocated once, at build, up to a hard cap:
//! `max_threads_limit + replacement_budget` (the limit defaults to the pool's maximum thread
//! count). A slot is `VACANT` until a worker first uses it, `LIVE` while a worker owns it,
//! `EXITED` after that worker retired or exited; an exited slot is reused by the next worker
//! started. Counters in a slot are cumulative over the workers that used it.
//!
//! # Counts
//!
//! Under one mutex (taken only off the hot path: when a thread starts or retires, at
//! resizes, and at supervisor samples that find a stuck worker):
//!
//! | count      | meaning                                                              |
//! |------------|----------------------------------------------------------------------|
//! | `live`     | workers that own a slot (running, idle, or stuck)                    |
//! | `replaced` | live workers stuck in a task for which a replacement was started     |
//! | `active`   | `live - replaced`: the workers the pool counts on                    |
//! | `min, max` | the bounds `active` is kept in (`min == max` for a fixed size)       |
//!
//! Rules: a thread is started when `active < min` (resize), or on submission when `active <
//! max` and the task would otherwise wait (no idle worker); a worker retires when
//! `active > max` (after its task, or at once if idle: resizing wakes idle workers first), or
//! after `keep_alive` idle when `active > min`; a replaced worker retires when its task
//! returns. So `active <= max` except while a shrink is in progress, `replaced <= budget`,
//! and `live <= max + budget` at all times. `min >= 1`, so at least one worker serves the
//! queue whatever retires.
//!
//! Every worker holds a clone of the pool's exit token, taken under the mutex from
//! `Counts::exit_tx`; shutdown drops that sender under the same mutex, so no worker can
//! start after shutdown began, and `exit_rx` disconnects only when every worker, however it
//! was started, has returned.

use std::io;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use crossbeam_utils::CachePadded;

use super::PoolShared;
use crate::error::SetupError;
use crate::sync::{fence, Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::worker::{self, Retire};

/// The counts the mutex protects; see the module docs.
pub(crate) struct Counts {
    live: usize,
    replaced: usize,
    pub(crate) min: usize,
    pub(crate) max: usize,
    /// Cloned into every worker started; dropped when shutdown begins.
    exit_tx: Option<Sender<()>>,
}

impl Counts {
    fn active(&self) -> usize {
        self.live - self.replaced
    }
}

/// One pool's dynamic-worker state.
pub(crate) struct Dynamic {
    /// Workers parked waiting for a job; read by submitters to decide on growth.
    pub(crate) idle: CachePadded<AtomicUsize>,
    /// `active < max`, mirrored so that a submitter to a pool at its maximum reads one word.
    can_grow: CachePadded<AtomicBool>,
    /// `active > max`: read by workers after each task; the first to see it retires.
    pub(crate) shrink: AtomicBool,
    /// `max + replaced`: the threads that count towards the pool's admission limit.
    thread_cap: AtomicUsize,
    /// Mirrors of the counts, for `stats()`.
    live: AtomicUsize,
    replaced: AtomicUsize,
    min: AtomicUsize,
    max: AtomicUsize,
    pub(crate) replacements: AtomicU64,
    pub(crate) keep_alive: Duration,
    pub(crate) budget: usize,
    /// The largest `max` a resize may set (the slot array holds this plus the budget).
    pub(crate) threads_limit: usize,
    /// Wakes idle workers so that they retire first when the pool shrinks.
    wake_tx: Sender<()>,
    pub(crate) wake_rx: Receiver<()>,
    counts: Mutex<Counts>,
}

impl Dynamic {
    pub(crate) fn new(
        min: usize,
        max: usize,
        keep_alive: Duration,
        budget: usize,
        threads_limit: usize,
        exit_tx: Sender<()>,
    ) -> Self {
        let (wake_tx, wake_rx) = unbounded();
        let d = Dynamic {
            idle: CachePadded::new(AtomicUsize::new(0)),
            can_grow: CachePadded::new(AtomicBool::new(false)),
            shrink: AtomicBool::new(false),
            thread_cap: AtomicUsize::new(max),
            live: AtomicUsize::new(0),
            replaced: AtomicUsize::new(0),
            min: AtomicUsize::new(min),
            max: AtomicUsize::new(max),
            replacements: AtomicU64::new(0),
            keep_alive,
            budget,
            threads_limit,
            wake_tx,
            wake_rx,
            counts: Mutex::new(Counts {
                live: 0,
                replaced: 0,
                min,
                max,
                exit_tx: Some(exit_tx),
            }),
        };
        d.refresh(&d.counts.lock());
        d
    }

    fn refresh(&self, c: &Counts) {
        self.live.store(c.live, Ordering::Relaxed);
        self.replaced.store(c.replaced, Ordering::Relaxed);
        self.min.store(c.min, Ordering::Relaxed);
        self.max.store(c.max, Ordering::Relaxed);
        self.thread_cap.store(c.max + c.replaced, Ordering::Relaxed);
        self.can_grow.store(c.active() < c.max, Ordering::Relaxed);
        self.shrink.store(c.active() > c.max, Ordering::Relaxed);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock()
    }

    /// Live workers now (including replaced stuck ones).
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The threads that count towards the admission limit: the maximum, plus replaced stuck
    /// workers (their tasks still hold slots).
    pub(crate) fn thread_capacity(&self) -> usize {
        self.thread_cap.load(Ordering::Relaxed)
    }

    /// The workers the pool counts on now: live ones that were not replaced.
    pub(crate) fn active(&self) -> usize {
        self.live().saturating_sub(self.replaced())
    }

    /// Replaced stuck workers that have not returned yet.
    pub(crate) fn replaced(&self) -> usize {
        self.replaced.load(Ordering::Relaxed)
    }

    /// The current `(min, max)`.
    pub(crate) fn range(&self) -> (usize, usize) {
        (
            self.min.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        )
    }

    /// True if a thread should start: the pool may grow, and more tasks are queued than
    /// there are idle workers to take them.
    ///
    /// Called by a submitter right after it enqueued, and by a worker right after it left
    /// the idle count with a job. Each side writes (enqueue; idle decrement), then a SeqCst
    /// fence, then reads the other's word, so at least one of two racing parties sees both
    /// the queued task and the worker no longer idle: a task never waits behind a stale idle
    /// count while the pool could grow.
    #[inline]
    pub(crate) fn wants_growth(&self, queued: impl FnOnce() -> usize) -> bool {
        if !self.can_grow.load(Ordering::Relaxed) {
            return false;
        }
        fence(Ordering::SeqCst);
        queued() > self.idle.load(Ordering::Relaxed)
    }

    /// Stops thread starts: drops the exit token the pool kept for new workers.
    pub(crate) fn close(&self) {
        let mut c = self.counts.lock();
        c.exit_tx = None;
    }
}

impl PoolShared {
    /// The dynamic state; only called where the pool is known to have one.
    fn dyn_state(&self) -> &Dynamic {
        self.dynamic
            .as_ref()
            .expect("called only on pools with dynamic workers")
    }

    /// Starts one worker in a free slot. `ready` is given only at build (which waits for
    /// every worker's set-up). Called with the counts locked.
    pub(crate) fn start_worker(
        self: &Arc<Self>,
        c: &mut Counts,
        ready: Option<Sender<Result<(), SetupError>>>,
    ) -> Result<usize, SetupError> {
        let Some(exit) = c.exit_tx.clone() else {
            return Err(SetupError::Spawn(io::Error::other(
                "the pool is shutting down",
            )));
        };
        let Some(index) = self.workers.iter().position(|w| w.has_exited()) else {
            return Err(SetupError::Spawn(io::Error::other(
                "every worker slot is in use",
            )));
        };
        self.join_slot(index);
        self.workers[index].mark_live();
        c.live += 1;
        let result = match worker::spawn(self.clone(), index, exit, ready) {
            Ok(handle) => {
                self.joins.lock().push((index, handle));
                Ok(index)
            }
            Err(e) => {
                self.workers[index].mark_exited();
                c.live -= 1;
                Err(SetupError::Spawn(e))
            }
        };
        self.dyn_state().refresh(c);
        result
    }

    /// Joins the earlier threads of slot `index` that have finished. A thread that gave the
    /// slot up but has not returned yet stays in `joins` (detached until a later reap): this
    /// runs under the growth lock, on paths that must never block.
    fn join_slot(&self, index: usize) {
        let old: Vec<_> = {
            let mut joins = self.joins.lock();
            let (old, keep) = std::mem::take(&mut *joins)
                .into_iter()
                .partition(|(i, h)| *i == index && h.is_finished());
            *joins = keep;
            old
        };
        for (_, handle) in old {
            // Finished: returns at once.
            let _ = handle.join();
        }
    }

    /// Starts a thread if the pool may grow and a queued task has no idle worker to take it
    /// (see [`Dynamic::wants_growth`]), checked again under the growth lock.
    ///
    /// The lock is held only while a thread is spawned or a worker retires, never across
    /// user code (no join, no hook), so a submission that makes the pool grow waits at most
    /// for one thread start. It used to `try_lock` and skip when another thread held the
    /// lock: a submission racing another start then left its task queued behind busy
    /// workers although the pool was below its maximum (a worker that found the task with
    /// its first `try_recv` never re-checked), seen under load in tests/elastic.rs.
    #[cold]
    pub(crate) fn grow(self: &Arc<Self>) {
        let d = self.dyn_state();
        let mut c = d.counts.lock();
        if c.active() < c.max && self.tx.len() > d.idle.load(Ordering::Relaxed) {
            // A failed start (resources) leaves the task to the workers there are.
            let _ = self.start_worker(&mut c, None);
        }
        d.refresh(&c);
    }

    /// Worker `index` asks to retire; true if it must exit now (it is then no longer
    /// counted; its thread gives the slot up as its last step, after its stop hook).
    #[cold]
    pub(crate) fn retire(&self, index: usize, why: Retire) -> bool {
        let d = self.dyn_state();
        let slot = &self.workers[index];
        let mut c = d.counts.lock();
        let replaced = slot.is_replaced();
        let go = match why {
            Retire::Exit => true,
            Retire::Check => replaced || c.active() > c.max,
            Retire::KeepAlive => replaced || c.active() > c.min,
        };
        if go {
            c.live -= 1;
            if replaced {
                c.replaced -= 1;
                slot.set_replaced(false);
            }
            d.refresh(&c);
            if replaced {
                self.update_limit();
            }
        }
        go
    }

    /// From the supervisor: worker `index` has run the task stamped `stamp` past
    /// `stuck_after`. Starts a replacement if the budget allows; returns its slot.
    pub(crate) fn replace_stuck(self: &Arc<Self>, index: usize, stamp: u64) -> Option<usize> {
        let d = self.dynamic.as_ref()?;
        if d.budget == 0 {
            return None;
        }
        let slot = &self.workers[index];
        let mut c = d.counts.lock();
        if c.replaced >= d.budget
            || slot.has_exited()
            || slot.is_replaced()
            || stamp == 0
            || slot.busy_stamp() != stamp
        {
            return None;
        }
        slot.set_replaced(true);
        c.replaced += 1;
        let started = match self.start_worker(&mut c, None) {
            Ok(i) => Some(i),
            Err(_) => {
                slot.set_replaced(false);
                c.replaced -= 1;
                None
            }
        };
        if started.is_some() {
            d.replacements.fetch_add(1, Ordering::Relaxed);
        }
        d.refresh(&c);
        self.update_limit();
        started
    }

    /// Sets the bounds of `active` (already validated): starts threads up to `min`, and wakes
    /// idle workers to retire down to `max`; busy ones retire after their task.
    ///
    /// Returns once every thread it started has finished its set-up (placement and start
    /// hook), with the first error if one could not start or failed its set-up: such a
    /// worker is no longer counted by then, so the pool's thread count is what really runs.
    pub(crate) fn set_range(self: &Arc<Self>, min: usize, max: usize) -> Result<(), SetupError> {
        let d = self.dyn_state();
        let (ready_tx, ready_rx) = unbounded();
        let mut c = d.lock();
        c.min = min;
        c.max = max;
        let mut result = Ok(());
        let mut started = 0;
        while c.active() < c.min {
            match self.start_worker(&mut c, Some(ready_tx.clone())) {
                Ok(_) => started += 1,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let excess = c.active().saturating_sub(c.max);
        d.refresh(&c);
        self.update_limit();
        drop(c);
        drop(ready_tx);
        for _ in 0..excess {
            let _ = d.wake_tx.send(());
        }
        // Outside the lock: a start hook may take its time, and workers that finish a task
        // meanwhile must be able to retire.
        for _ in 0..started {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
                Err(_) => break,
            }
        }
        result
    }
}
