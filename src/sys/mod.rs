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
