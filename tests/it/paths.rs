//! Every path an audit line can take through auditwatch gives the same alerts, whole
//! record for whole record and in the same order:
//!
//! - serial replay in the library (each line fed to a `Pipeline`), the reference;
//! - `auditwatch replay --threads N` for N = 1, 2 and 3 (chunks read ahead on every core);
//! - `auditwatch run` with a TCP socket source, written in uneven pieces that split lines
//!   anywhere;
//! - `auditwatch run` with a file source tailing the input.
//!
//! One difference is by design: a daemon that stops does not judge requests still waiting
//! for their response (after a restart that response, which repeats the request, decides),
//! where replay at its end of input does. So the daemon's alerts are replay's without
//! those of the requests waiting at the end, which come last in replay's.
//!
//! The inputs: every golden scenario (`fixtures/scenarios/<name>.jsonl`: serial and
//! parallel replay must give exactly `<name>.alerts.jsonl`, byte for byte for serial
//! replay), every example of the shipped rules, a hostile mix (unreadable lines of every
//! kind, blank lines, lines the fast path leaves to simd-json, requests answered hundreds
//! of lines later or never), and each real sample log when `AUDITWATCH_SAMPLES` is set.
//! The shipped rules and the default config throughout. The one field the binary adds is
//! `observer` (the detector instance, which the library alone does not know): it must be
//! set, and is left out of the comparison.
//!
//! `UPDATE_GOLDEN=1 cargo test --test it paths::serial` rewrites the goldens from serial
//! replay. Review the diff before committing: a golden is a claim about what the
//! detections must report (shared/docs/detections.md), not a snapshot of whatever the
//! engine said.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use auditwatch::rules::RuleSet;
use serde_json::Value;

use crate::util::*;

/// One input every path must agree on.
struct Case {
    name: String,
    /// Whole lines, each ending in `\n` (a tail cannot know an unterminated line is whole).
    input: Vec<u8>,
    /// The alerts replay must give, one JSON record a line: the golden file of a
    /// scenario, serial replay's alerts otherwise.
    want: String,
    /// The alerts a daemon must give when it stops after the input: serial replay ended
    /// as a daemon ends ([`feed_until_stop`]).
    want_live: String,
}

/// Alerts as JSON lines.
fn json_lines(alerts: &[auditwatch::alert::Alert]) -> String {
    alerts.iter().map(|a| a.to_json_line() + "\n").collect()
}

fn parse(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("expected alerts are JSON"))
        .collect()
}

impl Case {
    fn derived(name: String, mut input: Vec<u8>) -> Case {
        if !input.is_empty() && !input.ends_with(b"\n") {
            input.push(b'\n');
        }
        let want = json_lines(&feed(&mut default_pipeline(), lines(&input)));
        Case::new(name, input, want)
    }

    fn new(name: String, input: Vec<u8>, want: String) -> Case {
        let want_live = json_lines(&feed_until_stop(&mut default_pipeline(), lines(&input)));
        Case {
            name,
            input,
            want,
            want_live,
        }
    }

    /// `got` is `want` (`want_live` for a daemon), record for record; otherwise what
    /// differs.
    fn compare(&self, path: &str, live: bool, got: Result<Vec<Value>, String>) -> Option<String> {
        let mut got = match got {
            Ok(g) => g,
            Err(e) => return Some(format!("{}, {path}: {e}", self.name)),
        };
        // The binary names its detector instance (the host name by default) in every
        // record; the library alone names none. Everything else must be equal.
        for a in &mut got {
            match a.get_mut("observer") {
                Some(o) if o.as_str().is_some_and(|s| !s.is_empty()) => *o = Value::Null,
                _ => {
                    return Some(format!(
                        "{}, {path}: a record without observer: {a}",
                        self.name
                    ))
                }
            }
        }
        let want = parse(if live { &self.want_live } else { &self.want });
        if got == want {
            return None;
        }
        let text = |v: &[Value]| -> String { v.iter().map(|a| format!("{a}\n")).collect() };
        Some(format!(
            "{}, {path}: {} alert(s), expected {}\n{}",
            self.name,
            got.len(),
            want.len(),
            line_diff(&text(&want), &text(&got))
        ))
    }
}

/// The golden scenarios, with their goldens.
fn scenario_cases() -> Vec<Case> {
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenarios in fixtures/scenarios");
    files
        .iter()
        .map(|path| {
            let name = scenario_name(path);
            let want = std::fs::read_to_string(golden_path(name)).unwrap_or_else(|e| {
                panic!(
                    "{name}: cannot read its golden ({e}); run UPDATE_GOLDEN=1 cargo test --test it paths::serial"
                )
            });
            let input = std::fs::read(path).expect("readable scenario");
            Case::new(format!("scenario {name}"), input, want)
        })
        .collect()
}

