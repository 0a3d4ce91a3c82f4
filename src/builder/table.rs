//! The settings table: every setting that can be given by name, as a key (the name of the
//! builder method it calls), a one-line description, and a setter from a [`Value`]. The TOML
//! loader (`config.rs`), the environment overrides, [`PoolBuilder::set`] and
//! [`RuntimeBuilder::set`] (which the benchmark's `--pool` specs use) all read this table, so
//! every front end spells a setting the same way and reads its value with the same syntax.
//!
//! A setting's value arrives either typed (from TOML: an integer, a boolean, an array) or as
//! text (an environment variable, a command-line spec). Each kind has one text syntax:
//!
//! | kind     | TOML                     | text                                   |
//! |----------|--------------------------|----------------------------------------|
//! | count    | `4`                      | `4`                                    |
//! | integer  | `-5`                     | `-5`                                   |
//! | number   | `0.5` or `2`             | `0.5` (a decimal number)               |
//! | boolean  | `true`                   | `true` or `false`                      |
//! | duration | `"200ms"`                | `200ms` (see [`parse_duration`])       |
//! | name     | `"pin-each"`             | `pin-each`                             |
//! | CPU set  | `"0-3,6"` or `[0, 1]`    | `0-3,6` (the kernel's cpulist syntax)  |
//! | pair     | `[1, 16]`, `["5ms", "100ms"]` | `1,16`, `5ms,100ms` (two values, one comma) |
//! | list of durations | `["1ms", "10ms", "1s"]` | `1ms,10ms,1s` (values separated by commas) |
//!
//! A setter only reads and converts its value; the ranges are the builder's rules, checked by
//! `build()` (and reported by the loader with every other problem).
//!
//! Adding a setting is a setter on the builder (`pool.rs`) and one line here.

use std::fmt;
use std::time::Duration;

use super::pool::PoolBuilder;
use super::RuntimeBuilder;
use crate::adaptive::{LimitAlgorithm, LimitSignal};
use crate::cpuset::CpuSet;
use crate::hooks::PanicPolicy;
use crate::keys::KeyOrder;
use crate::placement::{Placement, SchedPolicy};

/// A setting's value as a front end hands it over.
#[derive(Debug, Clone, PartialEq)]
// Without `config`, only `Text` is made (by the `set` methods).
#[cfg_attr(not(feature = "config"), allow(dead_code))]
pub(crate) enum Value {
    /// Text from the environment or a command line, read in the key's text syntax.
    Text(String),
    /// A TOML string.
    Str(String),
    /// A TOML integer.
    Int(i64),
    /// A TOML float.
    Float(f64),
    /// A TOML boolean.
    Bool(bool),
    /// A TOML array.
    Array(Vec<Value>),
    /// A TOML value no setting takes (a float, a datetime, a table), by the name of its kind.
    Other(&'static str),
}

impl Value {
    /// "a string", "an integer", ...: for "expected X, found Y" messages.
    fn kind(&self) -> &'static str {
        match self {
            Value::Text(_) | Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Array(_) => "an array",
            Value::Other(kind) => kind,
        }
    }
}

/// One setting: its key, what it sets, and how.
pub(crate) struct Setting<B> {
    /// The key: the name of the builder method.
    pub(crate) key: &'static str,
    /// What it sets, in a few words, with the kind of its value.
    pub(crate) doc: &'static str,
    /// Applies the value; the error says what is wrong with it.
    pub(crate) set: fn(B, &Value) -> Result<B, String>,
}

