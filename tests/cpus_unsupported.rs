//! Off Linux the crate builds, and asking for placement or priority is a clear
//! `Unsupported` build error (see docs/CPU_SETS.md).
#![cfg(not(target_os = "linux"))]

use bulkhead::{BuildErrorKind, CpuSet, Runtime, SchedPolicy};

#[test]
fn placement_and_priority_are_unsupported() {
    let cases: [(&str, fn(bulkhead::PoolBuilder) -> bulkhead::PoolBuilder); 3] = [
        ("cpus", |p| p.cpus(CpuSet::new([0]))),
        ("nice", |p| p.nice(5)),
        ("sched_policy", |p| p.sched_policy(SchedPolicy::Batch)),
    ];
    for (field, configure) in cases {
        let e = Runtime::builder().pool("p", configure).build().unwrap_err();
        assert!(matches!(e.kind(), BuildErrorKind::Unsupported), "{e:?}");
        assert_eq!(e.field(), field);
        assert!(e.to_string().contains("only supported on Linux"), "{e}");
    }
    assert_eq!(bulkhead::current_cpu(), None);
    assert!(CpuSet::available().is_err());
    // A pool without CPU settings still works.
    let rt = Runtime::builder().pool("p", |p| p).build().unwrap();
    assert_eq!(
        rt.pool("p")
            .unwrap()
            .try_submit(|| 1)
            .unwrap()
            .join()
            .unwrap(),
        1
    );
}
