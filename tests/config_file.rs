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

/// `env_overrides` takes `vars_os()` pairs: unrelated variables whose name or value is not
/// UTF-8 are skipped, and the BULKHEAD_ ones still apply.
#[cfg(unix)]
#[test]
fn environment_overrides_skip_unrelated_non_utf8_variables() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    let b = RuntimeBuilder::from_toml_str("f", "[pools.api]\nthreads = 1\n").unwrap();
    let vars = [
        (
            OsString::from_vec(b"LANG\xff".to_vec()),
            OsString::from("C"),
        ),
        (
            OsString::from("PS1"),
            OsString::from_vec(b"\xfe$ ".to_vec()),
        ),
        (OsString::from("BULKHEAD_API_THREADS"), OsString::from("2")),
    ];
    let rt = b.env_overrides(vars).unwrap().build().unwrap();
    assert_eq!(rt.pool("api").unwrap().threads(), 2);
}

/// A BULKHEAD_ variable whose name or value is not UTF-8 is an error naming it.
#[cfg(unix)]
#[test]
fn non_utf8_bulkhead_variables_are_errors_naming_them() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    let b = RuntimeBuilder::from_toml_str("f", "[pools.api]\n").unwrap();
    let err = b
        .env_overrides([
            (
                OsString::from_vec(b"BULKHEAD_API\xff_THREADS".to_vec()),
                OsString::from("2"),
            ),
            (
                OsString::from("BULKHEAD_API_QUEUE_CAPACITY"),
                OsString::from_vec(b"1\xff".to_vec()),
            ),
        ])
        .unwrap_err();
    assert_eq!(err.issues().len(), 2, "{err}");
    let text = err.to_string();
    assert!(text.contains("BULKHEAD_API\\xFF_THREADS"), "{text}");
    assert!(text.contains("BULKHEAD_API_QUEUE_CAPACITY"), "{text}");
    assert!(text.contains("not valid UTF-8"), "{text}");
}

/// The README's way, `env_overrides(std::env::vars_os())`, in a process whose environment
/// holds variables that are not UTF-8 (`std::env::vars()` panics there). Runs in a child
/// process with a cleared environment, so this test binary's own is neither read nor changed.
#[cfg(unix)]
#[test]
fn the_process_environment_is_read_safely() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    const CHILD: &str = "CONFIG_FILE_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let rt = RuntimeBuilder::from_toml_str("f", "[pools.api]\n")
            .unwrap()
            .env_overrides(std::env::vars_os())
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(rt.pool("api").unwrap().threads(), 2);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "the_process_environment_is_read_safely"])
        .env_clear()
        .env(CHILD, "1")
        .env("BULKHEAD_API_THREADS", "2")
        .env(OsStr::from_bytes(b"UNRELATED\xff"), "x")
        .env("ALSO_UNRELATED", OsStr::from_bytes(b"\xff"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}

/// Pools whose variables could be confused are an error naming both, whatever the
/// environment holds, in either registration order; never a silent first match.
#[test]
fn colliding_environment_names_are_an_error_naming_both_pools() {
    let none: [(String, String); 0] = [];
    for (a, b) in [
        ("a-b", "a_b"),
        ("a", "a_b"),
        ("a_b", "a"),
        ("api.v2", "api"),
    ] {
        let text = format!("[pools.\"{a}\"]\n[pools.\"{b}\"]\n");
        let builder = RuntimeBuilder::from_toml_str("f", &text).unwrap();
        let err = builder.clone().env_overrides(none.clone()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{a:?}")) && msg.contains(&format!("{b:?}")),
            "{a} {b}: {msg}"
        );
        assert_eq!(err.issues().len(), 1, "{msg}");
        // The variable that used to go to whichever pool came first is refused too.
        let var = [("BULKHEAD_A_B_THREADS".to_owned(), "3".to_owned())];
        assert!(builder.env_overrides(var).is_err());
    }
    // Names that only share a beginning do not collide.
    let builder = RuntimeBuilder::from_toml_str("f", "[pools.a]\n[pools.ab]\n").unwrap();
    let rt = builder
        .env_overrides([("BULKHEAD_AB_THREADS", "2")])
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(rt.pool("ab").unwrap().threads(), 2);
}

/// Every key of the settings table can be overridden from the environment, in its text
/// syntax; runtime keys are `BULKHEAD_<KEY>`; the `[runtime]` table takes every runtime key.
#[test]
fn every_key_has_an_environment_override() {
    let b = RuntimeBuilder::from_toml_str(
        "f",
        "[runtime]\nmetrics = false\nsupervisor_interval = \"50ms\"\n[pools.api]\nthreads = 1\n",
    )
    .unwrap();
    let rt = b
        .env_overrides([
            ("BULKHEAD_API_ELASTIC", "1,3"),
            ("BULKHEAD_API_CODEL", "5ms,100ms"),
            ("BULKHEAD_API_REPLACEMENT_BUDGET", "2"),
            ("BULKHEAD_API_PANIC_POLICY", "count"),
            ("BULKHEAD_DROP_TIMEOUT", "1s"),
        ])
        .unwrap()
        .build()
        .unwrap();
    let api = rt.pool("api").unwrap();
    assert_eq!(api.thread_range(), (1, 3));
    assert_eq!(api.replacement_budget(), 2);
    assert_eq!(
        api.codel(),
        Some((Duration::from_millis(5), Duration::from_millis(100)))
    );
    assert!(rt.snapshot().pool("api").unwrap().latency.is_none());

    let b = RuntimeBuilder::from_toml_str("f", "[pools.api]\n").unwrap();
    let err = b
        .env_overrides([
            ("BULKHEAD_API_ELASTIC", "1-3"),
            ("BULKHEAD_METRICS", "maybe"),
        ])
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.issues().len(), 2, "{text}");
    assert!(
        text.contains("BULKHEAD_API_ELASTIC") && text.contains("\"1-3\""),
        "{text}"
    );
    assert!(
        text.contains("BULKHEAD_METRICS") && text.contains("\"maybe\""),
        "{text}"
    );
}

