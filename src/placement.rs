//! Where a pool's workers run and how the scheduler treats them: the CPU set and
//! [`Placement`], exclusive claims, the nice value and the [`SchedPolicy`].
//!
//! The settings live on [`PoolBuilder`] (setters below). They are checked in two steps:
//!
//! 1. `RuntimeBuilder::build` validates every pool before a thread starts: the set is not
//!    empty, every CPU is in the calling thread's affinity mask ([`CpuSet::available`]), no
//!    pool overlaps an exclusive one, the nice value is in `-20..=19`, and (off Linux) that
//!    nothing here was asked for at all.
//! 2. Each worker applies the settings to itself in `Worker::set_up`, before it takes any
//!    task, in the order affinity, policy, nice. A refusal by the OS fails `build()` with
//!    [`BuildErrorKind::Os`] carrying the OS error; nothing is skipped silently.
//!
//! Unset settings are not applied at all: the worker keeps what it inherited from the thread
//! that called `build()`.
//!
//! A kernel CPU cap (`PoolBuilder::cpu_limit`) is the one setting that needs state beyond
//! the worker: a cgroup created when the runtime starts ([`CapGroup::start`], through the
//! leaf `cgroup.rs`), which each worker joins as the last step of its placement and which the
//! runtime removes at shutdown ([`CapGroup::remove`]). See docs/CPU_SETS.md ("Caps vs
//! pinning").

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::cgroup::{self, CgroupError, Group, Parent, Throttling};
use crate::cpuset::CpuSet;
use crate::error::{BuildError, BuildErrorKind, SetupError};
use crate::sync::{Arc, Mutex};
use crate::sys;

/// The lowest nice value (highest priority) a pool may ask for.
pub const MIN_NICE: i32 = -20;
/// The highest nice value (lowest priority) a pool may ask for.
pub const MAX_NICE: i32 = 19;

/// The CPU the calling thread is running on right now (`sched_getcpu`), or `None` where the
/// OS cannot say (every target but Linux).
///
/// The answer may be stale as soon as it is returned, unless the thread's affinity allows
/// only one CPU.
///
/// ```
/// if let Some(cpu) = bulkhead::current_cpu() {
///     assert!(bulkhead::CpuSet::available()?.contains(cpu));
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn current_cpu() -> Option<usize> {
    sys::current_cpu()
}

/// How a pool's workers are placed on its [`cpus`](crate::PoolBuilder::cpus).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Placement {
    /// Every worker may run on any CPU of the set (one affinity mask for all); the kernel
    /// balances them within it. The default.
    #[default]
    Spread,
    /// Worker `i` is pinned to the `i`-th CPU of the set, in turn: with more workers than
    /// CPUs, worker `i` gets CPU number `i % len` of the set, so some CPUs carry more than
    /// one worker.
    PinEach,
}

/// A Linux scheduling policy for a pool's workers (`sched_setscheduler`). Only the
/// non-real-time policies are offered: they need no privilege to lower priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchedPolicy {
    /// `SCHED_OTHER`: the default time-sharing policy; the nice value sets the weight.
    Normal,
    /// `SCHED_BATCH`: like `Normal`, but the scheduler treats the thread as CPU-bound and
    /// preempts other threads for it less eagerly when it wakes. For throughput work.
    Batch,
    /// `SCHED_IDLE`: runs only when nothing else wants the CPU (weight below nice 19). For
    /// best-effort work that must yield to everything else. Leaving it again needs
    /// privilege (`CAP_SYS_NICE` or `RLIMIT_NICE`).
    Idle,
}

impl SchedPolicy {
    /// The kernel's policy number (`sys::SCHED_*`).
    fn raw(self) -> i32 {
        match self {
            SchedPolicy::Normal => sys::SCHED_NORMAL,
            SchedPolicy::Batch => sys::SCHED_BATCH,
            SchedPolicy::Idle => sys::SCHED_IDLE,
        }
    }

    /// The policy for a kernel policy number, or `None` for one this crate does not set
    /// (the real-time policies).
    fn from_raw(raw: i32) -> Option<SchedPolicy> {
        match raw {
            sys::SCHED_NORMAL => Some(SchedPolicy::Normal),
            sys::SCHED_BATCH => Some(SchedPolicy::Batch),
            sys::SCHED_IDLE => Some(SchedPolicy::Idle),
            _ => None,
        }
    }
}

/// Thread `tid`'s affinity (`None`: the calling thread).
fn affinity(tid: Option<i32>) -> io::Result<CpuSet> {
    sys::affinity(tid).map(CpuSet::new)
}

fn set_current_affinity(cpus: &CpuSet) -> io::Result<()> {
    sys::set_current_affinity(&cpus.iter().collect::<Vec<_>>())
}

