//! The forensics report (`replay --report`). The JSON report of a small incident
//! (`fixtures/report/incident.jsonl`) is compared whole against its golden file; run with
//! `UPDATE_GOLDEN=1` to rewrite it after an intended change. The HTML page of the same
//! replay must escape the attacker-influenced text in it, and neither form may carry a
//! token or a secret value. The caps are checked through the library on generated traffic.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use auditwatch::config::Config;
use auditwatch::pipeline::Pipeline;
use auditwatch::report::{Caps, Recorder, Replayed, Report};
use auditwatch::rules::RuleSet;
use serde_json::Value;

use crate::util::{feed, BIN};

const FIXTURE: &str = "fixtures/report/incident.jsonl";
const GOLDEN: &str = "fixtures/report/incident.report.json";
/// In the fixture's response data (as a `log_raw` device writes it): never in a report.
const SECRET: &str = "NOT-FOR-THE-REPORT-lumen-db-password";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Replay the fixture with `--report out`; returns the report's text.
fn report(out: &Path) -> String {
    report_with(out, &[])
}

fn report_with(out: &Path, args: &[&str]) -> String {
    let res = Command::new(BIN)
        .current_dir(root())
        .args(["replay", "--quiet"])
        .args(args)
        .arg("--report")
        .arg(out)
        .arg(FIXTURE)
        .output()
        .expect("auditwatch runs");
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    std::fs::read_to_string(out).expect("report written")
}

/// Fields that vary between builds.
fn normalise(v: &mut Value) {
    v["generator"] = Value::String("auditwatch <version>".into());
}

/// Where two JSON values differ, as `path: expected X, got Y` lines.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    let short = |v: &Value| {
        let s = v.to_string();
        if s.chars().count() > 160 {
            format!("{}…", s.chars().take(160).collect::<String>())
        } else {
            s
        }
    };
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => diff(&format!("{path}.{k}"), va, vb, out),
                    None => out.push(format!("{path}.{k}: missing (expected {})", short(va))),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(format!("{path}.{k}: unexpected {}", short(vb)));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!(
                    "{path}: expected {} elements, got {}",
                    a.len(),
                    b.len()
                ));
            }
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if want != got => out.push(format!(
            "{path}: expected {}, got {}",
            short(want),
            short(got)
        )),
        _ => {}
    }
}

#[test]
fn json_report_of_the_incident_matches_its_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = report(&dir.path().join("incident.report.json"));
    assert!(!text.contains(SECRET), "a secret value reached the report");
    assert!(
        !text.contains("hmac-sha256:tok-"),
        "a client token reached the report"
    );
    let mut got: Value = serde_json::from_str(&text).expect("the report is JSON");
    normalise(&mut got);
    let golden = root().join(GOLDEN);
    let pretty = serde_json::to_string_pretty(&got).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, pretty).unwrap();
        eprintln!("rewrote {GOLDEN}");
        return;
    }
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{GOLDEN}: {e} (UPDATE_GOLDEN=1 writes it)")),
    )
    .expect("golden file is JSON");
    let mut diffs = Vec::new();
    diff("$", &want, &got, &mut diffs);
    if !diffs.is_empty() {
        let n = diffs.len();
        diffs.truncate(40);
        panic!(
            "the report differs from {GOLDEN} in {n} place(s) (UPDATE_GOLDEN=1 rewrites it if the change is intended):\n  {}{}",
            diffs.join("\n  "),
            if n > 40 { "\n  ..." } else { "" }
        );
    }
}

/// Batches from parser threads reach the collector in the same order as single lines: the
/// report (context rows included) does not depend on how the input was fed.
#[test]
fn report_is_the_same_single_threaded_and_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let one = report_with(&dir.path().join("one.json"), &["--threads", "1"]);
    let two = report_with(&dir.path().join("two.json"), &["--threads", "2"]);
    assert!(
        one == two,
        "the report differs between --threads 1 and --threads 2"
    );
}

#[test]
fn html_report_is_self_contained_and_escapes_log_text() {
    let dir = tempfile::tempdir().unwrap();
    let html = report(&dir.path().join("incident.html"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains(SECRET), "a secret value reached the page");
    assert!(
        !html.contains("hmac-sha256:tok-"),
        "a client token reached the page"
    );
    // The fixture's path and display name carry markup: only its escaped form may appear.
    assert!(
        !html.contains("<img src=x"),
        "markup from a path was not escaped"
    );
    assert!(
        !html.contains("<script>alert"),
        "markup from a display name was not escaped"
    );
    assert!(!html.contains("<b>repo</b>"));
    assert!(html.contains("acme/&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("jwt-&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    // One inline script, no external resources.
    assert_eq!(html.matches("<script").count(), 1);
    for needle in [
        "http://",
        "https://",
        "<link rel=\"stylesheet\"",
        " src=\"",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(needle), "the page refers to {needle}");
    }
    assert!(html.contains("Content-Security-Policy"));
    // Every alert of the golden report is on the page, with a timeline mark.
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(GOLDEN)).unwrap()).unwrap();
    let n = golden["alerts"].as_array().unwrap().len();
    assert!(n >= 10);
    assert_eq!(html.matches("<article class=\"alert ").count(), n);
    assert_eq!(html.matches("<circle class=\"m ").count(), n);
}

