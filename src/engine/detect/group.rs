//! `group`: the heartbeat of a detector's keys taken together (a rule's `group` block).
//! Per-key timers are right when one key stops; when every key of the rule stops at once
//! (the External Secrets Operator's controller is down while the rest of the platform
//! carries on), the findings coming due are one cause. While the group's traffic has been
//! quiet for longer than it normally pauses (`quiet_secs`, and `factor` x the longest of
//! its recent pauses), keys coming due are folded into one finding of the whole group;
//! the first read after that ends the outage, which is said in one resolving record.
//! Intervals that span the outage are not learned and do not count as a lease race, and
//! reads within the too-frequent window after it are a catch-up, not a loop.
//!
//! Bounded: the longest pause of each of the last 24 hours, one open outage and the last
//! one's span. The
//! state is a plain value in the detector's snapshot. Ids come from the rule and the
//! identity of the group's last entry before the outage, the same from every copy.

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::alert::{Alert, Severity};
use crate::config::Config;
use crate::engine::build::bare_alert;
use crate::engine::clock::ActiveTime;
use crate::parse::time::format_rfc3339;
use crate::rules::condition::Field;
use crate::rules::{GroupSpec, Rule};

use super::window::NANOS;

/// The evidence of a group finding, beside the cadence `kind` (`stale`, or `resumed` for
/// the resolving record).
pub mod evidence {
    /// The cadence finding's kind (`cadence::evidence`, named again here: cadence uses
    /// this module, not the other way round).
    pub const KIND: &str = "kind";
    pub const KIND_STALE: &str = "stale";
    /// `group`: the finding is about every key of the rule at once.
    pub const SCOPE: &str = "scope";
    pub const SCOPE_GROUP: &str = "group";
    pub const KIND_RESUMED: &str = "resumed";
    /// The group's last read before the outage (RFC 3339).
    pub const SINCE: &str = "since";
    /// How long the group had been quiet when the finding was raised.
    pub const QUIET_FOR_SECS: &str = "quiet_for_secs";
    /// How long the group must be quiet to be an outage (configured or learned).
    pub const QUIET_LIMIT_SECS: &str = "quiet_limit_secs";
    pub const KEYS_OVERDUE: &str = "keys_overdue";
    /// Keys whose `stale` deadline had not come yet: overdue if the outage goes on.
    pub const KEYS_WAITING: &str = "keys_waiting";
    pub const TENANTS: &str = "tenants";
    /// At most [`super::SAMPLE`] keys (overdue first), sorted.
    pub const SAMPLE: &str = "sample";
    /// The outage's end: the first read after it (RFC 3339).
    pub const RESUMED_AT: &str = "resumed_at";
    pub const OUTAGE_SECS: &str = "outage_secs";
    /// Per-key `stale` findings folded into the outage's finding.
    pub const KEYS_FOLDED: &str = "keys_folded";
    /// The id of the outage's finding (in the resolving record).
    pub const EPISODE: &str = "episode";
}
use evidence as G;

/// Keys named in a group finding's sample.
pub const SAMPLE: usize = 10;

/// The longest pause of the group's traffic is kept per hour for this many hours: how
/// long it normally pauses, which a burst of reads does not make anyone forget.
const PAUSE_HOURS: i64 = 24;
const HOUR: i64 = 3600 * NANOS;

/// An outage of the whole group, open until its first read after.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Outage {
    /// The group's last read before the outage (stream time, ns) and its entry's identity.
    pub from: i64,
    pub entry: u64,
    /// Per-key findings folded into it.
    pub folded: u64,
}

/// The group's heartbeat and its outage episode.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct GroupState {
    /// The group's last read (stream time, ns; 0: none) and its entry's identity.
    pub last_read: i64,
    pub last_entry: u64,
    /// The longest pause ending in each of the last [`PAUSE_HOURS`] hours: (hour, secs).
    pauses: Vec<(i64, u32)>,
    /// The outage in force.
    pub outage: Option<Outage>,
    /// The last outage's span (its last read before, its first read after): intervals of a
    /// key across it are not learned and are no lease race.
    pub last_span: Option<(i64, i64)>,
    /// An outage ended and its resolving record not yet raised: (outage, first read after).
    pub resumed: Option<(Outage, i64)>,
}

/// A key in the table, as the group's finding sees it.
pub struct KeyView<'a> {
    pub key: &'a str,
    pub deadline: i64,
    pub last_read: i64,
    pub fired: bool,
}

impl GroupState {
    /// A read of any key at `t`: the heartbeat. Ends an open outage (its resolving record
    /// is raised on the next turn of the clock); the outage's gap is not a pause learned.
    pub fn read(&mut self, t: i64, entry: u64) {
        if let Some(o) = self.outage.take() {
            self.last_span = Some((o.from, t));
            self.resumed = Some((o, t));
        } else if self.last_read > 0 && t > self.last_read {
            let secs = ((t - self.last_read) / NANOS).clamp(0, u32::MAX as i64) as u32;
            let hour = t.div_euclid(HOUR);
            self.pauses.retain(|&(h, _)| h > hour - PAUSE_HOURS);
            match self.pauses.iter_mut().find(|(h, _)| *h == hour) {
                Some((_, longest)) => *longest = (*longest).max(secs),
                None => self.pauses.push((hour, secs)),
            }
        }
        if t >= self.last_read {
            self.last_read = t;
            self.last_entry = entry;
        }
    }

