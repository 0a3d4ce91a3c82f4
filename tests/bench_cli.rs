//! The `bulkhead-bench` binary end to end: a short scenario with `--json` has the documented
//! structure and every submission is accounted for exactly once; bad input exits with
//! status 2 and a message naming the value. Nothing here asserts speed.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead-bench"))
        .args(args)
        .output()
        .expect("the bench binary runs")
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bulkhead-bench-test-{}-{name}", std::process::id()))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// The scenario: a steady workload next to a neighbour that is refused (queue 4, offered
/// about twice what it serves), expires (1 ms queue-wait limit behind 2 ms tasks) and panics.
const SCENARIO: &[&str] = &[
    "--pool",
    "api:threads=1,queue_capacity=64",
    "--pool",
    "noisy:threads=1,queue_capacity=4,max_queue_wait=1ms",
    "--load",
    "api:rate=500,work=spin:20us",
    "--load",
    "noisy:rate=2000,work=1*spin:2ms|1*panic:1",
    "--duration",
    "2s",
    "--warmup",
    "200ms",
    "--drain",
    "2s",
    "--mode",
    "both",
    "--quiet",
];

#[test]
fn json_report_structure_and_accounting() {
    let json_path = temp_path("report.json");
    let svg_path = temp_path("plot.svg");
    let mut args = SCENARIO.to_vec();
    let (j, s) = (json_path.to_str().unwrap(), svg_path.to_str().unwrap());
    args.extend(["--json", j, "--plot", s]);
    let out = bench(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("p99/alone"), "{stdout}");
    // The default table fits 100 columns: every line of the report does.
    for line in stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "a line of {} characters:\n{line}\n---\n{stdout}",
            line.chars().count()
        );
    }
    let header = stdout.lines().find(|l| l.starts_with("workload")).unwrap();
    for column in [
        "done/s",
        "refused",
        "not run",
        "e2e p50",
        "p99.9",
        "p99/alone",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(
        !stderr.contains("panicked at"),
        "injected panics must stay quiet: {stderr}"
    );

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    std::fs::remove_file(&json_path).ok();
    assert_eq!(doc["schema"], "bulkhead-bench/1");
    assert_eq!(doc["scenario"]["pools"].as_array().unwrap().len(), 2);
    assert_eq!(doc["scenario"]["loads"][1]["work"], "1*spin:2ms|1*panic:1");
    assert!(u(&doc["machine"], "cpus") >= 1);

    let runs = doc["runs"].as_array().unwrap();
    let modes: Vec<&str> = runs.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["alone", "isolated", "shared"]);
    for run in runs {
        let mode = run["mode"].as_str().unwrap();
        let workloads = run["workloads"].as_array().unwrap();
        assert_eq!(workloads.len(), if mode == "alone" { 1 } else { 2 });
        for w in workloads {
            let c = &w["counts"];
            let name = w["name"].as_str().unwrap();
            // Every submission ended exactly one way.
            assert_eq!(
                u(c, "submitted"),
                u(c, "refused")
                    + u(c, "completed")
                    + u(c, "panicked")
                    + u(c, "expired")
                    + u(c, "shed")
                    + u(c, "cancelled")
                    + u(c, "stuck"),
                "{mode}/{name}: {c}"
            );
            assert_eq!(u(c, "accounted"), u(c, "submitted"), "{mode}/{name}");
            assert!(u(c, "submitted") > 0, "{mode}/{name}");
            for h in ["queue_wait", "end_to_end", "send_lateness"] {
                for k in ["count", "p50_us", "p99_us", "p99_9_us", "max_us", "curve"] {
                    assert!(w[h].get(k).is_some(), "{mode}/{name}: {h}.{k} missing");
                }
            }
            assert!(!w["series"].as_array().unwrap().is_empty());
            let point = &w["series"][0];
            for k in ["t_s", "e2e_p99_us", "queue_depth", "ended"] {
                assert!(point.get(k).is_some(), "series point lacks {k}");
            }
            if name == "api" {
                assert!(u(c, "completed") > 0, "{mode}: {c}");
                assert!(!w["end_to_end"]["curve"].as_array().unwrap().is_empty());
            }
            if name == "noisy" {
                assert!(u(c, "panicked") > 0, "{mode}: {c}");
                assert!(u(c, "completed") > 0, "{mode}: {c}");
            }
            if name == "noisy" && mode == "isolated" {
                assert!(u(c, "refused") > 0, "{mode}: {c}");
                assert!(u(c, "expired") > 0, "{mode}: {c}");
            }
        }
        // The pools' own counters agree with the workloads'.
        let pools = run["pools"].as_array().unwrap();
        for key in ["submitted", "panicked", "expired"] {
            let pool_sum: u64 = pools.iter().map(|p| u(&p["stats"], key)).sum();
            let load_sum: u64 = workloads.iter().map(|w| u(&w["counts"], key)).sum();
            if key != "expired" || mode != "shared" {
                assert_eq!(pool_sum, load_sum, "{mode}: {key}");
            } else {
                // In a shared pool the split of not-run tasks between expired and cancelled
                // is by time; the total is exact.
                let pc: u64 = pools.iter().map(|p| u(&p["stats"], "cancelled")).sum();
                let lc: u64 = workloads.iter().map(|w| u(&w["counts"], "cancelled")).sum();
                assert_eq!(pool_sum + pc, load_sum + lc, "{mode}: not run");
            }
        }
    }
    let iso = doc["isolation"].as_array().unwrap();
    assert_eq!(iso.len(), 3);
    assert!(iso.iter().all(|r| r["workload"] == "api"));

    let svg = std::fs::read_to_string(&svg_path).unwrap();
    std::fs::remove_file(&svg_path).ok();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("polyline"));
}