/// Thread `tid`'s policy; `Ok(None)` for a real-time one.
fn sched_policy(tid: Option<i32>) -> io::Result<Option<SchedPolicy>> {
    sys::sched_policy(tid).map(SchedPolicy::from_raw)
}

fn set_current_sched_policy(policy: SchedPolicy) -> io::Result<()> {
    sys::set_current_sched_policy(policy.raw())
}

impl fmt::Display for SchedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchedPolicy::Normal => "normal",
            SchedPolicy::Batch => "batch",
            SchedPolicy::Idle => "idle",
        })
    }
}

/// One pool's CPU and priority settings, as given to its builder.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuConfig {
    pub(crate) cpus: Option<CpuSet>,
    pub(crate) placement: Option<Placement>,
    pub(crate) exclusive: bool,
    pub(crate) nice: Option<i32>,
    pub(crate) policy: Option<SchedPolicy>,
    /// The kernel CPU cap in CPUs, its best-effort flag and parent cgroup, as configured.
    pub(crate) cpu_limit: Option<f64>,
    pub(crate) cpu_limit_best_effort: bool,
    pub(crate) cpu_limit_parent: Option<PathBuf>,
    /// The cap's enforcement period (`None`: the default) and the group's weight.
    pub(crate) cpu_limit_period: Option<Duration>,
    pub(crate) cpu_weight: Option<u32>,
    /// The cap's cgroup, created when the runtime starts (`None` before, and for uncapped
    /// pools).
    pub(crate) cap_group: Option<Arc<CapGroup>>,
    /// What the process had when the runtime was built (read on the thread calling
    /// `build()`); each worker restores the parts its pool does not set, see [`Baseline`].
    pub(crate) baseline: Baseline,
}

/// The placement the thread calling `build()` had: affinity, nice value and policy, each
/// `None` where it could not be read (off Linux, under Miri).
///
/// A new thread inherits all three from the thread that spawns it. Workers started after
/// build (elastic growth, replacements, resizing) are spawned by whichever thread made the
/// pool grow, possibly a worker of another, pinned or niced, pool; so a worker restores this
/// baseline for every setting its own pool leaves unset, and no pool's placement leaks into
/// another's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Baseline {
    cpus: Option<CpuSet>,
    nice: Option<i32>,
    policy: Option<SchedPolicy>,
    /// Whether some pool of the runtime is capped: then a worker of an uncapped pool leaves
    /// a cap's cgroup it inherited from a capped worker that started it.
    pub(crate) caps: bool,
}

impl Baseline {
    /// Reads the calling thread's placement.
    pub(crate) fn of_current_thread() -> Self {
        if cfg!(miri) {
            return Baseline::default();
        }
        Baseline {
            cpus: affinity(None).ok(),
            nice: sys::nice(None).ok(),
            policy: sched_policy(None).ok().flatten(),
            caps: false,
        }
    }
}

impl CpuConfig {
    /// The kernel CPU cap, if the pool has one.
    pub(crate) fn cap(&self) -> Option<CpuCap> {
        Some(CpuCap {
            cpus: self.cpu_limit?,
            period: self
                .cpu_limit_period
                .unwrap_or(Duration::from_micros(cgroup::PERIOD_US)),
            weight: self.cpu_weight,
            best_effort: self.cpu_limit_best_effort,
            parent: self.cpu_limit_parent.clone(),
        })
    }

    pub(crate) fn is_set(&self) -> bool {
        self.cpus.is_some()
            || self.placement.is_some()
            || self.exclusive
            || self.nice.is_some()
            || self.policy.is_some()
    }

    /// The affinity worker `index` gets, if any.
    fn worker_cpus(&self, index: usize) -> Option<CpuSet> {
        let cpus = self.cpus.as_ref()?;
        match self.placement.unwrap_or_default() {
            Placement::Spread => Some(cpus.clone()),
            Placement::PinEach => cpus
                .nth(index % cpus.len().max(1))
                .map(|c| CpuSet::new([c])),
        }
    }

    /// Applies the settings to the calling thread, worker `index` of its pool; restores the
    /// runtime's [`Baseline`] for each setting the pool leaves unset, where the thread
    /// inherited something else.
    pub(crate) fn apply(&self, index: usize) -> Result<(), SetupError> {
        self.restore_baseline(index)?;
        if let Some(cpus) = self.worker_cpus(index) {
            set_current_affinity(&cpus).map_err(|e| {
                os_refusal(
                    "cpus",
                    format!(
                        "worker {index} could not be placed on CPUs {:?}",
                        cpus.to_string()
                    ),
                    e,
                )
            })?;
        }
        if let Some(policy) = self.policy {
            set_current_sched_policy(policy).map_err(|e| {
                os_refusal(
                    "sched_policy",
                    format!("worker {index} could not switch to the {policy} scheduling policy"),
                    e,
                )
            })?;
        }
        if let Some(nice) = self.nice {
            sys::set_current_nice(nice).map_err(|e| {
                let hint = if nice < 0 && e.kind() == io::ErrorKind::PermissionDenied {
                    " (a negative nice value needs CAP_SYS_NICE or a large enough RLIMIT_NICE)"
                } else {
                    ""
                };
                os_refusal(
                    "nice",
                    format!("worker {index} could not set nice value {nice}{hint}"),
                    e,
                )
            })?;
        }
        // Last: the kernel CPU cap (the thread runs capped from here on).
        if let Some(cap) = &self.cap_group {
            cap.join(index)?;
        }
        Ok(())
    }

