//! The alert record as Elastic Common Schema (ECS 8.11), for SIEMs that index ECS
//! (Elastic Security, OpenSearch's security analytics, Graylog's ECS mappings, Vector's
//! and Fluent Bit's Elasticsearch outputs). A pure function of the record: every value
//! comes from it, nothing is un-hashed or added from elsewhere.
//!
//! - `@timestamp`: the event time; `message`: the summary.
//! - `event`: `kind: alert`, `category` (always `intrusion_detection`, with `iam`,
//!   `configuration`, `authentication` or `database` where the finding is about those),
//!   `type` (`info`, and `allowed`/`denied` from the outcome), `outcome`
//!   (`success`/`failure`/`unknown`), `severity` (the number Elastic Security gives its
//!   own severities: info 21, warning 47, high 73, critical 99), `id` (the stable `id`:
//!   the same from both detectors of an HA pair, so a SIEM can de-duplicate),
//!   `dataset: auditwatch.alert`, `module: auditwatch`.
//! - `log.level`: auditwatch's severity word as it is (`info` … `critical`).
//! - `rule`: `id` and `name` (the rule id), `category`, `description`, `reference` (the
//!   runbook link), `ruleset: auditwatch`.
//! - `observer`: `name` (the detector instance), `type: ids`, `vendor` and `product`
//!   `auditwatch`, `version`.
//! - `user`: `name` (display name), `id` (entity id); `source.address` the remote address,
//!   `source.ip` too when it is an IP address (ECS maps it as `ip`: anything else would
//!   fail the whole document).
//! - `labels` (keywords, no dots in keys): `tenant`, `target_tenant`, `category`, `kind`
//!   (`evidence.kind`), `severity`.
//! - `auditwatch`: what ECS has no field for, under the product's own name as ECS advises
//!   for custom fields: `request_id`, `path`, `operation`, `outcome`, the rest of the
//!   actor (`auth_method`, `role`, `service_account`, `namespace`, `accessor`), `evidence`.
//!
//! Fields without a value are left out rather than written as null (ECS documents carry
//! what they know).

use serde_json::{json, Map, Value};

use super::{Alert, Severity};

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

/// `event.severity`: Elastic Security's risk scores for its low/medium/high/critical.
pub fn severity_number(s: Severity) -> u8 {
    match s {
        Severity::Info => 21,
        Severity::Warning => 47,
        Severity::High => 73,
        Severity::Critical => 99,
    }
}

/// `event.category`: ECS's allowed values that describe a finding of this category.
pub fn event_categories(category: &str) -> Vec<&'static str> {
    let extra: &[&'static str] = match category {
        "cross_tenant_read" | "after_hours_admin" | "root_token_use" | "generate_root"
        | "policy_drift" | "ci_origin_read" | "mass_revocation" => &["iam"],
        "audit_device_change" | "auth_or_mount_change" => &["configuration"],
        "login_failure_burst" => &["authentication"],
        "sys_raw_access" => &["database"],
        _ => &[],
    };
    let mut v = vec!["intrusion_detection"];
    v.extend_from_slice(extra);
    v
}

