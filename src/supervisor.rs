//! The supervisor: one thread per runtime that samples every pool at a fixed interval.
//!
//! At each tick it, for every pool:
//!
//! 1. takes from each worker's latency recorder what it counted since the last tick and adds
//!    it into the pool's cumulative histograms and the open interval (see
//!    [`metrics`](crate::metrics)); a recorder whose task count has not moved since, or whose
//!    slot no worker has used, is skipped without reading its buckets;
//! 2. reads each live worker's CPU time and last CPU from `/proc/self/task/<tid>/stat`,
//!    and each slot's retired total: the exact CPU time that exited workers added as their
//!    thread's last act, which replaces their last `/proc` reading (the rules that keep a
//!    worker from being counted twice are on `Track::collect_cpu`);
//! 3. closes the interval: the open histograms become the "last interval" view;
//! 4. compares counters and worker states with the previous tick and derives the
//!    [`Event`]s: refusals per reason, panics, expiries, tasks newly past `stuck_after`,
//!    stuck tasks that ended, health changes;
//! 5. releases its state lock, then calls the listeners on this thread and, with the
//!    `metrics` feature, publishes the tick's figures through the `metrics` facade
//!    (`export/facade.rs`).
//!
//! [`Runtime::snapshot`](crate::Runtime::snapshot) shares the state: it runs steps 1 and 2
//! on the caller's thread (so cumulative counts are exact at the moment of the call) and
//! reads the last interval the supervisor closed; it derives no events.
//!
//! # Cost
//!
//! What a tick reads follows the workers, not the slots a pool reserves (`max_threads_limit`
//! up to 1024): per slot, a few loads (its state, its recorder's task count, its stuck-task
//! stamp and outcome counters); per live worker, one `/proc` read; bucket arrays only for
//! recorders that recorded since the last tick. An idle runtime's supervisor stays well under
//! 1 % of a core (`cargo run --release --example supervisor_cost`).
//!
//! The thread stops when the runtime shuts down, after one final tick so that events of the
//! last partial interval are delivered.

use std::collections::BTreeSet;
use std::io;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};

use crate::buckets::{LatencyBuckets, LatencyHistograms};
use crate::cpuset::CpuSet;
use crate::error::RefusalReason;
use crate::events::{Event, Listeners};
use crate::metrics::{
    CpuCapStatus, CpuThrottling, Health, Latencies, PoolLatency, PoolSnapshot, RuntimeSnapshot,
    StuckTask,
};
use crate::placement::CapGroup;
use crate::pool::{Pool, PoolShared};
use crate::stats::PoolStats;
use crate::sync::{Arc, Mutex};
use crate::sys;

