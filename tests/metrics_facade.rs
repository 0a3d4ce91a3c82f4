//! The `metrics` feature: at every supervisor tick the figures reach whatever recorder the
//! application installed through the `metrics` facade, with the Prometheus names and a
//! `pool` label: counters as absolute values, gauges, and every task's latencies in
//! histograms; and the keyed families, bounded by `key_metrics`. A recorder is
//! process-wide, so this is its own test binary with one test.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead::Runtime;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use support::{occupy_all, HANG_GUARD};

/// `name{sorted labels}` of a facade key, as the assertions spell it.
fn series(key: &metrics::Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

/// A recorder that keeps what it was last given: counters and gauges hold their value
/// until set again (unlike `metrics-util`'s debugging recorder, whose snapshots reset them
/// to 0, so that a gauge set to 0 and a gauge no longer set look alike), histograms keep
/// every value.
#[derive(Clone)]
struct LastValues(Arc<Registry<Key, AtomicStorage>>);

impl LastValues {
    /// Every counter and gauge, by series.
    fn values(&self) -> HashMap<String, f64> {
        let mut out = HashMap::new();
        for (k, c) in self.0.get_counter_handles() {
            out.insert(series(&k), c.load(Ordering::SeqCst) as f64);
        }
        for (k, g) in self.0.get_gauge_handles() {
            out.insert(series(&k), f64::from_bits(g.load(Ordering::SeqCst)));
        }
        out
    }

    /// How many values each histogram has received.
    fn recorded(&self) -> HashMap<String, usize> {
        self.0
            .get_histogram_handles()
            .into_iter()
            .map(|(k, h)| (series(&k), h.data().len()))
            .collect()
    }

    /// Waits (bounded by the hang guard) until `done` holds of the values.
    fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&HashMap<String, f64>) -> bool,
    ) -> HashMap<String, f64> {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let values = self.values();
            if done(&values) {
                return values;
            }
            assert!(Instant::now() < deadline, "never saw {what}: {values:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Recorder for LastValues {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.get_or_create_counter(key, Arc::clone))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.get_or_create_gauge(key, Arc::clone))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.0.get_or_create_histogram(key, Arc::clone))
    }
}

