//! The engine: pure, synchronous, no I/O. It takes parsed entries in arrival order and
//! returns alerts; time is the entries' own (`time`), advanced as a watermark that trails
//! the newest event time by `lateness_secs`. Replay and the daemon drive the same engine,
//! so the same input gives the same alerts.
//!
//! Decisions are made on the response entry (the outcome is known). A request entry is
//! held (its raw line) until its response arrives; if none arrives within
//! `response_timeout_secs` of event time, the request is evaluated on its own. One request
//! produces at most one alert per rule: responses already decided (or timed out) are
//! remembered in a bounded set, so a duplicate or late response is counted and dropped.

pub mod event;
pub mod state;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::alert::{Actor, Alert, Severity};
use crate::config::calendar::HoursVerdict;
use crate::config::{AllowAction, Config};
use crate::parse::time::format_rfc3339;
use crate::parse::{Entry, EntryKind, Parser};
use crate::rules::condition::{Field, IdentityClass};
use crate::rules::{CadenceCheck, Detector, Rule, RuleSet};
pub use event::{Event, Outcome, PathTenant};
use state::{AbsenceState, CadenceParams, CadenceState, CountState, DistinctState, Map, NANOS};

/// A rule's state carried across a reload: (id, detector kind, state, suppressions).
type KeptState = (String, &'static str, RuleState, Map<Box<str>, i64>);

/// Per-rule detector state.
enum RuleState {
    None,
    Count(CountState),
    Distinct(DistinctState),
    Cadence(CadenceState),
    Absence(AbsenceState),
}

/// Counters the engine keeps (exposed as metrics and in the replay summary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub evaluated: u64,
    pub untimed: u64,
    pub timed_out_requests: u64,
    pub duplicate_responses: u64,
    pub suppressed_alerts: u64,
    pub allow_listed: u64,
    pub evicted_keys: u64,
}

/// Sizes of the bounded state tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    pub pending_requests: usize,
    pub decided_requests: usize,
    pub count_keys: usize,
    pub distinct_keys: usize,
    pub cadence_keys: usize,
    pub cadence_timers: usize,
    pub suppression_keys: usize,
}

struct Pending {
    raw: Vec<u8>,
}

/// Bounded FIFO set of request ids already decided.
struct Decided {
    set: HashSet<u128, foldhash::fast::RandomState>,
    order: VecDeque<u128>,
    cap: usize,
}

impl Decided {
    fn insert(&mut self, id: u128) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

pub struct Engine {
    cfg: Arc<Config>,
    rules: Arc<RuleSet>,
    states: Vec<RuleState>,
    suppress: Vec<Map<Box<str>, i64>>,
    pending: Map<u128, Pending>,
    pending_order: VecDeque<(u128, i64)>,
    pool: Vec<Vec<u8>>,
    decided: Decided,
    reparser: Parser,
    max_time: Option<i64>,
    watermark: i64,
    captures: Vec<(String, String)>,
    tenant_cache: event::TenantCache,
    stats: EngineStats,
}

/// A request id as a 128-bit key: two independent 64-bit hashes of its bytes.
fn id_key(id: &str) -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h1 = foldhash::fast::FixedState::with_seed(0x5eed).build_hasher();
    h1.write(id.as_bytes());
    let mut h2 = foldhash::fast::FixedState::with_seed(0xa11ce).build_hasher();
    h2.write(id.as_bytes());
    ((h1.finish() as u128) << 64) | h2.finish() as u128
}

