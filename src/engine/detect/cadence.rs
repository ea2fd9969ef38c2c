//! `cadence`: the rhythm of reads per key (an ESO identity and a path). Reads much faster
//! than usual are `too_frequent` (a loop); a dynamic credential refreshed slower than its
//! lease allows is a `lease_race`; a key silent for much longer than its learned interval
//! is `stale`, fired on the watermark once per silence. Thresholds come from the config's
//! `cadence` and `leases`. About a million keys fit in well under 256 MiB.
//!
//! Intervals (and so `too_frequent`, `lease_race` and the learned rhythm) are measured in
//! the stream's time: a lease runs out in real time, also while the stream is silent. The `stale` deadline runs on active time (`engine::clock`):
//! a stream-wide silence named as one finding does not count towards any key being quiet,
//! and the wall clock never moves it.
//!
//! With a rule's `group` block ([`super::group`]), keys coming due while every key of the
//! rule is quiet (the controller is down, the stream alive) are one finding of the group,
//! and the intervals and catch-up reads around that outage fire nothing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use serde_json::{json, Map as JsonMap, Value as Json};

use crate::alert::{Alert, Severity};
use crate::config::Config;
use crate::engine::build::{absence_id, bare_alert, entry_identity_hash, render};
use crate::engine::clock::ActiveTime;
use crate::engine::event::{Event, Outcome};
use crate::parse::time::format_rfc3339;
use crate::rules::condition::Field;
use crate::rules::{CadenceCheck, CadenceSpec, Rule};

use super::group::{GroupState, KeyView};
use super::window::{slide, Episode, NANOS};
use super::{key_evidence, key_string, Fired, StaleKeys};
use evidence as E;

/// The evidence a cadence alert carries, named once for the engine that writes it and the
/// readers of the record (the forensics report).
pub mod evidence {
    /// Which finding: one of the `KIND_*` values.
    pub const KIND: &str = "kind";
    pub const KIND_TOO_FREQUENT: &str = "too_frequent";
    pub const KIND_STALE: &str = "stale";
    pub const KIND_LEASE_RACE: &str = "lease_race";
    /// The state key's fields and values (`{namespace, path}` for the shipped rule).
    pub const KEY: &str = "key";
    pub const READS_IN_WINDOW: &str = "reads_in_window";
    pub const WINDOW_SECS: &str = "window_secs";
    pub const OBSERVED_INTERVAL_SECS: &str = "observed_interval_secs";
    pub const LEASE_TTL_SECS: &str = "lease_ttl_secs";
    pub const MAX_REFRESH_RATIO: &str = "max_refresh_ratio";
    pub const EXPECTED_MAX_INTERVAL_SECS: &str = "expected_max_interval_secs";
    pub const ESCALATION: &str = "escalation";
    pub const LAST_READ: &str = "last_read";
    pub const LEARNED_INTERVAL_SECS: &str = "learned_interval_secs";
    pub const SILENT_FOR_SECS: &str = "silent_for_secs";
    /// Of `silent_for_secs`, the stream-wide silence not counted (present when not 0).
    pub const CREDITED_SECS: &str = "credited_secs";
}

/// A `cadence` detector: its settings and its keys.
pub struct Cadence {
    spec: CadenceSpec,
    state: CadenceState,
}

impl Cadence {
    pub fn new(spec: CadenceSpec) -> Cadence {
        Cadence {
            spec,
            state: CadenceState::default(),
        }
    }

    pub fn adopt(&mut self, old: Cadence) {
        self.state = old.state;
    }

    /// Its state, for a snapshot.
    pub fn state(&self) -> &CadenceState {
        &self.state
    }

    /// Take a restored state.
    pub fn set_state(&mut self, state: CadenceState) {
        self.state = state;
    }

    pub fn evicted(&self) -> u64 {
        self.state.evicted
    }

    /// Whether this detector runs the `stale` check (the only timed one).
    pub fn checks_stale(&self) -> bool {
        self.spec.checks.contains(&CadenceCheck::Stale)
    }

    pub fn keys(&self) -> usize {
        self.state.len()
    }

    pub fn timers(&self) -> usize {
        self.state.timers()
    }

