//! Conformance over the real Vault/OpenBao audit samples in `shared/vault-audit/samples`:
//! auditwatch reads every entry a JSON parser reads, no more and no less; nothing a
//! `log_raw` device wrote in clear ever comes out of it; and the non-log files beside the
//! samples are reported as skipped.
//!
//! The samples directory comes from `AUDITWATCH_SAMPLES` (CI sets it to
//! `../shared/vault-audit/samples`; a relative path is taken from the crate root). When it
//! is not set these tests say SKIPPED and pass, except under `CI=true`, where they fail.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::Path;

use crate::util::*;
use serde_json::Value;

/// Entries in all samples together, as the samples README states.
const TOTAL_SAMPLE_ENTRIES: u64 = 10_658;

/// The `log_raw=true` sample: its request/response data and tokens are in clear.
const LOG_RAW_SAMPLE: &str = "sohel2020-consul-template-database-creds-raw.log";

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Lines of a file split on `\n` (a final line without one counts; nothing after a final
/// `\n` does), with leading NUL bytes and a trailing `\r` removed.
fn framed_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| {
            let start = l.iter().position(|&b| b != 0).unwrap_or(l.len());
            let l = &l[start..];
            l.strip_suffix(b"\r").unwrap_or(l)
        })
        .collect()
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// What an independent reading (serde_json) finds in one file.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    lines: u64,
    entries: u64,
    unreadable: u64,
    by_type: BTreeMap<String, u64>,
}

/// A JSON object, read only for its `type` (the rest is validated and skipped, which is
/// much cheaper than building a `Value` in a debug build).
struct Head {
    kind: Option<String>,
}

