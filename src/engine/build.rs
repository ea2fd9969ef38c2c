//! Alert building: the record of `shared/docs/detections.md` from a judged event (who,
//! what, where, the outcome) or, for findings about absence, from the rule alone; and the
//! rule's `summary` template filled from the record. Only HMAC'd accessors are carried.

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::alert::{Actor, Alert, Severity};
use crate::parse::time::format_rfc3339;
use crate::parse::EntryKind;
use crate::rules::Rule;
use crate::util::stable_hash::stable_hash;

use super::event::Event;

/// Entries without a request id are told apart by what every device's copy of them shares,
/// and by their time in steps this long: copies (written microseconds apart) fall in the
/// same step, except in the rare case the step's edge falls between them.
const UNIDENTIFIED_STEP: i64 = 10_000_000_000; // 10 s in ns

/// What identifies an entry across the copies of the stream: its request id, or for an
/// entry without one (help requests, old devices), a stable hash of what the copies share
/// (type, path, operation, remote address, display name, entity, error, a time step).
pub fn entry_identity(ev: &Event<'_, '_>) -> String {
    let e = ev.entry;
    match e.request.id {
        Some(id) => id.to_string(),
        None => {
            let kind = match e.kind {
                EntryKind::Request => "request",
                EntryKind::Response => "response",
                EntryKind::Other(t) => t,
            };
            let step = ev.time.div_euclid(UNIDENTIFIED_STEP).to_string();
            let h = stable_hash([
                kind,
                e.request.path.unwrap_or(""),
                e.request.operation.unwrap_or(""),
                e.request.remote_address.unwrap_or(""),
                ev.actor.display_name.unwrap_or(""),
                ev.actor.entity_id.unwrap_or(""),
                e.error.unwrap_or(""),
                &step,
            ]);
            format!("~{h:016x}")
        }
    }
}

/// [`entry_identity`] as a number, kept in detector state (the last read of a key, the
/// last entry of a stream) to name a later finding about absence.
pub fn entry_identity_hash(ev: &Event<'_, '_>) -> u64 {
    match ev.entry.request.id {
        Some(id) => stable_hash([id]),
        None => stable_hash([entry_identity(ev).as_str()]),
    }
}

/// The id of a finding about one entry: the rule and the entry's identity (one request
/// makes at most one alert per rule).
pub fn event_id(rule: &Rule, ev: &Event<'_, '_>) -> String {
    format!("{}:{}", rule.id, entry_identity(ev))
}

/// The id of a finding about absence: the rule, what went silent (the state key, empty
/// for the whole stream) and the last entry seen before the silence.
pub fn absence_id(rule: &Rule, key: &str, last_entry: u64) -> String {
    format!("{}:{:016x}:{last_entry:016x}", rule.id, stable_hash([key]))
}

/// The record of a finding about one event.
pub fn event_alert(
    rule: &Rule,
    ev: &Event<'_, '_>,
    severity: Severity,
    mut evidence: JsonMap<String, Json>,
    target_override: Option<String>,
) -> Alert {
    for (k, v) in &rule.evidence {
        evidence.entry(k.clone()).or_insert(v.clone());
    }
    if ev.entry.token_is_raw() {
        evidence.insert("raw_audit_device".into(), json!(true));
    }
    let e = ev.entry;
    let accessor = ev
        .actor
        .accessor
        .or(e.request.client_token_accessor)
        .filter(|a| a.starts_with("hmac-sha256:"));
    let mut alert = Alert {
        id: event_id(rule, ev),
        time: format_rfc3339(ev.time),
        rule: rule.id.clone(),
        category: rule.category.clone(),
        severity,
        summary: String::new(),
        tenant: ev.tenant.map(str::to_string),
        target_tenant: target_override.or_else(|| ev.target_tenant().map(str::to_string)),
        request_id: e.request.id.map(str::to_string),
        path: e.request.path.map(str::to_string),
        operation: e.request.operation.map(str::to_string),
        outcome: Some(ev.outcome.as_str().to_string()),
        actor: Actor {
            display_name: ev.actor.display_name.map(str::to_string),
            entity_id: ev.actor.entity_id.map(str::to_string),
            auth_method: ev.auth_method.map(str::to_string),
            role: ev.role.map(str::to_string),
            service_account: ev
                .actor
                .metadata
                .get("service_account_name")
                .map(str::to_string),
            namespace: ev
                .actor
                .metadata
                .get("service_account_namespace")
                .map(str::to_string),
            remote_address: e.request.remote_address.map(str::to_string),
            accessor: accessor.map(str::to_string),
        },
        evidence,
        observer: None,
        description: one_line(&rule.description),
        runbook_url: None,
        time_nanos: ev.time,
    };
    if rule.platform_scope || rule.detector.is_global() {
        // A platform-wide finding (a storm): the entry that crossed the threshold is one
        // of many and speaks for none of them.
        alert.describe_platform();
    }
    alert.summary = render(rule, &alert);
    alert
}

