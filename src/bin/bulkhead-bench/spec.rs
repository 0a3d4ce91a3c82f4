//! What a scenario is, and how it is written: the `--pool` / `--load` specs, durations,
//! rates, work specs, and the TOML scenario file.
//!
//! Every parser returns `Err(String)` with a message that names the offending value, so that
//! `main` can hand it to clap and exit with status 2. Nothing here panics on bad input.
//!
//! | syntax        | example                                             |
//! |---------------|-----------------------------------------------------|
//! | duration      | `50us`, `1.5ms`, `10s`, `2m`, `1h` (units ns, us/µs, ms, s, m, h; the library's syntax) |
//! | rate          | `2000`, `2000/s`, `2.5k`, `max`                     |
//! | work          | `spin:50us`, `sleep:2ms`, `hang`, `panic:0.3`, `9*spin:50us\|1*sleep:5ms`, `phases:sleep:5ms/2s/sleep:200ms/5s/sleep:5ms` (by time since the end of warmup) |
//! | `--pool`      | `NAME:threads=1,queue_capacity=256,cpus=0,max_queue_wait=100ms`, `codel=5ms,100ms`, `replacement_budget=2,stuck_after=100ms`, `elastic=1,8,keep_alive=2s`, `cpus=0,2-3` |
//!
//! A pool's keys are the library's (`bulkhead::pool_settings`: the keys of a
//! configuration file's `[pools.NAME]`), and each value is read by the library's settings
//! table ([`PoolBuilder::set`](bulkhead::PoolBuilder::set)), so its syntax is the library's
//! too: durations, cpulists, pairs as `A,B`. A scenario file's `[[pool]]` takes the same keys;
//! its values are given as the same text (an array is its items joined by commas).
//! | `--load`      | `POOL:rate=2000,work=spin:50us,arrivals=poisson,deadline=50ms,pass_deadline=true`, `POOL:rate=40,work=sleep:10ms,key=tenant-1` |
//!
//! A load's `key=KEY` submits its tasks through `pool.key(KEY)` (the library's keyed
//! submissions: per-key caps, fair order across keys, per-key counts), for every kind of load
//! (`execute`, `execute_timeout` for `rate=max`, `submit_timeout` for `callers=`,
//! `try_submit_by` with `pass_deadline=true`).

use std::fmt;
use std::time::Duration;

use bulkhead::limits::{DEFAULT_QUEUE_CAPACITY, DEFAULT_THREADS};
use bulkhead::SettingError;
use bulkhead::{CpuSet, PoolBuilder, RuntimeBuilder};
use serde::{Deserialize, Serialize};

/// The longest run the bench accepts for one mode (bounds every loop in time).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The highest fixed rate one generator thread is asked to keep, per second.
pub(crate) const MAX_RATE: f64 = 1_000_000.0;
/// The lowest fixed rate, per second: one task every 1000 s, less than a longest run apart.
pub(crate) const MIN_RATE: f64 = 0.001;
/// The most threads one load may use as submitters or callers.
pub(crate) const MAX_SUBMITTERS: usize = 256;

/// Which runs to make besides the reference run of the first workload alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Each pool as specified (its own threads, queue and CPUs).
    Isolated,
    /// All loads in one pool with the summed threads and queue capacity.
    Shared,
    /// Isolated, then shared.
    Both,
}

/// How a load's arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Arrivals {
    /// Evenly, one every `1 / rate`.
    Fixed,
    /// Exponential gaps with mean `1 / rate` (a Poisson process).
    Poisson,
}

/// A load's offered rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rate {
    /// Tasks per second, open loop.
    PerSec(f64),
    /// Saturating: each submitter keeps the queue full, waiting for room with
    /// `execute_timeout`, so the pool is offered more than it can serve.
    Max,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PerSec(r) => write!(f, "{r}/s"),
            Rate::Max => f.write_str("max"),
        }
    }
}

/// What one task does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WorkSpec {
    /// A calibrated busy loop worth this much CPU time.
    Spin(Duration),
    /// Blocks in `thread::sleep`.
    Sleep(Duration),
    /// Blocks until the run releases it after shutdown (a dead downstream).
    Hang,
    /// Panics with this probability, otherwise returns at once.
    Panic(f64),
    /// Each task picks one of these, with probability proportional to its weight.
    Mix(Vec<(u32, WorkSpec)>),
    /// A downstream whose behaviour changes over the run: `works[0]` before `bounds[0]`,
    /// `works[i]` from `bounds[i - 1]`, each bound measured from the start of the measured
    /// window (the end of warmup). The phase is chosen when the task starts running.
    Phases {
        works: Vec<WorkSpec>,
        bounds: Vec<Duration>,
    },
}

impl fmt::Display for WorkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkSpec::Spin(d) => write!(f, "spin:{}", fmt_duration(*d)),
            WorkSpec::Sleep(d) => write!(f, "sleep:{}", fmt_duration(*d)),
            WorkSpec::Hang => f.write_str("hang"),
            WorkSpec::Panic(p) => write!(f, "panic:{p}"),
            WorkSpec::Mix(parts) => {
                for (i, (w, spec)) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    write!(f, "{w}*{spec}")?;
                }
                Ok(())
            }
            WorkSpec::Phases { works, bounds } => {
                f.write_str("phases:")?;
                for (i, w) in works.iter().enumerate() {
                    if i > 0 {
                        write!(f, "/{}/", fmt_duration(bounds[i - 1]))?;
                    }
                    write!(f, "{w}")?;
                }
                Ok(())
            }
        }
    }
}

