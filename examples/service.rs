//! A small HTTP service (std's `TcpListener`, loopback only) whose endpoints hand their work
//! to separate bulkheads:
//!
//! | endpoint        | work                                  | pool                          |
//! |-----------------|---------------------------------------|-------------------------------|
//! | `GET /fast?n=N` | CPU work (Fibonacci by recursion)     | `cpu`                         |
//! | `GET /slow`     | a call to a slow downstream (a sleep) | `downstream` (small queue)    |
//! | `GET /metrics`  | Prometheus text of every pool         | answered on the `http` pool   |
//!
//! Connections are parsed on the `http` pool; the work goes to `cpu` or `downstream` with the
//! connection's [`Reply`] inside the closure, so **no thread of one compartment is parked on
//! another**: the `http` workers hand the request on and return at once. When a bulkhead
//! refuses (queue full), sheds (the request waited past `max_queue_wait`) or is shut down,
//! the closure is dropped and the `Reply` answers `503 Service Unavailable` with
//! `Retry-After: 1`. A flood of `/slow` therefore fills and overflows `downstream` only:
//! `/fast` keeps answering 200.
//!
//! Slow clients cannot hold the `http` workers: a connection must deliver its whole request
//! head within [`Sizes::request_deadline`], counted once from the moment an `http` worker
//! takes it, not per read, so a client that trickles a byte now and then is answered
//! `408 Request Timeout` and its worker freed at the deadline. The accept loop never waits
//! on a connection it cannot place: it hands each one to `http` with a submission that never
//! blocks, and a refused one goes, still unanswered, to a fourth bulkhead, `busy` (one
//! thread, small queue), which answers `503` with `Retry-After: 1`; if `busy` is full as well
//! the connection is simply closed. Writing an answer and draining the connection before
//! closing it are bounded as a whole too (5 s and 100 ms).
//!
//! A request id, set by the `http` worker for each request, follows the request into `cpu`
//! and `downstream` through their context hooks (`PoolBuilder::context`) and comes back in
//! the `X-Request-Id` header.
//!
//! Run with `cargo run --example service` (prints where to point curl); `--port N` picks the
//! port (default: any free one), `--seconds N` how long to serve (default 600).
//! `tests/service.rs` drives the same server over real HTTP.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use bulkhead::{Pool, Runtime};

/// How long writing a response may take, as a whole.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a closed connection is drained, as a whole, so that closing it does not reset it
/// before the client has read the answer.
const LINGER: Duration = Duration::from_millis(100);
/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Queue capacity of the `busy` pool, which answers 503 to connections `http` refused.
const BUSY_QUEUE: usize = 16;

thread_local! {
    /// The id of the request this thread works on (0: none).
    static REQUEST_ID: Cell<u64> = const { Cell::new(0) };
}

/// The sizes and limits that matter for the demonstration.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Threads of the `http` pool, which reads request heads (default 4).
    pub http_threads: usize,
    /// Queue capacity of the `http` pool: accepted connections waiting for an `http` worker
    /// (default 16; 0: a connection is taken only if a worker is idle). Beyond it, a
    /// connection is answered 503 by the `busy` pool.
    pub http_queue: usize,
    /// How long a connection may take to send its whole request head, counted from the
    /// moment an `http` worker takes it, across all reads (default 5 s). Past it the client is
    /// answered 408 and the worker is free again. Must be above zero.
    pub request_deadline: Duration,
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
            http_threads: 4,
            http_queue: 16,
            request_deadline: Duration::from_secs(5),
            downstream_threads: 2,
            downstream_queue: 4,
            cpu_max_wait: Duration::from_millis(500),
            downstream_max_wait: Duration::from_secs(2),
        }
    }
}

/// Carries the request id from the `http` worker into the pool, and clears it afterwards.
fn with_request_id(p: bulkhead::PoolBuilder) -> bulkhead::PoolBuilder {
    p.context(
        || REQUEST_ID.with(Cell::get),
        |id| {
            REQUEST_ID.with(|r| r.set(id));
            bulkhead::on_drop(|| REQUEST_ID.with(|r| r.set(0)))
        },
    )
}

