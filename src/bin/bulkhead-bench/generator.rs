//! Load generators: the threads that submit a workload's tasks.
//!
//! | load                 | threads             | how it submits                                       |
//! |----------------------|---------------------|------------------------------------------------------|
//! | `rate=R` (open loop) | 1                   | `execute` at scheduled instants, fixed or Poisson (`try_submit_by(f, intended + deadline)` with `pass_deadline=true`) |
//! | `rate=max`           | `submitters` (1)    | `execute_timeout` back to back (see below)           |
//! | `callers=N`          | N                   | `submit_timeout`, then waits for the result          |
//!
//! With `key=KEY`, each call goes through the pool's keyed view, `pool.key(KEY)`, instead.
//!
//! # Open loop
//!
//! Arrival `k` is scheduled at `start + k / R` (or after exponential gaps for Poisson),
//! whatever happened to earlier tasks, and every latency is measured from that *intended*
//! instant, so a stall shows up as latency instead of as fewer samples (coordinated
//! omission). `thread::sleep` overshoots by tens of microseconds on a VM, so the generator
//! sleeps until [`SPIN_MARGIN`] before the instant and spins the rest (yielding the CPU on
//! each turn, so a worker of the pool on the same CPU is not kept waiting by the spin). How late each send
//! still was is recorded as the generator's own *send lateness*, reported apart from the
//! pool's latencies, so a generator that cannot keep up is never mistaken for a slow pool.
//!
//! # `rate=max`
//!
//! A saturating submitter: it submits the next task as soon as the previous one was
//! accepted, waiting for queue room with `execute_timeout` (at most 50 ms per attempt; an
//! attempt that times out counts as refused). It keeps the pool's queue full, offering more
//! than the pool can serve. With `inflight=N` it first waits until fewer than N of its tasks
//! are accepted but unfinished. The intended instant of each task is the moment its
//! submission attempt began.
//!
//! # Placement
//!
//! Each generator thread is pinned (with `core_affinity`) to a CPU of the pool it feeds,
//! round robin over that pool's CPU list, so on a small machine the generator competes only
//! with its own pool and a generator problem stays inside its own compartment. Every loop
//! here stops by itself at the end of the run and runs at most a bounded number of times.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use bulkhead::{Pool, RefusalReason, SubmitError};
use hdrhistogram::Histogram;

use crate::record::{discard, new_histogram, record, NotRunGuard, Recorder};
use crate::spec::{Arrivals, LoadSpec, Rate};
use crate::work::{splitmix64, unit_f64, Action, InjectedPanic, Work};

/// How long before a send instant the generator stops sleeping and starts spinning.
pub(crate) const SPIN_MARGIN: Duration = Duration::from_micros(200);
/// The longest one `rate=max` or closed-loop submission attempt waits for queue room.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(50);

/// What a generator needs to run.
#[derive(Debug, Clone)]
pub(crate) struct GenSetup {
    pub(crate) load: LoadSpec,
    pub(crate) pool: Pool,
    pub(crate) work: Work,
    pub(crate) rec: Arc<Recorder>,
    /// CPUs to pin generator threads to (round robin), if any.
    pub(crate) cpus: Option<Vec<usize>>,
    /// When arrivals start, when measurement starts, when arrivals stop.
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) seed: u64,
}

/// One generator thread's counts and send lateness.
#[derive(Debug)]
pub(crate) struct GenResult {
    /// Submission attempts (accepted or refused).
    pub(crate) submitted: u64,
    pub(crate) refused_full: u64,
    pub(crate) refused_timeout: u64,
    pub(crate) refused_shutting_down: u64,
    /// Refused because the task's deadline had passed or would be missed (`pass_deadline`).
    pub(crate) refused_deadline: u64,
    /// Refused because the load's key was at the pool's per-key cap (`key=`).
    pub(crate) refused_key_cap: u64,
    /// Refused for a reason this build of the bench does not know (a newer library).
    pub(crate) refused_other: u64,
    /// Attempts whose intended instant lies in the measurement window.
    pub(crate) offered_in_window: u64,
    /// How late each open-loop send was against its schedule.
    pub(crate) lateness: Histogram<u64>,
    /// Whether pinning this thread succeeded (None: not asked).
    pub(crate) pinned: Option<bool>,
}

impl GenResult {
    fn new(pinned: Option<bool>) -> Self {
        GenResult {
            submitted: 0,
            refused_full: 0,
            refused_timeout: 0,
            refused_shutting_down: 0,
            refused_deadline: 0,
            refused_key_cap: 0,
            refused_other: 0,
            offered_in_window: 0,
            lateness: new_histogram(),
            pinned,
        }
    }

