//! Calls into the operating system. This is the only module allowed `unsafe`; every
//! `unsafe` block carries a `// SAFETY:` comment saying why the call is sound.
//!
//! `linux.rs` makes the calls; `other.rs` has the same functions for every other target,
//! where the thread id and current CPU are unknown (`None`) and placement and priority
//! report an error of kind [`Unsupported`](std::io::ErrorKind::Unsupported), so the crate
//! still builds there.
//!
//! Every function acts on, or reads, one *thread*: on Linux affinity, nice value and
//! scheduling policy are per thread, and `tid` is a kernel thread id of this process
//! (`None` means the calling thread).
//!
//! A leaf: it imports nothing from the crate. It takes and returns plain values (thread
//! ids, CPU ids, nice values, the kernel's policy numbers); the crate's domain types
//! (`CpuSet`, `SchedPolicy`) are built on top, in `cpuset.rs` and `placement.rs`.

#![allow(unsafe_code)]

/// Linux's `SCHED_OTHER`: the default time-sharing policy.
pub(crate) const SCHED_NORMAL: i32 = 0;
/// Linux's `SCHED_BATCH`.
pub(crate) const SCHED_BATCH: i32 = 3;
/// Linux's `SCHED_IDLE`.
pub(crate) const SCHED_IDLE: i32 = 5;

// Under Miri, which interprets only a few system calls, the crate behaves as on a target
// without these features: thread ids and placement read back as unknown.
#[cfg(all(target_os = "linux", not(miri)))]
mod linux;
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) use linux::*;

#[cfg(any(not(target_os = "linux"), miri))]
mod other;
#[cfg(any(not(target_os = "linux"), miri))]
pub(crate) use other::*;

mod procstat;
pub(crate) use procstat::thread_stat;
