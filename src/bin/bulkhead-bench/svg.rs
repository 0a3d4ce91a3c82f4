//! The plot (`--plot FILE.svg`): per workload, end-to-end p99 latency over time (log scale)
//! and the queue depth of its pool over time, one line per mode: alone (grey), isolated
//! (blue), shared (red). A scenario about callers' deadlines (a load with `phases` work or
//! `pass_deadline`) gets instead one panel of goodput over time, one line per workload of the
//! isolated run, with the phases of the work marked. A scenario of keyed loads (`key=`: tenants
//! of shared pools) gets one row per key instead: its end-to-end p99 and its completions per
//! second over time, one line per pool of the run with the most workloads. A small SVG writer
//! of our own: lines, axes, labels, no dependency.

use std::fmt::Write as _;

use crate::record::Point;
use crate::report::Report;
use crate::run::RunKind;
use crate::spec::WorkSpec;

const PANEL_W: f64 = 520.0;
const PANEL_H: f64 = 210.0;
const LEFT: f64 = 70.0;
const GAP_X: f64 = 90.0;
const TOP: f64 = 80.0;
const ROW_H: f64 = 290.0;

fn colour(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Alone => "#7f7f7f",
        RunKind::Isolated => "#1f77b4",
        RunKind::Shared => "#d62728",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{}ms", us / 1e3)
    } else {
        format!("{us}µs")
    }
}

/// A panel's frame: maps data to pixels.
struct Panel {
    x0: f64,
    y0: f64,
    /// Width in pixels.
    w: f64,
    t_min: f64,
    t_max: f64,
}

impl Panel {
    fn x(&self, t: f64) -> f64 {
        self.x0 + (t - self.t_min) / (self.t_max - self.t_min) * self.w
    }

    /// The frame, its title, the time axis (ticks and label) and the `y_label` (with its
    /// unit) along the left edge.
    fn frame(&self, out: &mut String, title: &str, y_label: &str) {
        let _ = writeln!(
            out,
            r##"<rect x="{}" y="{}" width="{}" height="{PANEL_H}" fill="#fff" stroke="#333"/>"##,
            self.x0, self.y0, self.w
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
            self.x0,
            self.y0 - 8.0,
            esc(title)
        );
        // Time axis: a tick every second.
        let first = self.t_min.ceil() as i64;
        let last = self.t_max.floor() as i64;
        for t in first..=last {
            let x = self.x(t as f64);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="{}" stroke-width="1"/>"##,
                self.y0,
                self.y0 + PANEL_H,
                if t == 0 { "#999" } else { "#eee" }
            );
            let _ = writeln!(
                out,
                r#"<text x="{x:.1}" y="{}" font-size="11" text-anchor="middle">{t}</text>"#,
                self.y0 + PANEL_H + 14.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">time since the end of warmup (s)</text>"#,
            self.x0 + self.w / 2.0,
            self.y0 + PANEL_H + 30.0
        );
        let (lx, ly) = (self.x0 - 54.0, self.y0 + PANEL_H / 2.0);
        let _ = writeln!(
            out,
            r#"<text x="{lx:.1}" y="{ly:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 {lx:.1} {ly:.1})">{}</text>"#,
            esc(y_label)
        );
    }

    /// Draws `points` as a polyline, broken where `y` returns None.
    fn line(&self, out: &mut String, points: &[(f64, Option<f64>)], stroke: &str) {
        let mut seg: Vec<String> = Vec::new();
        let flush = |seg: &mut Vec<String>, out: &mut String| {
            if seg.len() == 1 {
                // A lone point: draw it as a dot.
                let xy: Vec<&str> = seg[0].split(',').collect();
                let _ = writeln!(
                    out,
                    r#"<circle cx="{}" cy="{}" r="1.8" fill="{stroke}"/>"#,
                    xy[0], xy[1]
                );
            } else if seg.len() > 1 {
                let _ = writeln!(
                    out,
                    r#"<polyline fill="none" stroke="{stroke}" stroke-width="1.6" points="{}"/>"#,
                    seg.join(" ")
                );
            }
            seg.clear();
        };
        for &(t, y) in points {
            match y {
                Some(y) => seg.push(format!("{:.1},{:.1}", self.x(t), y)),
                None => flush(&mut seg, out),
            }
        }
        flush(&mut seg, out);
    }
}