fn assert_bad_input(args: &[&str], needle: &str) {
    let out = bench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("backtrace"), "{args:?}: {stderr}");
}

#[test]
fn unknown_pool_in_load_exits_2_naming_it() {
    assert_bad_input(
        &["--pool", "api:threads=1", "--load", "ghost:rate=10"],
        "\"ghost\"",
    );
}

#[test]
fn malformed_values_exit_2_naming_them() {
    assert_bad_input(&["--duration", "5 parsecs"], "5 parsecs");
    assert_bad_input(&["--load", "api:rate=lots"], "\"lots\"");
    assert_bad_input(&["--load", "api:work=spin:1zs"], "\"1zs\"");
    assert_bad_input(&["--preset", "cpu-runway"], "cpu-runway");
}

#[test]
fn unavailable_cpu_exits_2_naming_it() {
    assert_bad_input(
        &["--pool", "api:cpus=4095", "--load", "api:rate=10"],
        "CPU 4095",
    );
}

#[test]
fn scenario_file_with_unknown_key_exits_2_naming_it() {
    let path = temp_path("bad.toml");
    std::fs::write(
        &path,
        "duration = \"1s\"\n[[pool]]\nname = \"a\"\nthreds = 2\n[[load]]\npool = \"a\"\n",
    )
    .unwrap();
    assert_bad_input(&["--scenario", path.to_str().unwrap()], "threds");
    std::fs::remove_file(&path).ok();
    assert_bad_input(
        &["--scenario", "/nonexistent/scenario.toml"],
        "/nonexistent/scenario.toml",
    );
}

