//! Model-based randomized test: proptest generates a sequence of operations, each tagged with
//! the thread that performs it, across two pools and three threads: non-blocking and timed
//! submissions with and without handles, cancel, join, join with timeout, panicking and
//! expiring tasks, and shutdown (graceful or timed) at random points.
//!
//! The model knows what each operation may answer: after a shutdown returned, every later
//! submission is refused as "shutting down"; a joined handle answers `AlreadyJoined`; a
//! winning `cancel` means the task never runs and resolves as cancelled. Afterwards every
//! handle is resolved, every task ran at most once and agrees with what its handle said, and
//! each pool's counters add up to exactly the attempts made on it.
//!
//! On failure proptest shrinks the sequence and prints it as a list of `T<thread>: <op>`
//! lines (see docs/RELIABILITY.md for an example). `PROPTEST_CASES=<n>` runs more cases.

mod support;

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bulkhead::{Pool, Runtime, SubmitError, TaskError, TaskHandle};
use proptest::prelude::*;
use support::{wait_until, HANG_GUARD};

const THREADS: u8 = 3;
const POOLS: usize = 2;

/// What a submitted task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Returns,
    Panics,
    /// Sleeps this many milliseconds: long enough for queued tasks of the `slow` pool (whose
    /// maximum queue wait is 1 ms) to expire.
    Sleeps(u8),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    TrySubmit {
        pool: usize,
        task: Task,
    },
    SubmitTimeout {
        pool: usize,
        task: Task,
        ms: u8,
    },
    Execute {
        pool: usize,
        task: Task,
    },
    ExecuteTimeout {
        pool: usize,
        task: Task,
        ms: u8,
    },
    /// Handle ops name a handle by index among the thread's own (modulo their number).
    Cancel {
        handle: usize,
    },
    Join {
        handle: usize,
    },
    JoinTimeout {
        handle: usize,
        ms: u8,
    },
    Shutdown,
    ShutdownTimeout {
        ms: u8,
    },
}

#[derive(Clone, Copy)]
struct Step {
    thread: u8,
    op: Op,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}: {:?}", self.thread, self.op)
    }
}

fn task() -> impl Strategy<Value = Task> {
    prop_oneof![
        4 => Just(Task::Returns),
        2 => Just(Task::Panics),
        2 => (0u8..3).prop_map(Task::Sleeps),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let pool = 0..POOLS;
    prop_oneof![
        6 => (pool.clone(), task()).prop_map(|(pool, task)| Op::TrySubmit { pool, task }),
        3 => (pool.clone(), task(), 0u8..4)
            .prop_map(|(pool, task, ms)| Op::SubmitTimeout { pool, task, ms }),
        3 => (pool.clone(), task()).prop_map(|(pool, task)| Op::Execute { pool, task }),
        2 => (pool, task(), 0u8..4).prop_map(|(pool, task, ms)| Op::ExecuteTimeout { pool, task, ms }),
        3 => (0usize..8).prop_map(|handle| Op::Cancel { handle }),
        3 => (0usize..8).prop_map(|handle| Op::Join { handle }),
        2 => (0usize..8, 0u8..4).prop_map(|(handle, ms)| Op::JoinTimeout { handle, ms }),
        1 => Just(Op::Shutdown),
        1 => (0u8..5).prop_map(|ms| Op::ShutdownTimeout { ms }),
    ]
}

/// Sequences over `threads` threads (1: every step on T0, in order).
fn steps(threads: u8) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0..threads, op()).prop_map(|(thread, op)| Step { thread, op }),
        1..48,
    )
}

/// One task as the test sees it.
struct Probe {
    pool: usize,
    task: Task,
    runs: AtomicU32,
}

/// A handle-bearing task and what its handle said so far.
struct Tracked {
    probe: Arc<Probe>,
    handle: Option<TaskHandle<()>>,
    cancel_won: bool,
    outcome: Option<Result<(), TaskError>>,
}

#[derive(Default)]
struct Tally {
    attempts: [u64; POOLS],
    refused: [u64; POOLS],
    handles: Vec<Tracked>,
    detached: Vec<Arc<Probe>>,
}

fn body(probe: &Arc<Probe>) -> impl FnOnce() + Send + 'static {
    let p = probe.clone();
    move || {
        p.runs.fetch_add(1, Ordering::SeqCst);
        match p.task {
            Task::Returns => {}
            Task::Panics => panic!("model task panics"),
            Task::Sleeps(ms) => std::thread::sleep(Duration::from_millis(ms.into())),
        }
    }
}