/// Every per-pool setting that has a value (hooks are code, set on the builder).
pub(crate) static POOL_SETTINGS: &[Setting<PoolBuilder>] = &[
    Setting {
        key: "threads",
        doc: "worker threads, a fixed count (count)",
        set: |p, v| Ok(p.threads(count(v)?)),
    },
    Setting {
        key: "elastic",
        doc: "min and max threads of an elastic pool (pair of counts)",
        set: |p, v| {
            let (min, max) = pair(v, "thread counts [min, max]", count)?;
            Ok(p.elastic(min, max))
        },
    },
    Setting {
        key: "queue_capacity",
        doc: "tasks that may wait for a worker (count)",
        set: |p, v| Ok(p.queue_capacity(count(v)?)),
    },
    Setting {
        key: "max_queue_wait",
        doc: "longest wait in the queue before a task expires (duration)",
        set: |p, v| Ok(p.max_queue_wait(duration(v)?)),
    },
    Setting {
        key: "stack_size",
        doc: "stack size of each worker, in bytes (count)",
        set: |p, v| Ok(p.stack_size(count(v)?)),
    },
    Setting {
        key: "thread_name",
        doc: "prefix of the worker thread names (name)",
        set: |p, v| Ok(p.thread_name(text(v)?)),
    },
    Setting {
        key: "cpus",
        doc: "the CPUs the workers may run on (CPU set)",
        set: |p, v| Ok(p.cpus(cpus(v)?)),
    },
    Setting {
        key: "placement",
        doc: "\"spread\" or \"pin-each\" over the CPUs (name)",
        set: |p, v| {
            let options = [
                ("spread", Placement::Spread),
                ("pin-each", Placement::PinEach),
            ];
            Ok(p.placement(choice(v, "placement", &options, "")?))
        },
    },
    Setting {
        key: "exclusive",
        doc: "claims the pool's CPUs for it alone (boolean)",
        set: |p, v| Ok(p.exclusive(boolean(v)?)),
    },
    Setting {
        key: "nice",
        doc: "nice value of the workers, -20 to 19 (integer)",
        set: |p, v| Ok(p.nice(int(v)?)),
    },
    Setting {
        key: "sched_policy",
        doc: "\"normal\", \"batch\" or \"idle\" (name)",
        set: |p, v| {
            let options = [
                ("normal", SchedPolicy::Normal),
                ("batch", SchedPolicy::Batch),
                ("idle", SchedPolicy::Idle),
            ];
            Ok(p.sched_policy(choice(v, "scheduling policy", &options, "")?))
        },
    },
    Setting {
        key: "cpu_limit",
        doc: "kernel CPU cap in CPUs, 0.5 = half of one CPU (number)",
        set: |p, v| Ok(p.cpu_limit(number(v)?)),
    },
    Setting {
        key: "cpu_limit_best_effort",
        doc: "run uncapped, and say so, where the host refuses a cap (boolean)",
        set: |p, v| Ok(p.cpu_limit_best_effort(boolean(v)?)),
    },
    Setting {
        key: "cpu_limit_parent",
        doc: "cgroup directory to create the cap's cgroup under (name)",
        set: |p, v| Ok(p.cpu_limit_parent(text(v)?)),
    },
    Setting {
        key: "cpu_limit_period",
        doc: "enforcement period of the CPU cap (duration)",
        set: |p, v| Ok(p.cpu_limit_period(duration(v)?)),
    },
    Setting {
        key: "cpu_weight",
        doc: "weight of the capped pool's cgroup, 1 to 10000, default 100 (count)",
        set: |p, v| {
            let w = count(v)?;
            let w = u32::try_from(w).map_err(|_| format!("{w} is out of range"))?;
            Ok(p.cpu_weight(w))
        },
    },
    Setting {
        key: "stuck_after",
        doc: "run time after which a task is reported stuck (duration)",
        set: |p, v| Ok(p.stuck_after(duration(v)?)),
    },
    Setting {
        key: "idle_spin",
        doc: "how long an idle worker spins before it parks (duration)",
        set: |p, v| Ok(p.idle_spin(duration(v)?)),
    },
    Setting {
        key: "codel",
        doc: "queue-delay control: target and interval (pair of durations)",
        set: |p, v| {
            let (target, interval) = pair(v, "durations [target, interval]", duration)?;
            Ok(p.codel(target, interval))
        },
    },
    Setting {
        key: "keep_alive",
        doc: "idle time before a thread above the minimum exits (duration)",
        set: |p, v| Ok(p.keep_alive(duration(v)?)),
    },
    Setting {
        key: "replacement_budget",
        doc: "extra threads that may replace stuck workers (count)",
        set: |p, v| Ok(p.replacement_budget(count(v)?)),
    },
    Setting {
        key: "max_threads_limit",
        doc: "largest thread count a live resize may set (count)",
        set: |p, v| Ok(p.max_threads_limit(count(v)?)),
    },
    Setting {
        key: "queue_capacity_limit",
        doc: "largest queue capacity a live resize may set (count)",
        set: |p, v| Ok(p.queue_capacity_limit(count(v)?)),
    },
    Setting {
        key: "panic_policy",
        doc: "\"count\" or \"abort\" for a panic in a task without a handle (name)",
        set: |p, v| {
            let options = [("count", PanicPolicy::Count), ("abort", PanicPolicy::Abort)];
            let hint = "; a handler is set in code with PoolBuilder::panic_policy";
            Ok(p.panic_policy(choice(v, "panic policy", &options, hint)?))
        },
    },
    Setting {
        key: "adaptive_limit",
        doc: "adaptive in-flight limit: algorithm (\"aimd\", \"vegas\" or \"gradient2\") and minimum (name, count)",
        set: |p, v| {
            let (algorithm, min) = name_and_count(v)?;
            let options = [
                ("aimd", LimitAlgorithm::AIMD),
                ("vegas", LimitAlgorithm::Vegas),
                ("gradient2", LimitAlgorithm::GRADIENT2),
            ];
            let hint = "; other parameters are set in code with PoolBuilder::adaptive_limit";
            let algorithm = choice(&algorithm, "limit algorithm", &options, hint)?;
            Ok(p.adaptive_limit(algorithm, min))
        },
    },
    Setting {
        key: "adaptive_signal",
        doc: "what the adaptive limit reacts to: \"run_time\" or \"end_to_end\" (name)",
        set: |p, v| {
            let options = [
                ("run_time", LimitSignal::RunTime),
                ("end_to_end", LimitSignal::EndToEnd),
            ];
            Ok(p.adaptive_signal(choice(v, "limit signal", &options, "")?))
        },
    },
    Setting {
        key: "key_cap",
        doc: "most tasks one key may have in flight (count)",
        set: |p, v| Ok(p.key_cap(count(v)?)),
    },
    Setting {
        key: "key_order",
        doc: "order of keyed tasks: \"fair\" (weighted round robin) or \"fifo\" (name)",
        set: |p, v| {
            let options = [("fair", KeyOrder::Fair), ("fifo", KeyOrder::Fifo)];
            Ok(p.key_order(choice(v, "key order", &options, "")?))
        },
    },
    Setting {
        key: "key_weights",
        doc: "weights of keys in the fair order (list of key=weight)",
        set: |p, v| {
            let mut p = p;
            for (key, weight) in key_weights(v)? {
                p = p.key_weight(key, weight);
            }
            Ok(p)
        },
    },
    Setting {
        key: "key_metrics",
        doc: "how many keys the stats name, the rest summed (count)",
        set: |p, v| Ok(p.key_metrics(count(v)?)),
    },
];

