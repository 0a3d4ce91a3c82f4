//! What both exporters (Prometheus text and the `metrics` facade) publish of a pool's
//! refusals and keyed submissions, so that the two agree on names, labels and values.
//!
//! # Keyed families
//!
//! Per pool, two groups of families with the same suffixes:
//!
//! - `bulkhead_key_*{pool, key}`: one series set per *named* key, the pool's
//!   [`key_metrics`](crate::PoolBuilder::key_metrics) most loaded keys
//!   ([`PoolStats::keys`]), so the cardinality is bounded by that setting;
//! - `bulkhead_keyed_*{pool}`: every keyed submission of the pool, all keys together (the
//!   named keys plus [`PoolStats::other_keys`]).
//!
//! The "other keys" row is not exported as such: it is `bulkhead_keyed_*` minus the sum of
//! `bulkhead_key_*`. Two reasons. A label value of its own (`key=""`, `key="<other>"`)
//! would collide with a real key, since a key may be any string. And the row is not
//! monotonic: it sums the keys counted outside the top N, so when a key moves into the top
//! N and another out, the row loses the first key's counts and gains the second's, and any
//! single count (completed, queue wait, ...) can go down; exported as a counter, Prometheus
//! would read that as a reset and `rate()` would jump by the row's whole lifetime. The
//! all-keys totals only ever grow (counts move between rows, none is lost), and a named
//! key's counts only grow while the pool tracks it.
//!
//! Nothing is published for a pool that has had no keyed submission.

use std::time::Duration;

use crate::error::RefusalReason;
use crate::stats::{KeyStats, PoolStats};

/// Every refusal reason, in export order.
const REASONS: [RefusalReason; 5] = [
    RefusalReason::Full,
    RefusalReason::Timeout,
    RefusalReason::ShuttingDown,
    RefusalReason::Deadline,
    RefusalReason::KeyCap,
];

/// The pool's refusals under `reason`. Exhaustive on purpose: a new reason does not compile
/// until it has its count here, and then belongs in [`REASONS`] (the unit test below checks
/// that the exported reasons add up to [`PoolStats::refused`]).
fn refused_for(s: &PoolStats, reason: RefusalReason) -> u64 {
    match reason {
        RefusalReason::Full => s.refused_full,
        RefusalReason::Timeout => s.refused_timeout,
        RefusalReason::ShuttingDown => s.refused_shutting_down,
        RefusalReason::Deadline => s.refused_deadline,
        RefusalReason::KeyCap => s.refused_key_cap,
    }
}

/// The pool's refusals by reason label (`RefusalReason::as_str`), every reason, zeros
/// included (they are real counts).
pub(crate) fn refusals(s: &PoolStats) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    REASONS.into_iter().map(|r| (r.as_str(), refused_for(s, r)))
}

/// How a keyed family is typed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A count that only grows.
    Counter,
    /// A count now.
    Gauge,
    /// A time that only grows, in seconds (a Prometheus counter; a gauge through the
    /// `metrics` facade, whose counters are integers).
    Seconds,
}

/// One value of a keyed family.
#[derive(Clone, Copy)]
pub(crate) enum Value {
    Count(u64),
    Time(Duration),
}

impl Value {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Value::Count(n) => n as f64,
            Value::Time(d) => d.as_secs_f64(),
        }
    }
}

