//! CPU sets, placement and priority: what each worker got is read back from the OS
//! (`/proc/self/task/<tid>/status` and `/stat`) and compared with the configuration; every
//! configuration error is provoked and its message checked.
//!
//! Tests that need two CPUs print why they skip on a one-CPU machine. Tests that need a
//! restricted or unprivileged process re-execute this test binary as a child (under
//! `taskset` or `setpriv`) with `BULKHEAD_CHILD` naming the test to run.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use bulkhead::{
    current_cpu, BuildError, BuildErrorKind, CpuSet, PartitionError, Placement, Runtime,
    SchedPolicy, WorkerInfo,
};
use support::HANG_GUARD;

const CHILD_ENV: &str = "BULKHEAD_CHILD";
const CHILD_CPUS_ENV: &str = "BULKHEAD_CHILD_CPUS";

fn available() -> CpuSet {
    CpuSet::available().expect("sched_getaffinity")
}

/// The first two available CPUs, or `None` (after saying why) on a one-CPU machine.
fn two_cpus(test: &str) -> Option<(usize, usize)> {
    let set = available();
    match (set.nth(0), set.nth(1)) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            println!("skip {test}: needs two CPUs, this process may use only {set}");
            None
        }
    }
}

/// A line of `/proc/self/task/<tid>/status`, without its key.
fn proc_status(tid: i32, key: &str) -> String {
    let path = format!("/proc/self/task/{tid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {path}"))
        .trim()
        .to_owned()
}

fn proc_affinity(tid: i32) -> CpuSet {
    proc_status(tid, "Cpus_allowed_list").parse().unwrap()
}

/// (nice, policy) from `/proc/self/task/<tid>/stat`: fields 19 and 41, counted after the
/// command name, which is in parentheses and may contain spaces.
fn proc_nice_policy(tid: i32) -> (i32, u32) {
    let path = format!("/proc/self/task/{tid}/stat");
    let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let after_comm = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state).
    (
        fields[19 - 3].parse().unwrap(),
        fields[41 - 3].parse().unwrap(),
    )
}

fn tid(w: &WorkerInfo) -> i32 {
    w.tid.expect("a live worker on Linux has a thread id")
}

fn build_err(b: bulkhead::RuntimeBuilder) -> BuildError {
    b.build().expect_err("configuration must be rejected")
}