    /// Restores the unset parts of the placement to the runtime's baseline, each only if the
    /// thread's current value differs (so a worker spawned by the thread that built the
    /// runtime makes no call at all).
    fn restore_baseline(&self, index: usize) -> Result<(), SetupError> {
        let b = &self.baseline;
        if b.caps && self.cap_group.is_none() {
            if let Some(tid) = sys::current_tid() {
                cgroup::leave_inherited(tid).map_err(|e| cap_refusal(index, e))?;
            }
        }
        if self.cpus.is_none() {
            if let Some(cpus) = &b.cpus {
                if affinity(None).ok().as_ref() != Some(cpus) {
                    set_current_affinity(cpus).map_err(|e| {
                        os_refusal(
                            "cpus",
                            format!(
                                "worker {index} could not restore the runtime's CPUs {:?} \
                                 (it inherited others from the thread that started it)",
                                cpus.to_string()
                            ),
                            e,
                        )
                    })?;
                }
            }
        }
        if self.policy.is_none() {
            if let Some(policy) = b.policy {
                if sched_policy(None).ok().flatten() != Some(policy) {
                    set_current_sched_policy(policy).map_err(|e| {
                        os_refusal(
                            "sched_policy",
                            format!(
                                "worker {index} could not restore the runtime's {policy} \
                                 scheduling policy"
                            ),
                            e,
                        )
                    })?;
                }
            }
        }
        if self.nice.is_none() {
            if let Some(nice) = b.nice {
                if sys::nice(None).ok() != Some(nice) {
                    sys::set_current_nice(nice).map_err(|e| {
                        os_refusal(
                            "nice",
                            format!(
                                "worker {index} could not restore the runtime's nice value \
                                 {nice} (it inherited another from the thread that started \
                                 it; lowering it needs CAP_SYS_NICE or RLIMIT_NICE)"
                            ),
                            e,
                        )
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// A worker's set-up error for an OS refusal of setting `field`.
fn os_refusal(field: &'static str, message: String, source: io::Error) -> SetupError {
    SetupError::Os {
        field,
        message,
        source,
    }
}

/// A pool's kernel CPU cap as configured: `cpus` CPUs' worth of time per `period`, and the
/// group's weight among its siblings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CpuCap {
    pub(crate) cpus: f64,
    pub(crate) period: Duration,
    /// `cpu.weight` (v2; v1 `cpu.shares` scaled from it); `None`: the kernel's default.
    pub(crate) weight: Option<u32>,
    /// Run uncapped (and say so) where the host refuses, instead of failing `build()`.
    pub(crate) best_effort: bool,
    /// The cgroup to create the pool's under; `None`: the process's own.
    pub(crate) parent: Option<PathBuf>,
}

impl CpuCap {
    /// The quota per period, in microseconds.
    pub(crate) fn quota_us(&self) -> u64 {
        (self.cpus * self.period_us() as f64).round() as u64
    }

    /// The period, in microseconds.
    pub(crate) fn period_us(&self) -> u64 {
        u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX)
    }
}

/// The cap of a running pool: its cgroup (if the host allowed one), why it is uncapped (if
/// not, with best effort), and the last throttling counters read.
#[derive(Debug)]
pub(crate) struct CapGroup {
    quota: Duration,
    period: Duration,
    weight: Option<u32>,
    best_effort: bool,
    /// `None` once removed, or if it could not be created (best effort).
    group: Mutex<Option<Group>>,
    /// The directory, kept for the snapshot after removal.
    dir: Option<PathBuf>,
    /// Why the cap is not (or not wholly) in force; `None` while it is.
    uncapped: Mutex<Option<String>>,
    /// The last counters read (kept after removal).
    last: Mutex<Option<Throttling>>,
}

/// What a snapshot shows of a pool's cap.
#[derive(Debug, Clone)]
pub(crate) struct CapStatus {
    pub(crate) quota: Duration,
    pub(crate) period: Duration,
    pub(crate) weight: Option<u32>,
    pub(crate) cgroup: Option<PathBuf>,
    pub(crate) uncapped: Option<String>,
    pub(crate) throttling: Option<Throttling>,
}

impl CapGroup {
    /// Creates pool `pool`'s cgroup with its quota, before any of its workers starts.
    ///
    /// # Errors
    ///
    /// Where the host refuses (no cpu controller, no permission), a build error naming the
    /// pool and `cpu_limit`, unless the cap is best effort: then the pool runs uncapped and
    /// the reason is kept for its snapshot.
    pub(crate) fn start(pool: &str, cap: &CpuCap) -> Result<Arc<CapGroup>, BuildError> {
        let quota_us = cap.quota_us();
        let created = match &cap.parent {
            Some(dir) => Parent::at(dir),
            None => Parent::of_process(),
        }
        .and_then(|parent| {
            Group::create(
                &parent,
                &cgroup::group_name(pool),
                quota_us,
                cap.period_us(),
                cap.weight,
            )
        });
        let (group, uncapped) = match created {
            Ok(g) => (Some(g), None),
            Err(e) if cap.best_effort => (None, Some(e.to_string())),
            Err(e) => {
                let msg = format!(
                    "{e} (set cpu_limit_best_effort(true) to run uncapped where the host does \
                     not allow a cap)"
                );
                let kind = if e.source.kind() == io::ErrorKind::Unsupported {
                    BuildErrorKind::Unsupported
                } else {
                    BuildErrorKind::Os(e.source)
                };
                return Err(BuildError::new(Some(pool), "cpu_limit", kind, msg));
            }
        };
        Ok(Arc::new(CapGroup {
            quota: Duration::from_micros(quota_us),
            period: Duration::from_micros(cap.period_us()),
            weight: cap.weight,
            best_effort: cap.best_effort,
            dir: group.as_ref().map(|g| g.dir().to_owned()),
            group: Mutex::new(group),
            uncapped: Mutex::new(uncapped),
            last: Mutex::new(None),
        }))
    }

    /// Moves the calling thread, worker `index`, into the group. With best effort a refusal
    /// is recorded, not returned.
    fn join(&self, index: usize) -> Result<(), SetupError> {
        let group = self.group.lock();
        let Some(group) = group.as_ref() else {
            return Ok(());
        };
        let joined = match sys::current_tid() {
            Some(tid) => group.join(tid),
            None => Err(CgroupError {
                message: "the thread id of the worker is unknown".to_owned(),
                source: io::Error::from(io::ErrorKind::Unsupported),
            }),
        };
        match joined {
            Ok(()) => Ok(()),
            Err(e) if self.best_effort => {
                self.uncapped
                    .lock()
                    .get_or_insert_with(|| format!("worker {index} runs uncapped: {e}"));
                Ok(())
            }
            Err(e) => Err(cap_refusal(index, e)),
        }
    }

    /// The cap's state now: reads the group's `cpu.stat` if it still exists.
    pub(crate) fn status(&self) -> CapStatus {
        if let Some(g) = self.group.lock().as_ref() {
            if let Ok(t) = g.throttling() {
                *self.last.lock() = Some(t);
            }
        }
        CapStatus {
            quota: self.quota,
            period: self.period,
            weight: self.weight,
            cgroup: self.dir.clone(),
            uncapped: self.uncapped.lock().clone(),
            throttling: *self.last.lock(),
        }
    }

    /// Removes the group: reads its counters a last time, moves any thread still in it back
    /// to the parent, and deletes the directory. Idempotent; also run on drop.
    pub(crate) fn remove(&self) {
        let Some(g) = self.group.lock().take() else {
            return;
        };
        if let Ok(t) = g.throttling() {
            *self.last.lock() = Some(t);
        }
        if let Err(e) = g.remove() {
            self.uncapped.lock().get_or_insert_with(|| {
                format!("the cgroup {} could not be removed: {e}", g.dir().display())
            });
        }
    }
}

impl Drop for CapGroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A worker's set-up error for a refused cap.
fn cap_refusal(index: usize, e: CgroupError) -> SetupError {
    os_refusal(
        "cpu_limit",
        format!("worker {index}: {}", e.message),
        e.source,
    )
}

/// What the OS reports for thread `tid` now: affinity, nice value, policy. Each is `None`
/// if it cannot be read (the thread is gone, the target is not Linux, or under Miri, which
/// emulates none of these calls for another thread and aborts on `getpriority`).
pub(crate) fn read_back(tid: i32) -> (Option<CpuSet>, Option<i32>, Option<SchedPolicy>) {
    if cfg!(miri) {
        return (None, None, None);
    }
    (
        affinity(Some(tid)).ok(),
        sys::nice(Some(tid)).ok(),
        sched_policy(Some(tid)).ok().flatten(),
    )
}
