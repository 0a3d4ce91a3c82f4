//! Adaptive concurrency limits: controllers that move a pool's in-flight limit (tasks
//! admitted and not yet ended) between a minimum and the pool's maximum (threads + queue
//! capacity) from measured latency, after Netflix's `concurrency-limits` (AIMD, Vegas,
//! Gradient2).
//!
//! A controller is a plain state machine: it is fed one sample per task (the task's latency,
//! the number in flight when it ended, whether it was dropped: expired or shed), in order,
//! and answers with a new limit and why, or nothing. It reads no clock, so the tests drive it
//! with scripted latency sequences. The pool owns one per pool
//! (`PoolBuilder::adaptive_limit`) and applies its limit to admission.
//!
//! This module imports nothing from the crate.

use std::fmt;
use std::time::Duration;

/// Which controller moves a pool's in-flight limit, with its parameters; see
/// [`PoolBuilder::adaptive_limit`](crate::PoolBuilder::adaptive_limit).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum LimitAlgorithm {
    /// Additive increase, multiplicative decrease: +1 while the pool is at least half full
    /// and nothing is dropped or slower than `timeout`; times `backoff` (0.5 to 0.95) on a
    /// dropped or slow task. Simple and robust; reacts to failures, not to latency trends.
    Aimd {
        /// A task slower than this counts as a failure.
        timeout: Duration,
        /// The factor the limit is multiplied by on a failure.
        backoff: f64,
    },
    /// TCP Vegas: estimates the queue from the ratio of the smallest latency seen (no load)
    /// to the current one, `queue = limit x (1 - no_load / latency)`, grows while the queue is
    /// small (under `3 log10(limit)`) and shrinks when it is large (over `6 log10(limit)`).
    /// Good when latency grows with queueing (CPU work).
    Vegas,
    /// Gradient2: compares a short-term latency with a long-term average; the limit follows
    /// `limit x clamp(tolerance x long / short, 0.5, 1)` plus a small queue allowance,
    /// smoothed. Recovers by decaying the long-term average when latency drops. Good for
    /// blocking calls to a downstream whose latency changes.
    ///
    /// Where the pool measures queue wait (metrics on, or the end-to-end signal), the queue
    /// is kept short: the limit is at most the tasks actually running (in flight, times the
    /// share of their time spent running rather than queued, by Little's law) plus the
    /// allowance, and the allowance (`sqrt(limit)` at most) shrinks in proportion to that
    /// share. Tasks that wait as long as they run earn half of it; a standing queue, none.
    /// It starts at its minimum, not wide open, and earns the rest.
    Gradient2 {
        /// How much slower than the long-term average the short-term latency may be before
        /// the limit shrinks (1.5 in concurrency-limits).
        tolerance: f64,
    },
}

impl LimitAlgorithm {
    /// AIMD with a 1 s timeout and a 0.9 backoff.
    pub const AIMD: LimitAlgorithm = LimitAlgorithm::Aimd {
        timeout: Duration::from_secs(1),
        backoff: 0.9,
    };
    /// Gradient2 with a tolerance of 1.5.
    pub const GRADIENT2: LimitAlgorithm = LimitAlgorithm::Gradient2 { tolerance: 1.5 };

