//! Running a scenario in one mode: build the pools, start the generators, sample every
//! 100 ms (and print a live line every second), stop, drain, and collect the results.
//!
//! | run        | pools                                              | loads           |
//! |------------|----------------------------------------------------|-----------------|
//! | `alone`    | the first load's pool only                         | the first only  |
//! | `isolated` | every pool as specified                            | all             |
//! | `shared`   | one pool `shared`: summed threads (an elastic pool's minimum), queue capacities and replacement budgets, union of CPUs if every pool has some; every other setting that all pools give the same value (as written), except `elastic` and the resize limits | all |
//!
//! Generator threads are placed on the CPUs of the pool their load names in the scenario,
//! in every mode, so that the modes differ only in how the pools are laid out.
//!
//! After the last arrival the runtime is shut down with `shutdown_timeout(drain)`: queued
//! tasks still run (and are measured) within the drain time; then queued tasks are
//! cancelled and workers still inside a task (a hang) are reported as stuck. Only then are
//! hanging tasks released, so the run always ends by itself.

use std::io::Write as _;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use bulkhead::{CpuSet, PoolStats, Runtime, RuntimeBuilder, ShedReason, ShedTask};

use crate::generator::{self, GenResult, GenSetup};
use crate::noise::{self, Noise};
use crate::record::{self, new_histogram, Point, Recorder, Totals};
use crate::spec::{fmt_duration, LoadSpec, Mode, PoolSpec, Scenario};
use crate::work::{Gate, Spinner, Work};

/// Whether pools are really pinned to their `cpus` by this build (they are: through the
/// library's `cpus` setting, `Placement::Spread` by default, so a one-thread pool on one CPU
/// is pinned there and the shared pool may use the union of the sets; each worker's
/// affinity as the OS reports it is in the results).
pub(crate) const POOL_PINNING: bool = true;

/// Which of the three runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunKind {
    Alone,
    Isolated,
    Shared,
}

impl RunKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunKind::Alone => "alone",
            RunKind::Isolated => "isolated",
            RunKind::Shared => "shared",
        }
    }
}

/// One pool's configuration and final accounting in a run.
#[derive(Debug)]
pub(crate) struct PoolResult {
    pub(crate) spec: PoolSpec,
    /// After shutdown.
    pub(crate) stats: PoolStats,
    pub(crate) cancelled_at_shutdown: u64,
    pub(crate) stuck_workers: Vec<(String, Duration)>,
    /// Each worker's CPU affinity as the OS reported it after start-up (cpulist syntax).
    pub(crate) worker_cpus: Vec<Option<String>>,
    /// The most worker threads seen at the 100 ms samples (elastic pools grow and shrink).
    pub(crate) peak_threads: usize,
    /// The pool's CPU use over the measured window, in CPUs (CPU time / wall time), where
    /// the OS reports it.
    pub(crate) cpu_used: Option<f64>,
    /// With a `cpu_limit`: the limit in CPUs, and the periods throttled / run in the window
    /// (or why the pool ran uncapped).
    pub(crate) cap: Option<CapResult>,
}

/// A capped pool's quota and what the kernel did with it during the measured window.
#[derive(Debug, Clone)]
pub(crate) struct CapResult {
    pub(crate) limit: f64,
    pub(crate) throttled_periods: u64,
    pub(crate) periods: u64,
    pub(crate) uncapped: Option<String>,
}

/// Per pool: CPU time and cap counters at one instant.
struct CpuMark {
    at: Instant,
    pools: Vec<(Option<Duration>, Option<bulkhead::CpuCapStatus>)>,
}

impl CpuMark {
    fn take(rt: &bulkhead::Runtime) -> Self {
        let snap = rt.snapshot();
        CpuMark {
            at: Instant::now(),
            pools: snap
                .pools
                .iter()
                .map(|p| (p.cpu_time, p.cpu_cap.clone()))
                .collect(),
        }
    }

