//! Kernel CPU bandwidth caps: one cgroup per capped pool, created under the process's own
//! cgroup, holding only that pool's worker threads, with a CPU quota per period.
//!
//! A leaf: it imports nothing from the crate and takes and returns paths, thread ids and
//! microseconds. Everything is a plain file operation on the cgroup file system (no
//! `unsafe`); `placement.rs` turns these into the pool's cap.
//!
//! # What the host may have
//!
//! | host                                   | used                                                           |
//! |----------------------------------------|----------------------------------------------------------------|
//! | cgroup v2, `cpu` in the process's cgroup's `cgroup.controllers` and `cgroup.subtree_control` | a *threaded* child (`cgroup.type` = `threaded`), `cpu.max` = `"quota period"`, threads moved by writing their id to `cgroup.threads` |
//! | a cgroup v1 hierarchy with the `cpu` controller | a child directory, `cpu.cfs_period_us` and `cpu.cfs_quota_us`, threads moved by writing their id to `tasks` |
//! | neither                                | [`CgroupError`] saying which was looked for and what was found |
//!
//! v2 is preferred where its `cpu` controller is available. This module never writes to a
//! cgroup it did not create, with one exception that undoes its own work: threads still in
//! a pool's cgroup when it is removed are moved back to the parent they came from. It does
//! not enable the `cpu` controller in the parent's `cgroup.subtree_control` (that would
//! change a cgroup the runtime does not own); where it is not enabled the error says how.
//!
//! # Invariants
//!
//! - A [`Group`] is a directory this process created with `mkdir` (its name starts with
//!   `bulkhead-<pid>-<sequence>-`, unique in the process); [`Group::remove`] is the only
//!   `rmdir`, and only of that directory.
//! - The quota is written before any thread joins, so no worker ever runs in the group
//!   uncapped.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The default CFS period: the kernel's own default, 100 ms.
pub(crate) const PERIOD_US: u64 = 100_000;

/// Which cgroup interface a group uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// cgroup v1, the `cpu` controller's own hierarchy.
    V1,
    /// cgroup v2, a threaded subtree.
    V2,
}

/// Why a cap could not be set up: a sentence for the user and the OS error beneath it.
#[derive(Debug)]
pub(crate) struct CgroupError {
    pub(crate) message: String,
    pub(crate) source: io::Error,
}

/// The message, then the OS error unless it only repeats the message.
impl std::fmt::Display for CgroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.source.kind() == io::ErrorKind::Unsupported
            && self.source.to_string() == self.message
        {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.message, self.source)
        }
    }
}

impl CgroupError {
    fn new(message: impl Into<String>, source: io::Error) -> Self {
        CgroupError {
            message: message.into(),
            source,
        }
    }

    fn unsupported(message: impl Into<String>) -> Self {
        let message = message.into();
        CgroupError {
            source: io::Error::new(io::ErrorKind::Unsupported, message.clone()),
            message,
        }
    }
}

/// A cgroup directory under which pool groups are created: the process's own (found by
/// [`Parent::of_process`]) or one given by the user ([`Parent::at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parent {
    pub(crate) version: Version,
    pub(crate) dir: PathBuf,
}

/// Throttling counters from a group's `cpu.stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Throttling {
    /// Enforcement periods that had runnable threads (`nr_periods`).
    pub(crate) periods: u64,
    /// Periods in which the group used up its quota and was throttled (`nr_throttled`).
    pub(crate) throttled_periods: u64,
    /// Total time the group's threads were held back (`throttled_time` in ns on v1,
    /// `throttled_usec` on v2).
    pub(crate) throttled_time: Duration,
}

