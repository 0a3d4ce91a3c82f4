//! How much of the machine others took during a run: the CPU time of every other process
//! and the hypervisor's steal, from `/proc/stat` and `/proc/self/stat` read before and after
//! (Linux only; elsewhere, or if unreadable, nothing is reported).
//!
//! `loadavg` is no noise meter (the bench's own threads push it up); this is. A run where
//! others took a visible share of the CPUs is to be distrusted, and the table says so.

use std::fs;

/// Clock ticks at one instant: the whole machine's busy and total time, and this process's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    busy: u64,
    total: u64,
    steal: u64,
    own: u64,
}

/// What others took between two samples, as fractions of all CPU time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Noise {
    /// CPU time of other processes (and the kernel on their behalf).
    pub(crate) others: f64,
    /// Time the hypervisor ran something else on our vCPUs.
    pub(crate) steal: f64,
}

/// Reads the counters now, or `None` where `/proc` is not there.
pub(crate) fn sample() -> Option<Sample> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    if cpu.len() < 8 {
        return None;
    }
    let idle = cpu[3] + cpu[4];
    let total: u64 = cpu[..8].iter().sum();
    let own_stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &own_stat[own_stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Sample {
        busy: total - idle,
        total,
        steal: cpu[7],
        own,
    })
}

impl Sample {
    /// What others took from `self` to `later`.
    pub(crate) fn until(&self, later: &Sample) -> Option<Noise> {
        let total = later.total.checked_sub(self.total)?;
        if total == 0 {
            return None;
        }
        let busy = later.busy.saturating_sub(self.busy);
        let own = later.own.saturating_sub(self.own);
        let steal = later.steal.saturating_sub(self.steal);
        Some(Noise {
            others: busy.saturating_sub(own + steal) as f64 / total as f64,
            steal: steal as f64 / total as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_where_there_is_one() {
        let (Some(a), Some(b)) = (sample(), sample()) else {
            return; // not Linux
        };
        if let Some(n) = a.until(&b) {
            assert!((0.0..=1.0).contains(&n.others) && (0.0..=1.0).contains(&n.steal));
        }
    }
}
