//! Bad configuration gets a clear error from build(), naming the pool and the setting.

use std::time::Duration;

use bulkhead::{limits, BuildErrorKind, Runtime, RuntimeBuilder};

fn err(b: RuntimeBuilder) -> bulkhead::BuildError {
    b.build().expect_err("configuration must be rejected")
}

fn assert_names(e: &bulkhead::BuildError, pool: Option<&str>, field: &str) {
    assert_eq!(e.pool(), pool, "{e}");
    assert_eq!(e.field(), field, "{e}");
    let msg = e.to_string();
    if let Some(p) = pool {
        assert!(msg.contains(&format!("{p:?}")), "{msg}");
    }
    assert!(msg.contains(field), "{msg}");
}

#[test]
fn no_pools() {
    let e = err(Runtime::builder());
    assert!(matches!(e.kind(), BuildErrorKind::NoPools));
    assert_eq!(e.field(), "pools");
}

#[test]
fn zero_threads() {
    let e = err(Runtime::builder().pool("api", |p| p.threads(0)));
    assert!(matches!(e.kind(), BuildErrorKind::OutOfRange));
    assert_names(&e, Some("api"), "threads");
    assert!(e.to_string().contains("got 0"), "{e}");
}

#[test]
fn too_many_threads() {
    let e = err(Runtime::builder().pool("api", |p| p.threads(limits::MAX_THREADS + 1)));
    assert_names(&e, Some("api"), "threads");
}

#[test]
fn empty_name() {
    let e = err(Runtime::builder().pool("", |p| p));
    assert!(matches!(e.kind(), BuildErrorKind::InvalidName));
    assert_eq!(e.field(), "name");
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn control_character_and_overlong_names() {
    let e = err(Runtime::builder().pool("a\nb", |p| p));
    assert!(matches!(e.kind(), BuildErrorKind::InvalidName));
    let e = err(Runtime::builder().pool("x".repeat(65), |p| p));
    assert!(e.to_string().contains("65 bytes"), "{e}");
}

#[test]
fn duplicate_names() {
    let e = err(Runtime::builder().pool("api", |p| p).pool("api", |p| p));
    assert!(matches!(e.kind(), BuildErrorKind::DuplicateName));
    assert_names(&e, Some("api"), "name");
}

#[test]
fn zero_stack_size() {
    let e = err(Runtime::builder().pool("api", |p| p.stack_size(0)));
    assert_names(&e, Some("api"), "stack_size");
    assert!(e.to_string().contains("got 0"), "{e}");
}

#[test]
fn huge_stack_size() {
    let e = err(Runtime::builder().pool("api", |p| p.stack_size(usize::MAX)));
    assert_names(&e, Some("api"), "stack_size");
}

#[test]
fn capacity_that_overflows() {
    let e = err(Runtime::builder().pool("api", |p| p.queue_capacity(usize::MAX)));
    assert_names(&e, Some("api"), "queue_capacity");
    let e =
        err(Runtime::builder().pool("api", |p| p.queue_capacity(limits::MAX_QUEUE_CAPACITY + 1)));
    assert_names(&e, Some("api"), "queue_capacity");
}

#[test]
fn zero_max_queue_wait() {
    let e = err(Runtime::builder().pool("api", |p| p.max_queue_wait(Duration::ZERO)));
    assert_names(&e, Some("api"), "max_queue_wait");
}

#[test]
fn bad_thread_name_prefix() {
    let e = err(Runtime::builder().pool("api", |p| p.thread_name("")));
    assert_names(&e, Some("api"), "thread_name");
}

#[test]
fn the_bad_pool_is_named_among_good_ones() {
    let e = err(Runtime::builder()
        .pool("good", |p| p.threads(2))
        .pool("bad", |p| p.threads(0)));
    assert_names(&e, Some("bad"), "threads");
}

#[test]
fn valid_configuration_builds_and_names_threads() {
    let rt = Runtime::builder()
        .pool("api", |p| p.threads(3).stack_size(limits::MIN_STACK_SIZE))
        .pool("bg", |p| p.thread_name("bgw").queue_capacity(0))
        .build()
        .unwrap();
    let names: Vec<_> = rt
        .pool("api")
        .unwrap()
        .workers()
        .into_iter()
        .map(|w| w.thread_name)
        .collect();
    assert_eq!(names, ["api-0", "api-1", "api-2"]);
    let bg = rt.pool("bg").unwrap();
    assert_eq!(bg.workers()[0].thread_name, "bgw-0");
    assert_eq!(bg.queue_capacity(), 0);
    // The name is visible to the OS (what ps -L / top -H show).
    #[cfg(target_os = "linux")]
    for w in rt.pool("api").unwrap().workers() {
        let tid = w.tid.expect("linux workers publish their tid");
        let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap();
        assert_eq!(comm.trim_end(), w.thread_name);
    }
}
