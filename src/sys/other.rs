//! Targets other than Linux: no thread ids, no placement, no priority.

use std::io;

fn unsupported<T>(what: &str) -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is only supported on Linux"),
    ))
}

pub(crate) fn current_tid() -> Option<i32> {
    None
}

/// A monotonic clock in nanoseconds since an arbitrary process-wide origin.
pub(crate) fn monotonic_nanos() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The calling thread's CPU time: unknown here.
pub(crate) fn thread_cpu_nanos() -> Option<u64> {
    None
}

pub(crate) fn current_cpu() -> Option<usize> {
    None
}

pub(crate) fn affinity(_tid: Option<i32>) -> io::Result<Vec<usize>> {
    unsupported("reading CPU affinity")
}

pub(crate) fn set_current_affinity(_cpus: &[usize]) -> io::Result<()> {
    unsupported("CPU affinity")
}

pub(crate) fn nice(_tid: Option<i32>) -> io::Result<i32> {
    unsupported("reading the nice value")
}

pub(crate) fn set_current_nice(_nice: i32) -> io::Result<()> {
    unsupported("a per-thread nice value")
}

pub(crate) fn sched_policy(_tid: Option<i32>) -> io::Result<i32> {
    unsupported("reading the scheduling policy")
}

pub(crate) fn set_current_sched_policy(_raw: i32) -> io::Result<()> {
    unsupported("a per-thread scheduling policy")
}
