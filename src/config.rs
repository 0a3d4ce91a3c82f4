//! Configuring a runtime from a TOML file (cargo feature `config`).
//!
//! The file format is documented on [`RuntimeBuilder::from_toml_str`].

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::builder::{PoolBuilder, RuntimeBuilder};
use crate::cpuset::CpuSet;
use crate::hooks::PanicPolicy;
use crate::placement::{Placement, SchedPolicy};

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigIssue {
    /// The pool the problem concerns, if any.
    pub pool: Option<String>,
    /// The key at fault (for example `"threads"`), if any.
    pub key: Option<String>,
    /// The 1-based line in the file, where known.
    pub line: Option<usize>,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(pool) = &self.pool {
            write!(f, "pool {pool:?}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a configuration; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    source_name: String,
    issues: Vec<ConfigIssue>,
}

impl ConfigError {
    /// The problems, in file order.
    pub fn issues(&self) -> &[ConfigIssue] {
        &self.issues
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "{}: {n} configuration error{}",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Parses a duration with a unit: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; a decimal
/// number is allowed (`"1.5s"`). The error names the value.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit (use ns, us, ms, s, m or h)"))?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "{text:?} has the unknown unit {other:?} (use ns, us, ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{text:?} is out of range"))
}

struct Loader<'a> {
    text: &'a str,
    issues: Vec<ConfigIssue>,
}

impl Loader<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    fn issue(&mut self, pool: Option<&str>, key: Option<&str>, at: usize, message: String) {
        let line = Some(self.line(at));
        self.issues.push(ConfigIssue {
            pool: pool.map(str::to_owned),
            key: key.map(str::to_owned),
            line,
            message,
        });
    }

    fn int(&mut self, pool: Option<&str>, key: &str, v: &Spanned<DeValue<'_>>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        self.issue(
                            pool,
                            Some(key),
                            v.span().start,
                            format!("{i} is out of range"),
                        );
                        None
                    }
                }
            }
            other => {
                let msg = format!("expected an integer, found {}", kind(other));
                self.issue(pool, Some(key), v.span().start, msg);
                None
            }
        }
    }

    fn count(&mut self, pool: Option<&str>, key: &str, v: &Spanned<DeValue<'_>>) -> Option<usize> {
        let n = self.int(pool, key, v)?;
        match usize::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                let msg = format!("must not be negative, got {n}");
                self.issue(pool, Some(key), v.span().start, msg);
                None
            }
        }
    }

    fn string<'v>(
        &mut self,
        pool: Option<&str>,
        key: &str,
        v: &'v Spanned<DeValue<'_>>,
    ) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                let msg = format!("expected a string, found {}", kind(other));
                self.issue(pool, Some(key), v.span().start, msg);
                None
            }
        }
    }

    fn duration(
        &mut self,
        pool: Option<&str>,
        key: &str,
        v: &Spanned<DeValue<'_>>,
    ) -> Option<Duration> {
        let s = self.string(pool, key, v)?;
        match parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.issue(pool, Some(key), v.span().start, e);
                None
            }
        }
    }

    fn bool(&mut self, pool: Option<&str>, key: &str, v: &Spanned<DeValue<'_>>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                let msg = format!("expected true or false, found {}", kind(other));
                self.issue(pool, Some(key), v.span().start, msg);
                None
            }
        }
    }

    /// A two-element array, each element read by `item`.
    fn pair<T>(
        &mut self,
        pool: Option<&str>,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        what: &str,
        mut item: impl FnMut(&mut Self, &Spanned<DeValue<'_>>) -> Option<T>,
    ) -> Option<(T, T)> {
        match v.get_ref() {
            DeValue::Array(items) if items.len() == 2 => {
                let a = item(self, &items[0]);
                let b = item(self, &items[1]);
                Some((a?, b?))
            }
            other => {
                let msg = format!("expected an array of two {what}, found {}", kind(other));
                self.issue(pool, Some(key), v.span().start, msg);
                None
            }
        }
    }

    fn cpus(&mut self, pool: &str, v: &Spanned<DeValue<'_>>) -> Option<CpuSet> {
        match v.get_ref() {
            DeValue::String(s) => match s.parse::<CpuSet>() {
                Ok(set) => Some(set),
                Err(e) => {
                    self.issue(Some(pool), Some("cpus"), v.span().start, e.to_string());
                    None
                }
            },
            DeValue::Array(items) => {
                let mut cpus = Vec::new();
                for item in items.iter() {
                    cpus.push(self.count(Some(pool), "cpus", item)?);
                }
                Some(CpuSet::new(cpus))
            }
            other => {
                let msg = format!(
                    "expected a cpulist string such as \"0-3,6\" or an array of CPU numbers, \
                     found {}",
                    kind(other)
                );
                self.issue(Some(pool), Some("cpus"), v.span().start, msg);
                None
            }
        }
    }

    fn table<'t, 'i>(
        &mut self,
        pool: Option<&str>,
        key: &str,
        v: &'t Spanned<DeValue<'i>>,
    ) -> Option<&'t DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                let msg = format!("expected a table, found {}", kind(other));
                self.issue(pool, Some(key), v.span().start, msg);
                None
            }
        }
    }

    fn runtime(&mut self, table: &DeTable<'_>, mut b: RuntimeBuilder) -> RuntimeBuilder {
        for (k, v) in table.iter() {
            match k.get_ref().as_ref() {
                "drop_timeout" => {
                    if let Some(d) = self.duration(None, "drop_timeout", v) {
                        b = b.drop_timeout(d);
                    }
                }
                other => {
                    let msg =
                        format!("unknown key {other:?} in [runtime] (known keys: drop_timeout)");
                    self.issue(None, Some(other), k.span().start, msg);
                }
            }
        }
        b
    }

    fn pool(&mut self, name: &str, table: &DeTable<'_>) -> (PoolBuilder, Vec<(String, usize)>) {
        let mut p = PoolBuilder::new(name.to_owned());
        let mut lines = Vec::new();
        let pool = Some(name);
        for (k, v) in table.iter() {
            let key = k.get_ref().as_ref();
            lines.push((key.to_owned(), k.span().start));
            match key {
                "threads" => {
                    if let Some(n) = self.count(pool, key, v) {
                        p = p.threads(n);
                    }
                }
                "queue_capacity" => {
                    if let Some(n) = self.count(pool, key, v) {
                        p = p.queue_capacity(n);
                    }
                }
                "stack_size" => {
                    if let Some(n) = self.count(pool, key, v) {
                        p = p.stack_size(n);
                    }
                }
                "max_queue_wait" => {
                    if let Some(d) = self.duration(pool, key, v) {
                        p = p.max_queue_wait(d);
                    }
                }
                "thread_name" => {
                    if let Some(s) = self.string(pool, key, v) {
                        p = p.thread_name(s);
                    }
                }
                "stuck_after" => {
                    if let Some(d) = self.duration(pool, key, v) {
                        p = p.stuck_after(d);
                    }
                }
                "idle_spin" => {
                    if let Some(d) = self.duration(pool, key, v) {
                        p = p.idle_spin(d);
                    }
                }
                "elastic" => {
                    let pair = self.pair(pool, key, v, "thread counts [min, max]", |c, x| {
                        c.count(pool, key, x)
                    });
                    if let Some((min, max)) = pair {
                        p = p.elastic(min, max);
                    }
                }
                "keep_alive" => {
                    if let Some(d) = self.duration(pool, key, v) {
                        p = p.keep_alive(d);
                    }
                }
                "replacement_budget" => {
                    if let Some(n) = self.count(pool, key, v) {
                        p = p.replacement_budget(n);
                    }
                }
                "max_threads_limit" => {
                    if let Some(n) = self.count(pool, key, v) {
                        p = p.max_threads_limit(n);
                    }
                }
                "queue_capacity_limit" => {
                    if let Some(n) = self.count(pool, key, v) {
                        p = p.queue_capacity_limit(n);
                    }
                }
                "codel" => {
                    let pair = self.pair(pool, key, v, "durations [target, interval]", |c, x| {
                        c.duration(pool, key, x)
                    });
                    if let Some((target, interval)) = pair {
                        p = p.codel(target, interval);
                    }
                }
                "cpus" => {
                    if let Some(set) = self.cpus(name, v) {
                        p = p.cpus(set);
                    }
                }
                "placement" => match self.string(pool, key, v) {
                    Some("spread") => p = p.placement(Placement::Spread),
                    Some("pin-each") => p = p.placement(Placement::PinEach),
                    Some(other) => {
                        let msg =
                            format!("unknown placement {other:?} (use \"spread\" or \"pin-each\")");
                        self.issue(pool, Some(key), v.span().start, msg);
                    }
                    None => {}
                },
                "exclusive" => {
                    if let Some(x) = self.bool(pool, key, v) {
                        p = p.exclusive(x);
                    }
                }
                "nice" => {
                    if let Some(n) = self.int(pool, key, v) {
                        match i32::try_from(n) {
                            Ok(n) => p = p.nice(n),
                            Err(_) => {
                                let msg = format!("{n} is out of range");
                                self.issue(pool, Some(key), v.span().start, msg);
                            }
                        }
                    }
                }
                "sched_policy" => match self.string(pool, key, v) {
                    Some("normal") => p = p.sched_policy(SchedPolicy::Normal),
                    Some("batch") => p = p.sched_policy(SchedPolicy::Batch),
                    Some("idle") => p = p.sched_policy(SchedPolicy::Idle),
                    Some(other) => {
                        let msg = format!(
                            "unknown scheduling policy {other:?} (use \"normal\", \"batch\" or \"idle\")"
                        );
                        self.issue(pool, Some(key), v.span().start, msg);
                    }
                    None => {}
                },
                "panic_policy" => match self.string(pool, key, v) {
                    Some("count") => p = p.panic_policy(PanicPolicy::Count),
                    Some("abort") => p = p.panic_policy(PanicPolicy::Abort),
                    Some(other) => {
                        let msg = format!(
                            "unknown panic policy {other:?} (use \"count\" or \"abort\"; a handler is set in code \
                             with PoolBuilder::panic_policy)"
                        );
                        self.issue(pool, Some(key), v.span().start, msg);
                    }
                    None => {}
                },
                other => {
                    let msg = format!(
                        "unknown key {other:?} (known keys: {})",
                        POOL_KEYS.join(", ")
                    );
                    self.issue(pool, Some(other), k.span().start, msg);
                }
            }
        }
        (p, lines)
    }
}

