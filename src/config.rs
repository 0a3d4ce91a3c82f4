//! Configuring a runtime from a TOML file (cargo feature `config`).
#![cfg_attr(docsrs, doc(cfg(feature = "config")))]
//!
//! The file format is documented on [`RuntimeBuilder::from_toml_str`].

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

#[cfg(doc)]
use crate::builder::parse_duration;
use crate::builder::table::{self, Setting, Value, POOL_SETTINGS, RUNTIME_SETTINGS};
use crate::builder::{PoolBuilder, RuntimeBuilder};

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

    /// Applies every key of `table` to `b` through the settings table; a key it does not
    /// know, or a value its setter refuses, is an issue on that key's or value's line.
    /// Returns where each key starts, to place `build()`'s errors later.
    fn apply<B: Clone>(
        &mut self,
        settings: &[Setting<B>],
        pool: Option<&str>,
        table: &DeTable<'_>,
        mut b: B,
    ) -> (B, Vec<(String, usize)>) {
        let mut lines = Vec::new();
        for (k, v) in table.iter() {
            let key = k.get_ref().as_ref();
            lines.push((key.to_owned(), k.span().start));
            let setting = match table::find(settings, key) {
                Ok(setting) => setting,
                Err(msg) => {
                    self.issue(pool, Some(key), k.span().start, msg);
                    continue;
                }
            };
            match value(v.get_ref()).and_then(|value| (setting.set)(b.clone(), &value)) {
                Ok(next) => b = next,
                Err(msg) => self.issue(pool, Some(key), v.span().start, msg),
            }
        }
        (b, lines)
    }
}

/// A TOML value as the settings table takes it.
fn value(v: &DeValue<'_>) -> Result<Value, String> {
    Ok(match v {
        DeValue::String(s) => Value::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(n) => Value::Int(n),
            Err(_) => return Err(format!("{i} is out of range")),
        },
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) => Value::Float(x),
            Err(_) => return Err(format!("{f} is not a number")),
        },
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| value(item.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        other => Value::Other(kind(other)),
    })
}

/// Where a pool's table and each of its keys start, to place build errors on their line.
struct PoolLines {
    name: String,
    keys: Vec<(String, usize)>,
    table_at: usize,
}

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

