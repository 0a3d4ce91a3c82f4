//! Awaiting bulkhead tasks from async code (tokio here; any executor works, the crate has no
//! async runtime dependency). Blocking and CPU-heavy work leaves the async threads free.
//!
//! Run with `cargo run --release --example async_await`.

use std::time::Duration;

use bulkhead::Runtime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .pool("cpu", |p| p.threads(2).queue_capacity(128))
        .pool("blocking-io", |p| p.threads(4).queue_capacity(16))
        .build()?;
    let cpu = rt.pool("cpu")?;
    let io = rt.pool("blocking-io")?;

    // CPU-heavy work, awaited without blocking the async thread.
    let sum = cpu
        .try_submit(|| (1..=1_000_000u64).map(|x| x % 7).sum::<u64>())?
        .await?;
    println!("cpu pool computed {sum}");

    // A blocking call (a slow downstream), awaited with a deadline of our own.
    let handle = io.submit_timeout(
        || {
            std::thread::sleep(Duration::from_millis(20));
            "response from a blocking driver"
        },
        Duration::from_millis(10), // wait at most this long for queue room
    )?;
    match tokio::time::timeout(Duration::from_secs(1), handle).await {
        Ok(result) => println!("blocking-io pool answered: {}", result?),
        Err(_) => println!("blocking-io pool did not answer within 1 s"),
    }

    // Many tasks at once: join them all concurrently.
    let handles: Vec<_> = (0..8u64)
        .map(|i| cpu.try_submit(move || i * i))
        .collect::<Result<_, _>>()?;
    let mut total = 0;
    for h in handles {
        total += h.await?;
    }
    println!("sum of squares 0..8 = {total}");
    Ok(())
}
