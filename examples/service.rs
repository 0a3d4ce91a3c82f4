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

/// How long a connection may take to send its request or accept the response.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;

thread_local! {
    /// The id of the request this thread works on (0: none).
    static REQUEST_ID: Cell<u64> = const { Cell::new(0) };
}

/// The sizes and limits that matter for the demonstration.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
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
            bulkhead::hooks::on_drop(|| REQUEST_ID.with(|r| r.set(0)))
        },
    )
}

/// The service's bulkheads: `http` (connections), `cpu` and `downstream`.
pub fn build_runtime(sizes: Sizes) -> Result<Runtime, bulkhead::BuildError> {
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    Runtime::builder()
        .pool("http", |p| p.threads(4).queue_capacity(64))
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
    /// Where connections are parsed.
    http: Pool,
    cpu: Pool,
    downstream: Pool,
    /// Weak, so that a task never holds the last reference to the runtime it runs on.
    rt: Weak<Runtime>,
    call_downstream: Downstream,
    next_id: Arc<AtomicU64>,
}

/// Serves on `listener` until `stop` is set; every connection is handled on `rt`'s pools.
/// `rt` must have been built by [`build_runtime`].
pub fn serve(
    listener: TcpListener,
    rt: &Arc<Runtime>,
    call_downstream: Downstream,
    stop: &AtomicBool,
) -> io::Result<()> {
    let svc = Service {
        http: rt.pool("http").map_err(io::Error::other)?,
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
                let svc2 = svc.clone();
                let Ok(reply) = Reply::new(stream) else {
                    continue;
                };
                // Refused: the closure comes back and is dropped here; its Reply answers 503.
                let _ = svc.http.execute(move || handle(reply, &svc2));
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

/// Parses one request and hands it on; runs on the `http` pool.
fn handle(mut reply: Reply, svc: &Service) {
    let Some(target) = reply.read_request_target() else {
        return reply.send("400 Bad Request", "text/plain", "bad request\n");
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
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Reply {
            stream: Some(stream),
            request_id: 0,
        })
    }

    /// Reads the request head (bounded in size and time) and returns the target of a GET.
    fn read_request_target(&mut self) -> Option<String> {
        let stream = self.stream.as_mut()?;
        let mut head = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if head.len() > MAX_HEAD {
                return None;
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let mut parts = head.lines().next()?.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("GET"), Some(target)) => Some(target.to_owned()),
            _ => None,
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
        let _ = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()));
        // Close our side, then read what the client may still send (bounded), so that the
        // close does not reset the connection before the client read the answer.
        let _ = stream.shutdown(Shutdown::Write);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let mut sink = [0u8; 1024];
        for _ in 0..8 {
            if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
    }
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
    serve(listener, &rt, downstream, &stop)?;
    let report = rt.shutdown_timeout(Duration::from_secs(5));
    println!("{report}");
    Ok(())
}