/// Every runtime-wide setting (the `[runtime]` table of a configuration file).
pub(crate) static RUNTIME_SETTINGS: &[Setting<RuntimeBuilder>] = &[
    Setting {
        key: "drop_timeout",
        doc: "how long dropping the runtime waits for its tasks (duration)",
        set: |b, v| Ok(b.drop_timeout(duration(v)?)),
    },
    Setting {
        key: "metrics",
        doc: "whether workers record latency histograms (boolean)",
        set: |b, v| Ok(b.metrics(boolean(v)?)),
    },
    Setting {
        key: "supervisor_interval",
        doc: "how often the supervisor samples every pool (duration)",
        set: |b, v| Ok(b.supervisor_interval(duration(v)?)),
    },
    Setting {
        key: "latency_buckets",
        doc: "upper bounds of the exported latency histogram buckets (list of durations)",
        set: |b, v| Ok(b.latency_buckets(durations(v)?)),
    },
];

/// Every pool setting that [`PoolBuilder::set`], a configuration file's `[pools.NAME]`
/// tables and the environment take, in a stable order: its key (the setter's name) and a
/// one-line description ending with the kind of its value. For help texts and checks.
///
/// ```
/// let keys: Vec<&str> = bulkhead::pool_settings().map(|(key, _)| key).collect();
/// assert!(keys.contains(&"max_queue_wait"));
/// ```
pub fn pool_settings() -> impl Iterator<Item = (&'static str, &'static str)> {
    POOL_SETTINGS.iter().map(|s| (s.key, s.doc))
}

/// Every runtime setting that [`RuntimeBuilder::set`], a configuration file's `[runtime]`
/// table and the environment take, like [`pool_settings`].
pub fn runtime_settings() -> impl Iterator<Item = (&'static str, &'static str)> {
    RUNTIME_SETTINGS.iter().map(|s| (s.key, s.doc))
}

/// The setting `key` of `table`, or an error listing the known keys.
pub(crate) fn find<'t, B>(table: &'t [Setting<B>], key: &str) -> Result<&'t Setting<B>, String> {
    table.iter().find(|s| s.key == key).ok_or_else(|| {
        let known: Vec<&str> = table.iter().map(|s| s.key).collect();
        format!("unknown key {key:?} (known keys: {})", known.join(", "))
    })
}