impl Engine {
    pub fn new(cfg: Arc<Config>, rules: Arc<RuleSet>) -> Engine {
        let states = rules
            .rules
            .iter()
            .map(|r| match r.detector {
                Detector::Count { .. } => RuleState::Count(CountState::default()),
                Detector::Distinct { .. } => RuleState::Distinct(DistinctState::default()),
                Detector::Cadence { .. } => RuleState::Cadence(CadenceState::default()),
                Detector::Absence { .. } => RuleState::Absence(AbsenceState::default()),
                _ => RuleState::None,
            })
            .collect();
        let cap = cfg.engine.max_pending_requests as usize;
        Engine {
            suppress: rules.rules.iter().map(|_| Map::default()).collect(),
            reparser: Parser::new(&cfg.parse.prefix),
            cfg,
            rules,
            states,
            pending: Map::default(),
            pending_order: VecDeque::new(),
            pool: Vec::new(),
            decided: Decided {
                set: HashSet::default(),
                order: VecDeque::new(),
                cap: cap.max(1024),
            },
            max_time: None,
            watermark: i64::MIN,
            captures: Vec::new(),
            tenant_cache: Default::default(),
            stats: EngineStats::default(),
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Swap in new rules and config (a reload). Detection state is kept for rules whose
    /// id and detector kind are unchanged.
    pub fn reload(&mut self, cfg: Arc<Config>, rules: Arc<RuleSet>) {
        let mut old: Vec<KeptState> = self
            .rules
            .rules
            .iter()
            .zip(std::mem::take(&mut self.states))
            .zip(std::mem::take(&mut self.suppress))
            .map(|((r, s), sup)| (r.id.clone(), r.detector.kind(), s, sup))
            .collect();
        let mut fresh = Engine::new(cfg.clone(), rules.clone());
        for (i, r) in rules.rules.iter().enumerate() {
            if let Some(pos) = old
                .iter()
                .position(|(id, kind, _, _)| *id == r.id && *kind == r.detector.kind())
            {
                let (_, _, s, sup) = old.swap_remove(pos);
                fresh.states[i] = s;
                fresh.suppress[i] = sup;
            }
        }
        self.cfg = cfg;
        self.rules = rules;
        self.states = fresh.states;
        self.suppress = fresh.suppress;
        self.reparser = fresh.reparser;
        // The tenancy regexes may have changed.
        self.tenant_cache = Default::default();
    }

    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        s.evicted_keys = self
            .states
            .iter()
            .map(|st| match st {
                RuleState::Count(c) => c.evicted,
                RuleState::Distinct(d) => d.evicted,
                RuleState::Cadence(c) => c.evicted,
                _ => 0,
            })
            .sum();
        s
    }

    pub fn table_sizes(&self) -> TableSizes {
        let mut t = TableSizes {
            pending_requests: self.pending.len(),
            decided_requests: self.decided.set.len(),
            suppression_keys: self.suppress.iter().map(|m| m.len()).sum(),
            ..TableSizes::default()
        };
        for st in &self.states {
            match st {
                RuleState::Count(c) => t.count_keys += c.len(),
                RuleState::Distinct(d) => t.distinct_keys += d.len(),
                RuleState::Cadence(c) => {
                    t.cadence_keys += c.len();
                    t.cadence_timers += c.timers();
                }
                _ => {}
            }
        }
        t
    }

    /// The newest event time seen (ns).
    pub fn max_time(&self) -> Option<i64> {
        self.max_time
    }

    /// Feed one entry. `raw` is the unparsed line of a request entry (kept in case its
    /// response never arrives); pass `None` for other entries.
    pub fn process(&mut self, entry: &Entry<'_>, raw: Option<&[u8]>, out: &mut Vec<Alert>) {
        self.stats.events += 1;
        let t = match entry.time {
            Some(t) => t,
            None => {
                self.stats.untimed += 1;
                self.max_time.unwrap_or(0)
            }
        };
        if entry.time.is_some() && self.max_time.is_none_or(|m| t > m) {
            self.max_time = Some(t);
            self.advance(t - self.cfg.engine.lateness_secs as i64 * NANOS, out);
        }
        match entry.kind {
            EntryKind::Request => {
                if let (Some(id), Some(raw)) = (entry.request.id, raw) {
                    let key = id_key(id);
                    if self.decided.set.contains(&key) || self.pending.contains_key(&key) {
                        return;
                    }
                    let mut buf = self.pool.pop().unwrap_or_default();
                    buf.clear();
                    buf.extend_from_slice(raw);
                    self.pending.insert(key, Pending { raw: buf });
                    self.pending_order.push_back((key, t));
                    if self.pending.len() > self.cfg.engine.max_pending_requests as usize {
                        self.expire_pending(i64::MAX, true, out);
                    }
                    if self.pending_order.len() > 4 * self.pending.len() + 1024 {
                        let live = &self.pending;
                        self.pending_order.retain(|(k, _)| live.contains_key(k));
                    }
                }
                // No id (help requests) or no raw line: the response entry decides.
            }
            EntryKind::Response => {
                if let Some(id) = entry.request.id {
                    let key = id_key(id);
                    if !self.decided.insert(key) {
                        self.stats.duplicate_responses += 1;
                        return;
                    }
                    if let Some(p) = self.pending.remove(&key) {
                        self.pool.push(p.raw);
                    }
                }
                self.evaluate(entry, t, out);
            }
            EntryKind::Other(_) => self.evaluate(entry, t, out),
        }
    }

    /// Advance the watermark to `now` (ns) without an event: the daemon's idle clock.
    pub fn advance_clock(&mut self, now: i64, out: &mut Vec<Alert>) {
        self.advance(now - self.cfg.engine.lateness_secs as i64 * NANOS, out);
    }

    /// End of input: requests still waiting for a response are evaluated on their own.
    /// Timers beyond the last event time do not fire (nothing is known past the input).
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        if let Some(m) = self.max_time {
            self.advance(m, out);
        }
        self.expire_pending(i64::MAX, false, out);
    }