/// The supervisor thread's handle, owned by the runtime.
pub(crate) struct Supervisor {
    pub(crate) state: Arc<Mutex<State>>,
    stop_tx: Mutex<Option<Sender<()>>>,
    done_rx: Receiver<()>,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl Supervisor {
    pub(crate) fn start(
        pools: &[Pool],
        interval: Duration,
        metrics: bool,
        latency_buckets: Vec<Duration>,
        listeners: Listeners,
    ) -> io::Result<Supervisor> {
        let mut state = State::new(pools, interval, metrics);
        state.latency_buckets = latency_buckets;
        let state = Arc::new(Mutex::new(state));
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let (done_tx, done_rx) = unbounded::<()>();
        let thread_state = state.clone();
        let spare = spare_cpus(pools);
        let join = thread::Builder::new()
            .name("bulkhead-supervisor".to_owned())
            .spawn(move || {
                let _done = done_tx;
                stay_out_of_the_way(spare.as_deref());
                run(&thread_state, &stop_rx, interval, &listeners);
            })?;
        Ok(Supervisor {
            state,
            stop_tx: Mutex::new(Some(stop_tx)),
            done_rx,
            join: Mutex::new(Some(join)),
        })
    }

    /// Asks the thread to take its final sample and stop, and waits for it until `deadline`.
    /// Idempotent. If the deadline passes (a listener hangs), the thread is detached.
    pub(crate) fn stop(&self, deadline: Option<Instant>) {
        drop(self.stop_tx.lock().take());
        let finished = match deadline {
            None => self.done_rx.recv().is_err(),
            Some(d) => matches!(
                self.done_rx.recv_deadline(d),
                Err(RecvTimeoutError::Disconnected)
            ),
        };
        if finished {
            if let Some(join) = self.join.lock().take() {
                let _ = join.join();
            }
        }
    }

    pub(crate) fn snapshot(&self) -> RuntimeSnapshot {
        self.state.lock().snapshot(Instant::now())
    }
}

/// The CPUs this process may use that no pool is pinned to, if some pool is pinned and some
/// CPU is left over; `None` otherwise (no pool pinned, or the pinned pools cover them all).
fn spare_cpus(pools: &[Pool]) -> Option<Vec<usize>> {
    let pinned: Vec<&CpuSet> = pools
        .iter()
        .filter_map(|p| p.shared.config.cpu.cpus.as_ref())
        .collect();
    if pinned.is_empty() {
        return None;
    }
    let spare: Vec<usize> = CpuSet::available()
        .ok()?
        .iter()
        .filter(|&c| !pinned.iter().any(|set| set.contains(c)))
        .collect();
    (!spare.is_empty()).then_some(spare)
}

/// Issue 14: the supervisor's tick (a `/proc` read per worker, merging histograms) must not
/// run where it delays a pool's tasks. It runs under `SCHED_BATCH`, so its wake-up at each
/// tick never preempts a running worker (it waits for the next scheduling point) while it
/// keeps a normal share of the CPU, and, when some pools are pinned and CPUs are left over,
/// on those CPUs. Both are best effort: a refusal leaves the thread as it was. (Before: in
/// the pinned 1+1 layout, with the neighbour's CPU saturated, the tick woke on the healthy
/// pool's CPU and preempted its worker: p99.9 x1.51 of alone.) Not `SCHED_IDLE`: on a
/// saturated machine, exactly when overload matters, an idle-class supervisor got almost no
/// CPU, and stuck detection, events and the run-time estimate deadlines predict with came
/// seconds late (seen under stress-ng).
fn stay_out_of_the_way(spare: Option<&[usize]>) {
    let _ = sys::set_current_sched_policy(sys::SCHED_BATCH);
    if let Some(cpus) = spare {
        let _ = sys::set_current_affinity(cpus);
    }
}

fn run(state: &Mutex<State>, stop_rx: &Receiver<()>, interval: Duration, listeners: &Listeners) {
    let mut next = Instant::now() + interval;
    loop {
        let stop = match stop_rx.recv_deadline(next) {
            Err(RecvTimeoutError::Timeout) => false,
            // The sender is dropped (or, never, used) when the runtime shuts down.
            _ => true,
        };
        let now = Instant::now();
        let mut state_now = state.lock();
        let events = state_now.tick(now);
        #[cfg(feature = "metrics")]
        let batch = state_now.facade_batch(now);
        drop(state_now);
        // Listeners and the `metrics` recorder run outside the state lock, so a slow one
        // never blocks `snapshot()`.
        for e in &events {
            listeners.deliver(e);
        }
        #[cfg(feature = "metrics")]
        batch.publish();
        if stop {
            return;
        }
        // Keep the cadence; if a tick overran, start afresh from now rather than bursting.
        next += interval;
        let now = Instant::now();
        if next <= now {
            next = now + interval;
        }
    }
}

/// A pool's histograms: since start, the interval being filled, the last closed interval.
struct TrackLatency {
    cumulative: Latencies,
    open: Latencies,
    last_interval: Latencies,
    last_interval_length: Duration,
}

/// What the supervisor remembers about one pool between ticks.
struct Track {
    shared: Arc<PoolShared>,
    /// `None` with metrics off: no histogram memory is allocated then.
    latency: Option<TrackLatency>,
    /// Per worker slot: the CPU time of its workers (see `collect_cpu`).
    cpu: Vec<SlotCpu>,
    cpus_seen: BTreeSet<usize>,
    /// Whether any CPU time was measured: a `/proc` reading or a retired worker's clock.
    /// Without one, the snapshot reports no CPU time rather than a false zero.
    cpu_measured: bool,
    /// Counters at the previous tick, for event deltas.
    prev: PoolStats,
    /// Per worker: the `busy_stamp` of the task already reported stuck, and how long it had
    /// run when last seen.
    flagged: Vec<Option<(u64, Duration)>>,
    health: Health,
    /// The adaptive limit at the previous tick and how many moves had been seen then.
    limit: usize,
    limit_moves: u64,
}

/// The CPU time of one worker slot's workers, as the supervisor last saw it.
#[derive(Clone, Copy, Default)]
struct SlotCpu {
    /// The slot's retired total ([`WorkerSlot::retired_cpu_nanos`]) as last read: the exact
    /// CPU time of the workers that have left the slot and added their own clock.
    ///
    /// [`WorkerSlot::retired_cpu_nanos`]: crate::stats::WorkerSlot::retired_cpu_nanos
    settled: u64,
    /// The thread id `sampled` was read from (0: none).
    tid: i32,
    /// The last `/proc` reading of worker `tid`, which has not added its own time yet.
    sampled: Duration,
}

impl SlotCpu {
    fn total(&self) -> Duration {
        Duration::from_nanos(self.settled) + self.sampled
    }
}

impl Track {
    /// Step 2: the CPU time of the pool's workers, per slot, without losing what a worker
    /// burnt after its last `/proc` reading and without counting any worker twice.
    ///
    /// A slot's CPU time is `settled` (the exact time of the workers that have left it, each
    /// added by the worker itself as its thread's last act, after it marked the slot exited)
    /// plus `sampled` (the last `/proc` reading of worker `tid`, which has not left yet). The
    /// rules, per slot, in this order:
    ///
    /// 1. Read the retired total first (acquire, paired with the worker's release add). If it
    ///    moved, a worker left and its exact time is now in `settled`: drop `sampled`. Its
    ///    worker is that one, or a later worker of the same slot, which is read again in
    ///    step 3 if still live, or else moves the total again with its own time.
    /// 2. If the slot is not live now, stop: an exited worker's thread id may already name
    ///    another thread. Its last reading stands in for it (a lower bound) until its exact
    ///    time moves the total, a moment later.
    /// 3. If the slot's thread id is not `tid`, the worker read before has left (a new one
    ///    starts in a slot only after the previous thread was joined): drop its reading, its
    ///    exact time arrives in the total. Then read the live worker.
    ///
    /// Because the total is read before the slot's state, a total that includes a worker's
    /// exact time comes with that worker's slot seen exited (or reused), so the worker is
    /// never read from `/proc` again: no double count. A worker is missing from the sum only
    /// between a rule that dropped its reading and the moment its own time arrives (rule 3,
    /// or rule 1 for a later worker that exited right after being read): never once its
    /// thread has returned, which `shutdown()` waits for.
    fn collect_cpu(&mut self) {
        for (w, c) in self.shared.workers.iter().zip(self.cpu.iter_mut()) {
            // Slots no worker has used yet cost one load.
            if !w.was_used() {
                continue;
            }
            let settled = w.retired_cpu_nanos();
            if settled != c.settled {
                self.cpu_measured = true;
                c.settled = settled;
                c.sampled = Duration::ZERO;
                c.tid = 0;
            }
            if w.has_exited() {
                continue;
            }
            let Some(tid) = w.tid() else { continue };
            if tid != c.tid {
                c.sampled = Duration::ZERO;
                c.tid = tid;
            }
            if let Some(stat) = sys::thread_stat(tid) {
                self.cpu_measured = true;
                c.sampled = stat.cpu_time;
                self.cpus_seen.insert(stat.last_cpu);
            }
        }
    }
}

/// The supervisor's state, shared with `Runtime::snapshot`.
pub(crate) struct State {
    started: Instant,
    interval: Duration,
    metrics: bool,
    last_tick: Instant,
    /// Bounds of the cumulative latency buckets ([`LatencyBuckets`]), increasing.
    latency_buckets: Vec<Duration>,
    pools: Vec<Track>,
}

impl State {
    fn new(pools: &[Pool], interval: Duration, metrics: bool) -> Self {
        let now = Instant::now();
        State {
            started: now,
            interval,
            metrics,
            last_tick: now,
            latency_buckets: crate::buckets::DEFAULT_LATENCY_BUCKETS.to_vec(),
            pools: pools
                .iter()
                .map(|p| {
                    let shared = p.shared.clone();
                    let n = shared.workers.len();
                    Track {
                        latency: metrics.then(|| TrackLatency {
                            cumulative: Latencies::new(),
                            open: Latencies::new(),
                            last_interval: Latencies::new(),
                            last_interval_length: Duration::ZERO,
                        }),
                        cpu: vec![SlotCpu::default(); n],
                        cpus_seen: BTreeSet::new(),
                        cpu_measured: false,
                        prev: shared.stats(),
                        flagged: vec![None; n],
                        health: Health::Healthy,
                        limit: shared
                            .adaptive
                            .as_ref()
                            .map_or(0, |a| a.current.load(crate::sync::Ordering::Relaxed)),
                        limit_moves: 0,
                        shared,
                    }
                })
                .collect(),
        }
    }