/// One pool of the scenario: the library's settings, by key, each value as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PoolSpec {
    pub(crate) name: String,
    /// In the order given; each was accepted by the library's settings table when parsed.
    pub(crate) settings: Vec<(String, String)>,
}

/// One workload of the scenario: what it submits, to which pool, how fast.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadSpec {
    /// The workload's name (defaults to its pool's name).
    pub(crate) name: String,
    pub(crate) pool: String,
    pub(crate) rate: Rate,
    pub(crate) work: WorkSpec,
    pub(crate) arrivals: Arrivals,
    /// For `rate=max`: how many saturating submitter threads (default 1).
    pub(crate) submitters: usize,
    /// For `rate=max`: the most of this load's tasks accepted but not yet finished
    /// (default: no limit, the submitters keep the queue full).
    pub(crate) inflight: Option<usize>,
    /// Closed loop instead of open loop: this many callers, each waiting for its result.
    pub(crate) callers: Option<usize>,
    /// The caller's deadline: a task that ends within it (end to end, from its intended
    /// arrival) counts towards goodput; one that starts after it is wasted work.
    pub(crate) deadline: Option<Duration>,
    /// Pass the caller's deadline to the pool (`try_submit_by(f, intended + deadline)`), so
    /// that the pool refuses or expires work that cannot start in time (open loop only).
    pub(crate) pass_deadline: bool,
    /// Submit through `pool.key(KEY)` (open loop only): the task counts against the pool's
    /// per-key cap and is served in the pool's key order.
    pub(crate) key: Option<String>,
}

/// A whole scenario, as the runner takes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scenario {
    pub(crate) name: String,
    pub(crate) pools: Vec<PoolSpec>,
    /// The first load is the latency-sensitive one: it also runs alone, as the reference.
    pub(crate) loads: Vec<LoadSpec>,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    /// How long shutdown waits for queued and running tasks after the run.
    pub(crate) drain: Duration,
    pub(crate) mode: Mode,
    pub(crate) seed: u64,
}

impl Scenario {
    /// Cross-checks: every load names a known pool, names are unique, CPUs exist.
    pub(crate) fn validate(&self, available_cpus: &[usize]) -> Result<(), String> {
        if self.pools.is_empty() {
            return Err("the scenario has no pool".to_owned());
        }
        if self.loads.is_empty() {
            return Err("the scenario has no load".to_owned());
        }
        for (i, p) in self.pools.iter().enumerate() {
            if self.pools[..i].iter().any(|q| q.name == p.name) {
                return Err(format!("pool {:?} is defined twice", p.name));
            }
            if let Some(cpus) = p.cpus() {
                check_cpus(&cpus, available_cpus).map_err(|e| format!("pool {:?}: {e}", p.name))?;
            }
        }
        let known: Vec<&str> = self.pools.iter().map(|p| p.name.as_str()).collect();
        for (i, l) in self.loads.iter().enumerate() {
            check_load_name(&l.name)?;
            if !known.contains(&l.pool.as_str()) {
                return Err(format!(
                    "load {:?} names the unknown pool {:?} (pools: {})",
                    l.name,
                    l.pool,
                    known.join(", ")
                ));
            }
            if l.pass_deadline
                && (l.deadline.is_none() || l.callers.is_some() || l.rate == Rate::Max)
            {
                return Err(format!(
                    "load {:?}: pass_deadline=true needs deadline= and an open-loop rate=R \
                     (not rate=max, not callers=)",
                    l.name
                ));
            }
            if self.loads[..i].iter().any(|m| m.name == l.name) {
                return Err(format!(
                    "two loads are named {:?}; give one a name with name=...",
                    l.name
                ));
            }
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!(
                "duration {} must be greater than 0 and at most {}",
                fmt_duration(self.duration),
                fmt_duration(MAX_DURATION)
            ));
        }
        if self.warmup > MAX_DURATION || self.drain > MAX_DURATION {
            return Err(format!(
                "warmup and drain must be at most {}",
                fmt_duration(MAX_DURATION)
            ));
        }
        Ok(())
    }
}

/// A load's name names its generator threads and its rows: the library's rule for pool
/// names (1 to 64 bytes, no control characters; a NUL would panic the thread spawn).
fn check_load_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > bulkhead::limits::MAX_NAME_LEN {
        return Err(format!(
            "load name {name:?} is {} bytes long: it must be 1 to {} bytes",
            name.len(),
            bulkhead::limits::MAX_NAME_LEN
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "load name {name:?} contains the control character {c:?}"
        ));
    }
    Ok(())
}

/// A load's key names its rows and the pool's per-key counts: 1 to 64 bytes, no control
/// characters (the library takes any string; the bench keeps its tables readable).
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > bulkhead::limits::MAX_NAME_LEN {
        return Err(format!(
            "invalid key={key:?}: a key is {} bytes long, it must be 1 to {} bytes",
            key.len(),
            bulkhead::limits::MAX_NAME_LEN
        ));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(format!(
            "invalid key={key:?}: it contains the control character {c:?}"
        ));
    }
    Ok(())
}

/// Checks that every CPU in `cpus` is one this process may run on.
pub(crate) fn check_cpus(cpus: &CpuSet, available: &[usize]) -> Result<(), String> {
    match cpus.iter().find(|c| !available.contains(c)) {
        Some(c) => Err(format!(
            "CPU {c} is not available (this process may use CPUs {})",
            CpuSet::new(available.iter().copied())
        )),
        None => Ok(()),
    }
}

/// Formats a duration compactly for tables and messages: `57us`, `1.20ms`, `375ms`, `7s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        "0".to_owned()
    } else if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format_unit(ns as f64 / 1e3, "us")
    } else if ns < 1_000_000_000 {
        format_unit(ns as f64 / 1e6, "ms")
    } else {
        format_unit(ns as f64 / 1e9, "s")
    }
}

