//! Keyed submissions (issue 17, item 1): the fair dequeue order, per-key caps, per-key
//! counts with bounded cardinality, and exactly-once endings of keyed tasks under stress and
//! shutdown. Every order is made deterministic by holding the pool's only worker while the
//! tasks queue; no assertion depends on timing.

mod support;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead::{
    KeyOrder, KeyStats, Pool, PoolBuilder, RefusalReason, Runtime, TaskError, TaskHandle,
};
use support::{occupy_all, wait_until, HANG_GUARD};

/// Joins `h`, bounded by the hang guard.
fn done<T: Send + 'static>(mut h: TaskHandle<T>) -> Result<T, TaskError> {
    h.join_timeout(HANG_GUARD)
}

fn one_pool(configure: impl FnOnce(PoolBuilder) -> PoolBuilder) -> (Runtime, Pool) {
    let rt = Runtime::builder().pool("p", configure).build().unwrap();
    let pool = rt.pool("p").unwrap();
    (rt, pool)
}

type Log = Arc<Mutex<Vec<String>>>;

/// Queues one task per `(key, label)` behind the held worker; each logs its label when it
/// runs. `None` as key submits unkeyed.
fn queue_all(pool: &Pool, log: &Log, tasks: &[(Option<&str>, &str)]) -> Vec<TaskHandle<()>> {
    tasks
        .iter()
        .map(|&(key, label)| {
            let log = log.clone();
            let label = label.to_owned();
            let f = move || log.lock().unwrap().push(label);
            match key {
                Some(k) => pool.key(k).try_submit(f),
                None => pool.try_submit(f),
            }
            .unwrap()
        })
        .collect()
}

fn run_order(pool: &Pool, tasks: &[(Option<&str>, &str)]) -> Vec<String> {
    let log: Log = Arc::default();
    let mut gate = occupy_all(pool);
    let handles = queue_all(pool, &log, tasks);
    gate.open();
    for h in handles {
        done(h).unwrap();
    }
    let order = log.lock().unwrap().clone();
    order
}

fn key_row<'a>(keys: &'a [KeyStats], key: &str) -> &'a KeyStats {
    keys.iter()
        .find(|k| k.key.as_deref() == Some(key))
        .unwrap_or_else(|| panic!("no row for key {key:?} in {keys:?}"))
}

#[test]
fn a_flooding_key_gets_one_turn_per_round_while_others_wait() {
    let (_rt, pool) = one_pool(|p| p.threads(1).queue_capacity(64));
    let mut tasks = Vec::new();
    for i in 0..6 {
        tasks.push((Some("flood"), ["f0", "f1", "f2", "f3", "f4", "f5"][i]));
    }
    tasks.push((Some("a"), "a0"));
    tasks.push((Some("b"), "b0"));
    tasks.push((Some("a"), "a1"));
    assert_eq!(
        run_order(&pool, &tasks),
        ["f0", "a0", "b0", "f1", "a1", "f2", "f3", "f4", "f5"]
    );
}

#[test]
fn fifo_order_serves_keyed_tasks_as_they_arrived() {
    let (_rt, pool) = one_pool(|p| p.threads(1).key_order(KeyOrder::Fifo));
    assert_eq!(pool.key_order(), KeyOrder::Fifo);
    let tasks = [
        (Some("flood"), "f0"),
        (Some("flood"), "f1"),
        (Some("a"), "a0"),
        (Some("flood"), "f2"),
    ];
    assert_eq!(run_order(&pool, &tasks), ["f0", "f1", "a0", "f2"]);
}

#[test]
fn weights_set_at_build_and_while_running_are_quanta() {
    let (_rt, pool) = one_pool(|p| p.threads(1).key_weight("gold", 3));
    assert_eq!(pool.key("gold").weight(), 3);
    let mut tasks = Vec::new();
    for (g, r) in [
        ("g0", "r0"),
        ("g1", "r1"),
        ("g2", "r2"),
        ("g3", "r3"),
        ("g4", "r4"),
    ] {
        tasks.push((Some("gold"), g));
        tasks.push((Some("free"), r));
    }
    // Gold is served 3 per round, free 1.
    assert_eq!(
        run_order(&pool, &tasks),
        ["g0", "g1", "g2", "r0", "g3", "g4", "r1", "r2", "r3", "r4"]
    );

    pool.set_key_weight("free", NonZeroU32::new(2).unwrap());
    pool.set_key_weight("gold", NonZeroU32::new(1).unwrap());
    assert_eq!(pool.key("gold").weight(), 1);
    let tasks = [
        (Some("gold"), "g0"),
        (Some("gold"), "g1"),
        (Some("gold"), "g2"),
        (Some("free"), "r0"),
        (Some("free"), "r1"),
        (Some("free"), "r2"),
    ];
    assert_eq!(
        run_order(&pool, &tasks),
        ["g0", "r0", "r1", "g1", "r2", "g2"]
    );
}

