//! The payload: an alert as Alertmanager's v2 API takes it (`postableAlert`).
//!
//! Invariants:
//! - The labels are a pure function of the alert and the config (`alertname`, `category`,
//!   `severity`, `team`, `rule`, `tenant`, `kind`, `alert_key`, static `labels`), the
//!   label scheme of the README's "Alerts that reach people" that the Prometheus health
//!   rules share (`team` is `security` unless the static labels name another): two detectors run
//!   as an HA pair send the same label set for the same alert, and Alertmanager merges them
//!   into one. Times and annotations may differ between the two; they do not identify.
//! - Alerts are point events: `startsAt` is the record's `time` and `endsAt` is
//!   `resolve_after_secs` past the later of `startsAt` and the moment the sink took the
//!   alert, so an alert that reaches Alertmanager late still arrives firing.
//! - Values are bounded ([`LABEL_MAX`](super::config::LABEL_MAX), [`ANNOTATION_MAX`]) and cut deterministically, so a
//!   long value keeps a stable label. The HMAC'd accessor is never sent.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use crate::alert::Alert;
use crate::sink::{advice, alert_key};

use super::config::{Settings, LABEL_MAX};

/// `team` of every detection alert unless the static `labels` set one: the team that
/// answers a detection (the health rules in `dashboards/prometheus/` carry `platform`).
pub const TEAM: &str = "security";

/// Longest annotation value sent (bytes; longer ones are cut, deterministically).
pub const ANNOTATION_MAX: usize = 2048;

/// Alertmanager's `alertname` for a category: `Auditwatch` + the category in CamelCase
/// (`cross_tenant_read` → `AuditwatchCrossTenantRead`).
pub fn alertname(category: &str) -> String {
    let mut out = String::from("Auditwatch");
    for word in category.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut c = word.chars();
        if let Some(f) = c.next() {
            out.push(f.to_ascii_uppercase());
            out.extend(c);
        }
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary, marked when cut.
fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// When the alert happened: the record's `time`, else its event time, else `taken`.
fn starts_at(a: &Alert, taken: Timestamp) -> Timestamp {
    a.time
        .parse::<Timestamp>()
        .ok()
        .or_else(|| {
            (a.time_nanos != 0)
                .then(|| Timestamp::from_nanosecond(i128::from(a.time_nanos)).ok())
                .flatten()
        })
        .unwrap_or(taken)
}

/// The label set of an alert: a function of the alert and the static labels only.
pub fn labels(a: &Alert, s: &Settings) -> BTreeMap<String, String> {
    let mut l = s.labels.clone();
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            l.insert(k.to_string(), cap(v, LABEL_MAX));
        }
    };
    put("alertname", &alertname(&a.category));
    put("category", &a.category);
    put("severity", a.severity.as_str());
    put("rule", &a.rule);
    if let Some(t) = &a.tenant {
        put("tenant", t);
    }
    if let Some(k) = a.evidence.get("kind").and_then(|k| k.as_str()) {
        put("kind", k);
    }
    put("alert_key", &alert_key(a));
    l.entry("team".to_string())
        .or_insert_with(|| TEAM.to_string());
    l
}

