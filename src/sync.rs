//! The synchronisation primitives the crate's own protocols are built from, imported from
//! one place so that a model checker (loom) or an interpreter (Miri) can have them replaced
//! under a `cfg` in one edit.
//!
//! Normally the locks are parking_lot's. Under Miri they are thin wrappers over the standard
//! library's `Mutex` and `Condvar` with the same API: parking_lot_core 0.9 passes an
//! `&AtomicI32` where the futex system call's variadic argument is a `*mut u32`, which
//! current Miri reports as undefined behaviour in parking_lot itself (not in this crate), and
//! would stop every Miri run at the first contended lock. Our protocols are the same either
//! way; only the lock implementation underneath differs.
//!
//! The queue itself is a crossbeam channel and is not replaced; see docs/ARCHITECTURE.md
//! for what is and is not model-checked.

#[cfg(not(miri))]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
pub(crate) use std::sync::{Arc, OnceLock};

#[cfg(miri)]
pub(crate) use std_locks::{Condvar, Mutex, MutexGuard};

/// parking_lot's lock API (the part this crate uses) over the standard library's locks.
/// Poisoning is ignored, as parking_lot has none.
#[cfg(miri)]
mod std_locks {
    use std::ops::{Deref, DerefMut};
    use std::sync::{self, PoisonError, TryLockError};
    use std::time::Instant;

    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T: ?Sized>(sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Mutex(sync::Mutex::new(value))
        }
    }

    impl<T: ?Sized> Mutex<T> {
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)))
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(g) => Some(MutexGuard(Some(g))),
                Err(TryLockError::Poisoned(p)) => Some(MutexGuard(Some(p.into_inner()))),
                Err(TryLockError::WouldBlock) => None,
            }
        }
    }

    /// Always `Some` except inside [`Condvar`]'s waits.
    #[derive(Debug)]
    pub(crate) struct MutexGuard<'a, T: ?Sized>(Option<sync::MutexGuard<'a, T>>);

    impl<T: ?Sized> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_deref().expect("guard held")
        }
    }

    impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_deref_mut().expect("guard held")
        }
    }

    pub(crate) struct WaitTimeoutResult(bool);

    impl WaitTimeoutResult {
        pub(crate) fn timed_out(&self) -> bool {
            self.0
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Condvar(sync::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Condvar(sync::Condvar::new())
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let g = guard.0.take().expect("guard held");
            guard.0 = Some(self.0.wait(g).unwrap_or_else(PoisonError::into_inner));
        }

        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            deadline: Instant,
        ) -> WaitTimeoutResult {
            let g = guard.0.take().expect("guard held");
            let timeout = deadline.saturating_duration_since(Instant::now());
            let (g, r) = self
                .0
                .wait_timeout(g, timeout)
                .unwrap_or_else(PoisonError::into_inner);
            guard.0 = Some(g);
            WaitTimeoutResult(r.timed_out())
        }
    }
}
