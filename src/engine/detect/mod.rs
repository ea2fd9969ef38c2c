//! The detectors, one file per kind. Each kind is one type that owns its settings (from
//! the rule's `detector` block) and its state, so the state moves with the detector: on a
//! reload, a rule whose id and kind are unchanged keeps its state under its new settings.
//! A detector sees an event and says whether it fires (with its evidence); the stateful
//! ones also fire as time moves: absence on the watermark or the wall clock's mark (a
//! silence of the stream), cadence `stale` on active time only (`engine::clock`), so a
//! silence of the whole stream is one finding, not one per key. Nothing here reads a
//! clock: times are passed in.

pub mod absence;
pub mod cadence;
pub mod clock_skew;
pub mod count;
pub mod distinct;
pub mod first_seen;
pub mod group;
pub mod hour_profile;
pub mod hours;
pub mod tenant;
pub mod token_origin;
pub mod window;
pub mod wrap_token;

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::alert::{Alert, Severity};
use crate::config::Config;
use crate::rules::condition::{Field, Fields};
use crate::rules::{self, Rule};

use super::clock::ActiveTime;
use super::event::Event;
use super::TableSizes;
pub use window::{Map, NANOS};

/// Cadence keys waiting for a `stale` verdict when a silence of the stream began: the
/// evidence of that one finding ([`absence::WATCHED_KEYS`], [`absence::OVERDUE_KEYS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StaleKeys {
    /// Keys with a `stale` deadline in force.
    pub watched: usize,
    /// Of those, the keys whose deadline had passed by the silence's time.
    pub overdue: usize,
}

impl std::ops::Add for StaleKeys {
    type Output = StaleKeys;
    fn add(self, o: StaleKeys) -> StaleKeys {
        StaleKeys {
            watched: self.watched + o.watched,
            overdue: self.overdue + o.overdue,
        }
    }
}

/// A detector that fired on an event.
#[derive(Default)]
pub struct Fired {
    /// The severity may not be lower than this (an escalation).
    pub floor: Option<Severity>,
}

/// One rule's detector: its settings and its state.
pub enum Detector {
    Match,
    TenantMismatch,
    TimeWindow,
    Count(count::Count),
    Distinct(distinct::Distinct),
    Cadence(cadence::Cadence),
    Absence(absence::Absence),
    ClockSkew(clock_skew::ClockSkew),
    TokenOrigin(token_origin::TokenOrigin),
    WrapToken(wrap_token::WrapToken),
    FirstSeen(first_seen::FirstSeen),
    HourProfile(hour_profile::HourProfile),
}

impl Detector {
    /// A fresh detector for a rule's settings.
    pub fn new(spec: &rules::Detector) -> Detector {
        match spec {
            rules::Detector::Match => Detector::Match,
            rules::Detector::TenantMismatch => Detector::TenantMismatch,
            rules::Detector::TimeWindow => Detector::TimeWindow,
            rules::Detector::Count(s) => Detector::Count(count::Count::new(s.clone())),
            rules::Detector::Distinct(s) => Detector::Distinct(distinct::Distinct::new(s.clone())),
            rules::Detector::Cadence(s) => Detector::Cadence(cadence::Cadence::new(s.clone())),
            rules::Detector::Absence(s) => Detector::Absence(absence::Absence::new(s.clone())),
            rules::Detector::ClockSkew(s) => {
                Detector::ClockSkew(clock_skew::ClockSkew::new(s.clone()))
            }
            rules::Detector::TokenOrigin(s) => {
                Detector::TokenOrigin(token_origin::TokenOrigin::new(s.clone()))
            }
            rules::Detector::WrapToken(s) => {
                Detector::WrapToken(wrap_token::WrapToken::new(s.clone()))
            }
            rules::Detector::FirstSeen(s) => {
                Detector::FirstSeen(first_seen::FirstSeen::new(s.clone()))
            }
            rules::Detector::HourProfile(s) => {
                Detector::HourProfile(hour_profile::HourProfile::new(s.clone()))
            }
        }
    }

