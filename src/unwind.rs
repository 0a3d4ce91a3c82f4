//! Unwinding helpers: containing panics of user code where they must not spread. A leaf:
//! imports nothing from the crate.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// Drops a value whose `Drop` is user code (a closure's captures, a panic payload) without
/// letting a panic in that `Drop` unwind into the worker loop. A value whose drop panics is
/// leaked rather than retried.
pub(crate) fn drop_quietly<T>(value: T) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
        std::mem::forget(payload);
    }
}

/// The message of a panic payload, if it is a string (`panic!("..")` or a formatted one).
pub(crate) fn payload_str(p: &(dyn Any + Send)) -> Option<&str> {
    p.downcast_ref::<&'static str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
}