/// A keyed family: its names per key and for all keys, its type, help texts, the label
/// that splits it (if any) and its values (label value, value) for one row.
pub(crate) struct KeyFamily {
    /// `bulkhead_key_...`, labels `pool` and `key`.
    pub(crate) per_key: &'static str,
    /// `bulkhead_keyed_...`, label `pool`.
    pub(crate) all_keys: &'static str,
    pub(crate) kind: Kind,
    /// What is counted, completed by " per key (...)." or ", all keys together."
    pub(crate) help: &'static str,
    /// The label that splits the family (`outcome`, `reason`), if any.
    pub(crate) label: Option<&'static str>,
    /// The row's values, with the label's value ("" if there is no label).
    pub(crate) values: fn(&KeyStats) -> Vec<(&'static str, Value)>,
}

/// The help suffix of a `bulkhead_key_*` family.
pub(crate) const PER_KEY_HELP: &str = ", per key (the pool's key_metrics most loaded keys).";
/// The help suffix of a `bulkhead_keyed_*` family.
pub(crate) const ALL_KEYS_HELP: &str = ", all keys of the pool together.";

/// Every keyed family, in export order.
pub(crate) const KEY_FAMILIES: [KeyFamily; 7] = [
    KeyFamily {
        per_key: "bulkhead_key_accepted_total",
        all_keys: "bulkhead_keyed_accepted_total",
        kind: Kind::Counter,
        help: "Keyed submissions accepted",
        label: None,
        values: |k| vec![("", Value::Count(k.accepted))],
    },
    KeyFamily {
        per_key: "bulkhead_key_refused_total",
        all_keys: "bulkhead_keyed_refused_total",
        kind: Kind::Counter,
        help: "Keyed submissions refused, by reason (key_cap: the key was at the pool's key_cap; other: the pool refused it)",
        label: Some("reason"),
        values: |k| {
            vec![
                ("key_cap", Value::Count(k.refused_key_cap)),
                ("other", Value::Count(k.refused_other)),
            ]
        },
    },
    KeyFamily {
        per_key: "bulkhead_key_tasks_total",
        all_keys: "bulkhead_keyed_tasks_total",
        kind: Kind::Counter,
        help: "Accepted keyed tasks that ended, by outcome",
        label: Some("outcome"),
        values: |k| {
            vec![
                ("completed", Value::Count(k.completed)),
                ("panicked", Value::Count(k.panicked)),
                ("expired", Value::Count(k.expired)),
                ("shed", Value::Count(k.shed)),
                ("cancelled", Value::Count(k.cancelled)),
            ]
        },
    },
    KeyFamily {
        per_key: "bulkhead_key_in_flight",
        all_keys: "bulkhead_keyed_in_flight",
        kind: Kind::Gauge,
        help: "Keyed tasks queued or running now",
        label: None,
        values: |k| vec![("", Value::Count(k.in_flight as u64))],
    },
    KeyFamily {
        per_key: "bulkhead_key_queued",
        all_keys: "bulkhead_keyed_queued",
        kind: Kind::Gauge,
        help: "Keyed tasks waiting in the queue now",
        label: None,
        values: |k| vec![("", Value::Count(k.queued as u64))],
    },
    KeyFamily {
        per_key: "bulkhead_key_queue_wait_seconds_total",
        all_keys: "bulkhead_keyed_queue_wait_seconds_total",
        kind: Kind::Seconds,
        help: "Queue wait of the keyed tasks taken from the queue, summed (divide by the dequeued count for the mean)",
        label: None,
        values: |k| vec![("", Value::Time(k.queue_wait_total))],
    },
    KeyFamily {
        per_key: "bulkhead_key_dequeued_total",
        all_keys: "bulkhead_keyed_dequeued_total",
        kind: Kind::Counter,
        help: "Keyed tasks a worker took from the queue (run, or found expired or cancelled there)",
        label: None,
        values: |k| vec![("", Value::Count(k.dequeued))],
    },
];

/// True if the pool has had a keyed submission (it then has a named key or another-keys row).
pub(crate) fn has_keys(s: &PoolStats) -> bool {
    !s.keys.is_empty() || s.other_keys.is_some()
}

/// Every keyed submission of the pool, all keys together: the named keys plus the other
/// keys' row (`key` is `None`); `None` for a pool without keyed submissions.
pub(crate) fn all_keys(s: &PoolStats) -> Option<KeyStats> {
    if !has_keys(s) {
        return None;
    }
    let mut t = KeyStats {
        key: None,
        accepted: 0,
        refused_key_cap: 0,
        refused_other: 0,
        completed: 0,
        panicked: 0,
        expired: 0,
        shed: 0,
        cancelled: 0,
        in_flight: 0,
        queued: 0,
        queue_wait_total: Duration::ZERO,
        dequeued: 0,
    };
    for k in s.keys.iter().chain(&s.other_keys) {
        t.accepted = t.accepted.saturating_add(k.accepted);
        t.refused_key_cap = t.refused_key_cap.saturating_add(k.refused_key_cap);
        t.refused_other = t.refused_other.saturating_add(k.refused_other);
        t.completed = t.completed.saturating_add(k.completed);
        t.panicked = t.panicked.saturating_add(k.panicked);
        t.expired = t.expired.saturating_add(k.expired);
        t.shed = t.shed.saturating_add(k.shed);
        t.cancelled = t.cancelled.saturating_add(k.cancelled);
        t.in_flight = t.in_flight.saturating_add(k.in_flight);
        t.queued = t.queued.saturating_add(k.queued);
        t.queue_wait_total = t.queue_wait_total.saturating_add(k.queue_wait_total);
        t.dequeued = t.dequeued.saturating_add(k.dequeued);
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: Option<&str>, n: u64) -> KeyStats {
        KeyStats {
            key: name.map(str::to_owned),
            accepted: n,
            refused_key_cap: n + 1,
            refused_other: n + 2,
            completed: n + 3,
            panicked: n + 4,
            expired: n + 5,
            shed: n + 6,
            cancelled: n + 7,
            in_flight: n as usize + 8,
            queued: n as usize + 9,
            queue_wait_total: Duration::from_millis(n + 10),
            dequeued: n + 11,
        }
    }

    #[test]
    fn every_refusal_is_exported_under_one_reason() {
        let mut s = PoolStats::empty("p", 1, 1);
        s.refused_full = 1;
        s.refused_timeout = 2;
        s.refused_shutting_down = 4;
        s.refused_deadline = 8;
        s.refused_key_cap = 16;
        let exported: Vec<_> = refusals(&s).collect();
        assert_eq!(exported.iter().map(|(_, n)| n).sum::<u64>(), s.refused());
        assert_eq!(
            exported,
            [
                ("full", 1),
                ("timeout", 2),
                ("shutting_down", 4),
                ("deadline", 8),
                ("key_cap", 16)
            ]
        );
    }

    #[test]
    fn all_keys_sums_the_named_keys_and_the_other_row() {
        let mut s = PoolStats::empty("p", 1, 1);
        assert!(all_keys(&s).is_none());
        s.keys = vec![key(Some("a"), 100), key(Some(""), 10)];
        s.other_keys = Some(key(None, 1));
        let t = all_keys(&s).unwrap();
        assert_eq!(t.key, None);
        assert_eq!(t.accepted, 111);
        assert_eq!(t.refused_other, 117);
        assert_eq!(t.queued, 138);
        assert_eq!(t.queue_wait_total, Duration::from_millis(141));
        // key_metrics(0): only the other row.
        s.keys.clear();
        assert_eq!(all_keys(&s).unwrap().dequeued, 12);
        // Every family has one value per label value, and a label exactly when it splits.
        for f in &KEY_FAMILIES {
            let values = (f.values)(&t);
            assert_eq!(
                f.label.is_none(),
                values.len() == 1 && values[0].0.is_empty()
            );
            assert!(f.per_key.starts_with("bulkhead_key_"));
            assert_eq!(
                f.all_keys,
                f.per_key.replacen("bulkhead_key_", "bulkhead_keyed_", 1)
            );
            assert_eq!(f.kind == Kind::Gauge, !f.per_key.ends_with("_total"));
        }
    }
}
