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

#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
pub(crate) use other::*;

mod procstat;
pub(crate) use procstat::thread_stat;
