//! What a task does: a calibrated busy loop, a sleep, a hang until release, an injected
//! panic, or a weighted mix of these.
//!
//! # Spin calibration
//!
//! `spin:D` runs a fixed number of iterations of a dependent arithmetic loop, worth `D` of
//! CPU time on an otherwise idle CPU. The cost of one iteration is measured once per process
//! as the **minimum** over many short trials (a preempted trial only ever looks slower), so
//! when a spinning task is preempted the preemption shows up as latency, not as less work.
//!
//! # Injected panics
//!
//! `panic:P` panics with [`InjectedPanic`] as its payload; `main` installs a panic hook that
//! stays silent for that payload and reports every other panic as usual.

use std::hint::black_box;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::spec::WorkSpec;

/// The payload of the bench's own injected panics, filtered out by the panic hook.
#[derive(Debug)]
pub(crate) struct InjectedPanic;

/// The measured cost of the spin loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spinner {
    /// Nanoseconds per iteration (minimum over the calibration trials).
    pub(crate) ns_per_iter: f64,
}

const CALIBRATION_ITERS: u64 = 20_000;
const CALIBRATION_TRIALS: usize = 200;
const CALIBRATION_BUDGET: Duration = Duration::from_millis(500);

impl Spinner {
    /// Measures the spin loop: the minimum time of up to 200 trials, within 0.5 s.
    pub(crate) fn calibrate() -> Spinner {
        let budget_end = Instant::now() + CALIBRATION_BUDGET;
        let mut best = Duration::MAX;
        for _ in 0..CALIBRATION_TRIALS {
            let t0 = Instant::now();
            spin_iters(CALIBRATION_ITERS);
            best = best.min(t0.elapsed());
            if Instant::now() > budget_end {
                break;
            }
        }
        let ns = best.as_nanos() as f64 / CALIBRATION_ITERS as f64;
        Spinner {
            ns_per_iter: ns.max(0.01),
        }
    }

    fn iters_for(&self, d: Duration) -> u64 {
        (d.as_nanos() as f64 / self.ns_per_iter).round() as u64
    }
}

/// Runs `n` iterations of a dependent multiply-xorshift chain the compiler cannot elide.
#[inline(never)]
pub(crate) fn spin_iters(n: u64) -> u64 {
    let mut x: u64 = black_box(0x9E37_79B9_7F4A_7C15);
    for i in 0..n {
        x = x.wrapping_mul(0x5851_F42D_4C95_7F2D).wrapping_add(i);
        x ^= x >> 29;
    }
    black_box(x)
}

