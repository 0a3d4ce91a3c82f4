//! Shutdown races: shutdown (graceful, timed, or by drop) while four threads submit and
//! others join or cancel. Whatever the interleaving: no panic, no hang, no task both run and
//! reported cancelled, every handle resolved, and the books of every pool balance.

mod support;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bulkhead::{Pool, Runtime, TaskError, TaskHandle};
use support::{occupy_all, wait_until, HANG_GUARD};

const ROUNDS: usize = if cfg!(miri) { 2 } else { 400 };
const SUBMITTERS: usize = 4;

/// A task's fate as seen from inside it: 0 not run, 1 ran. Checked against its handle.
struct Probe {
    ran: AtomicU8,
}

/// How the main thread ends the runtime in one round.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Graceful,
    Timed(Duration),
    Drop,
}

struct Joined {
    probe: Arc<Probe>,
    cancel_won: bool,
    outcome: Result<u64, TaskError>,
}

fn submitter(
    pool: Pool,
    seed: u64,
    out: crossbeam_channel::Sender<(Arc<Probe>, TaskHandle<u64>)>,
) -> (u64, u64) {
    let (mut submitted, mut refused) = (0, 0);
    let mut x = seed;
    // Bounded: stops at the first "shutting down" refusal, or after a fixed number of tries.
    for i in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let probe = Arc::new(Probe {
            ran: AtomicU8::new(0),
        });
        let p = probe.clone();
        let task = move || {
            assert_eq!(p.ran.fetch_add(1, Ordering::SeqCst), 0, "a task ran twice");
            i
        };
        submitted += 1;
        let r = match x % 3 {
            0 => pool.try_submit(task).map(|h| (probe, h)),
            1 => pool
                .submit_timeout(task, Duration::from_micros(x % 500))
                .map(|h| (probe, h)),
            _ => {
                let p = probe.clone();
                match pool.execute(move || {
                    p.ran.fetch_add(1, Ordering::SeqCst);
                }) {
                    Ok(()) => continue,
                    Err(e) => {
                        refused += 1;
                        if e.is_shutting_down() {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        match r {
            Ok(pair) => {
                if out.send(pair).is_err() {
                    break;
                }
            }
            Err(e) => {
                refused += 1;
                let shutting = e.is_shutting_down();
                let _ = e.into_inner(); // the closure came back; drop it unrun
                if shutting {
                    break;
                }
            }
        }
    }
    (submitted, refused)
}

fn one_round(round: usize, ending: Ending) {
    let rt = Runtime::builder()
        .pool("a", |p| p.threads(2).queue_capacity(8))
        .pool("b", |p| {
            p.threads(1)
                .queue_capacity(4)
                .max_queue_wait(Duration::from_micros(300))
        })
        .drop_timeout(Duration::from_millis(5))
        .build()
        .unwrap();
    let pools = [rt.pool("a").unwrap(), rt.pool("b").unwrap()];
    let start = Arc::new(Barrier::new(SUBMITTERS + 1));
    let (tx, rx) = crossbeam_channel::unbounded();

    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|t| {
            let (pool, tx, start) = (pools[t % 2].clone(), tx.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (t % 2, submitter(pool, (round * 31 + t + 1) as u64, tx))
            })
        })
        .collect();
    drop(tx);
    // Two resolvers: one joins (with and without timeouts), one cancels first, then joins.
    let resolvers: Vec<_> = (0..2)
        .map(|r| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for (probe, mut h) in rx {
                    let cancel_won = r == 1 && h.cancel();
                    let outcome = match h.join_timeout(Duration::from_micros(50)) {
                        Err(TaskError::TimedOut) => h.join_timeout(HANG_GUARD),
                        other => other,
                    };
                    out.push(Joined {
                        probe,
                        cancel_won,
                        outcome,
                    });
                }
                out
            })
        })
        .collect();
    drop(rx);

    start.wait();
    // Let the submitters get going, then end the runtime at a round-dependent point:
    // right away, or once some submissions were made (counted, not timed).
    let target = (round % 7) as u64 * 40;
    wait_until("submissions to start", || {
        pools.iter().map(|p| p.stats().submitted).sum::<u64>() >= target
    });
    match ending {
        Ending::Graceful => {
            let report = rt.shutdown();
            assert!(report.is_clean(), "{report}");
        }
        Ending::Timed(t) => {
            rt.shutdown_timeout(t);
        }
        Ending::Drop => drop(rt),
    }

    let mut attempts = [(0u64, 0u64); 2];
    for s in submitters {
        let (which, (sub, refused)) = s.join().expect("a submitter panicked");
        attempts[which].0 += sub;
        attempts[which].1 += refused;
    }
    for r in resolvers {
        for j in r.join().expect("a resolver panicked") {
            let ran = j.probe.ran.load(Ordering::SeqCst);
            match &j.outcome {
                Ok(_) => assert_eq!(ran, 1, "completed but did not run once"),
                Err(TaskError::Cancelled) | Err(TaskError::Expired { .. }) => {
                    assert_eq!(ran, 0, "reported {:?} but ran", j.outcome)
                }
                Err(e) => panic!("handle resolved as {e:?}"),
            }
            if j.cancel_won {
                assert!(matches!(j.outcome, Err(TaskError::Cancelled)));
            }
        }
    }
    // No task hangs, so every worker exits (a timed shutdown may have detached them).
    for (i, pool) in pools.iter().enumerate() {
        wait_until("workers to exit", || {
            pool.workers().iter().all(|w| w.exited)
        });
        let s = pool.stats();
        assert_eq!(s.submitted, attempts[i].0, "{ending:?}: {s:?}");
        assert_eq!(s.refused(), attempts[i].1, "{ending:?}: {s:?}");
        assert_eq!(
            s.submitted,
            s.refused() + s.completed + s.panicked + s.expired + s.cancelled,
            "{ending:?}: {s:?}"
        );
        assert_eq!((s.queued, s.busy), (0, 0));
    }
}