    /// A read of a key: too frequent or a lease race fire now; the stale deadline is
    /// (re)armed, in active time (`time`). Denied reads are not the rhythm of a working
    /// controller.
    pub fn observe(
        &mut self,
        ev: &Event<'_, '_>,
        cfg: &Config,
        time: &ActiveTime,
        evidence: &mut JsonMap<String, Json>,
    ) -> Option<Fired> {
        if ev.outcome != Outcome::Allowed {
            return None;
        }
        let key = key_string(ev, &self.spec.key);
        let checks = &self.spec.checks;
        let c = &cfg.cadence;
        let params = CadenceParams {
            duplicate_within: c.duplicate_within_secs as i64 * NANOS,
            frequent_window: c.too_frequent_window_secs as i64 * NANOS,
            frequent_min_reads: c.too_frequent_min_reads as usize,
            max_keys: c.max_keys as usize,
        };
        let st = &mut self.state;
        let entry = entry_identity_hash(ev);
        if self.spec.group.is_some() {
            st.group.read(ev.time, entry);
        }
        let (slot, obs) = st.observe(&key, ev.time, entry, &params);
        let catch_up = st.group.catching_up(ev.time, params.frequent_window);
        let mut fire = false;
        if checks.contains(&CadenceCheck::TooFrequent) && !catch_up {
            if let Some(n) = obs.too_frequent {
                evidence.insert(E::KIND.into(), json!(E::KIND_TOO_FREQUENT));
                evidence.insert(E::READS_IN_WINDOW.into(), json!(n));
                evidence.insert(E::WINDOW_SECS.into(), json!(params.frequent_window / NANOS));
                fire = true;
            }
        }
        let mut floor = None;
        if !fire && checks.contains(&CadenceCheck::LeaseRace) {
            let path = ev.entry.request.path.unwrap_or("");
            if let (Some(ttl), Some(iv)) = (cfg.leases.ttl_secs(path), obs.interval) {
                let ratio = cfg.leases.max_refresh_ratio;
                let limit = (ttl as f64 * ratio * NANOS as f64) as i64;
                let k = st.key_mut(slot).expect("observed key is live");
                if iv > limit {
                    if !k.race_episode {
                        k.race_episode = true;
                        evidence.insert(E::KIND.into(), json!(E::KIND_LEASE_RACE));
                        evidence.insert(E::OBSERVED_INTERVAL_SECS.into(), json!(iv / NANOS));
                        evidence.insert(E::LEASE_TTL_SECS.into(), json!(ttl));
                        evidence.insert(E::MAX_REFRESH_RATIO.into(), json!(ratio));
                        evidence.insert(E::EXPECTED_MAX_INTERVAL_SECS.into(), json!(limit / NANOS));
                        if iv >= ttl as i64 * NANOS {
                            evidence.insert(
                                E::ESCALATION.into(),
                                json!("interval reached the full lease TTL"),
                            );
                            floor = Some(Severity::High);
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
            let deadline = stale_wait(k, cfg).map_or(0, |wait| time.of(k.last_read) + wait);
            st.set_deadline(slot, deadline);
        }
        fire.then_some(Fired { floor })
    }

    /// `stale` alerts for keys whose deadline the active watermark `mark` has passed, once
    /// per silence; `time` maps active time back to the stream's for the record.
    pub fn fire_stale(
        &mut self,
        rule: &Rule,
        cfg: &Config,
        mark: i64,
        time: &ActiveTime,
        out: &mut Vec<Alert>,
    ) {
        if !self.spec.checks.contains(&CadenceCheck::Stale) {
            return;
        }
        let key = &self.spec.key;
        let st = &mut self.state;
        if let Some(g) = &self.spec.group {
            st.group.resolve(rule, out);
            let due = st.due(mark);
            if due.is_empty() {
                return;
            }
            if st.group.quiet(g, st.len(), mark, time) {
                let first = due
                    .iter()
                    .filter_map(|&s| st.key(s))
                    .map(|(_, k)| k.deadline);
                let at = time.stream(first.min().unwrap_or(mark));
                let keys = st.pages.iter().flatten().flatten().map(|(k, v)| KeyView {
                    key: k,
                    deadline: v.deadline,
                    last_read: v.last_read,
                    fired: v.stale_fired,
                });
                let n = due.len();
                st.group.fold(rule, cfg, g, key, at, n, keys, out);
                return;
            }
            return self.stale_alerts(rule, cfg, due, time, out);
        }
        let due = st.due(mark);
        self.stale_alerts(rule, cfg, due, time, out);
    }

    /// One `stale` finding per key of `due`.
    fn stale_alerts(
        &mut self,
        rule: &Rule,
        cfg: &Config,
        due: Vec<u32>,
        time: &ActiveTime,
        out: &mut Vec<Alert>,
    ) {
        let key = &self.spec.key;
        let st = &mut self.state;
        for slot in due {
            let Some((k, state)) = st.key(slot) else {
                continue;
            };
            let at = time.stream(state.deadline);
            let silent = at - state.last_read;
            let mut evidence = JsonMap::new();
            evidence.insert(E::KIND.into(), json!(E::KIND_STALE));
            evidence.insert(E::LAST_READ.into(), json!(format_rfc3339(state.last_read)));
            let learned = state.learned_interval_secs().unwrap_or(0);
            evidence.insert(E::LEARNED_INTERVAL_SECS.into(), json!(learned));
            evidence.insert(E::SILENT_FOR_SECS.into(), json!(silent / NANOS));
            if let Some(wait) = stale_wait(state, cfg).filter(|&w| silent - w >= NANOS) {
                evidence.insert(E::CREDITED_SECS.into(), json!((silent - wait) / NANOS));
            }
            key_evidence(&mut evidence, key, k);
            let id = absence_id(rule, k, state.last_entry);
            let mut alert = bare_alert(rule, id, at, rule.severity, evidence);
            for (f, v) in key.iter().zip(k.split('\u{1f}')) {
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
                    alert.tenant = cfg.tenancy.namespace.iter().find_map(|re| {
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

    /// Keys waiting for a `stale` verdict, and those of them whose deadline is at or before
    /// `at` (active time). One pass over the armed timers: called when a silence is named.
    pub fn stale_keys(&self, at: i64) -> StaleKeys {
        if !self.spec.checks.contains(&CadenceCheck::Stale) {
            return StaleKeys::default();
        }
        self.state.stale_keys(at)
    }
}

/// How long a key may stay quiet before it is stale (ns): max(factor x its learned
/// interval, `min_secs`), once `min_intervals` were seen; `None` before.
fn stale_wait(k: &CadenceKey, cfg: &Config) -> Option<i64> {
    let c = &cfg.cadence;
    let learned = k.learned_interval_secs()?;
    if k.intervals_seen() < c.stale_min_intervals as u32 {
        return None;
    }
    let wait = (learned as f64 * c.stale_factor).max(c.stale_min_secs as f64) as i64;
    Some(wait.saturating_mul(NANOS))
}

/// Cadence of reads per key.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct CadenceKey {
    /// Last read (any), ns.
    pub last_read: i64,
    /// The identity of the entry of the last read ([`entry_identity_hash`]): what names a
    /// `stale` finding, the same from every copy of the stream.
    pub last_entry: u64,
    /// Last read that was not a duplicate, ns.
    pub last_counted: i64,
    intervals: [u32; 8],
    n_intervals: u32,
    /// Reads within the too-frequent window, from the second read on (boxed: most keys
    /// hold none, and a million keys must fit in well under 256 MiB).
    #[allow(clippy::box_collection)] // 8 bytes inline instead of 32, a million times
    recent: Option<Box<VecDeque<i64>>>,
    frequent: Episode,
    pub race_episode: bool,
    pub stale_fired: bool,
    /// The stale deadline in force, ns (0: none).
    pub deadline: i64,
    timer_armed: bool,
}

impl CadenceKey {
    fn new(t: i64, entry: u64) -> CadenceKey {
        CadenceKey {
            last_read: t,
            last_entry: entry,
            last_counted: t,
            intervals: [0; 8],
            n_intervals: 0,
            recent: None,
            frequent: Episode::default(),
            race_episode: false,
            stale_fired: false,
            deadline: 0,
            timer_armed: false,
        }
    }

    /// Median of the recent non-duplicate intervals, in seconds.
    pub fn learned_interval_secs(&self) -> Option<u32> {
        let n = (self.n_intervals as usize).min(self.intervals.len());
        if n == 0 {
            return None;
        }
        let mut v: Vec<u32> = self.intervals[..n].to_vec();
        v.sort_unstable();
        Some(v[n / 2])
    }

    pub fn intervals_seen(&self) -> u32 {
        self.n_intervals
    }
}

/// What one read did to a cadence key.
#[derive(Debug, Default)]
pub struct CadenceObservation {
    /// Reads in the too-frequent window when a too-frequent episode starts.
    pub too_frequent: Option<usize>,
    /// The interval since the previous counted read, when the read was counted (ns).
    pub interval: Option<i64>,
    /// True when this is the first read of the key.
    pub new_key: bool,
}

/// Slots per page of the cadence table: pages never move, so the table grows without the
/// copy (and the doubled peak) of one big vector.
const PAGE: usize = 4096;

type Slot = Option<(Box<str>, CadenceKey)>;

/// Cadence keys, up to a cap of about a million in well under 256 MiB: each key's name is
/// stored once (the index holds only slot numbers, hashed by the name in the slot), slots
/// live in fixed pages, and a key read once holds no heap besides its name.
#[derive(Default)]
pub struct CadenceState {
    index: HashTable<u32>,
    hasher: RandomState,
    pages: Vec<Vec<Slot>>,
    /// Bumped when a slot's key is evicted, so its pending timers are ignored.
    gens: Vec<u32>,
    free: Vec<u32>,
    timers: BinaryHeap<Reverse<(i64, u32, u32)>>,
    pub evicted: u64,
    /// The heartbeat of all keys together (used with a rule's `group` block).
    pub group: Box<GroupState>,
}

fn slot_ref(pages: &[Vec<Slot>], s: u32) -> Option<&(Box<str>, CadenceKey)> {
    pages
        .get(s as usize / PAGE)?
        .get(s as usize % PAGE)?
        .as_ref()
}

pub struct CadenceParams {
    pub duplicate_within: i64,
    pub frequent_window: i64,
    pub frequent_min_reads: usize,
    pub max_keys: usize,
}

impl CadenceState {
    pub fn observe(
        &mut self,
        key: &str,
        t: i64,
        entry: u64,
        p: &CadenceParams,
    ) -> (u32, CadenceObservation) {
        let mut obs = CadenceObservation::default();
        let hash = self.hasher.hash_one(key);
        let pages = &self.pages;
        let found = self
            .index
            .find(hash, |&s| {
                slot_ref(pages, s).is_some_and(|(k, _)| &**k == key)
            })
            .copied();
        let slot = match found {
            Some(s) => s,
            None => {
                if self.index.len() >= p.max_keys {
                    self.evict_oldest();
                }
                obs.new_key = true;
                self.place(hash, Box::<str>::from(key), CadenceKey::new(t, entry))
            }
        };
        let (_, k) = self.pages[slot as usize / PAGE][slot as usize % PAGE]
            .as_mut()
            .expect("indexed slot is live");
        // A key read once keeps its one time in `last_read`, not in a heap-allocated
        // window: the window is filled in at the second read (the same contents the
        // window would have had).
        if obs.new_key && p.frequent_min_reads > 1 {
            k.stale_fired = false;
            return (slot, obs);
        }
        let first_read = k.last_read;
        let recent = k
            .recent
            .get_or_insert_with(|| Box::new(VecDeque::with_capacity(4)));
        if !obs.new_key && recent.is_empty() {
            recent.push_back(first_read);
        }
        if !obs.new_key {
            if t - k.last_counted > p.duplicate_within && self.group.spans(k.last_counted, t) {
                // Across the group's outage: neither the rhythm nor a lease race.
                k.last_counted = t;
            } else if t - k.last_counted > p.duplicate_within {
                let iv = t - k.last_counted;
                obs.interval = Some(iv);
                let secs = (iv / NANOS).clamp(0, u32::MAX as i64) as u32;
                let i = (k.n_intervals as usize) % k.intervals.len();
                k.intervals[i] = secs;
                k.n_intervals = k.n_intervals.saturating_add(1);
                k.last_counted = t;
            }
            if t >= k.last_read {
                k.last_read = t;
                k.last_entry = entry;
            }
        }
        k.stale_fired = false;
        let holds = slide(recent, t, p.frequent_window, p.frequent_min_reads);
        if k.frequent.update(holds, t, p.frequent_window) {
            obs.too_frequent = Some(recent.len());
        }
        (slot, obs)
    }

    /// Put a new key in a free slot (or a new one) and index it; its slot.
    fn place(&mut self, hash: u64, key: Box<str>, k: CadenceKey) -> u32 {
        let slot_entry = Some((key, k));
        let s = match self.free.pop() {
            Some(s) => {
                self.pages[s as usize / PAGE][s as usize % PAGE] = slot_entry;
                s
            }
            None => {
                if self.pages.last().is_none_or(|pg| pg.len() == PAGE) {
                    self.pages.push(Vec::with_capacity(PAGE));
                }
                let n = (self.pages.len() - 1) * PAGE;
                let pg = self.pages.last_mut().expect("a page with room");
                pg.push(slot_entry);
                self.gens.push(0);
                (n + pg.len() - 1) as u32
            }
        };
        let (pages, hasher) = (&self.pages, &self.hasher);
        self.index.insert_unique(hash, s, |&x| {
            slot_ref(pages, x).map_or(0, |(k, _)| hasher.hash_one(&**k))
        });
        s
    }

    /// A key read back from a snapshot: placed, and its stale timer armed again. A key
    /// already present (a damaged snapshot) is ignored.
    fn restore_key(&mut self, key: Box<str>, mut k: CadenceKey) {
        let hash = self.hasher.hash_one(&*key);
        let pages = &self.pages;
        if self
            .index
            .find(hash, |&s| {
                slot_ref(pages, s).is_some_and(|(x, _)| *x == key)
            })
            .is_some()
        {
            return;
        }
        let (armed, deadline) = (k.timer_armed, k.deadline);
        k.timer_armed = false;
        let slot = self.place(hash, key, k);
        if armed && deadline > 0 {
            self.set_deadline(slot, deadline);
        }
    }

    pub fn key(&self, slot: u32) -> Option<(&str, &CadenceKey)> {
        slot_ref(&self.pages, slot).map(|(k, v)| (&**k, v))
    }

    pub fn key_mut(&mut self, slot: u32) -> Option<&mut CadenceKey> {
        self.pages
            .get_mut(slot as usize / PAGE)?
            .get_mut(slot as usize % PAGE)?
            .as_mut()
            .map(|(_, v)| v)
    }

    /// Set the stale deadline of a key (0 disarms).
    pub fn set_deadline(&mut self, slot: u32, deadline: i64) {
        let generation = self.gens.get(slot as usize).copied().unwrap_or(0);
        let Some(k) = self.key_mut(slot) else { return };
        k.deadline = deadline;
        if deadline > 0 && !k.timer_armed {
            k.timer_armed = true;
            self.timers.push(Reverse((deadline, slot, generation)));
        }
    }

    /// Keys whose stale deadline is at or before `watermark`, each once per silence.
    pub fn due(&mut self, watermark: i64) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if at > watermark {
                break;
            }
            self.timers.pop();
            if self.gens.get(slot as usize) != Some(&generation) {
                continue;
            }
            let Some(k) = self.key_mut(slot) else {
                continue;
            };
            if k.deadline > at {
                // Re-armed later by a newer read: wait for that deadline.
                let d = k.deadline;
                self.timers.push(Reverse((d, slot, generation)));
                continue;
            }
            k.timer_armed = false;
            if k.deadline > 0 && !k.stale_fired {
                k.stale_fired = true;
                out.push(slot);
            }
        }
        out
    }

    fn evict_oldest(&mut self) {
        let mut lasts: Vec<i64> = self
            .pages
            .iter()
            .flatten()
            .flatten()
            .map(|(_, k)| k.last_read)
            .collect();
        if lasts.is_empty() {
            return;
        }
        let cut = lasts.len() / 10;
        let pivot = *lasts.select_nth_unstable(cut).1;
        let slots = self.pages.iter_mut().flat_map(|pg| pg.iter_mut());
        for (i, s) in slots.enumerate() {
            let Some((key, k)) = s else { continue };
            if k.last_read <= pivot {
                let hash = self.hasher.hash_one(&**key);
                if let Ok(e) = self.index.find_entry(hash, |&x| x as usize == i) {
                    e.remove();
                }
                *s = None;
                self.gens[i] = self.gens[i].wrapping_add(1);
                self.free.push(i as u32);
                self.evicted += 1;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn timers(&self) -> usize {
        self.timers.len()
    }

    /// Keys with a `stale` deadline in force, and those of them whose deadline is at or
    /// before `at`. Each armed key has one live timer (its generation's), so the timers
    /// are counted, not the keys.
    pub fn stale_keys(&self, at: i64) -> StaleKeys {
        let mut n = StaleKeys::default();
        for &Reverse((_, slot, generation)) in self.timers.iter() {
            if self.gens.get(slot as usize) != Some(&generation) {
                continue;
            }
            let Some((_, k)) = slot_ref(&self.pages, slot) else {
                continue;
            };
            if k.timer_armed && k.deadline > 0 && !k.stale_fired {
                n.watched += 1;
                if k.deadline <= at {
                    n.overdue += 1;
                }
            }
        }
        n
    }
}

/// A snapshot of the table holds its live keys (name and state) and the eviction count;
/// the index, the pages and the timers are built again on restore (a timer from each
/// armed key's deadline), so the layout in memory is free to change.
impl serde::Serialize for CadenceState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("CadenceState", 3)?;
        st.serialize_field("keys", &LiveKeys(self))?;
        st.serialize_field("evicted", &self.evicted)?;
        st.serialize_field("group", &self.group)?;
        st.end()
    }
}

struct LiveKeys<'a>(&'a CadenceState);

impl serde::Serialize for LiveKeys<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (key, k) in self.0.pages.iter().flatten().flatten() {
            seq.serialize_element(&(&**key, k))?;
        }
        seq.end()
    }
}

impl<'de> serde::Deserialize<'de> for CadenceState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename = "CadenceState")]
        struct Wire {
            keys: Restored,
            evicted: u64,
            group: Box<GroupState>,
        }
        let w = Wire::deserialize(d)?;
        let mut st = w.keys.0;
        st.evicted = w.evicted;
        st.group = w.group;
        Ok(st)
    }
}