fn format_unit(v: f64, unit: &str) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}{unit}")
    } else if v >= 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.2}{unit}")
    }
}

/// Parses a duration: the library's syntax, so that a value that works in a configuration
/// file works here too: a non-negative number and a unit, `ns`, `us` (or `µs`), `ms`, `s`,
/// `m` or `h` (`50us`, `1.5ms`, `2m`, `1h`). The error names the value. Ranges are checked
/// where the duration is used (a run is at most [`MAX_DURATION`]).
pub(crate) use bulkhead::parse_duration;

/// Parses a rate: tasks per second (`2000`, `2000/s`, `2.5k`), or `max`.
pub(crate) fn parse_rate(s: &str) -> Result<Rate, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    let t = t.strip_suffix("/s").unwrap_or(t);
    let (num, mult) = match t.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => (t, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| {
        format!("invalid rate {s:?}: expected tasks per second (e.g. 2000, 2000/s, 2.5k) or max")
    })?;
    let v = v * mult;
    // Also refuses NaN and the infinities.
    if !(MIN_RATE..=MAX_RATE).contains(&v) {
        return Err(format!(
            "invalid rate {s:?}: must be from {MIN_RATE} to {MAX_RATE} tasks per second (or max)"
        ));
    }
    Ok(Rate::PerSec(v))
}

/// Parses a work spec (see the module table).
pub(crate) fn parse_work(s: &str) -> Result<WorkSpec, String> {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("phases:") {
        return parse_phases(s, rest);
    }
    if t.contains('|') {
        let mut parts = Vec::new();
        for part in t.split('|') {
            let (w, spec) = match part.split_once('*') {
                Some((w, spec)) => {
                    let w: u32 = w.trim().parse().map_err(|_| {
                        format!("invalid weight {w:?} in work mix {s:?}: expected a whole number")
                    })?;
                    (w, spec)
                }
                None => (1, part),
            };
            let spec = parse_one_work(spec)?;
            parts.push((w, spec));
        }
        if parts.iter().all(|(w, _)| *w == 0) {
            return Err(format!("work mix {s:?} has only zero weights"));
        }
        return Ok(WorkSpec::Mix(parts));
    }
    parse_one_work(t)
}

/// `phases:W0/T1/W1/T2/W2...`: `W0` until `T1` after the start of the measured window,
/// then `W1` until `T2`, and so on; each `W` is a work spec (a mix too, not phases).
fn parse_phases(s: &str, rest: &str) -> Result<WorkSpec, String> {
    let pieces: Vec<&str> = rest.split('/').collect();
    if pieces.len() % 2 == 0 {
        return Err(format!(
            "invalid work {s:?}: expected phases:WORK/TIME/WORK[/TIME/WORK...]"
        ));
    }
    let mut works = Vec::new();
    let mut bounds: Vec<Duration> = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        if i % 2 == 0 {
            if piece.trim().starts_with("phases:") {
                return Err(format!("invalid work {s:?}: phases cannot be nested"));
            }
            works.push(parse_work(piece)?);
        } else {
            let d = parse_key_duration(piece.trim(), "phases", Duration::ZERO)?;
            if bounds.last().is_some_and(|b| *b >= d) {
                return Err(format!(
                    "invalid work {s:?}: the phase bounds must increase"
                ));
            }
            bounds.push(d);
        }
    }
    Ok(WorkSpec::Phases { works, bounds })
}

fn parse_one_work(s: &str) -> Result<WorkSpec, String> {
    let t = s.trim();
    let (kind, arg) = match t.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (t, None),
    };
    let need =
        |what: &str| arg.ok_or_else(|| format!("work {t:?} needs an argument: {kind}:{what}"));
    let task_time = |arg: &str| {
        let d = parse_duration(arg)?;
        if d > MAX_DURATION {
            return Err(format!(
                "invalid work {t:?}: a task may take at most {}",
                fmt_duration(MAX_DURATION)
            ));
        }
        Ok(d)
    };
    match kind {
        "spin" => Ok(WorkSpec::Spin(task_time(need("DURATION")?)?)),
        "sleep" => Ok(WorkSpec::Sleep(task_time(need("DURATION")?)?)),
        "hang" if arg.is_none() => Ok(WorkSpec::Hang),
        "panic" => {
            let p: f64 = need("PROBABILITY")?.trim().parse().map_err(|_| {
                format!("invalid panic probability in {t:?}: expected a number from 0 to 1")
            })?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "invalid panic probability in {t:?}: must be from 0 to 1"
                ));
            }
            Ok(WorkSpec::Panic(p))
        }
        _ => Err(format!(
            "unknown work {t:?}: expected spin:DURATION, sleep:DURATION, hang, panic:P, or a mix W1|W2 (weights as 3*W)"
        )),
    }
}

type KeyValues<'a> = Vec<(&'a str, &'a str)>;