impl<'de> serde::Deserialize<'de> for Head {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Head, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, Visitor};
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Head;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Head, A::Error> {
                let mut kind = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k == "type" {
                        kind = m.next_value::<Value>()?.as_str().map(str::to_string);
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Head { kind })
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

fn count_independently(bytes: &[u8]) -> Counts {
    let mut c = Counts::default();
    for line in framed_lines(bytes) {
        c.lines += 1;
        if is_blank(line) {
            continue;
        }
        match serde_json::from_slice::<Head>(line) {
            Ok(head) => {
                c.entries += 1;
                let t = match head.kind.as_deref() {
                    Some("request") => "request",
                    Some("response") => "response",
                    _ => "other",
                };
                *c.by_type.entry(t.to_string()).or_default() += 1;
            }
            Err(_) => c.unreadable += 1,
        }
    }
    c
}

#[test]
fn every_sample_entry_is_read_and_every_unreadable_line_counted() {
    let Some(dir) = samples_dir() else { return };
    let run = replay([&dir]);
    run.assert_code(0);
    let reports: BTreeMap<String, Value> = run
        .input_reports("inputs")
        .into_iter()
        .map(|r| (file_name(Path::new(r["name"].as_str().unwrap())), r))
        .collect();
    let mut total = Counts::default();
    let mut mismatches = Vec::new();
    for path in sample_logs(&dir) {
        let name = file_name(&path);
        let want = count_independently(&std::fs::read(&path).unwrap());
        let Some(report) = reports.get(&name) else {
            mismatches.push(format!("{name}: not replayed"));
            continue;
        };
        let got = |k: &str| report[k].as_u64().unwrap();
        if got("entries") != want.entries
            || got("parse_errors") != want.unreadable
            || got("lines") != want.lines
        {
            mismatches.push(format!(
                "{name}: auditwatch read {} entries, {} parse errors, {} lines; \
                 serde_json finds {} JSON objects, {} unreadable lines, {} lines",
                got("entries"),
                got("parse_errors"),
                got("lines"),
                want.entries,
                want.unreadable,
                want.lines
            ));
        }
        total.lines += want.lines;
        total.entries += want.entries;
        total.unreadable += want.unreadable;
        for (t, n) in want.by_type {
            *total.by_type.entry(t).or_default() += n;
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n{}",
        mismatches.join("\n"),
        run.context()
    );
    assert_eq!(total.entries, TOTAL_SAMPLE_ENTRIES, "samples changed?");
    assert_eq!(
        run.count("entries"),
        TOTAL_SAMPLE_ENTRIES,
        "{}",
        run.context()
    );
    assert_eq!(
        run.count("parse_errors_total"),
        total.unreadable,
        "{}",
        run.context()
    );
    assert_eq!(run.count("lines"), total.lines, "{}", run.context());
    for t in ["request", "response", "other"] {
        assert_eq!(
            run.count(&format!("/entries_by_type/{t}")),
            total.by_type.get(t).copied().unwrap_or(0),
            "entries of type {t}\n{}",
            run.context()
        );
    }
}

#[test]
fn the_samples_readme_counts_are_what_auditwatch_reads() {
    let Some(dir) = samples_dir() else { return };
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    // Rows like `| name.log | 3,933 | ...`.
    let listed: BTreeMap<String, u64> = readme
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let name = cells.next()?;
            let n = cells.next()?.replace(',', "").parse().ok()?;
            (name.ends_with(".log") || name.ends_with(".ndjson")).then(|| (name.to_string(), n))
        })
        .collect();
    let run = replay([&dir]);
    run.assert_code(0);
    let read: BTreeMap<String, u64> = run
        .input_reports("inputs")
        .iter()
        .map(|r| {
            (
                file_name(Path::new(r["name"].as_str().unwrap())),
                r["entries"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(read, listed, "README table vs auditwatch");
}

// ---------------------------------------------------------------------------------------
// No secret leaks.

/// Keys whose string value is a token or accessor (in clear unless it starts with
/// `hmac-sha256:`), wherever they appear.
const TOKEN_KEYS: &[&str] = &["client_token", "accessor", "client_token_accessor"];

/// Every string inside a value.
fn all_strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| all_strings(x, out)),
        _ => {}
    }
}

/// Split an entry's strings into secret-bearing ones (everything under `request.data` and
/// `response.data`, clear tokens and accessors, `wrap_info.token`) and the rest (public:
/// paths, errors, names, lease ids, which an alert may rightly show).
fn classify_strings(
    v: &Value,
    path: &[&str],
    secret: &mut BTreeSet<String>,
    public: &mut BTreeSet<String>,
) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let in_section = matches!(path, ["request"] | ["response"]);
                if k == "data" && in_section {
                    all_strings(x, secret);
                    continue;
                }
                let token_key = TOKEN_KEYS.contains(&k.as_str())
                    || (k == "token" && path.last() == Some(&"wrap_info"));
                if let (true, Value::String(s)) = (token_key, x) {
                    if !s.starts_with("hmac-sha256:") {
                        secret.insert(s.clone());
                    }
                    continue;
                }
                let mut p = path.to_vec();
                p.push(k);
                classify_strings(x, &p, secret, public);
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|x| classify_strings(x, path, secret, public)),
        Value::String(s) => {
            public.insert(s.clone());
        }
        _ => {}
    }
}

fn entries_of(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap();
    framed_lines(&bytes)
        .into_iter()
        .filter(|l| !is_blank(l))
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// The clear secrets of the `log_raw` sample, at least 8 characters long, minus values
/// that also appear in one of its public fields or in a sample's path (`database` is both
/// a value in `request.data` and part of paths and of the file's name; a lease id is both
/// renewed in `request.data` and issued in `response.secret.lease_id`): an alert may
/// rightly show those. Returns (secrets, how many were dropped as public).
fn log_raw_secrets(dir: &Path) -> (Vec<String>, usize) {
    let mut secret = BTreeSet::new();
    let mut public = BTreeSet::new();
    for p in std::fs::read_dir(dir).unwrap() {
        public.insert(p.unwrap().path().display().to_string());
    }
    for e in entries_of(&dir.join(LOG_RAW_SAMPLE)) {
        classify_strings(&e, &[], &mut secret, &mut public);
    }
    assert!(!secret.is_empty(), "{LOG_RAW_SAMPLE} not found or empty");
    let public: String = public.into_iter().collect::<Vec<_>>().join("\n");
    let long: Vec<String> = secret.into_iter().filter(|s| s.len() >= 8).collect();
    let before = long.len();
    let public: BTreeSet<&str> = leaked(&long, &public).into_iter().collect();
    let kept: Vec<String> = long
        .iter()
        .filter(|s| !public.contains(s.as_str()))
        .cloned()
        .collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// The secrets found in `haystack`, raw or JSON-escaped. Every secret is at least 8 bytes
/// long, so the haystack's 8-byte windows rule out almost all of them cheaply.
fn leaked<'s>(secrets: &'s [String], haystack: &str) -> Vec<&'s str> {
    let windows: HashSet<&[u8]> = haystack.as_bytes().windows(8).collect();
    let found =
        |needle: &str| windows.contains(&needle.as_bytes()[..8]) && haystack.contains(needle);
    secrets
        .iter()
        .filter(|s| {
            let escaped = serde_json::to_string(s).unwrap();
            found(s) || found(&escaped[1..escaped.len() - 1])
        })
        .map(String::as_str)
        .collect()
}

