//! Export: the Prometheus text exposition passes a strict parser (tests/support/prometheus.rs,
//! always) and `promtool check metrics` (where installed: `.ci/setup` installs it, and
//! under CI, env `CI` set, a missing promtool fails the test); latency histograms have the
//! configured buckets; unmeasured CPU time is absent; and (with the `serde` feature) the
//! JSON snapshot round-trips.

mod support;

use std::time::Duration;

use bulkhead::{KeyStats, Runtime, RuntimeSnapshot};
use support::prometheus::Family;
use support::{block_worker, occupy_all, quiet_panics, wait_until, Gate};

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
    // No keyed submission: no key rows.
    assert!(snap.pools.iter().all(|p| p.stats.keys.is_empty()));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["pools"][0]["stats"]["name"], "api");
    assert_eq!(value["pools"][0]["stats"]["completed"], 5);
    assert_eq!(value["pools"][0]["health"], "healthy");
    assert_eq!(
        value["pools"][0]["latency"]["cumulative"]["run"]["count"],
        6
    );
}

#[cfg(feature = "serde")]
#[test]
fn json_snapshot_with_keyed_submissions_round_trips() {
    let k = keyed_runtime();
    for snap in [&k.gated, &k.done] {
        let json = snap.to_json();
        let back = RuntimeSnapshot::from_json(&json).unwrap();
        assert_eq!(&back, snap);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let stats = &value["pools"][0]["stats"];
        assert_eq!(stats["refused_key_cap"], 3);
        let names: Vec<&str> = stats["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        assert_eq!(names, named_keys());
        assert_eq!(stats["other_keys"]["key"], serde_json::Value::Null);
        assert_eq!(stats["other_keys"]["accepted"], 5);
        // No keyed work, no rows.
        assert_eq!(value["pools"][2]["stats"]["keys"], serde_json::json!([]));
        assert_eq!(
            value["pools"][2]["stats"]["other_keys"],
            serde_json::Value::Null
        );
    }
    let json = k.done.to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let flood = &value["pools"][0]["stats"]["keys"][0];
    assert_eq!(flood["key"], "flood");
    assert_eq!(flood["completed"], 3);
    assert_eq!(flood["dequeued"], 3);
    // serde's form of a Duration.
    assert!(flood["queue_wait_total"]["secs"].is_u64());
    assert!(flood["queue_wait_total"]["nanos"].is_u64());
}

// ---- Keyed submissions ----------------------------------------------------------------

/// A key with a quote, a closing brace and a newline: all three must be escaped (or be
/// harmless) in a label value.
const QUOTE: &str = "\"}\n";
const UNICODE: &str = "ключ🔑";
const PANIC_MARKER: &str = "keyed export test panic";

fn long_key() -> String {
    "k".repeat(10_000)
}

/// The keys pool "keyed" names, heaviest first: flood (5 submissions), QUOTE (4), "" (3),
/// then the long key and UNICODE (2 each, ordered by the key).
fn named_keys() -> Vec<String> {
    vec![
        "flood".to_owned(),
        QUOTE.to_owned(),
        String::new(),
        long_key(),
        UNICODE.to_owned(),
    ]
}

struct Keyed {
    rt: Runtime,
    /// Taken while every keyed task waited behind the held worker.
    gated: RuntimeSnapshot,
    /// Taken once every task had ended and been counted.
    done: RuntimeSnapshot,
}

/// Pool "keyed" (one worker, key_cap 3, key_metrics 5) gets keyed work under odd keys
/// while its worker is held: "flood" tries 5 (2 refused at the cap), QUOTE 4 (1 refused),
/// "" 3 (one panics), the 10 kB key and UNICODE 2 each, and l0..l4 one each (the other
/// keys). Pool "keyed2" runs one task of key "solo" after the gated snapshot; pool "plain"
/// runs unkeyed work only.
fn keyed_runtime() -> Keyed {
    quiet_panics(PANIC_MARKER);
    let rt = Runtime::builder()
        .supervisor_interval(Duration::from_millis(10))
        .pool("keyed", |p| {
            p.threads(1).queue_capacity(32).key_cap(3).key_metrics(5)
        })
        .pool("keyed2", |p| p.threads(1).queue_capacity(4))
        .pool("plain", |p| p.threads(1))
        .build()
        .unwrap();
    let keyed = rt.pool("keyed").unwrap();
    let plain = rt.pool("plain").unwrap();
    plain.try_submit(|| ()).unwrap().join().unwrap();

    let gate: Gate = occupy_all(&keyed);
    let mut handles = Vec::new();
    let mut submit = |key: &str, tries: usize, refused: usize| {
        for i in 0..tries {
            match keyed.key(key).try_submit(|| ()) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    assert!(e.is_key_cap(), "{key:?} #{i}: {e}");
                    assert!(i >= tries - refused, "{key:?} #{i} refused too early");
                }
            }
        }
    };
    submit("flood", 5, 2);
    submit(QUOTE, 4, 1);
    submit("", 2, 0);
    submit(&long_key(), 2, 0);
    submit(UNICODE, 2, 0);
    for i in 0..5 {
        submit(&format!("l{i}"), 1, 0);
    }
    let panicking = keyed
        .key("")
        .try_submit(|| panic!("{PANIC_MARKER}"))
        .unwrap();
    assert_eq!(keyed.stats().refused_key_cap, 3);
    let gated = rt.snapshot();

    let keyed2 = rt.pool("keyed2").unwrap();
    keyed2
        .key("solo")
        .try_submit(|| ())
        .unwrap()
        .join()
        .unwrap();
    drop(gate);
    for h in handles {
        h.join().unwrap();
    }
    assert!(panicking.join().is_err());
    // A handle resolves just before its outcome is counted: wait for the counts.
    wait_until("keyed tasks counted", || keyed.stats().finished() == 19);
    wait_until("keyed2 counted", || {
        rt.pool("keyed2").unwrap().stats().finished() == 1
    });
    let done = rt.snapshot();
    Keyed { rt, gated, done }
}

