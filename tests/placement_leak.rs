//! No placement leaks between pools (issue 12, item 5): a worker started after build by a
//! thread of a pinned, niced pool (here: a resize called from inside such a pool's task)
//! runs with the placement the process had when the runtime was built, not the spawner's.
#![cfg(target_os = "linux")]

mod support;

use bulkhead::{CpuSet, Runtime, WorkerInfo};
use support::HANG_GUARD;

fn live(workers: Vec<WorkerInfo>) -> Vec<WorkerInfo> {
    workers.into_iter().filter(|w| !w.exited).collect()
}

#[test]
fn workers_started_from_a_pinned_niced_pool_get_the_runtime_placement() {
    let available = CpuSet::available().unwrap();
    let first = available.iter().next().unwrap();
    let rt = Runtime::builder()
        .pool("pinned", |p| {
            p.threads(1).cpus(CpuSet::new([first])).nice(5)
        })
        .pool("plain", |p| p.threads(1).max_threads_limit(3))
        .pool("elastic", |p| p.elastic(1, 3).queue_capacity(8))
        .build()
        .unwrap();
    let pinned = rt.pool("pinned").unwrap();
    let plain = rt.pool("plain").unwrap();
    let elastic = rt.pool("elastic").unwrap();

    // The placement of the workers the build started (spawned by this thread).
    let base = live(plain.workers()).remove(0);
    assert_ne!(
        base.nice,
        Some(5),
        "the test needs a process not niced to 5"
    );
    let spawner = live(pinned.workers()).remove(0);
    assert_eq!(spawner.nice, Some(5));
    assert_eq!(spawner.affinity, Some(CpuSet::new([first])));

    // From inside the pinned, niced pool: grow `plain` by a resize, and make `elastic` grow
    // by submitting more blocking work than it has idle workers.
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let (p2, e2) = (plain.clone(), elastic.clone());
    let mut h = pinned
        .try_submit(move || {
            p2.set_threads(3).map_err(|e| e.to_string())?;
            for _ in 0..3 {
                let rx = release_rx.clone();
                e2.execute(move || {
                    let _ = rx.recv();
                })
                .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
        .unwrap();
    h.join_timeout(HANG_GUARD).unwrap().unwrap();
    // Busy workers have finished their set-up (placement included).
    support::wait_until("elastic to grow, every worker in a task", || {
        let w = live(elastic.workers());
        w.len() >= 2 && w.iter().all(|w| w.busy)
    });

    for w in live(plain.workers())
        .into_iter()
        .chain(live(elastic.workers()))
    {
        assert_eq!(w.affinity, base.affinity, "{w:?}");
        assert_eq!(w.nice, base.nice, "{w:?}");
        assert_eq!(w.sched_policy, base.sched_policy, "{w:?}");
    }
    drop(release_tx);
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
}