/// One colour per workload of the goodput plot.
const PALETTE: [&str; 8] = [
    "#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Whether the scenario is about callers' deadlines, and so gets the goodput plot.
fn about_deadlines(report: &Report) -> bool {
    report
        .scenario
        .loads
        .iter()
        .any(|l| l.pass_deadline || matches!(l.work, WorkSpec::Phases { .. }))
}

/// The goodput plot: answers within the deadline per second (from each 100 ms tick), one
/// line per workload of the run with the most workloads; the phase bounds as dashed lines.
fn render_goodput(report: &Report) -> String {
    let sc = &report.scenario;
    let width = LEFT + 2.0 * PANEL_W + 30.0;
    let height = TOP + ROW_H + 30.0;
    let t_min = -sc.warmup.as_secs_f64();
    let t_max = sc.duration.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#fafafa"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="26" font-size="17" font-weight="bold">bulkhead-bench: {} — goodput per pool</text>"#,
        esc(&sc.name)
    );
    let Some(run) = report.runs.iter().max_by_key(|r| r.workloads.len()) else {
        out.push_str("</svg>\n");
        return out;
    };
    // Legend.
    let mut lx = LEFT;
    for (i, w) in run.workloads.iter().enumerate() {
        let label = &w.load.name;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="46" x2="{}" y2="46" stroke="{}" stroke-width="3"/><text x="{}" y="50" font-size="12">{}</text>"#,
            lx + 24.0,
            PALETTE[i % PALETTE.len()],
            lx + 30.0,
            esc(label)
        );
        lx += 50.0 + label.len() as f64 * 7.0;
    }
    let y0 = TOP + 20.0;
    let panel = Panel {
        x0: LEFT,
        y0,
        w: 2.0 * PANEL_W,
        t_min,
        t_max,
    };
    panel.frame(
        &mut out,
        &format!(
            "answers within the caller's deadline, per second (100 ms ticks, {} run)",
            run.kind.as_str()
        ),
        "goodput (answers/s)",
    );
    let rate = |p: &Point| p.good as f64 * 10.0;
    let max = run
        .workloads
        .iter()
        .flat_map(|w| w.series.iter().map(rate))
        .fold(1.0f64, f64::max);
    let step = nice_step(max / 4.0);
    let top = (max / step).ceil() * step;
    let gy = |g: f64| y0 + PANEL_H - g / top * PANEL_H;
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let y = gy(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{v}</text>"##,
            LEFT + panel.w,
            LEFT - 5.0,
            y + 4.0
        );
        v += step;
    }
    // Phase bounds of the first load with phases, dashed, labelled.
    if let Some(WorkSpec::Phases { bounds, .. }) = sc
        .loads
        .iter()
        .map(|l| &l.work)
        .find(|w| matches!(w, WorkSpec::Phases { .. }))
    {
        for b in bounds.iter().map(|b| b.as_secs_f64()) {
            if b > t_min && b < t_max {
                let x = panel.x(b);
                let _ = writeln!(
                    out,
                    r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="#555" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="11">phase change at {b}s</text>"##,
                    y0 + PANEL_H,
                    x + 3.0,
                    y0 + 12.0
                );
            }
        }
    }
    for (i, w) in run.workloads.iter().enumerate() {
        let pts: Vec<(f64, Option<f64>)> =
            w.series.iter().map(|p| (p.t, Some(gy(rate(p))))).collect();
        panel.line(&mut out, &pts, PALETTE[i % PALETTE.len()]);
    }
    out.push_str("</svg>\n");
    out
}