    /// How long the group must be quiet to be an outage (ns).
    pub fn quiet_limit(&self, spec: &GroupSpec) -> i64 {
        let longest = self.pauses.iter().map(|&(_, s)| s).max().unwrap_or(0) as f64;
        let learned = (longest * spec.factor) as i64;
        (spec.quiet_secs as i64).max(learned).saturating_mul(NANOS)
    }

    /// Whether the group is in an outage at the active watermark `mark`.
    pub fn quiet(&self, spec: &GroupSpec, keys: usize, mark: i64, time: &ActiveTime) -> bool {
        self.outage.is_some()
            || (keys as u64 >= spec.min_keys
                && self.last_read > 0
                && mark - time.of(self.last_read) >= self.quiet_limit(spec))
    }

    /// Whether an interval of a key from `prev` to `t` spans the last outage.
    pub fn spans(&self, prev: i64, t: i64) -> bool {
        self.last_span
            .is_some_and(|(from, to)| prev <= from && t >= to)
    }

    /// Whether `t` is within `window` after the last outage ended (a catch-up).
    pub fn catching_up(&self, t: i64, window: i64) -> bool {
        self.last_span
            .is_some_and(|(_, to)| t >= to && t - to < window)
    }

    /// `folded` keys came due during the outage at stream time `at`: one finding when the
    /// outage opens, then only counted. `keys` is every key of the table.
    #[allow(clippy::too_many_arguments)]
    pub fn fold<'a>(
        &mut self,
        rule: &Rule,
        cfg: &Config,
        spec: &GroupSpec,
        fields: &[Field],
        at: i64,
        folded: usize,
        keys: impl Iterator<Item = KeyView<'a>>,
        out: &mut Vec<Alert>,
    ) {
        if let Some(o) = &mut self.outage {
            o.folded += folded as u64;
            return;
        }
        let o = Outage {
            from: self.last_read,
            entry: self.last_entry,
            folded: folded as u64,
        };
        let (mut overdue, mut waiting) = (0usize, 0usize);
        let mut tenants = std::collections::BTreeSet::new();
        let mut sample: Vec<(bool, &str)> = Vec::new();
        for k in keys {
            if k.deadline == 0 || k.last_read > o.from {
                continue;
            }
            let late = k.fired;
            if late {
                overdue += 1;
            } else {
                waiting += 1;
            }
            if let Some(t) = tenant_of(cfg, fields, k.key) {
                if tenants.len() < 100_000 {
                    tenants.insert(t);
                }
            }
            sample.push((!late, k.key));
            if sample.len() >= 8 * SAMPLE {
                // Only the first SAMPLE in order are shown: keep a few, not every key.
                sample.sort_unstable();
                sample.truncate(SAMPLE);
            }
        }
        sample.sort_unstable();
        sample.truncate(SAMPLE);
        let mut ev = JsonMap::new();
        ev.insert(G::KIND.into(), json!(G::KIND_STALE));
        ev.insert(G::SCOPE.into(), json!(G::SCOPE_GROUP));
        ev.insert(G::SINCE.into(), json!(format_rfc3339(o.from)));
        ev.insert(G::QUIET_FOR_SECS.into(), json!((at - o.from) / NANOS));
        ev.insert(
            G::QUIET_LIMIT_SECS.into(),
            json!(self.quiet_limit(spec) / NANOS),
        );
        ev.insert(G::KEYS_OVERDUE.into(), json!(overdue));
        ev.insert(G::KEYS_WAITING.into(), json!(waiting));
        ev.insert(G::TENANTS.into(), json!(tenants.len()));
        let sample: Vec<Json> = sample.iter().map(|(_, k)| key_json(fields, k)).collect();
        ev.insert(G::SAMPLE.into(), Json::Array(sample));
        let severity = rule.severity.max(Severity::Warning);
        let mut alert = bare_alert(rule, outage_id(rule, o.entry), at, severity, ev);
        alert.summary = format!(
            "{}: every key quiet since {} ({overdue} overdue, {waiting} waiting, {} tenants)",
            rule.title,
            format_rfc3339(o.from),
            tenants.len()
        );
        out.push(alert);
        self.outage = Some(o);
    }

    /// The resolving record of an outage that ended, once.
    pub fn resolve(&mut self, rule: &Rule, out: &mut Vec<Alert>) {
        let Some((o, at)) = self.resumed.take() else {
            return;
        };
        let episode = outage_id(rule, o.entry);
        let mut ev = JsonMap::new();
        ev.insert(G::KIND.into(), json!(G::KIND_RESUMED));
        ev.insert(G::SCOPE.into(), json!(G::SCOPE_GROUP));
        ev.insert(G::SINCE.into(), json!(format_rfc3339(o.from)));
        ev.insert(G::RESUMED_AT.into(), json!(format_rfc3339(at)));
        ev.insert(G::OUTAGE_SECS.into(), json!((at - o.from) / NANOS));
        ev.insert(G::KEYS_FOLDED.into(), json!(o.folded));
        ev.insert(G::EPISODE.into(), json!(episode));
        let mut alert = bare_alert(rule, format!("{episode}:resumed"), at, Severity::Info, ev);
        alert.summary = format!(
            "{}: traffic resumed after {}s ({} keys folded)",
            rule.title,
            (at - o.from) / NANOS,
            o.folded
        );
        out.push(alert);
    }
}

