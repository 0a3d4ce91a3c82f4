//! Two bulkheads on disjoint CPUs: a latency-critical pool with each worker pinned to its own
//! core, and a best-effort batch pool spread over the rest at low priority. Each worker's
//! placement is then read back from the OS and printed, with the CPU a few tasks ran on.
//!
//! Run with `cargo run --example pinning` (Linux; needs at least two CPUs, and says so
//! otherwise). Try `taskset -c 0,1 cargo run --example pinning` to see the split follow the
//! process's mask.

use bulkhead::{current_cpu, CpuSet, Placement, Pool, Runtime, SchedPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let available = match CpuSet::available() {
        Ok(set) => set,
        Err(e) => {
            println!("CPU placement is not available here ({e}); nothing to show");
            return Ok(());
        }
    };
    println!("this process may use CPUs {available}");
    if available.len() < 2 {
        println!(
            "pinning two pools to disjoint CPUs needs at least two CPUs; \
             this process may use only {available}"
        );
        return Ok(());
    }

    // Three quarters of the CPUs for the API, the rest (at least one) for batch work.
    let parts = CpuSet::partition(&available, &[("api", 3), ("batch", 1)])?;
    let (api_cpus, batch_cpus) = (parts[0].1.clone(), parts[1].1.clone());

    let rt = Runtime::builder()
        .pool("api", |p| {
            p.threads(api_cpus.len())
                .cpus(api_cpus.clone())
                .placement(Placement::PinEach)
                .exclusive(true)
        })
        .pool("batch", |p| {
            p.threads(2)
                .cpus(batch_cpus.clone())
                .exclusive(true)
                .nice(10)
                .sched_policy(SchedPolicy::Batch)
        })
        .build()?;

    for pool in rt.pools() {
        report(pool)?;
    }
    Ok(())
}

fn report(pool: &Pool) -> Result<(), Box<dyn std::error::Error>> {
    let configured = pool.cpus().map(ToString::to_string).unwrap_or_default();
    println!("\npool {:?}, configured CPUs {configured}:", pool.name());
    for w in pool.workers() {
        println!(
            "  {:<10} tid {:>7}  affinity {:<8} nice {:>3}  policy {}",
            w.thread_name,
            w.tid.map_or("?".into(), |t| t.to_string()),
            w.affinity.map_or("?".into(), |a| a.to_string()),
            w.nice.map_or("?".into(), |n| n.to_string()),
            w.sched_policy.map_or("?".into(), |p| p.to_string()),
        );
    }
    let handles: Vec<_> = (0..8)
        .map(|_| pool.try_submit(current_cpu))
        .collect::<Result<_, _>>()?;
    let mut ran_on = Vec::new();
    for h in handles {
        ran_on.extend(h.join()?);
    }
    ran_on.sort_unstable();
    ran_on.dedup();
    println!("  8 tasks ran on CPUs {}", CpuSet::new(ran_on));
    Ok(())
}
