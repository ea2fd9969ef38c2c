//! Silence is one finding, through the real daemon: a platform's ESO traffic that stops
//! raises one `audit_stream_silent` (named by the idle wall clock) and no `stale`, and when
//! the traffic resumes after the silence there is no storm either; only a key that stays
//! silent goes stale. A replay of the same input told when it ended (`--idle-until`) gives
//! the idle daemon's alerts, id for id.
//!
//! The shipped rules with the silence rule's `silence_secs` cut to 5 s (and `min_events`
//! to 20), ESO refreshing every 10 s and going stale after twice that, so a test takes
//! seconds. The entries are dated in the recent past, so the wall clock is already past
//! every deadline when the daemon idles.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auditwatch::parse::time::format_rfc3339;
use serde_json::Value;

use crate::util::*;

const S: i64 = 1_000_000_000;
const TENANTS: usize = 30;
const SILENT: &str = "audit-stream-silent";

const CONFIG: &str = "server: {listen: 127.0.0.1:0, tick_secs: 1}
engine: {response_timeout_secs: 2}
cadence: {stale: {factor: 2, min_secs: 1, min_intervals: 2}, duplicate_within_secs: 0, too_frequent: {min_reads: 1000}}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}
";

/// Every shipped rule file, the silence rule made quick.
fn quick_rules(dir: &Path) -> PathBuf {
    let shipped = crate_dir().join("rules");
    let mut files = Vec::new();
    for e in std::fs::read_dir(&shipped).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let mut text = std::fs::read_to_string(&p).unwrap();
        if name == "audit_device_change.yaml" {
            let quick = text
                .replace("silence_secs: 900", "silence_secs: 5")
                .replace("min_events: 60", "min_events: 20");
            assert_ne!(quick, text, "the silence rule's settings moved");
            text = quick;
        }
        files.push((name, text));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    rules_dir(dir, &files)
}

/// ESO of `tenant` reading its `db` secret at `t`.
fn eso_read(tenant: usize, t: i64) -> String {
    format!(
        r#"{{"time":"{}","type":"response","auth":{{"display_name":"kubernetes-bookstore-platform-t{tenant}-bookstore-platform-eso","metadata":{{"service_account_name":"bookstore-platform-eso","service_account_namespace":"bookstore-platform-t{tenant}"}},"policies":["default"]}},"request":{{"id":"eso-{tenant}-{}","operation":"read","mount_type":"kv","path":"secret/data/bookstore-platform/t{tenant}/db"}},"response":{{}}}}"#,
        format_rfc3339(t),
        t / S
    )
}

/// Every tenant's ESO reading every 10 s from `from` for `reads` reads, tenants 0.1 s
/// apart; `reads_of` may give a tenant fewer. Time-ordered (time, line).
fn traffic(from: i64, reads: i64, reads_of: impl Fn(usize) -> i64) -> Vec<(i64, String)> {
    let mut lines = Vec::new();
    for tenant in 0..TENANTS {
        for n in 0..reads_of(tenant).min(reads) {
            let t = from + n * 10 * S + tenant as i64 * S / 10;
            lines.push((t, eso_read(tenant, t)));
        }
    }
    lines.sort();
    lines
}

fn of_rule<'a>(alerts: &'a [Value], rule: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

fn stale(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| a["evidence"]["kind"] == "stale")
        .collect()
}

