//! Publication through the `metrics` facade (cargo feature `metrics`), for services that
//! already export with `metrics-exporter-prometheus`, an OpenTelemetry bridge or any other
//! `metrics` recorder.
//!
//! At every supervisor tick, after the listeners, the supervisor hands the recorder the
//! application installed (none: every call is a no-op):
//!
//! - every counter of docs/METRICS.md, with its Prometheus name, as an absolute value
//!   (`Counter::absolute`): `bulkhead_tasks_total{outcome}`, `bulkhead_tasks_refused_total{reason}`
//!   (every reason, `key_cap` and `deadline` included),
//!   ...; `bulkhead_cpu_seconds_total` and `bulkhead_cpu_throttled_seconds_total` are gauges
//!   here (the facade's counters are integers),
//!   absent where not measured;
//! - every gauge (`bulkhead_queue_depth`, `bulkhead_workers{state}`, `bulkhead_health{state}`, ...);
//! - the latencies of the tasks that ended during the interval just closed, into the
//!   histograms `bulkhead_queue_wait_seconds`, `bulkhead_run_seconds` and
//!   `bulkhead_end_to_end_seconds`, one `record_many` per distinct value of the exact
//!   HdrHistogram (its bucket's midpoint, in seconds): the recorder then buckets or
//!   summarises them as it is configured to;
//! - for a pool that has had keyed submissions, the keyed families of
//!   docs/METRICS.md with the same names and labels (src/export/keyed.rs): counters as
//!   absolute values, gauges, and the summed queue waits (`..._queue_wait_seconds_total`)
//!   as gauges in seconds. Per key (`key` label) only for the keys the snapshot names, the
//!   pool's `key_metrics` most loaded; all keys together in `bulkhead_keyed_*`.
//!
//! Every metric carries the `pool` label. The work is done on the supervisor thread, outside
//! its state lock, so a slow recorder delays the next tick, never a task or a `snapshot()`.
//!
//! # Keys that are named no longer
//!
//! The facade has no call that removes a series: a recorder keeps every series it was
//! handed until it drops them itself. So each tick updates the currently named keys only,
//! and for a key named at the previous tick but not at this one, sets its gauges
//! (`bulkhead_key_in_flight`, `bulkhead_key_queued`) to 0 once: its tasks are then counted
//! only in the all-keys totals, and summing the per-key gauges does not count them twice.
//! Its counters stay at their last value (a flat line, nothing for `rate()` to add). This
//! needs the previous tick's named keys, kept per pool on the supervisor thread (each
//! runtime's only publisher), at most `key_metrics` per pool.
//!
//! What remains in the recorder is then every key that was ever named: bounded by
//! `key_metrics` at any instant, but not over time if the heavy keys change. A recorder with
//! an idle timeout drops them (metrics-exporter-prometheus:
//! `PrometheusBuilder::idle_timeout(MetricKindMask::COUNTER | MetricKindMask::GAUGE,
//! Some(..))`, a few supervisor intervals or more: the named keys are touched at every
//! tick; histograms only when tasks end, hence not `ALL`).
//!
//! A named key whose counts the pool stopped tracking (src/keys.rs: Space-Saving keeps
//! `4 x key_metrics` keys, at least 32) and that comes back starts again from 0; through
//! `Counter::absolute`, which sets a counter to *at least* the value, such a series stays
//! flat until the new count passes the old one. The all-keys totals never go down.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hdrhistogram::Histogram;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Label, SharedString, Unit};

use super::keyed::{self, Kind, Value, ALL_KEYS_HELP, KEY_FAMILIES, PER_KEY_HELP};
use crate::metrics::{Health, Latencies, RuntimeSnapshot};
use crate::stats::PoolStats;

/// The three latency histograms, by name.
const LATENCIES: [(&str, &str); 3] = [
    (
        "bulkhead_queue_wait_seconds",
        "Time from submission to the start of the task.",
    ),
    (
        "bulkhead_run_seconds",
        "Time from the start to the end of the task.",
    ),
    (
        "bulkhead_end_to_end_seconds",
        "Time from submission to the end of the task.",
    ),
];

/// What one tick publishes, taken under the supervisor's lock and published outside it.
pub(crate) struct Batch {
    snapshot: RuntimeSnapshot,
    /// Per pool, in snapshot order: the last interval's values of queue wait, run and end to
    /// end, as (seconds, count); empty with metrics off.
    intervals: Vec<[Vec<(f64, u64)>; 3]>,
}