/// `[defaults]` (wherever it stands in the file) is what every pool starts from; a pool's own
/// keys override it, and the environment overrides both.
#[test]
fn pools_inherit_the_defaults_table_and_override_it() {
    let text = r#"
[pools.api]
threads = 2

[defaults]
queue_capacity = 7
max_queue_wait = "150ms"
threads = 3

[pools.batch]
queue_capacity = 1
"#;
    let rt = RuntimeBuilder::from_toml_str("defaults.toml", text)
        .unwrap()
        .env_overrides([("BULKHEAD_BATCH_THREADS", "1")])
        .unwrap()
        .build()
        .unwrap();
    let api = rt.pool("api").unwrap();
    assert_eq!((api.threads(), api.queue_capacity()), (2, 7));
    let batch = rt.pool("batch").unwrap();
    assert_eq!((batch.threads(), batch.queue_capacity()), (1, 1));
    let names: Vec<_> = rt.pools().iter().map(|p| p.name().to_owned()).collect();
    assert_eq!(names, ["api", "batch"]);
}

/// A bad default is reported once, on its own line; a default `build()` refuses is reported
/// for each pool that inherited it, on the default's line.
#[test]
fn errors_in_defaults_carry_their_line() {
    let text = "[defaults]\ncolour = \"red\"\nthreads = 0\n\n[pools.a]\nqueue_capacity = 1\n\n[pools.b]\nthreads = 2\n";
    let err = RuntimeBuilder::from_toml_str("bad.toml", text).unwrap_err();
    let issues: Vec<String> = err.issues().iter().map(|i| i.to_string()).collect();
    assert_eq!(issues.len(), 2, "{err}");
    assert!(
        issues[0].starts_with("line 2: colour: unknown key"),
        "{err}"
    );
    assert!(
        issues[1].starts_with("line 3: pool \"a\": threads: must be between 1"),
        "{err}"
    );
}

/// `[runtime]` takes every runtime setting, including the latency buckets.
#[test]
fn the_runtime_table_takes_latency_buckets() {
    let text = "[runtime]\nlatency_buckets = [\"1ms\", \"1s\"]\n\n[pools.a]\n";
    let rt = RuntimeBuilder::from_toml_str("buckets.toml", text)
        .unwrap()
        .build()
        .unwrap();
    rt.pool("a")
        .unwrap()
        .try_submit(|| ())
        .unwrap()
        .join()
        .unwrap();
    let snap = rt.snapshot();
    let run = &snap
        .pool("a")
        .unwrap()
        .latency
        .as_ref()
        .unwrap()
        .buckets
        .run;
    let bounds: Vec<Duration> = run.buckets.iter().map(|(b, _)| *b).collect();
    assert_eq!(bounds, [Duration::from_millis(1), Duration::from_secs(1)]);
    let err = RuntimeBuilder::from_toml_str(
        "b.toml",
        "[runtime]\nlatency_buckets = [\"1s\", \"1ms\"]\n[pools.a]\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("line 2: latency_buckets: bounds must increase"),
        "{err}"
    );
}

#[test]
fn key_settings_come_from_the_file() {
    let text = r#"
[defaults]
key_metrics = 5

[pools.api]
key_cap = 3
key_order = "fifo"
key_weights = ["gold=4", "silver = 2"]

[pools.batch]
key_weights = "gold=2,bronze=1"
"#;
    let rt = RuntimeBuilder::from_toml_str("keys.toml", text)
        .unwrap()
        .build()
        .unwrap();
    let api = rt.pool("api").unwrap();
    assert_eq!(api.key_cap(), Some(3));
    assert_eq!(api.key_order(), bulkhead::KeyOrder::Fifo);
    assert_eq!(api.key("gold").weight(), 4);
    assert_eq!(api.key("silver").weight(), 2);
    assert_eq!(api.key("anyone").weight(), 1);
    let batch = rt.pool("batch").unwrap();
    assert_eq!(batch.key_cap(), None);
    assert_eq!(batch.key_order(), bulkhead::KeyOrder::Fair);
    assert_eq!(batch.key("gold").weight(), 2);

    let bad = r#"
[pools.p]
key_cap = 0
key_order = "random"
key_weights = ["gold"]
key_metrics = 5000
"#;
    let err = RuntimeBuilder::from_toml_str("bad.toml", bad).unwrap_err();
    let text = err.to_string();
    for key in ["key_order", "key_weights", "\"random\"", "\"gold\""] {
        assert!(text.contains(key), "{key}: {text}");
    }
    // Range rules too, each with its key and line, all at once.
    let bad_range = "[pools.p]\nkey_cap = 0\nkey_metrics = 5000\nkey_weights = \"t7=0\"\n";
    let err = RuntimeBuilder::from_toml_str("range.toml", bad_range).unwrap_err();
    let found: Vec<(Option<&str>, Option<usize>)> = err
        .issues()
        .iter()
        .map(|i| (i.key.as_deref(), i.line))
        .collect();
    assert_eq!(
        found,
        [
            (Some("key_cap"), Some(2)),
            (Some("key_metrics"), Some(3)),
            (Some("key_weights"), Some(4))
        ]
    );
    assert!(err.to_string().contains("\"t7\""), "{err}");
}