    /// Take over `old`'s state when it is of the same kind (a reload); false otherwise.
    pub fn adopt(&mut self, old: Detector) -> bool {
        match (self, old) {
            (Detector::Match, Detector::Match)
            | (Detector::TenantMismatch, Detector::TenantMismatch)
            | (Detector::TimeWindow, Detector::TimeWindow) => true,
            (Detector::Count(new), Detector::Count(old)) => {
                new.adopt(old);
                true
            }
            (Detector::Distinct(new), Detector::Distinct(old)) => {
                new.adopt(old);
                true
            }
            (Detector::Cadence(new), Detector::Cadence(old)) => {
                new.adopt(old);
                true
            }
            (Detector::Absence(new), Detector::Absence(old)) => {
                new.adopt(old);
                true
            }
            (Detector::ClockSkew(new), Detector::ClockSkew(old)) => {
                new.adopt(old);
                true
            }
            (Detector::TokenOrigin(new), Detector::TokenOrigin(old)) => {
                new.adopt(old);
                true
            }
            (Detector::WrapToken(new), Detector::WrapToken(old)) => {
                new.adopt(old);
                true
            }
            (Detector::FirstSeen(new), Detector::FirstSeen(old)) => {
                new.adopt(old);
                true
            }
            (Detector::HourProfile(new), Detector::HourProfile(old)) => {
                new.adopt(old);
                true
            }
            _ => false,
        }
    }

    /// Judge an event the rule's condition selected; `Some` when the detector fires, with
    /// its evidence added to `evidence`. `time` maps the stream's time to active time.
    pub fn observe(
        &mut self,
        ev: &Event<'_, '_>,
        cfg: &Config,
        time: &ActiveTime,
        evidence: &mut JsonMap<String, Json>,
    ) -> Option<Fired> {
        if ev.skew.is_some() && !self.time_free() {
            // Its time cannot be placed in a window or against a timer.
            return None;
        }
        let fired = match self {
            Detector::Match => true,
            Detector::TenantMismatch => tenant::observe(ev, evidence),
            Detector::TimeWindow => hours::observe(ev, cfg, evidence),
            Detector::Count(d) => d.observe(ev, evidence),
            Detector::Distinct(d) => d.observe(ev, evidence),
            Detector::Cadence(d) => return d.observe(ev, cfg, time, evidence),
            Detector::Absence(d) => {
                d.observe(ev);
                false
            }
            Detector::ClockSkew(d) => d.observe(ev, evidence),
            Detector::TokenOrigin(d) => return d.observe(ev, cfg, evidence),
            Detector::WrapToken(d) => return d.observe(ev, evidence),
            Detector::FirstSeen(d) => d.observe(ev, cfg, evidence),
            Detector::HourProfile(d) => d.observe(ev, cfg, evidence),
        };
        fired.then(Fired::default)
    }

    /// Whether this detector judges an entry by itself, with no state kept by event time:
    /// only these see an entry whose time is clock skew.
    pub fn time_free(&self) -> bool {
        matches!(
            self,
            Detector::Match
                | Detector::TenantMismatch
                | Detector::TimeWindow
                | Detector::ClockSkew(_)
        )
    }

    /// Whether this detector fires as time moves: absence (on the watermark or the wall
    /// clock's mark) or a cadence `stale` check (on active time).
    pub fn timed(&self) -> bool {
        match self {
            Detector::Absence(_) => true,
            Detector::Cadence(d) => d.checks_stale(),
            _ => false,
        }
    }

    /// Cadence: `stale` findings for keys whose deadline the active watermark `mark` has
    /// passed. Nothing for other kinds.
    pub fn fire_stale(
        &mut self,
        rule: &Rule,
        cfg: &Config,
        mark: i64,
        time: &ActiveTime,
        out: &mut Vec<Alert>,
    ) {
        if let Detector::Cadence(d) = self {
            d.fire_stale(rule, cfg, mark, time, out);
        }
    }

