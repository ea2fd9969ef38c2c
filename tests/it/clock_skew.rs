//! A wrong clock blinds nothing: one entry dated 2099 (or ten hours ahead) in the middle of
//! a simulated day with a planted ESO `stale` and a planted silence leaves every planted
//! finding in place, adds no false `stale`, and raises exactly one `clock_skew`, with the
//! same alerts from replay and from the live daemon. An entry from 1970 moves nothing
//! either. And the pending-request table, when its count or byte budget is full, judges
//! its oldest request first, one at a time.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::util::{read_alerts, without_observer, Daemon, BIN};
use auditwatch::alert::Alert;
use auditwatch::config::Config;
use auditwatch::pipeline::Pipeline;
use auditwatch::rules::RuleSet;
use serde_json::{json, Value};

const TCP_ONLY: &str = "server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}
";

/// The simulated day: `simulate --seed 7 --tenants 6 --duration 24h --inject
/// eso_stale,audit_stream_silent`, and its answer key.
fn simulated_day(dir: &Path) -> (Vec<String>, Value) {
    let out = dir.join("day.jsonl");
    let key = dir.join("key.json");
    let status = std::process::Command::new(BIN)
        .args([
            "simulate",
            "--seed",
            "7",
            "--tenants",
            "6",
            "--duration",
            "24h",
        ])
        .args(["--inject", "eso_stale,audit_stream_silent", "--answer-key"])
        .arg(&key)
        .arg("--output")
        .arg(&out)
        .status()
        .expect("simulate runs");
    assert!(status.success());
    let lines = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let key = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    (lines, key)
}

/// The day with one response entry copied after line `at` (before the planted ESO stale
/// and the planted silence), its time rewritten by `time` and its request id new.
fn with_one_entry_at(lines: &[String], at: usize, time: impl Fn(&str) -> String) -> Vec<u8> {
    let mut out = lines.to_vec();
    let mut i = at;
    while serde_json::from_str::<Value>(&out[i]).unwrap()["type"] != "response" {
        i += 1;
    }
    let mut e: Value = serde_json::from_str(&out[i]).unwrap();
    let t = time(e["time"].as_str().unwrap());
    e["time"] = json!(t);
    e["request"]["id"] = json!("deadbeef-0000-4000-8000-00000000c10c");
    out.insert(i + 1, e.to_string());
    let mut bytes = out.join("\n").into_bytes();
    bytes.push(b'\n');
    bytes
}

/// Replay as `auditwatch replay` drives the pipeline: alerts and the skewed-entry count.
fn replay(input: &[u8]) -> (Vec<Value>, u64) {
    let mut p = Pipeline::new(Arc::new(Config::default()), Arc::new(RuleSet::embedded()));
    let mut alerts: Vec<Alert> = Vec::new();
    for line in input.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let _ = p.feed_line(line, &mut alerts);
    }
    p.finish(&mut alerts);
    let alerts = alerts
        .iter()
        .map(|a| serde_json::from_str(&a.to_json_line()).unwrap())
        .collect();
    (alerts, p.engine_stats().skewed_entries)
}

/// The live daemon (no wall clock: time from the entries only) over TCP.
fn live(input: &[u8]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), TCP_ONLY, &[]);
    let mut s = TcpStream::connect(d.source("vault-socket")).unwrap();
    for chunk in input.chunks(64 * 1024) {
        s.write_all(chunk).unwrap();
    }
    drop(s);
    let lines = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as f64;
    d.wait_until("every entry read", Duration::from_secs(60), |d| {
        d.metric("auditwatch_events_total", &["source=\"vault-socket\""]) >= lines
    });
    // The engine's counters reach the metrics once a second: give them that long.
    let metric =
        |d: &Daemon| d.metric("auditwatch_engine_events_total", &["kind=\"skewed_entry\""]);
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while metric(&d) < 1.0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let skewed = metric(&d);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let alerts = without_observer(read_alerts(&dir.path().join("alerts.jsonl")));
    let expect_skewed = alerts.iter().any(|a| a["category"] == "clock_skew");
    assert_eq!(
        skewed >= 1.0,
        expect_skewed,
        "skewed_entry metric: {skewed}"
    );
    alerts
}