/// Checks a refusal: after a shutdown this thread saw return, it must say "shutting down".
fn refused<F>(e: SubmitError<F>, shut: bool, tally: &mut Tally, pool: usize) -> Result<(), String> {
    tally.refused[pool] += 1;
    if shut && !e.is_shutting_down() {
        return Err(format!("refused after shutdown, but as {:?}", e.reason()));
    }
    drop(e.into_inner()); // the closure came back; it is dropped unrun
    Ok(())
}

fn run_thread(pools: &[Pool; POOLS], rt: &Runtime, ops: &[Op]) -> Result<Tally, String> {
    let mut t = Tally::default();
    let mut shut = false;
    for &op in ops {
        match op {
            Op::TrySubmit { pool, task } | Op::SubmitTimeout { pool, task, .. } => {
                let probe = Arc::new(Probe {
                    pool,
                    task,
                    runs: AtomicU32::new(0),
                });
                t.attempts[pool] += 1;
                let r = match op {
                    Op::SubmitTimeout { ms, .. } => {
                        pools[pool].submit_timeout(body(&probe), Duration::from_millis(ms.into()))
                    }
                    _ => pools[pool].try_submit(body(&probe)),
                };
                match r {
                    Ok(h) if shut => {
                        drop(h);
                        return Err("a submission was accepted after shutdown returned".into());
                    }
                    Ok(h) => t.handles.push(Tracked {
                        probe,
                        handle: Some(h),
                        cancel_won: false,
                        outcome: None,
                    }),
                    Err(e) => refused(e, shut, &mut t, pool)?,
                }
            }
            Op::Execute { pool, task } | Op::ExecuteTimeout { pool, task, .. } => {
                let probe = Arc::new(Probe {
                    pool,
                    task,
                    runs: AtomicU32::new(0),
                });
                t.attempts[pool] += 1;
                let r = match op {
                    Op::ExecuteTimeout { ms, .. } => {
                        pools[pool].execute_timeout(body(&probe), Duration::from_millis(ms.into()))
                    }
                    _ => pools[pool].execute(body(&probe)),
                };
                match r {
                    Ok(()) if shut => {
                        return Err("an execution was accepted after shutdown returned".into())
                    }
                    Ok(()) => t.detached.push(probe),
                    Err(e) => refused(e, shut, &mut t, pool)?,
                }
            }
            Op::Cancel { handle } | Op::Join { handle } | Op::JoinTimeout { handle, .. } => {
                let n = t.handles.len();
                if n == 0 {
                    continue;
                }
                let tr = &mut t.handles[handle % n];
                let Some(h) = tr.handle.as_mut() else {
                    continue; // already consumed by a join
                };
                match op {
                    Op::Cancel { .. } => {
                        let won = h.cancel();
                        if won && tr.outcome.is_some() {
                            return Err("cancel won on a handle that had already resolved".into());
                        }
                        tr.cancel_won |= won;
                    }
                    Op::JoinTimeout { ms, .. } => {
                        match h.join_timeout(Duration::from_millis(ms.into())) {
                            Err(TaskError::TimedOut) => {}
                            Err(TaskError::AlreadyJoined) if tr.outcome.is_some() => {}
                            Err(TaskError::AlreadyJoined) => {
                                return Err("AlreadyJoined before any result was taken".into())
                            }
                            r if tr.outcome.is_some() => {
                                return Err(format!("a second result was taken: {r:?}"))
                            }
                            r => tr.outcome = Some(r),
                        }
                    }
                    _ => {
                        let h = tr.handle.take().unwrap();
                        match (h.join(), tr.outcome.is_some()) {
                            (Err(TaskError::AlreadyJoined), true) => {}
                            (r, false) => tr.outcome = Some(r),
                            (r, true) => {
                                return Err(format!("join after a result was taken: {r:?}"))
                            }
                        }
                    }
                }
            }
            Op::Shutdown => {
                rt.shutdown();
                shut = true;
            }
            Op::ShutdownTimeout { ms } => {
                rt.shutdown_timeout(Duration::from_millis(ms.into()));
                shut = true;
            }
        }
    }
    Ok(t)
}