#[test]
fn unkeyed_tasks_keep_their_place_among_keyed_turns() {
    let (_rt, pool) = one_pool(|p| p.threads(1));
    let tasks = [
        (Some("flood"), "f0"),
        (Some("flood"), "f1"),
        (None, "u0"),
        (Some("flood"), "f2"),
        (Some("a"), "a0"),
        (None, "u1"),
    ];
    // Unkeyed tasks run exactly where they were queued (3rd and 6th); each keyed turn takes
    // the next keyed job in fair order, so "a" goes ahead of the flood's second task.
    assert_eq!(
        run_order(&pool, &tasks),
        ["f0", "a0", "u0", "f1", "f2", "u1"]
    );
}

#[test]
fn a_key_over_its_cap_is_refused_with_the_closure_and_others_are_not() {
    let (_rt, pool) = one_pool(|p| p.threads(1).queue_capacity(16).key_cap(2));
    assert_eq!(pool.key_cap(), Some(2));
    let mut gate = occupy_all(&pool);
    let t = pool.key("t");
    let h1 = t.try_submit(|| 1).unwrap();
    let h2 = t.try_submit(|| 2).unwrap();
    assert_eq!(t.in_flight(), 2);
    let refused = t.try_submit(|| 3).unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::KeyCap);
    assert!(refused.is_key_cap());
    assert_eq!(refused.pool(), "p");
    assert_eq!((refused.into_inner())(), 3, "the closure comes back");
    let refused = t.execute(|| ()).unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::KeyCap);
    // Another key, and unkeyed work, are admitted.
    let u = pool.key("u").try_submit(|| 10).unwrap();
    let plain = pool.try_submit(|| 20).unwrap();
    gate.open();
    assert_eq!(done(h1).unwrap(), 1);
    // Its place under the cap is free once its handle resolved: no race with the worker.
    let h3 = t.try_submit(|| 3).unwrap();
    assert_eq!(done(h2).unwrap(), 2);
    assert_eq!(done(h3).unwrap(), 3);
    assert_eq!(done(u).unwrap(), 10);
    assert_eq!(done(plain).unwrap(), 20);
    let s = pool.stats();
    assert_eq!(s.refused_key_cap, 2);
    let row = key_row(&s.keys, "t");
    assert_eq!(
        (
            row.accepted,
            row.refused_key_cap,
            row.completed,
            row.in_flight
        ),
        (3, 2, 3, 0)
    );
    assert_eq!(row.dequeued, 3);
    assert_eq!(key_row(&s.keys, "u").completed, 1);
    assert!(s.other_keys.is_none());
}

#[test]
fn a_full_pool_refuses_keyed_work_as_full_and_counts_it_for_the_key() {
    let (_rt, pool) = one_pool(|p| p.threads(1).queue_capacity(1));
    let _gate = occupy_all(&pool);
    pool.key("k").execute(|| ()).unwrap();
    let refused = pool.key("k").try_submit(|| ()).unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::Full);
    let s = pool.stats();
    let row = key_row(&s.keys, "k");
    assert_eq!((row.accepted, row.refused_other, row.queued), (1, 1, 1));
    assert_eq!(s.refused_full, 1);
}

#[test]
fn keys_with_odd_characters_are_kept_apart() {
    let (_rt, pool) = one_pool(|p| p.threads(1).queue_capacity(64).key_cap(1));
    let long = "k".repeat(10_000);
    let keys = ["", " ", "a=b,c", "ключ", "\"}\n", "\u{0}", long.as_str()];
    let mut gate = occupy_all(&pool);
    let handles: Vec<_> = keys
        .iter()
        .map(|k| pool.key(k).try_submit(|| ()).unwrap())
        .collect();
    for k in keys {
        // Each key is at its cap of 1, independently of the others.
        assert!(pool.key(k).try_submit(|| ()).unwrap_err().is_key_cap());
    }
    gate.open();
    for h in handles {
        done(h).unwrap();
    }
    let s = pool.stats();
    for k in keys {
        let row = key_row(&s.keys, k);
        assert_eq!((row.completed, row.refused_key_cap), (1, 1), "{k:?}");
    }
}