/// Alerts by (rule, evidence.kind).
fn kinds(alerts: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for a in alerts {
        let k = (
            a["rule"].as_str().unwrap_or_default().to_string(),
            a["evidence"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        *m.entry(k).or_default() += 1;
    }
    m
}

fn without_clock_skew(alerts: &[Value]) -> Vec<Value> {
    alerts
        .iter()
        .filter(|a| a["category"] != "clock_skew")
        .cloned()
        .collect()
}

/// The planted findings of the answer key are among the alerts.
fn assert_planted(key: &Value, alerts: &[Value]) {
    for item in key["items"].as_array().unwrap() {
        let kind = item["evidence_kind"].as_str().unwrap();
        let found = alerts.iter().any(|a| {
            a["category"] == item["category"]
                && a["evidence"]["kind"] == kind
                && (item["path"].is_null() || a["path"] == item["path"])
        });
        assert!(found, "planted finding missing: {item}\n{alerts:#?}");
    }
}

fn one_skewed_entry_blinds_nothing(time: impl Fn(&str) -> String, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (lines, key) = simulated_day(dir.path());
    let (baseline, skewed) = replay((lines.join("\n") + "\n").as_bytes());
    assert_eq!(skewed, 0, "the simulated day has no skew");
    assert_planted(&key, &baseline);
    // Early in the day: before the planted stale (~06:00) and the silence (~16:40).
    let input = with_one_entry_at(&lines, lines.len() / 8, time);

    let (alerts, skewed) = replay(&input);
    assert_eq!(skewed, 1, "{what}: one skewed entry counted");
    let clock_skew: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["category"] == "clock_skew")
        .collect();
    assert_eq!(clock_skew.len(), 1, "{what}: exactly one clock_skew");
    assert_eq!(clock_skew[0]["severity"], "warning");
    let ev = &clock_skew[0]["evidence"];
    assert!(ev["skew_secs"].as_i64().unwrap() > 300, "{ev}");
    assert!(
        ev["entry_time"].is_string() && ev["stream_time"].is_string(),
        "{ev}"
    );
    assert_planted(&key, &alerts);
    assert_eq!(
        kinds(&without_clock_skew(&alerts)),
        kinds(&baseline),
        "{what}: no false stale, nothing missed"
    );
    assert_eq!(
        without_clock_skew(&alerts),
        baseline,
        "{what}: every other alert as without the entry"
    );

    let got = live(&input);
    assert_eq!(got, alerts, "{what}: live alerts differ from replay");
}

#[test]
fn one_entry_dated_2099_blinds_nothing_in_replay_or_live() {
    one_skewed_entry_blinds_nothing(|_| "2099-01-01T00:00:00.000000Z".into(), "2099");
}

#[test]
fn one_entry_ten_hours_ahead_blinds_nothing_in_replay_or_live() {
    one_skewed_entry_blinds_nothing(
        |t| {
            // The simulator writes `YYYY-MM-DDTHH:...`: ten hours later, same day or next.
            let h: u32 = t[11..13].parse().unwrap();
            let d: u32 = t[8..10].parse().unwrap();
            let (d, h) = if h + 10 >= 24 {
                (d + 1, h + 10 - 24)
            } else {
                (d, h + 10)
            };
            format!("{}{d:02}T{h:02}{}", &t[..8], &t[13..])
        },
        "ten hours ahead",
    );
}

#[test]
fn an_entry_from_1970_moves_nothing_and_raises_no_storm() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, key) = simulated_day(dir.path());
    let (baseline, _) = replay((lines.join("\n") + "\n").as_bytes());
    let input = with_one_entry_at(&lines, lines.len() / 8, |_| {
        "1970-01-01T00:00:00.000000Z".into()
    });
    let (alerts, skewed) = replay(&input);
    assert_eq!(skewed, 0, "late, not ahead");
    assert_planted(&key, &alerts);
    let extra: Vec<&Value> = alerts.iter().filter(|a| !baseline.contains(a)).collect();
    assert!(
        extra.len() <= 1,
        "at most the entry's own finding: {extra:#?}"
    );
    assert!(
        baseline.iter().all(|a| alerts.contains(a)),
        "nothing missed"
    );
}

/// A request entry to sys/raw (a rule that fires on a request judged alone).
fn raw_request(n: usize, pad: usize) -> String {
    json!({
        "time": format!("2026-03-02T10:00:{n:02}Z"),
        "type": "request",
        "auth": {"display_name": format!("user-{n}"), "policies": ["root"]},
        "request": {
            "id": format!("0000000{n}-0000-4000-8000-000000000000"),
            "operation": "read",
            "path": "sys/raw/core/keyring",
            "data": {"pad": "x".repeat(pad)},
        },
    })
    .to_string()
}

/// Feed unanswered requests; the request ids of the alerts raised before the end.
fn evictions(cfg: &str, lines: &[String]) -> (Vec<String>, u64, usize) {
    let cfg = Arc::new(Config::from_yaml_str("test.yaml", cfg).expect("valid config"));
    let mut p = Pipeline::new(cfg, Arc::new(RuleSet::embedded()));
    let mut alerts = Vec::new();
    for l in lines {
        let _ = p.feed_line(l.as_bytes(), &mut alerts);
    }
    // One request may raise more than one rule's alert: one id per request judged.
    let mut ids: Vec<String> = alerts
        .iter()
        .map(|a| a.request_id.clone().unwrap_or_default())
        .collect();
    ids.dedup();
    (
        ids,
        p.engine_stats().evicted_requests,
        p.engine().table_sizes().pending_requests,
    )
}

#[test]
fn a_full_pending_table_judges_its_oldest_requests_first_one_at_a_time() {
    let lines: Vec<String> = (1..=5).map(|n| raw_request(n, 2000)).collect();
    let id = |n: usize| format!("0000000{n}-0000-4000-8000-000000000000");

    // By count: three held; the fourth and fifth push out the first and second.
    let (ids, evicted, held) = evictions("engine: {max_pending_requests: 3}\n", &lines);
    assert_eq!(
        ids,
        vec![id(1), id(2)],
        "oldest first, only as many as needed"
    );
    assert_eq!((evicted, held), (2, 3));

    // By bytes: room for three lines of this size.
    let budget = 3 * (lines[0].len() + 96) + 50;
    let cfg = format!("engine: {{max_pending_bytes: {budget}}}\n");
    let (ids, evicted, held) = evictions(&cfg, &lines);
    assert_eq!(
        ids,
        vec![id(1), id(2)],
        "oldest first, only as many as needed"
    );
    assert_eq!((evicted, held), (2, 3));
}

#[test]
fn max_pending_bytes_and_max_future_skew_secs_are_validated() {
    for bad in [
        "engine: {max_pending_bytes: 0}\n",
        "engine: {max_future_skew_secs: -1}\n",
        "engine: {max_pending_bytes: lots}\n",
    ] {
        assert!(
            Config::from_yaml_str("bad.yaml", bad).is_err(),
            "{bad} is accepted"
        );
    }
}
