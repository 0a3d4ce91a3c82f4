//! [`CpuSet`]: a set of CPU ids, written and parsed in the Linux *cpulist* syntax
//! (`"0-3,6"`, as `taskset -c` takes it and `/sys/devices/system/cpu/online` shows it), plus
//! [`CpuSet::available`] (what this thread may run on) and [`CpuSet::partition`] (split the
//! available CPUs among pools by weight).
//!
//! A set is a sorted list of distinct ids. Building one never fails and never checks the
//! machine: whether the CPUs exist and may be used is checked by
//! [`RuntimeBuilder::build`](crate::RuntimeBuilder::build), against the calling thread's
//! affinity mask, and reported as an error naming the CPU, never silently dropped.

use std::fmt;
use std::io;
use std::str::FromStr;

use crate::sys;

/// A set of CPU ids (the numbers the kernel uses: `0` to `nproc - 1` on a machine with every
/// CPU online).
///
/// ```
/// use bulkhead::CpuSet;
/// let set: CpuSet = "0-3,6".parse()?;
/// assert_eq!(set.len(), 5);
/// assert!(set.contains(6) && !set.contains(4));
/// assert_eq!(set.to_string(), "0-3,6");
/// assert_eq!(CpuSet::new([6, 0, 1, 2, 3, 3]), set); // order and repeats do not matter
/// # Ok::<(), bulkhead::ParseCpuSetError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet {
    /// Sorted, without repeats.
    cpus: Vec<usize>,
}

impl CpuSet {
    /// The largest CPU id [`parse`](CpuSet::parse) accepts. Linux supports at most 8192 CPUs
    /// today; the limit keeps a typo such as `"0-4000000000"` from allocating gigabytes.
    pub const MAX_PARSE_CPU: usize = (1 << 16) - 1;

    /// The set of the given CPU ids, in any order; repeats count once.
    ///
    /// Never fails: ids are checked against the machine by `build()`.
    pub fn new(cpus: impl IntoIterator<Item = usize>) -> CpuSet {
        let mut cpus: Vec<usize> = cpus.into_iter().collect();
        cpus.sort_unstable();
        cpus.dedup();
        CpuSet { cpus }
    }

    /// Same as [`CpuSet::new`].
    pub fn from_cpus(cpus: impl IntoIterator<Item = usize>) -> CpuSet {
        CpuSet::new(cpus)
    }

