//! One finding per cause (issue 19): when every tenant's ESO stops at once while the rest of
//! the platform carries on, `eso-read-cadence`'s `group` block folds the keys going stale
//! into one platform-wide `stale` (tenant null) and one `resumed` record; the per-key
//! findings of that cause (a `stale` per key, a `lease_race` per credential whose interval
//! spanned the outage) are not raised, and everything else still fires. Checked on the
//! simulator's `eso_outage` and its one-tenant look-alike against their answer keys, and
//! through the real daemon, restarted in the outage: its state snapshot keeps the episode,
//! and its alerts are replay's, id for id.

use std::path::{Path, PathBuf};
use std::time::Duration;

use auditwatch::alert::Alert;
use auditwatch::parse::time::format_rfc3339;
use auditwatch::simulate::{generate, Injection, SimConfig};
use serde_json::Value;

use crate::util::*;

const S: i64 = 1_000_000_000;
const RULE: &str = "eso-read-cadence";

/// 24 tenants for 16 hours: a 10-hour outage after 4 hours of rhythm, an hour after it.
fn platform(injections: Vec<Injection>) -> SimConfig {
    SimConfig {
        seed: 7,
        tenants: 24,
        duration_secs: 16 * 3600,
        injections,
        store_validation_secs: None,
        ..SimConfig::default()
    }
}

fn kind(a: &Alert) -> &str {
    a.evidence
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

fn show(alerts: &[&Alert]) -> String {
    alerts.iter().map(|a| a.to_text_line() + "\n").collect()
}

/// Every answer item found, every alert explained.
fn check_key(alerts: &[Alert], key: &auditwatch::simulate::AnswerKey) {
    let all: Vec<&Alert> = alerts.iter().collect();
    for item in &key.items {
        assert!(
            alerts.iter().any(|a| item.found_by(a)),
            "not found: {} ({}..{})\nalerts:\n{}",
            item.description,
            item.window_start,
            item.window_end,
            show(&all)
        );
    }
    for a in alerts {
        assert!(
            key.items.iter().any(|i| i.explains(a)),
            "not explained by the answer key: {}",
            a.to_json_line()
        );
    }
}

#[test]
fn a_controller_outage_is_one_platform_wide_finding_and_the_rest_still_fires() {
    let others = [
        Injection::CrossTenantRead,
        Injection::CrossTenantProbe,
        Injection::RootTokenUse,
        Injection::Enumeration,
    ];
    let mut inject = vec![Injection::EsoOutage];
    inject.extend(others);
    let (lines, key) = generate(&platform(inject)).expect("plans");
    let (alerts, errors) = replay_lines(&lines);
    assert_eq!(errors, 0);
    check_key(&alerts, &key);

    let eso: Vec<&Alert> = alerts.iter().filter(|a| a.rule == RULE).collect();
    let stale: Vec<&&Alert> = eso.iter().filter(|a| kind(a) == "stale").collect();
    assert_eq!(stale.len(), 1, "one finding for the cause:\n{}", show(&eso));
    let g = stale[0];
    assert_eq!(g.tenant, None);
    assert_eq!(g.path, None);
    assert!(g.severity >= auditwatch::alert::Severity::Warning);
    assert_eq!(g.evidence["scope"], "group");
    assert_eq!(g.evidence["tenants"], 24, "{}", g.to_json_line());
    let keys =
        g.evidence["keys_overdue"].as_u64().unwrap() + g.evidence["keys_waiting"].as_u64().unwrap();
    let sample = g.evidence["sample"].as_array().unwrap();
    assert!(!sample.is_empty() && sample.len() <= 10, "bounded sample");
    assert!(
        eso.iter()
            .all(|a| kind(a) != "lease_race" && kind(a) != "too_frequent"),
        "nothing from the gap or the catch-up:\n{}",
        show(&eso)
    );
    let resumed: Vec<&&Alert> = eso.iter().filter(|a| kind(a) == "resumed").collect();
    assert_eq!(resumed.len(), 1, "{}", show(&eso));
    let r = &resumed[0].evidence;
    assert_eq!(r["episode"], g.id.as_str());
    assert_eq!(
        r["keys_folded"].as_u64(),
        Some(keys),
        "every silent key folded"
    );
    assert!(resumed[0].time_nanos - g.time_nanos > 6 * 3600 * S);

    // The other planted findings are the very alerts the same run without the outage
    // raises.
    let (lines, _) = generate(&platform(others.to_vec())).expect("plans");
    let (without, _) = replay_lines(&lines);
    let ids = |v: &[Alert]| -> Vec<String> {
        let mut ids: Vec<String> = (v.iter())
            .filter(|a| a.rule != RULE)
            .map(|a| a.id.clone())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&alerts), ids(&without));
}

#[test]
fn one_tenants_eso_stopping_is_its_own_stale_per_secret() {
    let (lines, key) = generate(&platform(vec![Injection::EsoTenantOutage])).expect("plans");
    let (alerts, errors) = replay_lines(&lines);
    assert_eq!(errors, 0);
    check_key(&alerts, &key);
    let stale: Vec<&Alert> = alerts.iter().filter(|a| kind(a) == "stale").collect();
    assert!(stale.len() >= 2, "{}", show(&stale));
    assert_eq!(stale.len(), key.items.len());
    let tenant = stale[0].tenant.clone();
    assert!(tenant.is_some());
    for a in &stale {
        assert_eq!(a.tenant, tenant, "one tenant: {}", show(&stale));
        assert!(a.evidence.get("scope").is_none(), "no group finding");
    }
}