/// The ECS document of an alert.
pub fn document(a: &Alert) -> Value {
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(a.time));
    doc.insert("message".into(), json!(a.summary));
    doc.insert("ecs".into(), json!({"version": ECS_VERSION}));

    let (outcome, kind_of_type) = match a.outcome.as_deref() {
        Some("allowed") => ("success", Some("allowed")),
        Some("denied") => ("failure", Some("denied")),
        Some("error") => ("failure", None),
        _ => ("unknown", None),
    };
    let mut types = vec!["info"];
    types.extend(kind_of_type);
    doc.insert(
        "event".into(),
        json!({
            "kind": "alert",
            "category": event_categories(&a.category),
            "type": types,
            "outcome": outcome,
            "severity": severity_number(a.severity),
            "id": a.id,
            "dataset": "auditwatch.alert",
            "module": "auditwatch",
        }),
    );
    doc.insert("log".into(), json!({"level": a.severity.as_str()}));

    let mut rule = Map::new();
    rule.insert("id".into(), json!(a.rule));
    rule.insert("name".into(), json!(a.rule));
    rule.insert("category".into(), json!(a.category));
    rule.insert("ruleset".into(), json!("auditwatch"));
    if !a.description.is_empty() {
        rule.insert("description".into(), json!(a.description));
    }
    put(&mut rule, "reference", a.runbook_url.as_deref());
    doc.insert("rule".into(), Value::Object(rule));

    let mut observer = Map::new();
    put(&mut observer, "name", a.observer.as_deref());
    observer.insert("type".into(), json!("ids"));
    observer.insert("vendor".into(), json!("auditwatch"));
    observer.insert("product".into(), json!("auditwatch"));
    observer.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    doc.insert("observer".into(), Value::Object(observer));

    let mut user = Map::new();
    put(&mut user, "name", a.actor.display_name.as_deref());
    put(&mut user, "id", a.actor.entity_id.as_deref());
    if !user.is_empty() {
        doc.insert("user".into(), Value::Object(user));
    }
    if let Some(addr) = a.actor.remote_address.as_deref() {
        let mut source = Map::new();
        source.insert("address".into(), json!(addr));
        if addr.parse::<std::net::IpAddr>().is_ok() {
            source.insert("ip".into(), json!(addr));
        }
        doc.insert("source".into(), Value::Object(source));
    }

    let mut labels = Map::new();
    put(&mut labels, "tenant", a.tenant.as_deref());
    put(&mut labels, "target_tenant", a.target_tenant.as_deref());
    labels.insert("category".into(), json!(a.category));
    labels.insert("severity".into(), json!(a.severity.as_str()));
    put(
        &mut labels,
        "kind",
        a.evidence.get("kind").and_then(Value::as_str),
    );
    doc.insert("labels".into(), Value::Object(labels));

    let mut own = Map::new();
    put(&mut own, "request_id", a.request_id.as_deref());
    put(&mut own, "path", a.path.as_deref());
    put(&mut own, "operation", a.operation.as_deref());
    put(&mut own, "outcome", a.outcome.as_deref());
    let mut actor = Map::new();
    put(&mut actor, "auth_method", a.actor.auth_method.as_deref());
    put(&mut actor, "role", a.actor.role.as_deref());
    put(
        &mut actor,
        "service_account",
        a.actor.service_account.as_deref(),
    );
    put(&mut actor, "namespace", a.actor.namespace.as_deref());
    put(&mut actor, "accessor", a.actor.accessor.as_deref());
    if !actor.is_empty() {
        own.insert("actor".into(), Value::Object(actor));
    }
    if !a.evidence.is_empty() {
        own.insert("evidence".into(), Value::Object(a.evidence.clone()));
    }
    doc.insert("auditwatch".into(), Value::Object(own));
    Value::Object(doc)
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<&str>) {
    if let Some(v) = v {
        m.insert(k.into(), json!(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Actor;

    fn alert() -> Alert {
        let mut evidence = Map::new();
        evidence.insert("kind".into(), json!("probe"));
        evidence.insert("observed".into(), json!(3));
        Alert {
            id: "cross-tenant-read:c915b587".into(),
            time: "2026-03-02T14:07:00.123456Z".into(),
            rule: "cross-tenant-read".into(),
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
                entity_id: Some("6f1c2d4e".into()),
                auth_method: Some("kubernetes".into()),
                role: Some("acme".into()),
                service_account: Some("eso".into()),
                namespace: Some("acme".into()),
                remote_address: Some("10.42.0.7".into()),
                accessor: Some("hmac-sha256:7a1f".into()),
            },
            evidence,
            observer: Some("vault-0".into()),
            description: "A tenant identity touched another tenant's secrets.".into(),
            runbook_url: Some("https://wiki.example/cross_tenant_read".into()),
            time_nanos: 0,
        }
    }

    #[test]
    fn every_field_of_the_record_lands_where_ecs_puts_it() {
        let d = document(&alert());
        assert_eq!(d["@timestamp"], "2026-03-02T14:07:00.123456Z");
        assert_eq!(
            d["message"],
            "acme identity read secret/data/lumen/db (allowed)"
        );
        assert_eq!(d["ecs"]["version"], ECS_VERSION);
        // event
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(
            d["event"]["category"],
            json!(["intrusion_detection", "iam"])
        );
        assert_eq!(d["event"]["type"], json!(["info", "allowed"]));
        assert_eq!(d["event"]["outcome"], "success");
        assert_eq!(d["event"]["severity"], 99);
        assert_eq!(d["event"]["id"], "cross-tenant-read:c915b587");
        assert_eq!(d["event"]["dataset"], "auditwatch.alert");
        assert_eq!(d["event"]["module"], "auditwatch");
        assert_eq!(d["log"]["level"], "critical");
        // rule
        assert_eq!(d["rule"]["id"], "cross-tenant-read");
        assert_eq!(d["rule"]["name"], "cross-tenant-read");
        assert_eq!(d["rule"]["category"], "cross_tenant_read");
        assert_eq!(d["rule"]["ruleset"], "auditwatch");
        assert_eq!(
            d["rule"]["description"],
            "A tenant identity touched another tenant's secrets."
        );
        assert_eq!(
            d["rule"]["reference"],
            "https://wiki.example/cross_tenant_read"
        );
        // observer
        assert_eq!(d["observer"]["name"], "vault-0");
        assert_eq!(d["observer"]["type"], "ids");
        assert_eq!(d["observer"]["vendor"], "auditwatch");
        assert_eq!(d["observer"]["product"], "auditwatch");
        assert_eq!(d["observer"]["version"], env!("CARGO_PKG_VERSION"));
        // who and from where
        assert_eq!(d["user"]["name"], "kubernetes-acme-eso");
        assert_eq!(d["user"]["id"], "6f1c2d4e");
        assert_eq!(d["source"]["ip"], "10.42.0.7");
        assert_eq!(d["source"]["address"], "10.42.0.7");
        // labels: keywords only
        assert_eq!(
            d["labels"],
            json!({"tenant": "acme", "target_tenant": "lumen", "category": "cross_tenant_read",
                   "severity": "critical", "kind": "probe"})
        );
        assert!(d["labels"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| v.is_string() && !k.contains('.')));
        // what ECS has no field for
        let own = &d["auditwatch"];
        assert_eq!(own["request_id"], "c915b587");
        assert_eq!(own["path"], "secret/data/lumen/db");
        assert_eq!(own["operation"], "read");
        assert_eq!(own["outcome"], "allowed");
        assert_eq!(
            own["actor"],
            json!({"auth_method": "kubernetes", "role": "acme", "service_account": "eso",
                   "namespace": "acme", "accessor": "hmac-sha256:7a1f"})
        );
        assert_eq!(own["evidence"], json!({"kind": "probe", "observed": 3}));
        // Nothing else at the top level.
        let mut keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "@timestamp",
                "auditwatch",
                "ecs",
                "event",
                "labels",
                "log",
                "message",
                "observer",
                "rule",
                "source",
                "user"
            ]
        );
    }

    #[test]
    fn severities_map_to_ordered_numbers_and_outcomes_to_ecs_values() {
        let n: Vec<u8> = Severity::ALL.iter().map(|s| severity_number(*s)).collect();
        assert_eq!(n, [21, 47, 73, 99]);
        for (outcome, want, types) in [
            (Some("denied"), "failure", json!(["info", "denied"])),
            (Some("error"), "failure", json!(["info"])),
            (Some("unknown"), "unknown", json!(["info"])),
            (None, "unknown", json!(["info"])),
        ] {
            let mut a = alert();
            a.outcome = outcome.map(str::to_string);
            let d = document(&a);
            assert_eq!(d["event"]["outcome"], want, "{outcome:?}");
            assert_eq!(d["event"]["type"], types, "{outcome:?}");
        }
        assert_eq!(
            event_categories("audit_device_change"),
            ["intrusion_detection", "configuration"]
        );
        assert_eq!(
            event_categories("login_failure_burst"),
            ["intrusion_detection", "authentication"]
        );
        // A custom rule's category is still a detection finding.
        assert_eq!(event_categories("my_own"), ["intrusion_detection"]);
    }

    /// A platform-wide finding: no actor, no request; nothing empty or null is written,
    /// and an address that is no IP stays out of `source.ip` (ECS maps it as `ip`).
    #[test]
    fn absent_fields_are_left_out_never_null() {
        let mut a = alert();
        a.describe_platform();
        a.observer = None;
        a.runbook_url = None;
        a.evidence.clear();
        let d = document(&a);
        for gone in ["user", "source"] {
            assert!(d.get(gone).is_none(), "{gone}: {d}");
        }
        assert!(d["rule"].get("reference").is_none());
        assert!(d["observer"].get("name").is_none());
        assert_eq!(d["auditwatch"], json!({}));
        assert_eq!(
            d["labels"],
            json!({"category": "cross_tenant_read", "severity": "critical"})
        );
        fn no_null(v: &Value) -> bool {
            match v {
                Value::Null => false,
                Value::Object(m) => m.values().all(no_null),
                Value::Array(a) => a.iter().all(no_null),
                _ => true,
            }
        }
        assert!(no_null(&d), "{d}");

        let mut a = alert();
        a.actor.remote_address = Some("unix-socket".into());
        let d = document(&a);
        assert_eq!(d["source"], json!({"address": "unix-socket"}));
    }
}