    /// Per pool, CPUs used and the cap's figures between `self` and `end`.
    fn until(&self, end: &CpuMark) -> Vec<(Option<f64>, Option<CapResult>)> {
        let wall = end.at.saturating_duration_since(self.at).as_secs_f64();
        self.pools
            .iter()
            .zip(&end.pools)
            .map(|((t0, c0), (t1, c1))| {
                let used = match (t0, t1) {
                    (Some(a), Some(b)) if wall > 0.0 => {
                        Some(b.saturating_sub(*a).as_secs_f64() / wall)
                    }
                    _ => None,
                };
                let cap = c1.as_ref().map(|c1| {
                    let (t0, t1) = (
                        c0.as_ref().and_then(|c| c.throttling).unwrap_or_default(),
                        c1.throttling.unwrap_or_default(),
                    );
                    CapResult {
                        limit: c1.quota.as_secs_f64() / c1.period.as_secs_f64(),
                        throttled_periods: t1.throttled_periods - t0.throttled_periods,
                        periods: t1.periods - t0.periods,
                        uncapped: c1.uncapped.clone(),
                    }
                });
                (used, cap)
            })
            .collect()
    }
}

/// One workload's results in a run.
#[derive(Debug)]
pub(crate) struct WorkloadResult {
    pub(crate) load: LoadSpec,
    /// The pool it ran in, in this run.
    pub(crate) pool: String,
    pub(crate) gen: GenResult,
    pub(crate) totals: Totals,
    /// Started but neither returned nor panicked when the results were taken (hangs).
    pub(crate) stuck: u64,
    pub(crate) series: Vec<Point>,
}

impl WorkloadResult {
    /// Accepted tasks = submitted - refused.
    pub(crate) fn accepted(&self) -> u64 {
        self.gen.submitted - self.gen.refused()
    }

    /// Outcomes accounted for: every submission ended exactly one way.
    pub(crate) fn accounted(&self) -> u64 {
        self.gen.refused()
            + self.totals.completed
            + self.totals.panicked
            + self.totals.expired
            + self.totals.shed
            + self.totals.cancelled
            + self.stuck
    }
}

/// A whole run in one mode.
#[derive(Debug)]
pub(crate) struct RunResult {
    pub(crate) kind: RunKind,
    pub(crate) pools: Vec<PoolResult>,
    pub(crate) workloads: Vec<WorkloadResult>,
    pub(crate) measured: Duration,
    pub(crate) shutdown_elapsed: Duration,
    pub(crate) shutdown_timed_out: bool,
    /// What other processes and the hypervisor took during warmup and window.
    pub(crate) noise: Option<Noise>,
}

/// The pools and loads of a run of `kind`.
fn layout(sc: &Scenario, kind: RunKind) -> (Vec<PoolSpec>, Vec<(LoadSpec, String)>) {
    match kind {
        RunKind::Alone => {
            let load = sc.loads[0].clone();
            let pool = sc.pools.iter().find(|p| p.name == load.pool).cloned();
            let pool = pool.unwrap_or_else(|| sc.pools[0].clone());
            let name = pool.name.clone();
            (vec![pool], vec![(load, name)])
        }
        RunKind::Isolated => (
            sc.pools.clone(),
            sc.loads
                .iter()
                .map(|l| (l.clone(), l.pool.clone()))
                .collect(),
        ),
        RunKind::Shared => {
            let pools = &sc.pools;
            let mut shared = PoolSpec::named("shared");
            let mut put = |k: &str, v: String| shared.settings.push((k.to_owned(), v));
            put(
                "threads",
                pools.iter().map(|p| p.threads()).sum::<usize>().to_string(),
            );
            let queue: usize = pools.iter().map(|p| p.queue_capacity()).sum();
            put("queue_capacity", queue.to_string());
            let budget: usize = pools.iter().map(|p| p.replacement_budget()).sum();
            if budget > 0 {
                put("replacement_budget", budget.to_string());
            }
            let sets: Option<Vec<CpuSet>> = pools.iter().map(|p| p.cpus()).collect();
            if let Some(sets) = sets {
                let union = CpuSet::new(sets.iter().flat_map(|s| s.iter()));
                put("cpus", union.to_string());
            }
            // Every other setting that all pools give the same value carries over; the
            // shared pool has the summed fixed size, so elastic ranges and resize limits do not.
            const LAID_OUT: [&str; 7] = [
                "threads",
                "elastic",
                "queue_capacity",
                "replacement_budget",
                "cpus",
                "max_threads_limit",
                "queue_capacity_limit",
            ];
            for (k, v) in &pools[0].settings {
                let same = pools.iter().all(|p| p.get(k) == Some(v.as_str()));
                if !LAID_OUT.contains(&k.as_str()) && same && shared.get(k).is_none() {
                    shared.settings.push((k.clone(), v.clone()));
                }
            }
            let pool = shared;
            let loads = sc
                .loads
                .iter()
                .map(|l| (l.clone(), "shared".to_owned()))
                .collect();
            (vec![pool], loads)
        }
    }
}

