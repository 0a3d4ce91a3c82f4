//! An HTTP service on axum and tokio (loopback only) whose handlers hand their work to
//! separate bulkheads and `.await` the handles:
//!
//! | endpoint        | work                                  | pool                          |
//! |-----------------|---------------------------------------|-------------------------------|
//! | `GET /fast?n=N` | CPU work (Fibonacci by recursion)     | `cpu`                         |
//! | `GET /slow`     | a call to a slow downstream (a sleep) | `downstream` (small queue)    |
//! | `GET /metrics`  | Prometheus text of every pool         | answered on the tokio task    |
//!
//! No tokio worker ever runs the work or waits on it: a handler submits with
//! `try_submit`, which never blocks, and awaits the [`TaskHandle`](bulkhead::TaskHandle)
//! (a future). When a bulkhead refuses (queue full), sheds (the request waited past
//! `max_queue_wait`) or is shut down, the handler answers `503 Service Unavailable` with
//! `Retry-After: 1`. A flood of `/slow` therefore fills and overflows `downstream` only:
//! `/fast` keeps answering 200.
//!
//! Slow clients cannot hold the server either:
//!
//! - **Request deadline.** hyper's `header_read_timeout` bounds the time a connection has
//!   to deliver its whole request head ([`Sizes::request_deadline`], 5 s), counted once
//!   from the moment the head starts to be read, not per read. A connection that misses it
//!   on its first request is answered `408 Request Timeout` and closed; an idle keep-alive
//!   connection is just closed.
//! - **Connection limit.** At most [`Sizes::connections`] connections are served at once.
//!   The accept loop never waits for room: a connection beyond the limit is answered `503`
//!   with `Retry-After: 1` by a small, separately bounded set of responders (16), or simply
//!   closed when those are busy too.
//! - **Connection lifetime.** A connection is closed after [`Sizes::connection_lifetime`]
//!   (60 s) whatever it does, which bounds a client that never reads its answer.
//!
//! A request id, set by the handler on its thread just around the submission, follows the
//! request into `cpu` and `downstream` through their context hooks (`PoolBuilder::context`)
//! and comes back in the `X-Request-Id` header and the body.
//!
//! Run with `cargo run --example service` (prints where to point curl); `--port N` picks the
//! port (default: any free one), `--seconds N` how long to serve (default 600).
//! `tests/service.rs` drives the same server over real HTTP on loopback.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bulkhead::{Pool, Runtime, SubmitError, TaskError, TaskHandle};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How many connections beyond the limit may be answered 503 at once; more are closed.
const BUSY_RESPONDERS: usize = 16;
/// How long writing a canned answer (408, 503) may take, as a whole.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a connection is drained before it is closed after a canned answer, so that
/// closing it does not reset it before the client has read the answer.
const LINGER: Duration = Duration::from_millis(100);

thread_local! {
    /// The id of the request this thread works on (0: none).
    static REQUEST_ID: Cell<u64> = const { Cell::new(0) };
}

/// The sizes and limits that matter for the demonstration.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Connections served at once (default 256). Beyond it, a connection is answered 503.
    pub connections: usize,
    /// How long a connection may take to send a whole request head, across all reads
    /// (default 5 s). Past it the connection is closed, with a 408 if it was its first
    /// request. Must be above zero.
    pub request_deadline: Duration,
    /// How long a connection may stay open, whatever it does (default 60 s).
    pub connection_lifetime: Duration,
    /// Threads of the slow downstream's pool.
    pub downstream_threads: usize,
    /// Queue capacity of the slow downstream's pool.
    pub downstream_queue: usize,
    /// How long a request may wait for the `cpu` pool before it is shed (503).
    pub cpu_max_wait: Duration,
    /// How long a request may wait for the `downstream` pool before it is shed (503).
    pub downstream_max_wait: Duration,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            connections: 256,
            request_deadline: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(60),
            downstream_threads: 2,
            downstream_queue: 4,
            cpu_max_wait: Duration::from_millis(500),
            downstream_max_wait: Duration::from_secs(2),
        }
    }
}

/// Carries the request id from the submitting thread into the pool, and clears it afterwards.
fn with_request_id(p: bulkhead::PoolBuilder) -> bulkhead::PoolBuilder {
    p.context(
        || REQUEST_ID.with(Cell::get),
        |id| {
            REQUEST_ID.with(|r| r.set(id));
            bulkhead::on_drop(|| REQUEST_ID.with(|r| r.set(0)))
        },
    )
}