    /// Steps 1 and 2: collect latencies and CPU readings from every pool. Returns how many
    /// recorders had something new (and so had their buckets read).
    fn collect(&mut self) -> usize {
        let mut read = 0;
        for t in &mut self.pools {
            if let (Some(recorders), Some(l)) = (&t.shared.recorders, &mut t.latency) {
                // A slot never used has recorded nothing; a recorder whose head has not
                // moved is skipped after two loads. So an idle pool costs a few loads per
                // slot, whatever its `max_threads_limit`.
                let workers = &t.shared.workers;
                read +=
                    recorders.take_into(|i| workers[i].was_used(), &mut l.cumulative, &mut l.open);
            }
            t.collect_cpu();
        }
        read
    }

    /// One supervisor tick: collect, close the interval, derive the events.
    fn tick(&mut self, now: Instant) -> Vec<Event> {
        let _ = self.collect();
        let length = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        let mut events = Vec::new();
        for t in &mut self.pools {
            if let Some(l) = &mut t.latency {
                std::mem::swap(&mut l.last_interval, &mut l.open);
                l.open.reset();
                l.last_interval_length = length;
                // The run-time estimate deadline admission predicts with: the mean run
                // time of the interval just closed (kept while an interval ran nothing).
                if !l.last_interval.run.is_empty() {
                    let mean = l.last_interval.run.mean().max(1.0) as u64;
                    t.shared
                        .est_run_nanos
                        .store(mean, crate::sync::Ordering::Relaxed);
                }
            }
            let stats = t.shared.stats();
            let name = &*t.shared.name;
            let delta = |now: u64, before: u64| now.saturating_sub(before);
            for (reason, count) in [
                (
                    RefusalReason::Full,
                    delta(stats.refused_full, t.prev.refused_full),
                ),
                (
                    RefusalReason::Timeout,
                    delta(stats.refused_timeout, t.prev.refused_timeout),
                ),
                (
                    RefusalReason::ShuttingDown,
                    delta(stats.refused_shutting_down, t.prev.refused_shutting_down),
                ),
                (
                    RefusalReason::Deadline,
                    delta(stats.refused_deadline, t.prev.refused_deadline),
                ),
                (
                    RefusalReason::KeyCap,
                    delta(stats.refused_key_cap, t.prev.refused_key_cap),
                ),
            ] {
                if count > 0 {
                    events.push(Event::Refused {
                        pool: name.to_owned(),
                        reason,
                        count,
                    });
                }
            }
            let panicked = delta(stats.panicked, t.prev.panicked);
            if panicked > 0 {
                events.push(Event::Panicked {
                    pool: name.to_owned(),
                    count: panicked,
                });
            }
            let expired = delta(stats.expired, t.prev.expired);
            if expired > 0 {
                events.push(Event::Expired {
                    pool: name.to_owned(),
                    count: expired,
                });
            }
            let shed = delta(stats.shed, t.prev.shed);
            if shed > 0 {
                events.push(Event::Shed {
                    pool: name.to_owned(),
                    count: shed,
                });
            }
            // Stuck tasks: flag each task once, by its start stamp; report its end.
            let now_nanos = t.shared.now_nanos();
            let stuck_after = t.shared.config.stuck_after;
            for (i, w) in t.shared.workers.iter().enumerate() {
                let stamp = w.busy_stamp();
                let running_for = w.busy_for(now_nanos);
                match t.flagged[i] {
                    Some((flagged, _)) if flagged == stamp => {
                        t.flagged[i] = Some((stamp, running_for.unwrap_or_default()));
                    }
                    Some((_, last_seen)) => {
                        events.push(Event::Recovered {
                            pool: name.to_owned(),
                            worker: w.thread_name.clone(),
                            ran_for_at_least: last_seen,
                        });
                        t.flagged[i] = None;
                    }
                    None => {}
                }
                if let (None, Some(d)) = (t.flagged[i], running_for) {
                    if d > stuck_after {
                        events.push(Event::Stuck {
                            pool: name.to_owned(),
                            worker: w.thread_name.clone(),
                            running_for: d,
                        });
                        t.flagged[i] = Some((stamp, d));
                    }
                }
                // A stuck worker not yet replaced: start a replacement if the pool's budget
                // allows (tried again at every tick, since budget frees up as others return).
                if let Some((stamp, _)) = t.flagged[i] {
                    if !w.is_replaced() {
                        if let Some(r) = t.shared.replace_stuck(i, stamp) {
                            events.push(Event::Replaced {
                                pool: name.to_owned(),
                                worker: w.thread_name.clone(),
                                replacement: t.shared.workers[r].thread_name.clone(),
                            });
                        }
                    }
                }
            }
            if let Some(a) = &t.shared.adaptive {
                let moves = a.changes.load(crate::sync::Ordering::Relaxed);
                if moves != t.limit_moves {
                    let to = a.current.load(crate::sync::Ordering::Relaxed);
                    let why = a.last_change.lock().map_or("", |(_, _, why)| why);
                    events.push(Event::LimitChanged {
                        pool: name.to_owned(),
                        from: t.limit,
                        to,
                        moves: moves - t.limit_moves,
                        why,
                    });
                    t.limit = to;
                    t.limit_moves = moves;
                }
            }
            let health = health_of(&t.shared, &stats, &t.prev, now_nanos);
            if health != t.health {
                events.push(Event::HealthChanged {
                    pool: name.to_owned(),
                    from: t.health,
                    to: health,
                });
                t.health = health;
            }
            t.prev = stats;
        }
        events
    }

