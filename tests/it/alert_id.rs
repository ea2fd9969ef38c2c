//! The alert `id` (`shared/docs/detections.md`): the same finding has the same id from any
//! copy of the stream. A real OpenBao writes each audit device's copy of a request with its
//! own timestamp and HMACs with each device's own salt, so a second device is simulated
//! here by moving every entry's time and re-salting every HMAC'd value.

use std::collections::BTreeSet;

use auditwatch::alert::Alert;
use auditwatch::parse::time::{format_rfc3339, parse_rfc3339_nanos};
use serde_json::Value;

use crate::util::{crate_dir, default_pipeline, feed};

/// Another device's copy of a line: time later by `shift_ns`, every `hmac-sha256:` value
/// re-salted (its text reversed: a different value of the same shape).
fn other_device(line: &str, shift_ns: i64) -> String {
    fn resalt(v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(h) = s.strip_prefix("hmac-sha256:") {
                    *s = format!("hmac-sha256:{}", h.chars().rev().collect::<String>());
                }
            }
            Value::Array(a) => a.iter_mut().for_each(resalt),
            Value::Object(m) => m.values_mut().for_each(resalt),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(line).expect("a scenario line is JSON");
    resalt(&mut v);
    if let Some(t) = v.get("time").and_then(Value::as_str) {
        let ns = parse_rfc3339_nanos(t).expect("a scenario time");
        v["time"] = Value::String(format_rfc3339(ns + shift_ns));
    }
    v.to_string()
}

fn scenario(name: &str) -> Vec<String> {
    let path = crate_dir().join("fixtures/scenarios").join(name);
    std::fs::read_to_string(path)
        .expect("scenario")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn ids(alerts: &[Alert]) -> Vec<String> {
    alerts.iter().map(|a| a.id.clone()).collect()
}

/// Every scenario with alerts: the second device's replay gives the same ids, in the same
/// order, though the alerts' times (and HMAC'd accessors) differ.
#[test]
fn a_second_audit_device_gives_the_same_alert_ids() {
    let dir = crate_dir().join("fixtures/scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures/scenarios")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl") && !n.ends_with(".alerts.jsonl"))
        .collect();
    names.sort();
    let (mut compared, mut times_differ) = (0, 0);
    for name in &names {
        let lines = scenario(name);
        let a = feed(&mut default_pipeline(), &lines);
        let copy: Vec<String> = lines.iter().map(|l| other_device(l, 137_000)).collect();
        let b = feed(&mut default_pipeline(), &copy);
        assert_eq!(ids(&a), ids(&b), "{name}: the copy's alerts have other ids");
        let unique: BTreeSet<&String> = a.iter().map(|x| &x.id).collect();
        assert_eq!(unique.len(), a.len(), "{name}: two alerts share an id");
        compared += a.len();
        times_differ += a.iter().zip(&b).filter(|(x, y)| x.time != y.time).count();
    }
    assert!(compared >= 20, "only {compared} alerts compared");
    assert_eq!(
        times_differ, compared,
        "every copy's alert carries its own time"
    );
}

/// Both copies through one engine (the socket and the file device into one daemon): each
/// finding once, also for entries without a request id, and the repeat is counted.
#[test]
fn both_copies_through_one_engine_alert_once() {
    // A rule without a suppress window, so only the id can tell the copies are one.
    let lines = scenario("cross-tenant-read.jsonl");
    let alone = feed(&mut default_pipeline(), &lines);
    assert!(!alone.is_empty());
    // Entries without a request id: only what the copies share tells them apart.
    let no_id: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["request"].as_object_mut().map(|r| r.remove("id"));
            v.to_string()
        })
        .collect();
    let mut both = Vec::new();
    for l in &no_id {
        both.push(l.clone());
        both.push(other_device(l, 250_000));
    }
    let mut p = default_pipeline();
    let alerts = feed(&mut p, &both);
    let single = feed(&mut default_pipeline(), &no_id);
    assert_eq!(ids(&alerts), ids(&single), "each finding once");
    assert!(
        p.engine_stats().duplicate_alerts >= single.len() as u64,
        "the repeats are counted: {:?}",
        p.engine_stats()
    );
    assert!(
        single.iter().all(|a| a.id.contains(":~")),
        "ids from shared fields"
    );
}
