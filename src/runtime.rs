//! The runtime: the registry of named pools, their start-up, and their shutdown.
//!

use std::fmt;
use std::time::{Duration, Instant};

use crate::builder::pool::RuntimeSettings;
use crate::error::{BuildError, BuildErrorKind, UnknownPool};
use crate::metrics::RuntimeSnapshot;
use crate::placement::{Baseline, CapGroup};
use crate::pool::Pool;
use crate::stats::PoolStats;
use crate::supervisor::Supervisor;
use crate::sync::{Arc, AtomicBool, Ordering};
use crate::timer::Timer;

/// A set of named pools ("bulkheads"), each with its own threads and bounded queue.
///
/// Built with [`Runtime::builder`]. Dropping it shuts every pool down (see below).
///
/// # Shutdown
///
/// [`Runtime::shutdown`] and [`Runtime::shutdown_timeout`] run the same steps on every pool
/// at once:
///
/// 1. stop intake (later submissions are refused with `ShuttingDown`) and wake idle workers;
/// 2. workers run what is queued, then exit; the caller waits for them (until the deadline);
/// 3. at the deadline, pools whose workers are still busy are *abandoned*: their queued tasks
///    are cancelled (handles report [`TaskError::Cancelled`](crate::TaskError::Cancelled)), and
///    workers still inside a task are detached and named in the [`ShutdownReport`]. A thread
///    cannot be killed; a detached worker exits when its task returns.
///
/// Shutting down twice is harmless: the second call finds the pools closed and reports them.
///
/// **Dropping** a runtime runs `shutdown_timeout` with the builder's
/// [`drop_timeout`](crate::RuntimeBuilder::drop_timeout) (5 s by default), so a drop never
/// hangs on a stuck task for longer than that. If the runtime was already shut down
/// explicitly, dropping it waits for nothing: the explicit call already chose how long to wait.
pub struct Runtime {
    pools: Vec<Pool>,
    drop_timeout: Duration,
    /// Set by an explicit shutdown, after which dropping waits no more.
    shut_down: AtomicBool,
    /// `None` only while `start` is still starting pools.
    supervisor: Option<Supervisor>,
    /// Resolves queued tasks at their deadlines; stopped at shutdown, after the pools.
    timer: Arc<Timer>,
}

impl Runtime {
    pub(crate) fn start(config: RuntimeSettings) -> Result<Runtime, BuildError> {
        let timer = Arc::new(Timer::new());
        timer.start().map_err(|e| {
            let msg = format!("could not start the deadline timer thread: {e}");
            BuildError::new(None, "runtime", BuildErrorKind::Spawn(e), msg)
        })?;
        let mut rt = Runtime {
            pools: Vec::with_capacity(config.pools.len()),
            drop_timeout: config.drop_timeout,
            shut_down: AtomicBool::new(false),
            supervisor: None,
            timer: timer.clone(),
        };
        // What every worker of an unplaced pool runs with, whoever spawns it later.
        let mut baseline = Baseline::of_current_thread();
        baseline.caps = config.pools.iter().any(|p| p.cpu.cpu_limit.is_some());
        for p in &config.pools {
            // A capped pool's cgroup exists before its first worker starts (and is removed
            // when the pool's last reference goes, if the build fails).
            let capped;
            let p = match p.cpu.cap() {
                Some(cap) => {
                    let mut with_group = p.clone();
                    with_group.cpu.cap_group = Some(CapGroup::start(&p.name, &cap)?);
                    capped = with_group;
                    &capped
                }
                None => p,
            };
            // On error `rt` is dropped here, which stops the pools already started.
            rt.pools
                .push(Pool::start(p, config.metrics, &baseline, &timer)?);
        }
        let supervisor = Supervisor::start(
            &rt.pools,
            config.supervisor_interval,
            config.metrics,
            config.latency_buckets.clone(),
            config.listeners.clone(),
        )
        .map_err(|e| {
            let msg = format!("could not start the supervisor thread: {e}");
            BuildError::new(None, "supervisor_interval", BuildErrorKind::Spawn(e), msg)
        })?;
        rt.supervisor = Some(supervisor);
        Ok(rt)
    }