/// The supervisor interval when a pool sets `stuck_after` or a replacement budget, so that
/// stuck workers are found (and replaced) within 100 ms of the threshold.
const STUCK_SUPERVISOR_INTERVAL: Duration = Duration::from_millis(100);

/// Every run a scenario makes in `mode`, in order: the reference run first.
pub(crate) fn kinds(mode: Mode) -> &'static [RunKind] {
    match mode {
        Mode::Isolated => &[RunKind::Alone, RunKind::Isolated],
        Mode::Shared => &[RunKind::Alone, RunKind::Shared],
        Mode::Both => &[RunKind::Alone, RunKind::Isolated, RunKind::Shared],
    }
}

/// Checks, without starting a thread, that the run of `kind` can build its runtime: the
/// library's own rules (pool names, thread and queue limits, the summed shared pool), so
/// that bad input is refused before the first run instead of failing a later one.
pub(crate) fn check(sc: &Scenario, kind: RunKind) -> Result<(), String> {
    let (pools, _) = layout(sc, kind);
    match runtime_builder(&pools)?.problems().into_iter().next() {
        None => Ok(()),
        Some(e) if kind == RunKind::Shared => Err(format!(
            "the shared run puts every load in one pool \"shared\" with the pools' summed \
             threads, queue capacities and budgets, and that pool is invalid: {e} \
             (use --mode isolated, or smaller pools)"
        )),
        Some(e) => Err(e.to_string()),
    }
}

fn build_runtime(pools: &[PoolSpec]) -> Result<Runtime, String> {
    runtime_builder(pools)?.build().map_err(|e| e.to_string())
}

/// The runtime of a run with `pools`, configured but not started: each pool through the
/// library's settings table.
fn runtime_builder(pools: &[PoolSpec]) -> Result<RuntimeBuilder, String> {
    let mut b = Runtime::builder().drop_timeout(Duration::ZERO);
    if pools
        .iter()
        .any(|p| p.replacement_budget() > 0 || p.get("stuck_after").is_some())
    {
        b = b.supervisor_interval(STUCK_SUPERVISOR_INTERVAL);
    }
    for p in pools {
        let mut refused = None;
        b = b.pool(p.name.clone(), |pb| {
            let pb = p.configure(pb.clone()).unwrap_or_else(|e| {
                refused = Some(e);
                pb
            });
            // Tasks the pool does not run are counted by their guards; shed ones as shed.
            pb.on_shed(|t: ShedTask| {
                if t.reason == ShedReason::Shed {
                    record::drop_as_shed(t.task);
                }
            })
        });
        if let Some(e) = refused {
            return Err(e.to_string());
        }
    }
    Ok(b)
}

/// Options that do not change what is measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunOpts {
    /// Print a live line on stderr every second.
    pub(crate) live: bool,
    /// Rewrite it in place (stderr is a terminal) instead of one line per update.
    pub(crate) in_place: bool,
    /// This run's place among the runs: (k, N) for "mode k of N".
    pub(crate) mode: (usize, usize),
}

/// Width of the live line when it is rewritten in place, so that it never wraps (a wrapped
/// line cannot be rewritten with a carriage return).
const LIVE_WIDTH: usize = 100;

const TICK: Duration = Duration::from_millis(100);

