//! The built-in scenarios, one per failure mode a bulkhead should contain.
//!
//! Each puts the same latency-sensitive workload (`api`: 50 µs CPU tasks at 2,000/s, one
//! thread, CPU 0) next to a different neighbour (one pool, CPU 1):
//!
//! | preset          | neighbour                                                        |
//! |-----------------|------------------------------------------------------------------|
//! | `cpu-runaway`   | 10 ms CPU tasks, `rate=max` keeping 64 in flight (default)       |
//! | `blocking-hang` | tasks that block until shutdown (a dead downstream), 100/s       |
//! | `panic-storm`   | tasks that panic with probability 0.9, 2,000/s                   |
//! | `queue-flood`   | 1 ms CPU tasks offered at 4,000/s, four times what it can serve  |
//!
//! Two more compare one overload mechanism on and off, side by side in one run (`isolated`
//! mode: each variant in its own one-CPU pool, offered the same load):
//!
//! | preset        | variants                                    | load (each)                                     |
//! |---------------|---------------------------------------------|-------------------------------------------------|
//! | `overload`    | `codel` (5 ms / 100 ms) vs `plain`, 1 thread, queue 1024 | 1 ms CPU tasks, Poisson 1,500/s (about 1.7x capacity), deadline 50 ms |
//! | `hang-budget` | `budget` (`replacement_budget` 4) vs `nobudget`, 2 threads, `stuck_after` 100 ms | 2 ms blocking calls at 200/s, deadline 50 ms, plus one call every 2 s that hangs |
//! | `blocking-burst` | `elastic` (1 to 8 threads, keep-alive 500 ms) vs `fixed` (2 threads), queue 64 | 5 ms blocking calls, Poisson 600/s (about 3 busy threads on average), deadline 50 ms |
//!
//! Three more put `api` beside a runaway pool (two threads, `rate=max`, 10 ms CPU tasks,
//! 64 in flight) in three layouts, `isolated` mode (each pool its own bulkhead), to compare
//! the two ways of keeping a CPU hog off its neighbour's CPU time:
//!
//! | preset            | layout                                                                 |
//! |-------------------|------------------------------------------------------------------------|
//! | `cpu-cap`         | unpinned, the runaway capped by the kernel at half of one CPU (`cpu_limit=0.5`) |
//! | `cpu-cap-pinned`  | pinned: `api` on the first CPU, the runaway on the second; no cap      |
//! | `cpu-cap-neither` | unpinned and uncapped: both pools share every CPU                      |
//!
//! Two compare how each overload control treats callers that give up (`deadline=`: an
//! answer after it is no answer; a task started after it is wasted work):
//!
//! | preset        | variants                                    | load (each)                                     |
//! |---------------|---------------------------------------------|-------------------------------------------------|
//! | `downstream-slowdown` | `fixed`, `codel` (5 ms / 100 ms), `deadlines` (`pass_deadline`), `adaptive` (Gradient2, min 8 = threads, end to end), 8 threads, queue 64 each; `fixed-q8` and `fixed-q0`, 8 threads, queue 8 and 0 (smaller fixed limits); no CPU pinning (blocking calls) | blocking calls at 400/s, 5 ms; from 2 s to 5 s of the window 1 call in 4 takes 200 ms; callers give up after 100 ms |
//! | `deadline-storm` | `fixed` vs `deadlines` (`pass_deadline`), 1 thread, queue 256 | 1 ms CPU tasks, three Poisson callers at 500/s each (1.5x capacity together) with deadlines 10 ms, 50 ms and 500 ms |
//!
//! One compares the order in which a shared pool serves its tenants (keyed submissions,
//! `key=`), side by side in one run:
//!
//! | preset         | pools (8 threads, queue 64 each, no CPU pinning: blocking calls)      | loads (10 ms blocking calls, keyed) |
//! |----------------|-------------------------------------------------------------------------|-------------------------------------|
//! | `noisy-tenant` | `fifo` (`key_order=fifo`, no cap), `fair` (`key_order=fair`, `key_cap=4`: at most half the threads per tenant), `baseline` (as `fair`, without the flood) | three quiet tenants `t1`-`t3`, Poisson 40/s each, on every pool; tenant `flood` at 2,000/s (2.5x the pool's 800/s) on `fifo` and `fair` |
//!
//! They use the first two CPUs this process may run on; with only one, `cpus` is unset.

use std::time::Duration;

use crate::spec::{parse_load, parse_pool, Mode, Scenario};