    /// Parses the cpulist syntax: comma-separated ids and inclusive ranges, such as
    /// `"0-3,6"`. Surrounding whitespace (the newline of a `/sys` file) is ignored; the empty
    /// string is the empty set. The kernel's stride form (`"0-7:2/4"`) is not supported.
    ///
    /// # Errors
    ///
    /// [`ParseCpuSetError`] naming the first bad token: not a number, an empty token
    /// (`"0,,1"`), a reversed range (`"3-1"`), or an id above [`MAX_PARSE_CPU`](Self::MAX_PARSE_CPU).
    pub fn parse(s: &str) -> Result<CpuSet, ParseCpuSetError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(CpuSet::default());
        }
        let mut cpus = Vec::new();
        for token in s.split(',') {
            let bad = |reason: String| ParseCpuSetError {
                token: token.to_owned(),
                reason,
            };
            let id = |text: &str| -> Result<usize, ParseCpuSetError> {
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(format!("{text:?} is not a CPU id")));
                }
                match text.parse::<usize>() {
                    Ok(n) if n <= Self::MAX_PARSE_CPU => Ok(n),
                    _ => Err(bad(format!(
                        "CPU id {text} is above the limit of {}",
                        Self::MAX_PARSE_CPU
                    ))),
                }
            };
            if token.is_empty() {
                return Err(bad("empty entry (two commas, or a comma at an end)".into()));
            }
            match token.split_once('-') {
                None => cpus.push(id(token)?),
                Some((lo, hi)) => {
                    let (lo, hi) = (id(lo)?, id(hi)?);
                    if lo > hi {
                        return Err(bad(format!("range starts after it ends ({lo} > {hi})")));
                    }
                    cpus.extend(lo..=hi);
                }
            }
        }
        Ok(CpuSet::new(cpus))
    }

    /// The CPUs the calling thread may run on, from `sched_getaffinity`. This is the
    /// process's mask unless the thread was restricted on its own; it reflects `taskset`,
    /// container cpusets and offline CPUs, which a plain CPU count does not.
    ///
    /// # Errors
    ///
    /// The OS error; on targets other than Linux, an error of kind
    /// [`Unsupported`](io::ErrorKind::Unsupported).
    pub fn available() -> io::Result<CpuSet> {
        sys::affinity(None).map(CpuSet::new)
    }

    /// Splits `available` into one set per pool, sized by weight, each pool getting at
    /// least one CPU. Pools get contiguous runs of `available`, in the order given.
    ///
    /// Sizes follow the weights as closely as whole CPUs allow: after the minimum of one
    /// each, every remaining CPU goes to the pool furthest below its share (ties to the
    /// earlier pool). `api:3, batch:1` on 8 CPUs gives 6 and 2.
    ///
    /// ```
    /// use bulkhead::CpuSet;
    /// let parts = CpuSet::partition(&"0-7".parse()?, &[("api", 3), ("batch", 1)])?;
    /// assert_eq!(parts[0], ("api".to_string(), "0-5".parse()?));
    /// assert_eq!(parts[1], ("batch".to_string(), "6-7".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`PartitionError`] if there are no pools, a weight is 0, or `available` has fewer
    /// CPUs than there are pools.
    pub fn partition(
        available: &CpuSet,
        weights: &[(&str, u32)],
    ) -> Result<Vec<(String, CpuSet)>, PartitionError> {
        if weights.is_empty() {
            return Err(PartitionError::NoPools);
        }
        if let Some((name, _)) = weights.iter().find(|(_, w)| *w == 0) {
            return Err(PartitionError::ZeroWeight {
                pool: (*name).to_owned(),
            });
        }
        let (n, k) = (available.len(), weights.len());
        if n < k {
            return Err(PartitionError::TooFewCpus {
                available: available.clone(),
                pools: weights.iter().map(|(p, _)| (*p).to_owned()).collect(),
            });
        }
        let total: u128 = weights.iter().map(|(_, w)| u128::from(*w)).sum();
        let mut sizes = vec![1usize; k];
        for _ in k..n {
            // The pool furthest below its share n * w / total; compared as
            // n * w - size * total to stay in integers.
            let deficit = |i: usize| {
                (n as u128 * u128::from(weights[i].1)) as i128 - (sizes[i] as u128 * total) as i128
            };
            let best = (0..k)
                .reduce(|a, b| if deficit(b) > deficit(a) { b } else { a })
                .unwrap_or(0);
            sizes[best] += 1;
        }
        let mut cpus = available.iter();
        Ok(weights
            .iter()
            .zip(sizes)
            .map(|((name, _), size)| ((*name).to_owned(), CpuSet::new(cpus.by_ref().take(size))))
            .collect())
    }

    /// The CPU ids, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.cpus.iter().copied()
    }

    /// The number of CPUs in the set.
    pub fn len(&self) -> usize {
        self.cpus.len()
    }

    /// True if the set has no CPU.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty()
    }

    /// True if `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        self.cpus.binary_search(&cpu).is_ok()
    }

    /// The CPUs in both sets.
    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        CpuSet {
            cpus: self.iter().filter(|c| other.contains(*c)).collect(),
        }
    }

    /// True if every CPU of `self` is in `other`.
    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.iter().all(|c| other.contains(c))
    }

    /// The `i`-th CPU in increasing order, if the set has that many.
    pub fn nth(&self, i: usize) -> Option<usize> {
        self.cpus.get(i).copied()
    }
}

impl FromStr for CpuSet {
    type Err = ParseCpuSetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CpuSet::parse(s)
    }
}

impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        CpuSet::new(iter)
    }
}

/// Writes the cpulist syntax (`"0-3,6"`), which [`CpuSet::parse`] reads back; the empty set
/// writes nothing.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.cpus.iter().copied().peekable();
        let mut first = true;
        while let Some(lo) = rest.next() {
            let mut hi = lo;
            while rest.peek() == Some(&(hi + 1)) {
                hi += 1;
                rest.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// A cpulist string that [`CpuSet::parse`] could not read; names the bad token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCpuSetError {
    token: String,
    reason: String,
}

impl ParseCpuSetError {
    /// The comma-separated entry at fault, as written.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl fmt::Display for ParseCpuSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid CPU list entry {:?}: {}",
            self.token, self.reason
        )
    }
}

