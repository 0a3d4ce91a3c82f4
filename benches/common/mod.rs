//! The pools every benchmark compares, behind one small interface, built the same way for
//! each: N worker threads, one submitter, a queue of 1024 where the pool has a bound.
//!
//! - `bare`: N std threads looping on one crossbeam `bounded(1024)` channel of boxed
//!   closures: the hand-off floor any pool pays.
//! - `bulkhead`: one pool of N threads, queue capacity 1024, `execute`, falling back to
//!   `execute_timeout` (which parks until there is room) when the queue is full.
//! - `threadpool`: `threadpool::ThreadPool::new(N)` (unbounded queue).
//! - `rayon`: `rayon::ThreadPool` with N threads, `spawn` (unbounded, work-stealing).
//! - `tokio`: `spawn_blocking` on a runtime with `max_blocking_threads(N)`.
#![allow(dead_code, unreachable_pub)]

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

pub const QUEUE: usize = 1024;

/// How long a bounded submission may wait for room before the bench gives up.
const LONG: std::time::Duration = std::time::Duration::from_secs(60);

/// A boxed task, as many services hand them to a pool.
pub type Job = Box<dyn FnOnce() + Send>;

/// A pool under test. `spawn` must not drop work: pools with a bound retry until accepted.
pub enum Anchor {
    Bare {
        tx: Option<Sender<Job>>,
        threads: Vec<JoinHandle<()>>,
    },
    Bulkhead {
        // Field order: the pool handle is dropped before the runtime.
        pool: bulkhead::Pool,
        rt: bulkhead::Runtime,
    },
    Threadpool(threadpool::ThreadPool),
    Rayon(rayon::ThreadPool),
    Tokio(tokio::runtime::Runtime),
}

pub const NAMES: [&str; 5] = ["bare", "bulkhead", "threadpool", "rayon", "tokio"];

impl Anchor {
    pub fn new(name: &str, threads: usize) -> Anchor {
        match name {
            "bare" => {
                let (tx, rx) = bounded::<Job>(QUEUE);
                let threads = (0..threads)
                    .map(|_| {
                        let rx = rx.clone();
                        std::thread::spawn(move || {
                            for job in rx {
                                job();
                            }
                        })
                    })
                    .collect();
                Anchor::Bare {
                    tx: Some(tx),
                    threads,
                }
            }
            "bulkhead" => Self::bulkhead(bulkhead::Runtime::builder(), threads),
            "threadpool" => Anchor::Threadpool(threadpool::ThreadPool::new(threads)),
            "rayon" => Anchor::Rayon(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap(),
            ),
            "tokio" => Anchor::Tokio(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .max_blocking_threads(threads)
                    .build()
                    .unwrap(),
            ),
            other => panic!("unknown anchor {other}"),
        }
    }

    /// A bulkhead pool built from `builder` (so callers can set runtime options).
    pub fn bulkhead(builder: bulkhead::RuntimeBuilder, threads: usize) -> Anchor {
        let rt = builder
            .pool("bench", |p| p.threads(threads).queue_capacity(QUEUE))
            .build()
            .unwrap();
        let pool = rt.pool("bench").unwrap();
        Anchor::Bulkhead { pool, rt }
    }

    #[inline]
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) {
        match self {
            Anchor::Bare { tx, .. } => tx.as_ref().unwrap().send(Box::new(f)).unwrap(),
            Anchor::Bulkhead { pool, .. } => {
                // Non-blocking first; when the queue is full, wait for room (park) like the
                // bare loop's blocking send, rather than spinning on refusals.
                if let Err(e) = pool.execute(f) {
                    if pool.execute_timeout(e.into_inner(), LONG).is_err() {
                        panic!("pool refused for {LONG:?}");
                    }
                }
            }
            Anchor::Threadpool(p) => p.execute(f),
            Anchor::Rayon(p) => p.spawn(f),
            Anchor::Tokio(rt) => drop(rt.spawn_blocking(f)),
        }
    }

    /// Submits an already boxed task: the bare loop sends the box as it is; bulkhead takes
    /// it through its boxed path; the others box it again as they would any closure.
    #[inline]
    pub fn spawn_boxed(&self, f: Job) {
        match self {
            Anchor::Bare { tx, .. } => tx.as_ref().unwrap().send(f).unwrap(),
            Anchor::Bulkhead { pool, .. } => {
                if let Err(e) = pool.execute_boxed(f) {
                    if pool.execute_boxed_timeout(e.into_inner(), LONG).is_err() {
                        panic!("pool refused for {LONG:?}");
                    }
                }
            }
            Anchor::Threadpool(p) => p.execute(f),
            Anchor::Rayon(p) => p.spawn(f),
            Anchor::Tokio(rt) => drop(rt.spawn_blocking(f)),
        }
    }
}

impl Drop for Anchor {
    fn drop(&mut self) {
        if let Anchor::Bare { tx, threads } = self {
            tx.take();
            for t in threads.drain(..) {
                t.join().unwrap();
            }
        }
    }
}