impl Batch {
    /// `last_intervals` holds, per pool in snapshot order, the interval just closed.
    pub(crate) fn new<'a>(
        snapshot: RuntimeSnapshot,
        last_intervals: impl Iterator<Item = Option<&'a Latencies>>,
    ) -> Batch {
        let intervals = last_intervals
            .map(|l| match l {
                Some(l) => [values(&l.queue_wait), values(&l.run), values(&l.end_to_end)],
                None => Default::default(),
            })
            .collect();
        Batch {
            snapshot,
            intervals,
        }
    }

    /// Hands everything to the installed recorder.
    pub(crate) fn publish(self) {
        describe();
        // The keys named at the previous tick (of this runtime: only its supervisor thread
        // publishes), per pool, to zero the gauges of those that are named no longer.
        let mut unnamed = NAMED.with_borrow_mut(|named| {
            let mut now: HashMap<String, HashSet<String>> = HashMap::new();
            for p in &self.snapshot.pools {
                let keys = p.stats.keys.iter().filter_map(|k| k.key.clone()).collect();
                now.insert(p.stats.name.clone(), keys);
            }
            let before = std::mem::replace(named, now);
            let mut unnamed: HashMap<String, Vec<String>> = HashMap::new();
            for (pool, keys) in before {
                let still = named.get(&pool);
                let gone: Vec<String> = keys
                    .into_iter()
                    .filter(|k| !still.is_some_and(|s| s.contains(k)))
                    .collect();
                if !gone.is_empty() {
                    unnamed.insert(pool, gone);
                }
            }
            unnamed
        });
        for (p, interval) in self.snapshot.pools.iter().zip(self.intervals) {
            let pool = SharedString::from(p.stats.name.clone());
            let s = &p.stats;
            let set = |name: &'static str, v: f64| gauge!(name, "pool" => pool.clone()).set(v);
            set("bulkhead_threads", s.threads as f64);
            set("bulkhead_queue_capacity", s.queue_capacity as f64);
            set("bulkhead_queue_depth", s.queued as f64);
            set(
                "bulkhead_codel_dropping",
                f64::from(u8::from(s.codel_dropping)),
            );
            set("bulkhead_replaced_workers", s.replaced as f64);
            set("bulkhead_stuck_tasks", p.stuck.len() as f64);
            set("bulkhead_stuck_after_seconds", secs(p.stuck_after));
            if let Some(t) = p.cpu_time {
                set("bulkhead_cpu_seconds_total", secs(t));
            }
            if let Some(t) = p.cpu_cap.as_ref().and_then(|c| c.throttling) {
                counter!("bulkhead_cpu_throttled_periods_total", "pool" => pool.clone())
                    .absolute(t.throttled_periods);
                set(
                    "bulkhead_cpu_throttled_seconds_total",
                    secs(t.throttled_time),
                );
            }
            for (state, v) in [("busy", s.busy), ("idle", p.idle)] {
                gauge!("bulkhead_workers", "pool" => pool.clone(), "state" => state).set(v as f64);
            }
            for h in Health::ALL {
                let v = f64::from(u8::from(p.health == h));
                gauge!("bulkhead_health", "pool" => pool.clone(), "state" => h.as_str()).set(v);
            }
            counter!("bulkhead_tasks_submitted_total", "pool" => pool.clone())
                .absolute(s.submitted);
            counter!("bulkhead_replacements_total", "pool" => pool.clone())
                .absolute(s.replacements);
            for (outcome, v) in [
                ("completed", s.completed),
                ("panicked", s.panicked),
                ("expired", s.expired),
                ("shed", s.shed),
                ("cancelled", s.cancelled),
            ] {
                counter!("bulkhead_tasks_total", "pool" => pool.clone(), "outcome" => outcome)
                    .absolute(v);
            }
            for (reason, v) in keyed::refusals(s) {
                counter!("bulkhead_tasks_refused_total", "pool" => pool.clone(), "reason" => reason)
                    .absolute(v);
            }
            publish_keys(&pool, s, &mut unnamed);
            for ((name, _), values) in LATENCIES.iter().zip(interval) {
                let h = histogram!(*name, "pool" => pool.clone());
                for (v, n) in values {
                    h.record_many(v, usize::try_from(n).unwrap_or(usize::MAX));
                }
            }
        }
    }
}

thread_local! {
    /// Per pool, the keys the previous tick named (at most `key_metrics` per pool).
    static NAMED: RefCell<HashMap<String, HashSet<String>>> = RefCell::new(HashMap::new());
}