/// The value of the sample `name` with exactly `labels`, if there is one.
fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.label(k) == Some(v))
        })
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} twice");
    found.first().copied()
}

fn parse(text: &str) -> Vec<Family> {
    support::prometheus::parse(text)
        .unwrap_or_else(|e| panic!("the parser rejected the exposition: {e}\n{text}"))
}

/// Every keyed sample of `families` (`bulkhead_key_*` and `bulkhead_keyed_*`).
fn keyed_samples(families: &[Family]) -> Vec<&support::prometheus::Sample> {
    families
        .iter()
        .filter(|f| f.name.starts_with("bulkhead_key_") || f.name.starts_with("bulkhead_keyed_"))
        .flat_map(|f| &f.samples)
        .collect()
}

/// A keyed family's suffix, its extra label (outcome, reason) if any, and the value.
type Row = (&'static str, Option<(&'static str, &'static str)>, f64);

/// Checks that the exposition's per-key and all-keys samples of `pool` are exactly the
/// snapshot's rows: every named key with every value, and the totals.
fn assert_keyed_samples_match(families: &[Family], snap: &RuntimeSnapshot, pool: &str) {
    let stats = &snap.pool(pool).unwrap().stats;
    let rows = |k: &KeyStats| -> Vec<Row> {
        vec![
            ("accepted_total", None, k.accepted as f64),
            (
                "refused_total",
                Some(("reason", "key_cap")),
                k.refused_key_cap as f64,
            ),
            (
                "refused_total",
                Some(("reason", "other")),
                k.refused_other as f64,
            ),
            (
                "tasks_total",
                Some(("outcome", "completed")),
                k.completed as f64,
            ),
            (
                "tasks_total",
                Some(("outcome", "panicked")),
                k.panicked as f64,
            ),
            (
                "tasks_total",
                Some(("outcome", "expired")),
                k.expired as f64,
            ),
            ("tasks_total", Some(("outcome", "shed")), k.shed as f64),
            (
                "tasks_total",
                Some(("outcome", "cancelled")),
                k.cancelled as f64,
            ),
            ("in_flight", None, k.in_flight as f64),
            ("queued", None, k.queued as f64),
            (
                "queue_wait_seconds_total",
                None,
                k.queue_wait_total.as_secs_f64(),
            ),
            ("dequeued_total", None, k.dequeued as f64),
        ]
    };
    let mut expected = 0;
    for k in &stats.keys {
        let key = k.key.as_deref().unwrap();
        for (suffix, extra, v) in rows(k) {
            let mut labels = vec![("pool", pool), ("key", key)];
            labels.extend(extra);
            let name = format!("bulkhead_key_{suffix}");
            let got =
                value(families, &name, &labels).unwrap_or_else(|| panic!("no {name} {labels:?}"));
            assert!(
                (got - v).abs() <= 1e-9 * v.max(1.0),
                "{name} {labels:?}: {got} != {v}"
            );
            expected += 1;
        }
    }
    // The other keys are not a row of their own: the totals have them.
    let mut total = stats.other_keys.clone();
    for k in &stats.keys {
        let t = total.get_or_insert_with(|| {
            let mut z = k.clone();
            z.key = None;
            z.accepted = 0;
            z.refused_key_cap = 0;
            z.refused_other = 0;
            z.completed = 0;
            z.panicked = 0;
            z.expired = 0;
            z.shed = 0;
            z.cancelled = 0;
            z.in_flight = 0;
            z.queued = 0;
            z.queue_wait_total = Duration::ZERO;
            z.dequeued = 0;
            z
        });
        t.accepted += k.accepted;
        t.refused_key_cap += k.refused_key_cap;
        t.refused_other += k.refused_other;
        t.completed += k.completed;
        t.panicked += k.panicked;
        t.expired += k.expired;
        t.shed += k.shed;
        t.cancelled += k.cancelled;
        t.in_flight += k.in_flight;
        t.queued += k.queued;
        t.queue_wait_total += k.queue_wait_total;
        t.dequeued += k.dequeued;
    }
    if let Some(t) = &total {
        for (suffix, extra, v) in rows(t) {
            let mut labels = vec![("pool", pool)];
            labels.extend(extra);
            let name = format!("bulkhead_keyed_{suffix}");
            let got =
                value(families, &name, &labels).unwrap_or_else(|| panic!("no {name} {labels:?}"));
            assert!(
                (got - v).abs() <= 1e-9 * v.max(1.0),
                "{name} {labels:?}: {got} != {v}"
            );
            expected += 1;
        }
    }
    let exported = keyed_samples(families)
        .into_iter()
        .filter(|s| s.label("pool") == Some(pool))
        .count();
    assert_eq!(exported, expected, "unexpected keyed samples for {pool:?}");
}

#[test]
fn keyed_submissions_are_exported_per_named_key_and_all_keys_together() {
    let k = keyed_runtime();
    for snap in [&k.gated, &k.done] {
        let text = snap.to_prometheus();
        let families = parse(&text);
        for pool in ["keyed", "keyed2", "plain"] {
            assert_keyed_samples_match(&families, snap, pool);
        }
        // Label values: the parser unescaped them back to the keys.
        let named: Vec<String> = snap
            .pool("keyed")
            .unwrap()
            .stats
            .keys
            .iter()
            .map(|k| k.key.clone().unwrap())
            .collect();
        assert_eq!(named, named_keys());
        let flood = [("pool", "keyed"), ("key", "flood")];
        let flood_cap = [("pool", "keyed"), ("key", "flood"), ("reason", "key_cap")];
        assert_eq!(
            value(&families, "bulkhead_key_accepted_total", &flood),
            Some(3.0)
        );
        assert_eq!(
            value(&families, "bulkhead_key_refused_total", &flood_cap),
            Some(2.0)
        );
        let quote_cap = [("pool", "keyed"), ("key", QUOTE), ("reason", "key_cap")];
        assert_eq!(
            value(&families, "bulkhead_key_refused_total", &quote_cap),
            Some(1.0)
        );
        let long = long_key();
        let long_key_labels = [("pool", "keyed"), ("key", long.as_str())];
        assert_eq!(
            value(&families, "bulkhead_key_accepted_total", &long_key_labels),
            Some(2.0)
        );
        let keyed = [("pool", "keyed")];
        assert_eq!(
            value(&families, "bulkhead_keyed_accepted_total", &keyed),
            Some(18.0)
        );
        // The pool's refusals have the key_cap reason.
        let pool_cap = [("pool", "keyed"), ("reason", "key_cap")];
        assert_eq!(
            value(&families, "bulkhead_tasks_refused_total", &pool_cap),
            Some(3.0)
        );
        // The light keys l0..l4 are named nowhere.
        assert!(!text.contains("key=\"l0\""), "{text}");
        // No keyed sample for the pool without keyed submissions.
        assert!(keyed_samples(&families)
            .iter()
            .all(|s| s.label("pool") != Some("plain")));
        // Escaping, in the text itself.
        assert!(
            text.contains(r#"bulkhead_key_in_flight{pool="keyed",key="\"}\n"} "#),
            "{text}"
        );
        assert!(text.contains(&format!(
            "bulkhead_key_queued{{pool=\"keyed\",key=\"{UNICODE}\"}} "
        )));
        // Each family's HELP and TYPE once, however many pools (the parser refuses a second
        // one, or a family in two places).
        for f in &families {
            assert!(f.help.is_some() && f.kind != "untyped", "{}", f.name);
        }
    }

    // Behind the held worker: everything queued.
    let g = parse(&k.gated.to_prometheus());
    let quote = [("pool", "keyed"), ("key", QUOTE)];
    assert_eq!(value(&g, "bulkhead_key_in_flight", &quote), Some(3.0));
    assert_eq!(value(&g, "bulkhead_key_queued", &quote), Some(3.0));
    assert_eq!(
        value(&g, "bulkhead_keyed_queued", &[("pool", "keyed")]),
        Some(18.0)
    );
    assert_eq!(
        value(&g, "bulkhead_keyed_dequeued_total", &[("pool", "keyed")]),
        Some(0.0)
    );
    // keyed2 had no keyed submission yet: no sample, not zeros.
    assert!(keyed_samples(&g)
        .iter()
        .all(|s| s.label("pool") == Some("keyed")));

    // Once run: outcomes, dequeued counts and queue waits.
    let d = parse(&k.done.to_prometheus());
    let empty = |outcome| [("pool", "keyed"), ("key", ""), ("outcome", outcome)];
    assert_eq!(
        value(&d, "bulkhead_key_tasks_total", &empty("completed")),
        Some(2.0)
    );
    assert_eq!(
        value(&d, "bulkhead_key_tasks_total", &empty("panicked")),
        Some(1.0)
    );
    let all = |outcome| [("pool", "keyed"), ("outcome", outcome)];
    assert_eq!(
        value(&d, "bulkhead_keyed_tasks_total", &all("completed")),
        Some(17.0)
    );
    assert_eq!(
        value(&d, "bulkhead_keyed_tasks_total", &all("panicked")),
        Some(1.0)
    );
    assert_eq!(
        value(&d, "bulkhead_keyed_in_flight", &[("pool", "keyed")]),
        Some(0.0)
    );
    assert_eq!(
        value(&d, "bulkhead_keyed_dequeued_total", &[("pool", "keyed")]),
        Some(18.0)
    );
    let wait = value(
        &d,
        "bulkhead_key_queue_wait_seconds_total",
        &[("pool", "keyed"), ("key", "flood")],
    )
    .unwrap();
    assert!(wait > 0.0, "flood waited behind the held worker");
    // The other keys are the totals minus the named keys.
    let named_accepted: f64 = d
        .iter()
        .filter(|f| f.name == "bulkhead_key_accepted_total")
        .flat_map(|f| &f.samples)
        .filter(|s| s.label("pool") == Some("keyed"))
        .map(|s| s.value)
        .sum();
    let all_accepted = value(&d, "bulkhead_keyed_accepted_total", &[("pool", "keyed")]).unwrap();
    assert_eq!(all_accepted - named_accepted, 5.0);
    assert_eq!(
        k.done
            .pool("keyed")
            .unwrap()
            .stats
            .other_keys
            .as_ref()
            .unwrap()
            .accepted,
        5
    );
    let solo = [
        ("pool", "keyed2"),
        ("key", "solo"),
        ("outcome", "completed"),
    ];
    assert_eq!(value(&d, "bulkhead_key_tasks_total", &solo), Some(1.0));
    drop(k.rt);
}

#[test]
fn no_keyed_family_without_keyed_submissions() {
    let text = busy_runtime().snapshot().to_prometheus();
    assert!(!text.contains("bulkhead_key"), "{text}");
    // The key_cap reason is a real zero for every pool.
    let families = parse(&text);
    let cap = [("pool", "api"), ("reason", "key_cap")];
    assert_eq!(
        value(&families, "bulkhead_tasks_refused_total", &cap),
        Some(0.0)
    );
}

/// Why the other-keys row is not exported as a counter: it sums the keys outside the top
/// N, so a key moving into the top N takes its counts out of it. Here `completed` of the
/// row goes from 2 to 0, which Prometheus would read as a reset; the all-keys totals and the
/// named key's own counts never go down.
#[test]
fn the_other_keys_row_can_go_down_but_the_exported_counters_do_not() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).queue_capacity(16).key_metrics(1))
        .build()
        .unwrap();
    let p = rt.pool("p").unwrap();
    for _ in 0..2 {
        p.key("b").try_submit(|| ()).unwrap().join().unwrap();
    }
    wait_until("b counted", || p.stats().finished() == 2);
    let gate = occupy_all(&p);
    for _ in 0..3 {
        p.key("a").execute(|| ()).unwrap();
    }
    let before = rt.snapshot();
    for _ in 0..2 {
        p.key("b").execute(|| ()).unwrap();
    }
    let after = rt.snapshot();
    drop(gate);

    let row = |s: &RuntimeSnapshot| s.pools[0].stats.other_keys.clone().unwrap();
    let named = |s: &RuntimeSnapshot| s.pools[0].stats.keys[0].key.clone().unwrap();
    assert_eq!(
        (named(&before), row(&before).completed),
        ("a".to_owned(), 2)
    );
    assert_eq!((named(&after), row(&after).completed), ("b".to_owned(), 0));

    let completed = [("pool", "p"), ("outcome", "completed")];
    for s in [&before, &after] {
        let f = parse(&s.to_prometheus());
        assert_eq!(
            value(&f, "bulkhead_keyed_tasks_total", &completed),
            Some(2.0)
        );
    }
    let f = parse(&after.to_prometheus());
    let b = [("pool", "p"), ("key", "b"), ("outcome", "completed")];
    assert_eq!(value(&f, "bulkhead_key_tasks_total", &b), Some(2.0));
    assert_eq!(
        value(
            &f,
            "bulkhead_key_accepted_total",
            &[("pool", "p"), ("key", "b")]
        ),
        Some(4.0)
    );
}

#[test]
fn keyed_exposition_passes_promtool() {
    let k = keyed_runtime();
    for (name, snap) in [("gated", &k.gated), ("done", &k.done)] {
        support::prometheus::promtool_check(
            &format!("keyed_exposition_passes_promtool ({name})"),
            &snap.to_prometheus(),
        );
    }
}