/// An alert with no triggering entry (absence, stale), with its [`absence_id`].
pub fn bare_alert(
    rule: &Rule,
    id: String,
    time: i64,
    severity: Severity,
    mut evidence: JsonMap<String, Json>,
) -> Alert {
    for (k, v) in &rule.evidence {
        evidence.entry(k.clone()).or_insert(v.clone());
    }
    let mut a = Alert {
        id,
        time: format_rfc3339(time),
        rule: rule.id.clone(),
        category: rule.category.clone(),
        severity,
        summary: String::new(),
        tenant: None,
        target_tenant: None,
        request_id: None,
        path: None,
        operation: None,
        outcome: None,
        actor: Actor::default(),
        evidence,
        observer: None,
        description: one_line(&rule.description),
        runbook_url: None,
        time_nanos: time,
    };
    a.summary = render(rule, &a);
    a
}

/// A rule's description on one line (YAML's folded and literal blocks keep line breaks
/// and a final newline; a record's field is one line).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value of a summary placeholder (see [`crate::rules::SUMMARY_FIELDS`]): `None` for a
/// field the alert does not carry, and for a name that is no placeholder.
pub fn placeholder(a: &Alert, name: &str) -> Option<String> {
    match name {
        "tenant" => a.tenant.clone(),
        "target_tenant" => a.target_tenant.clone(),
        "path" => a.path.clone(),
        "operation" => a.operation.clone(),
        "outcome" => a.outcome.clone(),
        "display_name" => a.actor.display_name.clone(),
        "remote_address" => a.actor.remote_address.clone(),
        "role" => a.actor.role.clone(),
        "namespace" => a.actor.namespace.clone(),
        "service_account" => a.actor.service_account.clone(),
        "severity" => Some(a.severity.to_string()),
        "rule" => Some(a.rule.clone()),
        "request_id" => a.request_id.clone(),
        other => other.strip_prefix("evidence.").and_then(|k| {
            a.evidence.get(k).map(|v| match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
        }),
    }
}

/// Fill the rule's summary template (or its title) from the alert.
pub fn render(rule: &Rule, a: &Alert) -> String {
    let Some(tpl) = &rule.summary else {
        return rule.title.clone();
    };
    let mut out = String::with_capacity(tpl.len() + 32);
    let mut rest = tpl.as_str();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        out.push_str(placeholder(a, name).as_deref().unwrap_or("?"));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::SUMMARY_FIELDS;

    /// `rules check` accepts exactly the placeholders in `SUMMARY_FIELDS`; each must be
    /// one `render` fills, or a valid summary would print `?` for a field the alert has.
    #[test]
    fn every_summary_placeholder_rules_accept_is_one_render_fills() {
        let a = Alert {
            id: "r:id".into(),
            time: "2026-01-01T00:00:00Z".into(),
            rule: "r".into(),
            category: "c".into(),
            severity: Severity::High,
            summary: String::new(),
            tenant: Some("t".into()),
            target_tenant: Some("u".into()),
            request_id: Some("id".into()),
            path: Some("p".into()),
            operation: Some("read".into()),
            outcome: Some("allowed".into()),
            actor: Actor {
                display_name: Some("d".into()),
                entity_id: Some("e".into()),
                auth_method: Some("m".into()),
                role: Some("r".into()),
                service_account: Some("s".into()),
                namespace: Some("n".into()),
                remote_address: Some("1.2.3.4".into()),
                accessor: None,
            },
            evidence: JsonMap::new(),
            observer: None,
            description: String::new(),
            runbook_url: None,
            time_nanos: 0,
        };
        for name in SUMMARY_FIELDS {
            assert!(
                placeholder(&a, name).is_some(),
                "summary placeholder `{name}` is accepted by rules check but render does not fill it"
            );
        }
        assert_eq!(placeholder(&a, "no_such_field"), None);
    }
}