/// Keys placed one by one as they are read (no second copy of a million keys).
struct Restored(CadenceState);

impl<'de> serde::Deserialize<'de> for Restored {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = Restored;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of cadence keys")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Restored, A::Error> {
                let mut st = CadenceState::default();
                while let Some((key, k)) = seq.next_element::<(Box<str>, CadenceKey)>()? {
                    st.restore_key(key, k);
                }
                Ok(Restored(st))
            }
        }
        d.deserialize_seq(Keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_keys_survive_eviction_and_pages_and_a_loop_is_found_from_its_second_read() {
        let p = CadenceParams {
            duplicate_within: 0,
            frequent_window: 300 * NANOS,
            frequent_min_reads: 3,
            max_keys: 10_000,
        };
        let mut c = CadenceState::default();
        // More keys than fit in two pages, then past the cap: the oldest tenth goes.
        for i in 0..10_000i64 {
            let (slot, obs) = c.observe(&format!("ns\0secret/data/k{i}"), i * NANOS, 0, &p);
            assert!(obs.new_key);
            assert_eq!(c.key(slot).unwrap().0, format!("ns\0secret/data/k{i}"));
        }
        assert_eq!(c.len(), 10_000);
        let (_, obs) = c.observe("ns\0secret/data/new", 20_000 * NANOS, 0, &p);
        assert!(obs.new_key);
        assert_eq!(c.evicted, 1_001);
        assert_eq!(c.len(), 10_000 - 1_001 + 1);
        // A survivor is found again (not new); an evicted key starts over.
        let (_, obs) = c.observe("ns\0secret/data/k9999", 20_001 * NANOS, 0, &p);
        assert!(!obs.new_key);
        assert_eq!(obs.interval, Some((20_001 - 9_999) * NANOS));
        let (_, obs) = c.observe("ns\0secret/data/k5", 20_002 * NANOS, 0, &p);
        assert!(obs.new_key);
        // Three reads in the window: too frequent at the third, the first read counted.
        let key = "ns\0secret/data/loop";
        let t0 = 30_000 * NANOS;
        assert!(c.observe(key, t0, 0, &p).1.too_frequent.is_none());
        assert!(c
            .observe(key, t0 + 5 * NANOS, 0, &p)
            .1
            .too_frequent
            .is_none());
        assert_eq!(
            c.observe(key, t0 + 10 * NANOS, 0, &p).1.too_frequent,
            Some(3)
        );
    }
}
