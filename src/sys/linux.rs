//! Linux: `gettid`, the monotonic and thread CPU clocks, `sched_getcpu`,
//! `sched_{get,set}affinity`, `{get,set}priority` and `sched_{get,set}scheduler`, all on one
//! thread.
//!
//! Affinity masks are passed as arrays of `c_ulong` sized to the CPUs involved rather than
//! as a fixed `cpu_set_t` (1024 CPUs), so machines with more CPUs work; the kernel reads and
//! writes the mask in that layout (bit `i % bits` of word `i / bits` is CPU `i`).
//! The nice value and the policy go through `syscall` directly: the raw `getpriority`
//! return value is unambiguous (`20 - nice`), and musl's `sched_setscheduler` wrapper
//! refuses to act on a single thread.

// The policy numbers `sys` exposes are the kernel's.
const _: () = assert!(
    super::SCHED_NORMAL == libc::SCHED_OTHER
        && super::SCHED_BATCH == libc::SCHED_BATCH
        && super::SCHED_IDLE == libc::SCHED_IDLE
);

use std::io;
use std::mem::size_of;

const WORD_BITS: usize = libc::c_ulong::BITS as usize;
/// The largest mask `affinity` asks the kernel for, in CPUs (Linux's NR_CPUS is at most 8192).
const MAX_MASK_CPUS: usize = 1 << 16;

fn pid(tid: Option<i32>) -> libc::pid_t {
    tid.unwrap_or(0)
}

/// Maps a `-1` return to the thread's `errno`.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub(crate) fn current_tid() -> Option<i32> {
    // SAFETY: gettid takes no arguments, cannot fail and touches no memory of ours.
    Some(unsafe { libc::gettid() })
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `std::time::Instant` reads on Linux, without
/// the `Instant` arithmetic, for the one clock read per task on the hot path.
#[inline]
pub(crate) fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported on
    // Linux, so the call cannot fail (and `ts` stays zero if it somehow did).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The calling thread's own CPU time (user + system) in nanoseconds, from
/// `CLOCK_THREAD_CPUTIME_ID`: exact, unlike the clock ticks of `/proc/<tid>/stat`.
pub(crate) fn thread_cpu_nanos() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that the kernel fills during the call and
    // keeps no pointer to; CLOCK_THREAD_CPUTIME_ID names the calling thread's clock. A
    // failure returns -1 and leaves `ts` untouched, reported as `None`.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if ret != 0 {
        return None;
    }
    Some(
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64),
    )
}

pub(crate) fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours; it returns -1
    // on failure.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// The CPUs thread `tid` may run on, in ascending order.
pub(crate) fn affinity(tid: Option<i32>) -> io::Result<Vec<usize>> {
    let mut cpus = 1024;
    loop {
        let mut mask = vec![0 as libc::c_ulong; cpus / WORD_BITS];
        let bytes = mask.len() * size_of::<libc::c_ulong>();
        // SAFETY: `mask` is a live, writable buffer of exactly `bytes` bytes, aligned for
        // `c_ulong`, which is the alignment of `cpu_set_t`; the kernel writes at most `bytes`
        // bytes into it and keeps no pointer after the call.
        let ret = unsafe {
            libc::sched_getaffinity(pid(tid), bytes, mask.as_mut_ptr().cast::<libc::cpu_set_t>())
        };
        match check(ret.into()) {
            Ok(_) => {
                let set = (0..cpus).filter(|&c| mask[c / WORD_BITS] & (1 << (c % WORD_BITS)) != 0);
                return Ok(set.collect());
            }
            // EINVAL: the kernel's mask is larger than our buffer; retry with a larger one.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && cpus < MAX_MASK_CPUS => {
                cpus *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Restricts the calling thread to the CPUs `cpus` (ids, any order).
pub(crate) fn set_current_affinity(cpus: &[usize]) -> io::Result<()> {
    let top = cpus.iter().copied().max().unwrap_or(0);
    if top >= MAX_MASK_CPUS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "CPU {top} is beyond the largest supported CPU id {}",
                MAX_MASK_CPUS - 1
            ),
        ));
    }
    let mut mask = vec![0 as libc::c_ulong; top / WORD_BITS + 1];
    for &c in cpus {
        mask[c / WORD_BITS] |= 1 << (c % WORD_BITS);
    }
    let bytes = mask.len() * size_of::<libc::c_ulong>();
    // SAFETY: `mask` is a live buffer of exactly `bytes` bytes, aligned for `c_ulong` (the
    // alignment of `cpu_set_t`); the kernel only reads it, during the call. pid 0 is the
    // calling thread.
    let ret = unsafe { libc::sched_setaffinity(0, bytes, mask.as_ptr().cast::<libc::cpu_set_t>()) };
    check(ret.into()).map(drop)
}

pub(crate) fn nice(tid: Option<i32>) -> io::Result<i32> {
    // SAFETY: getpriority takes two integers and touches no memory of ours. The raw system
    // call returns 20 - nice (1 to 40) on success and -1 with errno on failure.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_getpriority,
            libc::PRIO_PROCESS,
            libc::id_t::try_from(pid(tid)).unwrap_or(0),
        )
    };
    check(ret).map(|raw| 20 - raw as i32)
}

pub(crate) fn set_current_nice(nice: i32) -> io::Result<()> {
    // PRIO_PROCESS with a thread id sets that one thread's nice value on Linux.
    let tid = current_tid().unwrap_or(0);
    // SAFETY: setpriority takes three integers and touches no memory of ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_setpriority,
            libc::PRIO_PROCESS,
            libc::id_t::try_from(tid).unwrap_or(0),
            nice,
        )
    };
    check(ret).map(drop)
}

/// Thread `tid`'s scheduling policy, as the kernel's number (`SCHED_*` in `sys`), without
/// the reset-on-fork flag.
pub(crate) fn sched_policy(tid: Option<i32>) -> io::Result<i32> {
    // SAFETY: sched_getscheduler takes one integer and touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_sched_getscheduler, pid(tid)) };
    Ok(check(ret)? as libc::c_int & !libc::SCHED_RESET_ON_FORK)
}

/// Switches the calling thread to the non-real-time policy `raw` (`SCHED_*` in `sys`).
pub(crate) fn set_current_sched_policy(raw: i32) -> io::Result<()> {
    // The three non-real-time policies take a static priority of 0.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a live `sched_param` the kernel only reads during the call; pid 0
    // is the calling thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0 as libc::pid_t,
            raw,
            &param as *const libc::sched_param,
        )
    };
    check(ret).map(drop)
}
