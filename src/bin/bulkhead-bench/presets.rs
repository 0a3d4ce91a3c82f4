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
//! They use the first two CPUs this process may run on; with only one, `cpus` is unset.

use std::time::Duration;

use crate::spec::{parse_load, parse_pool, Mode, Scenario};

/// The preset names, default first.
pub(crate) const NAMES: [&str; 4] = ["cpu-runaway", "blocking-hang", "panic-storm", "queue-flood"];

/// The preset named `name`, laid out on the `available` CPUs: the first two, if there are
/// at least two.
pub(crate) fn preset(name: &str, available: &[usize]) -> Result<Scenario, String> {
    let (neighbour_pool, neighbour_load, drain) = match name {
        "cpu-runaway" => (
            "batch:threads=1,queue=64",
            "batch:rate=max,inflight=64,work=spin:10ms",
            Duration::from_secs(3),
        ),
        "blocking-hang" => (
            "downstream:threads=2,queue=64",
            "downstream:rate=100,work=hang",
            Duration::from_millis(500),
        ),
        "panic-storm" => (
            "parser:threads=1,queue=64",
            "parser:rate=2000,work=panic:0.9",
            Duration::from_secs(2),
        ),
        "queue-flood" => (
            "ingest:threads=1,queue=64",
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
    let (api_cpus, other_cpus) = match available {
        [a, b, ..] => (format!(",cpus={a}"), format!(",cpus={b}")),
        _ => (String::new(), String::new()),
    };
    Ok(Scenario {
        name: name.to_owned(),
        pools: vec![
            parse_pool(&format!("api:threads=1,queue=256{api_cpus}"))?,
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
