//! Kernel CPU caps (`PoolBuilder::cpu_limit`): the pool's cgroup, its quota and members are
//! read back from the cgroup file system; a spinning pool is held near its quota; the cgroup
//! is gone after shutdown; bad values and hosts that refuse are build errors (or, with best
//! effort, an uncapped pool that says why).
//!
//! Tests that need a cgroup first try to build a capped pool; where the host does not allow
//! one (not root, no `cpu` controller) they print why they skipped. Timing checks are
//! generous outcome bounds only: these tests run on a loaded 2-core CI machine.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead::{BuildErrorKind, CpuCapStatus, Runtime};

const CHILD_ENV: &str = "BULKHEAD_CHILD";

/// A runtime with one pool `capped` (`threads`, `cpu_limit(limit)`), or `None` after saying
/// why the host does not allow it.
fn capped_runtime(test: &str, threads: usize, limit: f64) -> Option<Runtime> {
    match Runtime::builder()
        .supervisor_interval(Duration::from_millis(50))
        .pool("capped", |p| p.threads(threads).cpu_limit(limit))
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            println!("skip {test}: this host does not allow a CPU cap: {e}");
            None
        }
    }
}

fn cap_of(rt: &Runtime) -> CpuCapStatus {
    rt.snapshot()
        .pool("capped")
        .unwrap()
        .cpu_cap
        .clone()
        .unwrap()
}

/// The file listing a cgroup's threads: `tasks` (v1) or `cgroup.threads` (v2).
fn threads_file(dir: &Path) -> PathBuf {
    if dir.join("tasks").exists() {
        dir.join("tasks")
    } else {
        dir.join("cgroup.threads")
    }
}