#[test]
fn per_key_counts_stay_bounded_and_add_up() {
    let (_rt, pool) = one_pool(|p| p.threads(1).queue_capacity(4).key_metrics(3));
    for i in 0..5_000u32 {
        // Key "hot" sends one task in three; 3,334 other keys one or two each.
        let key = if i % 3 == 0 {
            "hot".to_owned()
        } else {
            format!("cold-{}", i / 3)
        };
        let h = pool.key(&key).try_submit(|| ()).unwrap();
        done(h).unwrap();
    }
    let s = pool.stats();
    assert_eq!(s.keys.len(), 3);
    assert_eq!(s.keys[0].key.as_deref(), Some("hot"));
    assert_eq!(s.keys[0].completed, 1667);
    let other = s.other_keys.clone().unwrap();
    assert_eq!(other.key, None);
    let total: u64 = s.keys.iter().map(|k| k.completed).sum::<u64>() + other.completed;
    assert_eq!(total, 5_000);
    assert_eq!(s.completed, 5_000);
    // Nothing in flight any more, for any key.
    assert!(s.keys.iter().all(|k| k.in_flight == 0 && k.queued == 0));
    assert_eq!((other.in_flight, other.queued), (0, 0));
}

#[test]
fn key_metrics_zero_sums_every_key() {
    let (_rt, pool) = one_pool(|p| p.threads(1).key_metrics(0));
    pool.key("a")
        .try_submit(|| ())
        .unwrap()
        .join_timeout(HANG_GUARD)
        .unwrap();
    let s = pool.stats();
    assert!(s.keys.is_empty());
    assert_eq!(s.other_keys.unwrap().completed, 1);
}

#[test]
fn expired_and_panicked_keyed_tasks_free_their_key() {
    support::quiet_panics("keyed boom");
    let (_rt, pool) = one_pool(|p| {
        p.threads(1)
            .queue_capacity(8)
            .key_cap(2)
            .max_queue_wait(Duration::from_millis(1))
    });
    // Hold the worker. The holding task itself may expire in the queue on a busy machine
    // (it too waits at most 1 ms): then its closure is dropped, `started` disconnects, and
    // it is sent again. No timing decides the outcome.
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    loop {
        let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
        let release = release_rx.clone();
        pool.execute(move || {
            started_tx.send(()).unwrap();
            let _ = release.recv();
        })
        .unwrap();
        match started_rx.recv_timeout(HANG_GUARD) {
            Ok(()) => break,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => continue,
            Err(e) => panic!("the holding task neither started nor expired: {e}"),
        }
    }
    let k = pool.key("k");
    let expired = k.try_submit(|| ()).unwrap();
    let expired_too = k.try_submit(|| ()).unwrap();
    // Both expire while the worker is held (the deadline timer resolves them).
    let err = done(expired).unwrap_err();
    assert!(err.is_expired(), "{err}");
    assert!(done(expired_too).unwrap_err().is_expired());
    drop(release_tx);
    // The worker passes the expired tasks: the key is free again.
    wait_until("the key's expired tasks to be passed", || {
        k.in_flight() == 0
    });
    let (_rt2, pool2) = one_pool(|p| p.threads(1));
    let boom = pool2.key("k").try_submit(|| panic!("keyed boom")).unwrap();
    assert!(done(boom).unwrap_err().is_panic());
    let s = pool.stats();
    assert_eq!(key_row(&s.keys, "k").expired, 2);
    let s2 = pool2.stats();
    let row = key_row(&s2.keys, "k");
    assert_eq!((row.panicked, row.in_flight), (1, 0));
}

#[test]
fn an_abandoned_shutdown_cancels_queued_keyed_tasks_exactly_once() {
    let (rt, pool) = one_pool(|p| p.threads(1).queue_capacity(64));
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
    // The worker is held past the shutdown's grace period.
    pool.execute(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv();
    })
    .unwrap();
    started_rx.recv_timeout(HANG_GUARD).unwrap();
    let handles: Vec<_> = (0..30)
        .map(|i| {
            pool.key(["a", "b", "c"][i % 3])
                .try_submit(move || i)
                .unwrap()
        })
        .collect();
    let report = rt.shutdown_timeout(Duration::from_millis(1));
    assert!(!report.is_clean());
    // Refused once closed, and counted for the key too.
    let late = pool.key("a").try_submit(|| 0).unwrap_err();
    assert_eq!(late.reason(), RefusalReason::ShuttingDown);
    for h in handles {
        assert!(done(h).unwrap_err().is_cancelled());
    }
    drop(release_tx);
    let s = pool.stats();
    for k in ["a", "b", "c"] {
        let row = key_row(&s.keys, k);
        assert_eq!(
            (row.accepted, row.cancelled, row.in_flight),
            (10, 10, 0),
            "{k}"
        );
    }
    assert_eq!(s.cancelled, 30);
}