    fn advance(&mut self, watermark: i64, out: &mut Vec<Alert>) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        let timeout = self.cfg.engine.response_timeout_secs as i64 * NANOS;
        self.expire_pending(watermark.saturating_sub(timeout), false, out);
        for i in 0..self.rules.rules.len() {
            match &self.rules.rules[i].detector {
                Detector::Cadence { .. } => self.fire_stale(i, watermark, out),
                Detector::Absence { silence_secs, .. } => {
                    let silence = *silence_secs as i64 * NANOS;
                    if let RuleState::Absence(a) = &mut self.states[i] {
                        if let Some(last) = a.last_seen {
                            if a.busy && !a.fired && watermark - last >= silence {
                                a.fired = true;
                                let rule = &self.rules.rules[i];
                                let mut ev = JsonMap::new();
                                ev.insert("last_event_time".into(), json!(format_rfc3339(last)));
                                ev.insert("silence_secs".into(), json!(silence_secs));
                                let alert = bare_alert(rule, last + silence, rule.severity, ev);
                                out.push(alert);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Evaluate held requests older than `before` (or, with `overflow`, the oldest until
    /// the table is within its cap).
    fn expire_pending(&mut self, before: i64, overflow: bool, out: &mut Vec<Alert>) {
        let cap = self.cfg.engine.max_pending_requests as usize;
        while let Some(&(key, time)) = self.pending_order.front() {
            let due = time <= before || (overflow && self.pending.len() > cap);
            if !due {
                break;
            }
            self.pending_order.pop_front();
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            self.decided.insert(key);
            self.stats.timed_out_requests += 1;
            let raw = p.raw;
            let mut parser = std::mem::take(&mut self.reparser);
            let mut alerts = Vec::new();
            parser.parse(&raw, |_, r| {
                if let Ok(entry) = r {
                    self.evaluate(&entry, time, &mut alerts);
                }
            });
            self.reparser = parser;
            out.append(&mut alerts);
            self.pool.push(raw);
            if overflow && self.pending.len() <= cap && time > before {
                break;
            }
        }
    }

    fn evaluate(&mut self, entry: &Entry<'_>, t: i64, out: &mut Vec<Alert>) {
        self.stats.evaluated += 1;
        let rules = self.rules.clone();
        let cfg = self.cfg.clone();
        let ev = Event::new(entry, t, &cfg, &mut self.tenant_cache);
        for (i, rule) in rules.rules.iter().enumerate() {
            self.captures.clear();
            if let Some(w) = &rule.when {
                if !w.eval(&ev, &mut self.captures) {
                    continue;
                }
            }
            let mut evidence = JsonMap::new();
            let mut target_override: Option<String> = None;
            let mut floor: Option<Severity> = None;
            let fire = match &rule.detector {
                Detector::Match => true,
                Detector::TenantMismatch => {
                    if ev.has(IdentityClass::MachineAdmin) || ev.has(IdentityClass::Admin) {
                        false
                    } else {
                        match (ev.tenant, ev.path_tenant) {
                            (Some(caller), PathTenant::Tenant(target)) if caller != target => {
                                evidence
                                    .insert("caller_tenant_from".into(), json!(ev.tenant_source));
                                true
                            }
                            (Some(_), PathTenant::ScopedUnknown) => {
                                evidence
                                    .insert("caller_tenant_from".into(), json!(ev.tenant_source));
                                evidence.insert(
                                    "reason".into(),
                                    json!("tenant-scoped path with no tenant"),
                                );
                                true
                            }
                            _ => false,
                        }
                    }
                }
                Detector::TimeWindow => {
                    if ev.has(IdentityClass::MachineAdmin) {
                        false
                    } else {
                        match cfg.business_hours.classify(t) {
                            HoursVerdict::Inside | HoursVerdict::ChangeWindow(_) => false,
                            HoursVerdict::Outside { local, reason } => {
                                evidence.insert("local_time".into(), json!(local));
                                evidence.insert(
                                    "time_zone".into(),
                                    json!(cfg.business_hours.time_zone_name),
                                );
                                evidence.insert("reason".into(), json!(reason));
                                let admin: Vec<String> = {
                                    let a = &ev.actor;
                                    let mut v: Vec<String> = a
                                        .policies
                                        .iter()
                                        .chain(a.token_policies.iter())
                                        .chain(a.identity_policies.iter())
                                        .filter(|p| cfg.admin_policies.iter().any(|x| x == p))
                                        .map(str::to_string)
                                        .collect();
                                    v.sort();
                                    v.dedup();
                                    v
                                };
                                evidence.insert("admin_policies".into(), json!(admin));
                                true
                            }
                        }
                    }
                }
                Detector::Count {
                    key,
                    window_secs,
                    threshold,
                    max_keys,
                } => {
                    let k = key_string(&ev, key);
                    let RuleState::Count(st) = &mut self.states[i] else {
                        unreachable!()
                    };
                    match st.observe(&k, t, *window_secs, *threshold, *max_keys) {
                        Some(n) => {
                            evidence.insert("count".into(), json!(n));
                            evidence.insert("window_secs".into(), json!(window_secs));
                            evidence.insert("threshold".into(), json!(threshold));
                            key_evidence(&mut evidence, key, &k);
                            true
                        }
                        None => false,
                    }
                }
                Detector::Distinct {
                    key,
                    field,
                    window_secs,
                    threshold,
                    max_keys,
                } => {
                    let k = key_string(&ev, key);
                    let Some(v) = ev.first(field) else { continue };
                    let RuleState::Distinct(st) = &mut self.states[i] else {
                        unreachable!()
                    };
                    match st.observe(&k, &v, t, *window_secs, *threshold, *max_keys) {
                        Some((n, sample)) => {
                            evidence.insert("distinct".into(), json!(n));
                            evidence.insert("field".into(), json!(field.name()));
                            evidence.insert("window_secs".into(), json!(window_secs));
                            evidence.insert("threshold".into(), json!(threshold));
                            evidence.insert("sample".into(), json!(sample));
                            key_evidence(&mut evidence, key, &k);
                            true
                        }
                        None => false,
                    }
                }
                Detector::Cadence { key, checks } => {
                    if ev.outcome != Outcome::Allowed {
                        continue;
                    }
                    let k = key_string(&ev, key);
                    let fire = self.cadence_read(i, &ev, &k, checks, &mut evidence);
                    if evidence.contains_key("escalation") {
                        floor = Some(Severity::High);
                    }
                    fire
                }
                Detector::Absence {
                    silence_secs,
                    min_events,
                } => {
                    let RuleState::Absence(a) = &mut self.states[i] else {
                        unreachable!()
                    };
                    a.observe(t, *silence_secs as i64 * NANOS, *min_events);
                    false
                }
            };
            if !fire {
                continue;
            }
            for (name, value) in self.captures.drain(..) {
                if name == "target_tenant" || name == "tenant" {
                    target_override.get_or_insert(value.clone());
                }
                evidence.entry(name).or_insert(json!(value));
            }
            if let Some(mut alert) =
                self.finish_alert(i, rule, &ev, evidence, target_override, floor)
            {
                if rule.platform_scope || rule.detector.is_global() {
                    // A platform-wide finding (a storm): the entry that crossed the
                    // threshold is one of many and speaks for none of them.
                    alert.describe_platform();
                    alert.summary = render(rule, &alert);
                }
                out.push(alert);
            }
        }
    }

    /// A counted read of a cadence key; true with evidence when an alert is due now.
    fn cadence_read(
        &mut self,
        i: usize,
        ev: &Event<'_, '_>,
        key: &str,
        checks: &[CadenceCheck],
        evidence: &mut JsonMap<String, Json>,
    ) -> bool {
        let c = &self.cfg.cadence;
        let params = CadenceParams {
            duplicate_within: c.duplicate_within_secs as i64 * NANOS,
            frequent_window: c.too_frequent_window_secs as i64 * NANOS,
            frequent_min_reads: c.too_frequent_min_reads as usize,
            max_keys: c.max_keys as usize,
        };
        let (stale_factor, stale_min, stale_min_iv) =
            (c.stale_factor, c.stale_min_secs, c.stale_min_intervals);
        let RuleState::Cadence(st) = &mut self.states[i] else {
            unreachable!()
        };
        let (slot, obs) = st.observe(key, ev.time, &params);
        let mut fire = false;
        if checks.contains(&CadenceCheck::TooFrequent) {
            if let Some(n) = obs.too_frequent {
                evidence.insert("kind".into(), json!("too_frequent"));
                evidence.insert("reads_in_window".into(), json!(n));
                evidence.insert("window_secs".into(), json!(params.frequent_window / NANOS));
                fire = true;
            }
        }
        if !fire && checks.contains(&CadenceCheck::LeaseRace) {
            let path = ev.entry.request.path.unwrap_or("");
            if let (Some(ttl), Some(iv)) = (self.cfg.leases.ttl_secs(path), obs.interval) {
                let ratio = self.cfg.leases.max_refresh_ratio;
                let limit = (ttl as f64 * ratio * NANOS as f64) as i64;
                let k = st.key_mut(slot).expect("observed key is live");
                if iv > limit {
                    if !k.race_episode {
                        k.race_episode = true;
                        evidence.insert("kind".into(), json!("lease_race"));
                        evidence.insert("observed_interval_secs".into(), json!(iv / NANOS));
                        evidence.insert("lease_ttl_secs".into(), json!(ttl));
                        evidence.insert("max_refresh_ratio".into(), json!(ratio));
                        evidence.insert("expected_max_interval_secs".into(), json!(limit / NANOS));
                        if iv >= ttl as i64 * NANOS {
                            evidence.insert(
                                "escalation".into(),
                                json!("interval reached the full lease TTL"),
                            );
                        }
                        fire = true;
                    }
                } else {
                    k.race_episode = false;
                }
            }
        }
        if checks.contains(&CadenceCheck::Stale) {
            let k = st.key(slot).expect("observed key is live").1;
            let deadline = match k.learned_interval_secs() {
                Some(learned) if k.intervals_seen() >= stale_min_iv as u32 => {
                    let wait = (learned as f64 * stale_factor).max(stale_min as f64) as i64;
                    k.last_read + wait * NANOS
                }
                _ => 0,
            };
            st.set_deadline(slot, deadline);
        }
        fire
    }

    fn fire_stale(&mut self, i: usize, watermark: i64, out: &mut Vec<Alert>) {
        let RuleState::Cadence(st) = &mut self.states[i] else {
            return;
        };
        let due = st.due(watermark);
        let rule = &self.rules.rules[i];
        let Detector::Cadence { key, checks } = &rule.detector else {
            return;
        };
        if !checks.contains(&CadenceCheck::Stale) {
            return;
        }
        for slot in due {
            let Some((k, state)) = st.key(slot) else {
                continue;
            };
            let mut evidence = JsonMap::new();
            evidence.insert("kind".into(), json!("stale"));
            evidence.insert("last_read".into(), json!(format_rfc3339(state.last_read)));
            let learned = state.learned_interval_secs().unwrap_or(0);
            evidence.insert("learned_interval_secs".into(), json!(learned));
            evidence.insert(
                "silent_for_secs".into(),
                json!((state.deadline - state.last_read) / NANOS),
            );
            key_evidence(&mut evidence, key, k);
            let mut alert = bare_alert(rule, state.deadline, rule.severity, evidence);
            let values: Vec<&str> = k.split('\u{1f}').collect();
            for (f, v) in key.iter().zip(values) {
                if v.is_empty() {
                    continue;
                }
                match f {
                    Field::Path => alert.path = Some(v.to_string()),
                    Field::Tenant => alert.tenant = Some(v.to_string()),
                    Field::Namespace => alert.actor.namespace = Some(v.to_string()),
                    Field::DisplayName => alert.actor.display_name = Some(v.to_string()),
                    Field::ServiceAccount => alert.actor.service_account = Some(v.to_string()),
                    _ => {}
                }
            }
            if alert.tenant.is_none() {
                if let Some(ns) = &alert.actor.namespace {
                    alert.tenant = self.cfg.tenancy.namespace.iter().find_map(|re| {
                        re.captures(ns)
                            .and_then(|c| c.name("tenant"))
                            .map(|m| m.as_str().to_string())
                    });
                }
            }
            alert.summary = render(rule, &alert);
            out.push(alert);
        }
    }

    /// Severity, allow-list and suppression, then the record.
    fn finish_alert(
        &mut self,
        i: usize,
        rule: &Rule,
        ev: &Event<'_, '_>,
        mut evidence: JsonMap<String, Json>,
        target_override: Option<String>,
        floor: Option<Severity>,
    ) -> Option<Alert> {
        let mut severity = rule.severity;
        let mut scratch = Vec::new();
        for (cond, sev) in &rule.severity_when {
            if cond.eval(ev, &mut scratch) {
                severity = *sev;
                break;
            }
        }
        if let Some(f) = floor {
            severity = severity.max(f);
        }
        if let Some(name) = &rule.allow_list {
            if let Some(entry) = self
                .cfg
                .allow_lists
                .get(name)
                .and_then(|l| l.iter().find(|a| allow_matches(a, ev)))
            {
                self.stats.allow_listed += 1;
                match entry.action {
                    AllowAction::Silence => return None,
                    AllowAction::Info => {
                        severity = Severity::Info;
                        evidence.insert("allow_listed".into(), json!(name));
                    }
                }
            }
        }
        if let Some(s) = &rule.suppress {
            let k = key_string(ev, &s.key);
            let window = s.for_secs as i64 * NANOS;
            let table = &mut self.suppress[i];
            if let Some(&last) = table.get(k.as_str()) {
                if ev.time - last < window && ev.time >= last {
                    self.stats.suppressed_alerts += 1;
                    return None;
                }
            }
            if table.len() >= 100_000 {
                let horizon = ev.time - window;
                table.retain(|_, t| *t > horizon);
                if table.len() >= 100_000 {
                    table.clear();
                }
            }
            table.insert(k.into(), ev.time);
        }
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
            time_nanos: ev.time,
        };
        alert.summary = render(rule, &alert);
        Some(alert)
    }
}

fn allow_matches(a: &crate::config::AllowEntry, ev: &Event<'_, '_>) -> bool {
    let check = |g: &Option<crate::config::Glob>, v: Option<&str>| match g {
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

/// The state key of an event: the first value of each key field, joined by U+001F.
fn key_string(ev: &Event<'_, '_>, key: &[Field]) -> String {
    let mut s = String::new();
    for (n, f) in key.iter().enumerate() {
        if n > 0 {
            s.push('\u{1f}');
        }
        ev.any_value_first(f, &mut s);
    }
    s
}

fn key_evidence(evidence: &mut JsonMap<String, Json>, key: &[Field], k: &str) {
    if key.is_empty() {
        return;
    }
    let mut m = JsonMap::new();
    for (f, v) in key.iter().zip(k.split('\u{1f}')) {
        m.insert(f.name(), if v.is_empty() { Json::Null } else { json!(v) });
    }
    evidence.insert("key".into(), Json::Object(m));
}

/// An alert with no triggering entry (absence, stale).
fn bare_alert(
    rule: &Rule,
    time: i64,
    severity: Severity,
    mut evidence: JsonMap<String, Json>,
) -> Alert {
    for (k, v) in &rule.evidence {
        evidence.entry(k.clone()).or_insert(v.clone());
    }
    let mut a = Alert {
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
        time_nanos: time,
    };
    a.summary = render(rule, &a);
    a
}

/// Fill the rule's summary template (or its title) from the alert.
fn render(rule: &Rule, a: &Alert) -> String {
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
        let v: Option<String> = match name {
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
        };
        out.push_str(v.as_deref().unwrap_or("?"));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

impl Event<'_, '_> {
    fn any_value_first(&self, f: &Field, out: &mut String) {
        use crate::rules::condition::Fields;
        self.any_value(f, &mut |s| {
            out.push_str(s);
            true
        });
    }
}