#[test]
fn a_stream_that_stops_is_one_silence_and_resuming_it_is_no_stale_storm() {
    let dir = tempfile::tempdir().unwrap();
    let rules = quick_rules(dir.path());
    let d = Daemon::start(dir.path(), CONFIG, &["--rules", rules.to_str().unwrap()]);

    // A minute of traffic that ended two minutes ago; tenant 29 stopped 20 s earlier.
    let start = now_ns() - 200 * S;
    let before = traffic(start, 7, |t| if t == 29 { 5 } else { 7 });
    let last = before.last().unwrap().0;
    d.send_and_wait_read("vault-socket", &timed_bytes(&before));
    d.wait_until(
        "the idle wall clock names the silence",
        Duration::from_secs(30),
        |d| !of_rule(&d.alerts(), SILENT).is_empty(),
    );

    // The traffic resumes after the silence, dated on: every key but tenant 7's, for three
    // minutes (into the future, within the clock's tolerance, so the wall clock names no
    // second silence before the test ends).
    let resume = now_ns() - 60 * S;
    let after = traffic(resume, 19, |t| if t == 7 { 0 } else { 19 });
    d.send("vault-socket", &timed_bytes(&after));
    let total = (before.len() + after.len()) as f64;
    d.wait_until("every entry read", Duration::from_secs(30), |d| {
        d.metric("auditwatch_events_total", &["source=\"vault-socket\""]) >= total
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let alerts = read_alerts(&dir.path().join("alerts.jsonl"));

    let silences = of_rule(&alerts, SILENT);
    assert_eq!(silences.len(), 1, "one finding: {silences:#?}");
    let ev = &silences[0]["evidence"];
    assert_eq!(ev["last_event_time"], format_rfc3339(last));
    assert_eq!(ev["watched_keys"], TENANTS, "{ev}");
    assert_eq!(
        ev["overdue_keys"], 1,
        "tenant 29's deadline fell in the silence: {ev}"
    );

    // No storm: neither while the daemon idled (the wall clock passed every key's
    // deadline) nor when the traffic resumed (the first entry after the gap passed them
    // in the stream's time). Only the key that stayed silent goes stale, 20 s of the
    // stream's time after its last read, the silent gap credited.
    let stale = stale(&alerts);
    assert_eq!(stale.len(), 1, "{stale:#?}");
    let s = stale[0];
    assert_eq!(s["path"], "secret/data/bookstore-platform/t7/db");
    let gap = after[0].0 - last;
    let last_read = before
        .iter()
        .rev()
        .find(|(_, l)| l.contains("-t7-"))
        .unwrap()
        .0;
    assert_eq!(s["time"], format_rfc3339(last_read + 20 * S + gap));
    assert_eq!(s["evidence"]["credited_secs"], gap / S);
}

#[test]
fn replay_told_when_its_input_ended_gives_the_idle_daemons_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let rules = quick_rules(dir.path());
    let d = Daemon::start(dir.path(), CONFIG, &["--rules", rules.to_str().unwrap()]);
    let start = now_ns() - 200 * S;
    let mut input = timed_bytes(&traffic(start, 7, |t| if t == 29 { 5 } else { 7 }));
    // A request whose response never comes: the idle daemon judges it once its response
    // timed out by the wall clock, as replay judges it at its end of input.
    let held = format!(
        r#"{{"time":"{}","type":"request","auth":{{"display_name":"root","policies":["root"]}},"request":{{"id":"{}","operation":"delete","path":"sys/audit/file"}}}}"#,
        format_rfc3339(start + 61 * S),
        request_id(21, 1)
    );
    input.extend_from_slice(format!("{held}\n").as_bytes());
    d.send_and_wait_read("vault-socket", &input);
    d.wait_until(
        "the silence and the timed-out request",
        Duration::from_secs(30),
        |d| {
            let a = d.alerts();
            !of_rule(&a, SILENT).is_empty() && !of_rule(&a, "audit-device-change").is_empty()
        },
    );
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let live = read_alerts(&dir.path().join("alerts.jsonl"));
    assert!(stale(&live).is_empty(), "{live:#?}");

    let file = dir.path().join("input.log");
    std::fs::write(&file, &input).unwrap();
    let cfg = dir.path().join("config.yaml");
    let replay = |extra: &[&str]| {
        let run = Auditwatch::new()
            .args(["replay", "--quiet", "--config"])
            .arg(&cfg)
            .arg("--rules")
            .arg(&rules)
            .args(extra)
            .arg(&file)
            .run();
        run.assert_code(0);
        run.alerts()
    };
    let ids = |a: &[Value]| -> BTreeSet<String> {
        a.iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let records = |a: &[Value]| -> BTreeSet<String> { a.iter().map(|a| a.to_string()).collect() };

    let replayed = replay(&["--idle-until", "now"]);
    assert_eq!(ids(&replayed), ids(&live));
    assert_eq!(records(&replayed), records(&live), "the same records too");
    assert_eq!(of_rule(&live, SILENT).len(), 1, "{live:#?}");
    assert_eq!(of_rule(&live, "audit-device-change").len(), 1, "{live:#?}");

    // Without it replay cannot know the stream went silent after its last entry.
    let without = replay(&[]);
    assert!(of_rule(&without, SILENT).is_empty(), "{without:#?}");
    assert_eq!(of_rule(&without, "audit-device-change").len(), 1);
}