impl std::error::Error for ParseCpuSetError {}

/// Why [`CpuSet::partition`] could not split the CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartitionError {
    /// No pool was given.
    NoPools,
    /// A pool's weight is 0; every pool gets at least one CPU, so weights start at 1.
    ZeroWeight {
        /// The pool with weight 0.
        pool: String,
    },
    /// Fewer CPUs than pools: each pool needs at least one.
    TooFewCpus {
        /// The CPUs that were to be split.
        available: CpuSet,
        /// The pools, in the order given.
        pools: Vec<String>,
    },
}

impl fmt::Display for PartitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionError::NoPools => f.write_str("no pools to partition the CPUs among"),
            PartitionError::ZeroWeight { pool } => {
                write!(f, "pool {pool:?} has weight 0; weights must be at least 1")
            }
            PartitionError::TooFewCpus { available, pools } => write!(
                f,
                "{} pools ({}) need at least one CPU each, but only {} CPU(s) are available ({:?}); \
                 use fewer pools or let some share CPUs",
                pools.len(),
                pools.join(", "),
                available.len(),
                available.to_string(),
            ),
        }
    }
}

impl std::error::Error for PartitionError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["", "0", "0-1", "0-3,6", "1,3,5", "0-2,4-7,9", "8191"] {
            assert_eq!(CpuSet::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(CpuSet::parse(" 0-2\n").unwrap().to_string(), "0-2");
        assert_eq!(CpuSet::parse("3,0-1,1").unwrap().to_string(), "0-1,3");
        assert_eq!(CpuSet::parse("2-2").unwrap().to_string(), "2");
    }

    #[test]
    fn parse_errors_name_the_token() {
        for (s, token) in [
            ("0,,1", ""),
            ("0,", ""),
            ("x", "x"),
            ("1-x", "1-x"),
            ("3-1", "3-1"),
            ("-1", "-1"),
            ("0, 1", " 1"),
            ("0-7:2", "0-7:2"),
            ("70000", "70000"),
            ("0-99999999999999999999", "0-99999999999999999999"),
        ] {
            let e = CpuSet::parse(s).unwrap_err();
            assert_eq!(e.token(), token, "{s:?}");
            assert!(e.to_string().contains(&format!("{token:?}")), "{e}");
        }
    }

    #[test]
    fn partition_by_weight() {
        let eight = CpuSet::new(0..8);
        let p = CpuSet::partition(&eight, &[("api", 3), ("batch", 1)]).unwrap();
        assert_eq!(p[0].1.to_string(), "0-5");
        assert_eq!(p[1].1.to_string(), "6-7");

        // Minimum one each, even for a tiny weight.
        let p = CpuSet::partition(&CpuSet::new(0..4), &[("a", 100), ("b", 1), ("c", 1)]).unwrap();
        let sizes: Vec<_> = p.iter().map(|(_, s)| s.len()).collect();
        assert_eq!(sizes, [2, 1, 1]);

        // Sparse sets are split in order, every CPU used exactly once.
        let sparse = CpuSet::parse("1,3,5,7,9").unwrap();
        let p = CpuSet::partition(&sparse, &[("a", 1), ("b", 1)]).unwrap();
        assert_eq!(p[0].1.to_string(), "1,3,5");
        assert_eq!(p[1].1.to_string(), "7,9");
    }

    #[test]
    fn partition_errors() {
        let e = CpuSet::partition(&CpuSet::new([0]), &[("api", 1), ("batch", 1)]).unwrap_err();
        assert!(matches!(e, PartitionError::TooFewCpus { .. }));
        let msg = e.to_string();
        assert!(msg.contains("api, batch") && msg.contains("\"0\""), "{msg}");
        assert_eq!(
            CpuSet::partition(&CpuSet::new([0]), &[]).unwrap_err(),
            PartitionError::NoPools
        );
        assert!(matches!(
            CpuSet::partition(&CpuSet::new([0, 1]), &[("a", 1), ("z", 0)]).unwrap_err(),
            PartitionError::ZeroWeight { pool } if pool == "z"
        ));
    }
}