/// Every example of every shipped rule, each on its own (with all the shipped rules
/// loaded, as `replay` and `run` load them).
fn rule_example_cases() -> Vec<Case> {
    let rules = RuleSet::embedded();
    let mut cases = Vec::new();
    for rule in &rules.rules {
        for ex in &rule.examples {
            let input: Vec<u8> = ex
                .lines
                .iter()
                .flat_map(|l| [l.as_bytes(), b"\n"].concat())
                .collect();
            cases.push(Case::derived(
                format!("rule example {}: {}", rule.id, ex.name),
                input,
            ));
        }
    }
    assert!(
        cases.len() >= rules.rules.len() * 2,
        "every rule has examples"
    );
    cases
}

/// Alerts, quiet reads, unreadable lines of every kind, and requests whose responses come
/// 700 lines later (about 500 KB: across the 256 KB chunks of parallel replay) or never.
fn hostile_case() -> Case {
    let mut input = Vec::new();
    let padding = "x".repeat(600);
    for i in 0..2_000u32 {
        let line = match i % 11 {
            0 => cross_tenant_allowed(&rid(i)),
            1 => cross_tenant_denied(&rid(i)),
            2 => "garbage line".to_string(),
            3 => r#"{"type":"response","truncated"#.to_string(),
            4 => String::new(),
            // An exponent: the fast path leaves the line to simd-json.
            5 => cross_tenant_denied(&rid(i)).replace("\"operation\"", "\"n\":1e3,\"operation\""),
            6 => "[1,2,3]".to_string(),
            7 => r#"{"no_type":true}"#.to_string(),
            8 => format!("{}\r", cross_tenant_allowed(&rid(i))),
            _ => own_tenant_read(&rid(i)).replace(
                "\"operation\"",
                &format!("\"pad\":\"{padding}\",\"operation\""),
            ),
        };
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
        if i % 200 == 0 {
            // A request now; its response 700 lines later, or never for the last six.
            let req = cross_tenant_allowed(&rid(1_000_000 + i))
                .replace("\"type\":\"response\"", "\"type\":\"request\"");
            input.extend_from_slice(req.as_bytes());
            input.push(b'\n');
        }
        if i % 200 == 100 && (700..1_500).contains(&i) {
            let resp = cross_tenant_allowed(&rid(1_000_000 + i - 700));
            input.extend_from_slice(resp.as_bytes());
            input.push(b'\n');
        }
    }
    // Invalid UTF-8 inside a string.
    input.extend_from_slice(b"{\"type\":\"response\",\"error\":\"\xff\xfe\"}\n");
    Case::derived("hostile mix".to_string(), input)
}

/// Each real sample log on its own, when `AUDITWATCH_SAMPLES` is set.
fn sample_cases() -> Vec<Case> {
    let Some(dir) = samples_dir() else {
        return Vec::new();
    };
    sample_logs(&dir)
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            Case::derived(format!("sample {name}"), std::fs::read(p).unwrap())
        })
        .collect()
}

/// Every case (built once for all the tests here); asserts they hold alerts to compare.
fn all_cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(build_cases)
}

fn build_cases() -> Vec<Case> {
    let mut cases = scenario_cases();
    cases.extend(rule_example_cases());
    cases.push(hostile_case());
    cases.extend(sample_cases());
    let alerts: usize = cases.iter().map(|c| c.want.lines().count()).sum();
    let quiet = cases.iter().filter(|c| c.want.is_empty()).count();
    assert!(alerts > 500, "the cases raise {alerts} alerts");
    assert!(quiet > 10, "only {quiet} cases are quiet");
    cases
}

