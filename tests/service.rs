//! The service example (examples/service.rs) over real HTTP on loopback: a flooded slow
//! endpoint answers 503 with Retry-After while the fast endpoint still answers 200, and
//! /metrics shows the refusals. Outcomes only, never speed; every wait is bounded.

#[path = "../examples/service.rs"]
#[allow(dead_code, unreachable_pub)]
mod service;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const HANG_GUARD: Duration = Duration::from_secs(30);

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

#[test]
fn a_flooded_slow_endpoint_answers_503_while_the_fast_one_answers_200() {
    // Queue-wait limits far above any scheduling delay: every 503 here is a refusal.
    let sizes = service::Sizes {
        downstream_threads: 1,
        downstream_queue: 2,
        cpu_max_wait: HANG_GUARD,
        downstream_max_wait: HANG_GUARD,
    };
    let rt = Arc::new(service::build_runtime(sizes).unwrap());
    let gate = Gate::default();
    let hang = gate.clone();
    let downstream: service::Downstream = Arc::new(move || {
        hang.wait();
        "downstream answered\n".to_owned()
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (rt, stop) = (rt.clone(), stop.clone());
        thread::spawn(move || service::serve(listener, &rt, downstream, &stop))
    };
    let downstream_pool = rt.pool("downstream").unwrap();

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
    assert!(metrics
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain"));
    let line =
        format!("bulkhead_tasks_refused_total{{pool=\"downstream\",reason=\"full\"}} {refused}");
    assert!(
        metrics.body.contains(&line),
        "no {line:?} in\n{}",
        metrics.body
    );

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

    // Unknown paths and methods.
    assert_eq!(get(&addr, "/nope").status, 404);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap().unwrap();
    let rt = Arc::try_unwrap(rt).expect("the server kept no reference to the runtime");
    let report = rt.shutdown_timeout(HANG_GUARD);
    assert!(!report.timed_out, "{report}");
}

#[test]
fn the_request_id_follows_the_request_into_the_pools() {
    let sizes = service::Sizes {
        cpu_max_wait: HANG_GUARD,
        ..service::Sizes::default()
    };
    let rt = Arc::new(service::build_runtime(sizes).unwrap());
    let downstream: service::Downstream = Arc::new(|| "ok\n".to_owned());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (rt, stop) = (rt.clone(), stop.clone());
        thread::spawn(move || service::serve(listener, &rt, downstream, &stop))
    };
    for _ in 0..3 {
        let r = get(&addr, "/fast?n=3");
        assert_eq!(r.status, 200);
        let id = r.header("X-Request-Id").unwrap();
        // Set on the http pool, seen inside the cpu pool through the context hook.
        assert!(
            r.body.ends_with(&format!("(request {id})\n")),
            "{} vs {id}",
            r.body
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap().unwrap();
}
