//! `hour_profile`: a key (a person) active in an hour of the week it was never active in,
//! once past its learning period. Complements the static business hours for people in
//! other time zones or on shifts: what is usual is learned per key.
//!
//! The profile is 168 bits, one per hour of the week (Monday 00:00 first) in the config's
//! `business_hours.time_zone` (so a daylight-saving change does not move anyone's working
//! day), learned from every matching entry. A slot counts as known when it, or one within
//! `tolerance_hours` either side, has history. A finding is learned too. State per key:
//! the key (at most `MAX_KEY_BYTES`) and 40 bytes; at most `max_keys` keys, past which the
//! least recently seen half goes, counted as evicted (an evicted key learns again, quiet).
//! The rule's `suppress` block makes it at most one finding per person per day.

use jiff::Timestamp;
use serde_json::{json, Map as JsonMap, Value as Json};

use crate::config::Config;
use crate::engine::event::Event;
use crate::parse::time::format_rfc3339;
use crate::rules::HourProfileSpec;

use super::window::{make_room, Map, NANOS};
use super::{key_evidence, key_string};

const SLOTS: usize = 168;
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// An `hour_profile` detector: its settings and its profiles.
pub struct HourProfile {
    spec: HourProfileSpec,
    state: HourProfileState,
}

impl HourProfile {
    pub fn new(spec: HourProfileSpec) -> HourProfile {
        HourProfile {
            spec,
            state: HourProfileState::default(),
        }
    }

    pub fn adopt(&mut self, old: HourProfile) {
        self.state = old.state;
    }

    pub fn state(&self) -> &HourProfileState {
        &self.state
    }

    pub fn set_state(&mut self, state: HourProfileState) {
        self.state = state;
    }

    pub fn evicted(&self) -> u64 {
        self.state.evicted
    }

    pub fn keys(&self) -> usize {
        self.state.keys.len()
    }

    pub fn observe(
        &mut self,
        ev: &Event<'_, '_>,
        cfg: &Config,
        evidence: &mut JsonMap<String, Json>,
    ) -> bool {
        let s = &self.spec;
        let key = key_string(ev, &s.key);
        if key.bytes().all(|b| b == 0x1f) {
            return false;
        }
        let Ok(ts) = Timestamp::from_nanosecond(ev.time as i128) else {
            return false;
        };
        let z = ts.to_zoned(cfg.business_hours.tz.clone());
        let day = z.weekday().to_monday_zero_offset() as usize;
        let slot = day * 24 + z.hour() as usize;
        let learn = s.learn_secs.unwrap_or(cfg.learning.period_secs) as i64 * NANOS;
        let alike = if s.workdays_alike {
            cfg.business_hours.days
        } else {
            [false; 7]
        };
        let judge = Judge {
            learn,
            tolerance: s.tolerance_hours as usize,
            alike,
        };
        let Some(p) = self.state.observe(&key, slot, ev.time, &judge, s.max_keys) else {
            return false;
        };
        evidence.insert("kind".into(), json!("unusual_hour"));
        evidence.insert(
            "local_time".into(),
            json!(z.strftime("%Y-%m-%dT%H:%M:%S%:z %a").to_string()),
        );
        evidence.insert("time_zone".into(), json!(cfg.business_hours.time_zone_name));
        evidence.insert(
            "hour_of_week".into(),
            json!(format!("{} {:02}:00", DAYS[day], slot % 24)),
        );
        evidence.insert("known_hours".into(), json!(p.known));
        evidence.insert("usual_hours".into(), json!(p.usual));
        evidence.insert("learn_secs".into(), json!(learn / NANOS));
        evidence.insert("key_first_seen".into(), json!(format_rfc3339(p.first)));
        key_evidence(evidence, &s.key, &key);
        true
    }
}

/// One key's hours: 168 bits (Monday 00:00 first) and when it was first and last seen.
#[derive(serde::Serialize, serde::Deserialize)]
struct Profile {
    first: i64,
    last: i64,
    slots: [u64; 3],
}