/// Runs `sc` in the layout of `kind`.
pub(crate) fn run(
    sc: &Scenario,
    kind: RunKind,
    spinner: &Spinner,
    opts: RunOpts,
) -> Result<RunResult, String> {
    let (pools, loads) = layout(sc, kind);
    let rt = build_runtime(&pools)?;
    let worker_cpus: Vec<Vec<Option<String>>> = rt
        .pools()
        .iter()
        .map(|p| {
            p.workers()
                .iter()
                .map(|w| w.affinity.as_ref().map(ToString::to_string))
                .collect()
        })
        .collect();
    let gate = Arc::new(Gate::default());
    let hang_cap = sc.warmup + sc.duration + sc.drain + Duration::from_secs(30);

    let start = Instant::now() + Duration::from_millis(20);
    let window = (start + sc.warmup, start + sc.warmup + sc.duration);
    let mut recs = Vec::new();
    let mut gens = Vec::new();
    let mut total_threads = 0;
    let mut setups = Vec::new();
    for (i, (load, pool_name)) in loads.iter().enumerate() {
        let pool = rt.pool(pool_name).map_err(|e| e.to_string())?;
        let rec = Recorder::new(window, load.deadline);
        recs.push(rec.clone());
        let gen_cpus = sc
            .pools
            .iter()
            .find(|p| p.name == load.pool)
            .and_then(PoolSpec::cpus)
            .map(|c| c.iter().collect());
        let setup = GenSetup {
            load: load.clone(),
            pool,
            work: Work::compile(&load.work, spinner, &gate, hang_cap, window.0),
            rec,
            cpus: gen_cpus,
            start,
            end: window.1,
            seed: sc.seed.wrapping_add(i as u64 * 0x9E37_79B9),
        };
        total_threads += match (load.callers, load.rate) {
            (Some(n), _) => n,
            (None, crate::spec::Rate::Max) => load.submitters,
            (None, _) => 1,
        };
        setups.push(setup);
    }
    let barrier = Arc::new(Barrier::new(total_threads + 1));
    for s in setups {
        let pool = s.pool.clone();
        gens.push((
            generator::spawn(s, barrier.clone())
                .map_err(|e| format!("cannot start a generator thread: {e}"))?,
            pool,
        ));
    }
    barrier.wait();
    let noise_start = noise::sample();

    // Sample every 100 ms until the end of the window; bounded in count.
    let ticks = ((window.1 - start).as_millis() / TICK.as_millis()) as u64 + 2;
    let mut series: Vec<Vec<Point>> = vec![Vec::new(); loads.len()];
    let mut second: Vec<_> = loads.iter().map(|_| new_histogram()).collect();
    let mut last_ended = vec![0u64; loads.len()];
    let mut peak_threads: Vec<usize> = rt.pools().iter().map(|p| p.threads()).collect();
    let mut cpu_start: Option<CpuMark> = None;
    let mut cpu_end: Option<CpuMark> = None;
    for k in 1..=ticks {
        let at = start + TICK * k as u32;
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        }
        for (peak, p) in peak_threads.iter_mut().zip(rt.pools()) {
            *peak = (*peak).max(p.threads());
        }
        for (i, rec) in recs.iter().enumerate() {
            let (h, good) = rec.take_tick();
            second[i].add(&h).ok();
            let t = Instant::now();
            let rel = if t >= window.0 {
                (t - window.0).as_secs_f64()
            } else {
                -(window.0 - t).as_secs_f64()
            };
            series[i].push(Point {
                t: rel,
                e2e_p50: h.value_at_quantile(0.5),
                e2e_p99: h.value_at_quantile(0.99),
                e2e_max: h.max(),
                ended: h.len(),
                good,
                queue_depth: gens[i].1.queued(),
            });
        }
        if k % 10 == 0 && opts.live {
            let total = sc.warmup + sc.duration;
            let left = total.saturating_sub(Instant::now() - start);
            let mut line = format!(
                "[{} {}/{}, {:.0}s left] ",
                kind.as_str(),
                opts.mode.0,
                opts.mode.1,
                left.as_secs_f64().ceil()
            );
            for (i, rec) in recs.iter().enumerate() {
                let ended = rec.ended_count();
                let p99 = second[i].value_at_quantile(0.99);
                line.push_str(&format!(
                    "{}: {} done/s, queue {}, p99 {} | ",
                    loads[i].0.name,
                    ended - last_ended[i],
                    gens[i].1.queued(),
                    if second[i].is_empty() {
                        "-".to_owned()
                    } else {
                        fmt_duration(Duration::from_nanos(p99))
                    }
                ));
                last_ended[i] = ended;
                second[i].reset();
            }
            let line = line.trim_end_matches(" | ");
            if opts.in_place {
                let line: String = line.chars().take(LIVE_WIDTH).collect();
                // Carriage return, the line, clear to the end of the terminal line.
                let _ = write!(std::io::stderr(), "\r{line}\x1b[K");
                let _ = std::io::stderr().flush();
            } else {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
        // CPU time per pool over the measured window (from the first tick inside it).
        if cpu_start.is_none() && Instant::now() >= window.0 {
            cpu_start = Some(CpuMark::take(&rt));
        }
        if Instant::now() >= window.1 {
            cpu_end = Some(CpuMark::take(&rt));
            break;
        }
    }
    let cpu = match (&cpu_start, &cpu_end) {
        (Some(a), Some(b)) => a.until(b),
        _ => Vec::new(),
    };
    if opts.live && opts.in_place {
        // End the line rewritten in place, so that what follows starts on its own line.
        let _ = writeln!(std::io::stderr());
    }

    let noise = noise_start
        .zip(noise::sample())
        .and_then(|(a, b)| a.until(&b));
    let mut gen_results = Vec::new();
    for (handles, _) in gens {
        let mut merged: Option<GenResult> = None;
        for h in handles {
            let r = h
                .join()
                .map_err(|_| "a generator thread panicked".to_owned())?;
            match &mut merged {
                Some(m) => m.merge(&r),
                None => merged = Some(r),
            }
        }
        gen_results.push(merged.ok_or("a load had no generator thread")?);
    }

    // Drain, then give up on what is left; hangs are reported stuck, then released.
    let deadline = Instant::now() + sc.drain;
    for r in &recs {
        r.set_drain_deadline(deadline);
    }
    let report = rt.shutdown_timeout(sc.drain);
    // Workers that saw the abandon flag may still be dropping a job they held: wait until
    // every accepted task is accounted for, or 200 ms.
    for _ in 0..200 {
        let settled = recs.iter().zip(&gen_results).all(|(r, g)| {
            let t = r.finish_peek();
            t >= g.submitted - g.refused()
        });
        if settled {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let mut workloads = Vec::new();
    for (((load, pool), rec), (gen, series)) in loads
        .into_iter()
        .zip(recs)
        .zip(gen_results.into_iter().zip(series))
    {
        let totals = rec.finish();
        let stuck = totals.started - totals.completed - totals.panicked;
        workloads.push(WorkloadResult {
            load,
            pool,
            gen,
            totals,
            stuck,
            series,
        });
    }
    gate.open();
    let pools = pools
        .into_iter()
        .zip(report.pools.iter())
        .zip(worker_cpus.into_iter().zip(peak_threads))
        .enumerate()
        .map(
            |(i, ((spec, pr), (worker_cpus, peak_threads)))| PoolResult {
                spec,
                stats: pr.stats.clone(),
                cancelled_at_shutdown: pr.cancelled_at_shutdown,
                stuck_workers: pr
                    .still_running
                    .iter()
                    .map(|s| (s.thread_name.clone(), s.running_for))
                    .collect(),
                worker_cpus,
                peak_threads,
                cpu_used: cpu.get(i).and_then(|c| c.0),
                cap: cpu.get(i).and_then(|c| c.1.clone()),
            },
        )
        .collect();
    Ok(RunResult {
        kind,
        pools,
        workloads,
        measured: sc.duration,
        shutdown_elapsed: report.elapsed,
        shutdown_timed_out: report.timed_out,
        noise,
    })
}