/// One line of `/proc/self/mountinfo` that mounts a cgroup hierarchy.
struct Mount {
    /// The hierarchy's path mounted there (`/` unless the mount is of a sub-tree).
    root: String,
    point: PathBuf,
    v2: bool,
    /// v1 only: the controllers bound to the hierarchy (super options).
    controllers: Vec<String>,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            let fstype = *r.first()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(Mount {
                root: unescape(f.get(3)?),
                point: PathBuf::from(unescape(f.get(4)?)),
                v2: fstype == "cgroup2",
                controllers: r
                    .get(2)
                    .map(|o| o.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The directory of the cgroup `path` (as `/proc/*/cgroup` names it) on `mount`.
fn dir_on(mount: &Mount, path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(mount.point.join(rest.trim_start_matches('/')))
}

/// Where a thread's `cpu` cgroup is, from its `/proc/.../cgroup` text: v2 first if its
/// `cpu` controller is available there, else v1's `cpu` hierarchy. `Err` says what was
/// found instead.
fn locate(cgroup: &str, mountinfo: &str) -> Result<Parent, String> {
    let mounts = mounts(mountinfo);
    let mut seen = Vec::new();
    // v2: the line "0::/path".
    if let Some(path) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
        if let Some(dir) = mounts.iter().filter(|m| m.v2).find_map(|m| dir_on(m, path)) {
            let controllers =
                fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "cpu") {
                return Ok(Parent {
                    version: Version::V2,
                    dir,
                });
            }
            seen.push(format!(
                "cgroup v2 at {} offers the controllers [{}], not cpu",
                dir.display(),
                controllers.trim()
            ));
        }
    }
    // v1: a line "N:cpu,cpuacct:/path" whose hierarchy has the `cpu` controller.
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if !ctrl.split(',').any(|c| c == "cpu") {
            continue;
        }
        let dir = mounts
            .iter()
            .filter(|m| !m.v2 && m.controllers.iter().any(|c| c == "cpu"))
            .find_map(|m| dir_on(m, path));
        match dir {
            Some(dir) => {
                return Ok(Parent {
                    version: Version::V1,
                    dir,
                })
            }
            None => seen.push(format!(
                "the cgroup v1 cpu hierarchy ({path}) is not mounted where this process can see it"
            )),
        }
    }
    if seen.is_empty() {
        seen.push("no cgroup hierarchy with the cpu controller".to_owned());
    }
    Err(seen.join("; "))
}

impl Parent {
    /// The calling process's own `cpu` cgroup.
    pub(crate) fn of_process() -> Result<Parent, CgroupError> {
        let read = |p: &str| {
            fs::read_to_string(p).map_err(|e| CgroupError::new(format!("could not read {p}"), e))
        };
        let cgroup = read("/proc/self/cgroup")?;
        let mountinfo = read("/proc/self/mountinfo")?;
        locate(&cgroup, &mountinfo).map_err(|why| {
            CgroupError::unsupported(format!("this host offers no CPU bandwidth control: {why}"))
        })
    }

    /// A cgroup directory given by path: v2 if it has `cgroup.controllers`, v1 if it has
    /// `cpu.cfs_quota_us`.
    pub(crate) fn at(dir: &Path) -> Result<Parent, CgroupError> {
        let version = if dir.join("cgroup.controllers").is_file() {
            Version::V2
        } else if dir.join("cpu.cfs_quota_us").is_file() {
            Version::V1
        } else {
            return Err(CgroupError::unsupported(format!(
                "{} is not a cgroup directory with the cpu controller (it has neither \
                 cgroup.controllers nor cpu.cfs_quota_us)",
                dir.display()
            )));
        };
        Ok(Parent {
            version,
            dir: dir.to_owned(),
        })
    }

    /// The file a thread id is written to, to move that thread into `dir`.
    fn threads_file(&self, dir: &Path) -> PathBuf {
        dir.join(match self.version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.threads",
        })
    }
}

/// A name for a pool's group, unique in the process: `bulkhead-<pid>-<n>-<pool>`, the pool
/// name with every character but ASCII letters, digits, `-`, `_` and `.` replaced by `_`.
pub(crate) fn group_name(pool: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let clean: String = pool
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}{n}-{clean}", own_prefix())
}

/// cgroup v1 `cpu.shares` for a v2-scale weight: 100 (v2's default) is 1024 (v1's).
pub(crate) fn v1_shares(weight: u32) -> u64 {
    (u64::from(weight) * 1024 / 100).max(2)
}

/// The prefix of every group this process creates.
fn own_prefix() -> String {
    format!("bulkhead-{}-", std::process::id())
}

/// A cgroup this process created for one pool.
#[derive(Debug)]
pub(crate) struct Group {
    parent: Parent,
    dir: PathBuf,
}