/// One alert as Alertmanager's v2 API takes it (`postableAlert`). `taken` is when the sink
/// took it off its queue (the floor of `endsAt`'s base).
pub fn payload(a: &Alert, s: &Settings, taken: Timestamp) -> Value {
    let advice = advice::for_category(&a.category);
    let mut ann: BTreeMap<&str, String> = BTreeMap::new();
    let mut put = |k: &'static str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            ann.insert(k, cap(v, ANNOTATION_MAX));
        }
    };
    put("summary", Some(&a.summary));
    put(
        "description",
        Some(&format!("{}\n\nWhat to do: {}", advice.why, advice.todo)),
    );
    put("runbook_url", a.runbook_url.as_deref());
    put("time", Some(&a.time));
    put("target_tenant", a.target_tenant.as_deref());
    put("request_id", a.request_id.as_deref());
    put("path", a.path.as_deref());
    put("operation", a.operation.as_deref());
    put("outcome", a.outcome.as_deref());
    put("actor", a.actor.display_name.as_deref());
    put("entity_id", a.actor.entity_id.as_deref());
    put("auth_method", a.actor.auth_method.as_deref());
    put("role", a.actor.role.as_deref());
    put("service_account", a.actor.service_account.as_deref());
    put("namespace", a.actor.namespace.as_deref());
    put("remote_address", a.actor.remote_address.as_deref());
    if !a.evidence.is_empty() {
        put(
            "evidence",
            Some(&Value::Object(a.evidence.clone()).to_string()),
        );
    }
    let starts = starts_at(a, taken);
    let base = starts.max(taken);
    let resolve = SignedDuration::from_secs(s.resolve_after_secs as i64);
    let ends = base.checked_add(resolve).unwrap_or(base);
    json!({
        "labels": labels(a, s),
        "annotations": ann,
        "startsAt": starts.to_string(),
        "endsAt": ends.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Actor, Severity};

    fn alert() -> Alert {
        let mut evidence = serde_json::Map::new();
        evidence.insert("kind".into(), json!("stale"));
        evidence.insert("observed_secs".into(), json!(7200));
        Alert {
            id: "cross-tenant-kv-read:c915b587".into(),
            time: "2026-03-02T14:07:00.123456Z".into(),
            rule: "cross-tenant-kv-read".into(),
            category: "cross_tenant_read".into(),
            severity: Severity::Critical,
            summary: "acme identity read secret/data/lumen/db (allowed)".into(),
            tenant: Some("acme".into()),
            target_tenant: Some("lumen".into()),
            request_id: Some("c915b587".into()),
            path: Some("secret/data/lumen/db".into()),
            operation: Some("read".into()),
            outcome: Some("allowed".into()),
            actor: Actor {
                display_name: Some("kubernetes-acme-eso".into()),
                entity_id: Some("1f2e3d4c".into()),
                auth_method: Some("kubernetes".into()),
                accessor: Some("hmac-sha256:0c2e4a6b8d0f".into()),
                ..Actor::default()
            },
            evidence,
            observer: None,
            description: String::new(),
            runbook_url: None,
            time_nanos: 1_772_460_420_123_456_000,
        }
    }

    fn settings() -> Settings {
        Settings {
            urls: vec!["http://127.0.0.1:9093".into()],
            labels: [("cluster".to_string(), "prod".to_string())].into(),
            ..Settings::default()
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn labels_are_a_stable_function_of_the_alert() {
        let a = alert();
        let s = settings();
        let l = labels(&a, &s);
        let want: BTreeMap<String, String> = [
            ("alertname", "AuditwatchCrossTenantRead"),
            ("category", "cross_tenant_read"),
            ("severity", "critical"),
            ("rule", "cross-tenant-kv-read"),
            ("tenant", "acme"),
            ("kind", "stale"),
            ("alert_key", alert_key(&a).as_str()),
            ("cluster", "prod"),
            ("team", "security"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(l, want);
        // What differs between two detectors of an HA pair does not touch the labels.
        let p1 = payload(&a, &s, ts("2026-11-22T10:00:00Z"));
        let mut b = a.clone();
        b.summary = "another wording".into();
        b.stamp("detector-b", "https://wiki/{category}");
        let p2 = payload(&b, &s, ts("2026-11-22T10:00:07Z"));
        assert_eq!(p1["labels"], p2["labels"]);
        // Distinct alerts stay distinct.
        b.id = "cross-tenant-kv-read:another-request".into();
        assert_ne!(labels(&a, &s)["alert_key"], labels(&b, &s)["alert_key"]);
        // No tenant: no label (an empty matcher in Alertmanager matches it).
        b.tenant = None;
        assert!(!labels(&b, &s).contains_key("tenant"));
        // A team named in the static labels routes the detections elsewhere.
        let mut s2 = s.clone();
        s2.labels.insert("team".into(), "soc".into());
        assert_eq!(labels(&a, &s2)["team"], "soc");
    }

    #[test]
    fn payload_carries_advice_runbook_and_times_but_no_accessor() {
        let mut a = alert();
        a.stamp("detector-a", "https://wiki.example/aw/{category}");
        let s = settings();
        let p = payload(&a, &s, ts("2026-11-22T10:00:00Z"));
        let ann = &p["annotations"];
        assert_eq!(ann["summary"], json!(a.summary));
        assert!(ann["description"]
            .as_str()
            .unwrap()
            .contains("What to do: Check the actor's policies"));
        assert_eq!(
            ann["runbook_url"],
            json!("https://wiki.example/aw/cross_tenant_read")
        );
        assert_eq!(ann["path"], json!("secret/data/lumen/db"));
        assert_eq!(ann["actor"], json!("kubernetes-acme-eso"));
        assert_eq!(ann["request_id"], json!("c915b587"));
        assert_eq!(ann["target_tenant"], json!("lumen"));
        assert!(ann["evidence"].as_str().unwrap().contains("observed_secs"));
        // The HMAC'd accessor is useless to a responder and is left out.
        assert!(!p.to_string().contains("hmac-sha256"), "{p}");
        assert_eq!(p["startsAt"], json!("2026-03-02T14:07:00.123456Z"));
        // An old alert is pushed firing: endsAt counts from when it was taken.
        assert_eq!(p["endsAt"], json!("2026-11-22T11:00:00Z"));
        // A fresh one: from its own time.
        a.runbook_url = None;
        let p = payload(&a, &s, ts("2026-03-02T14:06:00Z"));
        assert_eq!(p["endsAt"], json!("2026-03-02T15:07:00.123456Z"));
        assert!(p["annotations"].get("runbook_url").is_none());
        // What Alertmanager parses: every field of a postableAlert, nothing else.
        let keys: Vec<_> = p.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["annotations", "endsAt", "labels", "startsAt"]);
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let mut a = alert();
        a.tenant = Some("é".repeat(400));
        a.path = Some("p".repeat(5000));
        let p = payload(&a, &settings(), ts("2026-11-22T10:00:00Z"));
        let t = p["labels"]["tenant"].as_str().unwrap();
        assert!(t.len() <= LABEL_MAX && t.ends_with('…'), "{t}");
        assert!(p["annotations"]["path"].as_str().unwrap().len() <= ANNOTATION_MAX);
        // Cutting is deterministic, so the label stays stable.
        assert_eq!(labels(&a, &settings()), labels(&a, &settings()));
    }

    #[test]
    fn alertnames_come_from_the_category() {
        assert_eq!(alertname("eso_cadence"), "AuditwatchEsoCadence");
        assert_eq!(alertname("test-read.x"), "AuditwatchTestReadX");
        assert_eq!(alertname(""), "Auditwatch");
    }
}