    /// The pool named `name`.
    ///
    /// # Errors
    ///
    /// [`UnknownPool`] naming the name that was asked for and the names that exist.
    pub fn pool(&self, name: &str) -> Result<Pool, UnknownPool> {
        self.pools
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| UnknownPool {
                name: name.to_owned(),
                known: self.pools.iter().map(|p| p.name().to_owned()).collect(),
            })
    }

    /// All pools, in the order they were registered.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// A [`PoolStats`] snapshot of every pool, in registration order.
    pub fn stats(&self) -> Vec<PoolStats> {
        self.pools.iter().map(Pool::stats).collect()
    }

    /// A snapshot of every pool as the supervisor sees it: counters, queue depth, health,
    /// stuck tasks, CPU time and CPUs seen, and latency (cumulative and last interval).
    ///
    /// Taken on the calling thread: cumulative latency and counters are current as of the
    /// call, CPU time as of this call's `/proc` read, and the interval view is the last one
    /// the supervisor closed. See docs/METRICS.md.
    pub fn snapshot(&self) -> RuntimeSnapshot {
        match &self.supervisor {
            Some(s) => s.snapshot(),
            // Unreachable for users: a Runtime is handed out only with its supervisor.
            None => RuntimeSnapshot {
                uptime: Duration::ZERO,
                interval: Duration::ZERO,
                metrics_enabled: false,
                pools: Vec::new(),
            },
        }
    }

    /// Stops intake, runs every queued task, and waits for all workers to exit.
    ///
    /// This waits as long as the tasks take: a task that never returns makes it wait forever.
    /// Where that is possible, use [`shutdown_timeout`](Runtime::shutdown_timeout).
    pub fn shutdown(&self) -> ShutdownReport {
        self.shutdown_until(None)
    }

    /// Like [`shutdown`](Runtime::shutdown), but returns within about `timeout` even if tasks
    /// hang: tasks still queued at the deadline are cancelled, and workers still inside a task
    /// are detached and listed in the report.
    pub fn shutdown_timeout(&self, timeout: Duration) -> ShutdownReport {
        self.shutdown_until(Some(Instant::now().checked_add(timeout).unwrap_or_else(
            || Instant::now() + Duration::from_secs(u64::from(u32::MAX)),
        )))
    }

    fn shutdown_until(&self, deadline: Option<Instant>) -> ShutdownReport {
        let started = Instant::now();
        self.shut_down.store(true, Ordering::Relaxed);
        for p in &self.pools {
            p.shared.begin_shutdown();
        }
        let mut timed_out = false;
        let mut pools = Vec::with_capacity(self.pools.len());
        for p in &self.pools {
            let shared = &p.shared;
            let all_exited = shared.wait_workers(deadline);
            if !all_exited {
                timed_out = true;
                shared.abandon();
            }
            let now = shared.now_nanos();
            let still_running = shared
                .workers
                .iter()
                .filter(|w| !w.has_exited())
                .filter_map(|w| {
                    w.busy_for(now).map(|running_for| StuckWorker {
                        thread_name: w.thread_name.clone(),
                        running_for,
                    })
                })
                .collect();
            pools.push(PoolReport {
                stats: shared.stats(),
                cancelled_at_shutdown: shared.drained.load(Ordering::Relaxed),
                still_running,
            });
        }
        // Every queued task has been run or resolved: no deadline is left to watch.
        self.timer.stop();
        // The supervisor takes a last sample (delivering the last interval's events), then stops.
        if let Some(s) = &self.supervisor {
            s.stop(deadline);
        }
        // Kernel CPU caps go last, after the final sample read their counters: threads still
        // in a pool's cgroup (detached workers) move back to the parent, then it is removed.
        for p in &self.pools {
            if let Some(cap) = &p.shared.config.cpu.cap_group {
                cap.remove();
            }
        }
        ShutdownReport {
            pools,
            elapsed: started.elapsed(),
            timed_out,
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // After an explicit shutdown the caller already chose how long to wait; dropping only
        // reaps workers that have exited since.
        let wait = if self.shut_down.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            self.drop_timeout
        };
        self.shutdown_timeout(wait);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("pools", &self.pools)
            .field("drop_timeout", &self.drop_timeout)
            .finish()
    }
}

/// What a shutdown did, per pool.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// One entry per pool, in registration order.
    pub pools: Vec<PoolReport>,
    /// How long the shutdown call took.
    pub elapsed: Duration,
    /// True if the deadline passed before every worker exited.
    pub timed_out: bool,
}

/// One pool's part of a [`ShutdownReport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolReport {
    /// The pool's counters after shutdown (lifetime totals).
    pub stats: PoolStats,
    /// Queued tasks that this or an earlier shutdown cancelled because its deadline passed.
    pub cancelled_at_shutdown: u64,
    /// Workers still inside a task when the deadline passed. Their threads are detached:
    /// each exits when its task returns.
    pub still_running: Vec<StuckWorker>,
}

/// A worker that was still running a task when a shutdown's deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StuckWorker {
    /// The worker thread's name.
    pub thread_name: String,
    /// How long its current task had been running.
    pub running_for: Duration,
}

impl ShutdownReport {
    /// Tasks completed over the runtime's life, all pools.
    pub fn completed(&self) -> u64 {
        self.pools.iter().map(|p| p.stats.completed).sum()
    }

    /// Tasks cancelled over the runtime's life (through handles or by shutdown), all pools.
    pub fn cancelled(&self) -> u64 {
        self.pools.iter().map(|p| p.stats.cancelled).sum()
    }

    /// Workers still running user code, all pools.
    pub fn still_running(&self) -> usize {
        self.pools.iter().map(|p| p.still_running.len()).sum()
    }

    /// True if every worker of every pool exited and nothing queued was cancelled.
    pub fn is_clean(&self) -> bool {
        !self.timed_out
            && self
                .pools
                .iter()
                .all(|p| p.still_running.is_empty() && p.cancelled_at_shutdown == 0)
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shutdown in {:?}: {} completed, {} cancelled, {} still running",
            self.elapsed,
            self.completed(),
            self.cancelled(),
            self.still_running()
        )?;
        for p in &self.pools {
            for w in &p.still_running {
                write!(
                    f,
                    "\n  pool {:?}: {} still in a task after {:?}",
                    p.stats.name, w.thread_name, w.running_for
                )?;
            }
        }
        Ok(())
    }
}
