//! Flat, not nested: work whose depth follows user data runs from a loop on the current
//! thread instead of by recursion, so no chain of continuations can overflow a stack.
//!
//! Two places in the crate would otherwise recurse once per link of a user-built chain:
//!
//! - **Resolving continuations.** Ending a task hands its outcome to its continuation
//!   ([`TaskHandle::then_in`](crate::TaskHandle::then_in)); if that continuation's pool
//!   refuses it, ending the continuation hands *its* outcome to the next one, and so on. With
//!   [`hand_on`], only the outermost call on a thread runs a continuation directly; a call
//!   made while one is already running is queued and run by the outermost one's loop.
//! - **Dropping refused continuations.** A refused continuation holds its input, which may
//!   itself be a refused continuation holding *its* input: a chain of N refusals is a value
//!   nested N deep. [`drop_flat`] drops such values one level at a time from a loop.
//!
//! Both keep a per-thread queue that is empty (and unallocated) unless a chain is being
//! resolved, so the common case, a single continuation, costs a thread-local flag check.
//! This module imports nothing from the crate.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};

thread_local! {
    /// True while [`hand_on`] runs continuations on this thread.
    static HANDING_ON: Cell<bool> = const { Cell::new(false) };
    /// Continuations handed on while one was already running.
    static PENDING: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
    /// True while [`drop_flat`] drops values on this thread.
    static DROPPING: Cell<bool> = const { Cell::new(false) };
    /// Values whose drop was deferred by a nested [`drop_flat`].
    static TO_DROP: RefCell<Vec<Box<dyn Any + Send>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` now, unless this thread is already inside `hand_on`: then `f` is queued and run
/// by the outermost call once the current one returns. The outermost call runs queued work in
/// the order it was handed on, so a chain of continuations resolves front to back with
/// constant stack depth.
///
/// A panic in `f` propagates to the caller of the outermost call after the work still queued
/// has run (each under `catch_unwind`), so nothing queued is lost.
pub(crate) fn hand_on(f: impl FnOnce() + 'static) {
    if HANDING_ON.with(Cell::get) {
        PENDING.with(|q| q.borrow_mut().push(Box::new(f)));
        return;
    }
    HANDING_ON.with(|h| h.set(true));
    let _reset = Reset {
        flag: &HANDING_ON,
        rest: run_pending_quietly,
    };
    f();
    run_pending();
}

/// Runs queued continuations until none is left (each may queue more).
fn run_pending() {
    // FIFO order: take the queue as it is, run it, repeat.
    loop {
        let batch = PENDING.with(|q| std::mem::take(&mut *q.borrow_mut()));
        if batch.is_empty() {
            return;
        }
        for f in batch {
            f();
        }
    }
}

/// On unwinding out of [`hand_on`]: runs what is still queued, catching panics, so a panic in
/// one continuation does not strand the others.
fn run_pending_quietly() {
    loop {
        let batch = PENDING.with(|q| std::mem::take(&mut *q.borrow_mut()));
        if batch.is_empty() {
            return;
        }
        for f in batch {
            let _ = panic::catch_unwind(AssertUnwindSafe(f));
        }
    }
}

/// Drops `value` without recursing into values nested inside it that also go through
/// `drop_flat`: those are queued and dropped by this call's loop, one level at a time.
pub(crate) fn drop_flat(value: Box<dyn Any + Send>) {
    if DROPPING.with(Cell::get) {
        TO_DROP.with(|q| q.borrow_mut().push(value));
        return;
    }
    DROPPING.with(|d| d.set(true));
    let _reset = Reset {
        flag: &DROPPING,
        rest: drop_pending_quietly,
    };
    drop(value);
    while let Some(next) = TO_DROP.with(|q| q.borrow_mut().pop()) {
        drop(next);
    }
}

fn drop_pending_quietly() {
    while let Some(next) = TO_DROP.with(|q| q.borrow_mut().pop()) {
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(next)));
    }
}

/// Clears a thread-local flag when the outermost call returns; while unwinding, first
/// finishes the queued work quietly.
struct Reset {
    flag: &'static std::thread::LocalKey<Cell<bool>>,
    rest: fn(),
}

impl Drop for Reset {
    fn drop(&mut self) {
        if std::thread::panicking() {
            (self.rest)();
        }
        self.flag.with(|f| f.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn nested_hand_on_runs_in_order_without_recursion() {
        let log = Rc::new(RefCell::new(Vec::new()));
        fn link(n: u32, log: Rc<RefCell<Vec<u32>>>) {
            log.borrow_mut().push(n);
            if n < 100_000 {
                hand_on(move || link(n + 1, log));
            }
        }
        let l = log.clone();
        hand_on(move || link(0, l));
        let log = log.borrow();
        assert_eq!(log.len(), 100_001);
        assert!(log.iter().copied().eq(0..=100_000));
        assert!(!HANDING_ON.with(Cell::get));
    }

    struct Nest(Option<Box<dyn Any + Send>>);
    impl Drop for Nest {
        fn drop(&mut self) {
            if let Some(inner) = self.0.take() {
                drop_flat(inner);
            }
        }
    }

    #[test]
    fn drop_flat_drops_deep_nesting() {
        let mut v: Box<dyn Any + Send> = Box::new(());
        for _ in 0..200_000 {
            v = Box::new(Nest(Some(v)));
        }
        drop_flat(v);
        assert!(!DROPPING.with(Cell::get));
    }
}