fn members(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(threads_file(dir))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// The quota and period the kernel holds for the cgroup, in microseconds.
fn quota_period(dir: &Path) -> (u64, u64) {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    if dir.join("cpu.max").exists() {
        let text = read("cpu.max");
        let mut it = text.split_whitespace().map(|v| v.parse().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    } else {
        (
            read("cpu.cfs_quota_us").trim().parse().unwrap(),
            read("cpu.cfs_period_us").trim().parse().unwrap(),
        )
    }
}

#[test]
fn smoke_cgroup_has_the_quota_and_every_worker() {
    let Some(rt) = capped_runtime("smoke_cgroup_has_the_quota_and_every_worker", 3, 0.5) else {
        return;
    };
    let cap = cap_of(&rt);
    assert_eq!(cap.quota, Duration::from_millis(50));
    assert_eq!(cap.period, Duration::from_millis(100));
    assert_eq!(cap.uncapped, None);
    let dir = cap.cgroup.expect("a capped pool has a cgroup");
    let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with(&format!("bulkhead-{}-", std::process::id())) && name.ends_with("-capped"),
        "{name}"
    );
    assert_eq!(quota_period(&dir), (50_000, 100_000));
    let inside = members(&dir);
    let workers = rt.pool("capped").unwrap().workers();
    assert_eq!(workers.len(), 3);
    for w in &workers {
        let tid = w.tid.expect("a worker's tid on Linux");
        assert!(inside.contains(&tid), "worker {tid} not in {inside:?}");
    }
    // Only the workers: not the thread that called build(), not the supervisor.
    assert_eq!(inside.len(), 3, "{inside:?}");
    assert!(cap.throttling.is_some());
}

#[test]
fn a_spinning_pool_is_held_near_its_quota() {
    const NAME: &str = "a_spinning_pool_is_held_near_its_quota";
    // Two workers spinning could take both CPUs; the cap allows a fifth of one.
    let limit = 0.2;
    let Some(rt) = capped_runtime(NAME, 2, limit) else {
        return;
    };
    let pool = rt.pool("capped").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = rt
        .snapshot()
        .pool("capped")
        .unwrap()
        .cpu_time
        .unwrap_or_default();
    let started = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            pool.try_submit(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
            .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let wall = started.elapsed();
    let snap = rt.snapshot();
    let p = snap.pool("capped").unwrap();
    let used = p.cpu_time.expect("CPU time on Linux") - cpu_before;
    let quota = wall.mul_f64(limit);
    let throttling = p.cpu_cap.as_ref().unwrap().throttling.unwrap();
    println!(
        "{NAME}: {used:?} of CPU in {wall:?} (quota {quota:?}); throttled in {} of {} periods, \
         {:?} in all",
        throttling.throttled_periods, throttling.periods, throttling.throttled_time
    );
    // Uncapped, two spinners would use up to twice the wall time.
    assert!(
        used < quota * 3,
        "used {used:?}, more than 3x the quota {quota:?}"
    );
    assert!(throttling.throttled_periods > 0, "{throttling:?}");
    assert!(throttling.throttled_time > Duration::ZERO, "{throttling:?}");
}

#[test]
fn the_cgroup_is_removed_at_shutdown() {
    let Some(rt) = capped_runtime("the_cgroup_is_removed_at_shutdown", 2, 1.0) else {
        return;
    };
    let dir = cap_of(&rt).cgroup.unwrap();
    assert!(dir.is_dir());
    rt.pool("capped")
        .unwrap()
        .try_submit(|| ())
        .unwrap()
        .join()
        .unwrap();
    assert!(rt.shutdown().is_clean());
    assert!(!dir.exists(), "{} still exists", dir.display());
    // The last counters stay readable.
    let cap = cap_of(&rt);
    assert!(cap.throttling.is_some());
    drop(rt);
    assert!(!dir.exists());
}

#[test]
fn a_detached_worker_is_moved_out_and_the_cgroup_still_removed() {
    let Some(rt) = capped_runtime("a_detached_worker_is_moved_out", 1, 1.0) else {
        return;
    };
    let dir = cap_of(&rt).cgroup.unwrap();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    rt.pool("capped")
        .unwrap()
        .execute(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
        })
        .unwrap();
    started_rx.recv().unwrap();
    let report = rt.shutdown_timeout(Duration::from_millis(10));
    assert_eq!(report.still_running(), 1);
    assert!(!dir.exists(), "{} still exists", dir.display());
    release_tx.send(()).unwrap();
}

#[test]
fn a_worker_started_by_a_capped_thread_leaves_the_cap() {
    const NAME: &str = "a_worker_started_by_a_capped_thread_leaves_the_cap";
    // The elastic pool grows when the capped pool's task submits to it while its one worker
    // is busy: the new worker is spawned by the capped thread and inherits its cgroup.
    let rt = match Runtime::builder()
        .pool("capped", |p| p.threads(1).cpu_limit(1.0))
        .pool("elastic", |p| p.elastic(1, 2).queue_capacity(4))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("skip {NAME}: this host does not allow a CPU cap: {e}");
            return;
        }
    };
    let elastic = rt.pool("elastic").unwrap();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let first = elastic
        .try_submit(move || {
            let _ = release_rx.recv();
        })
        .unwrap();
    let e2 = elastic.clone();
    let second = rt
        .pool("capped")
        .unwrap()
        .try_submit(move || e2.try_submit(|| ()).unwrap().join().unwrap())
        .unwrap();
    second.join().unwrap();
    release_tx.send(()).unwrap();
    first.join().unwrap();
    let dir = cap_of(&rt).cgroup.unwrap();
    let inside = members(&dir);
    let workers = elastic.workers();
    assert!(workers.iter().filter(|w| w.tid.is_some()).count() >= 2);
    for w in workers {
        let Some(tid) = w.tid.filter(|_| !w.exited) else {
            continue;
        };
        assert!(
            !inside.contains(&tid),
            "elastic worker {tid} runs in the capped pool's cgroup"
        );
    }
}