/// Per preset, in [`NAMES`] order: what it runs, and what its table shows.
pub(crate) const ABOUT: [(&str, &str, &str); 13] = [
    (
        "cpu-runaway",
        "api (50 us CPU tasks, 2,000/s) next to a neighbour keeping 64 tasks of 10 ms CPU in flight",
        "a CPU hog contained: api's p99/alone near 1 isolated, far above it shared",
    ),
    (
        "blocking-hang",
        "api next to a neighbour whose tasks block until shutdown (a dead downstream), 100/s",
        "hung calls fill only their own pool: shared, api's tasks wait behind them",
    ),
    (
        "panic-storm",
        "api next to a neighbour whose tasks panic with probability 0.9, 2,000/s",
        "panics are caught and counted; api is unaffected in either layout",
    ),
    (
        "queue-flood",
        "api next to a neighbour offered 1 ms CPU tasks at 4x what its thread serves",
        "an overloaded queue refuses its own work (refused) instead of delaying api's",
    ),
    (
        "overload",
        "the same overload (1 ms tasks at ~1.7x capacity) on a CoDel pool and a plain one",
        "CoDel sheds stale work and keeps good/s up; the plain queue serves only late work",
    ),
    (
        "hang-budget",
        "2 ms blocking calls plus one that hangs every 2 s, with and without a replacement budget",
        "replacement threads keep the pool serving while workers are stuck",
    ),
    (
        "blocking-burst",
        "5 ms blocking calls in Poisson bursts on an elastic pool (1-8 threads) and a fixed one (2)",
        "elastic threads absorb bursts within the deadline; a fixed pool queues them",
    ),
    (
        "cpu-cap",
        "api next to a 2-thread runaway capped by the kernel at half of one CPU, neither pinned",
        "the cap holds the runaway at ~0.5 CPU (CPU used, throttled periods); api's p99 near alone",
    ),
    (
        "cpu-cap-pinned",
        "api on one CPU, the same runaway pinned to the other, no cap",
        "pinning contains the runaway too, but gives it a whole CPU",
    ),
    (
        "cpu-cap-neither",
        "api and the same runaway, neither pinned nor capped",
        "the reference: the runaway takes what the scheduler gives it",
    ),
    (
        "downstream-slowdown",
        "blocking calls (5 ms; 1 in 4 takes 200 ms from 2 s to 5 s) with callers giving up after 100 ms, on fixed (queue 64, 8, 0), CoDel, deadline and adaptive-limit pools",
        "goodput during the slowdown, wasted work, p99 of answers, time back to full goodput after the heal",
    ),
    (
        "deadline-storm",
        "1 ms CPU tasks at 1.5x capacity from callers with deadlines of 10, 50 and 500 ms, on a fixed pool and one given the deadlines",
        "goodput per deadline class and wasted work: the deadline pool runs only work someone waits for",
    ),
    (
        "noisy-tenant",
        "three quiet tenants (10 ms blocking calls, 40/s each) sharing an 8-thread pool with a tenant flooding it at 2.5x its capacity: FIFO order vs fair order with a per-key cap of 4 (half the threads), and the quiet tenants in a pool without the flood",
        "per tenant: p50/p99 against the same tenant without the flood, refusals by reason (queue full, key cap), the flood's throughput",
    ),
];

/// The preset names, default first.
pub(crate) const NAMES: [&str; 13] = [
    "cpu-runaway",
    "blocking-hang",
    "panic-storm",
    "queue-flood",
    "overload",
    "hang-budget",
    "blocking-burst",
    "cpu-cap",
    "cpu-cap-pinned",
    "cpu-cap-neither",
    "downstream-slowdown",
    "deadline-storm",
    "noisy-tenant",
];

