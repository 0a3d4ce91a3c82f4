//! A strict parser of the Prometheus text exposition format 0.0.4, for the tests: it
//! rejects what Prometheus would reject, and a few things it would let pass but that would
//! make our export wrong (a family split in two, a histogram whose buckets are not
//! cumulative or whose `+Inf` bucket differs from `_count`, a negative counter, a duplicate
//! series). Written here, rather than taken from a crate, because the crates that parse the
//! format (`prometheus-parse`) accept malformed lines silently, which is what a test of our
//! output must not do.
//!
//! The grammar (https://prometheus.io/docs/instrumenting/exposition_formats/):
//!
//! ```text
//! line    = "# HELP " name " " escaped-text | "# TYPE " name " " type | "#" comment
//!         | sample | ""
//! sample  = name [ "{" label ( "," label )* [","] "}" ] " " value [ " " timestamp ]
//! label   = label-name "=" '"' label-value '"'      (escapes: \\ \" \n)
//! ```
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};

/// One sample: its full name (with `_bucket`, `_sum`, ... suffix), labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// A metric family: its `# TYPE` (or "untyped"), `# HELP`, and samples in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// The families of `text`, in order, or the first error with its line number.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line does not end with a newline".to_owned());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut series: BTreeSet<String> = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.trim_start_matches(' ').splitn(3, ' ');
            let (word, name, arg) = (parts.next(), parts.next(), parts.next());
            // Any other line starting with # is a comment.
            if let Some(w @ ("HELP" | "TYPE")) = word {
                let name = name.ok_or_else(|| at(format!("{w} without a name")))?;
                check_name(name).map_err(at)?;
                let f = open_family(&mut families, &mut closed, name).map_err(at)?;
                if w == "HELP" {
                    if f.help.is_some() {
                        return Err(at("a second HELP".into()));
                    }
                    f.help = Some(unescape(arg.unwrap_or("")).map_err(at)?);
                } else {
                    let kind = arg.ok_or_else(|| at("TYPE without a type".into()))?;
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    if !f.samples.is_empty() || f.kind != "untyped" {
                        return Err(at("TYPE after samples, or a second TYPE".into()));
                    }
                    f.kind = kind.to_owned();
                }
            }
            continue;
        }
        let sample = parse_sample(line).map_err(at)?;
        let family_name = family_of(&families, &sample.name);
        let f = open_family(&mut families, &mut closed, &family_name).map_err(at)?;
        check_suffix(&f.kind, &f.name, &sample).map_err(at)?;
        let key = format!("{}{:?}", sample.name, sample.labels);
        if !series.insert(key) {
            return Err(at("a duplicate series".into()));
        }
        f.samples.push(sample);
    }
    for f in &families {
        check_family(f)?;
    }
    Ok(families)
}

/// The family a sample name belongs to: the current family if the name is its own or one
/// of its type's suffixes, else the name itself.
fn family_of(families: &[Family], name: &str) -> String {
    if let Some(f) = families.last() {
        let suffixes: &[&str] = match f.kind.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count", ""],
            _ => &[""],
        };
        if suffixes
            .iter()
            .any(|s| name.strip_suffix(s) == Some(f.name.as_str()))
        {
            return f.name.clone();
        }
    }
    name.to_owned()
}

/// The family `name`, continuing the last one or starting a new one; a family that was
/// left for another cannot start again.
fn open_family<'a>(
    families: &'a mut Vec<Family>,
    closed: &mut BTreeSet<String>,
    name: &str,
) -> Result<&'a mut Family, String> {
    if !matches!(families.last(), Some(f) if f.name == name) {
        if let Some(f) = families.last() {
            closed.insert(f.name.clone());
        }
        if closed.contains(name) {
            return Err(format!("family {name} appears in two places"));
        }
        families.push(Family {
            name: name.to_owned(),
            kind: "untyped".to_owned(),
            help: None,
            samples: Vec::new(),
        });
    }
    Ok(families.last_mut().expect("just pushed"))
}

fn check_suffix(kind: &str, family: &str, s: &Sample) -> Result<(), String> {
    let suffix = &s.name[family.len()..];
    match (kind, suffix) {
        ("histogram", "_bucket") => {
            let le = s.label("le").ok_or("a bucket without le")?;
            parse_value(le).map_err(|e| format!("le: {e}"))?;
        }
        ("histogram", "_sum" | "_count") | ("summary", "_sum" | "_count") => {}
        ("summary", "") => {
            s.label("quantile")
                .ok_or("a summary sample without quantile")?;
        }
        ("histogram", _) => return Err("a histogram sample without a suffix".into()),
        (_, "") => {}
        _ => return Err(format!("suffix {suffix:?} on a {kind}")),
    }
    if kind == "counter" && !family.ends_with("_total") {
        return Err(format!("counter {family} does not end in _total"));
    }
    if kind == "counter" && (s.value.is_nan() || s.value < 0.0) {
        return Err("a negative or NaN counter".into());
    }
    Ok(())
}

