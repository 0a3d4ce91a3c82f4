//! Panic policy for tasks without a handle: count (the default), a handler, or abort (in a
//! re-executed child process, since it kills the process).

mod support;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bulkhead::{PanicPolicy, Runtime};
use support::{quiet_panics, wait_until, HANG_GUARD};

/// Set in the child process that the abort test starts.
const CHILD_ENV: &str = "BULKHEAD_PANIC_POLICY_ABORT_CHILD";

#[test]
fn count_is_the_default_and_the_worker_goes_on() {
    quiet_panics("policy-count");
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    pool.execute(|| panic!("policy-count")).unwrap();
    assert_eq!(pool.try_submit(|| 1).unwrap().join().unwrap(), 1);
    wait_until("the panic to be counted", || pool.stats().panicked == 1);
    assert_eq!(format!("{:?}", PanicPolicy::default()), "Count");
}

#[test]
fn the_handler_gets_the_pool_and_the_payload() {
    quiet_panics("policy-handler");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let rt = Runtime::builder()
        .pool("jobs", move |p| {
            p.threads(1)
                .panic_policy(PanicPolicy::handler(move |pool, payload| {
                    let msg = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_default();
                    let thread = std::thread::current().name().unwrap_or("?").to_owned();
                    log.lock().unwrap().push((pool.to_owned(), msg, thread));
                }))
        })
        .build()
        .unwrap();
    let pool = rt.pool("jobs").unwrap();
    for i in 0..3 {
        pool.execute(move || panic!("policy-handler {i}")).unwrap();
    }
    wait_until("three panics", || pool.stats().panicked == 3);
    let seen = seen.lock().unwrap().clone();
    let expected: Vec<_> = (0..3)
        .map(|i| {
            (
                "jobs".to_owned(),
                format!("policy-handler {i}"),
                "jobs-0".to_owned(),
            )
        })
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(pool.try_submit(|| 2).unwrap().join().unwrap(), 2);
}

#[test]
fn a_panicking_handler_does_not_kill_the_worker() {
    quiet_panics("policy-");
    let rt = Runtime::builder()
        .pool("p", |p| {
            p.threads(1)
                .panic_policy(PanicPolicy::handler(|_, _| panic!("policy-handler-panics")))
        })
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    pool.execute(|| panic!("policy-task")).unwrap();
    assert_eq!(pool.try_submit(|| 3).unwrap().join().unwrap(), 3);
    wait_until("the panic to be counted", || pool.stats().panicked == 1);
}

#[test]
fn tasks_with_a_handle_always_get_the_payload_even_under_abort() {
    quiet_panics("policy-handle");
    let rt = Runtime::builder()
        .pool("p", |p| p.panic_policy(PanicPolicy::Abort))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let err = pool
        .try_submit(|| -> u32 { panic!("policy-handle") })
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("policy-handle"));
    // Still alive, still serving.
    assert_eq!(pool.try_submit(|| 4).unwrap().join().unwrap(), 4);
}

/// The body of the child process: a detached panic under `Abort` must end the process.
#[test]
fn abort_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful in the child that `abort_kills_the_process` starts
    }
    let rt = Runtime::builder()
        .pool("fragile", |p| p.panic_policy(PanicPolicy::Abort))
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    rt.pool("fragile")
        .unwrap()
        .execute(move || {
            let _keep = tx;
            panic!("policy-abort");
        })
        .unwrap();
    // The process should die before this wait ends; if it does not, the parent sees a
    // normal exit and fails.
    let _ = rx.recv_timeout(HANG_GUARD);
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn abort_kills_the_process() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "abort_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child exited normally: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc_sigabrt()),
            "{:?}\n{stderr}",
            out.status
        );
    }
    assert!(stderr.contains("policy-abort"), "{stderr}");
    assert!(stderr.contains("\"fragile\""), "{stderr}");
    assert!(stderr.contains("panic policy is Abort"), "{stderr}");
}

#[cfg(unix)]
fn libc_sigabrt() -> i32 {
    6 // SIGABRT on every Unix this crate targets
}

#[cfg(feature = "config")]
#[test]
fn the_policy_can_be_set_from_a_file() {
    let text = r#"
[pools.count]
panic_policy = "count"

[pools.abort]
panic_policy = "abort"
"#;
    let rt = bulkhead::RuntimeBuilder::from_toml_str("policy.toml", text)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(rt.pools().len(), 2);

    let err = bulkhead::RuntimeBuilder::from_toml_str(
        "bad.toml",
        "[pools.p]\npanic_policy = \"handler\"\n\n[pools.q]\npanic_policy = 3\n",
    )
    .unwrap_err();
    let issues = err.issues();
    assert_eq!(issues.len(), 2, "{err}");
    assert_eq!(issues[0].line, Some(2));
    assert!(issues[0].message.contains("in code"), "{err}");
    assert_eq!(issues[1].pool.as_deref(), Some("q"));
    assert_eq!(issues[1].line, Some(5));
}
