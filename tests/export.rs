//! Export: the Prometheus text exposition passes a strict parser (tests/support/prometheus.rs,
//! always) and `promtool check metrics` (where installed: `.ci/setup` installs it, and
//! under CI, env `CI` set, a missing promtool fails the test); latency histograms have the
//! configured buckets; unmeasured CPU time is absent; and (with the `serde` feature) the
//! JSON snapshot round-trips.

mod support;

use std::time::Duration;

use bulkhead::Runtime;
use support::{block_worker, wait_until};

/// A runtime with activity of every kind: completions, a panic, refusals, a queued task.
fn busy_runtime() -> Runtime {
    let rt = Runtime::builder()
        .supervisor_interval(Duration::from_millis(10))
        .pool("api", |p| p.threads(2).queue_capacity(4))
        // Quotes and backslashes in a pool name must be escaped in label values.
        .pool(r#"we"ird\pool"#, |p| p.threads(1).queue_capacity(1))
        .build()
        .unwrap();
    let api = rt.pool("api").unwrap();
    for _ in 0..5 {
        api.try_submit(|| ()).unwrap().join().unwrap();
    }
    assert!(api.try_submit(|| panic!("x")).unwrap().join().is_err());
    wait_until("api counted", || api.stats().finished() == 6);
    let weird = rt.pool(r#"we"ird\pool"#).unwrap();
    let release = block_worker(&weird);
    weird.execute(|| ()).unwrap();
    assert!(weird.execute(|| ()).is_err());
    release.send(()).unwrap();
    wait_until("weird counted", || weird.stats().finished() == 2);
    rt
}

/// The exposition as the strict parser reads it: `(type, sample name, sorted labels, value)`.
fn parsed(text: &str) -> Vec<String> {
    let families = support::prometheus::parse(text)
        .unwrap_or_else(|e| panic!("the parser rejected the exposition: {e}\n{text}"));
    let mut out = Vec::new();
    for f in families {
        for s in f.samples {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(format!(
                "{} {} {{{}}} {}",
                f.kind,
                s.name,
                labels.join(","),
                s.value
            ));
        }
    }
    out
}

#[test]
fn the_test_parser_refuses_malformed_expositions() {
    support::prometheus::self_test();
}

#[test]
fn prometheus_exposition_passes_a_strict_parser() {
    let rt = busy_runtime();
    let text = rt.snapshot().to_prometheus();
    let parsed = parsed(&text);
    let has = |line: &str| {
        assert!(
            parsed.iter().any(|l| l == line),
            "missing {line:?} in parsed output:\n{}",
            parsed.join("\n")
        )
    };
    has("counter bulkhead_tasks_total {outcome=completed,pool=api} 5");
    has("counter bulkhead_tasks_total {outcome=panicked,pool=api} 1");
    has("counter bulkhead_tasks_submitted_total {pool=api} 6");
    has(r#"counter bulkhead_tasks_refused_total {pool=we"ird\pool,reason=full} 1"#);
    has(r#"counter bulkhead_tasks_total {outcome=completed,pool=we"ird\pool} 2"#);
    has("gauge bulkhead_queue_capacity {pool=api} 4");
    has("gauge bulkhead_queue_depth {pool=api} 0");
    has("gauge bulkhead_threads {pool=api} 2");
    has("gauge bulkhead_health {pool=api,state=healthy} 1");
    // Histograms: every latency has cumulative buckets ending in +Inf == _count (the parser
    // checks that), with the default bounds.
    has("histogram bulkhead_run_seconds_count {pool=api} 6");
    has("histogram bulkhead_run_seconds_bucket {le=+Inf,pool=api} 6");
    has("histogram bulkhead_end_to_end_seconds_count {pool=api} 6");
    has(r#"histogram bulkhead_queue_wait_seconds_count {pool=we"ird\pool} 2"#);
    let bounds = bulkhead::limits::DEFAULT_LATENCY_BUCKETS.len() + 1;
    let buckets = parsed
        .iter()
        .filter(|l| {
            l.starts_with("histogram bulkhead_queue_wait_seconds_bucket ")
                && l.contains("pool=api}")
        })
        .count();
    assert_eq!(buckets, bounds);
    assert!(parsed
        .iter()
        .any(|l| l.starts_with("histogram bulkhead_run_seconds_sum {pool=api} ")));
    assert!(!text.contains("quantile"), "no summaries any more");
    // Every family has HELP and TYPE, and each family appears once (the parser checks the
    // latter).
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(types, helps);
}

#[test]
fn configured_buckets_and_sums_are_exported() {
    let ms = Duration::from_millis;
    let rt = Runtime::builder()
        .latency_buckets([ms(5), ms(50), ms(500)])
        .pool("p", |p| p.threads(1))
        .build()
        .unwrap();
    let p = rt.pool("p").unwrap();
    for _ in 0..3 {
        p.try_submit(|| ()).unwrap().join().unwrap();
    }
    // A run of at least 20 ms: above the first bound, whatever the machine's speed.
    p.try_submit(move || std::thread::sleep(ms(20)))
        .unwrap()
        .join()
        .unwrap();
    let snap = rt.snapshot();
    let run = &snap
        .pool("p")
        .unwrap()
        .latency
        .as_ref()
        .unwrap()
        .buckets
        .run;
    assert_eq!(run.count, 4);
    assert_eq!(run.buckets.len(), 3);
    assert!(run.buckets[0].1 <= 3, "{run:?}");
    assert!(run.sum >= ms(20), "{run:?}");
    let text = snap.to_prometheus();
    let parsed = parsed(&text);
    for le in ["0.005", "0.05", "0.5", "+Inf"] {
        let prefix = format!("histogram bulkhead_run_seconds_bucket {{le={le},pool=p}} ");
        assert!(
            parsed.iter().any(|l| l.starts_with(&prefix)),
            "{le}:\n{text}"
        );
    }
    let sum: f64 = parsed
        .iter()
        .find_map(|l| l.strip_prefix("histogram bulkhead_run_seconds_sum {pool=p} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (sum - run.sum.as_secs_f64()).abs() < 1e-9,
        "{sum} vs {:?}",
        run.sum
    );
}

#[test]
fn bad_bucket_bounds_are_a_build_error_naming_the_setting() {
    let ms = Duration::from_millis;
    let err = Runtime::builder()
        .latency_buckets([ms(50), ms(5)])
        .pool("p", |p| p)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "latency_buckets");
    assert!(err.to_string().contains("increase"), "{err}");
}

#[test]
fn unmeasured_cpu_time_is_absent_not_zero() {
    let rt = busy_runtime();
    let mut snap = rt.snapshot();
    #[cfg(target_os = "linux")]
    assert!(snap.pools[0].cpu_time.is_some(), "measured on Linux");
    // As a target without /proc would report it.
    for p in &mut snap.pools {
        p.cpu_time = None;
    }
    let text = snap.to_prometheus();
    assert!(!text.contains("bulkhead_cpu_seconds_total{"), "{text}");
    assert!(support::prometheus::parse(&text).is_ok());
}

/// promtool (Debian's `prometheus` package, installed by .ci/setup) lints the exposition:
/// under CI a missing promtool fails, elsewhere the test says loudly it was skipped.
#[test]
fn prometheus_exposition_passes_promtool() {
    let text = busy_runtime().snapshot().to_prometheus();
    support::prometheus::promtool_check("prometheus_exposition_passes_promtool", &text);
}

#[cfg(feature = "serde")]
#[test]
fn json_snapshot_round_trips_through_serde() {
    let rt = busy_runtime();
    let snap = rt.snapshot();
    let json = snap.to_json();
    let back = bulkhead::RuntimeSnapshot::from_json(&json).unwrap();
    assert_eq!(back, snap);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["pools"][0]["stats"]["name"], "api");
    assert_eq!(value["pools"][0]["stats"]["completed"], 5);
    assert_eq!(value["pools"][0]["health"], "healthy");
    assert_eq!(
        value["pools"][0]["latency"]["cumulative"]["run"]["count"],
        6
    );
}
