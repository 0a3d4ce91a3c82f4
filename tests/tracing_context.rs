//! The tracing example's set-up, checked: a span entered on the submitting thread is the
//! current span of the task on the worker, on every task, and is exited afterwards. Its own
//! test binary, because it installs a global subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::{info, info_span, Span};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_span_is_carried_into_the_pool_and_left_afterwards() {
    let out = Buffer::default();
    let writer = out.clone();
    tracing_subscriber::fmt()
        .with_thread_names(true)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let rt = bulkhead::Runtime::builder()
        .pool("traced", |p| {
            p.threads(1).context(Span::current, Span::entered)
        })
        .build()
        .unwrap();
    let pool = rt.pool("traced").unwrap();
    for id in 1..=3 {
        let span = info_span!("request", id);
        let _e = span.enter();
        pool.try_submit(move || info!("inside task {id}"))
            .unwrap()
            .join()
            .unwrap();
    }
    pool.try_submit(|| info!("outside any request"))
        .unwrap()
        .join()
        .unwrap();

    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    for id in 1..=3 {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("inside task {id}")))
            .unwrap_or_else(|| panic!("no event of task {id} in\n{text}"));
        assert!(line.contains("traced-0"), "not on the worker: {line}");
        assert!(
            line.contains(&format!("request{{id={id}}}")),
            "not in its span: {line}"
        );
    }
    let last = text
        .lines()
        .find(|l| l.contains("outside any request"))
        .unwrap();
    assert!(
        !last.contains("request{"),
        "the span leaked into the next task: {last}"
    );
}
