//! Silence is one finding: a platform's ESO traffic that stops, is left alone by the wall
//! clock or resumes after Vault was sealed for two hours. The engine driven as replay
//! drives it (entries, then the end of input) and as the daemon does (idle ticks of the
//! wall clock between them), with the shipped rules.

use std::sync::Arc;

use super::*;
use crate::parse::time::{format_rfc3339, parse_rfc3339_nanos};

const S: i64 = NANOS;
const TENANTS: usize = 30;

/// The shipped rules, with `stale` after max(3 x the learned interval, 10 min).
fn engine() -> Engine {
    let cfg = Config::from_yaml_str(
        "t.yaml",
        "cadence: {stale: {factor: 3, min_secs: 600, min_intervals: 3}}\n",
    )
    .expect("a valid config");
    Engine::new(Arc::new(cfg), Arc::new(RuleSet::embedded()))
}

fn start() -> i64 {
    parse_rfc3339_nanos("2026-03-02T08:00:00Z").unwrap()
}

/// ESO of `tenant` reading its secret `name` at `t`.
fn eso_read(tenant: usize, name: &str, t: i64) -> String {
    format!(
        r#"{{"time":"{}","type":"response","auth":{{"display_name":"kubernetes-bookstore-platform-t{tenant}-bookstore-platform-eso","metadata":{{"service_account_name":"bookstore-platform-eso","service_account_namespace":"bookstore-platform-t{tenant}"}},"policies":["default"]}},"request":{{"id":"eso-{tenant}-{name}-{}","operation":"read","mount_type":"kv","path":"secret/data/bookstore-platform/t{tenant}/{name}"}},"response":{{}}}}"#,
        format_rfc3339(t),
        t / S
    )
}

/// Every tenant's ESO from `from` until `to`: `db` read every 5 minutes (stale 15 minutes
/// after its last read), `api` every 10 (stale after 30), tenants a few seconds apart;
/// `skip` (tenant, secret) is not read. In time order.
fn platform(from: i64, to: i64, skip: Option<(usize, &str)>) -> Vec<(i64, String)> {
    let mut lines = Vec::new();
    for tenant in 0..TENANTS {
        for (name, every) in [("db", 300), ("api", 600)] {
            if skip == Some((tenant, name)) {
                continue;
            }
            let mut t = from + tenant as i64 * 7 * S + if name == "api" { 3 * S } else { 0 };
            while t < to {
                lines.push((t, eso_read(tenant, name, t)));
                t += every * S;
            }
        }
    }
    lines.sort();
    lines
}

fn feed(e: &mut Engine, lines: &[(i64, String)], out: &mut Vec<Alert>) {
    let mut p = Parser::new("");
    for (_, l) in lines {
        p.parse(l.as_bytes(), |_, r| {
            e.process(&r.expect("a test entry"), Some(l.as_bytes()), out)
        });
    }
}

fn of_rule<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.rule == rule).collect()
}

fn stale(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.evidence.get("kind").and_then(|k| k.as_str()) == Some("stale"))
        .collect()
}

const SILENT: &str = "audit-stream-silent";

/// Two hours of traffic, then the daemon's idle tick every minute for ten hours.
#[test]
fn a_stream_that_stops_is_one_silence_with_the_overdue_count_and_no_stale() {
    let traffic = platform(start(), start() + 2 * 3600 * S, None);
    let last = traffic.last().unwrap().0;
    let mut e = engine();
    let mut alerts = Vec::new();
    feed(&mut e, &traffic, &mut alerts);
    assert!(alerts.is_empty(), "a healthy rhythm: {alerts:?}");

    let mut ticks = Vec::new();
    for minute in 1..=600 {
        e.advance_clock(last + minute * 60 * S, &mut ticks);
    }
    e.settle_clock(&mut ticks);
    assert!(
        stale(&ticks).is_empty(),
        "no stale storm: {:?}",
        stale(&ticks)
    );
    assert_eq!(ticks.len(), 1, "one finding: {ticks:?}");
    let silence = &ticks[0];
    assert_eq!(silence.rule, SILENT);
    assert_eq!(silence.time_nanos, last + 900 * S, "named at its own time");
    // The 30 `db` keys would have gone stale within the silence's 15 minutes; the 30 `api`
    // keys had a deadline in force too.
    assert_eq!(
        silence.evidence["overdue_keys"], 30,
        "{:?}",
        silence.evidence
    );
    assert_eq!(
        silence.evidence["watched_keys"], 60,
        "{:?}",
        silence.evidence
    );

    // Replay told that the input ended ten hours ago: the same finding, by id and record.
    let mut r = engine();
    let mut replayed = Vec::new();
    feed(&mut r, &traffic, &mut replayed);
    r.advance_clock(last + 10 * 3600 * S, &mut replayed);
    r.finish(&mut replayed);
    let json = |a: &[Alert]| a.iter().map(Alert::to_json_line).collect::<Vec<_>>();
    assert_eq!(json(&replayed), json(&ticks));
}