/// Runs the test `name` of this binary in a child process, prefixed by `wrapper` (a command
/// and its arguments), with `env` set. Returns the child's combined output and whether it
/// succeeded.
fn run_child(name: &str, wrapper: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {wrapper:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

// ---------------------------------------------------------------------------------------
// CpuSet and the OS view of it

#[test]
fn cpuset_parse_display() {
    let set: CpuSet = "0-3,6".parse().unwrap();
    assert_eq!(set.iter().collect::<Vec<_>>(), [0, 1, 2, 3, 6]);
    assert_eq!(set.to_string(), "0-3,6");
    assert_eq!(CpuSet::from_cpus([6, 3, 2, 1, 0]), set);
    let e = CpuSet::parse("0-3,x,6").unwrap_err();
    assert_eq!(e.token(), "x");
    assert!(e.to_string().contains("\"x\""), "{e}");
}

#[test]
fn available_matches_proc_status() {
    let online = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let listed = online
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    assert_eq!(available(), listed.parse().unwrap());
    assert!(!available().is_empty());
}

#[test]
fn current_cpu_is_available() {
    let cpu = current_cpu().expect("sched_getcpu works on Linux");
    assert!(available().contains(cpu), "{cpu} not in {}", available());
}

// ---------------------------------------------------------------------------------------
// Placement, read back from the OS

#[test]
fn spread_affinity_read_back() {
    let set = available();
    let rt = Runtime::builder()
        .pool("spread", |p| p.threads(3).cpus(set.clone()))
        .build()
        .unwrap();
    let pool = rt.pool("spread").unwrap();
    assert_eq!(pool.cpus(), Some(&set));
    let workers = pool.workers();
    assert_eq!(workers.len(), 3);
    for w in &workers {
        assert_eq!(proc_affinity(tid(w)), set, "{w:?}");
        assert_eq!(w.affinity.as_ref(), Some(&set), "{w:?}");
    }
}

#[test]
fn spread_over_one_cpu_read_back() {
    let Some((_, b)) = two_cpus("spread_over_one_cpu_read_back") else {
        return;
    };
    let set = CpuSet::new([b]);
    let rt = Runtime::builder()
        .pool("one", |p| {
            p.threads(2).cpus(set.clone()).placement(Placement::Spread)
        })
        .build()
        .unwrap();
    for w in rt.pool("one").unwrap().workers() {
        assert_eq!(proc_affinity(tid(&w)), set);
        assert_eq!(w.affinity, Some(set.clone()));
    }
}

#[test]
fn pin_each_affinity_read_back() {
    let set = available();
    // More workers than CPUs: worker i gets the (i % len)-th CPU.
    let threads = set.len() * 2 + 1;
    let rt = Runtime::builder()
        .pool("pinned", |p| {
            p.threads(threads)
                .cpus(set.clone())
                .placement(Placement::PinEach)
        })
        .build()
        .unwrap();
    let workers = rt.pool("pinned").unwrap().workers();
    assert_eq!(workers.len(), threads);
    for w in &workers {
        let expected = CpuSet::new([set.nth(w.index % set.len()).unwrap()]);
        assert_eq!(proc_affinity(tid(w)), expected, "{w:?}");
        assert_eq!(w.affinity.as_ref(), Some(&expected), "{w:?}");
    }
}

#[test]
fn nice_and_policy_read_back() {
    const SCHED_OTHER: u32 = 0;
    const SCHED_BATCH: u32 = 3;
    const SCHED_IDLE: u32 = 5;
    let rt = Runtime::builder()
        .pool("batch", |p| {
            p.threads(2).nice(7).sched_policy(SchedPolicy::Batch)
        })
        .pool("idle", |p| p.sched_policy(SchedPolicy::Idle))
        .pool("low", |p| p.nice(19).sched_policy(SchedPolicy::Normal))
        .pool("plain", |p| p)
        .build()
        .unwrap();
    let inherited = proc_nice_policy(
        std::fs::read_link("/proc/thread-self")
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    let check = |pool: &str, nice: i32, policy: u32, reported: SchedPolicy| {
        for w in rt.pool(pool).unwrap().workers() {
            assert_eq!(proc_nice_policy(tid(&w)), (nice, policy), "{pool}: {w:?}");
            assert_eq!(w.nice, Some(nice), "{pool}: {w:?}");
            assert_eq!(w.sched_policy, Some(reported), "{pool}: {w:?}");
        }
    };
    check("batch", 7, SCHED_BATCH, SchedPolicy::Batch);
    check("idle", inherited.0, SCHED_IDLE, SchedPolicy::Idle);
    check("low", 19, SCHED_OTHER, SchedPolicy::Normal);
    // Unset: inherited from the thread that called build().
    assert_eq!(inherited.1, SCHED_OTHER, "the test thread runs SCHED_OTHER");
    check("plain", inherited.0, SCHED_OTHER, SchedPolicy::Normal);
}

#[test]
fn exited_workers_report_no_os_state() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(2).cpus(available()))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    assert!(rt.shutdown().is_clean());
    for w in pool.workers() {
        assert!(w.exited);
        assert_eq!((w.affinity, w.nice, w.sched_policy), (None, None, None));
    }
}

/// Every task of a pool pinned to one CPU, and every busy task of a pool pinned to another,
/// records `current_cpu()` as it runs; none may ever have run outside its pool's set.
#[test]
fn tasks_never_run_outside_their_set() {
    let Some((a, b)) = two_cpus("tasks_never_run_outside_their_set") else {
        return;
    };
    let rt = Runtime::builder()
        .pool("zero", |p| {
            p.threads(2)
                .cpus(CpuSet::new([a]))
                .placement(Placement::PinEach)
        })
        .pool("one", |p| p.threads(2).cpus(CpuSet::new([b])))
        .build()
        .unwrap();
    let (zero, one) = (rt.pool("zero").unwrap(), rt.pool("one").unwrap());

    // Busy tasks on "one": spin, recording the CPU, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = mpsc::channel();
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let (stop, started) = (stop.clone(), started_tx.clone());
            one.try_submit(move || {
                let mut seen = BTreeSet::new();
                seen.insert(current_cpu());
                started.send(()).unwrap();
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                    }
                    seen.insert(current_cpu());
                }
                seen
            })
            .unwrap()
        })
        .collect();
    for _ in 0..2 {
        started_rx.recv_timeout(HANG_GUARD).unwrap();
    }

    // Many short tasks on "zero" while "one" is busy.
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            zero.submit_timeout(
                || {
                    let mut seen = vec![current_cpu()];
                    let mut x = 0u64;
                    for i in 0..20_000 {
                        x = std::hint::black_box(x ^ i);
                    }
                    seen.push(current_cpu());
                    seen
                },
                HANG_GUARD,
            )
            .unwrap()
        })
        .collect();
    let mut zero_seen = BTreeSet::new();
    for mut t in tasks {
        zero_seen.extend(t.join_timeout(HANG_GUARD).unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let mut one_seen = BTreeSet::new();
    for mut t in busy {
        one_seen.extend(t.join_timeout(HANG_GUARD).unwrap());
    }
    assert_eq!(
        zero_seen,
        BTreeSet::from([Some(a)]),
        "pool zero ran outside CPU {a}"
    );
    assert_eq!(
        one_seen,
        BTreeSet::from([Some(b)]),
        "pool one ran outside CPU {b}"
    );
}

// ---------------------------------------------------------------------------------------
// Errors

#[test]
fn cpu_4096_is_unavailable() {
    let avail = available();
    let mut cpus: Vec<usize> = avail.iter().collect();
    cpus.push(4096);
    let e = build_err(Runtime::builder().pool("api", |p| p.cpus(CpuSet::new(cpus))));
    match e.kind() {
        BuildErrorKind::UnavailableCpu { cpu, available } => {
            assert_eq!(*cpu, 4096);
            assert_eq!(available, &avail);
        }
        k => panic!("wrong kind {k:?}: {e}"),
    }
    assert_eq!((e.pool(), e.field()), (Some("api"), "cpus"));
    let msg = e.to_string();
    for part in [
        "\"api\"",
        "cpus",
        "CPU 4096",
        &format!("{:?}", avail.to_string()),
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
}

/// Runs a child under `taskset -c <first CPU>`: there the second CPU is outside the
/// process's mask, though the machine has it.
#[test]
fn cpu_outside_process_mask() {
    const NAME: &str = "cpu_outside_process_mask";
    if is_child(NAME) {
        let cpus: CpuSet = std::env::var(CHILD_CPUS_ENV).unwrap().parse().unwrap();
        let (a, b) = (cpus.nth(0).unwrap(), cpus.nth(1).unwrap());
        assert_eq!(
            available(),
            CpuSet::new([a]),
            "taskset restricted the child"
        );
        let e = build_err(
            Runtime::builder()
                .pool("ok", |p| p.cpus(CpuSet::new([a])))
                .pool("batch", |p| p.cpus(CpuSet::new([a, b]))),
        );
        assert!(
            matches!(e.kind(), BuildErrorKind::UnavailableCpu { cpu, available }
                if *cpu == b && *available == CpuSet::new([a])),
            "{e:?}"
        );
        let msg = e.to_string();
        for part in [
            "\"batch\"",
            "cpus",
            &format!("CPU {b} "),
            &format!("\"{a}\""),
        ] {
            assert!(msg.contains(part), "{part:?} not in {msg}");
        }
        println!("child checked: {msg}");
        return;
    }
    let Some((a, b)) = two_cpus(NAME) else { return };
    if !have("taskset") {
        println!("skip {NAME}: taskset (util-linux) is not installed");
        return;
    }
    let (ok, out) = run_child(
        NAME,
        &["taskset", "-c", &a.to_string()],
        &[(CHILD_CPUS_ENV, format!("{a},{b}"))],
    );
    assert!(ok && out.contains("child checked"), "child failed:\n{out}");
}

#[test]
fn overlapping_exclusive_pools() {
    let cpus = available();
    let first = CpuSet::new([cpus.nth(0).unwrap()]);
    let e = build_err(
        Runtime::builder()
            .pool("api", |p| p.cpus(cpus.clone()).exclusive(true))
            .pool("batch", |p| p.cpus(first.clone())),
    );
    assert!(
        matches!(e.kind(), BuildErrorKind::OverlappingExclusive { other, shared }
            if other == "batch" && *shared == first),
        "{e:?}"
    );
    assert_eq!((e.pool(), e.field()), (Some("api"), "exclusive"));
    let msg = e.to_string();
    for part in ["\"api\"", "\"batch\"", &format!("{:?}", first.to_string())] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
}

#[test]
fn exclusive_pool_and_pool_without_set_overlap() {
    let cpus = available();
    let e = build_err(
        Runtime::builder()
            .pool("anywhere", |p| p)
            .pool("api", |p| p.cpus(cpus.clone()).exclusive(true)),
    );
    assert!(
        matches!(e.kind(), BuildErrorKind::OverlappingExclusive { other, shared }
            if other == "anywhere" && *shared == cpus),
        "{e:?}"
    );
    assert!(e.to_string().contains("no CPU set"), "{e}");
}

#[test]
fn disjoint_exclusive_pools_from_partition() {
    let Some(_) = two_cpus("disjoint_exclusive_pools_from_partition") else {
        return;
    };
    let parts = CpuSet::partition(&available(), &[("api", 3), ("batch", 1)]).unwrap();
    let mut b = Runtime::builder();
    for (name, set) in &parts {
        let set = set.clone();
        b = b.pool(name.as_str(), move |p| p.cpus(set).exclusive(true));
    }
    let rt = b.build().unwrap();
    for (name, set) in &parts {
        for w in rt.pool(name).unwrap().workers() {
            assert_eq!(proc_affinity(tid(&w)), *set);
        }
    }
}

#[test]
fn partition_fewer_cpus_than_pools() {
    let avail = available();
    let pools: Vec<String> = (0..=avail.len()).map(|i| format!("p{i}")).collect();
    let weights: Vec<(&str, u32)> = pools.iter().map(|p| (p.as_str(), 1)).collect();
    let e = CpuSet::partition(&avail, &weights).unwrap_err();
    assert!(matches!(&e, PartitionError::TooFewCpus { pools: p, .. } if *p == pools));
    let msg = e.to_string();
    assert!(msg.contains(&format!("{} pools", pools.len())), "{msg}");
    assert!(msg.contains(&format!("only {} CPU", avail.len())), "{msg}");
}

#[test]
fn invalid_cpu_settings() {
    let e = build_err(Runtime::builder().pool("p", |p| p.cpus(CpuSet::new([]))));
    assert!(matches!(e.kind(), BuildErrorKind::InvalidCpus), "{e:?}");
    assert_eq!(e.field(), "cpus");

    let e = build_err(Runtime::builder().pool("p", |p| p.placement(Placement::PinEach)));
    assert!(matches!(e.kind(), BuildErrorKind::InvalidCpus), "{e:?}");
    assert_eq!(e.field(), "placement");

    let e = build_err(Runtime::builder().pool("p", |p| p.exclusive(true)));
    assert!(matches!(e.kind(), BuildErrorKind::InvalidCpus), "{e:?}");
    assert_eq!(e.field(), "exclusive");

    for nice in [-21, 20, i32::MIN, i32::MAX] {
        let e = build_err(Runtime::builder().pool("p", |p| p.nice(nice)));
        assert!(matches!(e.kind(), BuildErrorKind::OutOfRange), "{e:?}");
        assert_eq!(e.field(), "nice");
        assert!(e.to_string().contains(&nice.to_string()), "{e}");
    }
}

/// Negative nice without privilege: as root, drop privilege in a child with `setpriv`.
#[test]
fn negative_nice_without_privilege() {
    const NAME: &str = "negative_nice_without_privilege";
    if is_child(NAME) || !running_as_root() {
        println!("child started as uid {}", uid());
        let limit = nice_rlimit();
        if limit > 20 {
            println!(
                "skip {NAME}: RLIMIT_NICE is {limit}, so this process may lower its nice value"
            );
            return;
        }
        match Runtime::builder()
            .pool("api", |p| p.threads(2).nice(-1))
            .build()
        {
            Err(e) => {
                let BuildErrorKind::Os(os) = e.kind() else {
                    panic!("wrong kind: {e:?}")
                };
                // EPERM (1) or EACCES (13), depending on the kernel's reason.
                assert!(
                    matches!(os.raw_os_error(), Some(1 | 13)),
                    "expected EPERM or EACCES, got {os:?}"
                );
                assert_eq!(os.kind(), std::io::ErrorKind::PermissionDenied);
                assert_eq!((e.pool(), e.field()), (Some("api"), "nice"));
                let msg = e.to_string();
                assert!(msg.contains("-1") && msg.contains("\"api\""), "{msg}");
                println!("child checked: {msg}");
            }
            Ok(rt) => {
                // Only possible with CAP_SYS_NICE: then the OS did what was asked.
                for w in rt.pool("api").unwrap().workers() {
                    assert_eq!(w.nice, Some(-1));
                }
                println!("skip {NAME}: this process has CAP_SYS_NICE; nothing was refused");
            }
        }
        return;
    }
    if !have("setpriv") {
        println!("skip {NAME}: running as root and setpriv (util-linux) is not installed");
        return;
    }
    let (ok, out) = run_child(
        NAME,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ],
        &[],
    );
    if !out.contains("child started") {
        println!("skip {NAME}: the test binary could not run as uid 65534:\n{out}");
        return;
    }
    assert!(ok, "child failed:\n{out}");
    assert!(
        out.contains("child checked") || out.contains("skip"),
        "child output:\n{out}"
    );
    print!("{out}");
}

fn uid() -> u32 {
    proc_status_self("Uid")
        .split_whitespace()
        .nth(1) // effective uid
        .unwrap()
        .parse()
        .unwrap()
}

fn running_as_root() -> bool {
    uid() == 0
}

fn proc_status_self(key: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap()
        .trim()
        .to_owned()
}

/// The soft RLIMIT_NICE: an unprivileged thread may lower its nice value to 20 - limit.
fn nice_rlimit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max nice priority"))
        .unwrap();
    let soft = line["Max nice priority".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    soft.parse().unwrap_or(u64::MAX) // "unlimited"
}