/// Parses a duration: a non-negative decimal number and a unit, `ns`, `us` (or `µs`), `ms`,
/// `s`, `m` or `h` (`"250us"`, `"1.5s"`, `"2m"`, `"1h"`), with optional spaces around it and
/// before the unit. This is the syntax of every duration setting, in a configuration file, an
/// environment variable or a [`set`](PoolBuilder::set) call.
///
/// # Errors
///
/// A message naming the text: a missing or unknown unit, no number, or a duration too long
/// for [`Duration`].
///
/// ```
/// use std::time::Duration;
/// use bulkhead::parse_duration;
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse_duration("10").unwrap_err().contains("no unit"));
/// ```
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

/// A setting given by name ([`PoolBuilder::set`], [`RuntimeBuilder::set`]) that could not be
/// applied. It names the pool (for a pool setting), the key and the value; its message says
/// what is wrong. Ranges are not checked here but by [`build`](RuntimeBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pool: Option<String>,
    key: String,
    value: String,
    message: String,
}

impl SettingError {
    /// The pool whose setting it is; `None` for a runtime setting.
    pub fn pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }

    /// The key as given (for example `"threads"`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What is wrong, without the pool, key and value (for example `unknown key "colour"
    /// (known keys: ...)` or `"two" is not a whole number`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pool) = &self.pool {
            write!(f, "pool {pool:?}: ")?;
        }
        write!(f, "{} = {:?}: {}", self.key, self.value, self.message)
    }
}

impl std::error::Error for SettingError {}

impl PoolBuilder {
    /// Applies the setting `key` (the name of the setter: `"threads"`, `"max_queue_wait"`,
    /// ...) from text, as a configuration file's `[pools.NAME]` table or an environment
    /// variable would: every key a configuration file accepts, with the same meaning.
    ///
    /// Text syntax per kind of value: a count or integer in decimal (`"4"`, `"-5"`); a
    /// boolean `"true"` or `"false"`; a duration as [`parse_duration`] reads it (`"200ms"`);
    /// a CPU set in the kernel's cpulist syntax (`"0-3,6"`); a pair as two values separated
    /// by one comma (`elastic` = `"1,16"`, `codel` = `"5ms,100ms"`); a name as itself
    /// (`placement` = `"pin-each"`). The value is taken whole by that one key: a comma in
    /// it never starts another setting.
    ///
    /// # Errors
    ///
    /// A [`SettingError`] naming the pool, the key and the value, if the key is unknown (the
    /// message lists the known ones) or the value cannot be read. Ranges are checked by
    /// [`build`](RuntimeBuilder::build), like those of the setters.
    ///
    /// ```
    /// let mut refused = None;
    /// let rt = bulkhead::Runtime::builder()
    ///     .pool("io", |p| p.set("elastic", "1,8").and_then(|p| p.set("keep_alive", "2s")).unwrap())
    ///     .pool("api", |p| p.clone().set("threads", "two").unwrap_or_else(|e| {
    ///         refused = Some(e);
    ///         p
    ///     }))
    ///     .build()?;
    /// assert_eq!(rt.pool("io")?.thread_range(), (1, 8));
    /// assert_eq!(
    ///     refused.unwrap().to_string(),
    ///     r#"pool "api": threads = "two": "two" is not a count (a whole number, 0 or more)"#
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set(self, key: &str, value: &str) -> Result<PoolBuilder, SettingError> {
        let pool = Some(self.name().to_owned());
        let fail = |message| SettingError {
            pool: pool.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
            message,
        };
        let setting = find(POOL_SETTINGS, key).map_err(fail)?;
        (setting.set)(self, &Value::Text(value.to_owned())).map_err(fail)
    }
}

impl RuntimeBuilder {
    /// Applies the runtime setting `key` (`"drop_timeout"`, `"metrics"`,
    /// `"supervisor_interval"` or `"latency_buckets"`) from text, as a configuration file's `[runtime]` table would;
    /// the text syntax is that of [`PoolBuilder::set`].
    ///
    /// # Errors
    ///
    /// A [`SettingError`] naming the key and the value, if the key is unknown or the value
    /// cannot be read.
    pub fn set(self, key: &str, value: &str) -> Result<RuntimeBuilder, SettingError> {
        let fail = |message| SettingError {
            pool: None,
            key: key.to_owned(),
            value: value.to_owned(),
            message,
        };
        let setting = find(RUNTIME_SETTINGS, key).map_err(fail)?;
        (setting.set)(self, &Value::Text(value.to_owned())).map_err(fail)
    }
}