impl Profile {
    fn has(&self, slot: usize) -> bool {
        self.slots[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn set(&mut self, slot: usize) {
        self.slots[slot / 64] |= 1 << (slot % 64);
    }

    fn known(&self) -> u32 {
        self.slots.iter().map(|w| w.count_ones()).sum()
    }

    /// The hours with history, as `Mon 09-17`-style day ranges (evidence).
    fn usual(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (d, name) in DAYS.iter().enumerate() {
            let mut h = 0;
            while h < 24 {
                if !self.has(d * 24 + h) {
                    h += 1;
                    continue;
                }
                let start = h;
                while h < 24 && self.has(d * 24 + h) {
                    h += 1;
                }
                out.push(format!("{name} {start:02}-{h:02}"));
            }
        }
        out
    }
}

/// How a slot is judged.
pub struct Judge {
    /// The learning period (ns).
    pub learn: i64,
    /// Hours either side of a slot that make it known.
    pub tolerance: usize,
    /// Days (Monday first) whose hours are alike: a slot on one of them is known when the
    /// same hour (within the tolerance) has history on any of them.
    pub alike: [bool; 7],
}

impl Judge {
    fn known(&self, p: &Profile, slot: usize) -> bool {
        let day = slot / 24;
        let days: Vec<usize> = if self.alike[day] {
            (0..7).filter(|&d| self.alike[d]).collect()
        } else {
            vec![day]
        };
        let t = self.tolerance;
        days.iter().any(|&d| {
            (0..=2 * t)
                .map(|x| (d * 24 + slot % 24 + SLOTS + x - t) % SLOTS)
                .any(|s| p.has(s))
        })
    }
}

/// A finding: what the key's profile was.
pub struct Unusual {
    pub first: i64,
    pub known: u32,
    pub usual: Vec<String>,
}

/// Hour-of-week profiles per key.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct HourProfileState {
    keys: Map<Box<str>, Profile>,
    pub evicted: u64,
}

impl HourProfileState {
    /// Learn activity of `key` in `slot` at `t`; `Some` when the key is past its learning
    /// period and the slot is not known ([`Judge`]).
    pub fn observe(
        &mut self,
        key: &str,
        slot: usize,
        t: i64,
        judge: &Judge,
        max_keys: u64,
    ) -> Option<Unusual> {
        let slot = slot % SLOTS;
        if !self.keys.contains_key(key) {
            self.evicted += make_room(&mut self.keys, max_keys, i64::MIN, |p| p.last);
        }
        let p = self.keys.entry(key.into()).or_insert_with(|| Profile {
            first: t,
            last: t,
            slots: [0; 3],
        });
        p.first = p.first.min(t);
        p.last = p.last.max(t);
        let known = judge.known(p, slot);
        let learned = t >= p.first.saturating_add(judge.learn);
        let finding = (!known && learned).then(|| Unusual {
            first: p.first,
            known: p.known(),
            usual: p.usual(),
        });
        p.set(slot);
        finding
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600 * NANOS;
    const WEEK: i64 = 168 * HOUR;
    const J: Judge = Judge {
        learn: WEEK,
        tolerance: 1,
        alike: [false; 7],
    };

    #[test]
    fn a_slot_with_no_history_after_learning_is_a_finding_once() {
        let mut s = HourProfileState::default();
        // Two weeks of Monday-Friday 09:00-17:00 (time 0 is a Monday 00:00).
        for w in 0..2 {
            for d in 0..5 {
                for h in 9..17 {
                    let slot = d * 24 + h;
                    let t = w * WEEK + slot as i64 * HOUR;
                    assert!(s.observe("alice", slot, t, &J, 10).is_none());
                }
            }
        }
        // Usual days, a little early (tolerance 1): quiet.
        assert!(s.observe("alice", 8, 2 * WEEK + 8 * HOUR, &J, 10).is_none());
        // Saturday 03:00: a finding, then known.
        let sat = 5 * 24 + 3;
        let f = s
            .observe("alice", sat, 2 * WEEK + sat as i64 * HOUR, &J, 10)
            .expect("a finding");
        assert_eq!(f.usual[0], "Mon 08-17");
        assert!(s
            .observe("alice", sat, 3 * WEEK + sat as i64 * HOUR, &J, 10)
            .is_none());
        // A new person is learning: quiet at any hour.
        assert!(s.observe("bob", sat, 2 * WEEK, &J, 10).is_none());
    }

    /// With workdays alike, an hour worked on Monday is known on Thursday; Saturday keeps
    /// its own hours.
    #[test]
    fn workdays_alike_share_their_hours() {
        let judge = Judge {
            learn: WEEK,
            tolerance: 0,
            alike: [true, true, true, true, true, false, false],
        };
        let mut s = HourProfileState::default();
        let at = |day: usize, h: usize, week: i64| {
            (day * 24 + h, week * WEEK + (day * 24 + h) as i64 * HOUR)
        };
        let (slot, t) = at(0, 14, 0);
        assert!(s.observe("a", slot, t, &judge, 10).is_none());
        let (slot, t) = at(3, 14, 1);
        assert!(
            s.observe("a", slot, t, &judge, 10).is_none(),
            "Thursday 14:00"
        );
        let (slot, t) = at(3, 15, 1);
        assert!(
            s.observe("a", slot, t, &judge, 10).is_some(),
            "Thursday 15:00"
        );
        let (slot, t) = at(5, 14, 1);
        assert!(
            s.observe("a", slot, t, &judge, 10).is_some(),
            "Saturday 14:00"
        );
    }

    #[test]
    fn keys_are_bounded_and_evictions_counted() {
        let mut s = HourProfileState::default();
        for i in 0..100 {
            s.observe(&format!("k{i}"), 0, i as i64, &J, 10);
            assert!(s.len() <= 10);
        }
        assert!(s.evicted >= 90);
    }
}