impl Group {
    /// Creates `parent/name` with `quota_us` of CPU time per `period_us`, and `weight` (the
    /// v2 `cpu.weight` scale, 1 to 10,000, 100 the kernel's default; on v1 written as
    /// `cpu.shares` = weight x 1024 / 100, at least 2) if given.
    ///
    /// # Errors
    ///
    /// What refused: the parent's controller set-up (v2), `mkdir` (permissions, a read-only
    /// cgroup file system), or the quota (a parent's smaller quota on v1). On error nothing
    /// is left behind.
    pub(crate) fn create(
        parent: &Parent,
        name: &str,
        quota_us: u64,
        period_us: u64,
        weight: Option<u32>,
    ) -> Result<Group, CgroupError> {
        if parent.version == Version::V2 {
            let subtree =
                fs::read_to_string(parent.dir.join("cgroup.subtree_control")).map_err(|e| {
                    CgroupError::new(
                        format!(
                            "could not read {}/cgroup.subtree_control",
                            parent.dir.display()
                        ),
                        e,
                    )
                })?;
            if !subtree.split_whitespace().any(|c| c == "cpu") {
                return Err(CgroupError::unsupported(format!(
                    "the cpu controller is not enabled for the children of {} (bulkhead does \
                     not change cgroups it did not create; enable it with `echo +cpu > {}/\
                     cgroup.subtree_control`)",
                    parent.dir.display(),
                    parent.dir.display()
                )));
            }
        }
        let dir = parent.dir.join(name);
        fs::create_dir(&dir).map_err(|e| {
            let hint = match e.kind() {
                io::ErrorKind::PermissionDenied => {
                    " (creating a cgroup needs root or a cgroup delegated to this user)"
                }
                io::ErrorKind::AlreadyExists => " (a cgroup of that name exists; not ours)",
                _ => "",
            };
            CgroupError::new(
                format!("could not create the cgroup {}{hint}", dir.display()),
                e,
            )
        })?;
        let group = Group {
            parent: parent.clone(),
            dir,
        };
        if let Err(e) = group.configure(quota_us, period_us, weight) {
            let _ = fs::remove_dir(&group.dir);
            return Err(e);
        }
        Ok(group)
    }

    fn configure(
        &self,
        quota_us: u64,
        period_us: u64,
        weight: Option<u32>,
    ) -> Result<(), CgroupError> {
        match self.parent.version {
            Version::V2 => {
                self.write("cgroup.type", "threaded")?;
                self.write("cpu.max", &format!("{quota_us} {period_us}"))?;
                if let Some(w) = weight {
                    self.write("cpu.weight", &w.to_string())?;
                }
                Ok(())
            }
            Version::V1 => {
                self.write("cpu.cfs_period_us", &period_us.to_string())?;
                self.write("cpu.cfs_quota_us", &quota_us.to_string())?;
                if let Some(w) = weight {
                    self.write("cpu.shares", &v1_shares(w).to_string())?;
                }
                Ok(())
            }
        }
    }

    fn write(&self, file: &str, value: &str) -> Result<(), CgroupError> {
        let path = self.dir.join(file);
        fs::write(&path, value).map_err(|e| {
            CgroupError::new(
                format!("could not write {value:?} to {}", path.display()),
                e,
            )
        })
    }

    /// The group's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves thread `tid` of this process into the group.
    pub(crate) fn join(&self, tid: i32) -> Result<(), CgroupError> {
        let file = self.parent.threads_file(&self.dir);
        fs::write(&file, tid.to_string()).map_err(|e| {
            CgroupError::new(
                format!("could not move thread {tid} into {}", file.display()),
                e,
            )
        })
    }

    /// The thread ids in the group now.
    pub(crate) fn threads(&self) -> io::Result<Vec<i32>> {
        let text = fs::read_to_string(self.parent.threads_file(&self.dir))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// The group's throttling counters (`cpu.stat`).
    pub(crate) fn throttling(&self) -> io::Result<Throttling> {
        let text = fs::read_to_string(self.dir.join("cpu.stat"))?;
        Ok(parse_stat(&text))
    }

    /// Moves the threads still in the group back to the parent, then removes the directory.
    /// A thread that exits meanwhile is skipped.
    ///
    /// # Errors
    ///
    /// The `rmdir` refusal if the group could not be emptied (a thread joined again).
    pub(crate) fn remove(&self) -> io::Result<()> {
        let back = self.parent.threads_file(&self.parent.dir);
        for _ in 0..10 {
            for tid in self.threads().unwrap_or_default() {
                // ESRCH: the thread has exited since it was listed.
                let _ = fs::write(&back, tid.to_string());
            }
            match fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(16) /* EBUSY */ => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                other => return other,
            }
        }
        fs::remove_dir(&self.dir)
    }
}