/// The service's bulkheads: `http` (request heads), `busy` (503 to the connections `http`
/// refused), `cpu` and `downstream`.
pub fn build_runtime(sizes: Sizes) -> Result<Runtime, bulkhead::BuildError> {
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    Runtime::builder()
        .pool("http", |p| {
            p.threads(sizes.http_threads)
                .queue_capacity(sizes.http_queue)
        })
        .pool("busy", |p| p.threads(1).queue_capacity(BUSY_QUEUE))
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

#[derive(Clone)]
struct Service {
    /// Where request heads are read and requests dispatched.
    http: Pool,
    /// Where refused connections are answered 503.
    busy: Pool,
    request_deadline: Duration,
    cpu: Pool,
    downstream: Pool,
    /// Weak, so that a task never holds the last reference to the runtime it runs on.
    rt: Weak<Runtime>,
    call_downstream: Downstream,
    next_id: Arc<AtomicU64>,
}

/// Serves on `listener` until `stop` is set; every connection is handled on `rt`'s pools.
/// `rt` must have been built by [`build_runtime`] with the same `sizes`.
pub fn serve(
    listener: TcpListener,
    rt: &Arc<Runtime>,
    sizes: Sizes,
    call_downstream: Downstream,
    stop: &AtomicBool,
) -> io::Result<()> {
    let svc = Service {
        http: rt.pool("http").map_err(io::Error::other)?,
        busy: rt.pool("busy").map_err(io::Error::other)?,
        request_deadline: sizes.request_deadline,
        cpu: rt.pool("cpu").map_err(io::Error::other)?,
        downstream: rt.pool("downstream").map_err(io::Error::other)?,
        rt: Arc::downgrade(rt),
        call_downstream,
        next_id: Arc::new(AtomicU64::new(1)),
    };
    // Non-blocking accept, so the loop sees `stop` within a few milliseconds.
    listener.set_nonblocking(true)?;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let conn = Accepted {
                    stream: Some(stream),
                    busy: svc.busy.clone(),
                };
                let svc2 = svc.clone();
                // Never blocks. Refused, the closure comes back and is dropped here, and the
                // dropped `Accepted` passes the connection on to `busy`: no I/O on this thread.
                let _ = svc.http.execute(move || handle(conn, &svc2));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An accepted connection on its way to an `http` worker. Dropped before a worker takes it
/// (the `http` pool refused it, or cancelled it at shutdown), it is handed to the `busy`
/// pool, which answers 503; if `busy` refuses it too, it is closed. The thread that drops it
/// does no I/O on it, so a refused connection never makes the accept loop wait.
struct Accepted {
    stream: Option<TcpStream>,
    busy: Pool,
}

impl Accepted {
    fn take(mut self) -> Option<TcpStream> {
        self.stream.take()
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            // Refused by `busy` too: the closure, and the stream in it, is dropped: closed.
            let _ = self.busy.execute(move || {
                if let Ok(reply) = Reply::new(stream) {
                    // Dropped unsent, it answers 503 with Retry-After, bounded in time.
                    drop(reply);
                }
            });
        }
    }
}

/// Reads one request head and hands the request on; runs on the `http` pool.
fn handle(conn: Accepted, svc: &Service) {
    let Some(Ok(mut reply)) = conn.take().map(Reply::new) else {
        return;
    };
    let target = match reply.read_request_target(svc.request_deadline) {
        Ok(target) => target,
        Err(HeadError::TimedOut) => {
            return reply.send("408 Request Timeout", "text/plain", "request timeout\n")
        }
        Err(HeadError::Bad) => return reply.send("400 Bad Request", "text/plain", "bad request\n"),
    };
    let id = svc.next_id.fetch_add(1, Ordering::Relaxed);
    REQUEST_ID.with(|r| r.set(id));
    reply.request_id = id;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    match path {
        "/fast" => {
            let n = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("n="))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(25)
                .min(32);
            // On refusal or expiry the closure, and its Reply, is dropped: 503.
            let _ = svc.cpu.execute(move || {
                let f = fib(n);
                let body = format!("fib({n}) = {f} (request {})\n", REQUEST_ID.with(Cell::get));
                reply.send("200 OK", "text/plain", &body);
            });
        }
        "/slow" => {
            let call = svc.call_downstream.clone();
            let _ = svc.downstream.execute(move || {
                let body = call();
                reply.send("200 OK", "text/plain", &body);
            });
        }
        "/metrics" => match svc.rt.upgrade() {
            Some(rt) => {
                let text = rt.snapshot().to_prometheus();
                reply.send("200 OK", "text/plain; version=0.0.4", &text);
            }
            None => drop(reply), // shutting down: 503
        },
        "/" => reply.send(
            "200 OK",
            "text/plain",
            "endpoints: /fast?n=N (cpu), /slow (downstream), /metrics\n",
        ),
        _ => reply.send("404 Not Found", "text/plain", "not found\n"),
    }
    // Nothing here waits for the work just handed on: this worker is free again.
    REQUEST_ID.with(|r| r.set(0));
}

fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// Why no request target could be read from a connection.
#[derive(Debug)]
enum HeadError {
    /// The whole head did not arrive within the request deadline.
    TimedOut,
    /// Too large, not a GET, not HTTP, or the connection closed or failed first.
    Bad,
}

/// One connection's answer. Dropped without [`send`](Reply::send), it answers
/// `503 Service Unavailable` with `Retry-After: 1` (or 500 if dropped by a panic): that is how
/// a refused, shed or cancelled request is answered without any code on those paths.
#[derive(Debug)]
pub struct Reply {
    stream: Option<TcpStream>,
    request_id: u64,
}

impl Reply {
    fn new(stream: TcpStream) -> io::Result<Reply> {
        // Timeouts are set before each read and write, from a deadline for the whole.
        stream.set_nonblocking(false)?;
        Ok(Reply {
            stream: Some(stream),
            request_id: 0,
        })
    }

    /// Reads the request head, bounded in size and, as a whole, by `deadline` from now, and
    /// returns the target of a GET.
    fn read_request_target(&mut self, deadline: Duration) -> Result<String, HeadError> {
        let stream = self.stream.as_mut().ok_or(HeadError::Bad)?;
        let until = Instant::now() + deadline;
        let mut head = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        // Bounded: every turn checks the deadline first, and reads at most MAX_HEAD bytes.
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if head.len() > MAX_HEAD {
                return Err(HeadError::Bad);
            }
            // Each read may take only what is left of the whole deadline, so a client that
            // trickles a byte at a time cannot push it back.
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                return Err(HeadError::TimedOut);
            }
            match stream.read(&mut buf) {
                Ok(0) => return Err(HeadError::Bad),
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(HeadError::TimedOut)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(HeadError::Bad),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let mut parts = head
            .lines()
            .next()
            .ok_or(HeadError::Bad)?
            .split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("GET"), Some(target)) => Ok(target.to_owned()),
            _ => Err(HeadError::Bad),
        }
    }

    /// Writes the response and closes the connection.
    pub fn send(mut self, status: &str, content_type: &str, body: &str) {
        self.write(status, content_type, &[], body);
    }

    fn write(&mut self, status: &str, content_type: &str, extra: &[&str], body: &str) {
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Connection: close\r\nX-Request-Id: {}\r\n",
            body.len(),
            self.request_id
        );
        for h in extra {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.push_str(body);
        let _ = write_all_by(
            &mut stream,
            head.as_bytes(),
            Instant::now() + WRITE_DEADLINE,
        );
        // Close our side, then read what the client may still send, for at most LINGER as a
        // whole, so that the close does not reset the connection before the client read the
        // answer.
        let _ = stream.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER;
        let mut sink = [0u8; 1024];
        for _ in 0..64 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

/// Writes all of `bytes` by `until`: each write may take only what is left, so a client that
/// reads a byte at a time cannot stretch it.
fn write_all_by(stream: &mut TcpStream, mut bytes: &[u8], until: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Drop for Reply {
    fn drop(&mut self) {
        if thread::panicking() {
            self.write(
                "500 Internal Server Error",
                "text/plain",
                &[],
                "internal error\n",
            );
        } else {
            self.write(
                "503 Service Unavailable",
                "text/plain",
                &["Retry-After: 1"],
                "busy: this endpoint's bulkhead is full, try again later\n",
            );
        }
    }
}

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

#[allow(dead_code)] // the test includes this file as a module and calls `serve` directly
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = arg("--port").unwrap_or(0);
    let seconds = arg("--seconds").unwrap_or(600);
    let sizes = Sizes::default();
    let rt = Arc::new(build_runtime(sizes)?);
    let listener = TcpListener::bind(("127.0.0.1", u16::try_from(port)?))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    println!("bulkhead service example listening on {base} for {seconds} s (Ctrl-C to stop)");
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

    let stop = Arc::new(AtomicBool::new(false));
    let timer_stop = stop.clone();
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(seconds));
        timer_stop.store(true, Ordering::Relaxed);
    });
    let downstream: Downstream = Arc::new(|| {
        let started = Instant::now();
        thread::sleep(Duration::from_secs(1));
        format!(
            "downstream answered after {:?} (request {})\n",
            started.elapsed(),
            REQUEST_ID.with(Cell::get)
        )
    });
    serve(listener, &rt, sizes, downstream, &stop)?;
    let report = rt.shutdown_timeout(Duration::from_secs(5));
    println!("{report}");
    Ok(())
}
