//! Per-thread CPU accounting read from `/proc/self/task/<tid>/stat` (Linux only).
//!
//! Field 14 (`utime`) and 15 (`stime`) are the CPU time the thread spent in user and kernel
//! mode, in clock ticks (`sysconf(_SC_CLK_TCK)`, 100 per second on Linux, so a resolution of
//! 10 ms); field 39 (`processor`) is the CPU the thread last ran on. The second field
//! (`comm`, in parentheses) may itself contain spaces and parentheses, so fields are counted
//! from the *last* `)` of the line.

use std::time::Duration;

/// What the kernel says about one thread of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThreadStat {
    /// User plus system CPU time consumed so far.
    pub(crate) cpu_time: Duration,
    /// The CPU the thread last ran on.
    pub(crate) last_cpu: usize,
}

/// Reads the CPU time and last CPU of thread `tid` of this process, or `None` if the thread
/// is gone or the OS has no `/proc`.
#[cfg(target_os = "linux")]
pub(crate) fn thread_stat(tid: i32) -> Option<ThreadStat> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    parse_stat(&text, clock_ticks_per_second()?)
}

/// Not supported off Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn thread_stat(_tid: i32) -> Option<ThreadStat> {
    None
}

#[cfg(target_os = "linux")]
fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value; _SC_CLK_TCK is a valid name and the
    // call touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0)
}

/// Parses the text of a `stat` file; `ticks` is the number of clock ticks per second.
pub(crate) fn parse_stat(text: &str, ticks: u64) -> Option<ThreadStat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // `after_comm` starts with field 3 (`state`), so field N is at index N - 3.
    let fields: Vec<&str> = after_comm.split_ascii_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let clock = field(14)?.checked_add(field(15)?)?;
    let last_cpu = usize::try_from(field(39)?).ok()?;
    let cpu_time = Duration::from_secs(clock / ticks)
        + Duration::from_nanos((clock % ticks) * 1_000_000_000 / ticks);
    Some(ThreadStat { cpu_time, last_cpu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comm_with_spaces_and_parens() {
        let line = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 1 0 100 \
                    0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line, 100).unwrap();
        assert_eq!(s.cpu_time, Duration::from_millis(1750));
        assert_eq!(s.last_cpu, 1);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_stat("no parens here", 100), None);
        assert_eq!(parse_stat("1 (x) S 1 2", 100), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_own_thread() {
        let tid = crate::sys::current_tid().unwrap();
        let s = thread_stat(tid).unwrap();
        assert!(s.last_cpu < 4096);
    }
}
