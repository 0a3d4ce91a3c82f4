//! Allocation counts on the hot path, with a counting global allocator: `execute` costs one
//! heap allocation per task (the boxed closure) and `try_submit` one (closure and result slot
//! fused in one cell). Counted over every thread of the process, workers included.
//!
//! This binary holds a single test so nothing else allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bulkhead::Runtime;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates to the system allocator and only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: u64 = 10_000;
/// Allowance for one-off allocations (thread-local parking state on first block, etc.),
/// independent of N.
const SLACK: u64 = 64;

/// Runs `f`, which returns how many submission attempts it made, and returns
/// (allocations, attempts).
fn measure(f: impl FnOnce() -> u64) -> (u64, u64) {
    let before = ALLOCS.load(Ordering::SeqCst);
    let attempts = f();
    (ALLOCS.load(Ordering::SeqCst) - before, attempts)
}

#[test]
#[cfg_attr(miri, ignore)] // counts 10,000 tasks' allocations: a measurement, far too slow under Miri
fn allocations_per_task() {
    let rt = Runtime::builder()
        .pool("p", |p| p.threads(2).queue_capacity(1024))
        .build()
        .unwrap();
    let pool = rt.pool("p").unwrap();
    let handles = Vec::with_capacity(N as usize);
    let mut handles = Some(handles);

    // Warm up: first blocking waits create per-thread state.
    for _ in 0..100 {
        pool.try_submit(|| ()).unwrap().join().unwrap();
    }

    // execute: one allocation per task (the box), submitter and workers together.
    // Each closure captures a value: a zero-sized closure would need no allocation at all.
    // Counts tasks that ran; cloning the Arc does not allocate.
    let done = std::sync::Arc::new(AtomicU64::new(0));
    let execute = measure(|| {
        let mut attempts = 0;
        for _ in 0..N {
            let done = done.clone();
            let mut task = move || {
                done.fetch_add(1, Ordering::Relaxed);
            };
            loop {
                attempts += 1;
                match pool.execute(task) {
                    Ok(()) => break,
                    Err(e) => {
                        task = e.into_inner();
                        std::thread::yield_now();
                    }
                }
            }
        }
        // Wait without allocating (stats() builds a String each call).
        while done.load(Ordering::Relaxed) < N {
            std::thread::yield_now();
        }
        attempts
    });

    // execute_boxed (and execute given a box): the caller's own box is the only allocation;
    // the pool queues it as it is. A refused box is handed back and resubmitted as it is.
    let boxed = measure(|| {
        let mut attempts = 0;
        for i in 0..N {
            let done = done.clone();
            let mut task: Box<dyn FnOnce() + Send> = Box::new(move || {
                done.fetch_add(1, Ordering::Relaxed);
            });
            attempts += 1;
            loop {
                let r = if i % 2 == 0 {
                    pool.execute_boxed(task)
                } else {
                    pool.execute(task)
                };
                match r {
                    Ok(()) => break,
                    Err(e) => {
                        task = e.into_inner();
                        std::thread::yield_now();
                    }
                }
            }
        }
        while done.load(Ordering::Relaxed) < 2 * N {
            std::thread::yield_now();
        }
        attempts
    });

    // try_submit + join: one allocation per task (the fused cell).
    let submit = measure(|| {
        let hs = handles.as_mut().unwrap();
        let mut attempts = 0;
        for i in 0..N {
            let mut task = move || i;
            loop {
                attempts += 1;
                match pool.try_submit(task) {
                    Ok(h) => {
                        hs.push(h);
                        break;
                    }
                    Err(e) => {
                        task = e.into_inner();
                        std::thread::yield_now();
                    }
                }
            }
        }
        for (i, h) in hs.drain(..).enumerate() {
            assert_eq!(h.join().unwrap(), i as u64);
        }
        attempts
    });

    // A refusal costs nothing extra beyond the task's own allocation, which is undone.
    // Both workers must be inside their blocking task before the queue is filled, or one
    // of them may free a slot afterwards by dequeuing its gate task.
    let gate = {
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let (started_tx, started_rx) = crossbeam_channel::unbounded::<()>();
        for _ in 0..2 {
            let (rx, started) = (rx.clone(), started_tx.clone());
            pool.execute(move || {
                started.send(()).unwrap();
                let _ = rx.recv();
            })
            .unwrap();
        }
        for _ in 0..2 {
            started_rx.recv().unwrap();
        }
        tx
    };
    while pool.execute(|| ()).is_ok() {}
    let refused = measure(|| {
        for i in 0..N {
            assert!(pool.try_submit(move || i).unwrap_err().is_full());
        }
        N
    });
    drop(gate);
    rt.shutdown();

    println!(
        "(allocations, attempts) for {N} tasks: execute {execute:?}, \
         execute_boxed {boxed:?}, try_submit+join {submit:?}, refused try_submit {refused:?}"
    );
    // One allocation per attempt (a refused attempt's box or cell is freed when the closure
    // is handed back), and nothing per task on the workers.
    for (what, (allocs, attempts)) in [
        ("execute", execute),
        // Counted per task, not per attempt: a refused box is resubmitted without a new one.
        ("execute_boxed", boxed),
        ("try_submit", submit),
        ("refused", refused),
    ] {
        assert!(attempts >= N);
        assert!(
            (attempts..=attempts + SLACK).contains(&allocs),
            "{what}: {allocs} allocations for {attempts} attempts"
        );
    }
}
