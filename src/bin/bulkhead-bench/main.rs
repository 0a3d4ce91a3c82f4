//! `bulkhead-bench`: the load-generation benchmark that shows containment side by side.
//!
//! It runs a latency-sensitive workload next to a misbehaving neighbour twice, once with
//! each workload in its own bulkhead (`isolated`) and once with both in one pool of the same
//! total size (`shared`, what one rayon or `threadpool` pool gives), plus the first workload
//! alone as the reference, and prints one table. See `docs/BENCHMARKS.md`.
//!
//! | module      | concept                                                         |
//! |-------------|-----------------------------------------------------------------|
//! | `main`      | command-line arguments, building the scenario, exit codes       |
//! | `spec`      | parsing `--pool`, `--load`, durations, rates, work, TOML files  |
//! | `presets`   | the built-in scenarios                                          |
//! | `work`      | calibrated spin, sleep, hang, injected panics, mixes            |
//! | `generator` | open-loop pacing, `rate=max`, closed loop, send lateness        |
//! | `record`    | per-thread histograms merged afterwards, time series            |
//! | `noise`     | what other processes and the hypervisor took during a run       |
//! | `run`       | one run in one mode: pools, generators, sampling, drain         |
//! | `report`    | the table and the JSON document                                 |
//! | `svg`       | the plot                                                        |
//!
//! Exit status: 0 on success, 2 on bad input (with a message naming the value), 1 when the
//! run itself fails (a thread cannot start, an output file cannot be written). All input is
//! checked before the first run, including each run's runtime configuration against the
//! library's rules, so bad input is never found after a mode has run.

mod generator;
mod noise;
mod presets;
mod record;
mod report;
mod run;
mod spec;
mod svg;
mod work;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::io::IsTerminal;

use clap::builder::PossibleValuesParser;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::report::Report;
use crate::run::RunOpts;
use crate::spec::{LoadSpec, Mode, PoolSpec, Scenario};
use crate::work::{InjectedPanic, Spinner};

/// Runs a latency-sensitive workload next to a misbehaving neighbour, isolated (one
/// bulkhead each) and shared (one pool), plus alone as the reference, and prints the
/// latencies side by side.
///
/// With no arguments it runs the `cpu-runaway` preset (about 25 s on 2 CPUs).
#[derive(Debug, Parser)]
#[command(name = "bulkhead-bench", version, after_help = after_help())]
struct Args {
    /// Built-in scenario (replaced in part by --scenario, --pool and --load)
    #[arg(long, default_value = "cpu-runaway", value_parser = PossibleValuesParser::new(presets::NAMES))]
    preset: String,

    /// TOML scenario file (keys: name, duration, warmup, drain, mode, seed; arrays of tables pool and load)
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,

    /// A pool: NAME:KEY=VALUE,... with the library's pool keys and syntax, e.g.
    /// api:threads=2,queue_capacity=256,cpus=0,2-3,max_queue_wait=100ms (repeatable; replaces
    /// the preset's pools; keys listed below)
    #[arg(long = "pool", value_name = "SPEC", value_parser = spec::parse_pool)]
    pools: Vec<PoolSpec>,

    /// A load: POOL:rate=R|max,work=W,arrivals=fixed|poisson,submitters=N,inflight=N,callers=N,name=NAME,
    /// deadline=D,pass_deadline=true,key=KEY (key: submit through the pool's keyed view)
    /// (repeatable; replaces the preset's loads; the first is the latency-sensitive one)
    #[arg(long = "load", value_name = "SPEC", value_parser = spec::parse_load)]
    loads: Vec<LoadSpec>,

    /// Measured time per mode, e.g. 10s
    #[arg(long, value_name = "DURATION", value_parser = spec::parse_duration)]
    duration: Option<Duration>,

    /// Unmeasured time before each measurement, e.g. 1s
    #[arg(long, value_name = "DURATION", value_parser = spec::parse_duration)]
    warmup: Option<Duration>,

    /// How long shutdown waits for queued and running tasks after each run
    #[arg(long, value_name = "DURATION", value_parser = spec::parse_duration)]
    drain: Option<Duration>,

    /// Which layouts to run besides the reference (the first load alone)
    #[arg(long, value_enum)]
    mode: Option<Mode>,

    /// Seed for Poisson arrivals, mixes and panic probabilities
    #[arg(long)]
    seed: Option<u64>,

    /// Write everything, including full percentile curves and time series, as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Draw latency and queue depth over time per workload and mode as SVG
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,

    /// No live line on stderr (on a terminal it updates in place; piped, one line per second)
    #[arg(long, short)]
    quiet: bool,

    /// Every column of the table (about 200 characters wide); by default only the columns
    /// that decide containment, within 100 characters
    #[arg(long)]
    wide: bool,

    /// List the presets, what each runs and what it shows, and exit
    #[arg(long)]
    list_presets: bool,
}

/// The presets, one paragraph each.
fn presets_text() -> String {
    let mut text = String::new();
    for (name, runs, shows) in presets::ABOUT {
        let default = if name == presets::NAMES[0] {
            " (default)"
        } else {
            ""
        };
        text.push_str(&format!(
            "  {name}{default}\n      runs:  {runs}\n      shows: {shows}\n"
        ));
    }
    text
}

const EXAMPLES: &str = "\
Examples:
  bulkhead-bench                                   # cpu-runaway, isolated vs shared
  bulkhead-bench --preset blocking-hang --json out.json --plot out.svg
  bulkhead-bench --pool api:threads=1,queue_capacity=256,cpus=0 \\
      --pool batch:threads=1,queue_capacity=64,cpus=1 \\
      --load api:rate=2000,work=spin:50us --load batch:rate=max,work=spin:10ms \\
      --duration 10s --warmup 1s --mode both