#[test]
fn the_period_and_weight_reach_the_kernel() {
    let built = Runtime::builder()
        .pool("capped", |p| {
            p.threads(2)
                .cpu_limit(0.5)
                .cpu_limit_period(Duration::from_millis(10))
                .cpu_weight(10)
        })
        .build();
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            println!("skip the_period_and_weight_reach_the_kernel: no CPU cap here: {e}");
            return;
        }
    };
    let cap = cap_of(&rt);
    assert_eq!(
        (cap.quota, cap.period, cap.weight),
        (
            Duration::from_millis(5),
            Duration::from_millis(10),
            Some(10)
        )
    );
    let dir = cap.cgroup.expect("a capped pool has a cgroup");
    assert_eq!(quota_period(&dir), (5_000, 10_000));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    if dir.join("cpu.weight").exists() {
        assert_eq!(read("cpu.weight").trim(), "10");
    } else {
        // cgroup v1: weight x 1024 / 100.
        assert_eq!(read("cpu.shares").trim(), "102");
    }
}

#[test]
fn bad_periods_and_weights_are_build_errors_naming_the_field() {
    let ms = Duration::from_millis;
    for (limit, period, why) in [
        (0.5, Duration::from_micros(500), "between"),
        (0.5, Duration::from_secs(2), "between"),
        // 0.05 CPU per 10 ms is a 0.5 ms quota, below the kernel's 1 ms.
        (0.05, ms(10), "quota"),
    ] {
        let e = Runtime::builder()
            .pool("batch", |p| p.cpu_limit(limit).cpu_limit_period(period))
            .build()
            .unwrap_err();
        assert_eq!((e.pool(), e.field()), (Some("batch"), "cpu_limit_period"));
        assert!(e.to_string().contains(why), "{e}");
    }
    for w in [0, 10_001] {
        let e = Runtime::builder()
            .pool("batch", |p| p.cpu_limit(0.5).cpu_weight(w))
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "cpu_weight");
        assert!(e.to_string().contains(&w.to_string()), "{e}");
    }
    for (field, b) in [
        (
            "cpu_limit_period",
            Runtime::builder().pool("batch", |p| p.cpu_limit_period(ms(10))),
        ),
        (
            "cpu_weight",
            Runtime::builder().pool("batch", |p| p.cpu_weight(10)),
        ),
    ] {
        let e = b.build().unwrap_err();
        assert_eq!((e.pool(), e.field()), (Some("batch"), field));
        assert!(e.to_string().contains("needs a cpu_limit"), "{e}");
    }
}

#[test]
fn bad_values_are_build_errors_naming_pool_field_and_value() {
    for bad in [0.0, -1.0, 0.001, f64::NAN, 100_000.0] {
        let e = Runtime::builder()
            .pool("batch", |p| p.cpu_limit(bad))
            .build()
            .unwrap_err();
        assert_eq!((e.pool(), e.field()), (Some("batch"), "cpu_limit"));
        assert!(matches!(e.kind(), BuildErrorKind::OutOfRange), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("\"batch\"") && msg.contains(&bad.to_string()),
            "{msg}"
        );
    }
    for (field, b) in [
        (
            "cpu_limit_best_effort",
            Runtime::builder().pool("batch", |p| p.cpu_limit_best_effort(true)),
        ),
        (
            "cpu_limit_parent",
            Runtime::builder().pool("batch", |p| p.cpu_limit_parent("/sys/fs/cgroup")),
        ),
    ] {
        let e = b.build().unwrap_err();
        assert_eq!((e.pool(), e.field()), (Some("batch"), field));
        assert!(e.to_string().contains("needs a cpu_limit"), "{e}");
    }
    // The settings table reads the same setting, as a decimal number.
    let mut refused = None;
    let b = Runtime::builder().pool("batch", |p| {
        p.clone().set("cpu_limit", "half").unwrap_or_else(|e| {
            refused = Some(e);
            p
        })
    });
    let e = refused.unwrap();
    assert!(e.to_string().contains("\"half\" is not a number"), "{e}");
    let e = b
        .configure_pool("batch", |p| p.set("cpu_limit", "0").unwrap())
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "cpu_limit");
}

