//! The synchronisation primitives the crate's own protocols are built from, imported from
//! one place so that a model checker (loom) could replace them under a `cfg` in one edit.
//!
//! The queue itself is a crossbeam channel and is not replaced; see docs/ARCHITECTURE.md
//! for what is and is not model-checked.

pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
pub(crate) use std::sync::{Arc, OnceLock};