    /// The name used in configuration and events: `aimd`, `vegas`, `gradient2`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LimitAlgorithm::Aimd { .. } => "aimd",
            LimitAlgorithm::Vegas => "vegas",
            LimitAlgorithm::Gradient2 { .. } => "gradient2",
        }
    }

    /// The limit a controller starts at, between `min` and `max`: AIMD and Vegas start wide
    /// open and learn downward; Gradient2 starts at its minimum (no queue beyond it) and
    /// grows while the pool uses what it has and queued tasks start quickly, so a downstream
    /// that slows down before any task has ended finds a short queue, not a full one.
    pub(crate) fn initial_limit(&self, min: usize, max: usize) -> usize {
        match self {
            LimitAlgorithm::Gradient2 { .. } => min.clamp(1, max.max(1)),
            LimitAlgorithm::Aimd { .. } | LimitAlgorithm::Vegas => max,
        }
    }

    /// What is wrong with the parameters, if anything.
    pub(crate) fn check(&self) -> Result<(), String> {
        match *self {
            LimitAlgorithm::Aimd { timeout, backoff } => {
                if timeout.is_zero() {
                    return Err("aimd timeout must be greater than zero".into());
                }
                if !(0.5..=0.95).contains(&backoff) {
                    return Err(format!(
                        "aimd backoff must be between 0.5 and 0.95, got {backoff}"
                    ));
                }
                Ok(())
            }
            LimitAlgorithm::Vegas => Ok(()),
            LimitAlgorithm::Gradient2 { tolerance } => {
                if !(1.0..=10.0).contains(&tolerance) {
                    return Err(format!(
                        "gradient2 tolerance must be between 1 and 10, got {tolerance}"
                    ));
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for LimitAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which latency a pool's adaptive limit reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LimitSignal {
    /// The task's run time: for CPU work, where queueing in front of the pool is what the
    /// limit controls and run time grows with contention.
    #[default]
    RunTime,
    /// Queue wait plus run time: for blocking calls, where a slow downstream shows in both.
    EndToEnd,
}

/// One sample: a task ended (or was dropped).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// The task's latency (as the pool's signal measures it), nanoseconds.
    pub(crate) latency: u64,
    /// How long it waited in the queue, nanoseconds (0 where the pool does not stamp
    /// submissions: then the controller assumes no queueing).
    pub(crate) wait: u64,
    /// How long it ran, nanoseconds.
    pub(crate) run: u64,
    /// Tasks in flight (admitted, not ended) when it ended, itself included.
    pub(crate) inflight: usize,
    /// Expired or shed instead of run.
    pub(crate) dropped: bool,
}

/// A controller's state; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    algorithm: LimitAlgorithm,
    min: usize,
    max: usize,
    /// The limit as a real number, so that small steps add up.
    limit: f64,
    /// The limit applied: `limit` rounded; for Gradient2, moved only when `limit` is a
    /// whole task away from it or at a bound, so that a limit whose own queue wait feeds
    /// back into it does not flip between two neighbours.
    applied: usize,
    /// Vegas: the smallest latency seen (the no-load latency), reset every `PROBE_EVERY`.
    no_load: u64,
    samples: u64,
    /// Gradient2: the long-term average latency (an exponential average).
    long: f64,
    /// Gradient2: short-term averages of queue wait and run time (exponential, over about
    /// `SHORT_WINDOW` samples), for the share of in-flight time spent running.
    wait_avg: f64,
    run_avg: f64,
}

/// Vegas forgets its no-load latency this often (samples), so a lasting change of the
/// baseline (a slower downstream for good) is learnt.
const PROBE_EVERY: u64 = 1000;
/// Gradient2's long-term window, in samples.
const LONG_WINDOW: f64 = 600.0;
/// Gradient2's smoothing of the limit.
const SMOOTHING: f64 = 0.2;
/// Gradient2's window for the queue wait and run time averages, in samples.
const SHORT_WINDOW: f64 = 16.0;

impl Controller {
    /// A controller starting at `initial` (clamped into `[min, max]`).
    pub(crate) fn new(algorithm: LimitAlgorithm, min: usize, max: usize, initial: usize) -> Self {
        let min = min.max(1);
        let max = max.max(min);
        Controller {
            algorithm,
            min,
            max,
            limit: initial.clamp(min, max) as f64,
            applied: initial.clamp(min, max),
            no_load: u64::MAX,
            samples: 0,
            long: 0.0,
            wait_avg: 0.0,
            run_avg: 0.0,
        }
    }

    /// The limit now.
    pub(crate) fn limit(&self) -> usize {
        self.applied
    }

    /// The bounds, `(min, max)`.
    #[cfg(test)]
    fn bounds(&self) -> (usize, usize) {
        (self.min, self.max)
    }

    /// Feeds one sample; returns the new limit and why, if it changed.
    pub(crate) fn sample(&mut self, s: Sample) -> Option<(usize, &'static str)> {
        let before = self.limit();
        self.samples += 1;
        let latency = s.latency.max(1) as f64;
        let (next, why) = match self.algorithm {
            LimitAlgorithm::Aimd { timeout, backoff } => {
                if s.dropped || s.latency > timeout.as_nanos() as u64 {
                    (
                        self.limit * backoff,
                        if s.dropped { "dropped" } else { "slow" },
                    )
                } else if s.inflight * 2 >= before {
                    (self.limit + 1.0, "increase")
                } else {
                    return None;
                }
            }
            LimitAlgorithm::Vegas => {
                if self.samples % PROBE_EVERY == 0 {
                    self.no_load = u64::MAX;
                }
                self.no_load = self.no_load.min(s.latency.max(1));
                let limit = self.limit.max(1.0);
                let log = limit.log10().max(1.0);
                if s.dropped {
                    (limit - log, "dropped")
                } else if s.inflight * 2 < before {
                    // Not using what it has: no evidence either way.
                    return None;
                } else {
                    let queue = (limit * (1.0 - self.no_load as f64 / latency)).ceil();
                    if queue <= log {
                        (limit + 6.0 * log, "queue empty")
                    } else if queue < 3.0 * log {
                        (limit + log, "queue small")
                    } else if queue > 6.0 * log {
                        (limit - log, "queue long")
                    } else {
                        return None;
                    }
                }
            }
            LimitAlgorithm::Gradient2 { tolerance } => {
                if self.long == 0.0 {
                    self.long = latency;
                } else {
                    let n = (self.samples as f64).min(LONG_WINDOW);
                    self.long += (latency - self.long) / n;
                }
                // A long-term average far above today's latency is stale (the downstream
                // healed): let it catch up fast, so the limit recovers.
                if self.long / latency > 2.0 {
                    self.long *= 0.95;
                }
                if !s.dropped {
                    let n = (self.samples as f64).min(SHORT_WINDOW);
                    self.wait_avg += (s.wait as f64 - self.wait_avg) / n;
                    self.run_avg += (s.run as f64 - self.run_avg) / n;
                }
                if s.dropped {
                    (self.limit / 2.0, "dropped")
                } else if s.inflight * 2 < before {
                    return None;
                } else {
                    let gradient = (tolerance * self.long / latency).clamp(0.5, 1.0);
                    // The share of a task's time in flight spent running, not queued: by
                    // Little's law, `inflight x running` tasks are on a thread, the rest
                    // queued. 1 where the pool measures no wait.
                    let running = if self.wait_avg > 0.0 {
                        self.run_avg / (self.run_avg + self.wait_avg)
                    } else {
                        1.0
                    };
                    let queue = self.limit.sqrt().max(1.0) * running;
                    let busy = s.inflight as f64 * running;
                    let target = (self.limit * gradient).min(busy) + queue;
                    let next = self.limit * (1.0 - SMOOTHING) + target * SMOOTHING;
                    (
                        next,
                        if gradient < 1.0 {
                            "latency rose"
                        } else if busy + queue < self.limit {
                            "queue long"
                        } else {
                            "latency steady"
                        },
                    )
                }
            }
        };
        self.limit = next.clamp(self.min as f64, self.max as f64);
        let hysteresis = matches!(self.algorithm, LimitAlgorithm::Gradient2 { .. });
        let at_bound = self.limit <= self.min as f64 || self.limit >= self.max as f64;
        if !hysteresis || at_bound || (self.limit - self.applied as f64).abs() >= 1.0 {
            self.applied = self.limit.round() as usize;
        }
        let after = self.limit();
        (after != before).then_some((after, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Feeds `n` samples of `latency` ms, one every ms, with the pool as full as the limit
    /// allows (`inflight == limit`); returns the limits seen after each sample.
    fn feed(
        c: &mut Controller,
        clock: &mut u64,
        n: usize,
        latency_ms: u64,
        dropped: bool,
    ) -> Vec<usize> {
        (0..n)
            .map(|_| {
                *clock += MS;
                let inflight = c.limit();
                c.sample(Sample {
                    latency: latency_ms * MS,
                    wait: 0,
                    run: latency_ms * MS,
                    inflight,
                    dropped,
                });
                c.limit()
            })
            .collect()
    }

    fn all(algorithms: &[LimitAlgorithm]) -> Vec<Controller> {
        algorithms
            .iter()
            .map(|a| Controller::new(*a, 2, 64, 16))
            .collect()
    }

    const ALGORITHMS: [LimitAlgorithm; 3] = [
        LimitAlgorithm::Aimd {
            timeout: Duration::from_millis(100),
            backoff: 0.9,
        },
        LimitAlgorithm::Vegas,
        LimitAlgorithm::GRADIENT2,
    ];

    #[test]
    fn steady_load_settles_and_never_oscillates() {
        for mut c in all(&ALGORITHMS) {
            let mut clock = 0;
            feed(&mut c, &mut clock, 5_000, 5, false);
            // Settled: the last 2,000 samples of the same latency do not move it.
            let tail = feed(&mut c, &mut clock, 2_000, 5, false);
            assert!(
                tail.windows(2).all(|w| w[0] == w[1]),
                "{}: still moving on steady load: {:?}",
                c.algorithm,
                &tail[..20]
            );
            assert!(tail[0] >= c.bounds().0 && tail[0] <= c.bounds().1);
        }
    }

    #[test]
    fn a_slowdown_shrinks_the_limit_and_the_heal_recovers_it() {
        for mut c in all(&ALGORITHMS) {
            let mut clock = 0;
            let healthy = *feed(&mut c, &mut clock, 3_000, 5, false).last().unwrap();
            // The downstream slows from 5 ms to 200 ms: AIMD sees it as slow (over its
            // timeout), Vegas as a long queue, Gradient2 as a rising latency.
            // (Vegas re-learns its no-load latency every 1,000 samples, so a lasting
            // slowdown becomes its new baseline: the lowest limit during it is what counts.)
            let slow = *feed(&mut c, &mut clock, 3_000, 200, false)
                .iter()
                .min()
                .unwrap();
            assert!(
                slow < healthy,
                "{}: {healthy} before, {slow} during the slowdown",
                c.algorithm
            );
            // Healed: back to the healthy limit within a bounded number of samples.
            let after = feed(&mut c, &mut clock, 5_000, 5, false);
            let back = after.iter().position(|&l| l >= healthy);
            assert!(
                back.is_some(),
                "{}: never recovered to {healthy} (ended at {})",
                c.algorithm,
                after.last().unwrap()
            );
        }
    }

    #[test]
    fn dropped_tasks_shrink_the_limit_down_to_the_minimum_and_no_further() {
        for mut c in all(&ALGORITHMS) {
            let mut clock = 0;
            let limits = feed(&mut c, &mut clock, 500, 5, true);
            assert_eq!(*limits.last().unwrap(), 2, "{}", c.algorithm);
        }
    }

    #[test]
    fn an_idle_pool_keeps_its_limit() {
        // Using a quarter of the limit is no evidence: Vegas and Gradient2 hold still.
        for a in [LimitAlgorithm::Vegas, LimitAlgorithm::GRADIENT2] {
            let mut c = Controller::new(a, 2, 64, 16);
            for _ in 0..1_000u64 {
                let r = c.sample(Sample {
                    latency: 5 * MS,
                    wait: 0,
                    run: 5 * MS,
                    inflight: 4,
                    dropped: false,
                });
                assert!(r.is_none(), "{a}");
            }
            assert_eq!(c.limit(), 16);
        }
    }

    /// A saturated pool of `threads` threads whose tasks run `run_ms`: in flight is the
    /// limit, the `limit - threads` queued tasks drain in waves of `threads`, so each waits
    /// `(limit - threads) / threads` run times; the signal is end to end (wait + run).
    /// Returns the limits seen after each sample.
    fn feed_queued(
        c: &mut Controller,
        n: usize,
        threads: usize,
        run_ms: u64,
        wait_known: bool,
    ) -> Vec<usize> {
        (0..n)
            .map(|_| {
                let inflight = c.limit();
                let queued = inflight.saturating_sub(threads) as u64;
                let wait = queued * run_ms * MS / threads as u64;
                c.sample(Sample {
                    latency: wait + run_ms * MS,
                    wait: if wait_known { wait } else { 0 },
                    run: run_ms * MS,
                    inflight,
                    dropped: false,
                });
                c.limit()
            })
            .collect()
    }

    #[test]
    fn gradient2_keeps_the_queue_short_where_queue_wait_is_measured() {
        // Wide open (8 threads + a queue of 64) on a saturated pool of 50 ms tasks: queued
        // tasks wait whole waves, so the allowance above the threads shrinks, and the limit
        // settles at the threads plus a couple of queued tasks, then never moves.
        let mut c = Controller::new(LimitAlgorithm::GRADIENT2, 1, 72, 72);
        feed_queued(&mut c, 3_000, 8, 50, true);
        let tail = feed_queued(&mut c, 2_000, 8, 50, true);
        assert!(tail.windows(2).all(|w| w[0] == w[1]), "{:?}", &tail[..20]);
        assert!((8..=11).contains(&tail[0]), "settled at {}", tail[0]);
        // The same pool measuring no wait sees a steady end-to-end latency (its queue is
        // steady too) and keeps its queue: the limit stays wide open.
        let mut blind = Controller::new(LimitAlgorithm::GRADIENT2, 1, 72, 72);
        let tail = feed_queued(&mut blind, 3_000, 8, 50, false);
        assert_eq!(*tail.last().unwrap(), 72);
    }

    #[test]
    fn gradient2_with_a_short_queue_grows_from_its_minimum() {
        // It starts at its minimum; AIMD and Vegas start wide open.
        assert_eq!(LimitAlgorithm::GRADIENT2.initial_limit(8, 72), 8);
        assert_eq!(LimitAlgorithm::GRADIENT2.initial_limit(0, 72), 1);
        assert_eq!(LimitAlgorithm::Vegas.initial_limit(8, 72), 72);
        assert_eq!(ALGORITHMS[0].initial_limit(8, 72), 72);
        // A pool using all it has, whose tasks never wait (more threads than the limit),
        // grows to its maximum.
        let mut c = Controller::new(LimitAlgorithm::GRADIENT2, 8, 72, 8);
        let limits = feed_queued(&mut c, 2_000, 1_000, 5, true);
        assert_eq!(*limits.last().unwrap(), 72);
        assert!(
            limits.windows(2).all(|w| w[0] <= w[1]),
            "grew and never fell"
        );
        // One with 8 threads grows only to the threads plus a short queue, and stays there.
        let mut c = Controller::new(LimitAlgorithm::GRADIENT2, 8, 72, 8);
        let limits = feed_queued(&mut c, 3_000, 8, 5, true);
        let settled = *limits.last().unwrap();
        assert!((9..=11).contains(&settled), "settled at {settled}");
        assert!(limits[2_000..].iter().all(|&l| l == settled));
    }

    #[test]
    fn parameters_are_checked() {
        assert!(LimitAlgorithm::Aimd {
            timeout: Duration::ZERO,
            backoff: 0.9
        }
        .check()
        .is_err());
        assert!(LimitAlgorithm::Aimd {
            timeout: Duration::from_secs(1),
            backoff: 0.1
        }
        .check()
        .is_err());
        assert!(LimitAlgorithm::Gradient2 { tolerance: 0.5 }
            .check()
            .is_err());
        for a in ALGORITHMS {
            assert!(a.check().is_ok());
        }
    }
}