#[test]
fn every_keyed_submission_ends_exactly_once_under_stress() {
    support::quiet_panics("stress boom");
    let (rt, pool) = one_pool(|p| p.threads(2).queue_capacity(8).key_cap(3));
    let ran = Arc::new(AtomicU64::new(0));
    let submitters: Vec<_> = (0..4)
        .map(|s| {
            let pool = pool.clone();
            let ran = ran.clone();
            std::thread::spawn(move || {
                let (mut ok, mut refused, mut panicked) = (0u64, 0u64, 0u64);
                for i in 0..3_000u64 {
                    let key = format!("k{}", (i * 7 + s) % 5);
                    let ran = ran.clone();
                    let boom = i % 97 == 0;
                    let task = move || {
                        ran.fetch_add(1, Ordering::Relaxed);
                        if boom {
                            panic!("stress boom");
                        }
                    };
                    let r = if i % 2 == 0 {
                        pool.key(&key).try_submit(task).map(Some)
                    } else {
                        pool.key(&key).execute(task).map(|()| None)
                    };
                    match r {
                        Ok(Some(h)) => match done(h) {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                assert!(e.is_panic(), "{e}");
                                panicked += 1;
                            }
                        },
                        Ok(None) => {}
                        Err(e) => {
                            assert!(
                                matches!(e.reason(), RefusalReason::KeyCap | RefusalReason::Full),
                                "{e}"
                            );
                            refused += 1;
                        }
                    }
                }
                (ok, refused, panicked)
            })
        })
        .collect();
    let mut refused = 0;
    for s in submitters {
        let (_, r, _) = s.join().unwrap();
        refused += r;
    }
    let report = rt.shutdown_timeout(HANG_GUARD);
    assert!(report.is_clean(), "{report}");
    let s = pool.stats();
    assert_eq!(s.submitted, 12_000);
    assert_eq!(s.refused(), refused);
    assert_eq!(s.accepted(), s.finished(), "{s:?}");
    assert_eq!(ran.load(Ordering::Relaxed), s.completed + s.panicked);
    let mut keyed_accepted = 0;
    let mut keyed_finished = 0;
    let mut keyed_refused = 0;
    for k in s.keys.iter().chain(s.other_keys.iter()) {
        assert_eq!(k.in_flight, 0, "{k:?}");
        keyed_accepted += k.accepted;
        keyed_finished += k.finished();
        keyed_refused += k.refused_key_cap + k.refused_other;
    }
    assert_eq!(keyed_accepted, s.accepted());
    assert_eq!(keyed_finished, s.finished());
    assert_eq!(keyed_refused, refused);
    assert_eq!(
        s.refused_key_cap + s.refused_full,
        refused,
        "refusals by reason"
    );
}

#[test]
fn bad_key_settings_are_build_errors_naming_the_field() {
    let err = Runtime::builder()
        .pool("p", |p| p.key_cap(0))
        .build()
        .unwrap_err();
    assert_eq!((err.pool(), err.field()), (Some("p"), "key_cap"));
    let err = Runtime::builder()
        .pool("p", |p| p.key_weight("tenant-7", 0))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "key_weights");
    assert!(err.to_string().contains("\"tenant-7\""), "{err}");
    let err = Runtime::builder()
        .pool("p", |p| p.key_metrics(1_000_000))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "key_metrics");
    let mut setting_error = None;
    let rt = Runtime::builder()
        .pool("p", |p| match p.clone().set("key_weights", "gold=x") {
            Ok(p) => p,
            Err(e) => {
                setting_error = Some(e);
                p
            }
        })
        .build()
        .unwrap();
    drop(rt);
    let err = setting_error.expect("a weight that is not a number is an error");
    assert_eq!(err.key(), "key_weights");
    assert!(err.to_string().contains("\"x\""), "{err}");
}