/// The keyed plot: per key (in the order the loads name them), its end-to-end p99 per
/// 100 ms (log scale) and its completions per second, one line per pool, from the run with
/// the most workloads (the side-by-side run).
fn render_keyed(report: &Report) -> String {
    let sc = &report.scenario;
    let mut keys: Vec<&str> = Vec::new();
    for k in sc.loads.iter().filter_map(|l| l.key.as_deref()) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let width = LEFT + 2.0 * PANEL_W + GAP_X + 30.0;
    let height = TOP + keys.len() as f64 * ROW_H + 10.0;
    let t_min = -sc.warmup.as_secs_f64();
    let t_max = sc.duration.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#fafafa"/>"##
    );
    let Some(run) = report.runs.iter().max_by_key(|r| r.workloads.len()) else {
        out.push_str("</svg>\n");
        return out;
    };
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="26" font-size="17" font-weight="bold">bulkhead-bench: {} — per key, one line per pool ({} run)</text>"#,
        esc(&sc.name),
        run.kind.as_str()
    );
    let pools: Vec<&str> = sc.pools.iter().map(|p| p.name.as_str()).collect();
    let colour_of = |pool: &str| {
        let i = pools.iter().position(|p| *p == pool).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let mut lx = LEFT;
    for p in &pools {
        let label = format!("pool {p}");
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="46" x2="{}" y2="46" stroke="{}" stroke-width="3"/><text x="{}" y="50" font-size="12">{}</text>"#,
            lx + 24.0,
            colour_of(p),
            lx + 30.0,
            esc(&label)
        );
        lx += 50.0 + label.len() as f64 * 7.0;
    }
    for (row, key) in keys.iter().enumerate() {
        let y0 = TOP + row as f64 * ROW_H + 20.0;
        let series: Vec<(&str, &[Point])> = run
            .workloads
            .iter()
            .filter(|w| w.load.key.as_deref() == Some(*key))
            .map(|w| (w.load.pool.as_str(), w.series.as_slice()))
            .collect();
        let lat = Panel {
            x0: LEFT,
            y0,
            w: PANEL_W,
            t_min,
            t_max,
        };
        lat.frame(
            &mut out,
            &format!("key {key}: end-to-end p99 per 100 ms (log scale)"),
            "end-to-end p99, log scale (µs, ms, s)",
        );
        let max_us = series
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.e2e_p99 as f64 / 1e3))
            .fold(100.0f64, f64::max);
        let lo = 1.0f64;
        let hi = max_us.log10().ceil().max(lo + 1.0);
        let ly = |us: f64| y0 + PANEL_H - ((us.max(10.0).log10() - lo) / (hi - lo)) * PANEL_H;
        for e in (lo as i32)..=(hi as i32) {
            let us = 10f64.powi(e);
            let y = ly(us);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                LEFT + PANEL_W,
                LEFT - 5.0,
                y + 4.0,
                fmt_us(us)
            );
        }
        for (pool, s) in &series {
            let pts: Vec<(f64, Option<f64>)> = s
                .iter()
                .map(|p| (p.t, (p.ended > 0).then(|| ly(p.e2e_p99 as f64 / 1e3))))
                .collect();
            lat.line(&mut out, &pts, colour_of(pool));
        }
        // Completions per second, linear.
        let qx0 = LEFT + PANEL_W + GAP_X;
        let q = Panel {
            x0: qx0,
            y0,
            w: PANEL_W,
            t_min,
            t_max,
        };
        q.frame(
            &mut out,
            &format!("key {key}: tasks completed per second (100 ms ticks)"),
            "completed (tasks/s)",
        );
        let rate = |p: &Point| p.ended as f64 * 10.0;
        let max = series
            .iter()
            .flat_map(|(_, s)| s.iter().map(rate))
            .fold(1.0f64, f64::max);
        let step = nice_step(max / 4.0);
        let top = (max / step).ceil() * step;
        let qy = |d: f64| y0 + PANEL_H - d / top * PANEL_H;
        let mut v = 0.0;
        while v <= top + 1e-9 {
            let y = qy(v);
            let _ = writeln!(
                out,
                r##"<line x1="{qx0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{v}</text>"##,
                qx0 + PANEL_W,
                qx0 - 5.0,
                y + 4.0
            );
            v += step;
        }
        for (pool, s) in &series {
            let pts: Vec<(f64, Option<f64>)> = s.iter().map(|p| (p.t, Some(qy(rate(p))))).collect();
            q.line(&mut out, &pts, colour_of(pool));
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Renders the report's time series as an SVG document.
pub(crate) fn render(report: &Report) -> String {
    if about_deadlines(report) {
        return render_goodput(report);
    }
    if report.scenario.loads.iter().any(|l| l.key.is_some()) {
        return render_keyed(report);
    }
    let names: Vec<&str> = report
        .scenario
        .loads
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    let width = LEFT + 2.0 * PANEL_W + GAP_X + 30.0;
    let height = TOP + names.len() as f64 * ROW_H + 10.0;
    let sc = &report.scenario;
    let t_min = -sc.warmup.as_secs_f64();
    let t_max = sc.duration.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#fafafa"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="26" font-size="17" font-weight="bold">bulkhead-bench: {} — isolated vs shared pool</text>"#,
        esc(&sc.name)
    );
    // Legend.
    let mut lx = LEFT;
    for kind in [RunKind::Alone, RunKind::Isolated, RunKind::Shared] {
        if !report.runs.iter().any(|r| r.kind == kind) {
            continue;
        }
        let label = match kind {
            RunKind::Alone => format!("{} alone (reference)", names[0]),
            RunKind::Isolated => "isolated: one bulkhead per workload".to_owned(),
            RunKind::Shared => "shared: one pool for all".to_owned(),
        };
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="46" x2="{}" y2="46" stroke="{}" stroke-width="3"/><text x="{}" y="50" font-size="12">{}</text>"#,
            lx + 24.0,
            colour(kind),
            lx + 30.0,
            esc(&label)
        );
        lx += 40.0 + label.len() as f64 * 6.6;
    }

    for (row, name) in names.iter().enumerate() {
        let y0 = TOP + row as f64 * ROW_H + 20.0;
        let series: Vec<(RunKind, &[Point])> = report
            .runs
            .iter()
            .filter_map(|r| {
                r.workloads
                    .iter()
                    .find(|w| w.load.name == *name)
                    .map(|w| (r.kind, w.series.as_slice()))
            })
            .collect();

        // Latency panel, log scale from 10 µs to the next power of ten above the maximum.
        let lat = Panel {
            x0: LEFT,
            y0,
            w: PANEL_W,
            t_min,
            t_max,
        };
        lat.frame(
            &mut out,
            &format!("{name}: end-to-end p99 per 100 ms (log scale)"),
            "end-to-end p99, log scale (µs, ms, s)",
        );
        let max_us = series
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.e2e_p99 as f64 / 1e3))
            .fold(100.0f64, f64::max);
        let lo = 1.0f64; // log10(10 µs)
        let hi = max_us.log10().ceil().max(lo + 1.0);
        let ly = |us: f64| y0 + PANEL_H - ((us.max(10.0).log10() - lo) / (hi - lo)) * PANEL_H;
        for e in (lo as i32)..=(hi as i32) {
            let us = 10f64.powi(e);
            let y = ly(us);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                LEFT + PANEL_W,
                LEFT - 5.0,
                y + 4.0,
                fmt_us(us)
            );
        }
        let mut note_y = y0 + 16.0;
        for (kind, s) in &series {
            let pts: Vec<(f64, Option<f64>)> = s
                .iter()
                .map(|p| (p.t, (p.ended > 0).then(|| ly(p.e2e_p99 as f64 / 1e3))))
                .collect();
            lat.line(&mut out, &pts, colour(*kind));
            // A line that is simply absent reads as "fine"; say so when nothing finished.
            if !s.iter().any(|p| p.t >= 0.0 && p.ended > 0) {
                let _ = writeln!(
                    out,
                    r#"<text x="{}" y="{note_y}" font-size="12" fill="{}">{}: no task finished in the measured window</text>"#,
                    LEFT + 8.0,
                    colour(*kind),
                    kind.as_str()
                );
                note_y += 16.0;
            }
        }

        // Queue depth panel, linear.
        let qx0 = LEFT + PANEL_W + GAP_X;
        let q = Panel {
            x0: qx0,
            y0,
            w: PANEL_W,
            t_min,
            t_max,
        };
        q.frame(
            &mut out,
            &format!("{name}: queue depth of its pool"),
            "queue depth (tasks)",
        );
        let max_q = series
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.queue_depth))
            .max()
            .unwrap_or(0)
            .max(1);
        let step = nice_step(max_q as f64 / 4.0);
        let top = (max_q as f64 / step).ceil() * step;
        let qy = |d: f64| y0 + PANEL_H - d / top * PANEL_H;
        let mut v = 0.0;
        while v <= top + 1e-9 {
            let y = qy(v);
            let _ = writeln!(
                out,
                r##"<line x1="{qx0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{v}</text>"##,
                qx0 + PANEL_W,
                qx0 - 5.0,
                y + 4.0
            );
            v += step;
        }
        for (kind, s) in &series {
            let pts: Vec<(f64, Option<f64>)> = s
                .iter()
                .map(|p| (p.t, Some(qy(p.queue_depth as f64))))
                .collect();
            q.line(&mut out, &pts, colour(*kind));
        }
    }
    out.push_str("</svg>\n");
    out
}

/// A round step (1, 2 or 5 times a power of ten) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}