#[test]
fn counters_gauges_and_histograms_reach_the_installed_recorder() {
    let recorder = LastValues(Arc::new(Registry::atomic()));
    metrics::set_global_recorder(recorder.clone())
        .unwrap_or_else(|_| panic!("the only recorder of this process"));

    let rt = Runtime::builder()
        .supervisor_interval(Duration::from_millis(10))
        .pool("api", |p| p.threads(2).queue_capacity(4))
        .pool("bätch", |p| p.threads(1))
        .pool("keyed", |p| {
            p.threads(1).queue_capacity(16).key_cap(3).key_metrics(1)
        })
        .build()
        .unwrap();
    let api = rt.pool("api").unwrap();
    for _ in 0..5 {
        api.try_submit(|| ()).unwrap().join().unwrap();
    }
    assert!(api.try_submit(|| panic!("x")).unwrap().join().is_err());

    let values = recorder.wait_for("6 run latencies and 5 completions", |v| {
        recorder.recorded().get("bulkhead_run_seconds{pool=api}") == Some(&6)
            && v.get("bulkhead_tasks_total{outcome=completed,pool=api}") == Some(&5.0)
    });
    let recorded = recorder.recorded();
    let counters = &values;
    let gauges = &values;
    assert_eq!(
        counters["bulkhead_tasks_total{outcome=panicked,pool=api}"],
        1.0
    );
    assert_eq!(counters["bulkhead_tasks_submitted_total{pool=api}"], 6.0);
    assert_eq!(
        counters["bulkhead_tasks_refused_total{pool=api,reason=full}"],
        0.0
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
    // The refusal reasons, zeros included.
    for reason in ["full", "timeout", "shutting_down", "deadline", "key_cap"] {
        assert_eq!(
            counters[&format!("bulkhead_tasks_refused_total{{pool=api,reason={reason}}}")],
            0.0
        );
    }
    // No keyed submission yet anywhere: no keyed series.
    assert!(
        counters
            .keys()
            .chain(gauges.keys())
            .all(|k| !k.starts_with("bulkhead_key")),
        "{counters:?} {gauges:?}"
    );
    // Nothing ran on "bätch": no latency recorded there.
    assert_eq!(
        recorded
            .get("bulkhead_run_seconds{pool=bätch}")
            .copied()
            .unwrap_or(0),
        0
    );

    keyed_series(&rt, &recorder);
}

/// The keyed families through the facade, bounded by `key_metrics` (1 here): key "a"
/// named, then the odd key `"}\n` heavier in its place, whose gauges the facade sets to 0
/// once. Every task waits behind the held worker, so each step is deterministic.
fn keyed_series(rt: &Runtime, recorder: &LastValues) {
    const ODD: &str = "\"}\n";
    let keyed = rt.pool("keyed").unwrap();
    let mut gate = occupy_all(&keyed);
    for _ in 0..2 {
        keyed.key("a").execute(|| ()).unwrap();
    }
    let wait_for =
        |what: &str, done: &dyn Fn(&HashMap<String, f64>) -> bool| recorder.wait_for(what, done);
    let v = wait_for("key a in flight", &|v| {
        v.get("bulkhead_key_in_flight{key=a,pool=keyed}") == Some(&2.0)
    });
    assert_eq!(v["bulkhead_key_accepted_total{key=a,pool=keyed}"], 2.0);
    assert_eq!(v["bulkhead_keyed_queued{pool=keyed}"], 2.0);
    assert_eq!(
        v["bulkhead_key_tasks_total{key=a,outcome=completed,pool=keyed}"],
        0.0
    );

    // The odd key: 4 tries, 3 accepted, 1 refused at the cap; it now outweighs "a".
    for i in 0..4 {
        let r = keyed.key(ODD).execute(|| ());
        assert_eq!(r.is_err(), i == 3, "{i}");
    }
    let odd = |name: &str| format!("{name}{{key={ODD},pool=keyed}}");
    let v = wait_for("the odd key named and a's gauges zeroed", &|v| {
        v.get(&odd("bulkhead_key_in_flight")) == Some(&3.0)
            && v.get("bulkhead_key_in_flight{key=a,pool=keyed}") == Some(&0.0)
    });
    assert_eq!(v["bulkhead_key_queued{key=a,pool=keyed}"], 0.0);
    assert_eq!(v[&odd("bulkhead_key_accepted_total")], 3.0);
    assert_eq!(
        v[&format!("bulkhead_key_refused_total{{key={ODD},pool=keyed,reason=key_cap}}")],
        1.0
    );
    assert_eq!(
        v["bulkhead_tasks_refused_total{pool=keyed,reason=key_cap}"],
        1.0
    );
    assert_eq!(v["bulkhead_keyed_in_flight{pool=keyed}"], 5.0);
    assert_eq!(v["bulkhead_keyed_accepted_total{pool=keyed}"], 5.0);
    assert_eq!(
        v["bulkhead_keyed_refused_total{pool=keyed,reason=key_cap}"],
        1.0
    );
    // "a" is named no longer: its counters stay as last published (the facade cannot
    // remove a series), and are no longer updated.
    assert_eq!(v["bulkhead_key_accepted_total{key=a,pool=keyed}"], 2.0);

    gate.open();
    let v = wait_for("the keyed tasks completed", &|v| {
        v.get("bulkhead_keyed_tasks_total{outcome=completed,pool=keyed}") == Some(&5.0)
            && v.get(&odd("bulkhead_key_dequeued_total")) == Some(&3.0)
    });
    assert_eq!(v["bulkhead_keyed_dequeued_total{pool=keyed}"], 5.0);
    assert_eq!(v["bulkhead_keyed_in_flight{pool=keyed}"], 0.0);
    assert!(v[&odd("bulkhead_key_queue_wait_seconds_total")] > 0.0);
    assert!(v["bulkhead_keyed_queue_wait_seconds_total{pool=keyed}"] > 0.0);
    // Pools without keyed submissions never got a keyed series.
    assert!(v
        .keys()
        .filter(|k| k.starts_with("bulkhead_key"))
        .all(|k| k.contains("pool=keyed")));
}