/// The id of an outage's finding: the rule and the group's last entry before it.
fn outage_id(rule: &Rule, entry: u64) -> String {
    format!("{}:group:{entry:016x}", rule.id)
}

/// The tenant of a key: its `tenant` field, else its `namespace` by the config's patterns.
fn tenant_of(cfg: &Config, fields: &[Field], key: &str) -> Option<String> {
    let value = |want: &Field| {
        (fields.iter().zip(key.split('\u{1f}')))
            .find(|(f, v)| *f == want && !v.is_empty())
            .map(|(_, v)| v)
    };
    if let Some(t) = value(&Field::Tenant) {
        return Some(t.to_string());
    }
    let ns = value(&Field::Namespace)?;
    cfg.tenancy.namespace.iter().find_map(|re| {
        re.captures(ns)
            .and_then(|c| c.name("tenant"))
            .map(|m| m.as_str().to_string())
    })
}

/// A key's fields and values, as `evidence.key` shows one.
fn key_json(fields: &[Field], k: &str) -> Json {
    let m: JsonMap<String, Json> = (fields.iter().zip(k.split('\u{1f}')))
        .map(|(f, v)| (f.name(), if v.is_empty() { Json::Null } else { json!(v) }))
        .collect();
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: GroupSpec = GroupSpec {
        quiet_secs: 600,
        factor: 2.0,
        min_keys: 3,
    };

    #[test]
    fn the_group_is_quiet_past_its_floor_and_its_learned_pause_and_only_with_enough_keys() {
        let time = ActiveTime::default();
        let mut g = GroupState::default();
        // Reads 60 s apart, then one pause of 20 min: the limit is 2 x 20 min.
        for n in 0..10 {
            g.read(n * 60 * NANOS, n as u64);
        }
        assert_eq!(g.quiet_limit(&SPEC), 600 * NANOS, "the floor");
        g.read(9 * 60 * NANOS + 1200 * NANOS, 99);
        assert_eq!(g.quiet_limit(&SPEC), 2400 * NANOS, "learned");
        let last = g.last_read;
        assert!(!g.quiet(&SPEC, 3, last + 2399 * NANOS, &time));
        assert!(g.quiet(&SPEC, 3, last + 2400 * NANOS, &time));
        assert!(!g.quiet(&SPEC, 2, last + 9999 * NANOS, &time), "min_keys");
    }

    #[test]
    fn a_burst_of_reads_does_not_make_the_group_forget_its_hourly_pauses() {
        let mut g = GroupState::default();
        for h in 0..5 {
            g.read(h * 3600 * NANOS, h as u64);
        }
        for n in 0..1000 {
            g.read(5 * 3600 * NANOS + n * 5 * NANOS, 100 + n as u64);
        }
        assert_eq!(g.quiet_limit(&SPEC), 7200 * NANOS, "2 x the hourly pause");
        // A day later the old pauses are gone.
        g.read(40 * 3600 * NANOS, 9);
        g.read(40 * 3600 * NANOS + 60 * NANOS, 10);
        assert_eq!(g.quiet_limit(&SPEC), 2 * (35 * 3600 - 4995) * NANOS);
    }

    #[test]
    fn an_outage_is_not_learned_and_the_intervals_across_it_are_marked() {
        let mut g = GroupState::default();
        g.read(0, 1);
        g.read(60 * NANOS, 2);
        g.outage = Some(Outage {
            from: 60 * NANOS,
            entry: 2,
            folded: 5,
        });
        let back = 10 * 3600 * NANOS;
        g.read(back, 3);
        assert!(g.outage.is_none());
        assert_eq!(
            g.quiet_limit(&SPEC),
            600 * NANOS,
            "the gap is no pause learned"
        );
        let (o, at) = g.resumed.clone().expect("a resolving record is due");
        assert_eq!((o.folded, at), (5, back));
        assert!(g.spans(0, back + NANOS), "a key read before and after");
        assert!(
            !g.spans(61 * NANOS, back + NANOS),
            "a key first read in the outage"
        );
        assert!(g.catching_up(back + 299 * NANOS, 300 * NANOS));
        assert!(!g.catching_up(back + 300 * NANOS, 300 * NANOS));
    }
}
