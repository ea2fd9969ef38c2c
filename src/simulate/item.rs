//! An answer-key item while an injection is planned: what a correct detector reports for
//! it. Both the headline injections ([`super::inject`]) and the extras
//! ([`super::extras`]) make them; the plan turns them into the answer key's
//! [`AnswerItem`]s.

use serde::Serialize;

use crate::alert::{Alert, Severity};

use super::vault::go_time;
use super::Injection;

/// An answer item while planning.
pub struct Item {
    pub injection: Injection,
    pub category: &'static str,
    pub min_severity: Severity,
    pub tenant: Option<String>,
    pub target_tenant: Option<String>,
    pub request_id: Option<String>,
    pub evidence_kind: Option<&'static str>,
    pub path: Option<String>,
    pub window: (i64, i64),
    pub description: String,
    pub side_effect: bool,
}

impl Item {
    pub fn new(
        injection: Injection,
        category: &'static str,
        min: Severity,
        window: (i64, i64),
    ) -> Item {
        Item {
            injection,
            category,
            min_severity: min,
            tenant: None,
            target_tenant: None,
            request_id: None,
            evidence_kind: None,
            path: None,
            window,
            description: String::new(),
            side_effect: false,
        }
    }

    pub fn done(self) -> AnswerItem {
        AnswerItem {
            injection: self.injection.name(),
            category: self.category,
            min_severity: self.min_severity,
            tenant: self.tenant,
            target_tenant: self.target_tenant,
            request_id: self.request_id,
            evidence_kind: self.evidence_kind,
            path: self.path,
            window_start: go_time(self.window.0),
            window_end: go_time(self.window.1),
            description: self.description,
            side_effect: self.side_effect,
            window_start_ns: self.window.0,
            window_end_ns: self.window.1,
        }
    }
}

/// What a correct detector must report for one injection.
#[derive(Clone, Debug, Serialize)]
pub struct AnswerItem {
    pub injection: &'static str,
    pub category: &'static str,
    pub min_severity: Severity,
    pub tenant: Option<String>,
    pub target_tenant: Option<String>,
    pub request_id: Option<String>,
    pub evidence_kind: Option<&'static str>,
    pub path: Option<String>,
    /// The alert's time falls in `[window_start, window_end]`.
    pub window_start: String,
    pub window_end: String,
    pub description: String,
    /// Not planted for its own sake: the unavoidable consequence of another planted
    /// finding (a correct detector reports it all the same).
    pub side_effect: bool,
    #[serde(skip)]
    pub window_start_ns: i64,
    #[serde(skip)]
    pub window_end_ns: i64,
}

impl AnswerItem {
    /// True when `a` reports this item: same category, at least the severity, and every
    /// fact the item pins (tenant, target, request, evidence kind, path, time window).
    pub fn found_by(&self, a: &Alert) -> bool {
        self.explains(a) && a.severity >= self.min_severity
    }

    /// Like [`found_by`](Self::found_by) without the severity floor: the alert is about
    /// this injection.
    pub fn explains(&self, a: &Alert) -> bool {
        let same = |want: &Option<String>, got: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| got.as_deref() == Some(w.as_str()))
        };
        a.category == self.category
            && same(&self.tenant, &a.tenant)
            && same(&self.target_tenant, &a.target_tenant)
            && same(&self.request_id, &a.request_id)
            && same(&self.path, &a.path)
            && self
                .evidence_kind
                .is_none_or(|k| a.evidence.get("kind").and_then(|v| v.as_str()) == Some(k))
            && (self.window_start_ns..=self.window_end_ns).contains(&a.time_nanos)
    }
}