/// Vault sealed for two hours: every key but one resumes its rhythm after the gap.
fn sealed_for_two_hours(wall_ticks: bool) -> (Vec<Alert>, i64, i64) {
    let before = platform(start(), start() + 2 * 3600 * S, None);
    let after = platform(
        start() + 4 * 3600 * S,
        start() + 8 * 3600 * S,
        Some((7, "db")),
    );
    let (from, to) = (before.last().unwrap().0, after[0].0);
    let mut e = engine();
    let mut alerts = Vec::new();
    feed(&mut e, &before, &mut alerts);
    if wall_ticks {
        let mut now = from + 60 * S;
        while now < to {
            e.advance_clock(now, &mut alerts);
            now += 60 * S;
        }
    }
    feed(&mut e, &after, &mut alerts);
    e.finish(&mut alerts);
    (alerts, from, to)
}

#[test]
fn a_stream_resuming_after_two_silent_hours_raises_no_stale_storm() {
    let (alerts, from, to) = sealed_for_two_hours(false);
    assert!(to - from > 2 * 3600 * S - 60 * S);
    let silences = of_rule(&alerts, SILENT);
    assert_eq!(silences.len(), 1, "{silences:?}");
    assert_eq!(silences[0].evidence["watched_keys"], 60);
    // Only the key that did not resume goes stale, 15 minutes of the stream's own time
    // after its last read: the two silent hours do not count.
    let stale = stale(&alerts);
    assert_eq!(stale.len(), 1, "no storm: {stale:?}");
    let s = stale[0];
    assert_eq!(
        s.path.as_deref(),
        Some("secret/data/bookstore-platform/t7/db")
    );
    let last_read = parse_rfc3339_nanos(s.evidence["last_read"].as_str().unwrap()).unwrap();
    assert!(last_read <= from);
    let credited = to - from;
    assert_eq!(s.time_nanos, last_read + 900 * S + credited);
    assert_eq!(s.evidence["silent_for_secs"], (900 * S + credited) / S);
    assert_eq!(s.evidence["credited_secs"], credited / S);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
}

/// The daemon named the silence during the gap by its wall clock; replay names it when the
/// entries resume: the same alerts, by id and record.
#[test]
fn the_wall_clock_during_the_gap_changes_nothing_but_when_the_silence_is_named() {
    let (replayed, ..) = sealed_for_two_hours(false);
    let (live, ..) = sealed_for_two_hours(true);
    let json = |a: &[Alert]| {
        let mut v: Vec<String> = a.iter().map(Alert::to_json_line).collect();
        v.sort();
        v
    };
    assert_eq!(json(&live), json(&replayed));
}

/// A quiet stream (a lab, a night on a small cluster) is not busy: its long gaps are no
/// silence and are not credited, so a key still goes stale after its own deadline.
#[test]
fn the_gaps_of_a_quiet_stream_are_not_credited() {
    let mut lines = Vec::new();
    for n in 0..5 {
        let t = start() + n * 3600 * S;
        lines.push((t, eso_read(1, "db", t)));
    }
    // Another key every 1,000 s: gaps longer than the silence rule's 900 s.
    for n in 0..40 {
        let t = start() + 4 * 3600 * S + 60 * S + n * 1000 * S;
        lines.push((t, eso_read(2, "db", t)));
    }
    lines.sort();
    let mut e = engine();
    let mut alerts = Vec::new();
    feed(&mut e, &lines, &mut alerts);
    e.finish(&mut alerts);
    assert!(of_rule(&alerts, SILENT).is_empty());
    let stale = stale(&alerts);
    assert_eq!(stale.len(), 1, "{stale:?}");
    // Learned interval 3600 s, three of them: stale 3 hours after the last read.
    assert_eq!(stale[0].time_nanos, start() + 4 * 3600 * S + 3 * 3600 * S);
    assert!(stale[0].evidence.get("credited_secs").is_none());
}