/// Where a pool's table and each of its keys start, to place build errors on their line.
struct PoolLines {
    name: String,
    keys: Vec<(String, usize)>,
    table_at: usize,
}

/// The keys a `[pools.NAME]` table may hold.
pub(crate) const POOL_KEYS: &[&str] = &[
    "threads",
    "queue_capacity",
    "max_queue_wait",
    "stack_size",
    "thread_name",
    "cpus",
    "placement",
    "exclusive",
    "nice",
    "sched_policy",
    "stuck_after",
    "idle_spin",
    "elastic",
    "keep_alive",
    "replacement_budget",
    "max_threads_limit",
    "queue_capacity_limit",
    "codel",
    "panic_policy",
];

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl RuntimeBuilder {
    /// Reads a runtime configuration from TOML text. `source_name` (a file name, say)
    /// prefixes the error message.
    ///
    /// # Format
    ///
    /// ```toml
    /// [runtime]
    /// drop_timeout = "5s"
    ///
    /// [pools.api]
    /// threads = 2
    /// queue_capacity = 256
    /// cpus = "0"              # or [0]; Linux cpulist syntax
    /// placement = "pin-each"  # or "spread" (the default)
    /// exclusive = true
    ///
    /// [pools.thumbnails]
    /// threads = 1
    /// queue_capacity = 32
    /// max_queue_wait = "200ms"
    /// nice = 10
    /// sched_policy = "batch"  # "normal", "batch" or "idle"
    /// panic_policy = "abort"  # for tasks without a handle: "count" (the default) or "abort"
    ///
    /// [pools.downstream]
    /// elastic = [1, 16]       # min and max threads (docs/OVERLOAD.md)
    /// keep_alive = "30s"
    /// replacement_budget = 2
    /// stuck_after = "10s"
    /// codel = ["5ms", "100ms"] # target and interval
    /// max_threads_limit = 32   # allows Pool::set_threads up to 32
    /// queue_capacity_limit = 1024
    /// ```
    ///
    /// Hooks (context propagation, thread start and stop, a panic handler) are code, not
    /// configuration: set them on the builder that the file returns, with
    /// [`RuntimeBuilder::configure_pool`].
    ///
    /// Every key is the name of the [`PoolBuilder`] or [`RuntimeBuilder`] setter it stands for,
    /// with the same defaults and rules. Pools are registered in file order. Durations are
    /// strings with a unit: `"250us"`, `"200ms"`, `"1.5s"`, `"2m"`, `"1h"`.
    ///
    /// Loading reports **every** problem at once, each with the pool, the key and the line:
    /// syntax errors, unknown keys (an error, never ignored), wrong types, and every value that
    /// `build()` would refuse. Environment overrides for the common knobs are applied by
    /// [`RuntimeBuilder::env_overrides`]; pass it `std::env::vars_os()`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing every problem at once, each with its pool, key and line.
    ///
    /// ```
    /// let builder = bulkhead::RuntimeBuilder::from_toml_str(
    ///     "inline",
    ///     r#"
    ///     [pools.api]
    ///     threads = 2
    ///     queue_capacity = 64
    ///     "#,
    /// )?;
    /// let rt = builder.build()?;
    /// assert_eq!(rt.pool("api")?.queue_capacity(), 64);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_toml_str(source_name: &str, text: &str) -> Result<RuntimeBuilder, ConfigError> {
        let mut loader = Loader {
            text,
            issues: Vec::new(),
        };
        let (doc, errors) = DeTable::parse_recoverable(text);
        for e in errors {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            loader.issue(None, None, at, e.message().trim().to_owned());
        }
        let mut builder = RuntimeBuilder::new();
        let mut key_lines: Vec<PoolLines> = Vec::new();
        for (k, v) in doc.get_ref().iter() {
            match k.get_ref().as_ref() {
                "runtime" => {
                    if let Some(t) = loader.table(None, "runtime", v) {
                        builder = loader.runtime(t, builder);
                    }
                }
                "pools" => {
                    let Some(pools) = loader.table(None, "pools", v) else {
                        continue;
                    };
                    for (name, pv) in pools.iter() {
                        let name_str = name.get_ref().as_ref();
                        if let Some(t) = loader.table(Some(name_str), name_str, pv) {
                            let (p, lines) = loader.pool(name_str, t);
                            key_lines.push(PoolLines {
                                name: name_str.to_owned(),
                                keys: lines,
                                table_at: name.span().start,
                            });
                            builder.pools.push(p);
                        }
                    }
                }
                other => {
                    let msg =
                        format!("unknown top-level key {other:?} (use [runtime] and [pools.NAME])");
                    loader.issue(None, Some(other), k.span().start, msg);
                }
            }
        }
        // What build() would refuse, each placed on the line of its key.
        if loader.issues.is_empty() || !builder.pools.is_empty() {
            for e in builder.problems() {
                let at = e
                    .pool()
                    .and_then(|p| key_lines.iter().find(|l| l.name == p))
                    .map(|l| {
                        l.keys
                            .iter()
                            .find(|(k, _)| k == e.field())
                            .map_or(l.table_at, |(_, at)| *at)
                    })
                    .unwrap_or(0);
                let message = e.to_string();
                // BuildError's Display starts with the pool and field; keep only the rest.
                let prefix_len =
                    e.pool().map_or(0, |p| format!("pool {p:?}: ").len()) + e.field().len() + 2;
                let message = message.get(prefix_len..).unwrap_or(&message).to_owned();
                loader.issue(e.pool(), Some(e.field()), at, message);
            }
        }
        if loader.issues.is_empty() {
            Ok(builder)
        } else {
            loader.issues.sort_by_key(|i| i.line);
            Err(ConfigError {
                source_name: source_name.to_owned(),
                issues: loader.issues,
            })
        }
    }

    /// Reads a runtime configuration from a TOML file.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file, with every problem found (or the I/O error).
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<RuntimeBuilder, ConfigError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            issues: vec![ConfigIssue {
                pool: None,
                key: None,
                line: None,
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        Self::from_toml_str(&name, &text)
    }

    /// Applies environment overrides for the common knobs:
    /// `BULKHEAD_<POOL>_THREADS`, `BULKHEAD_<POOL>_QUEUE_CAPACITY`,
    /// `BULKHEAD_<POOL>_MAX_QUEUE_WAIT` (a duration) and `BULKHEAD_<POOL>_CPUS` (a cpulist),
    /// where `<POOL>` is the pool name in upper case with every character that is not a
    /// letter or digit replaced by `_`.
    ///
    /// Pass `std::env::vars_os()`: it never panics, and variables that do not start with
    /// `BULKHEAD_` are skipped whatever their name or value holds. (`std::env::vars()` also
    /// works, but it panics if *any* variable of the process is not valid UTF-8.) Pairs of
    /// `String`s or `&str`s work too, for tests.
    ///
    /// A variable naming an unknown pool or knob, holding a bad value, or whose name or value
    /// is not valid UTF-8, is an error naming the variable; none is ignored.
    ///
    /// Two pools whose variables could be confused are an error naming both, whatever the
    /// environment holds (so it shows on the first start, not when someone sets a variable):
    /// `a-b` and `a_b` both read `BULKHEAD_A_B_*`, and `a` and `a_b` both could own
    /// `BULKHEAD_A_B_THREADS`. Rename one of them. [`build`](RuntimeBuilder::build) alone
    /// accepts such names; only the environment's naming makes them collide.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing every colliding pair, or else every bad variable.
    ///
    /// ```
    /// let rt = bulkhead::RuntimeBuilder::from_toml_str("inline", "[pools.api]\nthreads = 1\n")?
    ///     .env_overrides(std::env::vars_os())?
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn env_overrides<K, V>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<RuntimeBuilder, ConfigError>
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let env_error = |issues| ConfigError {
            source_name: "environment".to_owned(),
            issues,
        };
        let collisions = env_collisions(&self.pools);
        if !collisions.is_empty() {
            return Err(env_error(collisions));
        }
        let mut issues = Vec::new();
        for (var, value) in vars {
            let (var, value) = (var.as_ref(), value.as_ref());
            if !var.as_encoded_bytes().starts_with(b"BULKHEAD_") {
                continue;
            }
            let Some(var) = var.to_str() else {
                issues.push(ConfigIssue {
                    pool: None,
                    key: Some(var.to_string_lossy().into_owned()),
                    line: None,
                    message: format!("the variable's name {var:?} is not valid UTF-8"),
                });
                continue;
            };
            let Some(value) = value.to_str() else {
                issues.push(ConfigIssue {
                    pool: None,
                    key: Some(var.to_owned()),
                    line: None,
                    message: format!("the value {value:?} is not valid UTF-8"),
                });
                continue;
            };
            let rest = &var["BULKHEAD_".len()..];
            // At most one pool matches: env_collisions refused prefixes that overlap.
            let found = self.pools.iter_mut().find_map(|p| {
                let prefix = env_name(&p.0.name);
                rest.strip_prefix(&prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .map(|knob| (p, knob.to_owned()))
            });
            let Some((p, knob)) = found else {
                issues.push(ConfigIssue {
                    pool: None,
                    key: Some(var.to_owned()),
                    line: None,
                    message: "names no pool of this configuration".to_owned(),
                });
                continue;
            };
            let pool_name = p.0.name.clone();
            let result = match knob.as_str() {
                "THREADS" => value
                    .parse()
                    .map(|n| p.0.threads = n)
                    .map_err(|_| format!("{value:?} is not a thread count")),
                "QUEUE_CAPACITY" => value
                    .parse()
                    .map(|n| p.0.queue_capacity = n)
                    .map_err(|_| format!("{value:?} is not a queue capacity")),
                "MAX_QUEUE_WAIT" => parse_duration(value).map(|d| p.0.max_queue_wait = Some(d)),
                "CPUS" => value
                    .parse::<CpuSet>()
                    .map(|set| *p = p.clone().cpus(set))
                    .map_err(|e| e.to_string()),
                other => Err(format!(
                    "unknown knob {other:?} (use THREADS, QUEUE_CAPACITY, MAX_QUEUE_WAIT or CPUS)"
                )),
            };
            if let Err(message) = result {
                issues.push(ConfigIssue {
                    pool: Some(pool_name),
                    key: Some(var.to_owned()),
                    line: None,
                    message,
                });
            }
        }
        if issues.is_empty() {
            Ok(self)
        } else {
            Err(env_error(issues))
        }
    }
}