/// The service's bulkheads: `cpu` and `downstream`.
pub fn build_runtime(sizes: Sizes) -> Result<Runtime, bulkhead::BuildError> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Runtime::builder()
        .pool("cpu", |p| {
            with_request_id(p)
                .threads(cores)
                .queue_capacity(64)
                .max_queue_wait(sizes.cpu_max_wait)
        })
        .pool("downstream", |p| {
            with_request_id(p)
                .threads(sizes.downstream_threads)
                .queue_capacity(sizes.downstream_queue)
                .max_queue_wait(sizes.downstream_max_wait)
        })
        .build()
}

/// What `/slow` calls: the simulated downstream. Returns the response body.
pub type Downstream = Arc<dyn Fn() -> String + Send + Sync>;

/// The handlers' state.
#[derive(Clone)]
struct App {
    cpu: Pool,
    downstream: Pool,
    /// Weak, so that the server never holds the last reference to the runtime.
    rt: Weak<Runtime>,
    call_downstream: Downstream,
    next_id: Arc<AtomicU64>,
}

/// What the server did with its connections, for the tests and the curious.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections being served now.
    pub open: AtomicU64,
    /// Connections beyond the limit answered 503.
    pub answered_busy: AtomicU64,
    /// Connections beyond the limit closed without an answer (every responder was busy).
    pub closed_busy: AtomicU64,
    /// Connections answered 408 (request head not in within the deadline).
    pub timed_out: AtomicU64,
}

/// The router: `/fast`, `/slow` and `/metrics`; anything else is 404.
fn router(app: App) -> Router {
    Router::new()
        .route("/fast", get(fast))
        .route("/slow", get(slow))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Runs `submit` with the request id set on this thread, so that the pool's context hook
/// captures it; no `.await` in between, so the id cannot leak to another request.
fn with_id<T>(id: u64, submit: impl FnOnce() -> T) -> T {
    REQUEST_ID.with(|r| r.set(id));
    let out = submit();
    REQUEST_ID.with(|r| r.set(0));
    out
}

async fn fast(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    // `?n=N`, at most 35 (about a tenth of a second); 25 if absent or unreadable.
    let n = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("n=")))
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(25)
        .min(35);
    let id = app.next_id.fetch_add(1, Ordering::Relaxed);
    let submitted = with_id(id, || {
        app.cpu.try_submit(move || {
            let request = REQUEST_ID.with(Cell::get);
            format!("fib({n}) = {} (request {request})\n", fib(n))
        })
    });
    answer(id, submitted).await
}

async fn slow(State(app): State<App>) -> Response {
    let id = app.next_id.fetch_add(1, Ordering::Relaxed);
    let call = app.call_downstream.clone();
    let submitted = with_id(id, || app.downstream.try_submit(move || call()));
    answer(id, submitted).await
}

/// Awaits the task's handle and turns its outcome into a response: 200 with the body, 503
/// with `Retry-After: 1` for a refusal, an expiry, a shed or a cancellation, 500 for a panic.
async fn answer<F>(id: u64, submitted: Result<TaskHandle<String>, SubmitError<F>>) -> Response {
    let result = match submitted {
        Ok(handle) => handle.await,
        Err(refused) => return unavailable(id, &refused.to_string()),
    };
    match result {
        Ok(body) => (StatusCode::OK, [("x-request-id", id.to_string())], body).into_response(),
        Err(e @ TaskError::Panicked(_)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        Err(e) => unavailable(id, &e.to_string()),
    }
}

fn unavailable(id: u64, why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, HeaderValue::from_static("1")),
            (header::HeaderName::from_static("x-request-id"), id.into()),
        ],
        format!("{why}\n"),
    )
        .into_response()
}

/// The Prometheus text of every pool. A snapshot takes well under a millisecond, so it is
/// taken on the tokio task.
async fn metrics(State(app): State<App>) -> Response {
    let Some(rt) = app.rt.upgrade() else {
        return unavailable(0, "shutting down");
    };
    let text = rt.snapshot().to_prometheus();
    (
        [(header::CONTENT_TYPE, bulkhead::PROMETHEUS_CONTENT_TYPE)],
        text,
    )
        .into_response()
}

fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// Serves on `listener` until `shutdown` completes; the work runs on `rt`'s pools, which
/// must have been built by [`build_runtime`]. Connections still open then are left to
/// finish on their tokio tasks.
pub async fn serve(
    listener: TcpListener,
    rt: &Arc<Runtime>,
    sizes: Sizes,
    call_downstream: Downstream,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let app = App {
        cpu: rt.pool("cpu").map_err(io::Error::other)?,
        downstream: rt.pool("downstream").map_err(io::Error::other)?,
        rt: Arc::downgrade(rt),
        call_downstream,
        next_id: Arc::new(AtomicU64::new(1)),
    };
    let router = router(app);
    let connections = Arc::new(Semaphore::new(sizes.connections));
    let responders = Arc::new(Semaphore::new(BUSY_RESPONDERS));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: try again a moment later.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Never waits: a connection beyond the limit goes to a responder, or is closed.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            match responders.clone().try_acquire_owned() {
                Ok(responder) => {
                    counters.answered_busy.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let _responder = responder;
                        canned(stream, BUSY).await;
                    });
                }
                Err(_) => {
                    counters.closed_busy.fetch_add(1, Ordering::Relaxed);
                }
            }
            continue;
        };
        let (router, counters) = (router.clone(), counters.clone());
        tokio::spawn(async move {
            let _permit = permit;
            counters.open.fetch_add(1, Ordering::Relaxed);
            let _ = serve_connection(stream, router, sizes, &counters).await;
            counters.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The answer to a connection beyond the limit.
const BUSY: (&str, &str, &str) = (
    "503 Service Unavailable",
    "retry-after: 1\r\n",
    "the server is at its connection limit\n",
);
/// The answer to a connection whose first request head missed the deadline.
const TIMED_OUT: (&str, &str, &str) = (
    "408 Request Timeout",
    "",
    "the request head did not arrive in time\n",
);

/// One connection: HTTP/1.1 through hyper, with the request deadline and the lifetime.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    sizes: Sizes,
    counters: &Counters,
) -> io::Result<()> {
    // A second handle on the socket, to answer 408 once hyper has given up on it.
    let std_stream = stream.into_std()?;
    let spare = std_stream.try_clone()?;
    let stream = TcpStream::from_std(std_stream)?;
    let served = Arc::new(AtomicU64::new(0));
    let counted = served.clone();
    let service = hyper::service::service_fn(move |req| {
        counted.fetch_add(1, Ordering::Relaxed);
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(sizes.request_deadline)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(sizes.connection_lifetime, conn).await {
        Ok(Err(e)) if e.is_timeout() && served.load(Ordering::Relaxed) == 0 => {
            counters.timed_out.fetch_add(1, Ordering::Relaxed);
            canned(TcpStream::from_std(spare)?, TIMED_OUT).await;
        }
        _ => {}
    }
    Ok(())
}

/// Writes a whole canned answer (bounded by [`WRITE_DEADLINE`]), then closes the
/// connection after draining it for [`LINGER`].
async fn canned(mut stream: TcpStream, (status, headers, body): (&str, &str, &str)) {
    let answer = format!(
        "HTTP/1.1 {status}\r\n{headers}content-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = stream.write_all(answer.as_bytes());
    if let Ok(Ok(())) = tokio::time::timeout(WRITE_DEADLINE, write).await {
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(LINGER, async {
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = arg("--port").unwrap_or(0);
    let seconds = arg("--seconds").unwrap_or(600);
    let sizes = Sizes::default();
    let rt = Arc::new(build_runtime(sizes)?);
    let listener = TcpListener::bind(("127.0.0.1", u16::try_from(port)?)).await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    println!("bulkhead service example (axum) on {base} for {seconds} s (Ctrl-C to stop)");
    println!("  curl {base}/fast?n=25     CPU work on pool \"cpu\"");
    println!(
        "  curl {base}/slow          a 1 s downstream call on pool \"downstream\" ({} threads, queue {})",
        sizes.downstream_threads, sizes.downstream_queue
    );
    println!("  curl {base}/metrics       Prometheus metrics of every pool");
    println!("flood /slow and see 503 + Retry-After there while /fast still answers 200:");
    println!(
        "  for i in $(seq 20); do curl -s -o /dev/null -w '%{{http_code}} ' {base}/slow & done; \
         curl -s {base}/fast; wait; echo"
    );
    let downstream: Downstream = Arc::new(|| {
        let started = std::time::Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        format!(
            "downstream answered after {:?} (request {})\n",
            started.elapsed(),
            REQUEST_ID.with(Cell::get)
        )
    });
    let stop = async move {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    serve(listener, &rt, sizes, downstream, Arc::default(), stop).await?;
    let rt = Arc::try_unwrap(rt).map_err(|_| "the runtime is still shared")?;
    // Off the tokio threads: shutting down waits for the workers.
    let report =
        tokio::task::spawn_blocking(move || rt.shutdown_timeout(Duration::from_secs(5))).await?;
    println!("{report}");
    Ok(())
}