/// Releases every `hang` task at once; the run opens it after shutdown.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    /// Blocks until the gate opens, or `cap` passes (so no task blocks forever).
    pub(crate) fn wait(&self, cap: Duration) {
        let deadline = Instant::now() + cap;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            open = match self.cv.wait_timeout(open, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Opens the gate and wakes every waiter.
    pub(crate) fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
}

/// A work spec compiled for this process: spin durations turned into iteration counts.
#[derive(Debug, Clone)]
pub(crate) enum Work {
    Spin(u64),
    Sleep(Duration),
    Hang(Arc<Gate>, Duration),
    Panic(f64),
    /// Cumulative weights and the parts they choose.
    Mix(Vec<(u64, Work)>),
    /// Phases over time: `parts[i]` from `origin + bounds[i - 1]` (the first from the start).
    Phases {
        origin: Instant,
        bounds: Vec<Duration>,
        parts: Vec<Work>,
    },
}

/// What a task will do once [`Work::pick`] resolved any mix.
#[derive(Debug)]
pub(crate) enum Action<'a> {
    Run(&'a Work),
    Panic,
}

impl Work {
    /// Compiles `spec`; `gate` and `hang_cap` serve `hang`, `origin` (the start of the
    /// measured window) is where the bounds of `phases` are measured from.
    pub(crate) fn compile(
        spec: &WorkSpec,
        spinner: &Spinner,
        gate: &Arc<Gate>,
        hang_cap: Duration,
        origin: Instant,
    ) -> Work {
        match spec {
            WorkSpec::Spin(d) => Work::Spin(spinner.iters_for(*d)),
            WorkSpec::Sleep(d) => Work::Sleep(*d),
            WorkSpec::Hang => Work::Hang(gate.clone(), hang_cap),
            WorkSpec::Panic(p) => Work::Panic(*p),
            WorkSpec::Mix(parts) => {
                let mut total = 0;
                let parts = parts
                    .iter()
                    .filter(|(w, _)| *w > 0)
                    .map(|(w, s)| {
                        total += u64::from(*w);
                        (total, Work::compile(s, spinner, gate, hang_cap, origin))
                    })
                    .collect();
                Work::Mix(parts)
            }
            WorkSpec::Phases { works, bounds } => Work::Phases {
                origin,
                bounds: bounds.clone(),
                parts: works
                    .iter()
                    .map(|w| Work::compile(w, spinner, gate, hang_cap, origin))
                    .collect(),
            },
        }
    }

    /// Decides what task number `seq` does, from a hash of `seed` and `seq` (so a run is
    /// repeatable and needs no shared random state) and, for phases, the time now.
    pub(crate) fn pick(&self, seed: u64, seq: u64) -> Action<'_> {
        let mut h = splitmix64(seed ^ seq.wrapping_mul(0xA24B_AED4_963E_E407));
        let mut w = self;
        if let Work::Phases {
            origin,
            bounds,
            parts,
        } = w
        {
            let since = Instant::now().saturating_duration_since(*origin);
            let phase = bounds.iter().take_while(|b| since >= **b).count();
            match parts.get(phase) {
                Some(part) => w = part,
                None => return Action::Run(&Work::Spin(0)),
            }
        }
        // A mix of mixes is resolved level by level; the depth is that of the spec.
        while let Work::Mix(parts) = w {
            let total = parts.last().map_or(1, |p| p.0);
            let r = h % total;
            h = splitmix64(h);
            w = match parts.iter().find(|(c, _)| r < *c) {
                Some((_, part)) => part,
                None => return Action::Run(&Work::Spin(0)),
            };
        }
        if let Work::Panic(p) = w {
            if unit_f64(h) < *p {
                return Action::Panic;
            }
        }
        Action::Run(w)
    }

    /// Does the (non-mix, non-panicking) work.
    pub(crate) fn run(&self) {
        match self {
            Work::Spin(n) => {
                spin_iters(*n);
            }
            Work::Sleep(d) => std::thread::sleep(*d),
            Work::Hang(gate, cap) => gate.wait(*cap),
            Work::Panic(_) | Work::Mix(_) | Work::Phases { .. } => {}
        }
    }
}

/// One step of the splitmix64 generator: a good 64-bit mix of its input.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps 64 random bits to a float in [0, 1).
pub(crate) fn unit_f64(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_work;

    fn compile(s: &str) -> Work {
        let spinner = Spinner { ns_per_iter: 1.0 };
        Work::compile(
            &parse_work(s).unwrap(),
            &spinner,
            &Arc::default(),
            Duration::from_secs(1),
            Instant::now(),
        )
    }

    #[test]
    fn spin_is_calibrated_in_iterations() {
        assert!(matches!(compile("spin:50us"), Work::Spin(50_000)));
        let s = Spinner::calibrate();
        assert!(s.ns_per_iter > 0.0);
    }

    #[test]
    fn panic_probability_is_respected() {
        let w = compile("panic:0.25");
        let n = (0..10_000)
            .filter(|&i| matches!(w.pick(7, i), Action::Panic))
            .count();
        assert!((2_000..3_000).contains(&n), "{n}");
        assert!(!(0..1000).any(|i| matches!(compile("panic:0").pick(1, i), Action::Panic)));
        assert!((0..1000).all(|i| matches!(compile("panic:1").pick(1, i), Action::Panic)));
    }

    #[test]
    fn mix_follows_weights() {
        let w = compile("3*spin:1us|1*sleep:1ms");
        let sleeps = (0..10_000)
            .filter(|&i| matches!(w.pick(3, i), Action::Run(Work::Sleep(_))))
            .count();
        assert!((2_000..3_000).contains(&sleeps), "{sleeps}");
    }

    #[test]
    fn phases_follow_the_clock() {
        let w = compile("phases:sleep:1ms/1h/sleep:2ms");
        assert!(
            matches!(w.pick(1, 1), Action::Run(Work::Sleep(d)) if *d == Duration::from_millis(1))
        );
        let w = compile("phases:sleep:1ms/0s/9*sleep:2ms|1*sleep:3ms");
        assert!(
            matches!(w.pick(1, 1), Action::Run(Work::Sleep(d)) if *d >= Duration::from_millis(2))
        );
    }

    #[test]
    fn gate_releases_waiters_and_caps_the_wait() {
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        let t = std::thread::spawn(move || g.wait(Duration::from_secs(30)));
        gate.open();
        t.join().unwrap();
        let closed = Gate::default();
        closed.wait(Duration::from_millis(1)); // returns at the cap
    }
}