#[test]
fn keyed_submissions_may_wait_for_room_but_never_for_their_cap() {
    let (_rt, pool) = one_pool(|p| p.threads(1).queue_capacity(1).key_cap(2));
    let mut gate = occupy_all(&pool);
    // The pool's one queue place is taken by another key.
    let other = pool.key("other").try_submit(|| 0).unwrap();
    // Waiting for room times out while the worker is held...
    let refused = pool
        .key("k")
        .submit_timeout(|| 1, Duration::from_millis(20))
        .unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::Timeout);
    // ...and is admitted once room appears: a waiter blocks until the gate opens.
    let waiter = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            pool.key("k")
                .submit_timeout(|| 2, HANG_GUARD)
                .map_err(|e| e.reason())
        })
    };
    wait_until("the waiter to wait for room", || {
        // The waiter is counted as submitted before it waits.
        pool.stats().submitted == 4
    });
    gate.open();
    let h = waiter.join().unwrap().unwrap();
    assert_eq!(done(h).unwrap(), 2);
    assert_eq!(done(other).unwrap(), 0);
    let s = pool.stats();
    let k = key_row(&s.keys, "k");
    assert_eq!((k.accepted, k.refused_other, k.completed), (1, 1, 1));
    assert_eq!(s.refused_timeout, 1);

    // A key at its cap is refused at once, even by a waiting submission.
    let mut gate = occupy_all(&pool);
    let held = pool.key("c").try_submit(|| ()).unwrap();
    let (_rt2, roomy) = one_pool(|p| p.threads(1).queue_capacity(8).key_cap(1));
    let mut gate2 = occupy_all(&roomy);
    let first = roomy.key("c").try_submit(|| ()).unwrap();
    let refused = roomy.key("c").submit(|| ()).unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::KeyCap);
    gate2.open();
    gate.open();
    done(first).unwrap();
    done(held).unwrap();
}

#[test]
fn keyed_deadlines_refuse_late_work_and_expire_it_at_the_deadline() {
    let (_rt, pool) = one_pool(|p| p.threads(1).queue_capacity(8));
    let gate = occupy_all(&pool);
    let k = pool.key("k");
    // A deadline already passed is refused at once, counted for the pool and the key.
    let refused = k
        .try_submit_by(|| (), std::time::Instant::now() - Duration::from_millis(1))
        .unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::Deadline);
    // Admitted with a short budget, it expires at its deadline while the worker is held.
    let h = k
        .try_submit_within(|| (), Duration::from_millis(5))
        .unwrap();
    let err = done(h).unwrap_err();
    assert!(err.is_expired(), "{err}");
    drop(gate);
    wait_until("the expired task to be passed", || k.in_flight() == 0);
    let s = pool.stats();
    assert_eq!(s.refused_deadline, 1);
    let row = key_row(&s.keys, "k");
    assert_eq!((row.refused_other, row.accepted, row.expired), (1, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_async_admission_waits_for_room_refuses_at_the_cap_and_is_cancel_safe() {
    let (_rt, pool) = one_pool(|p| p.threads(1).queue_capacity(1).key_cap(2));
    let mut gate = occupy_all(&pool);
    let other = pool.key("other").try_submit(|| 0).unwrap();
    // The pool is full: a keyed future waits.
    let waiting = pool.key("k").submit_async(|| 7);
    let waiting = tokio::spawn(async move { waiting.await.map_err(|e| e.reason()) });
    // A future dropped while waiting admits nothing and counts nothing.
    let dropped = pool.key("k").submit_async(|| 8);
    let polled_once = tokio::time::timeout(Duration::from_millis(10), dropped).await;
    assert!(
        polled_once.is_err(),
        "it could not have been admitted: the pool is full"
    );
    gate.open();
    let h = tokio::time::timeout(HANG_GUARD, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        tokio::time::timeout(HANG_GUARD, h).await.unwrap().unwrap(),
        7
    );
    assert_eq!(done(other).unwrap(), 0);

    // At its cap, a key's future is refused at once, closure back.
    let mut gate = occupy_all(&pool);
    let first = pool.key("c").try_submit(|| ()).unwrap();
    let (_rt2, roomy) = one_pool(|p| p.threads(1).queue_capacity(8).key_cap(1));
    let mut gate2 = occupy_all(&roomy);
    let held = roomy.key("c").try_submit(|| 1).unwrap();
    let refused = tokio::time::timeout(HANG_GUARD, roomy.key("c").submit_async(|| 2))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::KeyCap);
    assert_eq!((refused.into_inner())(), 2);
    gate2.open();
    gate.open();
    assert_eq!(done(held).unwrap(), 1);
    done(first).unwrap();
    let s = pool.stats();
    let k = key_row(&s.keys, "k");
    assert_eq!((k.accepted, k.completed, k.refused_other), (1, 1, 0));
    let c = key_row(&roomy.stats().keys, "c").clone();
    assert_eq!((c.accepted, c.refused_key_cap), (1, 1));
}
