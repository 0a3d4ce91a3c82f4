//! Prometheus text exposition format (version 0.0.4) of a snapshot.
//!
//! Every sample carries a `pool` label. Counters end in `_total`; times are in seconds;
//! latencies are histograms (cumulative `le` buckets with the runtime's bounds, plus `+Inf`,
//! `_sum` and `_count`) over the pool's whole life, so that Prometheus can take rates and
//! windows, and `histogram_quantile` can add instances up. A value that was not measured
//! (CPU time off Linux) has no sample, never a zero. The names and their meaning are listed
//! in docs/METRICS.md.
//!
//! Keyed submissions add `bulkhead_key_*` (labels `pool` and `key`, for the pool's
//! `key_metrics` most loaded keys) and `bulkhead_keyed_*` (all keys together), only for
//! pools that have had one; src/export/keyed.rs says why the other-keys row is not a row of
//! its own.
//!
//! Serve it with the content type [`PROMETHEUS_CONTENT_TYPE`]: pool names may be any
//! UTF-8.

use std::fmt::Write;
use std::time::Duration;

use super::keyed::{self, Kind, ALL_KEYS_HELP, KEY_FAMILIES, PER_KEY_HELP};
use crate::buckets::{LatencyBuckets, LatencyHistograms};
use crate::metrics::{Health, PoolSnapshot, RuntimeSnapshot};

