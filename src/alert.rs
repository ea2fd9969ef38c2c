//! The alert record: one JSON object per alert, the same for every sink
//! (`shared/docs/detections.md`). Field order is the contract's; fields that do not apply
//! are null; nothing HMAC'd is un-hashed and no raw token or secret is ever carried.
//!
//! `observer`, `description` and `runbook_url` come last, after the fields every record
//! had before them: what a SIEM indexes about who raised the alert and what to do about
//! it. [`ecs`] maps the record to Elastic Common Schema.

pub mod ecs;

use std::fmt;

use serde::Serialize;

/// Alert severity, ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::High,
        Severity::Critical,
    ];

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who acted.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Actor {
    pub display_name: Option<String>,
    pub entity_id: Option<String>,
    pub auth_method: Option<String>,
    pub role: Option<String>,
    pub service_account: Option<String>,
    pub namespace: Option<String>,
    pub remote_address: Option<String>,
    /// The HMAC'd accessor; null when the device wrote it in clear (`log_raw`,
    /// `hmac_accessor=false`).
    pub accessor: Option<String>,
}

/// One alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// The finding's stable identity: the same from every copy of the stream (both audit
    /// devices, either detector of an HA pair, input read again after a crash), so every
    /// sink de-duplicates on it. Made only of what the copies share: the rule, and the
    /// request id of the triggering entry (for findings about absence, a hash of the state
    /// key and of the last entry seen); never a device's timestamp or HMAC'd value.
    pub id: String,
    pub time: String,
    pub rule: String,
    pub category: String,
    pub severity: Severity,
    pub summary: String,
    pub tenant: Option<String>,
    pub target_tenant: Option<String>,
    pub request_id: Option<String>,
    pub path: Option<String>,
    pub operation: Option<String>,
    pub outcome: Option<String>,
    pub actor: Actor,
    pub evidence: serde_json::Map<String, serde_json::Value>,
    /// The detector instance that raised it (`output.observer`, by default the host name),
    /// set where the alert leaves the process (the daemon's sinks, `replay`'s output); null
    /// from the library alone. Never part of `id`: both detectors of an HA pair give the
    /// same id, each with its own observer.
    pub observer: Option<String>,
    /// What the rule finds and what it means (the rule's `description`, on one line).
    pub description: String,
    /// Where to read what to do: `output.runbook_url` with `{category}` and `{rule}`
    /// filled, set where the alert leaves the process; null when none is configured.
    pub runbook_url: Option<String>,
    /// Event time in Unix ns (not serialised; for ordering and sinks).
    #[serde(skip)]
    pub time_nanos: i64,
}

impl Alert {
    /// Clear what belongs to one entry (who, what, which request), for findings about
    /// the whole platform.
    pub fn describe_platform(&mut self) {
        self.tenant = None;
        self.target_tenant = None;
        self.request_id = None;
        self.path = None;
        self.operation = None;
        self.outcome = None;
        self.actor = Actor::default();
    }

    /// Stamp what the detector instance adds to the record: its name and the runbook
    /// link (`template`: `{category}` and `{rule}` replaced; empty for none). The `id`
    /// stays as it is.
    pub fn stamp(&mut self, observer: &str, runbook_template: &str) {
        self.observer = Some(observer.to_string());
        self.runbook_url = (!runbook_template.is_empty()).then(|| {
            runbook_template
                .replace("{category}", &self.category)
                .replace("{rule}", &self.rule)
        });
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("alerts serialise")
    }

    /// The record as Elastic Common Schema, one line (`--format ecs`, `output.format: ecs`).
    pub fn to_ecs_line(&self) -> String {
        serde_json::to_string(&ecs::document(self)).expect("alerts serialise")
    }

    /// A one-line human form for `--format text`.
    pub fn to_text_line(&self) -> String {
        let who = self.actor.display_name.as_deref().unwrap_or("-");
        let kind = self
            .evidence
            .get("kind")
            .and_then(|k| k.as_str())
            .map(|k| format!("/{k}"))
            .unwrap_or_default();
        format!(
            "{} {:<8} {}{} [{}] {} (actor {}, request {})",
            self.time,
            self.severity.as_str().to_uppercase(),
            self.category,
            kind,
            self.rule,
            self.summary,
            who,
            self.request_id.as_deref().unwrap_or("-"),
        )
    }
}