/// `check` on every case, `workers` at a time; every failure, with the case it is for.
fn each_case(cases: &[Case], workers: usize, check: impl Fn(&Case) -> Vec<String> + Sync) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let mut f = check(case);
                    failures.lock().unwrap().append(&mut f);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn serial_replay_gives_the_golden_alerts() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for path in scenario_files() {
        let name = scenario_name(&path);
        let bytes = std::fs::read(&path).expect("readable scenario");
        let (alerts, _) = replay_lines(lines(&bytes));
        let actual: String = alerts.iter().map(|a| a.to_json_line() + "\n").collect();
        let golden = golden_path(name);
        if update {
            std::fs::write(&golden, &actual).expect("write the golden");
            continue;
        }
        // Byte for byte: the golden is the output format too.
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}: alerts differ from {}\n{}",
                golden.display(),
                line_diff(&expected, &actual)
            )),
            Err(e) => failures.push(format!(
                "{name}: cannot read {} ({e}); run UPDATE_GOLDEN=1 cargo test --test it paths::serial",
                golden.display()
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// What a stopped daemon leaves out is only the judgement of requests still waiting for
/// their response, which replay gives last at its end of input.
#[test]
fn a_stopped_daemon_only_leaves_the_waiting_requests_unjudged() {
    let cases = all_cases();
    let mut left_out = 0;
    for case in cases {
        let (want, live) = (parse(&case.want), parse(&case.want_live));
        assert!(
            want.starts_with(&live),
            "{}: the daemon's alerts are not replay's first ones\n{}",
            case.name,
            line_diff(&case.want, &case.want_live)
        );
        for a in &want[live.len()..] {
            assert!(
                a["request_id"].is_string(),
                "{}: replay's end raised an alert for no request: {a}",
                case.name
            );
            left_out += 1;
        }
    }
    // The rule example of a request whose response never arrives, and the hostile mix.
    assert!(left_out >= 2, "no case has a request waiting at the end");
}

#[test]
fn replay_at_1_2_and_3_threads_gives_the_serial_alerts() {
    let cases = all_cases();
    // Busy on the CPU: one run per core.
    each_case(cases, 2, |case| {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("input.log");
        std::fs::write(&input, &case.input).unwrap();
        ["1", "2", "3"]
            .into_iter()
            .filter_map(|threads| {
                let run = Auditwatch::new()
                    .args(["replay", "--threads", threads])
                    .arg(&input)
                    .run();
                let got = if run.code == 0 {
                    Ok(run.alerts())
                } else {
                    Err(format!("exit code {}\n{}", run.code, run.context()))
                };
                case.compare(&format!("replay --threads {threads}"), false, got)
            })
            .collect()
    });
}

const SOCKET_CONFIG: &str = "server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}
";

/// Stop the daemon once `source` has read all `bytes`; its alerts, all of them written.
fn stop_after(d: Daemon, source: &str, bytes: usize) -> Result<Vec<Value>, String> {
    let label = format!("source=\"{source}\"");
    d.wait_until("every byte read", Duration::from_secs(60), |d| {
        d.metric("auditwatch_source_bytes_total", &[&label]) >= bytes as f64
    });
    let alerts_path = d.alerts_path.clone();
    // SIGTERM: the daemon drains what it read and ends the input, as replay does at EOF.
    let exit = d.stop();
    if exit.code != Some(0) {
        return Err(format!("exit code {:?}:\n{}", exit.code, exit.log));
    }
    Ok(read_alerts(&alerts_path))
}

#[test]
fn the_daemons_socket_source_gives_the_serial_alerts() {
    let cases = all_cases();
    // Mostly waiting for the daemon to start and stop.
    each_case(cases, 6, |case| {
        let dir = tempfile::tempdir().unwrap();
        let d = Daemon::start(dir.path(), SOCKET_CONFIG, &[]);
        // One connection, uneven writes that split lines anywhere.
        let mut s = TcpStream::connect(d.source("vault-socket")).unwrap();
        let input = &case.input;
        let (mut at, mut step) = (0, 1);
        while at < input.len() {
            let end = (at + step).min(input.len());
            s.write_all(&input[at..end]).unwrap();
            at = end;
            step = step * 7 % 4093 + 1;
        }
        drop(s);
        let got = stop_after(d, "vault-socket", input.len());
        case.compare("the daemon's socket source", true, got)
            .into_iter()
            .collect()
    });
}

#[test]
fn the_daemons_file_source_gives_the_serial_alerts() {
    let cases = all_cases();
    each_case(cases, 6, |case| {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        std::fs::write(&log, &case.input).unwrap();
        let cfg = format!(
            "server: {{listen: 127.0.0.1:0, tick_secs: 0}}
sources:
  - {{name: vault-file, kind: file, path: '{}', checkpoint_dir: '{}', poll_millis: 50}}
",
            log.display(),
            dir.path().join("state").display()
        );
        let d = Daemon::start(dir.path(), &cfg, &[]);
        let got = stop_after(d, "vault-file", case.input.len());
        case.compare("the daemon's file source", true, got)
            .into_iter()
            .collect()
    });
}