// The readers, one per kind of value. Each accepts its TOML type and text, and nothing else.

fn count(v: &Value) -> Result<usize, String> {
    match v {
        Value::Int(n) => usize::try_from(*n).map_err(|_| format!("must not be negative, got {n}")),
        Value::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a count (a whole number, 0 or more)")),
        other => Err(format!("expected an integer, found {}", other.kind())),
    }
}

fn int(v: &Value) -> Result<i32, String> {
    match v {
        Value::Int(n) => i32::try_from(*n).map_err(|_| format!("{n} is out of range")),
        Value::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an integer")),
        other => Err(format!("expected an integer, found {}", other.kind())),
    }
}

fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(x) => Ok(*x),
        Value::Int(n) => Ok(*n as f64),
        Value::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number (such as 0.5)")),
        other => Err(format!("expected a number, found {}", other.kind())),
    }
}

fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Text(s) => match s.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{s:?} is not true or false")),
        },
        other => Err(format!("expected true or false, found {}", other.kind())),
    }
}

fn text(v: &Value) -> Result<&str, String> {
    match v {
        Value::Str(s) | Value::Text(s) => Ok(s),
        other => Err(format!("expected a string, found {}", other.kind())),
    }
}

fn duration(v: &Value) -> Result<Duration, String> {
    parse_duration(text(v)?)
}

fn cpus(v: &Value) -> Result<CpuSet, String> {
    match v {
        Value::Str(s) | Value::Text(s) => s.parse::<CpuSet>().map_err(|e| e.to_string()),
        Value::Array(items) => items
            .iter()
            .map(count)
            .collect::<Result<Vec<_>, _>>()
            .map(CpuSet::new),
        other => Err(format!(
            "expected a cpulist string such as \"0-3,6\" or an array of CPU numbers, found {}",
            other.kind()
        )),
    }
}

/// Durations: a TOML array of duration strings, or text with the durations separated by
/// commas.
fn durations(v: &Value) -> Result<Vec<Duration>, String> {
    match v {
        Value::Array(items) => items.iter().map(duration).collect(),
        Value::Text(s) => s.split(',').map(|d| parse_duration(d.trim())).collect(),
        other => Err(format!(
            "expected an array of durations such as [\"1ms\", \"10ms\"], found {}",
            other.kind()
        )),
    }
}

/// Key weights: text `gold=4,silver=2`, or a TOML array of such strings. A key that
/// contains `=` or `,` is given its weight in code (`PoolBuilder::key_weight`).
fn key_weights(v: &Value) -> Result<Vec<(String, u32)>, String> {
    let items: Vec<String> = match v {
        Value::Text(s) | Value::Str(s) => s.split(',').map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| text(i).map(str::to_owned))
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "expected key=weight pairs such as \"gold=4,silver=2\", found {}",
                other.kind()
            ))
        }
    };
    items
        .iter()
        .map(|item| {
            let (key, weight) = item.split_once('=').ok_or_else(|| {
                format!(
                    "expected key=weight, got {item:?} (keys with '=' or ',' are weighted in code)"
                )
            })?;
            let weight = weight.trim().parse::<u32>().map_err(|_| {
                format!(
                    "the weight of key {:?} is not a whole number: {weight:?}",
                    key.trim()
                )
            })?;
            Ok((key.trim().to_owned(), weight))
        })
        .collect()
}

/// One of `options`, by name.
fn choice<T: Clone>(v: &Value, what: &str, options: &[(&str, T)], hint: &str) -> Result<T, String> {
    let name = text(v)?;
    match options.iter().find(|(n, _)| *n == name.trim()) {
        Some((_, value)) => Ok(value.clone()),
        None => {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
            Err(format!(
                "unknown {what} {name:?} (use {}{hint})",
                names.join(" or ")
            ))
        }
    }
}

/// A name and a count: a TOML array `["name", 4]`, or text `name,4`.
fn name_and_count(v: &Value) -> Result<(Value, usize), String> {
    let (name, n) = match v {
        Value::Array(items) if items.len() == 2 => (items[0].clone(), items[1].clone()),
        Value::Text(s) => match s.split_once(',') {
            Some((a, b)) if !b.contains(',') => (
                Value::Text(a.trim().to_owned()),
                Value::Text(b.trim().to_owned()),
            ),
            _ => {
                return Err(format!(
                    "expected a name and a count separated by a comma, got {s:?}"
                ))
            }
        },
        other => {
            return Err(format!(
                "expected an array of a name and a count, found {}",
                other.kind()
            ))
        }
    };
    Ok((name, count(&n)?))
}