/// Splits `NAME:k=v,k=v` into the name and its key/value pairs.
///
/// An item without `=` continues the value before it, comma included, so that values with
/// commas (a cpulist `cpus=0,2-3`, a pair `elastic=1,8`) are written as in the library:
/// `api:cpus=0,2,threads=2` sets `cpus` to `0,2`. Each value still goes whole to one key.
fn split_spec<'a>(s: &'a str, what: &str) -> Result<(&'a str, KeyValues<'a>), String> {
    let (name, rest) = s.split_once(':').unwrap_or((s, ""));
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("invalid {what} {s:?}: expected NAME:key=value,..."));
    }
    // Each key with where its value starts and ends in `rest`.
    let mut items: Vec<(&str, usize, usize)> = Vec::new();
    let mut at = 0;
    for item in rest.split(',') {
        let (start, end) = (at, at + item.len());
        at = end + 1;
        if item.trim().is_empty() {
            continue;
        }
        match (item.split_once('='), items.last_mut()) {
            (Some((k, _)), _) => items.push((k.trim(), start + k.len() + 1, end)),
            (None, Some(last)) => last.2 = end,
            (None, None) => {
                return Err(format!(
                    "invalid {what} {s:?}: {:?} is not of the form key=value",
                    item.trim()
                ))
            }
        }
    }
    let kv = items
        .into_iter()
        .map(|(k, from, to)| (k, rest[from..to].trim()))
        .collect();
    Ok((name, kv))
}

fn parse_count(v: &str, key: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = v
        .parse()
        .map_err(|_| format!("invalid {key}={v:?}: expected a whole number"))?;
    check_count(n, key, min, max)
}

fn check_count(n: usize, key: &str, min: usize, max: usize) -> Result<usize, String> {
    if n < min || n > max {
        return Err(format!("invalid {key}={n}: must be from {min} to {max}"));
    }
    Ok(n)
}

/// A duration for `key`, at least `min`; the error names the key and the value.
fn parse_key_duration(v: &str, key: &str, min: Duration) -> Result<Duration, String> {
    let d = parse_duration(v).map_err(|e| format!("invalid {key}: {e}"))?;
    if d < min {
        return Err(if min == Duration::from_nanos(1) {
            format!("invalid {key}={v:?}: must be greater than 0")
        } else {
            format!(
                "invalid {key}={v:?}: must be at least {}",
                fmt_duration(min)
            )
        });
    }
    Ok(d)
}

/// The keys of a load spec.
const LOAD_KEYS: &str =
    "rate, work, arrivals, submitters, inflight, callers, name, deadline, pass_deadline, key";

impl PoolSpec {
    /// A pool with no setting: the library's defaults (one thread, a queue of 128).
    pub(crate) fn named(name: &str) -> PoolSpec {
        PoolSpec {
            name: name.to_owned(),
            settings: Vec::new(),
        }
    }

    /// Sets one key from its value, both checked by the library's settings table (the error
    /// names the pool, the key and the value). The value is taken whole by that key, so it
    /// can never set another key (a `,` in it is part of it, not a separator).
    pub(crate) fn set(&mut self, k: &str, v: &str) -> Result<(), String> {
        let mut refused = None;
        let _ = RuntimeBuilder::new().pool(self.name.clone(), |p| {
            p.clone().set(k, v).unwrap_or_else(|e| {
                refused = Some(e);
                p
            })
        });
        match refused {
            Some(e) => Err(e.to_string()),
            None => {
                self.settings.push((k.to_owned(), v.to_owned()));
                Ok(())
            }
        }
    }

    /// Applies every setting to `p`, in order, through the library's settings table.
    pub(crate) fn configure(&self, mut p: PoolBuilder) -> Result<PoolBuilder, SettingError> {
        for (k, v) in &self.settings {
            p = p.set(k, v)?;
        }
        Ok(p)
    }

    /// The value last given for `key`, as written.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The elastic range, if the pool is elastic (`threads` after it makes it fixed).
    pub(crate) fn elastic(&self) -> Option<(usize, usize)> {
        let last = |key| self.settings.iter().rposition(|(k, _)| k == key);
        if last("threads") > last("elastic") {
            return None;
        }
        let (min, max) = self.get("elastic")?.split_once(',')?;
        Some((min.trim().parse().ok()?, max.trim().parse().ok()?))
    }

    /// The thread count, an elastic pool's minimum.
    pub(crate) fn threads(&self) -> usize {
        match self.elastic() {
            Some((min, _)) => min,
            None => self.count("threads").unwrap_or(DEFAULT_THREADS),
        }
    }

    /// The queue capacity.
    pub(crate) fn queue_capacity(&self) -> usize {
        self.count("queue_capacity")
            .unwrap_or(DEFAULT_QUEUE_CAPACITY)
    }

    /// The replacement budget.
    pub(crate) fn replacement_budget(&self) -> usize {
        self.count("replacement_budget").unwrap_or(0)
    }

    /// The CPU set, in the library's cpulist syntax.
    pub(crate) fn cpus(&self) -> Option<CpuSet> {
        self.get("cpus")?.parse().ok()
    }

    fn count(&self, key: &str) -> Option<usize> {
        self.get(key)?.trim().parse().ok()
    }

    /// The settings as shown in the table: the thread count and queue capacity always (the
    /// defaults if unset), then every other setting as written.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.get("threads").is_none() && self.get("elastic").is_none() {
            parts.push(format!("threads={DEFAULT_THREADS}"));
        }
        if self.get("queue_capacity").is_none() {
            parts.push(format!("queue_capacity={DEFAULT_QUEUE_CAPACITY}"));
        }
        parts.extend(self.settings.iter().map(|(k, v)| format!("{k}={v}")));
        format!("{}: {}", self.name, parts.join(", "))
    }
}

/// Parses `--pool NAME:KEY=VALUE,...` with the library's pool keys (see the module docs).
pub(crate) fn parse_pool(s: &str) -> Result<PoolSpec, String> {
    let (name, kv) = split_spec(s, "pool")?;
    let mut pool = PoolSpec::named(name);
    for (k, v) in kv {
        pool.set(k, v)?;
    }
    Ok(pool)
}

