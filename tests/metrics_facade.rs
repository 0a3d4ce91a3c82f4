//! The `metrics` feature: at every supervisor tick the figures reach whatever recorder the
//! application installed through the `metrics` facade, with the Prometheus names and a
//! `pool` label: counters as absolute values, gauges, and every task's latencies in
//! histograms. A recorder is process-wide, so this is its own test binary with one test.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bulkhead::Runtime;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use support::HANG_GUARD;

/// `name{sorted labels}` of a facade key, as the assertions spell it.
fn series(key: &metrics::Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

#[test]
fn counters_gauges_and_histograms_reach_the_installed_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this process");

    let rt = Runtime::builder()
        .supervisor_interval(Duration::from_millis(10))
        .pool("api", |p| p.threads(2).queue_capacity(4))
        .pool("bätch", |p| p.threads(1))
        .build()
        .unwrap();
    let api = rt.pool("api").unwrap();
    for _ in 0..5 {
        api.try_submit(|| ()).unwrap().join().unwrap();
    }
    assert!(api.try_submit(|| panic!("x")).unwrap().join().is_err());

    // Histograms are drained by each snapshot of the debugging recorder: add them up.
    let mut counters: HashMap<String, u64> = HashMap::new();
    let mut gauges: HashMap<String, f64> = HashMap::new();
    let mut recorded: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let name = series(key.key());
            match (key.kind(), value) {
                (MetricKind::Counter, DebugValue::Counter(v)) => {
                    counters.insert(name, v);
                }
                (MetricKind::Gauge, DebugValue::Gauge(v)) => {
                    gauges.insert(name, v.into_inner());
                }
                (MetricKind::Histogram, DebugValue::Histogram(values)) => {
                    *recorded.entry(name).or_default() += values.len();
                }
                _ => {}
            }
        }
        let run = recorded.get("bulkhead_run_seconds{pool=api}").copied();
        let completed = counters
            .get("bulkhead_tasks_total{outcome=completed,pool=api}")
            .copied();
        if run == Some(6) && completed == Some(5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the facade never showed 6 run latencies and 5 completions: {recorded:?} {counters:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        counters["bulkhead_tasks_total{outcome=panicked,pool=api}"],
        1
    );
    assert_eq!(counters["bulkhead_tasks_submitted_total{pool=api}"], 6);
    assert_eq!(
        counters["bulkhead_tasks_refused_total{pool=api,reason=full}"],
        0
    );
    assert_eq!(gauges["bulkhead_threads{pool=api}"], 2.0);
    assert_eq!(gauges["bulkhead_queue_capacity{pool=api}"], 4.0);
    assert_eq!(gauges["bulkhead_threads{pool=bätch}"], 1.0);
    assert_eq!(gauges["bulkhead_health{pool=api,state=healthy}"], 1.0);
    assert!(gauges.contains_key("bulkhead_workers{pool=api,state=idle}"));
    assert!(recorded.contains_key("bulkhead_queue_wait_seconds{pool=api}"));
    assert!(recorded.contains_key("bulkhead_end_to_end_seconds{pool=api}"));
    #[cfg(target_os = "linux")]
    assert!(gauges.contains_key("bulkhead_cpu_seconds_total{pool=api}"));
    // Nothing ran on "bätch": no latency recorded there.
    assert_eq!(
        recorded
            .get("bulkhead_run_seconds{pool=bätch}")
            .copied()
            .unwrap_or(0),
        0
    );
}