    /// Adds another thread's result into this one.
    pub(crate) fn merge(&mut self, other: &GenResult) {
        self.submitted += other.submitted;
        self.refused_full += other.refused_full;
        self.refused_timeout += other.refused_timeout;
        self.refused_shutting_down += other.refused_shutting_down;
        self.refused_deadline += other.refused_deadline;
        self.refused_key_cap += other.refused_key_cap;
        self.refused_other += other.refused_other;
        self.offered_in_window += other.offered_in_window;
        self.lateness.add(&other.lateness).ok();
        self.pinned = match (self.pinned, other.pinned) {
            (Some(a), Some(b)) => Some(a && b),
            (a, b) => a.or(b),
        };
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused_full
            + self.refused_timeout
            + self.refused_shutting_down
            + self.refused_deadline
            + self.refused_key_cap
            + self.refused_other
    }

    fn count_refusal<F>(&mut self, err: SubmitError<F>) {
        match err.reason() {
            RefusalReason::Full => self.refused_full += 1,
            RefusalReason::Timeout => self.refused_timeout += 1,
            RefusalReason::Deadline => self.refused_deadline += 1,
            RefusalReason::ShuttingDown => self.refused_shutting_down += 1,
            RefusalReason::KeyCap => self.refused_key_cap += 1,
            _ => self.refused_other += 1,
        }
        discard(err.into_inner());
    }
}

/// Builds task number `seq`, intended at `intended`.
fn make_task(
    g: &GenSetup,
    seq: u64,
    intended: Instant,
    token: Option<crossbeam_channel::Receiver<()>>,
) -> impl FnOnce() + Send + 'static {
    let rec = g.rec.clone();
    let work = g.work.clone();
    let seed = g.seed;
    let mut guard = NotRunGuard::new(rec.clone(), token);
    move || {
        guard.disarm();
        rec.started(intended, Instant::now());
        match work.pick(seed, seq) {
            Action::Run(w) => {
                w.run();
                rec.ended(intended, Instant::now(), false);
            }
            Action::Panic => {
                rec.ended(intended, Instant::now(), true);
                drop(guard);
                std::panic::panic_any(InjectedPanic);
            }
        }
        drop(guard);
    }
}

/// Starts the generator threads of one load; they wait on `barrier`, then run until
/// `setup.end`.
pub(crate) fn spawn(
    setup: GenSetup,
    barrier: Arc<Barrier>,
) -> std::io::Result<Vec<thread::JoinHandle<GenResult>>> {
    let threads = match (setup.load.callers, setup.load.rate) {
        (Some(n), _) => n,
        (None, Rate::Max) => setup.load.submitters,
        (None, Rate::PerSec(_)) => 1,
    };
    // A keyed saturating load never has more in flight than its key's cap: the pool refuses
    // the rest at once (it does not wait for a key's own cap), and retrying at once would
    // only spin.
    let key_cap = setup
        .load
        .key
        .as_ref()
        .and_then(|_| setup.pool.key_cap())
        .filter(|_| setup.load.rate == Rate::Max && setup.load.callers.is_none());
    let inflight = match (setup.load.inflight, key_cap) {
        (Some(n), Some(cap)) => Some(n.min(cap)),
        (n, cap) => n.or(cap),
    };
    let tokens = inflight.map(crossbeam_channel::bounded::<()>);
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let g = setup.clone();
        let barrier = barrier.clone();
        let tokens = tokens.clone();
        let cpu = g
            .cpus
            .as_ref()
            .and_then(|c| c.get(i % c.len().max(1)).copied());
        let h = thread::Builder::new()
            .name(format!("gen-{}-{i}", g.load.name))
            .spawn(move || {
                let pinned =
                    cpu.map(|id| core_affinity::set_for_current(core_affinity::CoreId { id }));
                let mut res = GenResult::new(pinned);
                barrier.wait();
                match (g.load.callers, g.load.rate) {
                    (Some(_), _) => closed_loop(&g, i as u64, &mut res),
                    (None, Rate::Max) => saturate(&g, i as u64, tokens, &mut res),
                    (None, Rate::PerSec(r)) => open_loop(&g, r, &mut res),
                }
                res
            })?;
        handles.push(h);
    }
    Ok(handles)
}

/// Sleeps until shortly before `t`, then spins until `t`.
fn wait_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > SPIN_MARGIN {
            thread::sleep(left - SPIN_MARGIN);
        } else {
            // Spin, but let a runnable worker on this CPU go first: the generator shares
            // its CPU with the pool it feeds.
            thread::yield_now();
        }
    }
}