    /// Cadence: the keys waiting for a `stale` verdict, and those overdue by `at` (active
    /// time). Nothing for other kinds.
    pub fn stale_keys(&self, at: i64) -> StaleKeys {
        match self {
            Detector::Cadence(d) => d.stale_keys(at),
            _ => StaleKeys::default(),
        }
    }

    /// Keys evicted from this detector's tables to stay within their caps.
    pub fn evicted(&self) -> u64 {
        match self {
            Detector::Count(d) => d.evicted(),
            Detector::Distinct(d) => d.evicted(),
            Detector::Cadence(d) => d.evicted(),
            Detector::TokenOrigin(d) => d.evicted(),
            Detector::WrapToken(d) => d.evicted(),
            Detector::FirstSeen(d) => d.evicted(),
            Detector::HourProfile(d) => d.evicted(),
            _ => 0,
        }
    }

    /// Add this detector's table sizes.
    pub fn sizes(&self, t: &mut TableSizes) {
        match self {
            Detector::Count(d) => t.count_keys += d.keys(),
            Detector::Distinct(d) => t.distinct_keys += d.keys(),
            Detector::Cadence(d) => {
                t.cadence_keys += d.keys();
                t.cadence_timers += d.timers();
            }
            Detector::TokenOrigin(d) => t.token_keys += d.keys(),
            Detector::WrapToken(d) => t.token_keys += d.keys(),
            _ => {}
        }
    }
}

/// The longest state key or value kept: client-chosen strings (paths, display names) are
/// cut to this and made unique again by a hash, so a table of `max_keys` keys is bounded in
/// bytes too.
pub const MAX_KEY_BYTES: usize = 512;

/// `s`, or, when longer than [`MAX_KEY_BYTES`], its head and a hash of the whole.
pub fn bounded(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_KEY_BYTES {
        return std::borrow::Cow::Borrowed(s);
    }
    use std::hash::BuildHasher;
    let hash = foldhash::fast::FixedState::with_seed(0x6b65_7973).hash_one(s);
    let mut cut = MAX_KEY_BYTES - 17;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    std::borrow::Cow::Owned(format!("{}#{hash:016x}", &s[..cut]))
}

/// The state key of an event: the first value of each key field, joined by U+001F, at
/// most [`MAX_KEY_BYTES`] (see [`bounded`]).
pub fn key_string(ev: &Event<'_, '_>, key: &[Field]) -> String {
    key_string_with(ev, key, |_| None)
}

/// As [`key_string`], with `value` giving the value of a field that has one of its own (a
/// normalised path); the entry's value otherwise.
pub fn key_string_with(
    ev: &Event<'_, '_>,
    key: &[Field],
    value: impl Fn(&Field) -> Option<String>,
) -> String {
    let mut s = String::new();
    for (n, f) in key.iter().enumerate() {
        if n > 0 {
            s.push('\u{1f}');
        }
        if let Some(v) = value(f) {
            s.push_str(&v);
            continue;
        }
        ev.any_value(f, &mut |v| {
            s.push_str(v);
            true
        });
    }
    match bounded(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(cut) => cut,
    }
}

/// The key's fields and values as `evidence.key`.
pub fn key_evidence(evidence: &mut JsonMap<String, Json>, key: &[Field], k: &str) {
    if key.is_empty() {
        return;
    }
    let mut m = JsonMap::new();
    for (f, v) in key.iter().zip(k.split('\u{1f}')) {
        m.insert(f.name(), if v.is_empty() { Json::Null } else { json!(v) });
    }
    evidence.insert(cadence::evidence::KEY.into(), Json::Object(m));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_key_is_cut_and_stays_unique() {
        let a = "p/".repeat(10_000);
        let b = format!("{a}x");
        let (ka, kb) = (bounded(&a), bounded(&b));
        assert!(ka.len() <= MAX_KEY_BYTES && kb.len() <= MAX_KEY_BYTES);
        assert_ne!(ka, kb, "a hash of the whole keeps them apart");
        assert_eq!(bounded("short"), "short");
        let wide = "é".repeat(400);
        assert!(
            bounded(&wide).len() <= MAX_KEY_BYTES,
            "cut on a char boundary"
        );
    }
}
