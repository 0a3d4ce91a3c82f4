//! Events: what the supervisor tells listeners about (refusals, panics, expiries, stuck
//! tasks and their recovery, health changes).
//!
//! Events are never raised on the submit or worker hot path. Submitters and workers only
//! bump their counters, as they always do; the supervisor thread compares counters and
//! worker states with the previous sample at each tick, derives the events, and calls the
//! listeners **on the supervisor thread**. So events arrive once per sampling interval,
//! aggregated (a `Refused` event carries how many tasks were refused for that reason during
//! the interval), and a slow listener delays only the next sample, never a task.
//!
//! A listener that panics is caught; the panic is dropped and the supervisor goes on.

use std::fmt;
use std::time::Duration;

use crate::error::RefusalReason;
use crate::metrics::Health;
use crate::sync::Arc;

/// Something the supervisor noticed during one sampling interval.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `count` tasks were refused for `reason` during the interval.
    Refused {
        /// The pool's name.
        pool: String,
        /// Why they were refused.
        reason: RefusalReason,
        /// How many, during the interval.
        count: u64,
    },
    /// `count` tasks panicked during the interval (each panic was caught).
    Panicked {
        /// The pool's name.
        pool: String,
        /// How many, during the interval.
        count: u64,
    },
    /// `count` tasks expired (waited longer than `max_queue_wait`) during the interval.
    Expired {
        /// The pool's name.
        pool: String,
        /// How many, during the interval.
        count: u64,
    },
    /// `count` tasks were shed by the pool's queue-delay controller (CoDel) during the
    /// interval.
    Shed {
        /// The pool's name.
        pool: String,
        /// How many, during the interval.
        count: u64,
    },
    /// A task has been running longer than the pool's `stuck_after`. Raised once per task.
    Stuck {
        /// The pool's name.
        pool: String,
        /// The name of the worker thread running it.
        worker: String,
        /// How long it had been running when the supervisor noticed.
        running_for: Duration,
    },
    /// A replacement thread was started for a worker stuck in a task (the pool has a
    /// [`replacement_budget`](crate::PoolBuilder::replacement_budget)).
    Replaced {
        /// The pool's name.
        pool: String,
        /// The name of the stuck worker thread; it exits when its task returns.
        worker: String,
        /// The name of the replacement worker thread.
        replacement: String,
    },
    /// A task reported as [`Stuck`](Event::Stuck) has ended.
    Recovered {
        /// The pool's name.
        pool: String,
        /// The name of the worker thread that ran it.
        worker: String,
        /// How long it had been running when last seen still running (a lower bound of its
        /// run time).
        ran_for_at_least: Duration,
    },
    /// The pool's [`Health`] changed since the previous sample.
    HealthChanged {
        /// The pool's name.
        pool: String,
        /// The previous state.
        from: Health,
        /// The new state.
        to: Health,
    },
    /// The pool's adaptive concurrency limit
    /// ([`PoolBuilder::adaptive_limit`](crate::PoolBuilder::adaptive_limit)) moved during the
    /// interval: from the limit at the previous sample to the limit now, `moves` times; `why`
    /// is the controller's reason for the last move (`"slow"`, `"dropped"`, `"increase"`,
    /// `"queue long"`, `"latency rose"`, ...).
    LimitChanged {
        /// The pool's name.
        pool: String,
        /// The limit at the previous sample.
        from: usize,
        /// The limit now.
        to: usize,
        /// How many times it moved during the interval.
        moves: u64,
        /// Why it moved last.
        why: &'static str,
    },
}

impl Event {
    /// The name of the pool the event concerns.
    pub fn pool(&self) -> &str {
        match self {
            Event::Refused { pool, .. }
            | Event::Panicked { pool, .. }
            | Event::Expired { pool, .. }
            | Event::Shed { pool, .. }
            | Event::Stuck { pool, .. }
            | Event::Replaced { pool, .. }
            | Event::Recovered { pool, .. }
            | Event::HealthChanged { pool, .. }
            | Event::LimitChanged { pool, .. } => pool,
        }
    }

    /// A short lowercase label for the kind of event (`"refused"`, `"panicked"`,
    /// `"expired"`, `"shed"`, `"stuck"`, `"replaced"`, `"recovered"`, `"health_changed"`,
    /// `"limit_changed"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Refused { .. } => "refused",
            Event::Panicked { .. } => "panicked",
            Event::Expired { .. } => "expired",
            Event::Shed { .. } => "shed",
            Event::Stuck { .. } => "stuck",
            Event::Replaced { .. } => "replaced",
            Event::Recovered { .. } => "recovered",
            Event::HealthChanged { .. } => "health_changed",
            Event::LimitChanged { .. } => "limit_changed",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool {:?}: ", self.pool())?;
        match self {
            Event::Refused { reason, count, .. } => write!(f, "{count} refused ({reason})"),
            Event::Panicked { count, .. } => write!(f, "{count} panicked"),
            Event::Expired { count, .. } => write!(f, "{count} expired in the queue"),
            Event::Shed { count, .. } => write!(f, "{count} shed by queue-delay control"),
            Event::Stuck {
                worker,
                running_for,
                ..
            } => write!(f, "{worker} stuck in a task for {running_for:?}"),
            Event::Replaced {
                worker,
                replacement,
                ..
            } => write!(f, "{worker} stuck: replaced by {replacement}"),
            Event::Recovered {
                worker,
                ran_for_at_least,
                ..
            } => write!(
                f,
                "{worker} recovered after at least {ran_for_at_least:?} in a task"
            ),
            Event::HealthChanged { from, to, .. } => write!(f, "health {from} -> {to}"),
            Event::LimitChanged {
                from,
                to,
                moves,
                why,
                ..
            } => write!(
                f,
                "concurrency limit {from} -> {to} ({moves} moves, last: {why})"
            ),
        }
    }
}

/// Receives [`Event`]s on the supervisor thread. Implemented for every
/// `Fn(&Event) + Send + Sync + 'static` closure; register with
/// [`RuntimeBuilder::on_event`](crate::RuntimeBuilder::on_event).
///
/// Return promptly: the supervisor samples no pool while a listener runs, and a shutdown
/// waits for the supervisor's last tick (within its timeout).
pub trait EventListener: Send + Sync + 'static {
    /// Called once per event, on the supervisor thread.
    fn on_event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync + 'static> EventListener for F {
    fn on_event(&self, event: &Event) {
        self(event)
    }
}

/// The listeners registered on a builder.
#[derive(Clone, Default)]
pub(crate) struct Listeners(pub(crate) Vec<Arc<dyn EventListener>>);

impl Listeners {
    /// Tells every listener; a panicking listener is caught and the others still run.
    pub(crate) fn deliver(&self, event: &Event) {
        #[cfg(feature = "tracing")]
        trace_event(event);
        for l in &self.0 {
            let call = std::panic::AssertUnwindSafe(|| l.on_event(event));
            if let Err(payload) = std::panic::catch_unwind(call) {
                crate::unwind::drop_quietly(payload);
            }
        }
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} listener(s)]", self.0.len())
    }
}

#[cfg(feature = "tracing")]
fn trace_event(event: &Event) {
    let pool = event.pool();
    let kind = event.kind();
    match event {
        Event::HealthChanged {
            to: Health::Healthy,
            ..
        }
        | Event::Recovered { .. } => {
            tracing::info!(target: "bulkhead", pool, kind, "{event}")
        }
        _ => tracing::warn!(target: "bulkhead", pool, kind, "{event}"),
    }
}