#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
impl RuntimeBuilder {
    /// Reads a runtime configuration from TOML text. `source_name` (a file name, say)
    /// prefixes the error message.
    ///
    /// # Format
    ///
    /// ```toml
    /// [runtime]
    /// drop_timeout = "5s"
    /// latency_buckets = ["1ms", "10ms", "100ms", "1s"]
    ///
    /// [defaults]              # every pool starts from these; its own keys override them
    /// queue_capacity = 64
    /// stuck_after = "10s"
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
    /// with the same defaults and rules: the keys and how each value is read come from one
    /// table, the one [`PoolBuilder::set`] and [`RuntimeBuilder::set`] read (an unknown key's
    /// error lists the known ones). `[runtime]` takes every runtime setting
    /// ([`runtime_settings`](crate::runtime_settings): `drop_timeout`, `metrics`,
    /// `supervisor_interval`, `latency_buckets`); `[defaults]` takes every pool key, and each
    /// pool starts from it, its own keys overriding (like the default configuration of a
    /// Resilience4j registry); `[pools.NAME]` takes every pool key
    /// ([`pool_settings`](crate::pool_settings)). Pools are registered in file order. Durations are strings with a
    /// unit, as [`parse_duration`] reads them: `"250us"`, `"200ms"`, `"1.5s"`, `"2m"`, `"1h"`.
    ///
    /// Loading reports **every** problem at once, each with the pool, the key and the line:
    /// syntax errors, unknown keys (an error, never ignored), wrong types, and every value that
    /// `build()` would refuse. Environment variables can override every key
    /// ([`RuntimeBuilder::env_overrides`]; pass it `std::env::vars_os()`).
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
        let mut runtime_lines: Vec<(String, usize)> = Vec::new();
        // `[defaults]` first, wherever it stands in the file: every pool starts from it.
        let mut defaults: Vec<(&Setting<PoolBuilder>, Value)> = Vec::new();
        let mut default_lines: Vec<(String, usize)> = Vec::new();
        if let Some((_, v)) = doc
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == "defaults")
        {
            if let Some(t) = loader.table(None, "defaults", v) {
                let template = PoolBuilder::new("defaults".to_owned());
                let (_, lines) = loader.apply(POOL_SETTINGS, None, t, template);
                default_lines = lines;
                // The values that applied (the others are issues already).
                for (k, v) in t.iter() {
                    if let (Ok(setting), Ok(value)) =
                        (table::find(POOL_SETTINGS, k.get_ref()), value(v.get_ref()))
                    {
                        let probe = PoolBuilder::new("defaults".to_owned());
                        if (setting.set)(probe, &value).is_ok() {
                            defaults.push((setting, value));
                        }
                    }
                }
            }
        }
        for (k, v) in doc.get_ref().iter() {
            match k.get_ref().as_ref() {
                "defaults" => {}
                "runtime" => {
                    if let Some(t) = loader.table(None, "runtime", v) {
                        let (b, lines) = loader.apply(RUNTIME_SETTINGS, None, t, builder);
                        builder = b;
                        runtime_lines = lines;
                    }
                }
                "pools" => {
                    let Some(pools) = loader.table(None, "pools", v) else {
                        continue;
                    };
                    for (name, pv) in pools.iter() {
                        let name_str = name.get_ref().as_ref();
                        if let Some(t) = loader.table(Some(name_str), name_str, pv) {
                            let mut p = PoolBuilder::new(name_str.to_owned());
                            for (setting, value) in &defaults {
                                // Checked on the template above: it applies.
                                if let Ok(next) = (setting.set)(p.clone(), value) {
                                    p = next;
                                }
                            }
                            let (p, lines) = loader.apply(POOL_SETTINGS, Some(name_str), t, p);
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
                        format!("unknown top-level key {other:?} (use [runtime], [defaults] and [pools.NAME])");
                    loader.issue(None, Some(other), k.span().start, msg);
                }
            }
        }
        // What build() would refuse, each placed on the line of its key.
        if loader.issues.is_empty() || !builder.pools.is_empty() {
            for e in builder.problems() {
                let key_at = |keys: &[(String, usize)]| {
                    keys.iter().find(|(k, _)| k == e.field()).map(|(_, at)| *at)
                };
                let at = match e.pool() {
                    // The pool's own key, else the default it inherited, else its table.
                    Some(p) => key_lines.iter().find(|l| l.name == p).map(|l| {
                        key_at(&l.keys)
                            .or_else(|| key_at(&default_lines))
                            .unwrap_or(l.table_at)
                    }),
                    None => key_at(&runtime_lines),
                }
                .unwrap_or(0);
                loader.issue(e.pool(), Some(e.field()), at, e.message().to_owned());
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

    /// Applies environment overrides: `BULKHEAD_<POOL>_<KEY>` for every key of a
    /// `[pools.NAME]` table (`BULKHEAD_API_THREADS=4`, `BULKHEAD_API_MAX_QUEUE_WAIT=200ms`,
    /// `BULKHEAD_API_CPUS=0-3,6`, `BULKHEAD_API_ELASTIC=1,16`), and `BULKHEAD_<KEY>` for
    /// every key of `[runtime]` (`BULKHEAD_DROP_TIMEOUT=2s`). `<KEY>` is the key in upper
    /// case; `<POOL>` is the pool name in upper case with every character that is not a
    /// letter or digit replaced by `_`. A value is read in its key's text syntax, the one of
    /// [`PoolBuilder::set`] (a pair is two values and one comma).
    ///
    /// Pass `std::env::vars_os()`: it never panics, and variables that do not start with
    /// `BULKHEAD_` are skipped whatever their name or value holds. (`std::env::vars()` also
    /// works, but it panics if *any* variable of the process is not valid UTF-8.) Pairs of
    /// `String`s or `&str`s work too, for tests.
    ///
    /// A variable naming an unknown pool or key, holding a bad value, or whose name or value
    /// is not valid UTF-8, is an error naming the variable and the value; none is ignored.
    ///
    /// Two pools whose variables could be confused are an error naming both, whatever the
    /// environment holds (so it shows on the first start, not when someone sets a variable):
    /// `a-b` and `a_b` both read `BULKHEAD_A_B_*`, and `a` and `a_b` both could own
    /// `BULKHEAD_A_B_THREADS`; a pool `drop` would read `BULKHEAD_DROP_TIMEOUT`, the runtime's
    /// `drop_timeout`, if it had a key `timeout`. Rename one of them.
    /// [`build`](RuntimeBuilder::build) alone accepts such names; only the environment's
    /// naming makes them collide.
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
            let text = Value::Text(value.to_owned());
            let issue = |pool: Option<String>, message: String| ConfigIssue {
                pool,
                key: Some(var.to_owned()),
                line: None,
                message: naming_value(value, message),
            };
            // A runtime key first: env_collisions refused pools whose variables could be one.
            if let Some(setting) = RUNTIME_SETTINGS.iter().find(|s| env_name(s.key) == rest) {
                match (setting.set)(self.clone(), &text) {
                    Ok(b) => self = b,
                    Err(message) => issues.push(issue(None, message)),
                }
                continue;
            }
            // At most one pool matches: env_collisions refused prefixes that overlap.
            let found = self.pools.iter_mut().find_map(|p| {
                let prefix = env_name(p.name());
                rest.strip_prefix(&prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .map(|key| (p, key.to_owned()))
            });
            let Some((p, key)) = found else {
                issues.push(issue(
                    None,
                    "names no pool of this configuration".to_owned(),
                ));
                continue;
            };
            let Some(setting) = POOL_SETTINGS.iter().find(|s| env_name(s.key) == key) else {
                let known: Vec<String> = POOL_SETTINGS.iter().map(|s| env_name(s.key)).collect();
                let message = format!("unknown key {key:?} (use {})", known.join(", "));
                issues.push(issue(Some(p.name().to_owned()), message));
                continue;
            };
            match (setting.set)(p.clone(), &text) {
                Ok(next) => *p = next,
                Err(message) => issues.push(issue(Some(p.name().to_owned()), message)),
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
/// `BULKHEAD_A_B_THREADS` could be either's); and a pool variable that is a runtime one.
/// Pools with the very same name are left to `build()`, which reports the duplicate.
fn env_collisions(pools: &[PoolBuilder]) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for p in pools {
        let pe = env_name(p.name());
        for setting in POOL_SETTINGS {
            let var = format!("{pe}_{}", env_name(setting.key));
            if let Some(r) = RUNTIME_SETTINGS.iter().find(|r| env_name(r.key) == var) {
                issues.push(ConfigIssue {
                    pool: Some(p.name().to_owned()),
                    key: None,
                    line: None,
                    message: format!(
                        "pool {:?}'s variable BULKHEAD_{var} is also the runtime's {}; rename the pool",
                        p.name(),
                        r.key
                    ),
                });
            }
        }
    }
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

/// The message of a bad environment value, naming the value if the setter did not.
fn naming_value(value: &str, message: String) -> String {
    if message.contains(&format!("{value:?}")) {
        message
    } else {
        format!("{value:?}: {message}")
    }
}

/// A pool name or key as it appears in a variable's name: upper case, `_` for every
/// character that is not a letter or digit.
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