impl LoadSpec {
    /// A load on `pool`, named after it, with the bench's defaults: 1000 tasks per second of
    /// `spin:50us`, fixed arrivals, one submitter.
    pub(crate) fn on(pool: &str) -> LoadSpec {
        LoadSpec {
            name: pool.to_owned(),
            pool: pool.to_owned(),
            rate: Rate::PerSec(1000.0),
            work: WorkSpec::Spin(Duration::from_micros(50)),
            arrivals: Arrivals::Fixed,
            submitters: 1,
            inflight: None,
            callers: None,
            deadline: None,
            pass_deadline: false,
            key: None,
        }
    }

    /// Sets one key from its value, taken whole by that key's parser (see [`PoolSpec::set`]).
    pub(crate) fn set(&mut self, k: &str, v: &str) -> Result<(), String> {
        match k {
            "rate" => self.rate = parse_rate(v)?,
            "work" => self.work = parse_work(v)?,
            "arrivals" => {
                self.arrivals = match v {
                    "fixed" => Arrivals::Fixed,
                    "poisson" => Arrivals::Poisson,
                    _ => return Err(format!("invalid arrivals={v:?}: expected fixed or poisson")),
                }
            }
            "submitters" => self.submitters = parse_count(v, k, 1, MAX_SUBMITTERS)?,
            "callers" => self.callers = Some(parse_count(v, k, 1, MAX_SUBMITTERS)?),
            "inflight" => self.inflight = Some(parse_count(v, k, 1, 1 << 24)?),
            "name" => {
                if v.is_empty() {
                    return Err(format!(
                        "invalid name {v:?} for a load on pool {:?}: must not be empty",
                        self.pool
                    ));
                }
                self.name = v.to_owned();
            }
            "deadline" => self.deadline = Some(parse_key_duration(v, k, Duration::from_nanos(1))?),
            "key" => {
                check_key(v)?;
                self.key = Some(v.to_owned());
            }
            "pass_deadline" => {
                self.pass_deadline = match v {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(format!(
                            "invalid pass_deadline={v:?}: expected true or false"
                        ))
                    }
                }
            }
            _ => {
                return Err(format!(
                    "unknown key {k:?} in the load on pool {:?} (keys: {LOAD_KEYS})",
                    self.pool
                ))
            }
        }
        Ok(())
    }
}

/// Parses `--load POOL:rate=R,work=W,arrivals=fixed|poisson,submitters=N,inflight=N,callers=N,name=NAME,key=KEY`.
pub(crate) fn parse_load(s: &str) -> Result<LoadSpec, String> {
    let (pool, kv) = split_spec(s, "load")?;
    let mut load = LoadSpec::on(pool);
    for (k, v) in kv {
        load.set(k, v)?;
    }
    Ok(load)
}

/// The TOML scenario file. Unknown keys are errors (naming the key).
///
/// ```toml
/// name = "my-scenario"
/// duration = "7s"
/// warmup = "1s"
/// drain = "2s"
/// mode = "both"
///
/// [[pool]]
/// name = "api"
/// threads = 1
/// queue_capacity = 256
/// cpus = "0"
///
/// [[load]]
/// pool = "api"
/// rate = "2000"
/// work = "spin:50us"
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScenarioFile {
    name: Option<String>,
    duration: Option<String>,
    warmup: Option<String>,
    drain: Option<String>,
    mode: Option<Mode>,
    seed: Option<u64>,
    #[serde(default)]
    pool: Vec<PoolEntry>,
    #[serde(default)]
    load: Vec<LoadEntry>,
}

/// A `[[pool]]`: its name and the library's pool keys.
#[derive(Debug, Deserialize)]
struct PoolEntry {
    name: String,
    #[serde(flatten)]
    settings: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadEntry {
    pool: String,
    name: Option<String>,
    rate: Option<toml::Value>,
    work: Option<String>,
    arrivals: Option<String>,
    submitters: Option<usize>,
    inflight: Option<usize>,
    callers: Option<usize>,
    deadline: Option<String>,
    pass_deadline: Option<bool>,
    key: Option<String>,
}

impl PoolEntry {
    /// The pool this entry describes: each key goes to the library's settings table with its
    /// value whole, as text (an array as its items joined by commas), so a value can never
    /// set another key (`max_queue_wait = "5ms,threads=64"` is an invalid duration).
    fn into_spec(self) -> Result<PoolSpec, String> {
        let mut pool = PoolSpec::named(&self.name);
        for (k, v) in &self.settings {
            let text = toml_text(v).ok_or_else(|| {
                format!(
                    "pool {:?}: {k}: expected a string, number, boolean or array, got a {}",
                    self.name,
                    v.type_str()
                )
            })?;
            pool.set(k, &text)?;
        }
        Ok(pool)
    }
}

/// A scenario file's value as the text the library's settings table reads.
fn toml_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => {
            let items: Option<Vec<String>> = items.iter().map(toml_text).collect();
            Some(items?.join(","))
        }
        _ => None,
    }
}

