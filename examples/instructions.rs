//! A deterministic workload for instruction counts of the hot path, under
//! `valgrind --tool=callgrind`: one pool of 1 thread; the worker is held on a gate while N
//! empty `execute` tasks are queued, then the gate opens and the worker drains them.
//!
//! ```text
//! cargo build --release --example instructions
//! valgrind --tool=callgrind target/release/examples/instructions SHAPE METRICS N
//! ```
//!
//! SHAPE is `unboxed` (a closure), `boxed` (an already boxed `Box<dyn FnOnce() + Send>`
//! handed to `execute`; before `Pool::execute_boxed` existed `execute` boxed it again) or
//! `execute_boxed` (the same box through [`Pool::execute_boxed`](bulkhead::Pool::execute_boxed)),
//! `keyed` (one key, through [`Pool::key`](bulkhead::Pool::key)) or `keyed100` (100 keys in
//! turn, fair order); METRICS is
//! `on` or `off`. Per-task cost: the difference of the totals for two N (e.g. 20,000 and
//! 120,000) divided by the difference of N, which removes start-up and shutdown.

use std::sync::mpsc;
use std::time::Duration;

use bulkhead::Runtime;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shape = args.first().map_or("unboxed", |s| s.as_str()).to_owned();
    let metrics = args.get(1).map_or(true, |s| s != "off");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let rt = Runtime::builder()
        .metrics(metrics)
        .pool("p", |p| p.threads(1).queue_capacity(n + 1))
        .build()
        .expect("runtime");
    let pool = rt.pool("p").expect("pool");
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    pool.execute(move || {
        let _ = gate_rx.recv();
    })
    .expect("gate");
    let keys: Vec<String> = (0..100).map(|k| format!("tenant-{k}")).collect();
    for i in 0..n {
        // Every task captures a word, so that its box is a real allocation (a box of a
        // zero-sized closure allocates nothing).
        let task = move || {
            std::hint::black_box(i);
        };
        let ok = match shape.as_str() {
            "unboxed" => pool.execute(task).is_ok(),
            "boxed" => {
                let b: Box<dyn FnOnce() + Send> = Box::new(task);
                pool.execute(b).is_ok()
            }
            "execute_boxed" => {
                let b: Box<dyn FnOnce() + Send> = Box::new(task);
                pool.execute_boxed(b).is_ok()
            }
            "keyed" => pool.key("tenant").execute(task).is_ok(),
            "keyed100" => {
                let key = &keys[i % keys.len()];
                pool.key(key).execute(task).is_ok()
            }
            other => panic!("unknown shape {other}"),
        };
        assert!(ok, "refused");
    }
    gate_tx.send(()).expect("open the gate");
    // One worker, FIFO: once this task has run, every task before it has.
    pool.submit_timeout(|| (), Duration::from_secs(600))
        .expect("last task")
        .join()
        .expect("joined");
    rt.shutdown();
}
