//! Carries a `tracing` span from the submitting thread into a bulkhead: the pool's context
//! hook captures `Span::current()` at submission and enters it on the worker around the task,
//! so the task's events print inside the request's span, on the worker's thread.
//!
//! Run with `cargo run --example tracing_context`. Each line shows the thread and the span:
//!
//! ```text
//!  INFO main request{id=1}: tracing_context: submitting
//!  INFO thumbnails-0 request{id=1}: tracing_context: resizing inside the pool width=64
//! ```

use tracing::{info, info_span, Span};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_thread_names(true)
        .with_ansi(false)
        .init();

    let rt = bulkhead::Runtime::builder()
        .pool("thumbnails", |p| {
            p.threads(2).context(
                // On the submitting thread: the span the request is in.
                Span::current,
                // On the worker: enter it; the returned guard exits it after the task.
                Span::entered,
            )
        })
        .build()?;
    let pool = rt.pool("thumbnails")?;

    let mut handles = Vec::new();
    for id in 1..=3 {
        let span = info_span!("request", id);
        let _in_request = span.enter();
        info!("submitting");
        handles.push(pool.try_submit(move || {
            info!(width = 64 * id, "resizing inside the pool");
            id
        })?);
    }
    for h in handles {
        h.join()?;
    }
    // Outside any request span, a task runs in no span.
    pool.try_submit(|| info!("no request here"))?.join()?;
    Ok(())
}