    pub(crate) fn snapshot(&mut self, now: Instant) -> RuntimeSnapshot {
        let _ = self.collect();
        self.current(now)
    }

    /// What the `metrics` facade gets after a tick: the snapshot of what the tick collected
    /// and the interval it closed.
    #[cfg(feature = "metrics")]
    fn facade_batch(&self, now: Instant) -> crate::export::facade::Batch {
        let intervals = self
            .pools
            .iter()
            .map(|t| t.latency.as_ref().map(|l| &l.last_interval));
        crate::export::facade::Batch::new(self.current(now), intervals)
    }

    /// The snapshot of what was collected last, without collecting.
    fn current(&self, now: Instant) -> RuntimeSnapshot {
        let metrics = self.metrics;
        let bounds = &self.latency_buckets;
        let pools = self
            .pools
            .iter()
            .map(|t| {
                let stats = t.shared.stats();
                let now_nanos = t.shared.now_nanos();
                let stuck_after = t.shared.config.stuck_after;
                let stuck = t
                    .shared
                    .workers
                    .iter()
                    .filter_map(|w| {
                        let d = w.busy_for(now_nanos)?;
                        (d > stuck_after).then(|| StuckTask {
                            worker: w.thread_name.clone(),
                            running_for: d,
                        })
                    })
                    .collect();
                PoolSnapshot {
                    idle: stats.threads.saturating_sub(stats.busy),
                    health: health_of(&t.shared, &stats, &t.prev, now_nanos),
                    stuck_after,
                    stuck,
                    cpu_time: t
                        .cpu_measured
                        .then(|| t.cpu.iter().map(SlotCpu::total).sum()),
                    cpus_seen: t.cpus_seen.iter().copied().collect(),
                    // One `cpu.stat` read per capped pool.
                    cpu_cap: t
                        .shared
                        .config
                        .cpu
                        .cap_group
                        .as_ref()
                        .map(|c| cap_status(c)),
                    latency: t.latency.as_ref().map(|l| PoolLatency {
                        cumulative: l.cumulative.view(),
                        last_interval: l.last_interval.view(),
                        last_interval_length: l.last_interval_length,
                        buckets: LatencyHistograms {
                            queue_wait: LatencyBuckets::of(&l.cumulative.queue_wait, bounds),
                            run: LatencyBuckets::of(&l.cumulative.run, bounds),
                            end_to_end: LatencyBuckets::of(&l.cumulative.end_to_end, bounds),
                        },
                    }),
                    stats,
                }
            })
            .collect();
        RuntimeSnapshot {
            uptime: now.saturating_duration_since(self.started),
            interval: self.interval,
            metrics_enabled: metrics,
            pools,
        }
    }
}

/// A capped pool's quota and throttling counters, read now.
fn cap_status(cap: &CapGroup) -> CpuCapStatus {
    let s = cap.status();
    CpuCapStatus {
        quota: s.quota,
        period: s.period,
        weight: s.weight,
        cgroup: s.cgroup,
        uncapped: s.uncapped,
        throttling: s.throttling.map(|t| CpuThrottling {
            periods: t.periods,
            throttled_periods: t.throttled_periods,
            throttled_time: t.throttled_time,
        }),
    }
}

/// The health rules, in order; documented on [`Health`].
fn health_of(shared: &PoolShared, stats: &PoolStats, prev: &PoolStats, now_nanos: u64) -> Health {
    let stuck_after = shared.config.stuck_after;
    let stuck = shared
        .workers
        .iter()
        .any(|w| w.busy_for(now_nanos).is_some_and(|d| d > stuck_after));
    if stuck {
        Health::Stuck
    } else if stats.shutting_down {
        Health::ShuttingDown
    } else if (stats.busy >= stats.threads && stats.queued >= stats.queue_capacity)
        || stats.refused_full > prev.refused_full
        || stats.refused_timeout > prev.refused_timeout
    {
        Health::Saturated
    } else {
        Health::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runtime;

    const NO_TICK: Duration = Duration::from_secs(3600);

    /// Issue 12: a pool that reserves 1024 slots costs a collection no bucket scan while it
    /// records nothing, and one per recorder that recorded; and nothing recorded is lost.
    #[test]
    #[cfg_attr(miri, ignore = "allocates 1024 recorders")]
    fn collect_reads_only_the_recorders_that_recorded() {
        let rt = Runtime::builder()
            .metrics(true)
            .supervisor_interval(NO_TICK)
            .pool("wide", |p| p.threads(2).max_threads_limit(1024))
            .build()
            .unwrap();
        let pool = rt.pool("wide").unwrap();
        // A state of our own, so that the runtime's supervisor takes nothing from under us.
        let mut state = State::new(rt.pools(), NO_TICK, true);
        assert_eq!(state.collect(), 0, "nothing recorded yet");
        let handles: Vec<_> = (0..100).map(|_| pool.try_submit(|| ()).unwrap()).collect();
        for h in handles {
            h.join().unwrap();
        }
        let read = state.collect();
        assert!(
            (1..=2).contains(&read),
            "read {read} recorders, 2 workers ran"
        );
        assert_eq!(state.collect(), 0, "nothing new");
        pool.try_submit(|| ()).unwrap().join().unwrap();
        assert_eq!(state.collect(), 1, "one task, one recorder");
        let snap = state.snapshot(Instant::now());
        let latency = snap.pools[0].latency.as_ref().unwrap();
        assert_eq!(latency.cumulative.run.count, 101);
        assert_eq!(latency.cumulative.queue_wait.count, 101);
        assert_eq!(latency.cumulative.end_to_end.count, 101);
    }
}
