//! The results: the table on stdout and the JSON document (`--json FILE`).
//!
//! The JSON layout is documented in `docs/BENCHMARKS.md` (schema version 1): a stable
//! top-level object with `scenario`, `machine`, `runs` (one per mode, each with its pools'
//! final accounting and, per workload, outcome counts, rates, percentiles, full percentile
//! curves, send lateness and a 100 ms time series) and `isolation`.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::run::{RunKind, RunResult, WorkloadResult, POOL_PINNING};
use crate::spec::{fmt_duration, LoadSpec, PoolSpec, Rate, Scenario, WorkSpec};
use crate::work::Spinner;

/// Everything a bench invocation measured.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) scenario: Scenario,
    pub(crate) cpus: usize,
    pub(crate) spinner: Spinner,
    pub(crate) runs: Vec<RunResult>,
}

const PERCENTILES: [f64; 4] = [50.0, 99.0, 99.9, 100.0];

fn pct(h: &Histogram<u64>, p: f64) -> Option<Duration> {
    if h.is_empty() {
        None
    } else if p >= 100.0 {
        Some(Duration::from_nanos(h.max()))
    } else {
        Some(Duration::from_nanos(h.value_at_percentile(p)))
    }
}

fn cell(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), fmt_duration)
}

/// One isolation ratio: a workload's p99 end to end in a mode over its p99 alone.
#[derive(Debug)]
pub(crate) struct Ratio {
    pub(crate) workload: String,
    pub(crate) mode: RunKind,
    pub(crate) p99: Option<Duration>,
    pub(crate) alone_p99: Option<Duration>,
    /// The same at p50: less sensitive to a noisy machine than p99.
    pub(crate) p50: Option<Duration>,
    pub(crate) alone_p50: Option<Duration>,
}

fn ratio(a: Option<Duration>, b: Option<Duration>) -> Option<f64> {
    match (a, b) {
        (Some(p), Some(a)) if !a.is_zero() => Some(p.as_secs_f64() / a.as_secs_f64()),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(v) if v >= 100.0 => format!("x{v:.0}"),
        Some(v) => format!("x{v:.2}"),
        None => "n/a".to_owned(),
    }
}

impl Ratio {
    /// The isolation ratio: p99 in this mode over p99 alone.
    pub(crate) fn value(&self) -> Option<f64> {
        ratio(self.p99, self.alone_p99)
    }

    pub(crate) fn value_p50(&self) -> Option<f64> {
        ratio(self.p50, self.alone_p50)
    }
}

/// What a workload's callers got, for a load with `deadline=`.
#[derive(Debug)]
pub(crate) struct DeadlineFigures {
    /// Answers within the deadline per second (arrivals inside the window).
    pub(crate) good_per_s: f64,
    /// Tasks (arrivals inside the window) that started after their caller's deadline.
    pub(crate) wasted: u64,
    /// `wasted` over the wasted work of the plain pool's workload with the same load in the
    /// same run (no CoDel, no adaptive limit, no `max_queue_wait`, no `pass_deadline`).
    pub(crate) wasted_vs_plain: Option<f64>,
    /// For `phases` work: (from, to, answers within the deadline per second), seconds into
    /// the window, from the 100 ms series (by the time each task ended).
    pub(crate) phases: Vec<(f64, f64, f64)>,
    /// The median goodput of a 100 ms tick during the first phase, per second.
    pub(crate) healthy_per_s: Option<f64>,
    /// Seconds from the last phase bound (the heal) to the start of the first 100 ms tick
    /// from which five ticks in a row (0.5 s) reach 90 % of the healthy goodput; `Some(None)`
    /// if that never happened in the window, `None` without phases.
    pub(crate) recovery_s: Option<Option<f64>>,
}

/// The ticks that count as "back to full goodput": this many in a row ...
const RECOVERED_TICKS: usize = 5;
/// ... each with at least this share of the healthy goodput.
const RECOVERED_SHARE: f64 = 0.9;