fn parse_stat(text: &str) -> Throttling {
    let mut t = Throttling::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<u64>() else {
            continue;
        };
        match key {
            "nr_periods" => t.periods = v,
            "nr_throttled" => t.throttled_periods = v,
            "throttled_time" => t.throttled_time = Duration::from_nanos(v),
            "throttled_usec" => t.throttled_time = Duration::from_micros(v),
            _ => {}
        }
    }
    t
}

/// If the calling thread (`tid`) sits in a group this process created, which it inherited
/// from the thread that spawned it, moves it back to that group's parent and returns the
/// group's directory; `Ok(None)` if it is not in one (or the host has no cpu cgroup).
pub(crate) fn leave_inherited(tid: i32) -> Result<Option<PathBuf>, CgroupError> {
    let Ok(cgroup) = fs::read_to_string(format!("/proc/self/task/{tid}/cgroup")) else {
        return Ok(None);
    };
    let prefix = own_prefix();
    let ours = cgroup.lines().any(|l| {
        l.rsplit('/')
            .next()
            .is_some_and(|last| last.starts_with(&prefix))
    });
    if !ours {
        return Ok(None);
    }
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return Ok(None);
    };
    let Ok(Parent { version, dir }) = locate(&cgroup, &mountinfo) else {
        return Ok(None);
    };
    let is_ours = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(&prefix));
    let Some(up) = dir.parent().filter(|_| is_ours) else {
        return Ok(None);
    };
    let parent = Parent {
        version,
        dir: up.to_owned(),
    };
    let file = parent.threads_file(up);
    fs::write(&file, tid.to_string()).map_err(|e| {
        CgroupError::new(
            format!(
                "could not leave the CPU cap {} inherited from the thread that started it \
                 (writing to {})",
                dir.display(),
                file.display()
            ),
            e,
        )
    })?;
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 /docker/abc /sys/fs/cgroup/cpu\\040x rw - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mountinfo_is_read() {
        let m = mounts(MOUNTINFO);
        assert_eq!(m.len(), 4, "the tmpfs line is not a cgroup");
        assert_eq!(m[0].point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(m[0].controllers, ["rw", "cpu"]);
        assert_eq!(m[2].root, "/docker/abc");
        assert_eq!(m[2].point, Path::new("/sys/fs/cgroup/cpu x"));
        assert!(m[3].v2);
    }

    #[test]
    fn paths_map_through_the_mount_root() {
        let m = &mounts(MOUNTINFO)[2];
        assert_eq!(
            dir_on(m, "/docker/abc/sub"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu x/sub"))
        );
        assert_eq!(
            dir_on(m, "/docker/abc"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu x"))
        );
        assert_eq!(dir_on(m, "/docker/abcd"), None);
        assert_eq!(dir_on(m, "/other"), None);
    }

    #[test]
    fn v1_is_found_when_v2_has_no_cpu() {
        let cgroup = "2:cpuacct:/\n1:cpu:/app\n0::/\n";
        let p = locate(cgroup, MOUNTINFO).unwrap();
        assert_eq!(p.version, Version::V1);
        assert_eq!(p.dir, Path::new("/sys/fs/cgroup/cpu/app"));
        let err = locate("0::/\n", "").unwrap_err();
        assert!(
            err.contains("no cgroup hierarchy with the cpu controller"),
            "{err}"
        );
    }

    #[test]
    fn stat_in_both_versions() {
        let v1 = "nr_periods 10\nnr_throttled 4\nthrottled_time 2000000\n";
        assert_eq!(
            parse_stat(v1),
            Throttling {
                periods: 10,
                throttled_periods: 4,
                throttled_time: Duration::from_millis(2)
            }
        );
        let v2 = "usage_usec 5\nnr_periods 3\nnr_throttled 1\nthrottled_usec 1500\n";
        assert_eq!(parse_stat(v2).throttled_time, Duration::from_micros(1500));
    }

    #[test]
    fn names_are_clean_and_unique() {
        let a = group_name("api v2/ü");
        let b = group_name("api v2/ü");
        assert_ne!(a, b);
        assert!(a.starts_with(&own_prefix()), "{a}");
        assert!(a.ends_with("-api_v2__"), "{a}");
    }
}