/// Histograms: per series, buckets in increasing `le`, cumulative, ending with `+Inf` equal
/// to `_count`, with a `_sum`.
fn check_family(f: &Family) -> Result<(), String> {
    if f.kind != "histogram" {
        return Ok(());
    }
    // Per series (labels without `le`): its (le, count) buckets, `_sum` and `_count`.
    type Series = (Vec<(f64, f64)>, Option<f64>, Option<f64>);
    let mut by_series: BTreeMap<String, Series> = BTreeMap::new();
    for s in &f.samples {
        let mut labels = s.labels.clone();
        let le = labels.remove("le");
        let e = by_series.entry(format!("{labels:?}")).or_default();
        match &s.name[f.name.len()..] {
            "_bucket" => {
                e.0.push((parse_value(le.as_deref().unwrap_or("")).unwrap(), s.value))
            }
            "_sum" => e.1 = Some(s.value),
            _ => e.2 = Some(s.value),
        }
    }
    for (labels, (buckets, sum, count)) in by_series {
        let at = |e: &str| format!("histogram {}{labels}: {e}", f.name);
        for w in buckets.windows(2) {
            if w[0].0 >= w[1].0 {
                return Err(at("le bounds not increasing"));
            }
            if w[0].1 > w[1].1 {
                return Err(at("bucket counts not cumulative"));
            }
        }
        match buckets.last() {
            Some((le, n)) if le.is_infinite() && Some(*n) == count => {}
            _ => return Err(at("no +Inf bucket equal to _count")),
        }
        if sum.is_none() {
            return Err(at("no _sum"));
        }
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or("a label without =")?;
            let key = &rest[..eq];
            check_label_name(key)?;
            let r = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("a label value without quotes")?;
            let (value, r) = quoted(r)?;
            if labels.insert(key.to_owned(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            rest = match r.strip_prefix(',') {
                Some(r) => r,
                None if r.starts_with('}') => r,
                None => return Err("expected , or } after a label".into()),
            };
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut parts = rest.split(' ');
    let value = parse_value(parts.next().unwrap_or(""))?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// A label value up to its closing quote, unescaped, and the text after the quote.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                other => return Err(format!("bad escape {other:?} in a label value")),
            },
            '\n' => return Err("a raw newline in a label value".into()),
            c => out.push(c),
        }
    }
    Err("an unterminated label value".into())
}

/// HELP text: `\\` and `\n` are the only escapes.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("bad escape {other:?} in HELP")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if v.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) && !v.is_empty() => {
            v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))
        }
        _ => Err(format!("bad value {v:?}")),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok && !name.starts_with("__") {
        Ok(())
    } else {
        Err(format!("bad label name {name:?}"))
    }
}

/// The parser's own checks: what it must refuse.
pub fn self_test() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{pool=\"x\\\"y\"} 3\n";
    let f = parse(ok).unwrap();
    assert_eq!(f[0].samples[0].label("pool"), Some("x\"y"));
    let h = "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n";
    assert!(parse(h).is_ok());
    for bad in [
        "a_total 1",                             // no final newline
        "# TYPE a_total counter\na_total -1\n",  // negative counter
        "# TYPE a counter\na 1\n",               // counter without _total
        "a{b=\"c} 1\n",                          // unterminated value
        "a{b=\"\\t\"} 1\n",                      // bad escape
        "a{1b=\"c\"} 1\n",                       // bad label name
        "a 1\nb 1\na 2\n",                       // family in two places
        "a 1\na 1\n",                            // duplicate series
        "a one\n",                               // bad value
        "# TYPE a gauge\n# TYPE a gauge\na 1\n", // second TYPE
        "# TYPE h histogram\nh_bucket{le=\"0.1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
        "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_sum 1\nh_count 1\n", // no +Inf
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n", // +Inf != count
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

/// Runs `promtool check metrics` on `text` and fails on any complaint. Where promtool is not
/// installed: under CI (env `CI` set) that fails too; elsewhere `test` prints that it skipped
/// the check.
pub fn promtool_check(test: &str, text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let has_promtool = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_promtool {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is required under CI (bash .ci/setup installs Debian's prometheus)"
        );
        eprintln!(
            "\n!!! SKIPPED the promtool check of {test}: apt-get install prometheus to run it \
             (CI requires it)\n"
        );
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    let stdin = child.stdin.take().expect("piped");
    let input = text.to_owned();
    // Written from another thread, so a promtool that answers early cannot block us.
    let writer = std::thread::spawn(move || {
        let mut stdin = stdin;
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("promtool runs");
    writer.join().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{said}\n--- exposition ---\n{text}"
    );
}
