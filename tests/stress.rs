//! Stress: 4 submitter threads x 100k tasks into 2 pools with small queues, random panics,
//! cancels, timed submissions and expiries. Afterwards the accounting identity holds exactly
//! per pool, every handle is resolved, and no task ran twice.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bulkhead::{Runtime, TaskError};

const SUBMITTERS: usize = 4;
const TASKS_PER_SUBMITTER: usize = if cfg!(miri) { 200 } else { 100_000 };

/// xorshift64*: a tiny deterministic generator, one per submitter.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

#[derive(Default)]
struct Tally {
    refused: AtomicU64,
    ok: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    expired: AtomicU64,
    cancel_won: AtomicU64,
}

#[test]
fn stress_accounting_identity_holds_exactly() {
    support::quiet_panics("stress panic");
    let rt = Runtime::builder()
        .pool("a", |p| p.threads(2).queue_capacity(8))
        .pool("b", |p| {
            p.threads(1)
                .queue_capacity(4)
                .max_queue_wait(Duration::from_micros(200))
        })
        .build()
        .unwrap();
    let pools = [rt.pool("a").unwrap(), rt.pool("b").unwrap()];
    // runs[pool][task] would be 400k flags; a per-task run counter checked on completion
    // proves "at most once" more cheaply: each task bumps its own flag and asserts it was 0.
    let runs: [Arc<AtomicU64>; 2] = Default::default();
    let twice: Arc<AtomicU64> = Arc::default();
    let tallies: [Arc<Tally>; 2] = Default::default();
    let barrier = Arc::new(Barrier::new(SUBMITTERS));

    let threads: Vec<_> = (0..SUBMITTERS)
        .map(|t| {
            let pools = pools.clone();
            let runs = runs.clone();
            let twice = twice.clone();
            let tallies = tallies.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                let mut handles = Vec::new();
                barrier.wait();
                for _ in 0..TASKS_PER_SUBMITTER {
                    let which = (rng.next() % 2) as usize;
                    let pool = &pools[which];
                    let tally = &tallies[which];
                    let panics = rng.chance(50);
                    let flag = Arc::new(AtomicU64::new(0));
                    let (r, tw) = (runs[which].clone(), twice.clone());
                    let task = move || {
                        if flag.fetch_add(1, Ordering::SeqCst) != 0 {
                            tw.fetch_add(1, Ordering::SeqCst);
                        }
                        r.fetch_add(1, Ordering::SeqCst);
                        if panics {
                            panic!("stress panic");
                        }
                    };
                    match rng.next() % 10 {
                        0 => {
                            if pool.execute(task).is_err() {
                                tally.refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        1 => match pool.submit_timeout(task, Duration::from_micros(50)) {
                            Ok(h) => handles.push((which, h)),
                            Err(_) => {
                                tally.refused.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        _ => match pool.try_submit(task) {
                            Ok(h) => {
                                if rng.chance(100) && h.cancel() {
                                    tally.cancel_won.fetch_add(1, Ordering::Relaxed);
                                }
                                handles.push((which, h));
                            }
                            Err(e) => {
                                // Refused: the closure came back; drop it unrun.
                                drop(e.into_inner());
                                tally.refused.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                    }
                }
                for (which, h) in handles {
                    let tally = &tallies[which];
                    let c = match h.join() {
                        Ok(()) => &tally.ok,
                        Err(TaskError::Panicked(_)) => &tally.panicked,
                        Err(TaskError::Cancelled) => &tally.cancelled,
                        Err(TaskError::Expired { .. }) => &tally.expired,
                        Err(e) => panic!("join returned {e:?}"),
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = rt.shutdown();
    assert!(report.is_clean(), "{report}");
    assert_eq!(twice.load(Ordering::SeqCst), 0, "a task ran twice");

    let mut total_submitted = 0;
    for (i, pool) in pools.iter().enumerate() {
        let s = pool.stats();
        let t = &tallies[i];
        total_submitted += s.submitted;
        assert_eq!(s.queued, 0);
        assert_eq!(s.busy, 0);
        assert_eq!(
            s.submitted,
            s.completed + s.panicked + s.expired + s.shed + s.cancelled + s.refused(),
            "identity for pool {}: {s:?}",
            s.name
        );
        assert_eq!(s.refused(), t.refused.load(Ordering::Relaxed), "{s:?}");
        // Tasks that ran are exactly those counted completed or panicked.
        assert_eq!(
            runs[i].load(Ordering::SeqCst),
            s.completed + s.panicked,
            "{s:?}"
        );
        // Handle outcomes never exceed the pool's (execute tasks have no handle).
        assert!(t.ok.load(Ordering::Relaxed) <= s.completed);
        assert!(t.panicked.load(Ordering::Relaxed) <= s.panicked);
        assert!(t.expired.load(Ordering::Relaxed) <= s.expired);
        // No execute task is ever cancelled without shutdown, so cancellations match handles.
        assert_eq!(t.cancelled.load(Ordering::Relaxed), s.cancelled, "{s:?}");
        assert_eq!(t.cancel_won.load(Ordering::Relaxed), s.cancelled, "{s:?}");
        assert!(
            s.completed > 0 && s.refused() > 0,
            "the mix was exercised: {s:?}"
        );
    }
    eprintln!("{:#?}", pools.iter().map(|p| p.stats()).collect::<Vec<_>>());
    assert_eq!(total_submitted, (SUBMITTERS * TASKS_PER_SUBMITTER) as u64);
}