/// A parent that is not a cgroup stands in for a host that refuses.
#[test]
fn a_refused_cap_fails_build_or_with_best_effort_runs_uncapped_and_says_why() {
    let not_a_cgroup = std::env::temp_dir();
    let e = Runtime::builder()
        .pool("batch", |p| {
            p.cpu_limit(0.5).cpu_limit_parent(&not_a_cgroup)
        })
        .build()
        .unwrap_err();
    assert_eq!((e.pool(), e.field()), (Some("batch"), "cpu_limit"));
    assert!(matches!(e.kind(), BuildErrorKind::Unsupported), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("is not a cgroup directory") && msg.contains("cpu_limit_best_effort"),
        "{msg}"
    );

    let rt = Runtime::builder()
        .pool("batch", |p| {
            p.threads(2)
                .cpu_limit(0.5)
                .cpu_limit_parent(&not_a_cgroup)
                .cpu_limit_best_effort(true)
        })
        .build()
        .unwrap();
    assert_eq!(
        rt.pool("batch")
            .unwrap()
            .try_submit(|| 7)
            .unwrap()
            .join()
            .unwrap(),
        7
    );
    let snap = rt.snapshot();
    let cap = snap.pool("batch").unwrap().cpu_cap.as_ref().unwrap();
    assert_eq!(cap.cgroup, None);
    assert_eq!(cap.throttling, None);
    let why = cap.uncapped.as_deref().unwrap();
    assert!(why.contains("is not a cgroup directory"), "{why}");
    let text = snap.to_prometheus();
    assert!(
        !text.contains("bulkhead_cpu_throttled_periods_total{"),
        "{text}"
    );
}

#[test]
fn prometheus_exports_the_throttling_counters() {
    let Some(rt) = capped_runtime("prometheus_exports_the_throttling_counters", 1, 0.5) else {
        return;
    };
    let text = rt.snapshot().to_prometheus();
    for family in [
        "bulkhead_cpu_throttled_periods_total",
        "bulkhead_cpu_throttled_seconds_total",
    ] {
        assert!(text.contains(&format!("# TYPE {family} counter")), "{text}");
        assert!(
            text.contains(&format!("{family}{{pool=\"capped\"}} ")),
            "{text}"
        );
    }
}

/// A real refusal: as root, re-run this test in a child without privilege (`setpriv`).
#[test]
fn unprivileged_build_is_refused_with_the_reason() {
    const NAME: &str = "unprivileged_build_is_refused_with_the_reason";
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap();
    if std::env::var(CHILD_ENV).as_deref() == Ok(NAME) || uid != "0" {
        println!("child started as uid {uid}");
        match Runtime::builder()
            .pool("batch", |p| p.cpu_limit(0.5))
            .build()
        {
            Ok(_) => println!("skip {NAME}: this uid may create cgroups; nothing was refused"),
            Err(e) => {
                assert_eq!((e.pool(), e.field()), (Some("batch"), "cpu_limit"));
                println!("child checked: {e}");
                let rt = Runtime::builder()
                    .pool("batch", |p| p.cpu_limit(0.5).cpu_limit_best_effort(true))
                    .build()
                    .unwrap();
                let snap = rt.snapshot();
                let why = snap.pool("batch").unwrap().cpu_cap.as_ref().unwrap();
                println!("child best effort: {:?}", why.uncapped);
                assert!(why.uncapped.is_some());
            }
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(exe)
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, NAME)
        .output();
    let Ok(out) = out else {
        println!("skip {NAME}: running as root and setpriv (util-linux) is not installed");
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !text.contains("child started") {
        println!("skip {NAME}: the test binary could not run as uid 65534:\n{text}");
        return;
    }
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("child checked") || text.contains("skip"),
        "{text}"
    );
    print!("{text}");
}
