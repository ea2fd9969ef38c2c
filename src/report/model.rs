//! The report as data: what [`super::collect::Collector`] builds and both renderings read.
//! `--report F.json` is this serialised; the HTML page shows the same fields. Times are
//! RFC 3339 UTC strings (the renderers also get Unix nanoseconds, never serialised).
//! Nothing here is ever taken from request or response data: only alert records (HMAC'd
//! values only) and per-entry summaries.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::alert::{Alert, Severity};

/// `format` and `version` of the JSON document.
pub const FORMAT: &str = "auditwatch-report";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub version: u32,
    /// `auditwatch <version>`.
    pub generator: String,
    /// One sentence: how many alerts of which severity, across how many tenants, when, and
    /// the first of the most severe.
    pub verdict: String,
    /// Where the verdict's lead (counts, tenants, time) ends; the page sets the rest apart.
    #[serde(skip)]
    pub verdict_lead: usize,
    pub replay: Replay,
    pub totals: Totals,
    pub timeline: Timeline,
    pub tables: Tables,
    /// Alerts with full context, in time order (at most `limits.max_alerts_with_context`).
    pub alerts: Vec<AlertItem>,
    pub limits: Limits,
}

/// What was replayed.
#[derive(Clone, Debug, Serialize)]
pub struct Replay {
    pub inputs: Vec<InputSummary>,
    pub skipped_inputs: Vec<InputSummary>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub first_entry: Option<String>,
    pub last_entry: Option<String>,
    pub entries: u64,
    pub entries_by_type: EntriesByType,
    pub untimed_entries: u64,
    pub filtered_by_time: u64,
    pub parse_errors_total: u64,
    /// Every reason, zero or not, so the shape does not change between replays.
    pub parse_errors: BTreeMap<&'static str, u64>,
    pub rules: RulesInfo,
    #[serde(skip)]
    pub first_entry_nanos: Option<i64>,
    #[serde(skip)]
    pub last_entry_nanos: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct InputSummary {
    pub name: String,
    pub bytes: u64,
    pub lines: u64,
    pub entries: u64,
    pub parse_errors: u64,
    pub problem: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct EntriesByType {
    pub request: u64,
    pub response: u64,
    pub other: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RulesInfo {
    pub origin: String,
    pub count: usize,
}

/// Alert counts by severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SevCounts {
    pub total: u64,
    pub critical: u64,
    pub high: u64,
    pub warning: u64,
    pub info: u64,
}

impl SevCounts {
    pub fn add(&mut self, s: Severity, n: u64) {
        self.total += n;
        *self.get_mut(s) += n;
    }

    pub fn get(&self, s: Severity) -> u64 {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Warning => self.warning,
            Severity::Info => self.info,
        }
    }

    fn get_mut(&mut self, s: Severity) -> &mut u64 {
        match s {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Warning => &mut self.warning,
            Severity::Info => &mut self.info,
        }
    }

    /// The most severe level with a count.
    pub fn worst(&self) -> Option<Severity> {
        Severity::ALL
            .iter()
            .rev()
            .copied()
            .find(|s| self.get(*s) > 0)
    }

    /// Ranking key: most severe first, then most alerts.
    pub fn rank(&self) -> impl Ord {
        std::cmp::Reverse((self.critical, self.high, self.warning, self.info))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub alerts: u64,
    pub alerts_with_context: u64,
    pub by_severity: SevCounts,
    pub by_category: BTreeMap<String, SevCounts>,
    /// Distinct tenants named by alerts (as caller or target).
    pub tenants: u64,
    /// Distinct actors (display name and entity id) named by alerts.
    pub actors: u64,
    pub first_alert: Option<String>,
    pub last_alert: Option<String>,
}

/// Traffic and alerts per time bucket (a fixed maximum number of buckets of a round
/// width, whatever the replay's length).
#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    pub bucket_secs: i64,
    pub start: Option<String>,
    pub end: Option<String>,
    /// The timeline's lanes, most severe first.
    pub categories: Vec<String>,
    pub buckets: Vec<Bucket>,
    #[serde(skip)]
    pub start_nanos: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Bucket {
    pub start: String,
    pub entries: u64,
    /// By category, only those with alerts in this bucket.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub alerts: BTreeMap<String, SevCounts>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Tables {
    pub tenants: Vec<TenantRow>,
    pub actors: Vec<ActorRow>,
    pub rules: Vec<RuleRow>,
    pub eso_cadence: Vec<CadenceRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TenantRow {
    /// Null: alerts that name no tenant.
    pub tenant: Option<String>,
    pub alerts: SevCounts,
    /// Alerts where this tenant's identity acted.
    pub as_caller: u64,
    /// Alerts where this tenant's secrets were touched by another tenant.
    pub as_target: u64,
    pub categories: Vec<String>,
    pub first: String,
    pub last: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActorRow {
    pub display_name: Option<String>,
    pub entity_id: Option<String>,
    pub auth_method: Option<String>,
    /// The first few addresses it acted from.
    pub remote_addresses: Vec<String>,
    pub alerts: SevCounts,
    pub categories: Vec<String>,
    pub tenants: Vec<String>,
    pub first: String,
    pub last: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleRow {
    pub rule: String,
    pub title: Option<String>,
    pub category: String,
    pub alerts: SevCounts,
    pub first: String,
    pub last: String,
}

/// `eso_cadence` alerts per key and kind: the latest observed interval against the
/// expected one, both from the alerts' evidence.
#[derive(Clone, Debug, Serialize)]
pub struct CadenceRow {
    pub kind: String,
    /// The detector key (`evidence.key`: e.g. namespace and path).
    pub key: serde_json::Map<String, serde_json::Value>,
    pub alerts: u64,
    pub worst: Severity,
    pub observed_interval_secs: Option<f64>,
    pub expected_interval_secs: Option<f64>,
    /// How to read the two numbers for this kind.
    pub detail: String,
    pub first: String,
    pub last: String,
}

/// One alert with what its actor did around it.
#[derive(Clone, Debug, Serialize)]
pub struct AlertItem {
    /// `a1`, `a2`, ... in time order (anchors in the HTML page).
    pub id: String,
    pub alert: Alert,
    pub context: Context,
}

/// The same actor's entries before and after the alert (the triggering one included and
/// marked), so a reader sees the sequence.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Context {
    pub before: Vec<ContextRow>,
    pub after: Vec<ContextRow>,
    /// Why there is no or little context, when that needs saying.
    pub note: Option<String>,
}

/// An entry summary: never request or response data.
#[derive(Clone, Debug, Serialize)]
pub struct ContextRow {
    pub time: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub operation: Option<String>,
    pub path: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub remote_address: Option<String>,
    pub trigger: bool,
    #[serde(skip)]
    pub time_nanos: Option<i64>,
}

/// What was capped to keep the report small, and the caps.
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    pub max_alerts_with_context: usize,
    pub alerts_without_context: u64,
    pub context_before: usize,
    pub context_after: usize,
    pub max_tracked_actors: usize,
    /// Actors whose recent entries were dropped to stay within the cap (their later
    /// alerts may show less context).
    pub actors_evicted: u64,
    pub max_table_rows: usize,
    /// Rows left out of each table (alerts still count in the totals).
    pub table_rows_dropped: BTreeMap<&'static str, u64>,
    pub max_string_bytes: usize,
    pub strings_clipped: u64,
    /// The caps that were hit, in words (the page shows them).
    pub notes: Vec<String>,
}