fn open_loop(g: &GenSetup, rate: f64, res: &mut GenResult) {
    let mean_gap = 1.0 / rate;
    let window_start = g.rec.window.0;
    // Bounded in count: at most rate * run length arrivals, plus slack for Poisson bursts.
    let run = g.end.saturating_duration_since(g.start).as_secs_f64();
    let max_arrivals = (rate * run * 2.0) as u64 + 16;
    let mut rng = splitmix64(g.seed ^ 0x6A09_E667_F3BC_C908);
    let mut offset = 0.0f64;
    for seq in 0..max_arrivals {
        // Past the end (also keeps a huge offset from overflowing the Duration or Instant).
        if offset >= run {
            break;
        }
        let intended = g.start + Duration::from_secs_f64(offset);
        if intended >= g.end {
            break;
        }
        wait_until(intended);
        record(
            &mut res.lateness,
            Instant::now().saturating_duration_since(intended),
        );
        res.submitted += 1;
        if intended >= window_start {
            res.offered_in_window += 1;
        }
        let task = make_task(g, seq, intended, None);
        // With `key=`, through the pool's keyed view: its per-key cap and key order apply, and
        // a refusal for the cap is counted apart from a full queue.
        let keyed = g.load.key.as_deref().map(|k| g.pool.key(k));
        match g.load.deadline.filter(|_| g.load.pass_deadline) {
            // The caller's deadline goes with the task: refused at once if it cannot start
            // in time, expired while queued when it passes. The handle is dropped (the
            // task is detached); a task the pool drops unrun is counted by its guard.
            Some(d) => {
                let sent = match keyed {
                    Some(k) => k.try_submit_by(task, intended + d).map(drop),
                    None => g.pool.try_submit_by(task, intended + d).map(drop),
                };
                if let Err(e) = sent {
                    res.count_refusal(e);
                }
            }
            None => {
                let sent = match keyed {
                    Some(k) => k.execute(task),
                    None => g.pool.execute(task),
                };
                if let Err(e) = sent {
                    res.count_refusal(e);
                }
            }
        }
        offset += match g.load.arrivals {
            Arrivals::Fixed => mean_gap,
            Arrivals::Poisson => {
                rng = splitmix64(rng);
                -(1.0 - unit_f64(rng)).ln() * mean_gap
            }
        };
    }
}

fn saturate(
    g: &GenSetup,
    thread_index: u64,
    tokens: Option<(
        crossbeam_channel::Sender<()>,
        crossbeam_channel::Receiver<()>,
    )>,
    res: &mut GenResult,
) {
    let window_start = g.rec.window.0;
    let mut seq = thread_index << 40;
    // Bounded in time (each pass waits at most ATTEMPT_TIMEOUT or submits one task) and in
    // count (no pool serves more than 2^32 tasks in a run).
    for _ in 0..u32::MAX {
        let now = Instant::now();
        if now >= g.end {
            break;
        }
        let timeout = ATTEMPT_TIMEOUT.min(g.end - now);
        let token = match &tokens {
            Some((tx, rx)) => match tx.send_timeout((), timeout) {
                Ok(()) => Some(rx.clone()),
                Err(_) => continue, // still `inflight` tasks unfinished
            },
            None => None,
        };
        let intended = Instant::now();
        if intended >= g.end {
            if let Some(rx) = token {
                let _ = rx.try_recv();
            }
            break;
        }
        res.submitted += 1;
        if intended >= window_start {
            res.offered_in_window += 1;
        }
        let timeout = ATTEMPT_TIMEOUT.min(g.end - intended);
        let task = make_task(g, seq, intended, token);
        let sent = match g.load.key.as_deref() {
            Some(k) => g.pool.key(k).execute_timeout(task, timeout),
            None => g.pool.execute_timeout(task, timeout),
        };
        if let Err(e) = sent {
            if e.is_key_cap() {
                // Another load of the same key holds the rest of the cap: let it run.
                thread::yield_now();
            }
            res.count_refusal(e);
        }
        seq += 1;
    }
}

fn closed_loop(g: &GenSetup, thread_index: u64, res: &mut GenResult) {
    let window_start = g.rec.window.0;
    for seq in (thread_index << 40)..(thread_index << 40) + u64::from(u32::MAX) {
        let intended = Instant::now();
        if intended >= g.end {
            break;
        }
        res.submitted += 1;
        if intended >= window_start {
            res.offered_in_window += 1;
        }
        let timeout = ATTEMPT_TIMEOUT.min(g.end - intended);
        let task = make_task(g, seq, intended, None);
        let sent = match g.load.key.as_deref() {
            Some(k) => g.pool.key(k).submit_timeout(task, timeout),
            None => g.pool.submit_timeout(task, timeout),
        };
        match sent {
            Ok(mut handle) => {
                // Wait for the result, but never past the end of the run.
                let left = g.end.saturating_duration_since(Instant::now());
                let _ = handle.join_timeout(left);
            }
            Err(e) => res.count_refusal(e),
        }
    }
}