/// Two values, each read by `item`: a TOML array of two, or text with one comma.
fn pair<T>(v: &Value, what: &str, item: fn(&Value) -> Result<T, String>) -> Result<(T, T), String> {
    match v {
        Value::Array(items) if items.len() == 2 => match (item(&items[0]), item(&items[1])) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        },
        Value::Text(s) => match s.split_once(',') {
            Some((a, b)) if !b.contains(',') => {
                let a = item(&Value::Text(a.trim().to_owned()))?;
                let b = item(&Value::Text(b.trim().to_owned()))?;
                Ok((a, b))
            }
            _ => Err(format!(
                "expected two values separated by a comma ({what}), got {s:?}"
            )),
        },
        other => Err(format!(
            "expected an array of two {what}, found {}",
            other.kind()
        )),
    }
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

    #[test]
    fn keys_are_unique_and_documented() {
        let mut keys: Vec<&str> = POOL_SETTINGS.iter().map(|s| s.key).collect();
        keys.extend(RUNTIME_SETTINGS.iter().map(|s| s.key));
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key appears twice");
        for s in POOL_SETTINGS {
            assert!(!s.doc.is_empty(), "{}", s.key);
        }
    }

    #[test]
    fn every_pool_key_takes_text() {
        let sample = |key: &str| match key {
            "elastic" => "1,4",
            "codel" => "5ms,100ms",
            "max_queue_wait" | "stuck_after" | "idle_spin" | "keep_alive" => "200ms",
            "thread_name" => "w",
            "cpus" => "0-1,3",
            "placement" => "pin-each",
            "exclusive" => "true",
            "nice" => "-5",
            "sched_policy" => "batch",
            "panic_policy" => "abort",
            "adaptive_limit" => "gradient2, 2",
            "adaptive_signal" => "end_to_end",
            "cpu_limit" => "0.5",
            "cpu_limit_best_effort" => "true",
            "cpu_limit_parent" => "/sys/fs/cgroup/cpu",
            "cpu_limit_period" => "10ms",
            "key_order" => "fifo",
            "key_weights" => "gold=4, silver=2",
            _ => "4",
        };
        for s in POOL_SETTINGS {
            let p = PoolBuilder::new("p".to_owned());
            assert!(p.set(s.key, sample(s.key)).is_ok(), "{}", s.key);
        }
    }

    #[test]
    fn text_values() {
        let p = PoolBuilder::new("p".to_owned());
        let p = p.set("elastic", " 2 , 8 ").unwrap();
        assert_eq!((p.0.threads, p.0.max_threads), (2, Some(8)));
        let p = p.set("cpus", "0-2,5").unwrap();
        assert_eq!(p.0.cpu.cpus.as_ref().unwrap().to_string(), "0-2,5");
        let p = p.set("codel", "5ms,100ms").unwrap();
        assert_eq!(
            p.0.codel.map(|c| (c.target, c.interval)),
            Some((Duration::from_millis(5), Duration::from_millis(100)))
        );
        let err = p.clone().set("threads", "two").unwrap_err();
        assert_eq!(
            (err.pool(), err.key(), err.value()),
            (Some("p"), "threads", "two")
        );
        assert_eq!(
            err.to_string(),
            "pool \"p\": threads = \"two\": \"two\" is not a count (a whole number, 0 or more)"
        );
        let err = p.clone().set("colour", "red").unwrap_err();
        assert!(
            err.message().contains("known keys: threads, elastic"),
            "{err}"
        );
        let err = p.clone().set("elastic", "1,2,queue=0").unwrap_err();
        assert!(err.to_string().contains("\"1,2,queue=0\""), "{err}");
        let err = p.set("max_queue_wait", "5ms,threads=64").unwrap_err();
        assert!(err.message().contains("\"5ms,threads=64\""), "{err}");
        let b = RuntimeBuilder::new().set("metrics", "false").unwrap();
        assert!(!b.metrics);
        let b = b.set("latency_buckets", "1ms, 10ms,1s").unwrap();
        let ms = Duration::from_millis;
        assert_eq!(b.latency_buckets, [ms(1), ms(10), ms(1000)]);
        let err = RuntimeBuilder::new()
            .set("latency_buckets", "1ms,x")
            .unwrap_err();
        assert!(err.message().contains("\"x\""), "{err}");
        assert!(RuntimeBuilder::new().set("threads", "1").is_err());
    }
}
