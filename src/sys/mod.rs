//! Calls into the operating system. This is the only module allowed `unsafe`; every
//! `unsafe` block carries a `// SAFETY:` comment saying why the call is sound.
//!
//! On targets other than Linux the functions here report that the feature is unsupported
//! instead of failing to build.

#![allow(unsafe_code)]

/// The kernel's id for the calling thread (what `ps -L` shows as LWP and what
/// `/proc/self/task/<tid>` is named after), or `None` where the OS has no such notion.
#[cfg(target_os = "linux")]
pub(crate) fn current_tid() -> Option<i32> {
    // SAFETY: gettid takes no arguments, cannot fail and touches no memory of ours.
    Some(unsafe { libc::gettid() })
}

/// The kernel's id for the calling thread, or `None` where the OS has no such notion.
#[cfg(not(target_os = "linux"))]
pub(crate) fn current_tid() -> Option<i32> {
    None
}

mod procstat;
pub(crate) use procstat::thread_stat;
