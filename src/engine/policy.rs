//! What happens to a finding after a detector fired and before it becomes an alert: the
//! rule's severity overrides, the config's allow-lists (silence it, or lower it to info)
//! and the rule's suppression window (one alert per key per window). Suppression tables
//! are bounded: past 100,000 keys the expired ones go, and if none has, all of them.

use crate::alert::Severity;
use crate::config::{AllowAction, AllowEntry, Config, Glob};
use crate::rules::Rule;

use super::detect::{key_string, Map, NANOS};
use super::event::Event;

const MAX_SUPPRESSION_KEYS: usize = 100_000;

/// The severity a rule gives an event: the first `severity_when` that holds, else the
/// rule's, never below `floor`.
pub fn severity(rule: &Rule, ev: &Event<'_, '_>, floor: Option<Severity>) -> Severity {
    let mut severity = rule.severity;
    let mut scratch = Vec::new();
    for (cond, sev) in &rule.severity_when {
        if cond.eval(ev, &mut scratch) {
            severity = *sev;
            break;
        }
    }
    floor.map_or(severity, |f| severity.max(f))
}

/// The rule's allow-list entry that covers the event, if any.
pub fn allow_listed<'c>(
    cfg: &'c Config,
    rule: &Rule,
    ev: &Event<'_, '_>,
) -> Option<&'c AllowEntry> {
    let name = rule.allow_list.as_ref()?;
    cfg.allow_lists
        .get(name)
        .and_then(|l| l.iter().find(|a| allow_matches(a, ev)))
}

/// What an allow-list entry does to a finding: `None` silences it, else its severity.
pub fn allowed_severity(entry: &AllowEntry) -> Option<Severity> {
    match entry.action {
        AllowAction::Silence => None,
        AllowAction::Info => Some(Severity::Info),
    }
}

fn allow_matches(a: &AllowEntry, ev: &Event<'_, '_>) -> bool {
    let check = |g: &Option<Glob>, v: Option<&str>| match g {
        None => true,
        Some(g) => v.is_some_and(|v| g.is_match(v)),
    };
    check(&a.path, ev.entry.request.path)
        && check(&a.display_name, ev.actor.display_name)
        && check(&a.role, ev.role)
        && check(&a.entity_id, ev.actor.entity_id)
        && check(
            &a.namespace,
            ev.actor.metadata.get("service_account_namespace"),
        )
}

/// A rule's suppression table: the time each key last alerted.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Suppressions {
    last: Map<Box<str>, i64>,
}

impl Suppressions {
    /// True when the rule's `suppress` window holds this event's key (drop the finding);
    /// otherwise the event's time is recorded for its key.
    pub fn suppressed(&mut self, rule: &Rule, ev: &Event<'_, '_>) -> bool {
        let Some(s) = &rule.suppress else {
            return false;
        };
        let k = key_string(ev, &s.key);
        let window = s.for_secs as i64 * NANOS;
        if let Some(&last) = self.last.get(k.as_str()) {
            if ev.time - last < window && ev.time >= last {
                return true;
            }
        }
        if self.last.len() >= MAX_SUPPRESSION_KEYS {
            let horizon = ev.time - window;
            self.last.retain(|_, t| *t > horizon);
            if self.last.len() >= MAX_SUPPRESSION_KEYS {
                self.last.clear();
            }
        }
        self.last.insert(k.into(), ev.time);
        false
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