#[test]
fn stress_shutdown_while_submitting_joining_and_cancelling() {
    for round in 0..ROUNDS {
        let ending = match round % 4 {
            0 => Ending::Graceful,
            1 => Ending::Timed(Duration::ZERO),
            2 => Ending::Timed(Duration::from_micros(200)),
            _ => Ending::Drop,
        };
        one_round(round, ending);
    }
}

#[test]
fn concurrent_shutdowns_and_drop_are_harmless() {
    for _ in 0..if cfg!(miri) { 2 } else { 50 } {
        let rt = Arc::new(
            Runtime::builder()
                .pool("p", |p| p.threads(2).queue_capacity(16))
                .build()
                .unwrap(),
        );
        let pool = rt.pool("p").unwrap();
        let handles: Vec<_> = (0..16)
            .filter_map(|i| pool.try_submit(move || i).ok())
            .collect();
        let barrier = Arc::new(Barrier::new(3));
        let shutters: Vec<_> = (0..3)
            .map(|k| {
                let (rt, barrier) = (rt.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match k {
                        0 => drop(rt.shutdown()),
                        1 => drop(rt.shutdown_timeout(Duration::ZERO)),
                        _ => drop(rt), // maybe the last reference: Drop runs here
                    }
                })
            })
            .collect();
        for s in shutters {
            s.join().unwrap();
        }
        for h in handles {
            match h.join() {
                Ok(_) | Err(TaskError::Cancelled) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        drop(rt);
        wait_until("workers to exit", || {
            pool.workers().iter().all(|w| w.exited)
        });
        let s = pool.stats();
        assert_eq!(s.submitted, s.refused() + s.finished(), "{s:?}");
    }
}

#[test]
fn dropping_the_runtime_resolves_outstanding_handles() {
    let completed = Arc::new(AtomicU64::new(0));
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(1).queue_capacity(32))
        .drop_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let mut gate = occupy_all(&pool);
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let c = completed.clone();
            pool.try_submit(move || {
                c.fetch_add(1, Ordering::SeqCst);
                i
            })
            .unwrap()
        })
        .collect();
    // Joiners are already blocked when the runtime goes away.
    let joiners: Vec<_> = handles
        .into_iter()
        .map(|h| std::thread::spawn(move || h.join()))
        .collect();
    drop(rt);
    for j in joiners {
        assert!(j.join().unwrap().unwrap_err().is_cancelled());
    }
    gate.open();
    wait_until("the detached worker to exit", || pool.workers()[0].exited);
    assert_eq!(completed.load(Ordering::SeqCst), 0);
    let s = pool.stats();
    assert_eq!((s.completed, s.cancelled), (1, 32), "{s:?}");
}
