//! # bulkhead
//!
//! Named thread pools ("bulkheads") that keep CPU-heavy and blocking workloads apart, so a
//! runaway workload can flood only its own compartment. Each pool owns its OS threads and a
//! **bounded** queue; when the queue is full, work is refused at once and handed back to the
//! caller, never silently dropped and never left blocking the caller without bound.
//!
//! ## A first pool
//!
//! ```
//! use std::time::Duration;
//! use bulkhead::Runtime;
//!
//! let rt = Runtime::builder()
//!     .pool("api", |p| p.threads(2).queue_capacity(256))
//!     .pool("thumbnails", |p| {
//!         p.threads(1).queue_capacity(32).max_queue_wait(Duration::from_millis(200))
//!     })
//!     .build()?; // a BuildError names the pool and the setting at fault
//!
//! let api = rt.pool("api")?; // an unknown name is an error naming it
//! let handle = api.try_submit(|| 6 * 7)?;
//! assert_eq!(handle.join()?, 42);
//!
//! api.execute(|| println!("fire and forget"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Refusal and backpressure
//!
//! Submissions block only as long as you ask. [`Pool::try_submit`] and [`Pool::execute`]
//! refuse at once when the pool is full; [`Pool::submit_timeout`] and
//! [`Pool::execute_timeout`] wait at most their timeout; [`Pool::submit`] and
//! [`Pool::submit_async`] wait for room (below). A refusal is a [`SubmitError`] that gives the closure back, so
//! the caller decides: retry, fall back, or run it itself.
//!
//! ```
//! use std::sync::mpsc;
//! use bulkhead::Runtime;
//!
//! let rt = Runtime::builder().pool("batch", |p| p.threads(1).queue_capacity(1)).build()?;
//! let batch = rt.pool("batch")?;
//!
//! // Occupy the only worker, then fill the one queue slot.
//! let (release, blocked) = mpsc::channel::<()>();
//! let (started_tx, started) = mpsc::channel();
//! batch.execute(move || { started_tx.send(()).unwrap(); blocked.recv().ok(); })?;
//! started.recv()?;
//! batch.execute(|| ())?;
//!
//! // The queue is full: refused at once, and the closure comes back.
//! let err = batch.try_submit(|| "work").unwrap_err();
//! assert!(err.is_full());
//! let work = err.into_inner();
//! assert_eq!(work(), "work"); // ran here instead
//! release.send(())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Waiting for room, from threads and from async code, and fan-out
//!
//! When waiting is the right answer, wait for room instead of handling refusals by hand:
//! [`Pool::submit`] blocks the calling thread until a slot frees, [`Pool::submit_async`]
//! awaits one without blocking the executor (and is cancel-safe: dropping the future submits
//! nothing), and [`Pool::map`] fans an iterator out over the pool with back-pressure, results
//! in order. All three are refused, work handed back, only when the pool shuts down.
//!
//! ```
//! # let rt = bulkhead::Runtime::builder().pool("cpu", |p| p.threads(2).queue_capacity(2)).build()?;
//! let cpu = rt.pool("cpu")?;
//! // A thousand items through a pool that holds four at once.
//! let lengths = cpu.map((0..1_000).map(|n| n.to_string()), |s| s.len());
//! assert_eq!(lengths[999].as_ref().ok(), Some(&3));
//!
//! // From async code (any executor; tokio here).
//! let tokio = tokio::runtime::Builder::new_current_thread().build()?;
//! let answer = tokio.block_on(async {
//!     let handle = cpu.submit_async(|| 6 * 7).await?; // waits for room, not a thread
//!     Ok::<_, Box<dyn std::error::Error>>(handle.await?)
//! })?;
//! assert_eq!(answer, 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Handles and panics
//!
//! A [`TaskHandle`] can be joined (with or without a timeout), polled without blocking,
//! cancelled before the task starts, or `.await`ed from any async executor. A panicking task
//! never kills its worker: the panic is caught and its payload handed to the handle.
//!
//! ```
//! # let rt = bulkhead::Runtime::builder().pool("p", |p| p).build()?;
//! let pool = rt.pool("p")?;
//! let handle = pool.try_submit(|| -> u32 { panic!("bad input") })?;
//! let err = handle.join().unwrap_err();
//! assert_eq!(err.panic_message(), Some("bad input"));
//! assert_eq!(pool.try_submit(|| 1)?.join()?, 1); // the worker goes on
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Shutdown
//!
//! [`Runtime::shutdown`] stops intake and runs what is queued; [`Runtime::shutdown_timeout`]
//! also returns within about its timeout when tasks hang, cancelling what is still queued and
//! naming the workers stuck in user code. Dropping the runtime does the latter with the
//! builder's [`drop_timeout`](RuntimeBuilder::drop_timeout) (5 s by default).
//!
//! ```
//! use std::time::Duration;
//! # let rt = bulkhead::Runtime::builder().pool("p", |p| p).build()?;
//! rt.pool("p")?.execute(|| ())?;
//! let report = rt.shutdown_timeout(Duration::from_secs(5));
//! assert_eq!(report.completed(), 1);
//! assert!(report.is_clean());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## CPU sets
//!
//! On Linux a pool can be given its own CPUs ([`PoolBuilder::cpus`]), with every worker free
//! to run anywhere in the set or each pinned to one CPU of it ([`Placement`]); it can claim
//! them [`exclusive`](PoolBuilder::exclusive)ly, and run at a lower priority
//! ([`nice`](PoolBuilder::nice), [`SchedPolicy`]) so that a best-effort bulkhead yields to a
//! latency-critical one. `build()` checks every CPU against the ones this process may use
//! ([`CpuSet::available`]) and fails if the OS refuses a setting; [`Pool::workers`] reads
//! back what each worker got. `docs/CPU_SETS.md` discusses choosing sets; off Linux these
//! settings are an [`Unsupported`](BuildErrorKind::Unsupported) build error.
//!
//! ```
//! use bulkhead::{CpuSet, Placement, Runtime, SchedPolicy};
//!
//! # #[cfg(target_os = "linux")] {
//! let available = CpuSet::available()?; // e.g. "0-7", or "0" under `taskset -c 0`
//! // Three quarters for the API, the rest for batch work; on one CPU both share it.
//! let (api, batch) = match CpuSet::partition(&available, &[("api", 3), ("batch", 1)]) {
//!     Ok(parts) => (parts[0].1.clone(), parts[1].1.clone()),
//!     Err(_) => (available.clone(), available.clone()),
//! };
//! let rt = Runtime::builder()
//!     .pool("api", |p| p.threads(api.len()).cpus(api.clone()).placement(Placement::PinEach))
//!     .pool("batch", |p| p.cpus(batch.clone()).nice(10).sched_policy(SchedPolicy::Batch))
//!     .build()?;
//!
//! for w in rt.pool("batch")?.workers() {
//!     // Read back from the OS, not echoed from the configuration.
//!     assert_eq!(w.affinity.as_ref(), Some(&batch));
//!     assert_eq!((w.nice, w.sched_policy), (Some(10), Some(SchedPolicy::Batch)));
//! }
//! let cpu = rt.pool("api")?.try_submit(bulkhead::current_cpu)?.join()?;
//! assert!(cpu.is_some_and(|c| api.contains(c)));
//!
//! // A CPU this process may not use is an error naming it, never silently dropped.
//! let err = Runtime::builder().pool("x", |p| p.cpus(CpuSet::new([4096]))).build().unwrap_err();
//! assert!(err.to_string().contains("CPU 4096"));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Accounting
//!
//! Every submitted task ends exactly one way: completed, panicked, expired, cancelled, or
//! refused with its closure handed back. [`Pool::stats`] counts each, with the queue length
//! and busy workers; see [`PoolStats`] for the identity they satisfy.
//!
//! ```
//! # let rt = bulkhead::Runtime::builder().pool("p", |p| p).build()?;
//! # let pool = rt.pool("p")?;
//! pool.try_submit(|| ())?.join()?;
//! # // The handle resolves just before the worker counts the outcome.
//! # while pool.stats().completed < 1 { std::thread::yield_now(); }
//! let stats = pool.stats();
//! assert_eq!((stats.submitted, stats.completed), (1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Overload control
//!
//! Beyond the bounded queue, each pool may opt in to: queue-delay shedding (CoDel) that drains
//! a standing queue instead of serving only stale work, a shed handler that receives every
//! fire-and-forget task the pool did not run, elastic thread counts for blocking work, a
//! replacement budget for workers stuck in a task, and live resizing. docs/OVERLOAD.md says
//! when to use each and what it costs.
//!
//! ```
//! use std::time::Duration;
//! use bulkhead::{Runtime, ShedTask};
//!
//! let rt = Runtime::builder()
//!     .pool("rpc", |p| {
//!         p.threads(2)
//!             .queue_capacity(1024)
//!             .codel(Duration::from_millis(5), Duration::from_millis(100))
//!             .on_shed(|t: ShedTask| eprintln!("{}: not run: {}", t.pool, t.reason))
//!     })
//!     .pool("downstream", |p| {
//!         p.elastic(1, 16) // threads start before work queues; 16 is a hard wall
//!             .keep_alive(Duration::from_secs(30))
//!             .stuck_after(Duration::from_secs(5))
//!             .replacement_budget(2) // at most 2 extra threads for hung calls
//!             .max_threads_limit(32) // allows set_thread_range up to 32
//!     })
//!     .build()?;
//! let downstream = rt.pool("downstream")?;
//! downstream.set_thread_range(2, 32)?; // live, validated like the build
//! assert_eq!(downstream.threads(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Tenants in one pool: keys, caps and a fair order
//!
//! A pool shared by many tenants (customers, routes) can keep one of them from taking it
//! all: submit through [`Pool::key`], cap each key's tasks in flight
//! ([`PoolBuilder::key_cap`]), and let the pool serve keys in weighted round robin
//! ([`KeyOrder::Fair`], the default) so a flooding key gets its share and no more while the
//! others wait. A key over its cap is refused at once with the closure back
//! ([`RefusalReason::KeyCap`]); per-key counts, bounded to the most loaded keys, are in
//! [`PoolStats::keys`]. Unkeyed submissions are unaffected and pay nothing.
//!
//! ```
//! use bulkhead::Runtime;
//!
//! let rt = Runtime::builder()
//!     .pool("reports", |p| p.threads(4).queue_capacity(64).key_cap(2).key_weight("gold", 2))
//!     .build()?;
//! let reports = rt.pool("reports")?;
//! let mine = reports.key("tenant-7").try_submit(|| "rendered")?;
//! assert_eq!(mine.join()?, "rendered");
//! let stats = reports.stats();
//! assert_eq!(stats.keys[0].key.as_deref(), Some("tenant-7"));
//! assert_eq!(stats.keys[0].completed, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Metrics
//!
//! A supervisor thread samples every pool (every second by default, down to 10 ms):
//! queue depth, busy workers, outcome counters, CPU time and the CPUs the workers ran on,
//! latency histograms (queue wait, run time, end to end; cumulative and last interval),
//! stuck tasks and a [`Health`] state. [`Runtime::snapshot`] returns it all as plain data
//! ([`RuntimeSnapshot`]), which renders as Prometheus text ([`RuntimeSnapshot::to_prometheus`])
//! or, with the `serde` feature, JSON. Listeners registered with
//! [`RuntimeBuilder::on_event`] hear about refusals, panics, expiries, stuck tasks and
//! recoveries on the supervisor thread, never on a submitting or worker thread.
//! Latencies are exported as Prometheus histograms whose `le` buckets
//! ([`RuntimeBuilder::latency_buckets`]) add up across a fleet and a time window; with the
//! `metrics` feature the same figures also reach any recorder of the `metrics` facade.
//! `docs/METRICS.md` explains every metric.
//!
//! ```
//! use std::time::Duration;
//! use bulkhead::{Event, Health, Runtime};
//!
//! let rt = Runtime::builder()
//!     .supervisor_interval(Duration::from_millis(100)) // default 1 s
//!     .pool("api", |p| p.threads(2).stuck_after(Duration::from_secs(10)))
//!     .on_event(|e: &Event| eprintln!("bulkhead: {e}"))
//!     .build()?;
//! let api = rt.pool("api")?;
//! for i in 0..10 {
//!     api.try_submit(move || i * 2)?.join()?;
//! }
//!
//! let snap = rt.snapshot();
//! let pool = snap.pool("api").unwrap();
//! assert_eq!(pool.stats.completed, 10);
//! assert_eq!(pool.health, Health::Healthy);
//! let latency = pool.latency.as_ref().unwrap(); // None with `.metrics(false)`
//! assert_eq!(latency.cumulative.end_to_end.count, 10);
//! println!("p99 queue wait: {:?}", latency.cumulative.queue_wait.p99);
//!
//! // Serve this on /metrics, with bulkhead::PROMETHEUS_CONTENT_TYPE as its Content-Type.
//! let text = snap.to_prometheus();
//! assert!(text.contains("bulkhead_queue_depth{pool=\"api\"} 0"));
//! assert!(text.contains("bulkhead_run_seconds_bucket{pool=\"api\",le=\"+Inf\"} 10"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Fitting into a service
//!
//! Per pool, all optional and free when unset ([`PoolBuilder::context`] has the details):
//!
//! - [`PoolBuilder::context`] carries context from the submitting thread into the task (a
//!   `tracing` span, a request id): *capture* runs at submission, *install* on the worker
//!   around the task, and its guard *clears* afterwards, on every path (run, panic, expiry,
//!   cancellation).
//! - [`PoolBuilder::on_thread_start`] and [`on_thread_stop`](PoolBuilder::on_thread_stop) run
//!   on each worker thread, the start hook after CPU placement.
//! - [`PoolBuilder::panic_policy`] decides what a panic in a task *without* a handle does:
//!   count it (the default), call a handler with the payload, or abort the process.
//!
//! ```
//! use std::cell::Cell;
//! use bulkhead::{PanicPolicy, Runtime};
//! thread_local!(static REQUEST_ID: Cell<u64> = const { Cell::new(0) });
//!
//! let rt = Runtime::builder()
//!     .pool("api", |p| {
//!         p.threads(2)
//!             .context(
//!                 || REQUEST_ID.with(Cell::get), // on the submitting thread
//!                 |id| {                          // on the worker, around the task
//!                     REQUEST_ID.with(|r| r.set(id));
//!                     bulkhead::on_drop(|| REQUEST_ID.with(|r| r.set(0)))
//!                 },
//!             )
//!             .on_thread_start(|w| eprintln!("{} up on {:?}", w.thread_name(), w.info().affinity))
//!             .panic_policy(PanicPolicy::handler(|pool, _payload| eprintln!("panic in {pool}")))
//!     })
//!     .build()?;
//!
//! REQUEST_ID.with(|r| r.set(7));
//! let seen = rt.pool("api")?.try_submit(|| REQUEST_ID.with(Cell::get))?.join()?;
//! assert_eq!(seen, 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Bulkheads talk through queues, never by a thread of one parking on another:
//! [`TaskHandle::then_in`] queues a follow-up onto another pool when a task ends, with a
//! non-blocking send. If that pool refuses, the continuation's handle says so
//! ([`TaskError::Refused`]) and gives the continuation back. Joining a handle of your own pool
//! from one of its workers, when that would leave no worker to run it, returns
//! [`TaskError::WouldDeadlock`] instead of hanging.
//!
//! ```
//! use bulkhead::{Runtime, TaskError};
//! let rt = Runtime::builder()
//!     .pool("db", |p| p.threads(1))
//!     .pool("render", |p| p.threads(1))
//!     .build()?;
//! let render = rt.pool("render")?;
//! let page = rt.pool("db")?
//!     .try_submit(|| vec!["row 1", "row 2"])?
//!     .then_in(&render, |rows| match rows {
//!         Ok(rows) => format!("<ul>{} rows</ul>", rows.len()),
//!         Err(e) => format!("error: {e}"),
//!     });
//! assert_eq!(page.join()?, "<ul>2 rows</ul>");
//!
//! // The only worker of "render" waiting on a task queued behind itself: refused, not hung.
//! let inner = render.clone();
//! let joined = render.try_submit(move || inner.try_submit(|| 1).unwrap().join())?.join()?;
//! assert!(matches!(joined, Err(TaskError::WouldDeadlock)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `config` feature, a whole runtime loads from a TOML file
//! (`RuntimeBuilder::from_toml_file`, every error reported at once with its pool, key and
//! line; a `[defaults]` table that every pool inherits), and
//! [`RuntimeBuilder::configure_pool`] adds the hooks that only code can set.
//! `examples/service.rs` is an axum service on tokio whose handlers `.await` the handles of
//! two bulkheads, answer 503 with `Retry-After` on a refusal and serve `/metrics`; it builds
//! its runtime in code (`build_runtime`), not from a file.
//!
//! The `Send + 'static` bounds on submitted closures are checked at compile time:
//!
//! ```compile_fail
//! # let rt = bulkhead::Runtime::builder().pool("p", |p| p).build().unwrap();
//! let local = String::from("borrowed");
//! let r = &local;
//! rt.pool("p").unwrap().execute(move || println!("{r}")); // `local` does not live long enough
//! ```
//!
//! ```compile_fail
//! # let rt = bulkhead::Runtime::builder().pool("p", |p| p).build().unwrap();
//! let rc = std::rc::Rc::new(1);
//! rt.pool("p").unwrap().execute(move || drop(rc)); // `Rc` is not `Send`
//! ```
//!
//! ## Further reading
//!
//! The `docs/` folder of the repository (also in the published crate's source) goes
//! deeper than this tour: `docs/ARCHITECTURE.md` (the modules, a task's path, the
//! admission and shutdown protocols), `docs/METRICS.md` (every metric, its unit and how it
//! is obtained), `docs/OVERLOAD.md` (CoDel, elastic pools, replacement, resizing),
//! `docs/CPU_SETS.md`, `docs/SERVICES.md` (configuration files, hooks, the service example),
//! `docs/RELIABILITY.md` (how the crate is tested: Miri, ThreadSanitizer, soak) and
//! `docs/BENCHMARKS.md` (measured figures).
//!
//! ## Cargo features
//!
//! None is on by default; the runtime itself needs none.
//!
//! | feature   | brings |
//! |-----------|--------|
//! | `config`  | `RuntimeBuilder::from_toml_file`/`from_toml_str` and `RuntimeBuilder::env_overrides` (the `config` module), through the same settings table as [`PoolBuilder::set`]; depends on `toml` |
//! | `serde`   | `Serialize`/`Deserialize` for the snapshot types, and `RuntimeSnapshot::to_json`/`from_json`; depends on `serde`, `serde_json` |
//! | `tracing` | every supervisor [`Event`] is also emitted as a `tracing` event (target `"bulkhead"`) |
//! | `metrics` | at every supervisor tick, counters, gauges and latency histograms are published through the [`metrics`](https://docs.rs/metrics) facade, with a `pool` label (docs/METRICS.md); depends on `metrics` |
//! | `cli`     | the `bulkhead-bench` load-generation binary (docs/BENCHMARKS.md); turns on `config` and `serde`, and pulls in `clap` and `core_affinity` for the binary only |
//!
//! Without `config`, settings can still be given by name: [`PoolBuilder::set`] and
//! [`RuntimeBuilder::set`] read the same keys and text syntax as the file and the
//! environment ([`builder::pool_settings`] lists them).

