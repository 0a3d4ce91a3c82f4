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
//! | work          | `spin:50us`, `sleep:2ms`, `hang`, `panic:0.3`, `9*spin:50us\|1*sleep:5ms` |
//! | `--pool`      | `NAME:threads=1,queue=256,cpus=0,max_wait=100ms`, `codel=5ms/100ms`, `budget=2,stuck_after=100ms`, `elastic=1-8,keep_alive=2s` |
//! | `--load`      | `POOL:rate=2000,work=spin:50us,arrivals=poisson,deadline=50ms` |

use std::fmt;
use std::time::Duration;

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
        }
    }
}

/// A CPU list in the kernel's cpulist syntax (`0`, `0-1`, `0,2-3`), sorted, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CpuList(pub(crate) Vec<usize>);

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        let mut first = true;
        while i < self.0.len() {
            let mut j = i;
            while j + 1 < self.0.len() && self.0[j + 1] == self.0[j] + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if i == j {
                write!(f, "{}", self.0[i])?;
            } else {
                write!(f, "{}-{}", self.0[i], self.0[j])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// One pool of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PoolSpec {
    pub(crate) name: String,
    pub(crate) threads: usize,
    pub(crate) queue: usize,
    pub(crate) cpus: Option<CpuList>,
    pub(crate) max_wait: Option<Duration>,
    /// Queue-delay control: `(target, interval)`.
    pub(crate) codel: Option<(Duration, Duration)>,
    /// Replacement budget for stuck workers (0: none).
    pub(crate) budget: usize,
    /// The pool's `stuck_after` (default: the library's, 30 s).
    pub(crate) stuck_after: Option<Duration>,
    /// Elastic pool: the maximum thread count (`threads` is then the minimum).
    pub(crate) max_threads: Option<usize>,
    /// Elastic pool: idle time before a thread above the minimum exits.
    pub(crate) keep_alive: Option<Duration>,
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
    /// arrival) counts towards goodput.
    pub(crate) deadline: Option<Duration>,
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
            if let Some(cpus) = &p.cpus {
                check_cpus(cpus, available_cpus).map_err(|e| format!("pool {:?}: {e}", p.name))?;
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

/// Checks that every CPU in `cpus` is one this process may run on.
pub(crate) fn check_cpus(cpus: &CpuList, available: &[usize]) -> Result<(), String> {
    match cpus.0.iter().find(|c| !available.contains(c)) {
        Some(c) => Err(format!(
            "CPU {c} is not available (this process may use CPUs {})",
            CpuList(available.to_vec())
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

/// Parses a CPU list in cpulist syntax: `0`, `0-1`, `0,2-3`.
pub(crate) fn parse_cpus(s: &str) -> Result<CpuList, String> {
    let bad = || format!("invalid CPU list {s:?}: expected e.g. 0, 0-1 or 0,2-3");
    let mut cpus = Vec::new();
    for part in s.split(['+', ',']) {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let lo: usize = lo.trim().parse().map_err(|_| bad())?;
        let hi: usize = hi.trim().parse().map_err(|_| bad())?;
        if lo > hi || hi >= 4096 {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(CpuList(cpus))
}

type KeyValues<'a> = Vec<(&'a str, &'a str)>;

/// Splits `NAME:k=v,k=v` into the name and its key/value pairs.
///
/// Inside a `--pool`, `cpus=0,1` would be ambiguous; write CPU lists as ranges (`0-1`) or
/// with `+` (`0+2`).
fn split_spec<'a>(s: &'a str, what: &str) -> Result<(&'a str, KeyValues<'a>), String> {
    let (name, rest) = s.split_once(':').unwrap_or((s, ""));
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("invalid {what} {s:?}: expected NAME:key=value,..."));
    }
    let mut kv = Vec::new();
    for item in rest.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            format!("invalid {what} {s:?}: {item:?} is not of the form key=value")
        })?;
        kv.push((k.trim(), v.trim()));
    }
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

/// The keys of a pool spec, in the order the help text gives them.
const POOL_KEYS: &str =
    "threads, queue, cpus, max_wait, codel, budget, stuck_after, elastic, keep_alive";
/// The keys of a load spec.
const LOAD_KEYS: &str = "rate, work, arrivals, submitters, inflight, callers, name, deadline";

impl PoolSpec {
    /// A pool with the bench's defaults: one thread, a queue of 128, nothing else set.
    pub(crate) fn named(name: &str) -> PoolSpec {
        PoolSpec {
            name: name.to_owned(),
            threads: 1,
            queue: 128,
            cpus: None,
            max_wait: None,
            codel: None,
            budget: 0,
            stuck_after: None,
            max_threads: None,
            keep_alive: None,
        }
    }

    /// Sets one key from its value. The value is taken whole by that key's parser, so it can
    /// never set another key (a `,` in it is an error, not a separator).
    pub(crate) fn set(&mut self, k: &str, v: &str) -> Result<(), String> {
        let one_ms = Duration::from_millis(1);
        match k {
            "threads" => self.threads = parse_count(v, k, 1, 1024)?,
            "queue" => self.queue = parse_count(v, k, 0, 1 << 24)?,
            "cpus" => self.cpus = Some(parse_cpus(v)?),
            "max_wait" => self.max_wait = Some(parse_key_duration(v, k, Duration::from_nanos(1))?),
            "codel" => {
                let bad = || {
                    format!("invalid codel={v:?}: expected TARGET/INTERVAL, e.g. 5ms/100ms, target < interval")
                };
                let (t, i) = v.split_once('/').ok_or_else(bad)?;
                let (t, i) = (
                    parse_key_duration(t, k, Duration::ZERO)?,
                    parse_key_duration(i, k, Duration::ZERO)?,
                );
                if t.is_zero() || t >= i {
                    return Err(bad());
                }
                self.codel = Some((t, i));
            }
            "budget" => self.budget = parse_count(v, k, 0, 1024)?,
            "elastic" => {
                let bad = || {
                    format!("invalid elastic={v:?}: expected MIN-MAX with 1 <= MIN <= MAX <= 1024, e.g. 1-8")
                };
                let (min, max) = v.split_once('-').ok_or_else(bad)?;
                let min = parse_count(min.trim(), "elastic", 1, 1024).map_err(|_| bad())?;
                let max = parse_count(max.trim(), "elastic", 1, 1024).map_err(|_| bad())?;
                if min > max {
                    return Err(bad());
                }
                self.threads = min;
                self.max_threads = Some(max);
            }
            "keep_alive" => self.keep_alive = Some(parse_key_duration(v, k, one_ms)?),
            "stuck_after" => self.stuck_after = Some(parse_key_duration(v, k, one_ms)?),
            _ => {
                return Err(format!(
                    "unknown key {k:?} in pool {:?} (keys: {POOL_KEYS})",
                    self.name
                ))
            }
        }
        Ok(())
    }
}

/// Parses `--pool NAME:threads=N,queue=N,cpus=LIST,max_wait=DURATION,codel=TARGET/INTERVAL,budget=N,stuck_after=DURATION,elastic=MIN-MAX,keep_alive=DURATION`.
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

/// Parses `--load POOL:rate=R,work=W,arrivals=fixed|poisson,submitters=N,inflight=N,callers=N,name=NAME`.
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
/// queue = 256
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolEntry {
    name: String,
    threads: Option<usize>,
    queue: Option<usize>,
    cpus: Option<String>,
    max_wait: Option<String>,
    codel: Option<String>,
    budget: Option<usize>,
    stuck_after: Option<String>,
    elastic: Option<String>,
    keep_alive: Option<String>,
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
}

impl PoolEntry {
    /// The pool this entry describes: each field goes to its own key's parser, whole, so a
    /// value can never set another key (`max_wait = "5ms,threads=64"` is an invalid duration).
    fn into_spec(self) -> Result<PoolSpec, String> {
        let mut pool = PoolSpec::named(&self.name);
        let in_pool = |e: String| format!("pool {:?}: {e}", self.name);
        if let Some(t) = self.threads {
            pool.threads = check_count(t, "threads", 1, 1024).map_err(in_pool)?;
        }
        if let Some(q) = self.queue {
            pool.queue = check_count(q, "queue", 0, 1 << 24).map_err(in_pool)?;
        }
        if let Some(b) = self.budget {
            pool.budget = check_count(b, "budget", 0, 1024).map_err(in_pool)?;
        }
        for (k, v) in [
            ("cpus", &self.cpus),
            ("max_wait", &self.max_wait),
            ("codel", &self.codel),
            ("stuck_after", &self.stuck_after),
            ("elastic", &self.elastic),
            ("keep_alive", &self.keep_alive),
        ] {
            if let Some(v) = v {
                pool.set(k, v).map_err(in_pool)?;
            }
        }
        Ok(pool)
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
        ] {
            if let Some(v) = v {
                load.set(k, v).map_err(in_load)?;
            }
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
        let p = parse_pool("api:threads=2,queue=256,cpus=0-1,max_wait=100ms").unwrap();
        assert_eq!(p.name, "api");
        assert_eq!((p.threads, p.queue), (2, 256));
        assert_eq!(p.cpus, Some(CpuList(vec![0, 1])));
        assert_eq!(p.max_wait, Some(Duration::from_millis(100)));
        assert_eq!(parse_pool("b").unwrap().threads, 1);
        assert_eq!(parse_cpus("0,2-3").unwrap().to_string(), "0,2-3");
        assert_eq!(parse_cpus("3+1").unwrap(), CpuList(vec![1, 3]));
        let p = parse_pool("svc:codel=5ms/100ms,budget=2,stuck_after=100ms").unwrap();
        assert_eq!(
            p.codel,
            Some((Duration::from_millis(5), Duration::from_millis(100)))
        );
        assert_eq!(p.budget, 2);
        assert_eq!(p.stuck_after, Some(Duration::from_millis(100)));
        let p = parse_pool("io:elastic=1-8,keep_alive=2s").unwrap();
        assert_eq!((p.threads, p.max_threads), (1, Some(8)));
        assert_eq!(p.keep_alive, Some(Duration::from_secs(2)));
        let l = parse_load("svc:deadline=50ms").unwrap();
        assert_eq!(l.deadline, Some(Duration::from_millis(50)));
    }

    #[test]
    fn bad_pools_name_the_value() {
        for (bad, needle) in [
            ("api:threads=0", "threads=0"),
            ("api:threads=two", "\"two\""),
            ("api:queue=-1", "\"-1\""),
            ("api:cpus=1-0", "\"1-0\""),
            ("api:cpus=a", "\"a\""),
            ("api:color=red", "\"color\""),
            ("api:threads", "\"threads\""),
            (":threads=1", "\":threads=1\""),
            ("api:max_wait=0s", "max_wait"),
            ("api:codel=5ms", "codel"),
            ("api:codel=100ms/5ms", "codel"),
            ("api:budget=x", "\"x\""),
            ("api:stuck_after=0s", "stuck_after"),
            ("api:elastic=4-2", "elastic"),
            ("api:elastic=0-2", "elastic"),
            ("api:keep_alive=0s", "keep_alive"),
        ] {
            let err = parse_pool(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
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
        sc.pools[0].cpus = Some(CpuList(vec![7]));
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
        assert_eq!(sc.pools[0].cpus, Some(CpuList(vec![0, 1])));
        assert_eq!(sc.loads[0].rate, Rate::PerSec(500.0));
        assert_eq!(sc.loads[0].work, WorkSpec::Sleep(Duration::from_millis(1)));
    }

    #[test]
    fn scenario_file_values_are_taken_whole() {
        let base = || presets::preset("cpu-runaway", &[0, 1]).unwrap();
        for (text, needle) in [
            ("max_wait = \"5ms,threads=64\"", "\"5ms,threads=64\""),
            ("cpus = \"0,threads=64\"", "\"0,threads=64\""),
            ("elastic = \"1-2,queue=0\"", "\"1-2,queue=0\""),
        ] {
            let file = format!("[[pool]]\nname = \"a\"\n{text}\n[[load]]\npool = \"a\"");
            let err = parse_scenario_file(&file, base()).unwrap_err();
            assert!(err.contains(needle) && err.contains("pool \"a\""), "{err}");
        }
        let file = "[[pool]]\nname = \"a,threads=9\"\n[[load]]\npool = \"a:rate=max\"";
        let sc = parse_scenario_file(file, base()).unwrap();
        assert_eq!(
            (sc.pools[0].name.as_str(), sc.pools[0].threads),
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