/// Whether `w` ran on a pool without any control that acts on stale work.
fn is_plain(run: &RunResult, w: &WorkloadResult) -> bool {
    let pool = run.pools.iter().find(|p| p.spec.name == w.pool);
    !w.load.pass_deadline
        && pool.is_some_and(|p| {
            ["codel", "adaptive_limit", "max_queue_wait"]
                .iter()
                .all(|k| p.spec.get(k).is_none())
        })
}

/// The deadline figures of `w` in `run` (None without a deadline).
pub(crate) fn deadline_figures(run: &RunResult, w: &WorkloadResult) -> Option<DeadlineFigures> {
    w.load.deadline?;
    let secs = run.measured.as_secs_f64();
    let plain = run.workloads.iter().find(|p| {
        p.load.deadline == w.load.deadline
            && p.load.work == w.load.work
            && p.load.rate == w.load.rate
            && is_plain(run, p)
    });
    let wasted = w.totals.wasted;
    let wasted_vs_plain =
        plain.and_then(|p| (p.totals.wasted > 0).then(|| wasted as f64 / p.totals.wasted as f64));
    let mut phases = Vec::new();
    let mut healthy_per_s = None;
    let mut recovery_s = None;
    if let WorkSpec::Phases { bounds, .. } = &w.load.work {
        let inside: Vec<f64> = bounds
            .iter()
            .map(Duration::as_secs_f64)
            .filter(|b| *b > 0.0 && *b < secs)
            .collect();
        let mut edges = vec![0.0];
        edges.extend(&inside);
        edges.push(secs);
        // A tick sampled at `t` covers (t - 0.1, t]; half a tick of slack for the sampler.
        let ticks_in = |from: f64, to: f64| {
            w.series
                .iter()
                .filter(move |p| p.t > from + 0.05 && p.t <= to + 0.05)
        };
        for pair in edges.windows(2) {
            let good: u64 = ticks_in(pair[0], pair[1]).map(|p| p.good).sum();
            phases.push((pair[0], pair[1], good as f64 / (pair[1] - pair[0])));
        }
        let mut first: Vec<u64> = ticks_in(0.1, edges[1]).map(|p| p.good).collect();
        first.sort_unstable();
        let healthy = first.get(first.len() / 2).copied();
        healthy_per_s = healthy.map(|g| g as f64 * 10.0);
        if let (Some(&heal), Some(healthy)) = (inside.last(), healthy) {
            let after: Vec<_> = ticks_in(heal, secs).collect();
            let enough = |g: u64| g as f64 >= RECOVERED_SHARE * healthy as f64;
            recovery_s = Some(
                (0..after.len().saturating_sub(RECOVERED_TICKS - 1))
                    .find(|&i| after[i..i + RECOVERED_TICKS].iter().all(|p| enough(p.good)))
                    .map(|i| (after[i].t - 0.1 - heal).max(0.0)),
            );
        }
    }
    Some(DeadlineFigures {
        good_per_s: w.totals.good as f64 / secs,
        wasted,
        wasted_vs_plain,
        phases,
        healthy_per_s,
        recovery_s,
    })
}

impl Report {
    /// The isolation ratios of the first (latency-sensitive) workload.
    pub(crate) fn ratios(&self) -> Vec<Ratio> {
        let name = &self.scenario.loads[0].name;
        let alone = self
            .runs
            .iter()
            .find(|r| r.kind == RunKind::Alone)
            .and_then(|r| r.workloads.iter().find(|w| &w.load.name == name));
        let alone_at = |p| alone.and_then(|w| pct(&w.totals.end_to_end, p));
        self.runs
            .iter()
            .filter_map(|r| {
                let w = r.workloads.iter().find(|w| &w.load.name == name)?;
                Some(Ratio {
                    workload: name.clone(),
                    mode: r.kind,
                    p99: pct(&w.totals.end_to_end, 99.0),
                    alone_p99: alone_at(99.0),
                    p50: pct(&w.totals.end_to_end, 50.0),
                    alone_p50: alone_at(50.0),
                })
            })
            .collect()
    }