fn check(steps: &[Step]) -> Result<(), String> {
    let rt = Runtime::builder()
        .pool("fast", |p| p.threads(2).queue_capacity(4))
        .pool("slow", |p| {
            p.threads(1)
                .queue_capacity(2)
                .max_queue_wait(Duration::from_millis(1))
        })
        .drop_timeout(HANG_GUARD)
        .build()
        .map_err(|e| e.to_string())?;
    let pools = [rt.pool("fast").unwrap(), rt.pool("slow").unwrap()];
    let per_thread: Vec<Vec<Op>> = (0..THREADS)
        .map(|th| {
            steps
                .iter()
                .filter(|s| s.thread == th)
                .map(|s| s.op)
                .collect()
        })
        .collect();
    let barrier = Barrier::new(per_thread.iter().filter(|ops| !ops.is_empty()).count());
    let tallies = std::thread::scope(|s| {
        let joins: Vec<_> = per_thread
            .iter()
            .filter(|ops| !ops.is_empty())
            .map(|ops| {
                let (pools, rt, barrier) = (&pools, &rt, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    run_thread(pools, rt, ops)
                })
            })
            .collect();
        joins
            .into_iter()
            .map(|j| j.join().map_err(|_| "an operation panicked".to_string())?)
            .collect::<Result<Vec<_>, String>>()
    })?;

    // Quiesce: a graceful shutdown runs what is queued (tasks here are short), and a timed
    // shutdown may have detached workers that are about to finish.
    let report = rt.shutdown();
    for p in &pools {
        wait_until("workers to exit", || p.workers().iter().all(|w| w.exited));
    }

    let (mut attempts, mut refusals) = ([0u64; POOLS], [0u64; POOLS]);
    let mut ran = [[0u64; 2]; POOLS]; // [pool][panicked?]
    let mut accepted = [0u64; POOLS];
    for mut t in tallies {
        for i in 0..POOLS {
            attempts[i] += t.attempts[i];
            refusals[i] += t.refused[i];
        }
        for p in &t.detached {
            let runs = p.runs.load(Ordering::SeqCst);
            if runs > 1 {
                return Err(format!("a detached {:?} task ran {runs} times", p.task));
            }
            accepted[p.pool] += 1;
            ran[p.pool][usize::from(p.task == Task::Panics)] += u64::from(runs);
        }
        for tr in &mut t.handles {
            if let Some(mut h) = tr.handle.take() {
                let r = h.join_timeout(HANG_GUARD);
                if tr.outcome.is_none() {
                    tr.outcome = Some(r);
                } else if !matches!(r, Err(TaskError::AlreadyJoined)) {
                    return Err(format!("a second result was taken: {r:?}"));
                }
            }
            let p = &tr.probe;
            let runs = p.runs.load(Ordering::SeqCst);
            accepted[p.pool] += 1;
            ran[p.pool][usize::from(p.task == Task::Panics)] += u64::from(runs);
            let outcome = tr.outcome.as_ref().unwrap();
            let consistent = match outcome {
                Ok(()) => runs == 1 && p.task != Task::Panics,
                Err(TaskError::Panicked(_)) => runs == 1 && p.task == Task::Panics,
                Err(TaskError::Cancelled) | Err(TaskError::Expired { .. }) => runs == 0,
                Err(_) => false, // TimedOut after HANG_GUARD is a hang
            };
            if !consistent {
                return Err(format!(
                    "{:?} task ran {runs} times, handle said {outcome:?}",
                    p.task
                ));
            }
            if tr.cancel_won && !matches!(outcome, Err(TaskError::Cancelled)) {
                return Err(format!("cancel won, but the handle said {outcome:?}"));
            }
        }
    }
    for (i, pool) in pools.iter().enumerate() {
        let s = pool.stats();
        let ok = s.submitted == attempts[i]
            && s.refused() == refusals[i]
            && s.accepted() == accepted[i]
            && s.completed == ran[i][0]
            && s.panicked == ran[i][1]
            && s.expired + s.shed + s.cancelled == accepted[i] - ran[i][0] - ran[i][1]
            && (s.queued, s.busy) == (0, 0);
        if !ok {
            return Err(format!(
                "books of {:?} do not balance: attempts {}, refused {}, accepted {}, \
                 ran ok {}, ran panicking {}; stats {s:?}; {report}",
                s.name, attempts[i], refusals[i], accepted[i], ran[i][0], ran[i][1]
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// One thread runs every step in order: the interleaving is fixed, so a failure
    /// reproduces while proptest shrinks it, and the sequence it prints is short.
    #[test]
    #[cfg_attr(miri, ignore)] // hundreds of runtimes and real sleeps: too slow under Miri
    fn model_sequential_operations_keep_every_promise(steps in steps(1)) {
        support::quiet_panics("model task panics");
        if let Err(why) = check(&steps) {
            prop_assert!(false, "{}", why);
        }
    }

    /// Three threads run their steps at once: finds races the sequential model cannot.
    /// Shrinking still works but a racy failure may shrink less far.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn model_concurrent_operations_keep_every_promise(steps in steps(THREADS)) {
        support::quiet_panics("model task panics");
        if let Err(why) = check(&steps) {
            prop_assert!(false, "{}", why);
        }
    }
}