// Through the daemon, in seconds: 30 tenants' ESO read every 10 s, stale after 3 learned
// intervals (30 s); the group is quiet after max(10 s, 2 x its longest pause, about 7 s).

const TENANTS: usize = 30;

fn config(state: &Path) -> String {
    format!(
        "{DETECTION}server: {{listen: 127.0.0.1:0, tick_secs: 1}}
state: {{dir: '{}', interval_secs: 1}}
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}
",
        state.display()
    )
}

const DETECTION: &str = "engine: {response_timeout_secs: 2}
cadence: {stale: {factor: 3, min_secs: 1, min_intervals: 2}, duplicate_within_secs: 0, too_frequent: {min_reads: 1000}}
";

/// The shipped rules, the group's quiet floor cut to 10 s.
fn quick_rules(dir: &Path) -> PathBuf {
    let shipped = crate_dir().join("rules");
    let mut files = Vec::new();
    for e in std::fs::read_dir(&shipped).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let mut text = std::fs::read_to_string(&p).unwrap();
        if name == "eso_cadence.yaml" {
            let quick = text.replace("quiet_secs: 1800", "quiet_secs: 10");
            assert_ne!(quick, text, "the group's settings moved");
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

fn eso_read(tenant: usize, t: i64) -> String {
    format!(
        r#"{{"time":"{}","type":"response","auth":{{"display_name":"kubernetes-bookstore-platform-t{tenant}-bookstore-platform-eso","metadata":{{"service_account_name":"bookstore-platform-eso","service_account_namespace":"bookstore-platform-t{tenant}"}},"policies":["default"]}},"request":{{"id":"eso-{tenant}-{}","operation":"read","mount_type":"kv","path":"secret/data/bookstore-platform/t{tenant}/db"}},"response":{{}}}}"#,
        format_rfc3339(t),
        t / S
    )
}

/// An application's token lookup: the platform carrying on.
fn other(t: i64) -> String {
    format!(
        r#"{{"time":"{}","type":"response","auth":{{"display_name":"kubernetes-bookstore-platform-t0-app","metadata":{{"service_account_name":"app","service_account_namespace":"bookstore-platform-t0"}},"policies":["default"]}},"request":{{"id":"app-{}","operation":"update","path":"auth/token/lookup-self"}},"response":{{}}}}"#,
        format_rfc3339(t),
        t / (S / 10)
    )
}

/// 70 s of rhythm, 120 s of outage, 30 s of rhythm again, the platform on throughout.
fn stream(t0: i64) -> Vec<(i64, String)> {
    let mut lines = Vec::new();
    for tenant in 0..TENANTS {
        let off = tenant as i64 * S / 10;
        for n in 0..7 {
            lines.push((
                t0 + n * 10 * S + off,
                eso_read(tenant, t0 + n * 10 * S + off),
            ));
        }
        for n in 0..3 {
            let t = t0 + 190 * S + n * 10 * S + off;
            lines.push((t, eso_read(tenant, t)));
        }
    }
    for n in 0..120 {
        lines.push((t0 + n * 2 * S, other(t0 + n * 2 * S)));
    }
    lines.sort();
    lines
}

fn eso_alerts(alerts: &[Value]) -> Vec<&Value> {
    alerts.iter().filter(|a| a["rule"] == RULE).collect()
}

#[test]
fn the_daemon_restarted_in_an_outage_keeps_the_episode_and_agrees_with_replay() {
    let dir = tempfile::tempdir().unwrap();
    let rules = quick_rules(dir.path());
    let state = dir.path().join("state");
    let t0 = now_ns() - 260 * S;
    let lines = stream(t0);
    // The first daemon sees the rhythm and the outage up to 150 s (every key folded), the
    // second one, started from the first one's state, the rest (ESO back).
    let cut = lines.iter().position(|(t, _)| *t >= t0 + 150 * S).unwrap();
    let (first, second) = lines.split_at(cut);
    let rules_arg = ["--rules", rules.to_str().unwrap()];
    let all = across_restarts(
        dir.path(),
        &config(&state),
        &rules_arg,
        &[first, second],
        |i, d| {
            if i == 0 {
                d.wait_until("the outage's finding", Duration::from_secs(30), |d| {
                    d.alerts().iter().any(|a| a["rule"] == RULE)
                });
            }
        },
    );
    let eso = eso_alerts(&all);
    let kinds: Vec<&str> = eso
        .iter()
        .map(|a| a["evidence"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["stale", "resumed"], "{eso:#?}");
    let (g, r) = (eso[0], eso[1]);
    assert_eq!(g["tenant"], Value::Null);
    assert_eq!(g["evidence"]["tenants"], TENANTS);
    assert_eq!(
        r["evidence"]["episode"], g["id"],
        "the episode survived the restart"
    );
    assert_eq!(r["evidence"]["keys_folded"], TENANTS, "{r}");
    assert_eq!(
        r["evidence"]["since"],
        format_rfc3339(t0 + 60 * S + (TENANTS as i64 - 1) * S / 10)
    );

    // Replay of the same input: the same findings, id for id.
    let run = replay_timed(dir.path(), &lines, DETECTION, &rules_arg);
    let replayed = run.alerts();
    let ids = |v: &[&Value]| -> Vec<String> { v.iter().map(|a| a["id"].to_string()).collect() };
    assert_eq!(ids(&eso_alerts(&replayed)), ids(&eso));
}