    /// The human-readable table. By default, only the columns that decide containment and
    /// every line within [`NARROW`] characters; `wide`, every column, lines unwrapped.
    pub(crate) fn table(&self, wide: bool) -> String {
        let text = self.table_text(wide);
        if wide {
            text
        } else {
            wrap(&text, NARROW)
        }
    }

    fn table_text(&self, wide: bool) -> String {
        let mut out = String::new();
        let sc = &self.scenario;
        let _ = writeln!(
            out,
            "bulkhead-bench: scenario {:?}, {} measured per mode after {} warmup, {} CPUs, spin {:.3} ns/iter",
            sc.name,
            fmt_duration(sc.duration),
            fmt_duration(sc.warmup),
            self.cpus,
            self.spinner.ns_per_iter
        );
        for p in &sc.pools {
            let _ = writeln!(out, "  pool {}", describe_pool(p));
        }
        for l in &sc.loads {
            let _ = writeln!(out, "  load {}", describe_load(l));
        }
        let _ = writeln!(out);
        let ratios = self.ratios();
        // Narrow: the columns that decide containment, how much work got through and
        // how late, against the workload alone.
        const NARROW_COLUMNS: [&str; 9] = [
            "workload",
            "mode",
            "done/s",
            "refused",
            "not run",
            "e2e p50",
            "p99",
            "p99.9",
            "p99/alone",
        ];
        let header = [
            "workload",
            "mode",
            "offered/s",
            "done/s",
            "good/s",
            "refused",
            "key cap",
            "expired",
            "shed",
            "panicked",
            "cancelled",
            "stuck",
            "wait p50",
            "p99",
            "p99.9",
            "max",
            "e2e p50",
            "p99",
            "p99.9",
            "max",
            "p50/alone",
            "p99/alone",
        ];
        let header: &[&str] = if wide { &header } else { &NARROW_COLUMNS };
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
        for w_name in sc.loads.iter().map(|l| &l.name) {
            for r in &self.runs {
                let Some(w) = r.workloads.iter().find(|w| &w.load.name == w_name) else {
                    continue;
                };
                let secs = r.measured.as_secs_f64();
                let mut row = vec![
                    w.load.name.clone(),
                    r.kind.as_str().to_owned(),
                    format!("{:.0}", w.gen.offered_in_window as f64 / secs),
                    format!("{:.0}", w.totals.ended_in_window as f64 / secs),
                    match w.load.deadline {
                        Some(_) => format!("{:.0}", w.totals.good as f64 / secs),
                        None => "-".to_owned(),
                    },
                    w.gen.refused().to_string(),
                    w.gen.refused_key_cap.to_string(),
                    w.totals.expired.to_string(),
                    w.totals.shed.to_string(),
                    w.totals.panicked.to_string(),
                    w.totals.cancelled.to_string(),
                    w.stuck.to_string(),
                ];
                for h in [&w.totals.queue_wait, &w.totals.end_to_end] {
                    row.extend(PERCENTILES.iter().map(|&p| cell(pct(h, p))));
                }
                match ratios
                    .iter()
                    .find(|x| &x.workload == w_name && x.mode == r.kind)
                {
                    Some(x) => {
                        row.push(fmt_ratio(x.value_p50()));
                        row.push(fmt_ratio(x.value()));
                    }
                    None => row.extend(["-".to_owned(), "-".to_owned()]),
                }
                if !wide {
                    // workload, mode, done/s, refused, not run (expired + shed + cancelled),
                    // e2e p50, p99, p99.9, p99/alone.
                    let not_run = w.totals.expired + w.totals.shed + w.totals.cancelled;
                    row = vec![
                        row[0].clone(),
                        row[1].clone(),
                        row[3].clone(),
                        row[5].clone(),
                        not_run.to_string(),
                        row[16].clone(),
                        row[17].clone(),
                        row[18].clone(),
                        row[21].clone(),
                    ];
                }
                rows.push(row);
            }
        }
        out.push_str(&layout_table(&rows, &[0, 1]));
        let _ = writeln!(
            out,
            "\nrates over the measured window; counts over the whole run (warmup, window, drain); \
             latencies from each task's intended arrival, for arrivals inside the window; \
             good/s: arrivals inside the window that completed within the load's deadline, per second"
        );

        self.deadline_tables(&mut out);
        self.key_table(&mut out);

        let _ = writeln!(
            out,
            "\ngenerator send lateness (the generator's own delay, not the pool's):"
        );
        let mut rows = vec![["workload", "mode", "threads pinned", "p50", "p99", "max"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()];
        for r in &self.runs {
            for w in &r.workloads {
                let open = matches!(w.load.rate, Rate::PerSec(_)) && w.load.callers.is_none();
                let h = &w.gen.lateness;
                rows.push(vec![
                    w.load.name.clone(),
                    r.kind.as_str().to_owned(),
                    match w.gen.pinned {
                        Some(true) => "yes".to_owned(),
                        Some(false) => "FAILED".to_owned(),
                        None => "no".to_owned(),
                    },
                    if open {
                        cell(pct(h, 50.0))
                    } else {
                        "n/a (not paced)".to_owned()
                    },
                    if open {
                        cell(pct(h, 99.0))
                    } else {
                        "-".to_owned()
                    },
                    if open {
                        cell(pct(h, 100.0))
                    } else {
                        "-".to_owned()
                    },
                ]);
            }
        }
        out.push_str(&layout_table(&rows, &[0, 1, 2]));

        let _ = writeln!(
            out,
            "\npools after shutdown (workers' CPUs as the OS reported them after start-up):"
        );
        for r in &self.runs {
            for p in &r.pools {
                let s = &p.stats;
                let _ = write!(
                    out,
                    "  {:<8} {:<10} submitted {} completed {} panicked {} expired {} shed {} cancelled {} refused {}",
                    r.kind.as_str(),
                    p.spec.name,
                    s.submitted,
                    s.completed,
                    s.panicked,
                    s.expired,
                    s.shed,
                    s.cancelled,
                    s.refused()
                );
                if s.refused_key_cap > 0 {
                    let _ = write!(out, " (key cap {})", s.refused_key_cap);
                }
                if p.spec.elastic().is_some() {
                    let _ = write!(out, "; peak threads {}", p.peak_threads);
                }
                if s.replacements > 0 {
                    let _ = write!(
                        out,
                        "; {} replacement threads started, {} stuck workers replaced at the end",
                        s.replacements, s.replaced
                    );
                }
                let cpus: Vec<&str> = p
                    .worker_cpus
                    .iter()
                    .map(|c| c.as_deref().unwrap_or("?"))
                    .collect();
                let _ = write!(out, "; worker CPUs [{}]", cpus.join("] ["));
                if let Some(used) = p.cpu_used {
                    let _ = write!(out, "; CPU used {used:.2}");
                }
                if let Some(c) = &p.cap {
                    match &c.uncapped {
                        Some(why) => {
                            let _ = write!(out, " (cpu_limit {:.2}, UNCAPPED: {why})", c.limit);
                        }
                        None => {
                            let _ = write!(
                                out,
                                " of cpu_limit {:.2}, throttled in {} of {} periods",
                                c.limit, c.throttled_periods, c.periods
                            );
                        }
                    }
                }
                if !p.stuck_workers.is_empty() {
                    let names: Vec<String> = p
                        .stuck_workers
                        .iter()
                        .map(|(n, d)| format!("{n} ({})", fmt_duration(*d)))
                        .collect();
                    let _ = write!(out, "; stuck workers: {}", names.join(", "));
                }
                let _ = writeln!(out);
            }
            if let Some(n) = r.noise {
                let _ = writeln!(
                    out,
                    "  {:<8} other processes took {:.0}% of all CPU time during the run, steal {:.0}%{}",
                    r.kind.as_str(),
                    n.others * 100.0,
                    n.steal * 100.0,
                    if n.others + n.steal > 0.05 {
                        " (WARNING: a noisy machine; distrust this run)"
                    } else {
                        ""
                    }
                );
            }
            if r.shutdown_timed_out {
                let _ = writeln!(
                    out,
                    "  {:<8} shutdown gave up after {} (drain time)",
                    r.kind.as_str(),
                    fmt_duration(r.shutdown_elapsed)
                );
            }
        }
        out
    }

    /// For loads with `deadline=`: what the callers got, per workload and mode, and for
    /// `phases` work, goodput per phase and the time back to full goodput after the heal.
    fn deadline_tables(&self, out: &mut String) {
        let mut rows: Vec<Vec<String>> = vec![[
            "workload",
            "mode",
            "good/s",
            "refused",
            "not run",
            "wasted",
            "vs plain",
            "answers p99",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()];
        let mut phase_rows: Vec<Vec<String>> = Vec::new();
        for l in &self.scenario.loads {
            for r in &self.runs {
                let Some(w) = r.workloads.iter().find(|w| w.load.name == l.name) else {
                    continue;
                };
                let Some(f) = deadline_figures(r, w) else {
                    continue;
                };
                rows.push(vec![
                    w.load.name.clone(),
                    r.kind.as_str().to_owned(),
                    format!("{:.0}", f.good_per_s),
                    w.gen.refused().to_string(),
                    (w.totals.expired + w.totals.shed + w.totals.cancelled).to_string(),
                    f.wasted.to_string(),
                    f.wasted_vs_plain
                        .map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0)),
                    cell(pct(&w.totals.end_to_end, 99.0)),
                ]);
                if !f.phases.is_empty() {
                    if phase_rows.is_empty() {
                        let mut head = vec!["workload".to_owned(), "mode".to_owned()];
                        head.extend(f.phases.iter().map(|(a, b, _)| format!("good/s {a}-{b}s")));
                        head.extend(["healthy/s".to_owned(), "full again after".to_owned()]);
                        phase_rows.push(head);
                    }
                    let mut row = vec![w.load.name.clone(), r.kind.as_str().to_owned()];
                    row.extend(f.phases.iter().map(|(_, _, g)| format!("{g:.0}")));
                    row.push(
                        f.healthy_per_s
                            .map_or("-".to_owned(), |h| format!("{h:.0}")),
                    );
                    row.push(match f.recovery_s {
                        Some(Some(s)) => format!("{s:.1}s"),
                        Some(None) => "never".to_owned(),
                        None => "-".to_owned(),
                    });
                    phase_rows.push(row);
                }
            }
        }
        if rows.len() == 1 {
            return;
        }
        let _ = writeln!(
            out,
            "\ncallers with a deadline (good/s: answers within it; wasted: tasks started after it; \
             vs plain: wasted as a share of the plain pool's with the same load; answers p99: \
             end to end of the tasks that returned):"
        );
        out.push_str(&layout_table(&rows, &[0, 1]));
        if phase_rows.len() > 1 {
            let _ = writeln!(
                out,
                "\ngoodput by phase of the work (answers within the deadline per second, by end \
                 time); full again: from the heal (last phase bound) until 5 ticks of 100 ms in a \
                 row reach 90% of the healthy rate (median tick of the first phase):"
            );
            out.push_str(&layout_table(&phase_rows, &[0, 1]));
        }
    }