Work: spin:DURATION, sleep:DURATION, hang, panic:P, or a mix such as 9*spin:50us|1*panic:1.
rate=max: saturating submitters that keep the queue full (execute_timeout, 50 ms per attempt).";

/// The examples, then the pool keys: the library's, from its settings table.
fn after_help() -> String {
    let mut text = format!(
        "{EXAMPLES}\n\nPresets (--preset NAME; --list-presets prints this alone):\n{}\nPool keys (as in a configuration file's [pools.NAME]):",
        presets_text()
    );
    let width = bulkhead::pool_settings()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0);
    for (key, doc) in bulkhead::pool_settings() {
        text.push_str(&format!("\n  {key:<width$}  {doc}"));
    }
    text.push_str(
        "\nValues: durations 50us/1.5ms/2m/1h, CPU sets 0-3,6, pairs A,B (elastic=1,8, codel=5ms,100ms).",
    );
    text
}

/// Exits with status 2 and `msg`, the way clap reports bad arguments.
fn bad_input(kind: ErrorKind, msg: impl std::fmt::Display) -> ! {
    Args::command().error(kind, msg).exit()
}

fn scenario_from(args: &Args, cpus: &[usize]) -> Scenario {
    let mut sc = presets::preset(&args.preset, cpus)
        .unwrap_or_else(|e| bad_input(ErrorKind::InvalidValue, e));
    if let Some(path) = &args.scenario {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            bad_input(
                ErrorKind::Io,
                format!("cannot read scenario file {}: {e}", path.display()),
            )
        });
        sc = spec::parse_scenario_file(&text, sc).unwrap_or_else(|e| {
            bad_input(
                ErrorKind::InvalidValue,
                format!("scenario file {}: {e}", path.display()),
            )
        });
        if sc.name == args.preset {
            sc.name = path.display().to_string();
        }
    }
    if !args.pools.is_empty() {
        sc.pools = args.pools.clone();
        sc.name = "custom".to_owned();
    }
    if !args.loads.is_empty() {
        sc.loads = args.loads.clone();
        sc.name = "custom".to_owned();
    }
    if let Some(d) = args.duration {
        sc.duration = d;
    }
    if let Some(d) = args.warmup {
        sc.warmup = d;
    }
    if let Some(d) = args.drain {
        sc.drain = d;
    }
    if let Some(m) = args.mode {
        sc.mode = m;
    }
    if let Some(s) = args.seed {
        sc.seed = s;
    }
    if let Err(e) = sc.validate(cpus) {
        bad_input(ErrorKind::InvalidValue, e);
    }
    // Every run's runtime is checked before the first starts: bad input is exit 2, up front.
    for &kind in run::kinds(sc.mode) {
        if let Err(e) = run::check(&sc, kind) {
            bad_input(ErrorKind::InvalidValue, e);
        }
    }
    sc
}

/// Keeps the bench's own injected panics quiet; every other panic is reported as usual.
fn install_panic_filter() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<InjectedPanic>() {
            default(info);
        }
    }));
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list_presets {
        print!("{}", presets_text());
        return ExitCode::SUCCESS;
    }
    // The CPUs this process may run on (its affinity mask), else all it can count.
    let cpus: Vec<usize> = match bulkhead::CpuSet::available() {
        Ok(set) if !set.is_empty() => set.iter().collect(),
        _ => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    };
    let sc = scenario_from(&args, &cpus);
    install_panic_filter();

    let spinner = Spinner::calibrate();
    let mut runs = Vec::new();
    let kinds = run::kinds(sc.mode);
    // In place on a terminal; one line per update when piped (a log keeps every line).
    let in_place = std::io::stderr().is_terminal();
    for (i, &kind) in kinds.iter().enumerate() {
        let opts = RunOpts {
            live: !args.quiet,
            in_place,
            mode: (i + 1, kinds.len()),
        };
        match run::run(&sc, kind, &spinner, opts) {
            Ok(r) => runs.push(r),
            Err(e) => {
                eprintln!("bulkhead-bench: {} run failed: {e}", kind.as_str());
                return ExitCode::FAILURE;
            }
        }
    }
    let report = Report {
        scenario: sc,
        cpus: cpus.len(),
        spinner,
        runs,
    };
    print!("{}", report.table(args.wide));
    if let Some(path) = &args.json {
        let text = match serde_json::to_string_pretty(&report.json()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("bulkhead-bench: cannot encode JSON: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("bulkhead-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &args.plot {
        if let Err(e) = std::fs::write(path, svg::render(&report)) {
            eprintln!("bulkhead-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_parse_and_reject_bad_values() {
        Args::command().debug_assert();
        let ok = Args::try_parse_from([
            "bulkhead-bench",
            "--pool",
            "api:threads=1,queue_capacity=256,cpus=0",
            "--load",
            "api:rate=2000,work=spin:50us",
            "--duration",
            "10s",
            "--mode",
            "isolated",
        ])
        .unwrap();
        assert_eq!(ok.duration, Some(Duration::from_secs(10)));
        for (bad, needle) in [
            (vec!["--duration", "10 parsecs"], "10 parsecs"),
            (vec!["--load", "api:rate=lots"], "lots"),
            (vec!["--pool", "api:threads=x"], "\"x\""),
            (vec!["--preset", "nope"], "nope"),
            (vec!["--mode", "sideways"], "sideways"),
            (vec!["--load", "api:key="], "key=\"\""),
        ] {
            let err = Args::try_parse_from(std::iter::once("bulkhead-bench").chain(bad.clone()))
                .unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(needle), "{bad:?}: {err}");
        }
    }
}