/// The preset named `name`, laid out on the `available` CPUs: the first two, if there are
/// at least two.
pub(crate) fn preset(name: &str, available: &[usize]) -> Result<Scenario, String> {
    let (cpu_a, cpu_b) = match available {
        [a, b, ..] => (format!(",cpus={a}"), format!(",cpus={b}")),
        _ => (String::new(), String::new()),
    };
    // The A/B presets: one mechanism on (first pool) and off (second), same load each.
    let ab = |pools: &[String], loads: Vec<String>, drain: Duration| -> Result<Scenario, String> {
        Ok(Scenario {
            name: name.to_owned(),
            pools: pools
                .iter()
                .map(|p| parse_pool(p))
                .collect::<Result<_, _>>()?,
            loads: loads
                .iter()
                .map(|l| parse_load(l))
                .collect::<Result<_, _>>()?,
            duration: Duration::from_secs(6),
            warmup: Duration::from_secs(1),
            drain,
            mode: Mode::Isolated,
            seed: 1,
        })
    };
    match name {
        "overload" => {
            let load = "rate=1500,work=spin:1ms,arrivals=poisson,deadline=50ms";
            return ab(
                &[
                    format!("codel:threads=1,queue_capacity=1024,codel=5ms,100ms{cpu_a}"),
                    format!("plain:threads=1,queue_capacity=1024{cpu_b}"),
                ],
                vec![format!("codel:{load}"), format!("plain:{load}")],
                Duration::from_millis(500),
            );
        }
        "hang-budget" => {
            let calls = "rate=200,work=sleep:2ms,deadline=50ms";
            let hangs = "rate=0.5,work=hang";
            return ab(
                &[
                    format!("budget:threads=2,queue_capacity=64,replacement_budget=4,stuck_after=100ms{cpu_a}"),
                    format!("nobudget:threads=2,queue_capacity=64,stuck_after=100ms{cpu_b}"),
                ],
                vec![
                    format!("budget:{calls}"),
                    format!("nobudget:{calls}"),
                    format!("budget:{hangs},name=budget-hangs"),
                    format!("nobudget:{hangs},name=nobudget-hangs"),
                ],
                Duration::from_millis(500),
            );
        }
        "blocking-burst" => {
            let calls = "rate=600,work=sleep:5ms,arrivals=poisson,deadline=50ms";
            return ab(
                &[
                    format!("elastic:elastic=1,8,queue_capacity=64,keep_alive=500ms{cpu_a}"),
                    format!("fixed:threads=2,queue_capacity=64{cpu_b}"),
                ],
                vec![format!("elastic:{calls}"), format!("fixed:{calls}")],
                Duration::from_millis(500),
            );
        }
        "downstream-slowdown" => {
            // Healthy 5 ms calls; from 2 s to 5 s into the window a quarter of the calls take
            // 200 ms (the slow path of a degraded downstream), then it heals. Every call
            // taking 200 ms would leave no answer within 100 ms for any control to save.
            let calls = "rate=400,work=phases:sleep:5ms/2s/3*sleep:5ms|1*sleep:200ms/5s/sleep:5ms,\
                         deadline=100ms";
            let pool = "threads=8,queue_capacity=64";
            // Fixed limits of three sizes, so that "the best fixed limit" is measured: the
            // queue of 64, a queue of 8, and none (a pure hand-off: in flight <= threads).
            let mut sc = ab(
                &[
                    format!("fixed:{pool}"),
                    "fixed-q8:threads=8,queue_capacity=8".to_owned(),
                    "fixed-q0:threads=8,queue_capacity=0".to_owned(),
                    format!("codel:{pool},codel=5ms,100ms"),
                    format!("deadlines:{pool}"),
                    format!(
                        "adaptive:{pool},adaptive_limit=gradient2,8,adaptive_signal=end_to_end"
                    ),
                ],
                vec![
                    format!("fixed:{calls}"),
                    format!("fixed-q8:{calls}"),
                    format!("fixed-q0:{calls}"),
                    format!("codel:{calls}"),
                    format!("deadlines:{calls},pass_deadline=true"),
                    format!("adaptive:{calls}"),
                ],
                Duration::from_millis(500),
            )?;
            sc.duration = Duration::from_secs(8);
            return Ok(sc);
        }
        "deadline-storm" => {
            let mut loads = Vec::new();
            for (pool, pass) in [("fixed", ""), ("deadlines", ",pass_deadline=true")] {
                for d in ["10ms", "50ms", "500ms"] {
                    loads.push(format!(
                        "{pool}:rate=500,work=spin:1ms,arrivals=poisson,deadline={d},name={pool}-{d}{pass}"
                    ));
                }
            }
            return ab(
                &[
                    format!("fixed:threads=1,queue_capacity=256{cpu_a}"),
                    format!("deadlines:threads=1,queue_capacity=256{cpu_b}"),
                ],
                loads,
                Duration::from_millis(500),
            );
        }
        "noisy-tenant" => {
            // Blocking calls (sleeps), so CPU contention on a small machine does not decide
            // the result; no pinning. 8 threads of 10 ms calls serve 800/s; the quiet tenants
            // use ~1.2 threads, the flood offers 2.5x the whole pool. The fair pool's cap of 4
            // (half the threads) keeps 4 threads for the others: with the quiet tenants'
            // Poisson arrivals, all 4 are busy with quiet calls well under 1 % of the time.
            let quiet = "rate=40,work=sleep:10ms,arrivals=poisson";
            let flood = "rate=2000,work=sleep:10ms";
            let pool = "threads=8,queue_capacity=64";
            let mut loads = Vec::new();
            // The baseline's first tenant first: it is also the `alone` run.
            for (p, flooded) in [("baseline", false), ("fifo", true), ("fair", true)] {
                for t in ["t1", "t2", "t3"] {
                    loads.push(format!("{p}:{quiet},key={t},name={p}-{t}"));
                }
                if flooded {
                    loads.push(format!("{p}:{flood},key=flood,name={p}-flood"));
                }
            }
            let mut sc = ab(
                &[
                    format!("baseline:{pool},key_order=fair,key_cap=4"),
                    format!("fifo:{pool},key_order=fifo"),
                    format!("fair:{pool},key_order=fair,key_cap=4"),
                ],
                loads,
                Duration::from_millis(500),
            )?;
            sc.duration = Duration::from_secs(10);
            return Ok(sc);
        }
        _ => {}
    }
    let cap_layout = match name {
        "cpu-cap" => Some((String::new(), ",cpu_limit=0.5".to_owned())),
        "cpu-cap-pinned" => Some((cpu_a.clone(), cpu_b.clone())),
        "cpu-cap-neither" => Some((String::new(), String::new())),
        _ => None,
    };
    if let Some((api, runaway)) = cap_layout {
        return Ok(Scenario {
            name: name.to_owned(),
            pools: vec![
                parse_pool(&format!("api:threads=1,queue_capacity=256{api}"))?,
                parse_pool(&format!("runaway:threads=2,queue_capacity=64{runaway}"))?,
            ],
            loads: vec![
                parse_load("api:rate=2000,work=spin:50us")?,
                parse_load("runaway:rate=max,inflight=64,work=spin:10ms")?,
            ],
            duration: Duration::from_secs(6),
            warmup: Duration::from_secs(1),
            drain: Duration::from_secs(3),
            mode: Mode::Isolated,
            seed: 1,
        });
    }
    let (neighbour_pool, neighbour_load, drain) = match name {
        "cpu-runaway" => (
            "batch:threads=1,queue_capacity=64",
            "batch:rate=max,inflight=64,work=spin:10ms",
            Duration::from_secs(3),
        ),
        "blocking-hang" => (
            "downstream:threads=2,queue_capacity=64",
            "downstream:rate=100,work=hang",
            Duration::from_millis(500),
        ),
        "panic-storm" => (
            "parser:threads=1,queue_capacity=64",
            "parser:rate=2000,work=panic:0.9",
            Duration::from_secs(2),
        ),
        "queue-flood" => (
            "ingest:threads=1,queue_capacity=64",
            "ingest:rate=4000,work=spin:1ms",
            Duration::from_secs(2),
        ),
        _ => {
            return Err(format!(
                "unknown preset {name:?} (presets: {})",
                NAMES.join(", ")
            ))
        }
    };
    let (api_cpus, other_cpus) = (cpu_a, cpu_b);
    Ok(Scenario {
        name: name.to_owned(),
        pools: vec![
            parse_pool(&format!("api:threads=1,queue_capacity=256{api_cpus}"))?,
            parse_pool(&format!("{neighbour_pool}{other_cpus}"))?,
        ],
        loads: vec![
            parse_load("api:rate=2000,work=spin:50us")?,
            parse_load(neighbour_load)?,
        ],
        duration: Duration::from_secs(6),
        warmup: Duration::from_secs(1),
        drain,
        mode: Mode::Both,
        seed: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid() {
        for (name, about) in NAMES.iter().zip(ABOUT) {
            assert_eq!(*name, about.0);
        }
        for name in NAMES {
            for cpus in [&[0][..], &[0, 1], &[2, 5, 6]] {
                let sc = preset(name, cpus).unwrap();
                sc.validate(cpus).unwrap();
            }
        }
    }

    #[test]
    fn unknown_preset_names_itself() {
        let err = preset("cpu-runway", &[0, 1]).unwrap_err();
        assert!(err.contains("\"cpu-runway\""), "{err}");
    }
}