#[test]
fn no_secret_of_a_log_raw_device_appears_in_alerts_summaries_stats_or_logs() {
    let Some(dir) = samples_dir() else { return };
    let (secrets, dropped) = log_raw_secrets(&dir);
    let _ = writeln!(
        std::io::stderr(),
        "checking {} clear secret values of {LOG_RAW_SAMPLE} ({dropped} more also appear in \
         public fields and are not checked)",
        secrets.len()
    );
    assert!(!secrets.is_empty(), "no secret values to check");
    // The detector itself finds what is there.
    let planted = format!("x{}y\n{}", secrets[0], secrets[secrets.len() - 1]);
    assert_eq!(leaked(&secrets, &planted).len(), 2);
    let runs: [(&str, Option<&str>); 4] = [
        ("jsonl", None),
        ("text", None),
        ("jsonl", Some("debug")),
        ("text", Some("trace")),
    ];
    let runs: Vec<(&str, Option<&str>, Run)> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|(format, log)| {
                let dir = &dir;
                scope.spawn(move || {
                    let mut cmd = Auditwatch::new()
                        .arg("replay")
                        .with_stats()
                        .args(os_args!["--format", format, dir]);
                    if let Some(level) = log {
                        cmd = cmd.env("AUDITWATCH_LOG", level);
                    }
                    (format, log, cmd.run())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (format, log, run) in runs {
        run.assert_code(0);
        assert!(
            run.count("entries") > 0 && !run.stdout.is_empty(),
            "{}",
            run.context()
        );
        for (what, text) in [
            ("stdout", run.stdout.as_str()),
            ("stderr", run.stderr.as_str()),
            ("stats", run.stats_text.as_deref().unwrap()),
        ] {
            let found = leaked(&secrets, text);
            assert!(
                found.is_empty(),
                "--format {format}, AUDITWATCH_LOG={log:?}: {} secret value(s) in {what}, e.g. {:?}",
                found.len(),
                &found[..found.len().min(5)]
            );
        }
    }
}

#[test]
fn replaying_the_samples_directory_exits_0_and_reports_the_other_files_as_skipped() {
    let Some(dir) = samples_dir() else { return };
    let run = replay([&dir]);
    run.assert_code(0);
    let logs: BTreeSet<String> = sample_logs(&dir).iter().map(|p| file_name(p)).collect();
    let others: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| file_name(&p))
        .filter(|n| !logs.contains(n) && !n.starts_with('.'))
        .collect();
    assert!(others.contains("README.md"), "{others:?}");
    assert!(
        others.iter().any(|n| n.ends_with(".source.txt")),
        "{others:?}"
    );
    let replayed: BTreeSet<String> = run.input_names().into_iter().collect();
    let skipped: BTreeSet<String> = run.skipped_names().into_iter().collect();
    assert_eq!(replayed, logs, "{}", run.context());
    assert_eq!(skipped, others, "{}", run.context());
    for r in run.input_reports("skipped_inputs") {
        assert_eq!(r["skipped"], true, "{r}");
        assert!(
            r["problem"]
                .as_str()
                .is_some_and(|p| p.starts_with("skipped")),
            "{r}"
        );
    }
    for r in run.input_reports("inputs") {
        assert!(r["problem"].is_null(), "{r}");
    }
    // The summary on stderr names them too.
    assert!(
        run.stderr.contains("README.md: skipped"),
        "{}",
        run.context()
    );
}