    /// For keyed loads (`key=`): per tenant and mode, what got through, the refusals by
    /// reason, and the latency against the same key on the reference pool (the first
    /// load's pool) in the same run.
    fn key_table(&self, out: &mut String) {
        let sc = &self.scenario;
        if sc.loads.iter().all(|l| l.key.is_none()) {
            return;
        }
        let ref_pool = &sc.loads[0].pool;
        let mut rows: Vec<Vec<String>> = vec![[
            "workload", "mode", "key", "done/s", "full", "key cap", "other", "e2e p50", "p99",
            "p50/ref", "p99/ref",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()];
        for l in sc.loads.iter().filter(|l| l.key.is_some()) {
            for r in &self.runs {
                let Some(w) = r.workloads.iter().find(|w| w.load.name == l.name) else {
                    continue;
                };
                let secs = r.measured.as_secs_f64();
                let h = &w.totals.end_to_end;
                let reference = r
                    .workloads
                    .iter()
                    .find(|x| x.load.key == l.key && &x.load.pool == ref_pool);
                let (r50, r99) = match reference {
                    Some(x) if x.load.name == l.name => ("ref".to_owned(), "ref".to_owned()),
                    Some(x) => {
                        let x = &x.totals.end_to_end;
                        (
                            fmt_ratio(ratio(pct(h, 50.0), pct(x, 50.0))),
                            fmt_ratio(ratio(pct(h, 99.0), pct(x, 99.0))),
                        )
                    }
                    None => ("-".to_owned(), "-".to_owned()),
                };
                let g = &w.gen;
                rows.push(vec![
                    w.load.name.clone(),
                    r.kind.as_str().to_owned(),
                    l.key.clone().unwrap_or_default(),
                    format!("{:.0}", w.totals.ended_in_window as f64 / secs),
                    g.refused_full.to_string(),
                    g.refused_key_cap.to_string(),
                    (g.refused() - g.refused_full - g.refused_key_cap).to_string(),
                    cell(pct(h, 50.0)),
                    cell(pct(h, 99.0)),
                    r50,
                    r99,
                ]);
            }
        }
        let _ = writeln!(
            out,
            "\nkeyed loads (refusals by reason: full queue, the key's in-flight cap, other; ref: the \
             same key on pool {ref_pool:?}, the first load's, in the same run):"
        );
        out.push_str(&layout_table(&rows, &[0, 1, 2]));
    }

    /// The JSON document.
    pub(crate) fn json(&self) -> Value {
        let sc = &self.scenario;
        json!({
            "schema": "bulkhead-bench/1",
            "scenario": {
                "name": sc.name,
                "duration_s": sc.duration.as_secs_f64(),
                "warmup_s": sc.warmup.as_secs_f64(),
                "drain_s": sc.drain.as_secs_f64(),
                "mode": format!("{:?}", sc.mode).to_lowercase(),
                "seed": sc.seed,
                "pools": sc.pools.iter().map(pool_json).collect::<Vec<_>>(),
                "loads": sc.loads.iter().map(load_json).collect::<Vec<_>>(),
            },
            "machine": {
                "cpus": self.cpus,
                "spin_ns_per_iter": self.spinner.ns_per_iter,
                "pool_pinning": POOL_PINNING,
            },
            "runs": self.runs.iter().map(run_json).collect::<Vec<_>>(),
            "isolation": self.ratios().iter().map(|r| json!({
                "workload": r.workload,
                "mode": r.mode.as_str(),
                "p99_us": r.p99.map(us),
                "alone_p99_us": r.alone_p99.map(us),
                "ratio": r.value(),
                "p50_us": r.p50.map(us),
                "alone_p50_us": r.alone_p50.map(us),
                "ratio_p50": r.value_p50(),
            })).collect::<Vec<_>>(),
        })
    }
}

fn us(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e3
}

fn describe_pool(p: &PoolSpec) -> String {
    p.describe()
}

fn describe_load(l: &LoadSpec) -> String {
    let mut s = format!("{} -> pool {}: ", l.name, l.pool);
    match l.callers {
        Some(n) => {
            let _ = write!(s, "closed loop, {n} callers");
        }
        None => {
            let _ = write!(s, "rate={}", l.rate);
            if l.rate == Rate::Max {
                let _ = write!(s, " ({} submitters", l.submitters);
                if let Some(n) = l.inflight {
                    let _ = write!(s, ", {n} in flight");
                }
                s.push(')');
            } else {
                let _ = write!(s, " ({:?} arrivals)", l.arrivals);
            }
        }
    }
    let _ = write!(s, ", work={}", l.work);
    if let Some(d) = l.deadline {
        let _ = write!(s, ", deadline={}", fmt_duration(d));
    }
    if let Some(k) = &l.key {
        let _ = write!(s, ", key={k}");
    }
    s
}

fn pool_json(p: &PoolSpec) -> Value {
    let settings: serde_json::Map<String, Value> = p
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    json!({
        "name": p.name,
        "threads": p.threads(),
        "max_threads": p.elastic().map(|(_, max)| max),
        "queue_capacity": p.queue_capacity(),
        "cpus": p.cpus().map(|c| c.to_string()),
        "settings": settings,
    })
}

fn load_json(l: &LoadSpec) -> Value {
    json!({
        "name": l.name,
        "pool": l.pool,
        "rate": match l.rate { Rate::PerSec(r) => json!(r), Rate::Max => json!("max") },
        "work": l.work.to_string(),
        "arrivals": format!("{:?}", l.arrivals).to_lowercase(),
        "submitters": l.submitters,
        "inflight": l.inflight,
        "callers": l.callers,
        "deadline_us": l.deadline.map(us),
        "pass_deadline": l.pass_deadline,
        "key": l.key,
    })
}

fn hist_json(h: &Histogram<u64>) -> Value {
    let p = |q: f64| {
        if h.is_empty() {
            Value::Null
        } else {
            json!(h.value_at_percentile(q) as f64 / 1e3)
        }
    };
    let curve: Vec<Value> = if h.is_empty() {
        Vec::new()
    } else {
        h.iter_quantiles(2)
            .map(|v| json!([v.quantile_iterated_to(), v.value_iterated_to() as f64 / 1e3]))
            .collect()
    };
    json!({
        "count": h.len(),
        "min_us": if h.is_empty() { Value::Null } else { json!(h.min() as f64 / 1e3) },
        "mean_us": if h.is_empty() { Value::Null } else { json!(h.mean() / 1e3) },
        "p50_us": p(50.0),
        "p90_us": p(90.0),
        "p99_us": p(99.0),
        "p99_9_us": p(99.9),
        "max_us": if h.is_empty() { Value::Null } else { json!(h.max() as f64 / 1e3) },
        "curve": curve,
    })
}

fn workload_json(r: &RunResult, w: &WorkloadResult, secs: f64) -> Value {
    let deadline = deadline_figures(r, w).map(|f| {
        json!({
            "good_per_s": f.good_per_s,
            "wasted": f.wasted,
            "wasted_vs_plain": f.wasted_vs_plain,
            "phases": f.phases.iter().map(|(a, b, g)| json!({
                "from_s": a, "to_s": b, "good_per_s": g,
            })).collect::<Vec<_>>(),
            "healthy_good_per_s": f.healthy_per_s,
            "recovery_s": f.recovery_s.flatten(),
            "recovered": f.recovery_s.map(|r| r.is_some()),
        })
    });
    json!({
        "name": w.load.name,
        "pool": w.pool,
        "counts": {
            "submitted": w.gen.submitted,
            "accepted": w.accepted(),
            "refused": w.gen.refused(),
            "refused_full": w.gen.refused_full,
            "refused_timeout": w.gen.refused_timeout,
            "refused_shutting_down": w.gen.refused_shutting_down,
            "refused_deadline": w.gen.refused_deadline,
            "refused_key_cap": w.gen.refused_key_cap,
            "refused_other": w.gen.refused_other,
            "completed": w.totals.completed,
            "panicked": w.totals.panicked,
            "expired": w.totals.expired,
            "shed": w.totals.shed,
            "cancelled": w.totals.cancelled,
            "stuck": w.stuck,
            "accounted": w.accounted(),
        },
        "window": {
            "offered": w.gen.offered_in_window,
            "ended": w.totals.ended_in_window,
            "offered_per_s": w.gen.offered_in_window as f64 / secs,
            "ended_per_s": w.totals.ended_in_window as f64 / secs,
            "good": w.load.deadline.map(|_| w.totals.good),
            "goodput_per_s": w.load.deadline.map(|_| w.totals.good as f64 / secs),
        },
        "deadline": deadline,
        "queue_wait": hist_json(&w.totals.queue_wait),
        "end_to_end": hist_json(&w.totals.end_to_end),
        "send_lateness": hist_json(&w.gen.lateness),
        "generator_pinned": w.gen.pinned,
        "series": w.series.iter().map(|p| json!({
            "t_s": p.t,
            "e2e_p50_us": p.e2e_p50 as f64 / 1e3,
            "e2e_p99_us": p.e2e_p99 as f64 / 1e3,
            "e2e_max_us": p.e2e_max as f64 / 1e3,
            "ended": p.ended,
            "good": p.good,
            "queue_depth": p.queue_depth,
        })).collect::<Vec<_>>(),
    })
}

fn run_json(r: &RunResult) -> Value {
    let secs = r.measured.as_secs_f64();
    json!({
        "mode": r.kind.as_str(),
        "measured_s": secs,
        "shutdown": {
            "elapsed_s": r.shutdown_elapsed.as_secs_f64(),
            "timed_out": r.shutdown_timed_out,
        },
        "noise": r.noise.map(|n| json!({ "others": n.others, "steal": n.steal })),
        "pools": r.pools.iter().map(|p| {
            let s = &p.stats;
            let mut v = pool_json(&p.spec);
            v["stats"] = json!({
                "submitted": s.submitted,
                "refused_full": s.refused_full,
                "refused_timeout": s.refused_timeout,
                "refused_shutting_down": s.refused_shutting_down,
                "refused_deadline": s.refused_deadline,
                "refused_key_cap": s.refused_key_cap,
                "completed": s.completed,
                "panicked": s.panicked,
                "expired": s.expired,
                "shed": s.shed,
                "cancelled": s.cancelled,
                "replacements": s.replacements,
                "queued": s.queued,
                "busy": s.busy,
            });
            // Per key, as the pool counted them (the most loaded keys, then the rest summed).
            v["keys"] = s.keys.iter().chain(s.other_keys.as_ref()).map(|k| json!({
                "key": k.key,
                "accepted": k.accepted,
                "refused_key_cap": k.refused_key_cap,
                "refused_other": k.refused_other,
                "completed": k.completed,
                "panicked": k.panicked,
                "expired": k.expired,
                "shed": k.shed,
                "cancelled": k.cancelled,
                "mean_queue_wait_us": k.mean_queue_wait().map(us),
            })).collect::<Vec<_>>().into();
            v["cancelled_at_shutdown"] = json!(p.cancelled_at_shutdown);
            v["peak_threads"] = json!(p.peak_threads);
            v["worker_cpus"] = json!(p.worker_cpus);
            v["cpu_used"] = json!(p.cpu_used);
            v["cpu_cap"] = match &p.cap {
                Some(c) => json!({
                    "limit": c.limit,
                    "throttled_periods": c.throttled_periods,
                    "periods": c.periods,
                    "uncapped": c.uncapped,
                }),
                None => serde_json::Value::Null,
            };
            v["stuck_workers"] = p.stuck_workers.iter().map(|(n, d)| json!({
                "thread": n, "running_for_s": d.as_secs_f64(),
            })).collect::<Vec<_>>().into();
            v
        }).collect::<Vec<_>>(),
        "workloads": r.workloads.iter().map(|w| workload_json(r, w, secs)).collect::<Vec<_>>(),
    })
}

/// The width the default table keeps within.
pub(crate) const NARROW: usize = 100;

/// `text` with every line longer than `width` broken at spaces; continuation lines are
/// indented four spaces. A word longer than the width stays whole.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.chars().count() <= width {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut current = line[..indent].to_owned();
        let mut fresh = true; // no word on `current` yet
        for word in line.trim_start().split(' ') {
            let len = current.chars().count();
            if !fresh && len + 1 + word.chars().count() > width {
                out.push_str(current.trim_end());
                out.push('\n');
                current = format!("{}    ", &line[..indent]);
            } else if !fresh {
                current.push(' ');
            }
            current.push_str(word);
            fresh = false;
        }
        out.push_str(current.trim_end());
        out.push('\n');
    }
    out
}

/// Lays out rows as aligned columns: left-aligned for the `left` columns, right for others.
fn layout_table(rows: &[Vec<String>], left: &[usize]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, s) in r.iter().enumerate() {
            let pad = widths[c] - s.chars().count();
            if left.contains(&c) {
                line.push_str(s);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(s);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
