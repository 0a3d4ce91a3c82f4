//! Admission that waits without blocking a thread: the future behind
//! [`Pool::submit_async`] and [`Keyed::submit_async`](crate::Keyed::submit_async) (which
//! also refuses at once, without waiting, while its key is at its cap, and admits through the
//! key's queue once it holds a slot).
//!
//! A waiting future registers its waker in the pool's `room` (with an id of its own) and
//! counts itself in `room_waiters`; whoever frees a slot, grows the limit or closes the pool
//! takes every registered waker and wakes it. The future then tries again, and registers
//! again if it still finds no slot. The lost-wake-up argument is the blocked submitters' (see
//! `reserve_until`): the future counts itself, then re-checks the slots (both SeqCst); a
//! releaser frees its slot, then reads `room_waiters` (both SeqCst).
//!
//! Nothing is held across a pending poll but the waker's registration: no slot and no
//! in-flight unit, so a future that is never polled again blocks neither other submitters
//! nor a shutdown, and dropping it removes the registration.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::{Pool, CLOSED};
use crate::error::{RefusalReason, SubmitError};
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::task::TaskHandle;

/// The wakers of async submitters waiting for a slot, under the pool's `room` lock.
#[derive(Default)]
pub(crate) struct RoomWakers {
    pub(crate) wakers: Vec<(u64, Waker)>,
}

/// Gives a taken slot back if dropped (by unwinding) before it was handed on.
struct SlotGuard<'a>(&'a super::PoolShared);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.release_slot();
    }
}

/// Ids of waiting futures, unique per process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The future returned by [`Pool::submit_async`] (and
/// [`Keyed::submit_async`](crate::Keyed::submit_async)): resolves once the closure was admitted
/// (to its [`TaskHandle`]) or refused because the pool shuts down (the closure comes back in
/// the [`SubmitError`]). Cancel-safe: dropping it before it resolved admits nothing.
#[must_use = "futures do nothing unless polled; dropping it submits nothing"]
pub struct Admission<F, T> {
    pool: Pool,
    /// The key of a keyed submission ([`Keyed::submit_async`](crate::Keyed::submit_async)).
    key: Option<Arc<str>>,
    f: Option<F>,
    /// This future's registration in the pool's `room`, while it has one.
    waiting: Option<u64>,
    _result: PhantomData<fn() -> T>,
}

// The closure is only ever moved out of the `Option`, never pinned: the future may move.
impl<F, T> Unpin for Admission<F, T> {}

impl<F, T> Admission<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(pool: Pool, f: F) -> Self {
        Admission {
            pool,
            key: None,
            f: Some(f),
            waiting: None,
            _result: PhantomData,
        }
    }

    pub(crate) fn keyed(pool: Pool, key: Arc<str>, f: F) -> Self {
        Admission {
            pool,
            key: Some(key),
            f: Some(f),
            waiting: None,
            _result: PhantomData,
        }
    }

    /// Admits the closure into a slot this future has taken.
    fn admit(&mut self, f: F) -> Result<TaskHandle<T>, SubmitError<F>> {
        let shared = &self.pool.shared;
        // The context hook's capture runs here, user code: should it panic, the slot this
        // future holds is given back, not leaked.
        let slot = SlotGuard(shared);
        let (cell, job) = self.pool.prepare(f);
        std::mem::forget(slot);
        // Counted only now: a future dropped while waiting never submitted anything.
        shared.submitted.fetch_add(1, Ordering::Relaxed);
        let sent = match &self.key {
            None => shared.send_reserved(job),
            Some(key) => shared.send_reserved_keyed(key, job),
        };
        match sent {
            Ok(()) => {
                self.pool.grow_if_needed();
                if shared.config.max_queue_wait.is_some() {
                    shared.watch_default(cell.clone());
                }
                Ok(TaskHandle::new(cell))
            }
            Err((job, reason)) => {
                drop(job);
                shared.count_refusal(reason);
                if let (Some(key), false) = (&self.key, reason == RefusalReason::KeyCap) {
                    shared.keys.count_refused(key);
                }
                Err(SubmitError::new(
                    cell.reclaim(),
                    reason,
                    shared.name.clone(),
                ))
            }
        }
    }

    /// Refuses the closure because the pool is shutting down (or, `KeyCap`, its key is at
    /// its cap: counted for the key already), counted as a submission.
    fn refuse(&mut self, f: F, reason: RefusalReason) -> SubmitError<F> {
        let shared = &self.pool.shared;
        shared.submitted.fetch_add(1, Ordering::Relaxed);
        shared.count_refusal(reason);
        if let (Some(key), RefusalReason::ShuttingDown) = (&self.key, reason) {
            shared.keys.count_refused(key);
        }
        SubmitError::new(f, reason, shared.name.clone())
    }
}

impl<F, T> Admission<F, T> {
    /// Registers (or refreshes) this future's waker in the pool's `room`.
    fn register(&mut self, waker: &Waker) {
        let shared = &self.pool.shared;
        let mut room = shared.room.lock();
        if let Some(id) = self.waiting {
            if let Some(entry) = room.wakers.iter_mut().find(|(i, _)| *i == id) {
                if !entry.1.will_wake(waker) {
                    entry.1 = waker.clone();
                }
                return;
            }
            // Taken by a wake-up since: register anew.
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        room.wakers.push((id, waker.clone()));
        shared.room_waiters.fetch_add(1, Ordering::SeqCst);
        self.waiting = Some(id);
    }

    /// Removes this future's registration, if a wake-up has not taken it already.
    fn unregister(&mut self) {
        let Some(id) = self.waiting.take() else {
            return;
        };
        let shared = &self.pool.shared;
        let mut room = shared.room.lock();
        if let Some(pos) = room.wakers.iter().position(|(i, _)| *i == id) {
            room.wakers.swap_remove(pos);
            shared.room_waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl<F, T> Future for Admission<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = Result<TaskHandle<T>, SubmitError<F>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(f) = this.f.take() else {
            panic!("Admission polled after it resolved");
        };
        let shared = this.pool.shared.clone();
        // Two tries: before registering, and after (so a slot freed in between is not missed).
        for attempt in 0..2 {
            if shared.state.load(Ordering::Acquire) & CLOSED != 0 {
                this.unregister();
                return Poll::Ready(Err(this.refuse(f, RefusalReason::ShuttingDown)));
            }
            if let Some(key) = &this.key {
                // A key at its cap is refused at once: it would wait on itself.
                if shared.keys.refuse_if_capped(key) {
                    this.unregister();
                    return Poll::Ready(Err(this.refuse(f, RefusalReason::KeyCap)));
                }
            }
            if shared.try_reserve(Ordering::SeqCst) {
                this.unregister();
                return Poll::Ready(this.admit(f));
            }
            if attempt == 0 {
                this.register(cx.waker());
            }
        }
        this.f = Some(f);
        Poll::Pending
    }
}

impl<F, T> Drop for Admission<F, T> {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl<F, T> fmt::Debug for Admission<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("pool", &self.pool.name())
            .field("key", &self.key)
            .field("resolved", &self.f.is_none())
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}
