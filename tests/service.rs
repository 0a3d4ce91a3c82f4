//! The service example (examples/service.rs, axum on tokio) over real HTTP on loopback: a
//! flooded slow endpoint answers 503 with Retry-After while the fast endpoint still answers
//! 200, and /metrics shows the refusals in a valid exposition; the request id follows the
//! request into the pools; slow clients trickling their request head are cut off at the
//! request deadline with a 408 while the fast endpoint still answers 200; connections beyond
//! the connection limit are answered 503. Outcomes only, never speed; every wait is bounded
//! by the hang guard.

#[path = "../examples/service.rs"]
#[allow(dead_code, unreachable_pub)]
mod service;
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::HANG_GUARD;

/// A downstream that hangs until opened (or the hang guard passes).
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, cv) = &*self.0;
        let deadline = Instant::now() + HANG_GUARD;
        let mut open = open.lock().unwrap();
        while !*open && Instant::now() < deadline {
            open = cv.wait_timeout(open, Duration::from_millis(100)).unwrap().0;
        }
    }

    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn send_request(addr: &str, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s
}

fn read_response(mut s: TcpStream) -> Response {
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn get(addr: &str, path: &str) -> Response {
    read_response(send_request(addr, path))
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// The example's server on an ephemeral loopback port, on its own tokio runtime (two
/// worker threads), stopped by [`Server::stop`].
struct Server {
    rt: Arc<bulkhead::Runtime>,
    addr: String,
    counters: Arc<service::Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    fn start(sizes: service::Sizes) -> Server {
        Server::with_downstream(sizes, Arc::new(|| "ok\n".to_owned()))
    }

    fn with_downstream(sizes: service::Sizes, downstream: service::Downstream) -> Server {
        let rt = Arc::new(service::build_runtime(sizes).unwrap());
        let counters = Arc::new(service::Counters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = {
            let (rt, counters) = (rt.clone(), counters.clone());
            thread::spawn(move || {
                let tokio = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                tokio.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    addr_tx.send(listener.local_addr()?.to_string()).unwrap();
                    let stopped = async move {
                        let _ = stopped.await;
                    };
                    service::serve(listener, &rt, sizes, downstream, counters, stopped).await
                })?;
                // Connections still open are dropped with the tokio runtime.
                tokio.shutdown_timeout(HANG_GUARD);
                Ok(())
            })
        };
        let addr = addr_rx
            .recv_timeout(HANG_GUARD)
            .expect("the server to listen");
        Server {
            rt,
            addr,
            counters,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap().unwrap();
        let rt = Arc::try_unwrap(self.rt).expect("the server kept no reference to the runtime");
        let report = rt.shutdown_timeout(HANG_GUARD);
        assert!(!report.timed_out, "{report}");
    }
}

#[test]
fn a_flooded_slow_endpoint_answers_503_while_the_fast_one_answers_200() {
    // Queue-wait limits far above any scheduling delay: every 503 here is a refusal.
    let sizes = service::Sizes {
        downstream_threads: 1,
        downstream_queue: 2,
        cpu_max_wait: HANG_GUARD,
        downstream_max_wait: HANG_GUARD,
        ..service::Sizes::default()
    };
    let gate = Gate::default();
    let hang = gate.clone();
    let downstream: service::Downstream = Arc::new(move || {
        hang.wait();
        "downstream answered\n".to_owned()
    });
    let server = Server::with_downstream(sizes, downstream);
    let addr = server.addr.clone();
    let downstream_pool = server.rt.pool("downstream").unwrap();

    // Before the flood: both endpoints answer.
    let fast = get(&addr, "/fast?n=10");
    assert_eq!(fast.status, 200, "{}", fast.body);
    assert!(fast.body.contains("fib(10) = 55"), "{}", fast.body);

    // Flood /slow one request at a time, each counted by the downstream pool before the
    // next, so that at most threads + queue (3) are accepted and the rest refused.
    const FLOOD: usize = 8;
    let mut slow = Vec::new();
    for i in 0..FLOOD {
        slow.push(send_request(&addr, "/slow"));
        wait_until("the downstream pool to see the request", || {
            downstream_pool.stats().submitted == (i + 1) as u64
        });
    }
    let refused = downstream_pool.stats().refused_full;
    assert!(refused >= (FLOOD - 3) as u64, "only {refused} refused");

    // While "downstream" is hung and full, /fast still answers, and /metrics shows it.
    for n in [5, 15, 20] {
        let r = get(&addr, &format!("/fast?n={n}"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let metrics = get(&addr, "/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let line =
        format!("bulkhead_tasks_refused_total{{pool=\"downstream\",reason=\"full\"}} {refused}");
    assert!(
        metrics.body.contains(&line),
        "no {line:?} in\n{}",
        metrics.body
    );
    support::prometheus::parse(&metrics.body).expect("a valid exposition");
    support::prometheus::promtool_check("the service's /metrics", &metrics.body);

    // The downstream recovers: the accepted requests answer 200, the refused ones had 503.
    gate.open();
    let responses: Vec<_> = slow.into_iter().map(read_response).collect();
    let ok = responses.iter().filter(|r| r.status == 200).count();
    let unavailable: Vec<_> = responses.iter().filter(|r| r.status == 503).collect();
    assert_eq!(ok + unavailable.len(), FLOOD);
    assert_eq!(unavailable.len() as u64, refused);
    assert!(ok >= 1);
    for r in &unavailable {
        assert_eq!(r.header("Retry-After"), Some("1"));
    }
    assert!(responses
        .iter()
        .filter(|r| r.status == 200)
        .all(|r| r.body == "downstream answered\n"));

    // Unknown paths.
    assert_eq!(get(&addr, "/nope").status, 404);
    server.stop();
}

#[test]
fn the_request_id_follows_the_request_into_the_pools() {
    let server = Server::start(service::Sizes {
        cpu_max_wait: HANG_GUARD,
        ..service::Sizes::default()
    });
    for _ in 0..3 {
        let r = get(&server.addr, "/fast?n=3");
        assert_eq!(r.status, 200);
        let id = r.header("X-Request-Id").unwrap();
        // Set by the handler on the tokio thread, seen inside the cpu pool through the
        // context hook.
        assert!(
            r.body.ends_with(&format!("(request {id})\n")),
            "{} vs {id}",
            r.body
        );
    }
    server.stop();
}

/// How often a slow client sends one more byte of its request head.
const TRICKLE: Duration = Duration::from_millis(50);

/// Opens a connection and sends the start of a request head, then one more byte every
/// [`TRICKLE`] (never the blank line that ends the head) until the server ends the
/// connection. Returns what the server sent, or `None` if it had not ended the connection
/// within [`HANG_GUARD`].
fn slow_request(addr: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).unwrap();
    // The read timeout paces the trickle: no byte from the server in TRICKLE, send one more.
    s.set_read_timeout(Some(TRICKLE)).unwrap();
    s.write_all(b"GET /fast HTTP/1.1\r\nX-Slow: ").unwrap();
    let give_up = Instant::now() + HANG_GUARD;
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    // Bounded in time (HANG_GUARD) and count (each turn reads a byte or waits TRICKLE).
    for _ in 0..1_000_000 {
        if Instant::now() >= give_up {
            return None;
        }
        match s.read(&mut buf) {
            Ok(0) => return Some(answer),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Fails only once the server has closed; the next read then ends the loop.
                let _ = s.write_all(b"a");
            }
            // Reset by the server: it ended the connection.
            Err(_) => return Some(answer),
        }
    }
    None
}

#[test]
fn slow_clients_are_cut_off_at_the_request_deadline_while_fast_answers_200() {
    let sizes = service::Sizes {
        request_deadline: Duration::from_millis(300),
        connections: 16,
        cpu_max_wait: HANG_GUARD,
        ..service::Sizes::default()
    };
    let server = Server::start(sizes);

    // Slow clients, each reconnecting as soon as it is cut off, so that slow connections
    // are open all the time until `done`.
    let slow_clients: u64 = 6;
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..slow_clients)
        .map(|_| {
            let (addr, done) = (server.addr.clone(), done.clone());
            thread::spawn(move || {
                let started = Instant::now();
                let mut answers = Vec::new();
                // Bounded in count and time; the last connection runs until the server ends
                // it, or the hang guard passes.
                for _ in 0..10_000 {
                    let answer = slow_request(&addr);
                    let gave_up = answer.is_none();
                    answers.push(answer);
                    if gave_up || done.load(Ordering::Relaxed) || started.elapsed() > HANG_GUARD {
                        break;
                    }
                }
                answers
            })
        })
        .collect();
    wait_until(
        "the slow clients to be connected and one to be cut off",
        || {
            server.counters.open.load(Ordering::Relaxed) >= slow_clients
                && server.counters.timed_out.load(Ordering::Relaxed) >= 1
        },
    );

    // Every request here is served next to the slow clients, and answered.
    for n in [5, 10, 15, 20, 25] {
        let r = get(&server.addr, &format!("/fast?n={n}"));
        assert_eq!(r.status, 200, "{}", r.body);
    }

    // Every slow connection was ended by the server, with a 408, before the hang guard.
    done.store(true, Ordering::Relaxed);
    for client in clients {
        let answers = client.join().unwrap();
        assert!(!answers.is_empty());
        for answer in answers {
            let answer = answer.expect("a slow client was not cut off within the hang guard");
            assert!(
                answer.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"),
                "{:?}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
    server.stop();
}

#[test]
fn connections_beyond_the_limit_are_answered_503() {
    // One connection at a time, and a request deadline far above the test, so that the
    // connection stays held until the test lets go.
    let sizes = service::Sizes {
        connections: 1,
        request_deadline: HANG_GUARD,
        cpu_max_wait: HANG_GUARD,
        ..service::Sizes::default()
    };
    let server = Server::start(sizes);

    // Half a request head holds the only connection.
    let mut holder = TcpStream::connect(&server.addr).unwrap();
    holder.set_read_timeout(Some(HANG_GUARD)).unwrap();
    holder.write_all(b"GET /fast?n=3 HTTP/1.1\r\n").unwrap();
    wait_until("the slow client to hold the connection", || {
        server.counters.open.load(Ordering::Relaxed) == 1
    });

    // Every further connection is answered 503 without waiting for room.
    const REFUSED: u64 = 8;
    for _ in 0..REFUSED {
        let r = get(&server.addr, "/fast?n=3");
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.header("Retry-After"), Some("1"));
    }
    assert_eq!(
        server.counters.answered_busy.load(Ordering::Relaxed),
        REFUSED
    );

    // The held request completes and is answered; then connections are taken again.
    holder
        .write_all(b"Host: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(holder);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until("/fast to answer 200 again", || {
        get(&server.addr, "/fast?n=3").status == 200
    });
    server.stop();
}