/// The HTTP `Content-Type` of [`RuntimeSnapshot::to_prometheus`]'s text: the text format
/// 0.0.4, in UTF-8 (pool names may be non-ASCII).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl RuntimeSnapshot {
    /// The snapshot in the Prometheus text exposition format, ready to serve on `/metrics`
    /// with the content type [`PROMETHEUS_CONTENT_TYPE`]. docs/METRICS.md lists the names.
    ///
    /// ```
    /// let rt = bulkhead::Runtime::builder().pool("api", |p| p).build()?;
    /// let api = rt.pool("api")?;
    /// api.try_submit(|| ())?.join()?;
    /// // A handle resolves just before the worker counts the outcome.
    /// while api.stats().completed < 1 { std::thread::yield_now(); }
    /// let text = rt.snapshot().to_prometheus();
    /// assert!(text.contains(r#"bulkhead_tasks_total{pool="api",outcome="completed"} 1"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = Exposition::default();
        let pools = &self.pools;
        out.family(
            "bulkhead_threads",
            "gauge",
            "Worker threads of the pool.",
            pools,
            |p, f| f.sample(p, &[], p.stats.threads as f64),
        );
        out.family(
            "bulkhead_queue_capacity",
            "gauge",
            "Capacity of the pool's bounded queue, in tasks.",
            pools,
            |p, f| f.sample(p, &[], p.stats.queue_capacity as f64),
        );
        out.family(
            "bulkhead_concurrency_limit",
            "gauge",
            "In-flight limit set by the pool's adaptive controller, in tasks (pools with one).",
            pools,
            |p, f| {
                if let Some(limit) = p.stats.concurrency_limit {
                    f.sample(p, &[], limit as f64);
                }
            },
        );
        out.family(
            "bulkhead_queue_depth",
            "gauge",
            "Tasks waiting in the pool's queue.",
            pools,
            |p, f| f.sample(p, &[], p.stats.queued as f64),
        );
        out.family(
            "bulkhead_workers",
            "gauge",
            "Worker threads by state (busy: running a task, idle: waiting for one).",
            pools,
            |p, f| {
                f.sample(p, &[("state", "busy")], p.stats.busy as f64);
                f.sample(p, &[("state", "idle")], p.idle as f64);
            },
        );
        out.family(
            "bulkhead_tasks_submitted_total",
            "counter",
            "Submission attempts, accepted or refused.",
            pools,
            |p, f| f.sample(p, &[], p.stats.submitted as f64),
        );
        out.family(
            "bulkhead_tasks_total",
            "counter",
            "Accepted tasks that ended, by outcome.",
            pools,
            |p, f| {
                let s = &p.stats;
                for (outcome, v) in [
                    ("completed", s.completed),
                    ("panicked", s.panicked),
                    ("expired", s.expired),
                    ("shed", s.shed),
                    ("cancelled", s.cancelled),
                ] {
                    f.sample(p, &[("outcome", outcome)], v as f64);
                }
            },
        );
        out.family(
            "bulkhead_codel_dropping",
            "gauge",
            "1 while the pool's queue-delay controller (CoDel) sheds tasks that waited longer than its target; 0 otherwise or when CoDel is off.",
            pools,
            |p, f| f.sample(p, &[], if p.stats.codel_dropping { 1.0 } else { 0.0 }),
        );
        out.family(
            "bulkhead_replaced_workers",
            "gauge",
            "Workers stuck in a task for which a replacement thread was started, until their task returns.",
            pools,
            |p, f| f.sample(p, &[], p.stats.replaced as f64),
        );
        out.family(
            "bulkhead_replacements_total",
            "counter",
            "Replacement threads started for stuck workers.",
            pools,
            |p, f| f.sample(p, &[], p.stats.replacements as f64),
        );
        out.family(
            "bulkhead_tasks_refused_total",
            "counter",
            "Submissions refused, by reason (full, timeout, shutting_down, deadline, key_cap).",
            pools,
            |p, f| {
                for (reason, v) in keyed::refusals(&p.stats) {
                    f.sample(p, &[("reason", reason)], v as f64);
                }
            },
        );
        out.family(
            "bulkhead_stuck_tasks",
            "gauge",
            "Tasks running longer than the pool's stuck_after threshold.",
            pools,
            |p, f| f.sample(p, &[], p.stuck.len() as f64),
        );
        out.family(
            "bulkhead_stuck_after_seconds",
            "gauge",
            "The pool's stuck_after threshold.",
            pools,
            |p, f| f.sample(p, &[], secs(p.stuck_after)),
        );
        out.family(
            "bulkhead_health",
            "gauge",
            "The pool's health state: 1 for the current state, 0 for the others.",
            pools,
            |p, f| {
                for h in Health::ALL {
                    let v = if p.health == h { 1.0 } else { 0.0 };
                    f.sample(p, &[("state", h.as_str())], v);
                }
            },
        );
        out.family(
            "bulkhead_cpu_seconds_total",
            "counter",
            "CPU time (user + system) consumed by the pool's worker threads; absent where not measured.",
            pools,
            |p, f| {
                if let Some(t) = p.cpu_time {
                    f.sample(p, &[], secs(t));
                }
            },
        );
        out.family(
            "bulkhead_cpu_seen",
            "gauge",
            "1 for each CPU the pool's workers were seen running on (sampled).",
            pools,
            |p, f| {
                for cpu in &p.cpus_seen {
                    f.sample(p, &[("cpu", &cpu.to_string())], 1.0);
                }
            },
        );
        out.family(
            "bulkhead_cpu_throttled_periods_total",
            "counter",
            "CPU bandwidth periods in which the pool's cgroup used up its cpu_limit quota and was held back; only for capped pools.",
            pools,
            |p, f| {
                if let Some(t) = p.cpu_cap.as_ref().and_then(|c| c.throttling) {
                    f.sample(p, &[], t.throttled_periods as f64);
                }
            },
        );
        out.family(
            "bulkhead_cpu_throttled_seconds_total",
            "counter",
            "Time the pool's threads were held back by its cpu_limit quota; only for capped pools.",
            pools,
            |p, f| {
                if let Some(t) = p.cpu_cap.as_ref().and_then(|c| c.throttling) {
                    f.sample(p, &[], secs(t.throttled_time));
                }
            },
        );
        for (name, help, pick) in [
            (
                "bulkhead_queue_wait_seconds",
                "Time from submission to the start of the task.",
                (|h| &h.queue_wait) as fn(&LatencyHistograms) -> &LatencyBuckets,
            ),
            (
                "bulkhead_run_seconds",
                "Time from the start to the end of the task.",
                |h| &h.run,
            ),
            (
                "bulkhead_end_to_end_seconds",
                "Time from submission to the end of the task.",
                |h| &h.end_to_end,
            ),
        ] {
            out.family(name, "histogram", help, pools, |p, f| {
                if let Some(l) = &p.latency {
                    f.histogram(p, pick(&l.buckets));
                }
            });
        }
        out.keyed(pools);
        out.text
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[derive(Default)]
struct Exposition {
    text: String,
}