/// One duration syntax: the library's `h` unit (and every other it accepts) works in the CLI.
#[test]
fn durations_use_the_library_syntax_including_hours() {
    let out = bench(&[
        "--pool",
        "api:threads=1,queue_capacity=16,max_queue_wait=0.001h",
        "--load",
        "api:rate=50,work=spin:10us",
        "--duration",
        "0.0001h",
        "--warmup",
        "0h",
        "--drain",
        "0.0001h",
        "--mode",
        "isolated",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}

/// Writes `text` as a scenario file, runs the bench on it with `extra` arguments, removes it.
fn bench_with_scenario(name: &str, text: &str, extra: &[&str]) -> Output {
    let path = temp_path(name);
    std::fs::write(&path, text).unwrap();
    let mut args = vec!["--scenario", path.to_str().unwrap()];
    args.extend(extra);
    let out = bench(&args);
    std::fs::remove_file(&path).ok();
    out
}

fn assert_exit_2_naming(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains(needle), "{needle}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Rejected before any mode ran: no table, no live line.
    assert!(stdout.is_empty(), "{stdout}");
    assert!(!stderr.contains("run failed"), "{stderr}");
}

const SHORT: &[&str] = &[
    "--duration",
    "300ms",
    "--warmup",
    "0s",
    "--drain",
    "200ms",
    "--quiet",
];

/// A scenario-file value is given whole to its own key: it cannot set another key.
#[test]
fn scenario_file_values_cannot_inject_keys() {
    let injected = [
        // Was: max_wait 5ms and, silently, threads=64.
        (
            "[[pool]]\nname = \"a\"\nmax_queue_wait = \"5ms,threads=64\"\n[[load]]\npool = \"a\"\nrate = 50\n",
            "5ms,threads=64",
        ),
        // Was: the pool field parsed as a load spec, setting rate=max.
        (
            "[[pool]]\nname = \"a\"\n[[load]]\npool = \"a:rate=max\"\n",
            "a:rate=max",
        ),
        // Was: fixed arrivals, the rest silently dropped.
        (
            "[[pool]]\nname = \"a\"\n[[load]]\npool = \"a\"\nrate = 50\narrivals = \"fixed,rate=max\"\n",
            "fixed,rate=max",
        ),
        (
            "[[pool]]\nname = \"a\"\ncodel = \"5ms,100ms,replacement_budget=9\"\n[[load]]\npool = \"a\"\nrate = 50\n",
            "replacement_budget=9",
        ),
    ];
    for (i, (text, needle)) in injected.into_iter().enumerate() {
        let out = bench_with_scenario(&format!("inject{i}.toml"), text, SHORT);
        assert_exit_2_naming(&out, needle);
    }
}

/// A positive rate too small to pace (it used to panic a generator thread), or not finite,
/// is refused by the parser with the accepted range.
#[test]
fn rates_out_of_range_exit_2_with_the_range() {
    for rate in ["1e-20", "0.0001", "inf", "NaN", "2e6"] {
        let load = format!("api:rate={rate}");
        let mut args = vec!["--pool", "api", "--load", &load];
        args.extend(SHORT);
        let out = bench(&args);
        assert_exit_2_naming(&out, &format!("{rate:?}"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("from 0.001 to 1000000"),
            "{rate}"
        );
    }
}

/// Pool names the library refuses fail before the first run, not in the isolated one; load
/// names follow the same rule.
#[test]
fn invalid_pool_and_load_names_exit_2_before_any_run() {
    let long = "p".repeat(65);
    for (name, needle) in [
        (long.as_str(), "65 bytes long"),
        ("b\u{1}x", "control character"),
    ] {
        let pool = format!("{name}:threads=1");
        let load = format!("{name}:rate=50");
        let mut args = vec![
            "--pool",
            "api:threads=1",
            "--pool",
            &pool,
            "--load",
            "api:rate=50",
            "--load",
            &load,
            "--mode",
            "isolated",
        ];
        args.extend(SHORT);
        let out = bench(&args);
        assert_exit_2_naming(&out, needle);
        assert_exit_2_naming(&out, &format!("{name:?}"));
    }
    // Load names too: a NUL in one used to panic the generator thread's spawn.
    let text = "[[pool]]\nname = \"a\"\n[[load]]\npool = \"a\"\nname = \"x\\u0000y\"\nrate = 50\n";
    let out = bench_with_scenario("nul-load-name.toml", text, SHORT);
    assert_exit_2_naming(&out, "load name \"x\\0y\"");
    // The same from a scenario file.
    let text = format!("[[pool]]\nname = \"{long}\"\n[[load]]\npool = \"{long}\"\nrate = 50\n");
    let out = bench_with_scenario("long-name.toml", &text, SHORT);
    assert_exit_2_naming(&out, "65 bytes long");
}

/// The shared run sums the pools' threads and queues; a sum over the library's limits is
/// refused up front, naming the shared pool, the field and the sum, even when it is the
/// last mode.
#[test]
fn shared_sums_over_the_limits_exit_2_before_any_run() {
    for (pools, needle) in [
        (
            [
                "api:threads=1,queue_capacity=16777216",
                "b:threads=1,queue_capacity=16777216",
            ],
            "got 33554432",
        ),
        (
            [
                "api:threads=1000,queue_capacity=1",
                "b:threads=100,queue_capacity=1",
            ],
            "got 1100",
        ),
    ] {
        let mut args = vec![
            "--pool",
            pools[0],
            "--pool",
            pools[1],
            "--load",
            "api:rate=50",
            "--load",
            "b:rate=50",
            "--mode",
            "both",
        ];
        args.extend(SHORT);
        let out = bench(&args);
        assert_exit_2_naming(&out, needle);
        assert_exit_2_naming(&out, "pool \"shared\"");
    }
}

/// `--help` and `--list-presets` say what each preset runs and shows.
#[test]
fn help_and_list_presets_describe_every_preset() {
    let list = bench(&["--list-presets"]);
    assert!(list.status.success());
    let list = String::from_utf8_lossy(&list.stdout);
    let help = bench(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for preset in [
        "cpu-runaway",
        "blocking-hang",
        "panic-storm",
        "queue-flood",
        "overload",
        "hang-budget",
        "blocking-burst",
        "downstream-slowdown",
        "deadline-storm",
        "noisy-tenant",
    ] {
        for text in [&list, &help] {
            let at = text
                .find(&format!("  {preset}"))
                .unwrap_or_else(|| panic!("{preset}: {text}"));
            let rest = &text[at..];
            assert!(
                rest.contains("runs:") && rest.contains("shows:"),
                "{preset}: {text}"
            );
        }
    }
    assert!(
        help.contains("--wide") && help.contains("--list-presets"),
        "{help}"
    );
}

/// `--wide` has every column; piped, the live line is one line per update, with the mode's
/// place among the runs and the time left, never rewritten in place; the plot's panels have
/// labelled axes with units.
#[test]
fn wide_table_piped_live_lines_and_labelled_plot() {
    let svg_path = temp_path("wide.svg");
    let out = bench(&[
        "--pool",
        "api:threads=1,queue_capacity=64",
        "--pool",
        "noisy:threads=1,queue_capacity=4",
        "--load",
        "api:rate=200,work=spin:20us",
        "--load",
        "noisy:rate=200,work=spin:1ms",
        "--duration",
        "1200ms",
        "--warmup",
        "100ms",
        "--drain",
        "1s",
        "--mode",
        "isolated",
        "--wide",
        "--plot",
        svg_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let header = stdout.lines().find(|l| l.starts_with("workload")).unwrap();
    for column in ["offered/s", "expired", "wait p50", "p50/alone", "cancelled"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(
        !stderr.contains('\r'),
        "piped, nothing is rewritten in place: {stderr:?}"
    );
    let live: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert!(!live.is_empty(), "{stderr}");
    assert!(
        live.iter()
            .any(|l| l.contains(" 2/2, ") && l.contains("s left]")),
        "{stderr}"
    );
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let _ = std::fs::remove_file(&svg_path);
    assert!(svg.contains("time since the end of warmup (s)"));
    assert!(svg.contains("end-to-end p99, log scale (µs, ms, s)"));
    assert!(svg.contains("queue depth (tasks)"));
}

/// The deadline presets run end to end in a short window: exit 0, every submission accounted
/// for, and the deadline figures in the JSON (goodput, wasted work, phases, recovery) and the
/// goodput plot. Outcomes only, never timing.
#[test]
fn deadline_presets_smoke() {
    for preset in ["downstream-slowdown", "deadline-storm"] {
        let json_path = temp_path(&format!("{preset}.json"));
        let svg_path = temp_path(&format!("{preset}.svg"));
        let out = bench(&[
            "--preset",
            preset,
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--drain",
            "500ms",
            "--quiet",
            "--json",
            json_path.to_str().unwrap(),
            "--plot",
            svg_path.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{preset}:\n{stdout}\n{stderr}");
        assert!(stdout.contains("callers with a deadline"), "{stdout}");
        assert!(
            stdout.lines().all(|l| l.chars().count() <= 100),
            "{preset}: the default table fits 100 columns:\n{stdout}"
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap())
            .expect("valid JSON");
        let runs = doc["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{preset}: alone and isolated");
        let mut passed_deadline = false;
        for run in runs {
            for w in run["workloads"].as_array().unwrap() {
                let c = &w["counts"];
                assert_eq!(u(c, "accounted"), u(c, "submitted"), "{preset}: {c}");
                u(c, "refused_deadline");
                let d = &w["deadline"];
                assert!(d["good_per_s"].is_number(), "{preset}: {d}");
                u(d, "wasted");
                for key in ["wasted_vs_plain", "recovery_s", "healthy_good_per_s"] {
                    assert!(d.get(key).is_some(), "{preset}: {key} in {d}");
                }
                assert!(d["phases"].is_array(), "{preset}: {d}");
                assert!(w["series"][0].get("good").is_some(), "{preset}: {w}");
                passed_deadline |= doc["scenario"]["loads"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["pass_deadline"] == Value::Bool(true));
            }
        }
        assert!(passed_deadline, "{preset}: a load passes its deadline");
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(
            svg.contains("goodput (answers/s)") && svg.contains("time since the end of warmup (s)"),
            "{preset}: labelled axes"
        );
        let _ = std::fs::remove_file(&json_path);
        let _ = std::fs::remove_file(&svg_path);
    }
}

/// A load's `key=` is checked like every other value: empty, too long or with a control
/// character: exit 2 naming the value, before any run. Every kind of load may carry one.
#[test]
fn bad_keys_exit_2_naming_them() {
    let long = format!("api:rate=50,key={}", "k".repeat(65));
    for (load, needle) in [
        ("api:rate=50,key=", "key=\"\""),
        (long.as_str(), "65 bytes"),
    ] {
        let mut args = vec!["--pool", "api:threads=1", "--load", load];
        args.extend(SHORT);
        let out = bench(&args);
        assert_exit_2_naming(&out, needle);
    }
    let text = "[[pool]]\nname = \"a\"\n[[load]]\npool = \"a\"\nrate = 50\nkey = \"t\\u0001\"\n";
    let out = bench_with_scenario("bad-key.toml", text, SHORT);
    assert_exit_2_naming(&out, "control character");
}

/// The `noisy-tenant` preset runs end to end in a short window: keyed loads, refusals for the
/// key cap counted apart from a full queue (table and JSON), every submission accounted for,
/// the default table within 100 columns, the per-key plot. Outcomes only, never timing.
#[test]
fn noisy_tenant_preset_smoke() {
    let json_path = temp_path("noisy-tenant.json");
    let svg_path = temp_path("noisy-tenant.svg");
    let out = bench(&[
        "--preset",
        "noisy-tenant",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--drain",
        "500ms",
        "--quiet",
        "--json",
        json_path.to_str().unwrap(),
        "--plot",
        svg_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.lines().all(|l| l.chars().count() <= 100),
        "the default table fits 100 columns:\n{stdout}"
    );
    let header = stdout
        .lines()
        .find(|l| l.starts_with("workload") && l.contains("key cap"))
        .unwrap_or_else(|| panic!("no keyed table:\n{stdout}"));
    for column in ["full", "other", "p99/ref"] {
        assert!(header.contains(column), "{header}");
    }
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).expect("valid JSON");
    let _ = std::fs::remove_file(&json_path);
    let runs = doc["runs"].as_array().unwrap();
    let modes: Vec<&str> = runs.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["alone", "isolated"]);
    let isolated = &runs[1];
    let workloads = isolated["workloads"].as_array().unwrap();
    let by_name = |n: &str| {
        workloads
            .iter()
            .find(|w| w["name"] == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    for w in workloads {
        let c = &w["counts"];
        assert_eq!(u(c, "accounted"), u(c, "submitted"), "{c}");
        assert_eq!(
            u(c, "refused"),
            u(c, "refused_full")
                + u(c, "refused_timeout")
                + u(c, "refused_shutting_down")
                + u(c, "refused_deadline")
                + u(c, "refused_key_cap")
                + u(c, "refused_other"),
            "{c}"
        );
        assert_eq!(u(c, "refused_shutting_down"), 0, "{c}");
    }
    // The flood is refused by its key's cap on the fair pool, by the full queue on the FIFO one.
    let fair = &by_name("fair-flood")["counts"];
    assert!(u(fair, "refused_key_cap") > 0, "{fair}");
    assert_eq!(u(fair, "refused_full"), 0, "{fair}");
    let fifo = &by_name("fifo-flood")["counts"];
    assert!(u(fifo, "refused_full") > 0, "{fifo}");
    assert_eq!(u(fifo, "refused_key_cap"), 0, "{fifo}");
    // The pools' own counts agree, and name the keys.
    let pools = isolated["pools"].as_array().unwrap();
    let pool_cap: u64 = pools
        .iter()
        .map(|p| u(&p["stats"], "refused_key_cap"))
        .sum();
    let load_cap: u64 = workloads
        .iter()
        .map(|w| u(&w["counts"], "refused_key_cap"))
        .sum();
    assert_eq!(pool_cap, load_cap);
    let fair_pool = pools.iter().find(|p| p["name"] == "fair").unwrap();
    let keys = fair_pool["keys"].as_array().unwrap();
    let flood = keys.iter().find(|k| k["key"] == "flood").unwrap();
    assert_eq!(
        u(flood, "refused_key_cap"),
        u(fair, "refused_key_cap"),
        "{flood}"
    );
    assert!(doc["scenario"]["loads"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["key"].is_string()));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let _ = std::fs::remove_file(&svg_path);
    assert!(
        svg.contains("key flood") && svg.contains("pool fair"),
        "per-key plot"
    );
    assert!(svg.contains("completed (tasks/s)"));
}