#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod adaptive;
mod buckets;
mod builder;
mod cgroup;
#[cfg(feature = "config")]
mod config;
mod cpuset;

mod error;
mod events;
mod export;
mod hooks;
mod job;
mod keys;
mod metrics;
mod overload;
mod placement;
mod pool;
mod runtime;
mod stats;
mod supervisor;
mod sync;
mod sys;
mod task;
mod timer;
mod trampoline;
mod unwind;
mod worker;

pub use adaptive::{LimitAlgorithm, LimitSignal};
pub use buckets::{LatencyBuckets, LatencyHistograms};
pub use builder::{
    limits, parse_duration, pool_settings, runtime_settings, PoolBuilder, RuntimeBuilder,
    SettingError,
};
#[cfg(feature = "config")]
pub use config::{ConfigError, ConfigIssue};
pub use cpuset::{CpuSet, ParseCpuSetError, PartitionError};
pub use error::{
    BuildError, BuildErrorKind, RefusalReason, RefusedContinuation, ResizeError, ResizeErrorKind,
    SubmitError, TaskError, UnknownPool,
};
pub use events::{Event, EventListener};
pub use export::PROMETHEUS_CONTENT_TYPE;
pub use hooks::{on_drop, OnDrop, PanicHandler, PanicPolicy, WorkerId, WorkerThread};
pub use keys::KeyOrder;
pub use metrics::{
    CpuCapStatus, CpuThrottling, Health, LatencySummary, LatencyView, PoolLatency, PoolSnapshot,
    RuntimeSnapshot, StuckTask,
};
pub use overload::{ShedReason, ShedTask};
pub use placement::{current_cpu, Placement, SchedPolicy};
pub use pool::{Admission, Keyed, Pool};
pub use runtime::{PoolReport, Runtime, ShutdownReport, StuckWorker};
pub use stats::{KeyStats, PoolStats, WorkerInfo};
pub use task::TaskHandle;
pub use worker::current_worker;
