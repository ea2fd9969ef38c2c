//! The bounded collector behind `--report`: it sees every replayed entry (through the
//! pipeline's [`EntryObserver`] hook) and every alert, and keeps only what the report needs,
//! within fixed caps whatever the replay's size:
//!
//! - traffic and alert counts per time bucket (at most [`MAX_FINE_BUCKETS`] buckets of a
//!   round width that widens as the replay's span grows);
//! - a short ring of recent entry summaries per actor (display name and entity id), at most
//!   [`Caps::tracked_actors`] actors, the least recently active evicted first;
//! - up to [`Caps::alerts_with_context`] alerts with the actor's entries before (taken at
//!   alert time) and after (taken as they arrive); past the cap, a more severe alert
//!   replaces the latest of the least severe, so criticals are never crowded out by warnings;
//! - tallies by tenant, actor, rule and `eso_cadence` key (each capped).
//!
//! Entry summaries hold time, type, operation, path, outcome, request id and remote address
//! only ([`EntryView`] offers nothing else), and every kept string is cut at
//! [`Caps::string_bytes`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{Map as JsonMap, Value as Json};

use super::model::{
    ActorRow, AlertItem, Bucket, CadenceRow, Context, ContextRow, EntriesByType, InputSummary,
    Limits, Replay, Report, RuleRow, RulesInfo, SevCounts, Tables, TenantRow, Timeline, Totals,
    FORMAT, VERSION,
};
use crate::alert::{Alert, Severity};
use crate::engine::detect::cadence::evidence as E;
use crate::engine::Outcome;
use crate::parse::time::{civil_from_days, format_rfc3339};
use crate::parse::{EntryKind, ParseError};
use crate::pipeline::{EntryView, Stats};
use crate::rules::RuleSet;
use crate::source::input::InputReport;

const NANOS: i64 = 1_000_000_000;

/// Bucket widths (seconds); each divides the next, so buckets merge exactly when the span
/// outgrows [`MAX_FINE_BUCKETS`], and bucket edges fall on round clock times.
const LADDER: [i64; 16] = [
    1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200, 86_400, 604_800, 2_419_200,
    31_449_600,
];
/// The most buckets kept while collecting (the page shows at most [`Caps::time_buckets`]).
pub const MAX_FINE_BUCKETS: i64 = 4096;
/// Rows an actor's ring keeps beyond `context_before`: an alert decided late (a request
/// whose response never came) still finds its triggering entry.
const RING_SLACK: usize = 8;

/// The caps that keep a report small whatever the replay's size.
#[derive(Clone, Debug)]
pub struct Caps {
    /// Alerts embedded with evidence and context; the rest are counted.
    pub alerts_with_context: usize,
    /// Entries of the same actor shown before and after each alert.
    pub context_before: usize,
    pub context_after: usize,
    /// Actors whose recent entries are kept for context.
    pub tracked_actors: usize,
    /// Distinct keys tallied per table while collecting.
    pub table_keys: usize,
    /// Rows per table in the report (the highest ranked).
    pub table_rows: usize,
    /// Time buckets on the timeline.
    pub time_buckets: usize,
    /// Longer strings (paths, display names, evidence values) are cut here.
    pub string_bytes: usize,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            alerts_with_context: 2000,
            context_before: 5,
            context_after: 5,
            tracked_actors: 20_000,
            table_keys: 10_000,
            table_rows: 500,
            time_buckets: 120,
            string_bytes: 512,
        }
    }
}

/// What was replayed, for the report's header: given by the front end at the end.
pub struct Replayed<'a> {
    pub inputs: &'a [InputReport],
    pub skipped: &'a [InputReport],
    pub stats: &'a Stats,
    pub rules: &'a RuleSet,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// One entry summary in an actor's ring. Empty strings stand for absent values; buffers