/// Writes the samples of one family.
struct Family<'a> {
    name: &'a str,
    text: &'a mut String,
}

impl Exposition {
    fn family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        pools: &[PoolSnapshot],
        mut each: impl FnMut(&PoolSnapshot, &mut Family<'_>),
    ) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        let mut f = Family {
            name,
            text: &mut self.text,
        };
        for p in pools {
            each(p, &mut f);
        }
    }
}

impl Exposition {
    /// The keyed families (src/export/keyed.rs): per named key, then all keys together;
    /// none at all if no pool has had a keyed submission.
    fn keyed(&mut self, pools: &[PoolSnapshot]) {
        if !pools.iter().any(|p| keyed::has_keys(&p.stats)) {
            return;
        }
        for kf in &KEY_FAMILIES {
            let kind = match kf.kind {
                Kind::Counter | Kind::Seconds => "counter",
                Kind::Gauge => "gauge",
            };
            let help = format!("{}{PER_KEY_HELP}", kf.help);
            self.family(kf.per_key, kind, &help, pools, |p, f| {
                for k in &p.stats.keys {
                    let key = k.key.as_deref().unwrap_or_default();
                    for (label, v) in (kf.values)(k) {
                        match kf.label {
                            Some(name) => f.sample(p, &[("key", key), (name, label)], v.as_f64()),
                            None => f.sample(p, &[("key", key)], v.as_f64()),
                        }
                    }
                }
            });
        }
        for kf in &KEY_FAMILIES {
            let kind = match kf.kind {
                Kind::Counter | Kind::Seconds => "counter",
                Kind::Gauge => "gauge",
            };
            let help = format!("{}{ALL_KEYS_HELP}", kf.help);
            self.family(kf.all_keys, kind, &help, pools, |p, f| {
                if let Some(all) = keyed::all_keys(&p.stats) {
                    for (label, v) in (kf.values)(&all) {
                        match kf.label {
                            Some(name) => f.sample(p, &[(name, label)], v.as_f64()),
                            None => f.sample(p, &[], v.as_f64()),
                        }
                    }
                }
            });
        }
    }
}

impl Family<'_> {
    fn sample(&mut self, p: &PoolSnapshot, labels: &[(&str, &str)], value: f64) {
        self.sample_suffixed("", p, labels, value);
    }

    fn sample_suffixed(
        &mut self,
        suffix: &str,
        p: &PoolSnapshot,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let _ = write!(self.text, "{}{suffix}{{pool=\"", self.name);
        escape_into(self.text, &p.stats.name);
        self.text.push('"');
        for (k, v) in labels {
            let _ = write!(self.text, ",{k}=\"");
            escape_into(self.text, v);
            self.text.push('"');
        }
        let _ = writeln!(self.text, "}} {}", number(value));
    }

    fn histogram(&mut self, p: &PoolSnapshot, h: &LatencyBuckets) {
        for (bound, count) in &h.buckets {
            let le = number(secs(*bound));
            self.sample_suffixed("_bucket", p, &[("le", &le)], *count as f64);
        }
        self.sample_suffixed("_bucket", p, &[("le", "+Inf")], h.count as f64);
        // To the histogram's precision (src/buckets.rs): the recorders keep no exact sum.
        self.sample_suffixed("_sum", p, &[], secs(h.sum));
        self.sample_suffixed("_count", p, &[], h.count as f64);
    }
}

/// A label value with `\`, `"` and newline escaped, as the format requires.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample value: integers without a fractional part, others in Rust's shortest form
/// (which Prometheus parses as a Go float).
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        let mut s = String::new();
        escape_into(&mut s, "a\"b\\c\nd");
        assert_eq!(s, r#"a\"b\\c\nd"#);
    }

    #[test]
    fn numbers() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1.5e-7), "0.00000015");
    }
}
