//! Export: the Prometheus text exposition passes a real parser (Python's
//! `prometheus_client`), and (with the `serde` feature) the JSON snapshot round-trips.
//!
//! The parser is installed by `.ci/setup`. Under CI (env `CI` set) a missing parser fails
//! the test; elsewhere the test says loudly that it was skipped.

mod support;

use std::process::Command;
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

const PARSER: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{family.type} {s.name} {{{labels}}} {float(s.value)!r}")
"#;

#[test]
fn prometheus_exposition_passes_the_python_parser() {
    let rt = busy_runtime();
    let text = rt.snapshot().to_prometheus();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bulkhead_metrics.prom");
    std::fs::write(&path, &text).unwrap();

    let has_parser = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_parser {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with prometheus_client is required under CI (bash .ci/setup installs it)"
        );
        eprintln!(
            "\n!!! SKIPPED prometheus_exposition_passes_the_python_parser: python3 -m pip \
             install prometheus_client to run it (CI requires it)\n"
        );
        return;
    }
    let out = Command::new("python3")
        .args(["-c", PARSER])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the parser rejected the exposition:\n{stderr}\n--- exposition ---\n{text}"
    );
    let parsed = String::from_utf8(out.stdout).unwrap();
    let has = |line: &str| {
        assert!(
            parsed.lines().any(|l| l == line),
            "missing {line:?} in parsed output:\n{parsed}"
        )
    };
    has("counter bulkhead_tasks_total {outcome=completed,pool=api} 5.0");
    has("counter bulkhead_tasks_total {outcome=panicked,pool=api} 1.0");
    has("counter bulkhead_tasks_submitted_total {pool=api} 6.0");
    has(r#"counter bulkhead_tasks_refused_total {pool=we"ird\pool,reason=full} 1.0"#);
    has(r#"counter bulkhead_tasks_total {outcome=completed,pool=we"ird\pool} 2.0"#);
    has("gauge bulkhead_queue_capacity {pool=api} 4.0");
    has("gauge bulkhead_queue_depth {pool=api} 0.0");
    has("gauge bulkhead_threads {pool=api} 2.0");
    has("gauge bulkhead_health {pool=api,state=healthy} 1.0");
    has("summary bulkhead_run_seconds_count {pool=api} 6.0");
    has("summary bulkhead_end_to_end_seconds_count {pool=api} 6.0");
    has(r#"summary bulkhead_queue_wait_seconds_count {pool=we"ird\pool} 2.0"#);
    for q in ["0.5", "0.9", "0.99", "0.999"] {
        assert!(
            parsed.lines().any(|l| l.starts_with(&format!(
                "summary bulkhead_queue_wait_seconds {{pool=api,quantile={q}}} "
            ))),
            "quantile {q} missing:\n{parsed}"
        );
    }
    // Every family has HELP and TYPE, and each family appears once.
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(types, helps);
    let mut names: Vec<_> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), types);
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