/// Every pair of pools whose environment variables could be confused: the same `<POOL>`
/// part (`a-b` and `a_b`), or one's followed by `_` starting the other's (`a` and `a_b`:
/// `BULKHEAD_A_B_THREADS` could be either's). Pools with the very same name are left to
/// `build()`, which reports the duplicate.
fn env_collisions(pools: &[PoolBuilder]) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (i, p) in pools.iter().enumerate() {
        for q in &pools[..i] {
            if q.0.name == p.0.name {
                continue;
            }
            // The pool with the shorter <POOL> part first (the earlier one on a tie).
            let (pe, qe) = (env_name(&p.0.name), env_name(&q.0.name));
            let ((a, ae), (b, be)) = if qe.len() <= pe.len() {
                ((q, qe), (p, pe))
            } else {
                ((p, pe), (q, qe))
            };
            let message = if ae == be {
                format!(
                    "pools {:?} and {:?} both read the variables BULKHEAD_{ae}_*; rename one of them",
                    a.0.name, b.0.name
                )
            } else if be.strip_prefix(&ae).is_some_and(|r| r.starts_with('_')) {
                format!(
                    "the variables of pool {:?} (BULKHEAD_{ae}_*) include those of pool {:?} \
                     (BULKHEAD_{be}_*): BULKHEAD_{be}_THREADS could be either's; rename one of them",
                    a.0.name, b.0.name
                )
            } else {
                continue;
            };
            issues.push(ConfigIssue {
                pool: Some(p.0.name.clone()),
                key: None,
                line: None,
                message,
            });
        }
    }
    issues
}

fn env_name(pool: &str) -> String {
    pool.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10 parsecs")
            .unwrap_err()
            .contains("\"parsecs\""));
        assert!(parse_duration("ms").is_err());
    }
}