impl LoadEntry {
    /// The load this entry describes, built field by field like [`PoolEntry::into_spec`];
    /// `pool` is only a name, never parsed as a spec.
    fn into_spec(self) -> Result<LoadSpec, String> {
        let mut load = LoadSpec::on(&self.pool);
        let in_load = |e: String| format!("load on pool {:?}: {e}", self.pool);
        if let Some(r) = &self.rate {
            load.rate = match r {
                toml::Value::Integer(i) => parse_rate(&i.to_string()),
                toml::Value::Float(f) => parse_rate(&f.to_string()),
                toml::Value::String(s) => parse_rate(s),
                other => Err(format!(
                    "invalid rate: expected a number or \"max\", got a {}",
                    other.type_str()
                )),
            }
            .map_err(in_load)?;
        }
        if let Some(s) = self.submitters {
            load.submitters = check_count(s, "submitters", 1, MAX_SUBMITTERS).map_err(in_load)?;
        }
        if let Some(n) = self.inflight {
            load.inflight = Some(check_count(n, "inflight", 1, 1 << 24).map_err(in_load)?);
        }
        if let Some(c) = self.callers {
            load.callers = Some(check_count(c, "callers", 1, MAX_SUBMITTERS).map_err(in_load)?);
        }
        for (k, v) in [
            ("name", &self.name),
            ("work", &self.work),
            ("arrivals", &self.arrivals),
            ("deadline", &self.deadline),
            ("key", &self.key),
        ] {
            if let Some(v) = v {
                load.set(k, v).map_err(in_load)?;
            }
        }
        if let Some(b) = self.pass_deadline {
            load.pass_deadline = b;
        }
        Ok(load)
    }
}