/// are reused when the ring turns over.
#[derive(Default)]
struct Row {
    time: Option<i64>,
    kind: String,
    operation: String,
    path: String,
    outcome: Option<Outcome>,
    request_id: String,
    remote: String,
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl Row {
    fn fill(&mut self, e: &EntryView<'_, '_>, max: usize, clipped: &mut u64) {
        self.time = e.time();
        let kind = e.kind();
        set(&mut self.kind, Some(kind.as_str()), max, clipped);
        set(&mut self.operation, e.operation(), max, clipped);
        set(&mut self.path, e.path(), max, clipped);
        set(&mut self.request_id, e.request_id(), max, clipped);
        set(&mut self.remote, e.remote_address(), max, clipped);
        self.outcome = Some(e.outcome());
    }

    fn to_context(&self, trigger: Option<&str>) -> ContextRow {
        ContextRow {
            time: self.time.map(format_rfc3339),
            kind: self.kind.clone(),
            operation: opt(&self.operation),
            path: opt(&self.path),
            outcome: self.outcome.map_or("unknown", Outcome::as_str).to_string(),
            request_id: opt(&self.request_id),
            remote_address: opt(&self.remote),
            trigger: trigger.is_some_and(|t| !self.request_id.is_empty() && t == self.request_id),
            time_nanos: self.time,
        }
    }
}

/// Copy `v` into `buf`, cut at `max` bytes (on a character boundary, marked with `…`).
fn set(buf: &mut String, v: Option<&str>, max: usize, clipped: &mut u64) {
    buf.clear();
    if let Some(v) = v {
        if v.len() <= max {
            buf.push_str(v);
        } else {
            *clipped += 1;
            buf.push_str(&v[..floor_char_boundary(v, max)]);
            buf.push('…');
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn clip(s: &mut String, max: usize, clipped: &mut u64) {
    if s.len() > max {
        *clipped += 1;
        s.truncate(floor_char_boundary(s, max));
        s.push('…');
    }
}

fn clip_opt(s: &mut Option<String>, max: usize, clipped: &mut u64) {
    if let Some(s) = s {
        clip(s, max, clipped);
    }
}

fn clip_json(v: &mut Json, max: usize, clipped: &mut u64) {
    match v {
        Json::String(s) => clip(s, max, clipped),
        Json::Array(a) => a.iter_mut().for_each(|v| clip_json(v, max, clipped)),
        Json::Object(o) => o.values_mut().for_each(|v| clip_json(v, max, clipped)),
        _ => {}
    }
}

/// An embedded alert still waiting for its actor's next entries.
struct Waiting {
    slot: usize,
    left: usize,
    /// Request rows taken whose response (which completes the row) has not come yet.
    open_requests: usize,
}

#[derive(Default)]
struct Ring {
    rows: VecDeque<Row>,
    last_seq: u64,
    waiting: Vec<Waiting>,
}

struct Captured {
    seq: u64,
    alert: Alert,
    context: Context,
}

/// First and last time, in ns.
#[derive(Clone, Copy)]
struct Span {
    first: i64,
    last: i64,
}

impl Default for Span {
    fn default() -> Span {
        Span {
            first: i64::MAX,
            last: i64::MIN,
        }
    }
}

impl Span {
    fn add(&mut self, t: i64) {
        self.first = self.first.min(t);
        self.last = self.last.max(t);
    }
}

#[derive(Default)]
struct TenantAcc {
    alerts: SevCounts,
    as_caller: u64,
    as_target: u64,
    categories: BTreeSet<String>,
    span: Span,
}

#[derive(Default)]
struct ActorAcc {
    display_name: Option<String>,
    entity_id: Option<String>,
    auth_method: Option<String>,
    remotes: BTreeSet<String>,
    alerts: SevCounts,
    categories: BTreeSet<String>,
    tenants: BTreeSet<String>,
    span: Span,
}

#[derive(Default)]
struct RuleAcc {
    category: String,
    alerts: SevCounts,
    span: Span,
}

#[derive(Default)]
struct CadenceAcc {
    kind: String,
    key: JsonMap<String, Json>,
    alerts: u64,
    worst: Option<Severity>,
    latest: i64,
    observed: Option<f64>,
    expected: Option<f64>,
    detail: String,
    span: Span,
}

/// A map with at most `cap` keys; alerts for keys past the cap are counted, not kept.
struct Tally<V> {
    map: BTreeMap<String, V>,
    cap: usize,
    overflow: u64,
}

impl<V: Default> Tally<V> {
    fn new(cap: usize) -> Tally<V> {
        Tally {
            map: BTreeMap::new(),
            cap,
            overflow: 0,
        }
    }

    fn get(&mut self, key: &str) -> Option<&mut V> {
        if !self.map.contains_key(key) {
            if self.map.len() >= self.cap {
                self.overflow += 1;
                return None;
            }
            self.map.insert(key.to_string(), V::default());
        }
        self.map.get_mut(key)
    }
}

/// Counts per time bucket while collecting.
struct Buckets {
    level: usize,
    entries: BTreeMap<i64, u64>,
    alerts: BTreeMap<(i64, usize, Severity), u64>,
    range: Option<(i64, i64)>,
    /// The bucket entries are currently landing in (flushed when it changes), so the
    /// per-entry cost is two divisions and a compare.
    cur: Option<(i64, u64)>,
}

impl Buckets {
    fn new() -> Buckets {
        Buckets {
            level: 0,
            entries: BTreeMap::new(),
            alerts: BTreeMap::new(),
            range: None,
            cur: None,
        }
    }

    fn width(&self) -> i64 {
        LADDER[self.level]
    }

    fn index_of(&self, t: i64) -> i64 {
        t.div_euclid(NANOS).div_euclid(self.width())
    }

    fn flush(&mut self) {
        if let Some((i, n)) = self.cur.take() {
            *self.entries.entry(i).or_default() += n;
        }
    }

    /// Widen the range to take bucket `i`, merging buckets while the span is too long.
    fn include(&mut self, t: i64) -> i64 {
        let i = self.index_of(t);
        let (lo, hi) = self.range.map_or((i, i), |(lo, hi)| (lo.min(i), hi.max(i)));
        self.range = Some((lo, hi));
        if hi - lo < MAX_FINE_BUCKETS || self.level + 1 == LADDER.len() {
            return i;
        }
        self.flush();
        while let Some((lo, hi)) = self.range {
            if hi - lo < MAX_FINE_BUCKETS || self.level + 1 == LADDER.len() {
                break;
            }
            let f = LADDER[self.level + 1] / LADDER[self.level];
            self.level += 1;
            let mut entries = BTreeMap::new();
            for (k, v) in std::mem::take(&mut self.entries) {
                *entries.entry(k.div_euclid(f)).or_default() += v;
            }
            self.entries = entries;
            let mut alerts = BTreeMap::new();
            for ((k, c, s), v) in std::mem::take(&mut self.alerts) {
                *alerts.entry((k.div_euclid(f), c, s)).or_default() += v;
            }
            self.alerts = alerts;
            self.range = Some((lo.div_euclid(f), hi.div_euclid(f)));
        }
        self.index_of(t)
    }

    fn entry(&mut self, t: i64) {
        let i = self.index_of(t);
        match &mut self.cur {
            Some((ci, n)) if *ci == i => *n += 1,
            _ => {
                self.flush();
                let i = self.include(t);
                self.cur = Some((i, 1));
            }
        }
    }

    fn alert(&mut self, t: i64, category: usize, sev: Severity) {
        let i = self.include(t);
        *self.alerts.entry((i, category, sev)).or_default() += 1;
    }
}

/// The earliest alert of one severity (for the verdict).
#[derive(Clone)]
struct FirstSeen {
    time: i64,
    summary: String,
    actor: Option<String>,
}

/// Sees entries and alerts; [`Collector::finish`] makes the [`Report`].
pub struct Collector {
    caps: Caps,
    seq: u64,
    entries: u64,
    by_type: EntriesByType,
    untimed: u64,
    entry_span: Option<Span>,
    buckets: Buckets,
    actors: HashMap<Box<str>, Ring, foldhash::fast::RandomState>,
    key_buf: String,
    actors_evicted: u64,
    alerts_total: u64,
    by_severity: SevCounts,
    categories: Vec<String>,
    by_category: Vec<SevCounts>,
    alert_span: Option<Span>,
    first_by_sev: [Option<FirstSeen>; 4],
    tenants: Tally<TenantAcc>,
    actor_table: Tally<ActorAcc>,
    rules: Tally<RuleAcc>,
    cadence: Tally<CadenceAcc>,
    captured: Vec<Option<Captured>>,
    live: usize,
    live_by_sev: [usize; 4],
    alert_seq: u64,
    strings_clipped: u64,
}

/// The actor key of the context rings: display name and entity id.
fn actor_key(buf: &mut String, dn: Option<&str>, eid: Option<&str>, max: usize) {
    buf.clear();
    let dn = dn.unwrap_or("");
    let eid = eid.unwrap_or("");
    buf.push_str(&dn[..floor_char_boundary(dn, max.min(dn.len()))]);
    buf.push('\u{1f}');
    buf.push_str(&eid[..floor_char_boundary(eid, max.min(eid.len()))]);
}

fn sev_index(s: Severity) -> usize {
    s as usize
}

impl Collector {
    pub fn new(caps: Caps) -> Collector {
        Collector {
            tenants: Tally::new(caps.table_keys),
            actor_table: Tally::new(caps.table_keys),
            rules: Tally::new(caps.table_keys),
            cadence: Tally::new(caps.table_keys),
            caps,
            seq: 0,
            entries: 0,
            by_type: EntriesByType::default(),
            untimed: 0,
            entry_span: None,
            buckets: Buckets::new(),
            actors: HashMap::default(),
            key_buf: String::new(),
            actors_evicted: 0,
            alerts_total: 0,
            by_severity: SevCounts::default(),
            categories: Vec::new(),
            by_category: Vec::new(),
            alert_span: None,
            first_by_sev: [None, None, None, None],
            captured: Vec::new(),
            live: 0,
            live_by_sev: [0; 4],
            alert_seq: 0,
            strings_clipped: 0,
        }
    }

    /// One replayed entry (called for every entry that reaches the engine).
    pub fn entry(&mut self, e: EntryView<'_, '_>) {
        self.seq += 1;
        self.entries += 1;
        match e.kind() {
            EntryKind::Request => self.by_type.request += 1,
            EntryKind::Response => self.by_type.response += 1,
            EntryKind::Other(_) => self.by_type.other += 1,
        }
        match e.time() {
            Some(t) => {
                self.entry_span.get_or_insert_with(Span::default).add(t);
                self.buckets.entry(t);
            }
            None => self.untimed += 1,
        }
        let (dn, eid) = (e.display_name(), e.entity_id());
        if dn.is_none() && eid.is_none() {
            // No actor to show context for (a login request, an unauthenticated call).
            return;
        }
        let max = self.caps.string_bytes;
        actor_key(&mut self.key_buf, dn, eid, max);
        if !self.actors.contains_key(self.key_buf.as_str()) {
            if self.actors.len() >= self.caps.tracked_actors {
                self.evict_actors();
            }
            self.actors
                .insert(self.key_buf.as_str().into(), Ring::default());
        }
        let ring = self
            .actors
            .get_mut(self.key_buf.as_str())
            .expect("inserted above");
        ring.last_seq = self.seq;
        let clipped = &mut self.strings_clipped;
        // A response completes its request's row instead of adding a second one.
        let response_of = match (e.kind(), e.request_id()) {
            (EntryKind::Response, Some(id)) => Some(id),
            _ => None,
        };
        let merged = response_of.is_some_and(|id| {
            ring.rows
                .iter_mut()
                .rev()
                .find(|r| r.kind == "request" && r.request_id == id)
                .map(|r| {
                    r.kind.clear();
                    r.kind.push_str("response");
                    r.time = e.time().or(r.time);
                    r.outcome = Some(e.outcome());
                })
                .is_some()
        });
        if !merged {
            let mut row = if ring.rows.len() >= self.caps.context_before + RING_SLACK {
                ring.rows.pop_front().unwrap_or_default()
            } else {
                Row::default()
            };
            row.fill(&e, max, clipped);
            ring.rows.push_back(row);
        }
        if ring.waiting.is_empty() {
            return;
        }
        let captured = &mut self.captured;
        ring.waiting.retain_mut(|w| {
            let Some(c) = captured.get_mut(w.slot).and_then(Option::as_mut) else {
                return false;
            };
            if let Some(id) = response_of {
                if let Some(r) = c
                    .context
                    .after
                    .iter_mut()
                    .rev()
                    .find(|r| r.kind == "request" && r.request_id.as_deref() == Some(id))
                {
                    r.kind = "response".into();
                    r.time_nanos = e.time().or(r.time_nanos);
                    r.time = r.time_nanos.map(format_rfc3339);
                    r.outcome = e.outcome().as_str().into();
                    w.open_requests -= 1;
                    return w.left > 0 || w.open_requests > 0;
                }
            }
            if w.left == 0 {
                // Only a response to a request already taken was awaited.
                return false;
            }
            let mut row = Row::default();
            row.fill(&e, max, clipped);
            if row.kind == "request" {
                w.open_requests += 1;
            }
            c.context.after.push(row.to_context(None));
            w.left -= 1;
            w.left > 0 || w.open_requests > 0
        });
    }

    /// Drop the least recently active half of the actors (those not awaited by an alert).
    fn evict_actors(&mut self) {
        let mut seqs: Vec<u64> = self
            .actors
            .values()
            .filter(|r| r.waiting.is_empty())
            .map(|r| r.last_seq)
            .collect();
        if seqs.is_empty() {
            return;
        }
        let mid = seqs.len() / 2;
        let cutoff = *seqs.select_nth_unstable(mid).1;
        let before = self.actors.len();
        self.actors
            .retain(|_, r| r.last_seq > cutoff || !r.waiting.is_empty());
        self.actors_evicted += (before - self.actors.len()) as u64;
    }

    fn category_index(&mut self, c: &str) -> usize {
        match self.categories.iter().position(|x| x == c) {
            Some(i) => i,
            None => {
                self.categories.push(c.to_string());
                self.by_category.push(SevCounts::default());
                self.categories.len() - 1
            }
        }
    }

    /// One alert, as it is emitted.
    pub fn alert(&mut self, a: &Alert) {
        self.alert_seq += 1;
        self.alerts_total += 1;
        let (t, sev) = (a.time_nanos, a.severity);
        self.by_severity.add(sev, 1);
        let ci = self.category_index(&a.category);
        self.by_category[ci].add(sev, 1);
        self.alert_span.get_or_insert_with(Span::default).add(t);
        self.buckets.alert(t, ci, sev);
        let first = &mut self.first_by_sev[sev_index(sev)];
        if first.as_ref().is_none_or(|f| t < f.time) {
            *first = Some(FirstSeen {
                time: t,
                summary: a.summary.clone(),
                actor: a
                    .actor
                    .display_name
                    .clone()
                    .or_else(|| a.actor.entity_id.clone()),
            });
        }
        self.tally(a);
        self.capture(a);
    }

    fn tally(&mut self, a: &Alert) {
        let (t, sev) = (a.time_nanos, a.severity);
        let max = self.caps.string_bytes;
        let tenant = a.tenant.as_deref().filter(|s| !s.is_empty());
        let target = a
            .target_tenant
            .as_deref()
            .filter(|s| !s.is_empty() && Some(*s) != tenant);
        let mut tenant_row = |key: &str, caller: bool, target: bool| {
            if let Some(acc) = self.tenants.get(key) {
                acc.alerts.add(sev, 1);
                acc.as_caller += caller as u64;
                acc.as_target += target as u64;
                if !acc.categories.contains(&a.category) {
                    acc.categories.insert(a.category.clone());
                }
                acc.span.add(t);
            }
        };
        if let Some(x) = tenant {
            tenant_row(x, true, false);
        }
        if let Some(x) = target {
            tenant_row(x, false, true);
        }
        if tenant.is_none() && target.is_none() {
            tenant_row("", false, false);
        }

        let mut key = String::new();
        actor_key(
            &mut key,
            a.actor.display_name.as_deref(),
            a.actor.entity_id.as_deref(),
            max,
        );
        if let Some(acc) = self.actor_table.get(&key) {
            if acc.alerts.total == 0 {
                acc.display_name = a.actor.display_name.clone();
                acc.entity_id = a.actor.entity_id.clone();
                clip_opt(&mut acc.display_name, max, &mut self.strings_clipped);
                clip_opt(&mut acc.entity_id, max, &mut self.strings_clipped);
            }
            if acc.auth_method.is_none() {
                acc.auth_method = a.actor.auth_method.clone();
            }
            if let Some(r) = &a.actor.remote_address {
                if acc.remotes.len() < 5 && r.len() <= max {
                    acc.remotes.insert(r.clone());
                }
            }
            acc.alerts.add(sev, 1);
            acc.categories.insert(a.category.clone());
            for x in [tenant, target].into_iter().flatten() {
                if acc.tenants.len() < 20 && x.len() <= max {
                    acc.tenants.insert(x.to_string());
                }
            }
            acc.span.add(t);
        }

        if let Some(acc) = self.rules.get(&a.rule) {
            acc.category.clone_from(&a.category);
            acc.alerts.add(sev, 1);
            acc.span.add(t);
        }

        if a.category == "eso_cadence" {
            let kind = a
                .evidence
                .get(E::KIND)
                .and_then(Json::as_str)
                .unwrap_or("unknown");
            // Stale alerts carry their key; the others are keyed like them from the alert
            // (the rule's key is namespace and path); a storm has no key.
            let key_obj = match a.evidence.get(E::KEY) {
                Some(Json::Object(m)) => m.clone(),
                _ if kind == "storm" => JsonMap::new(),
                _ => {
                    let mut m = JsonMap::new();
                    if let Some(ns) = &a.actor.namespace {
                        m.insert("namespace".into(), Json::String(ns.clone()));
                    }
                    if let Some(p) = &a.path {
                        m.insert("path".into(), Json::String(p.clone()));
                    }
                    m
                }
            };
            let mut k = Json::Object(key_obj.clone()).to_string();
            k.push('\u{1f}');
            k.push_str(kind);
            if let Some(acc) = self.cadence.get(&k) {
                if acc.alerts == 0 {
                    acc.kind = kind.to_string();
                    let mut key_obj = Json::Object(key_obj);
                    clip_json(&mut key_obj, max, &mut self.strings_clipped);
                    if let Json::Object(m) = key_obj {
                        acc.key = m;
                    }
                }
                acc.alerts += 1;
                acc.worst = acc.worst.max(Some(sev));
                if acc.alerts == 1 || t >= acc.latest {
                    acc.latest = t;
                    let (observed, expected, detail) = cadence_numbers(kind, &a.evidence);
                    acc.observed = observed;
                    acc.expected = expected;
                    acc.detail = detail;
                }
                acc.span.add(t);
            }
        }
    }

    /// Embed the alert with its context, within the cap (more severe alerts first).
    fn capture(&mut self, a: &Alert) {
        let sev = a.severity;
        if self.live >= self.caps.alerts_with_context {
            let Some(lowest) = Severity::ALL
                .iter()
                .copied()
                .find(|s| self.live_by_sev[sev_index(*s)] > 0)
            else {
                return;
            };
            if lowest >= sev {
                return;
            }
            let Some(slot) = self
                .captured
                .iter()
                .rposition(|c| c.as_ref().is_some_and(|c| c.alert.severity == lowest))
            else {
                return;
            };
            self.captured[slot] = None;
            self.live -= 1;
            self.live_by_sev[sev_index(lowest)] -= 1;
        }
        let max = self.caps.string_bytes;
        let mut alert = a.clone();
        let clipped = &mut self.strings_clipped;
        clip(&mut alert.summary, max, clipped);
        for s in [
            &mut alert.tenant,
            &mut alert.target_tenant,
            &mut alert.request_id,
            &mut alert.path,
            &mut alert.operation,
            &mut alert.actor.display_name,
            &mut alert.actor.entity_id,
            &mut alert.actor.role,
            &mut alert.actor.service_account,
            &mut alert.actor.namespace,
            &mut alert.actor.remote_address,
        ] {
            clip_opt(s, max, clipped);
        }
        alert
            .evidence
            .values_mut()
            .for_each(|v| clip_json(v, max, clipped));

        let slot = self.captured.len();
        let mut context = Context::default();
        let has_actor = a.actor.display_name.is_some() || a.actor.entity_id.is_some();
        actor_key(
            &mut self.key_buf,
            a.actor.display_name.as_deref(),
            a.actor.entity_id.as_deref(),
            max,
        );
        match self.actors.get_mut(self.key_buf.as_str()) {
            _ if !has_actor => {
                context.note = Some(if a.request_id.is_none() {
                    "raised on an absence (no triggering entry): see the evidence".into()
                } else {
                    "the alert names no actor".into()
                });
            }
            None => {
                context.note = Some("no recent entry of this actor is held".into());
            }
            Some(ring) => {
                let rows = &ring.rows;
                let rid = a.request_id.as_deref();
                let split = rid
                    .and_then(|id| rows.iter().rposition(|r| r.request_id == id))
                    .map(|p| p + 1)
                    .unwrap_or_else(|| {
                        if rid.is_some() {
                            context.note =
                                Some("the triggering entry is no longer among the actor's recent entries".into());
                        }
                        rows.iter()
                            .rposition(|r| r.time.is_none_or(|x| x <= a.time_nanos))
                            .map_or(0, |p| p + 1)
                    });
                let from = split.saturating_sub(self.caps.context_before);
                context.before = rows.range(from..split).map(|r| r.to_context(rid)).collect();
                context.after = rows
                    .range(split..)
                    .take(self.caps.context_after)
                    .map(|r| r.to_context(rid))
                    .collect();
                let left = self.caps.context_after - context.after.len();
                let open_requests = context.after.iter().filter(|r| r.kind == "request").count();
                if left > 0 || open_requests > 0 {
                    ring.waiting.push(Waiting {
                        slot,
                        left,
                        open_requests,
                    });
                }
            }
        }
        self.captured.push(Some(Captured {
            seq: self.alert_seq,
            alert,
            context,
        }));
        self.live += 1;
        self.live_by_sev[sev_index(sev)] += 1;
    }

    /// The report. The collector is left empty.
    pub fn finish(&mut self, src: &Replayed<'_>) -> Report {
        self.buckets.flush();
        let caps = self.caps.clone();
        let replay = self.replay_section(src);
        let mut notes = Vec::new();
        let mut dropped = BTreeMap::new();

        let mut alerts: Vec<Captured> = std::mem::take(&mut self.captured)
            .into_iter()
            .flatten()
            .collect();
        alerts.sort_by_key(|c| (c.alert.time_nanos, c.seq));
        let alerts: Vec<AlertItem> = alerts
            .into_iter()
            .enumerate()
            .map(|(i, c)| AlertItem {
                id: format!("a{}", i + 1),
                alert: c.alert,
                context: c.context,
            })
            .collect();
        let without = self.alerts_total - alerts.len() as u64;
        if without > 0 {
            notes.push(format!(
                "{} of {} alerts are shown with evidence and context (the most severe first, then the earliest); the other {} are counted in the totals, tables and timeline",
                thousands(alerts.len() as u64),
                thousands(self.alerts_total),
                thousands(without)
            ));
        }

        let tenant_count = self.tenants.map.keys().filter(|k| !k.is_empty()).count() as u64;
        let actor_count = self
            .actor_table
            .map
            .keys()
            .filter(|k| k.as_str() != "\u{1f}")
            .count() as u64;
        let tables = self.tables(src.rules, &mut dropped, &mut notes);
        if self.actors_evicted > 0 {
            notes.push(format!(
                "recent entries of {} actors were dropped to stay within {} tracked actors: their alerts may show less context",
                thousands(self.actors_evicted),
                thousands(caps.tracked_actors as u64)
            ));
        }
        if self.strings_clipped > 0 {
            notes.push(format!(
                "{} values longer than {} bytes were cut (marked …)",
                thousands(self.strings_clipped),
                caps.string_bytes
            ));
        }

        let timeline = self.timeline();
        let span = self.alert_span;
        let totals = Totals {
            alerts: self.alerts_total,
            alerts_with_context: alerts.len() as u64,
            by_severity: self.by_severity,
            by_category: self
                .categories
                .iter()
                .cloned()
                .zip(self.by_category.iter().copied())
                .collect(),
            tenants: tenant_count,
            actors: actor_count,
            first_alert: span.map(|s| format_rfc3339(s.first)),
            last_alert: span.map(|s| format_rfc3339(s.last)),
        };
        let tenant_names: Vec<&str> = tables
            .tenants
            .iter()
            .filter_map(|t| t.tenant.as_deref())
            .collect();
        let (verdict, verdict_lead) = verdict(
            &totals,
            span,
            &self.first_by_sev,
            &tenant_names,
            self.entries,
            self.entry_span,
        );
        Report {
            format: FORMAT,
            version: VERSION,
            generator: format!("auditwatch {}", env!("CARGO_PKG_VERSION")),
            verdict,
            verdict_lead,
            replay,
            totals,
            timeline,
            tables,
            alerts,
            limits: Limits {
                max_alerts_with_context: caps.alerts_with_context,
                alerts_without_context: without,
                context_before: caps.context_before,
                context_after: caps.context_after,
                max_tracked_actors: caps.tracked_actors,
                actors_evicted: self.actors_evicted,
                max_table_rows: caps.table_rows,
                table_rows_dropped: dropped,
                max_string_bytes: caps.string_bytes,
                strings_clipped: self.strings_clipped,
                notes,
            },
        }
    }

    fn replay_section(&self, src: &Replayed<'_>) -> Replay {
        let input = |r: &InputReport| InputSummary {
            name: r.name.clone(),
            bytes: r.bytes,
            lines: r.lines,
            entries: r.entries,
            parse_errors: r.parse_errors,
            problem: r.problem.clone(),
        };
        let s = src.stats;
        Replay {
            inputs: src.inputs.iter().map(input).collect(),
            skipped_inputs: src.skipped.iter().map(input).collect(),
            since: src.since.map(format_rfc3339),
            until: src.until.map(format_rfc3339),
            first_entry: self.entry_span.map(|s| format_rfc3339(s.first)),
            last_entry: self.entry_span.map(|s| format_rfc3339(s.last)),
            entries: self.entries,
            entries_by_type: self.by_type,
            untimed_entries: self.untimed,
            filtered_by_time: s.filtered_by_time,
            parse_errors_total: s.parse_errors_total(),
            parse_errors: ParseError::ALL
                .iter()
                .map(|r| (r.as_str(), s.parse_errors[r.index()]))
                .collect(),
            rules: RulesInfo {
                origin: src.rules.origin.clone(),
                count: src.rules.rules.len(),
            },
            first_entry_nanos: self.entry_span.map(|s| s.first),
            last_entry_nanos: self.entry_span.map(|s| s.last),
        }
    }

    fn tables(
        &mut self,
        rules: &RuleSet,
        dropped: &mut BTreeMap<&'static str, u64>,
        notes: &mut Vec<String>,
    ) -> Tables {
        let keep = self.caps.table_rows;
        let mut cut = |name: &'static str, what: &str, n: usize, overflow: u64| {
            let d = n.saturating_sub(keep) as u64;
            dropped.insert(name, d);
            if d > 0 {
                notes.push(format!(
                    "the {what} table lists the top {} of {} rows",
                    thousands(keep as u64),
                    thousands(n as u64)
                ));
            }
            if overflow > 0 {
                notes.push(format!(
                    "{} alerts fell past {} distinct keys and are missing from the {what} table",
                    thousands(overflow),
                    thousands(self.caps.table_keys as u64)
                ));
            }
        };
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();

        let mut tenants: Vec<TenantRow> = std::mem::take(&mut self.tenants.map)
            .into_iter()
            .map(|(k, a)| TenantRow {
                tenant: opt(&k),
                alerts: a.alerts,
                as_caller: a.as_caller,
                as_target: a.as_target,
                categories: list(&a.categories),
                first: format_rfc3339(a.span.first),
                last: format_rfc3339(a.span.last),
            })
            .collect();
        tenants.sort_by(|a, b| {
            (a.tenant.is_none(), a.alerts.rank(), &a.tenant).cmp(&(
                b.tenant.is_none(),
                b.alerts.rank(),
                &b.tenant,
            ))
        });
        cut("tenants", "tenant", tenants.len(), self.tenants.overflow);
        tenants.truncate(keep);

        let mut actors: Vec<ActorRow> = std::mem::take(&mut self.actor_table.map)
            .into_values()
            .map(|a| ActorRow {
                display_name: a.display_name,
                entity_id: a.entity_id,
                auth_method: a.auth_method,
                remote_addresses: list(&a.remotes),
                alerts: a.alerts,
                categories: list(&a.categories),
                tenants: list(&a.tenants),
                first: format_rfc3339(a.span.first),
                last: format_rfc3339(a.span.last),
            })
            .collect();
        actors.sort_by(|a, b| {
            (a.alerts.rank(), &a.display_name, &a.entity_id).cmp(&(
                b.alerts.rank(),
                &b.display_name,
                &b.entity_id,
            ))
        });
        cut("actors", "actor", actors.len(), self.actor_table.overflow);
        actors.truncate(keep);

        let mut rule_rows: Vec<RuleRow> = std::mem::take(&mut self.rules.map)
            .into_iter()
            .map(|(id, a)| RuleRow {
                title: rules
                    .rules
                    .iter()
                    .find(|r| r.id == id)
                    .map(|r| r.title.clone()),
                rule: id,
                category: a.category,
                alerts: a.alerts,
                first: format_rfc3339(a.span.first),
                last: format_rfc3339(a.span.last),
            })
            .collect();
        rule_rows.sort_by(|a, b| (a.alerts.rank(), &a.rule).cmp(&(b.alerts.rank(), &b.rule)));
        cut("rules", "rule", rule_rows.len(), self.rules.overflow);
        rule_rows.truncate(keep);

        let mut cadence: Vec<CadenceRow> = std::mem::take(&mut self.cadence.map)
            .into_values()
            .map(|a| CadenceRow {
                kind: a.kind,
                key: a.key,
                alerts: a.alerts,
                worst: a.worst.unwrap_or(Severity::Info),
                observed_interval_secs: a.observed,
                expected_interval_secs: a.expected,
                detail: a.detail,
                first: format_rfc3339(a.span.first),
                last: format_rfc3339(a.span.last),
            })
            .collect();
        cadence.sort_by(|a, b| {
            (
                std::cmp::Reverse(a.worst),
                std::cmp::Reverse(a.alerts),
                &a.first,
            )
                .cmp(&(
                    std::cmp::Reverse(b.worst),
                    std::cmp::Reverse(b.alerts),
                    &b.first,
                ))
        });
        cut(
            "eso_cadence",
            "eso_cadence",
            cadence.len(),
            self.cadence.overflow,
        );
        cadence.truncate(keep);

        Tables {
            tenants,
            actors,
            rules: rule_rows,
            eso_cadence: cadence,
        }
    }

    /// Display buckets: the narrowest round width that fits the span in
    /// [`Caps::time_buckets`] buckets.
    fn timeline(&self) -> Timeline {
        let mut order: Vec<usize> = (0..self.categories.len()).collect();
        // Most severe first, then most alerts, then by name.
        order.sort_by_key(|&i| {
            let c = &self.by_category[i];
            (
                std::cmp::Reverse(c.worst()),
                std::cmp::Reverse(c.total),
                &self.categories[i],
            )
        });
        let categories: Vec<String> = order.iter().map(|&i| self.categories[i].clone()).collect();
        let b = &self.buckets;
        let Some((lo, hi)) = b.range else {
            return Timeline {
                bucket_secs: b.width(),
                start: None,
                end: None,
                categories,
                buckets: Vec::new(),
                start_nanos: 0,
            };
        };
        let w = b.width();
        let max = self.caps.time_buckets.max(1) as i64;
        let mut level = b.level;
        while level + 1 < LADDER.len() {
            let d = LADDER[level];
            let n = (hi * w).div_euclid(d) - (lo * w).div_euclid(d) + 1;
            if n <= max {
                break;
            }
            level += 1;
        }
        let d = LADDER[level];
        let (dlo, dhi) = ((lo * w).div_euclid(d), (hi * w).div_euclid(d));
        let mut buckets: Vec<Bucket> = (dlo..=dhi)
            .map(|i| Bucket {
                start: format_rfc3339(i * d * NANOS),
                entries: 0,
                alerts: BTreeMap::new(),
            })
            .collect();
        for (&k, &n) in &b.entries {
            buckets[((k * w).div_euclid(d) - dlo) as usize].entries += n;
        }
        for (&(k, c, s), &n) in &b.alerts {
            buckets[((k * w).div_euclid(d) - dlo) as usize]
                .alerts
                .entry(self.categories[c].clone())
                .or_default()
                .add(s, n);
        }
        Timeline {
            bucket_secs: d,
            start: Some(format_rfc3339(dlo * d * NANOS)),
            end: Some(format_rfc3339((dhi + 1) * d * NANOS)),
            categories,
            buckets,
            start_nanos: dlo * d * NANOS,
        }
    }
}

/// Observed and expected interval of an `eso_cadence` alert, from its evidence.
fn cadence_numbers(kind: &str, ev: &JsonMap<String, Json>) -> (Option<f64>, Option<f64>, String) {
    let n = |k: &str| ev.get(k).and_then(Json::as_f64);
    let show = |k: &str| n(k).map_or_else(|| "?".to_string(), num);
    match kind {
        E::KIND_TOO_FREQUENT => {
            let observed = match (n(E::WINDOW_SECS), n(E::READS_IN_WINDOW)) {
                (Some(w), Some(r)) if r > 0.0 => Some((w / r * 10.0).round() / 10.0),
                _ => None,
            };
            (
                observed,
                None,
                format!(
                    "{} reads within {}s",
                    show(E::READS_IN_WINDOW),
                    show(E::WINDOW_SECS)
                ),
            )
        }
        E::KIND_STALE => (
            n(E::SILENT_FOR_SECS),
            n(E::LEARNED_INTERVAL_SECS),
            format!(
                "silent since the last read at {} (learned interval {}s)",
                ev.get(E::LAST_READ).and_then(Json::as_str).unwrap_or("?"),
                show(E::LEARNED_INTERVAL_SECS)
            ),
        ),
        E::KIND_LEASE_RACE => {
            let mut d = format!(
                "refresh must come within {} x the {}s lease",
                show(E::MAX_REFRESH_RATIO),
                show(E::LEASE_TTL_SECS)
            );
            if let Some(e) = ev.get(E::ESCALATION).and_then(Json::as_str) {
                d.push_str("; ");
                d.push_str(e);
            }
            (
                n(E::OBSERVED_INTERVAL_SECS),
                n(E::EXPECTED_MAX_INTERVAL_SECS),
                d,
            )
        }
        "storm" => (
            None,
            None,
            format!(
                "{} identities within {}s",
                show("distinct"),
                show(E::WINDOW_SECS)
            ),
        ),
        _ => (None, None, String::new()),
    }
}

/// A number without a needless `.0`.
pub fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `(date, HH:MM:SS)` of Unix ns, UTC.
pub fn civil(nanos: i64) -> (String, String) {
    let secs = nanos.div_euclid(NANOS);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", sod / 3600, sod % 3600 / 60, sod % 60),
    )
}

/// `2026-03-02 14:07 UTC`, or `between ... and ...` with the date said once.
fn when_range(first: i64, last: i64) -> String {
    let (d1, t1) = civil(first);
    let (d2, t2) = civil(last);
    if (first.div_euclid(60 * NANOS)) == (last.div_euclid(60 * NANOS)) {
        format!("at {d1} {} UTC", &t1[..5])
    } else if d1 == d2 {
        format!("between {d1} {} and {} UTC", &t1[..5], &t2[..5])
    } else {
        format!("between {d1} {} and {d2} {} UTC", &t1[..5], &t2[..5])
    }
}

fn verdict(
    totals: &Totals,
    span: Option<Span>,
    first_by_sev: &[Option<FirstSeen>; 4],
    tenants: &[&str],
    entries: u64,
    entry_span: Option<Span>,
) -> (String, usize) {
    let (Some(span), Some(worst)) = (span, totals.by_severity.worst()) else {
        let when =
            entry_span.map_or_else(String::new, |s| format!(" {}", when_range(s.first, s.last)));
        let s = format!("No alerts in {} entries{when}.", thousands(entries));
        return (s.clone(), s.len());
    };
    let parts: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .filter(|s| totals.by_severity.get(**s) > 0)
        .map(|s| format!("{} {}", thousands(totals.by_severity.get(*s)), s))
        .collect();
    let counts = match parts.as_slice() {
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        [] => String::new(),
    };
    let noun = if totals.alerts == 1 {
        "alert"
    } else {
        "alerts"
    };
    let across = match tenants {
        [] => String::new(),
        [one] => format!(" involving tenant {one}"),
        few if few.len() <= 3 => format!(" across tenants {}", few.join(", ")),
        _ => format!(" across {} tenants", thousands(totals.tenants)),
    };
    let mut s = format!(
        "{counts} {noun}{across} {}",
        when_range(span.first, span.last)
    );
    let lead = s.len();
    if let Some(f) = &first_by_sev[sev_index(worst)] {
        let (d, t) = civil(f.time);
        let at = if civil(span.first).0 == d {
            t
        } else {
            format!("{d} {t}")
        };
        let label = if totals.alerts == 1 {
            "it".to_string()
        } else {
            format!("the first {worst}")
        };
        s.push_str(&format!("; {label}: “{}” at {at}", f.summary));
        if let Some(a) = &f.actor {
            s.push_str(&format!(" by {a}"));
        }
    }
    s.push('.');
    (s, lead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_widen_to_stay_bounded() {
        let mut b = Buckets::new();
        let day = 86_400 * NANOS;
        for i in 0..(30 * 24 * 60) {
            b.entry(i * 60 * NANOS);
        }
        b.alert(15 * day, 0, Severity::High);
        b.flush();
        let (lo, hi) = b.range.unwrap();
        assert!(hi - lo < MAX_FINE_BUCKETS);
        assert_eq!(b.entries.values().sum::<u64>(), 30 * 24 * 60);
        assert_eq!(b.width(), 1800);
    }

    #[test]
    fn strings_are_cut_on_char_boundaries() {
        let mut buf = String::new();
        let mut n = 0;
        set(&mut buf, Some("ééé"), 3, &mut n);
        assert_eq!(buf, "é…");
        assert_eq!(n, 1);
        let mut s = "abcdef".to_string();
        clip(&mut s, 4, &mut n);
        assert_eq!(s, "abcd…");
    }

    #[test]
    fn thousands_and_numbers() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(num(4200.0), "4200");
        assert_eq!(num(0.9), "0.9");
    }
}
