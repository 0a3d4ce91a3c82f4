//! Configuration from a TOML file: every error at once, with pool, key and line.
#![cfg(feature = "config")]

use std::time::Duration;

use bulkhead::RuntimeBuilder;

#[test]
fn a_good_file_builds_the_runtime_in_file_order() {
    let text = r#"
[runtime]
drop_timeout = "2s"

[pools.zeta]
threads = 2
queue_capacity = 16
max_queue_wait = "150ms"
thread_name = "z"

[pools.alpha]
threads = 1
cpus = "0"
placement = "pin-each"
sched_policy = "batch"
nice = 5
"#;
    let rt = RuntimeBuilder::from_toml_str("good.toml", text)
        .unwrap()
        .build()
        .unwrap();
    let names: Vec<_> = rt.pools().iter().map(|p| p.name().to_owned()).collect();
    assert_eq!(names, ["zeta", "alpha"]);
    let zeta = rt.pool("zeta").unwrap();
    assert_eq!(zeta.threads(), 2);
    assert_eq!(zeta.queue_capacity(), 16);
    assert_eq!(zeta.max_queue_wait(), Some(Duration::from_millis(150)));
    assert_eq!(zeta.workers()[1].thread_name, "z-1");
    let alpha = rt.pool("alpha").unwrap();
    assert_eq!(alpha.cpus().unwrap().to_string(), "0");
    assert_eq!(alpha.workers()[0].nice, Some(5));
}

#[test]
fn every_error_is_reported_at_once_with_pool_key_and_line() {
    let text = r#"[pools.api]
threads = 0
queue_capacity = "lots"
color = "blue"

[pools.batch]
stack_size = 0
max_queue_wait = "10 parsecs"
cpus = "0-"
placement = "everywhere"

[telemetry]
on = true
"#;
    let err = RuntimeBuilder::from_toml_str("bad.toml", text).unwrap_err();
    let got: Vec<_> = err
        .issues()
        .iter()
        .map(|i| (i.line, i.pool.as_deref(), i.key.as_deref()))
        .collect();
    let expected = [
        (Some(2), Some("api"), Some("threads")),
        (Some(3), Some("api"), Some("queue_capacity")),
        (Some(4), Some("api"), Some("color")),
        (Some(7), Some("batch"), Some("stack_size")),
        (Some(8), Some("batch"), Some("max_queue_wait")),
        (Some(9), Some("batch"), Some("cpus")),
        (Some(10), Some("batch"), Some("placement")),
        (Some(12), None, Some("telemetry")),
    ];
    for e in expected {
        assert!(got.contains(&e), "missing {e:?} in:\n{err}");
    }
    assert_eq!(got.len(), expected.len(), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("bad.toml: 8 configuration errors"), "{msg}");
    assert!(
        msg.contains("line 4: pool \"api\": color: unknown key \"color\""),
        "{msg}"
    );
    assert!(msg.contains("\"10 parsecs\""), "{msg}");
    assert!(msg.contains("got 0"), "{msg}");
}

#[test]
fn syntax_errors_carry_their_line() {
    let err =
        RuntimeBuilder::from_toml_str("broken.toml", "[pools.api]\nthreads = = 2\n").unwrap_err();
    assert!(err.issues().iter().any(|i| i.line == Some(2)), "{err}");
}

#[test]
fn environment_overrides() {
    let b = RuntimeBuilder::from_toml_str("f", "[pools.api-v2]\nthreads = 1\n").unwrap();
    let vars = [
        ("HOME".to_owned(), "/root".to_owned()),
        ("BULKHEAD_API_V2_THREADS".to_owned(), "3".to_owned()),
        ("BULKHEAD_API_V2_QUEUE_CAPACITY".to_owned(), "9".to_owned()),
    ];
    let rt = b.env_overrides(vars).unwrap().build().unwrap();
    let api = rt.pool("api-v2").unwrap();
    assert_eq!((api.threads(), api.queue_capacity()), (3, 9));

    let b = RuntimeBuilder::from_toml_str("f", "[pools.api]\n").unwrap();
    let err = b
        .env_overrides([
            ("BULKHEAD_API_THREADS".to_owned(), "many".to_owned()),
            ("BULKHEAD_WEB_THREADS".to_owned(), "2".to_owned()),
            ("BULKHEAD_API_COLOUR".to_owned(), "red".to_owned()),
        ])
        .unwrap_err();
    assert_eq!(err.issues().len(), 3, "{err}");
    assert!(err.to_string().contains("BULKHEAD_WEB_THREADS"), "{err}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let err = RuntimeBuilder::from_toml_file("/nonexistent/bulkhead.toml").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/bulkhead.toml"),
        "{err}"
    );
}

#[test]
fn overload_settings_come_from_the_file() {
    let text = r#"
[pools.downstream]
elastic = [1, 4]
keep_alive = "2s"
replacement_budget = 2
stuck_after = "10s"
codel = ["5ms", "100ms"]
max_threads_limit = 8
queue_capacity = 16
queue_capacity_limit = 64
"#;
    let rt = RuntimeBuilder::from_toml_str("overload.toml", text)
        .unwrap()
        .build()
        .unwrap();
    let p = rt.pool("downstream").unwrap();
    assert_eq!(p.thread_range(), (1, 4));
    assert_eq!(p.replacement_budget(), 2);
    assert_eq!(
        p.codel(),
        Some((Duration::from_millis(5), Duration::from_millis(100)))
    );
    p.set_queue_capacity(64).unwrap();
    p.set_thread_range(2, 8).unwrap();
    assert_eq!(p.threads(), 2);

    let bad = r#"
[pools.p]
elastic = [4]
codel = ["5ms", 100]
replacement_budget = -1
"#;
    let err = RuntimeBuilder::from_toml_str("bad.toml", bad).unwrap_err();
    let text = err.to_string();
    for key in ["elastic", "codel", "replacement_budget"] {
        assert!(text.contains(key), "{key}: {text}");
    }
}