/// The keyed families of one pool (src/export/keyed.rs): each named key, all keys
/// together, and a last zero for the gauges of keys no longer named (`unnamed`, taken out
/// of the map for this pool). Nothing for a pool without keyed submissions.
fn publish_keys(pool: &SharedString, s: &PoolStats, unnamed: &mut HashMap<String, Vec<String>>) {
    let gone = unnamed.remove(&s.name).unwrap_or_default();
    let Some(all) = keyed::all_keys(s) else {
        return;
    };
    for kf in &KEY_FAMILIES {
        for k in &s.keys {
            let key = SharedString::from(k.key.clone().unwrap_or_default());
            for (label, v) in (kf.values)(k) {
                let mut labels = vec![
                    Label::new("pool", pool.clone()),
                    Label::new("key", key.clone()),
                ];
                if let Some(name) = kf.label {
                    labels.push(Label::from_static_parts(name, label));
                }
                emit(kf.per_key, kf.kind, labels, v);
            }
        }
        if kf.kind == Kind::Gauge {
            for key in &gone {
                let labels = vec![
                    Label::new("pool", pool.clone()),
                    Label::new("key", key.clone()),
                ];
                emit(kf.per_key, kf.kind, labels, Value::Count(0));
            }
        }
        for (label, v) in (kf.values)(&all) {
            let mut labels = vec![Label::new("pool", pool.clone())];
            if let Some(name) = kf.label {
                labels.push(Label::from_static_parts(name, label));
            }
            emit(kf.all_keys, kf.kind, labels, v);
        }
    }
}

/// One value of a keyed family, as its kind is published through the facade.
fn emit(name: &'static str, kind: Kind, labels: Vec<Label>, v: Value) {
    match (kind, v) {
        (Kind::Counter, Value::Count(n)) => counter!(name, labels).absolute(n),
        _ => gauge!(name, labels).set(v.as_f64()),
    }
}

/// Each distinct recorded value of `h` (nanoseconds), as its bucket's midpoint in seconds,
/// with its count.
fn values(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    h.iter_recorded()
        .map(|v| {
            let mid = h.median_equivalent(v.value_iterated_to());
            (mid as f64 / 1e9, v.count_at_value())
        })
        .collect()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Units and help texts; recorders keep the first description of a name.
fn describe() {
    let simple: [(&'static str, Unit, &'static str); 14] = [
        (
            "bulkhead_threads",
            Unit::Count,
            "Worker threads of the pool.",
        ),
        (
            "bulkhead_queue_capacity",
            Unit::Count,
            "Capacity of the pool's bounded queue, in tasks.",
        ),
        (
            "bulkhead_queue_depth",
            Unit::Count,
            "Tasks waiting in the pool's queue.",
        ),
        (
            "bulkhead_workers",
            Unit::Count,
            "Worker threads by state (busy, idle).",
        ),
        (
            "bulkhead_codel_dropping",
            Unit::Count,
            "1 while the pool's CoDel controller sheds tasks.",
        ),
        (
            "bulkhead_replaced_workers",
            Unit::Count,
            "Stuck workers replaced, not yet returned.",
        ),
        (
            "bulkhead_stuck_tasks",
            Unit::Count,
            "Tasks running longer than stuck_after.",
        ),
        (
            "bulkhead_stuck_after_seconds",
            Unit::Seconds,
            "The pool's stuck_after threshold.",
        ),
        (
            "bulkhead_health",
            Unit::Count,
            "1 for the pool's current health state.",
        ),
        (
            "bulkhead_cpu_seconds_total",
            Unit::Seconds,
            "CPU time of the pool's workers (monotonic).",
        ),
        (
            "bulkhead_cpu_throttled_seconds_total",
            Unit::Seconds,
            "Time a capped pool's threads were held back by its quota (monotonic).",
        ),
        (
            "bulkhead_cpu_throttled_periods_total",
            Unit::Count,
            "Periods in which a capped pool used up its quota.",
        ),
        (
            "bulkhead_tasks_submitted_total",
            Unit::Count,
            "Submission attempts, accepted or refused.",
        ),
        (
            "bulkhead_replacements_total",
            Unit::Count,
            "Replacement threads started for stuck workers.",
        ),
    ];
    for (name, unit, help) in simple {
        if name.ends_with("_total") && !name.ends_with("seconds_total") {
            describe_counter!(name, unit, help);
        } else {
            describe_gauge!(name, unit, help);
        }
    }
    describe_counter!(
        "bulkhead_tasks_total",
        Unit::Count,
        "Accepted tasks that ended, by outcome."
    );
    describe_counter!(
        "bulkhead_tasks_refused_total",
        Unit::Count,
        "Submissions refused, by reason."
    );
    for (name, help) in LATENCIES {
        describe_histogram!(name, Unit::Seconds, help);
    }
    for kf in &KEY_FAMILIES {
        for (name, suffix) in [(kf.per_key, PER_KEY_HELP), (kf.all_keys, ALL_KEYS_HELP)] {
            let help = format!("{}{suffix}", kf.help);
            match kf.kind {
                Kind::Counter => describe_counter!(name, Unit::Count, help),
                Kind::Gauge => describe_gauge!(name, Unit::Count, help),
                Kind::Seconds => describe_gauge!(name, Unit::Seconds, help),
            }
        }
    }
}