#[test]
fn report_needs_an_html_or_json_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.txt");
    let res = Command::new(BIN)
        .current_dir(root())
        .args(["replay", "--quiet", "--report"])
        .arg(&out)
        .arg(FIXTURE)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains(".html"));
    assert!(!out.exists());
}

/// A response entry as the generated traffic below uses.
fn line(t: i64, id: u64, who: &str, path: &str, md: &str) -> String {
    format!(
        r#"{{"time":"{}","type":"response","auth":{{"display_name":"{who}","entity_id":"e-{who}","metadata":{md},"policies":["default"]}},"request":{{"id":"req-{id}","operation":"read","mount_type":"kv","path":"{path}","remote_address":"10.0.0.1"}},"response":{{}}}}"#,
        auditwatch::parse::time::format_rfc3339(t)
    )
}

/// Replay generated lines through the library with a recorder of the given caps.
fn replay_lines(lines: &[String], caps: Caps) -> Report {
    let cfg = Arc::new(Config::default());
    let rules = Arc::new(RuleSet::embedded());
    let mut p = Pipeline::new(cfg, rules.clone());
    let rec = Recorder::new(caps);
    p.set_observer(Some(rec.observer()));
    feed(&mut p, lines);
    rec.finish(&Replayed {
        inputs: &[],
        skipped: &[],
        stats: p.stats(),
        rules: &rules,
        since: None,
        until: None,
    })
}

#[test]
fn caps_keep_the_most_severe_alerts_and_say_what_was_left_out() {
    const CI: &str = r#"{"repository":"org/app","role":"gha-deploy"}"#;
    const ESO: &str = r#"{"service_account_name":"bookstore-platform-eso","service_account_namespace":"bookstore-platform-acme"}"#;
    let t0 = auditwatch::parse::time::parse_rfc3339_nanos("2026-03-02T10:00:00Z").unwrap();
    let mut lines = Vec::new();
    // 30 days of traffic from 400 actors, with CI reads of a shared secret (warnings) ...
    let n = 40_000;
    for i in 0..n {
        let t = t0 + i * (30 * 86_400 / n) * 1_000_000_000;
        let who = format!("jwt-ci-{}", i % 400);
        lines.push(line(t, i as u64, &who, "kv/data/shared/registry", CI));
    }
    // ... and, last, two cross-tenant reads (critical).
    let t = t0 + 30 * 86_400 * 1_000_000_000;
    for k in 0..2 {
        lines.push(line(
            t + k,
            1_000_000 + k as u64,
            "kubernetes-acme-eso",
            "secret/data/bookstore-platform/lumen/db",
            ESO,
        ));
    }
    let caps = Caps {
        alerts_with_context: 50,
        tracked_actors: 100,
        table_rows: 20,
        ..Caps::default()
    };
    let r = replay_lines(&lines, caps.clone());
    assert_eq!(r.totals.alerts, n as u64 + 2);
    assert_eq!(r.alerts.len(), 50);
    let critical: Vec<_> = r
        .alerts
        .iter()
        .filter(|a| a.alert.severity == auditwatch::alert::Severity::Critical)
        .collect();
    assert_eq!(critical.len(), 2, "criticals are never crowded out");
    assert!(critical[0].context.before.iter().any(|c| c.trigger));
    assert!(r.limits.alerts_without_context == n as u64 + 2 - 50);
    assert!(r.limits.actors_evicted > 0);
    assert!(r.timeline.buckets.len() <= caps.time_buckets);
    assert_eq!(
        r.timeline.buckets.iter().map(|b| b.entries).sum::<u64>(),
        n as u64 + 2
    );
    assert_eq!(r.tables.actors.len(), 20);
    assert_eq!(r.limits.table_rows_dropped["actors"], 401 - 20);
    let notes = r.limits.notes.join("\n");
    assert!(notes.contains("50 of 40,002 alerts"), "{notes}");
    assert!(
        notes.contains("actor table lists the top 20 of 401"),
        "{notes}"
    );
    assert!(
        r.verdict
            .starts_with("2 critical and 40,000 warning alerts"),
        "{}",
        r.verdict
    );
    // The page says so too.
    let html = auditwatch::report::html::render(&r);
    assert!(html.contains("This report is capped"));
    assert_eq!(html.matches("<article class=\"alert ").count(), 50);
}