/// Parses a TOML scenario file's text into a scenario, on top of `base` (whose pools and
/// loads it replaces if it defines any).
pub(crate) fn parse_scenario_file(text: &str, base: Scenario) -> Result<Scenario, String> {
    let file: ScenarioFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut sc = base;
    if let Some(n) = file.name {
        sc.name = n;
    }
    if let Some(d) = file.duration {
        sc.duration = parse_duration(&d)?;
    }
    if let Some(d) = file.warmup {
        sc.warmup = parse_duration(&d)?;
    }
    if let Some(d) = file.drain {
        sc.drain = parse_duration(&d)?;
    }
    if let Some(m) = file.mode {
        sc.mode = m;
    }
    if let Some(s) = file.seed {
        sc.seed = s;
    }
    if !file.pool.is_empty() || !file.load.is_empty() {
        if file.pool.is_empty() || file.load.is_empty() {
            return Err(
                "a scenario file that defines pools must define loads too, and the other way round"
                    .to_owned(),
            );
        }
        sc.pools = file
            .pool
            .into_iter()
            .map(PoolEntry::into_spec)
            .collect::<Result<_, _>>()?;
        sc.loads = file
            .load
            .into_iter()
            .map(LoadEntry::into_spec)
            .collect::<Result<_, _>>()?;
    }
    Ok(sc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration("50µs"), Ok(Duration::from_micros(50)));
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("7s"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        // The library's syntax: whatever a configuration file accepts, the bench accepts.
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h"), bulkhead::parse_duration("1h"));
    }

    #[test]
    fn durations_beyond_a_run_are_refused_where_used() {
        let err = parse_work("spin:2h").unwrap_err();
        assert!(
            err.contains("\"spin:2h\"") && err.contains("3600s"),
            "{err}"
        );
        let mut sc = presets::preset("cpu-runaway", &[0, 1]).unwrap();
        sc.duration = parse_duration("99999999999s").unwrap();
        let err = sc.validate(&[0, 1]).unwrap_err();
        assert!(err.contains("at most 3600s"), "{err}");
    }

    #[test]
    fn malformed_durations_name_the_value() {
        for bad in ["10", "10xs", "ms", "-1s", "1..2s", "", "1e3s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("2000"), Ok(Rate::PerSec(2000.0)));
        assert_eq!(parse_rate("2000/s"), Ok(Rate::PerSec(2000.0)));
        assert_eq!(parse_rate("2.5k"), Ok(Rate::PerSec(2500.0)));
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("0.001"), Ok(Rate::PerSec(MIN_RATE)));
        for bad in [
            "0", "-5", "fast", "2000/min", "NaN", "1e9", "1e-20", "0.0009", "inf", "-inf",
        ] {
            let err = parse_rate(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn work_specs() {
        assert_eq!(
            parse_work("spin:50us"),
            Ok(WorkSpec::Spin(Duration::from_micros(50)))
        );
        assert_eq!(parse_work("hang"), Ok(WorkSpec::Hang));
        assert_eq!(parse_work("panic:0.5"), Ok(WorkSpec::Panic(0.5)));
        assert_eq!(
            parse_work("9*spin:50us|1*sleep:5ms"),
            Ok(WorkSpec::Mix(vec![
                (9, WorkSpec::Spin(Duration::from_micros(50))),
                (1, WorkSpec::Sleep(Duration::from_millis(5))),
            ]))
        );
        let mix = parse_work("9*spin:50us|1*panic:1").unwrap();
        assert_eq!(parse_work(&mix.to_string()), Ok(mix));
    }

    #[test]
    fn phases_parse_and_print_back() {
        let text = "phases:sleep:5ms/2s/3*sleep:5ms|1*sleep:200ms/5s/sleep:5ms";
        let w = parse_work(text).unwrap();
        match &w {
            WorkSpec::Phases { works, bounds } => {
                assert_eq!(works.len(), 3);
                assert!(matches!(works[1], WorkSpec::Mix(_)));
                assert_eq!(bounds, &[Duration::from_secs(2), Duration::from_secs(5)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w.to_string(), text);
        for bad in [
            "phases:sleep:5ms/2s",
            "phases:sleep:5ms/5s/sleep:1ms/2s/sleep:1ms",
            "phases:phases:sleep:1ms/1s/sleep:2ms",
            "phases:sleep:5ms/soon/sleep:1ms",
        ] {
            assert!(parse_work(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pass_deadline_needs_a_deadline_and_an_open_loop() {
        let l = parse_load("svc:deadline=50ms,pass_deadline=true").unwrap();
        assert!(l.pass_deadline);
        assert!(parse_load("svc:pass_deadline=yes").is_err());
        let mut sc = crate::presets::preset("overload", &[0, 1]).unwrap();
        sc.loads[0] = parse_load("codel:pass_deadline=true").unwrap();
        assert!(sc.validate(&[0, 1]).unwrap_err().contains("pass_deadline"));
        sc.loads[0] = parse_load("codel:rate=max,deadline=5ms,pass_deadline=true").unwrap();
        assert!(sc.validate(&[0, 1]).is_err());
    }

    #[test]
    fn bad_work_specs_name_the_value() {
        for (bad, needle) in [
            ("burn:5ms", "\"burn:5ms\""),
            ("spin", "spin:DURATION"),
            ("spin:5xs", "\"5xs\""),
            ("panic:2", "\"panic:2\""),
            ("panic:x", "\"panic:x\""),
            ("hang:1s", "\"hang:1s\""),
            ("x*spin:1ms|hang", "\"x\""),
            ("0*hang|0*hang", "zero weights"),
        ] {
            let err = parse_work(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn pools() {
        let p =
            parse_pool("api:threads=2,queue_capacity=256,cpus=0-1,max_queue_wait=100ms").unwrap();
        assert_eq!(p.name, "api");
        assert_eq!((p.threads(), p.queue_capacity()), (2, 256));
        assert_eq!(p.cpus().map(|c| c.to_string()), Some("0-1".to_owned()));
        assert_eq!(p.get("max_queue_wait"), Some("100ms"));
        assert_eq!(parse_pool("b").unwrap().threads(), 1);
        // The library's cpulist syntax, commas included: an item without `=` continues
        // the value before it.
        let p = parse_pool("api:cpus=0,2-3,threads=2").unwrap();
        assert_eq!(p.cpus().unwrap().to_string(), "0,2-3");
        assert_eq!(p.threads(), 2);
        let p = parse_pool("svc:codel=5ms,100ms,replacement_budget=2,stuck_after=100ms").unwrap();
        assert_eq!(p.get("codel"), Some("5ms,100ms"));
        assert_eq!(p.replacement_budget(), 2);
        assert_eq!(p.get("stuck_after"), Some("100ms"));
        let p = parse_pool("io:elastic=1,8,keep_alive=2s").unwrap();
        assert_eq!((p.threads(), p.elastic()), (1, Some((1, 8))));
        assert_eq!(p.get("keep_alive"), Some("2s"));
        let l = parse_load("svc:deadline=50ms").unwrap();
        assert_eq!(l.deadline, Some(Duration::from_millis(50)));
    }

    /// Every pool key of the library works here, with the library's value syntax.
    #[test]
    fn pools_take_every_library_key() {
        let p = parse_pool(
            "p:nice=5,sched_policy=batch,placement=pin-each,cpus=0,exclusive=true,idle_spin=1ms,\
             panic_policy=abort,max_threads_limit=4,queue_capacity_limit=256,thread_name=w,\
             stack_size=1048576,max_queue_wait=0.001h",
        )
        .unwrap();
        assert_eq!(p.settings.len(), 12);
    }

    #[test]
    fn bad_pools_name_the_value() {
        for (bad, needle) in [
            ("api:threads=two", "\"two\""),
            ("api:queue_capacity=-1", "\"-1\""),
            ("api:cpus=1-0", "\"1-0\""),
            ("api:cpus=a", "\"a\""),
            ("api:color=red", "\"color\""),
            ("api:queue=8", "\"queue\""),
            ("api:threads", "\"threads\""),
            (":threads=1", "\":threads=1\""),
            ("api:codel=5ms", "codel"),
            ("api:codel=5ms/100ms", "\"5ms/100ms\""),
            ("api:replacement_budget=x", "\"x\""),
            ("api:elastic=1-8", "elastic"),
            ("api:keep_alive=soon", "keep_alive"),
        ] {
            let err = parse_pool(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    /// Values the library reads but its rules refuse are refused by `check`, before any run,
    /// with the library's message naming the pool and the key.
    #[test]
    fn out_of_range_pools_are_refused_before_any_run() {
        for (bad, needle) in [
            ("api:threads=0", "threads"),
            ("api:max_queue_wait=0s", "max_queue_wait"),
            ("api:codel=100ms,5ms", "codel"),
            ("api:stuck_after=0s", "stuck_after"),
            ("api:elastic=4,2", "elastic"),
            ("api:elastic=0,2", "elastic"),
            ("api:keep_alive=0s", "keep_alive"),
        ] {
            let mut sc = presets::preset("cpu-runaway", &[0, 1]).unwrap();
            sc.pools[0] = parse_pool(bad).unwrap();
            let err = crate::run::check(&sc, crate::run::RunKind::Isolated).unwrap_err();
            assert!(
                err.contains(needle) && err.contains("\"api\""),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn loads() {
        let l = parse_load("api:rate=2000,work=spin:50us,arrivals=poisson").unwrap();
        assert_eq!(l.pool, "api");
        assert_eq!(l.name, "api");
        assert_eq!(l.rate, Rate::PerSec(2000.0));
        assert_eq!(l.arrivals, Arrivals::Poisson);
        let l = parse_load("batch:rate=max,work=spin:10ms,submitters=4,name=runaway").unwrap();
        assert_eq!(
            (l.rate, l.submitters, l.name.as_str()),
            (Rate::Max, 4, "runaway")
        );
        assert_eq!(parse_load("api:callers=8").unwrap().callers, Some(8));
    }

    #[test]
    fn keyed_loads() {
        let l = parse_load("fair:rate=40,work=sleep:10ms,key=tenant-1,name=fair-t1").unwrap();
        assert_eq!(l.key.as_deref(), Some("tenant-1"));
        assert_eq!(parse_load("fair").unwrap().key, None);
        let long = format!("fair:key={}", "k".repeat(65));
        for (bad, needle) in [
            ("fair:key=", "key=\"\""),
            (long.as_str(), "65 bytes"),
            ("fair:key=a\u{1}b", "control character"),
        ] {
            let err = parse_load(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
        // Every kind of load may be keyed: saturating, closed loop, with the caller's deadline.
        let mut sc = presets::preset("overload", &[0, 1]).unwrap();
        for good in [
            "codel:rate=max,key=t",
            "codel:callers=2,key=t",
            "codel:deadline=5ms,pass_deadline=true,key=t",
        ] {
            sc.loads[0] = parse_load(good).unwrap();
            assert!(sc.validate(&[0, 1]).is_ok(), "{good}");
        }
    }

    #[test]
    fn bad_loads_name_the_value() {
        for (bad, needle) in [
            ("api:rate=fast", "\"fast\""),
            ("api:work=spin:1zs", "\"1zs\""),
            ("api:arrivals=bursty", "\"bursty\""),
            ("api:speed=1", "\"speed\""),
            ("api:submitters=0", "submitters=0"),
        ] {
            let err = parse_load(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn validation_names_unknown_pool_and_missing_cpu() {
        let mut sc = presets::preset("cpu-runaway", &[0, 1]).unwrap();
        sc.loads[1].pool = "nope".to_owned();
        let err = sc.validate(&[0, 1]).unwrap_err();
        assert!(err.contains("\"nope\""), "{err}");

        let mut sc = presets::preset("cpu-runaway", &[0, 1]).unwrap();
        sc.pools[0].set("cpus", "7").unwrap();
        let err = sc.validate(&[0, 1]).unwrap_err();
        assert!(err.contains("CPU 7"), "{err}");
    }

    #[test]
    fn scenario_file() {
        let base = presets::preset("cpu-runaway", &[0, 1]).unwrap();
        let text = r#"
            name = "file"
            duration = "3s"
            mode = "isolated"
            [[pool]]
            name = "a"
            threads = 2
            cpus = "0,1"
            codel = ["5ms", "100ms"]
            [[load]]
            pool = "a"
            rate = 500
            work = "sleep:1ms"
        "#;
        let sc = parse_scenario_file(text, base).unwrap();
        assert_eq!(sc.name, "file");
        assert_eq!(sc.duration, Duration::from_secs(3));
        assert_eq!(sc.mode, Mode::Isolated);
        assert_eq!(sc.pools.len(), 1);
        assert_eq!(sc.pools[0].cpus().unwrap().to_string(), "0-1");
        assert_eq!(sc.pools[0].get("codel"), Some("5ms,100ms"));
        assert_eq!(sc.loads[0].rate, Rate::PerSec(500.0));
        assert_eq!(sc.loads[0].work, WorkSpec::Sleep(Duration::from_millis(1)));
    }

    #[test]
    fn scenario_file_values_are_taken_whole() {
        let base = || presets::preset("cpu-runaway", &[0, 1]).unwrap();
        for (text, needle) in [
            ("max_queue_wait = \"5ms,threads=64\"", "\"5ms,threads=64\""),
            ("cpus = \"0,threads=64\"", "\"0,threads=64\""),
            (
                "elastic = \"1,2,queue_capacity=0\"",
                "\"1,2,queue_capacity=0\"",
            ),
        ] {
            let file = format!("[[pool]]\nname = \"a\"\n{text}\n[[load]]\npool = \"a\"");
            let err = parse_scenario_file(&file, base()).unwrap_err();
            assert!(err.contains(needle) && err.contains("pool \"a\""), "{err}");
        }
        let file = "[[pool]]\nname = \"a,threads=9\"\n[[load]]\npool = \"a:rate=max\"";
        let sc = parse_scenario_file(file, base()).unwrap();
        assert_eq!(
            (sc.pools[0].name.as_str(), sc.pools[0].threads()),
            ("a,threads=9", 1)
        );
        assert_eq!(sc.loads[0].pool, "a:rate=max");
        assert_eq!(sc.loads[0].rate, Rate::PerSec(1000.0));
    }

    #[test]
    fn shipped_scenario_file_matches_the_default_preset() {
        let text = include_str!("../../../scenarios/cpu-runaway.toml");
        let base = presets::preset("queue-flood", &[0, 1]).unwrap();
        let sc = parse_scenario_file(text, base).unwrap();
        let preset = presets::preset("cpu-runaway", &[0, 1]).unwrap();
        assert_eq!(sc.pools, preset.pools);
        assert_eq!(sc.loads, preset.loads);
        assert_eq!(
            (sc.duration, sc.warmup, sc.drain),
            (preset.duration, preset.warmup, preset.drain)
        );
    }

    #[test]
    fn scenario_file_errors_name_the_key_or_value() {
        let base = || presets::preset("cpu-runaway", &[0, 1]).unwrap();
        let err = parse_scenario_file("durration = \"1s\"", base()).unwrap_err();
        assert!(err.contains("durration"), "{err}");
        let err = parse_scenario_file(
            "[[pool]]\nname = \"a\"\ncolour = 1\n[[load]]\npool = \"a\"",
            base(),
        )
        .unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = parse_scenario_file("duration = \"3 weeks\"", base()).unwrap_err();
        assert!(err.contains("\"3 weeks\""), "{err}");
        let err = parse_scenario_file("mode = \"sideways\"", base()).unwrap_err();
        assert!(err.contains("sideways"), "{err}");
    }
}
