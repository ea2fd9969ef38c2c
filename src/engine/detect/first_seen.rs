//! `first_seen`: a value a key never had, once both are past their learning period (an
//! identity reading a secret it never touched; a human in a secret only machines read).
//!
//! A key (an identity, a path) learns every value it is seen with; a value (a path, an
//! identity class) is also learned across all keys. A key's learning period runs from its
//! first entry, a value's from the first entry of anyone with it, both `learn_secs` of
//! event time (the config's `learning.period_secs` unless the rule pins it): nothing fires
//! while either is still learning, so a new identity, a new tenant's paths and the first
//! week of a new deployment are quiet. A finding is learned too: the same pairing fires once.
//!
//! Bounded in count and bytes: keys are strings of at most `MAX_KEY_BYTES`, values are kept
//! as 64-bit hashes of their normalised form (8 bytes, whatever the path's length), at most
//! `max_keys` keys, `max_values` (key, value) pairs in all and as many distinct values,
//! `max_values_per_key` per key. Past a bound the least recently seen half goes (whole keys,
//! a key's values, or values), each one counted as evicted: an evicted key or value starts
//! learning again (quiet), never fires by being forgotten.

use std::borrow::Cow;
use std::hash::BuildHasher;

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::config::Config;
use crate::engine::event::Event;
use crate::parse::time::format_rfc3339;
use crate::rules::condition::{Field, Fields};
use crate::rules::learned::kv_secret;
use crate::rules::{FirstSeenSpec, Normalise};

use super::window::{evict_older_half, make_room, older_half_pivot, Map, NANOS};
use super::{bounded, key_evidence, key_string, key_string_with};

/// A `first_seen` detector: its settings and what it learned.
pub struct FirstSeen {
    spec: FirstSeenSpec,
    state: FirstSeenState,
}

/// The bounds of a state table, from the rule's settings.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_keys: u64,
    pub max_values: u64,
    pub max_values_per_key: u64,
}

impl FirstSeen {
    pub fn new(spec: FirstSeenSpec) -> FirstSeen {
        FirstSeen {
            spec,
            state: FirstSeenState::default(),
        }
    }

    pub fn adopt(&mut self, old: FirstSeen) {
        self.state = old.state;
    }

    pub fn state(&self) -> &FirstSeenState {
        &self.state
    }

    pub fn set_state(&mut self, state: FirstSeenState) {
        self.state = state;
    }

    pub fn evicted(&self) -> u64 {
        self.state.evicted
    }

    pub fn keys(&self) -> usize {
        self.state.keys.len()
    }

    /// Learn the event's values for its key; true (with evidence) when one of them is new
    /// for a key and a value both past their learning period, and is one `fire_on` names.
    pub fn observe(
        &mut self,
        ev: &Event<'_, '_>,
        cfg: &Config,
        evidence: &mut JsonMap<String, Json>,
    ) -> bool {
        let s = &self.spec;
        let mount = ev.entry.request.mount_point;
        let key = if s.normalise == Normalise::KvSecret {
            // A path in the key names its secret too.
            let path = ev.entry.request.path.unwrap_or("");
            key_string_with(ev, &s.key, |f| {
                (*f == Field::Path).then(|| kv_secret(path, mount).into_owned())
            })
        } else {
            key_string(ev, &s.key)
        };
        if key.bytes().all(|b| b == 0x1f) {
            // No field of the key: nobody to learn about.
            return false;
        }
        let mut values: Vec<String> = Vec::new();
        ev.any_value(&s.value, &mut |v| {
            let v = match s.normalise {
                Normalise::KvSecret => kv_secret(v, mount),
                Normalise::None => Cow::Borrowed(v),
            };
            values.push(bounded(&v).into_owned());
            false
        });
        let learn = s.learn_secs.unwrap_or(cfg.learning.period_secs) as i64 * NANOS;
        let limits = Limits {
            max_keys: s.max_keys,
            max_values: s.max_values,
            max_values_per_key: s.max_values_per_key,
        };
        let mut fired: Option<(String, New)> = None;
        for v in values {
            let value_learn = if s.learn_values { learn } else { 0 };
            let Some(new) = self
                .state
                .observe(&key, &v, ev.time, learn, value_learn, limits)
            else {
                continue;
            };
            let wanted = s.fire_on.is_empty() || s.fire_on.contains(&v);
            if wanted && fired.is_none() {
                fired = Some((v, new));
            }
        }
        let Some((value, new)) = fired else {
            return false;
        };
        evidence.insert("kind".into(), json!("first_seen"));
        evidence.insert("field".into(), json!(s.value.name()));
        evidence.insert("value".into(), json!(value));
        evidence.insert("learn_secs".into(), json!(learn / NANOS));
        evidence.insert(
            "key_first_seen".into(),
            json!(format_rfc3339(new.key_first)),
        );
        evidence.insert("known_values".into(), json!(new.known_values));
        key_evidence(evidence, &s.key, &key);
        true
    }
}

/// A new pairing past learning: what its key was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct New {
    /// The key's first event time.
    pub key_first: i64,
    /// The values the key knew before this one.
    pub known_values: usize,
}

/// First and last event time something was seen.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    pub first: i64,
    pub last: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SeenKey {
    seen: Seen,
    /// Value hash to the last time the key was seen with it.
    values: Map<u64, i64>,
}

/// What a `first_seen` detector learned: keys with their values, and every value.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct FirstSeenState {
    keys: Map<Box<str>, SeenKey>,
    values: Map<u64, Seen>,
    /// (key, value) pairs held, all keys together.
    pairs: u64,
    pub evicted: u64,
}

/// The hash a value is kept as: fixed, so a snapshot means the same after a restart.
fn value_hash(v: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6669_7273_745f_7365).hash_one(v)
}

impl FirstSeenState {
    /// Learn `value` for `key` at `t`. `Some` when the pairing is new while the key is past
    /// its learning period `learn` and the value past its own, `value_learn` (ns).
    pub fn observe(
        &mut self,
        key: &str,
        value: &str,
        t: i64,
        learn: i64,
        value_learn: i64,
        lim: Limits,
    ) -> Option<New> {
        let h = value_hash(value);
        let value_seen = self.learn_value(h, t, lim);
        if !self.keys.contains_key(key) {
            self.make_room_for_key(lim);
        }
        if self.pairs >= lim.max_values
            && !self
                .keys
                .get(key)
                .is_some_and(|k| k.values.contains_key(&h))
        {
            self.evict_keys();
        }
        let k = self.keys.entry(key.into()).or_insert_with(|| SeenKey {
            seen: Seen { first: t, last: t },
            values: Map::default(),
        });
        k.seen.first = k.seen.first.min(t);
        k.seen.last = k.seen.last.max(t);
        if let Some(last) = k.values.get_mut(&h) {
            *last = (*last).max(t);
            return None;
        }
        let known = k.values.len();
        if known as u64 >= lim.max_values_per_key {
            let gone = evict_older_half(&mut k.values, |last| *last);
            self.evicted += gone;
            self.pairs -= gone;
        }
        k.values.insert(h, t);
        self.pairs += 1;
        let learned = t >= k.seen.first.saturating_add(learn)
            && t >= value_seen.first.saturating_add(value_learn);
        learned.then_some(New {
            key_first: k.seen.first,
            known_values: known,
        })
    }

    /// Record a value across keys; what it was before (or now, when new).
    fn learn_value(&mut self, h: u64, t: i64, lim: Limits) -> Seen {
        if let Some(v) = self.values.get_mut(&h) {
            let before = *v;
            v.first = v.first.min(t);
            v.last = v.last.max(t);
            return before;
        }
        self.evicted += make_room(&mut self.values, lim.max_values, i64::MIN, |v| v.last);
        let seen = Seen { first: t, last: t };
        self.values.insert(h, seen);
        seen
    }

    fn make_room_for_key(&mut self, lim: Limits) {
        if (self.keys.len() as u64) < lim.max_keys {
            return;
        }
        self.evict_keys();
    }

    /// The least recently seen half of the keys goes, with their values.
    fn evict_keys(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let pivot = older_half_pivot(self.keys.values().map(|k| k.seen.last).collect());
        let before = self.keys.len();
        let mut dropped_pairs = 0;
        self.keys.retain(|_, k| {
            let keep = k.seen.last > pivot;
            if !keep {
                dropped_pairs += k.values.len() as u64;
            }
            keep
        });
        self.pairs -= dropped_pairs;
        self.evicted += (before - self.keys.len()) as u64;
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// (key, value) pairs held.
    pub fn pairs(&self) -> u64 {
        self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::detect::Detector;

    const DAY: i64 = 86_400 * NANOS;
    const LIM: Limits = Limits {
        max_keys: 100,
        max_values: 1000,
        max_values_per_key: 100,
    };

    #[test]
    fn nothing_fires_while_the_key_or_the_value_is_learning() {
        let mut s = FirstSeenState::default();
        let learn = 7 * DAY;
        // Day 0..8: alice reads a; bob reads b from day 0.
        for d in 0..8 {
            assert!(s
                .observe("alice", "a", d * DAY, learn, learn, LIM)
                .is_none());
            assert!(s.observe("bob", "b", d * DAY, learn, learn, LIM).is_none());
        }
        // A value new to alice, known to everyone for a week: fires, once.
        let hit = s
            .observe("alice", "b", 8 * DAY, learn, learn, LIM)
            .expect("fires");
        assert_eq!((hit.key_first, hit.known_values), (0, 1));
        assert!(s
            .observe("alice", "b", 9 * DAY, learn, learn, LIM)
            .is_none());
        // A value nobody had (a new tenant's path): learning, quiet for a week.
        assert!(s
            .observe("alice", "c", 9 * DAY, learn, learn, LIM)
            .is_none());
        assert!(s.observe("bob", "c", 15 * DAY, learn, learn, LIM).is_none());
        assert!(s
            .observe("bob", "c2", 16 * DAY, learn, learn, LIM)
            .is_none());
        assert!(s.observe("bob", "a", 17 * DAY, learn, learn, LIM).is_some());
        // A key nobody saw (a new hire): learning, quiet for a week.
        assert!(s
            .observe("carol", "a", 17 * DAY, learn, learn, LIM)
            .is_none());
        assert!(s
            .observe("carol", "b", 20 * DAY, learn, learn, LIM)
            .is_none());
        assert!(s
            .observe("carol", "c", 25 * DAY, learn, learn, LIM)
            .is_some());
    }

    /// A line of `who` reading `path` at `t` seconds.
    fn line(who: &str, path: &str, t: i64, id: &str) -> String {
        format!(
            r#"{{"time":"{}","type":"response","auth":{{"display_name":"{who}","entity_id":"e-{who}","policies":["default"]}},"request":{{"id":"{id}","operation":"read","mount_type":"kv","path":"{path}"}},"response":{{}}}}"#,
            format_rfc3339(t * NANOS)
        )
    }

    fn feed(e: &mut crate::engine::Engine, lines: &[String]) -> Vec<crate::alert::Alert> {
        let mut out = Vec::new();
        let mut p = crate::parse::Parser::new("");
        for l in lines {
            p.parse(l.as_bytes(), |_, r| {
                e.process(&r.expect("a test entry"), Some(l.as_bytes()), &mut out)
            });
        }
        out
    }

    /// A snapshot taken in the middle of the learning period and restored into a new
    /// engine: the restored engine raises what the uninterrupted one raises (its keys
    /// learned since before the snapshot), and a fresh engine would not (it learns again).
    /// Also measures the snapshot's size per learned (identity, secret) pair.
    #[test]
    fn a_snapshot_in_the_learning_period_keeps_what_was_learned() {
        use std::sync::Arc;
        let cfg = Arc::new(
            crate::config::Config::from_yaml_str("c", "learning: {period_secs: 86400}\n").unwrap(),
        );
        let rules = Arc::new(crate::rules::RuleSet::embedded().only("first-seen-access"));
        let t0 = 1_772_409_600; // a Monday 00:00 UTC
                                // 100 people reading 10 secrets of their team each, every 2 hours for 30 hours; at
                                // 28 h person 0 reads a secret of team 1.
        let mut lines = Vec::new();
        for h in (0..30).step_by(2) {
            for p in 0..100 {
                for s in 0..10 {
                    let t = t0 + h * 3600 + p * 10 + s;
                    let path = format!("secret/data/team{}/s{s}", p % 10);
                    lines.push(line(
                        &format!("oidc-p{p}"),
                        &path,
                        t,
                        &format!("r-{h}-{p}-{s}"),
                    ));
                }
            }
            if h == 28 {
                let t = t0 + h * 3600 + 500;
                lines.push(line("oidc-p0", "secret/data/team1/s3", t, "the-one"));
            }
        }
        let mut whole = crate::engine::Engine::new(cfg.clone(), rules.clone());
        let expected = feed(&mut whole, &lines);
        let ids = |v: &[crate::alert::Alert]| v.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            expected
                .iter()
                .map(|a| a.request_id.clone())
                .collect::<Vec<_>>(),
            [Some("the-one".to_string())]
        );
        // Cut at 12 h, in the learning period.
        let cut = 6 * 100 * 10;
        let mut first = crate::engine::Engine::new(cfg.clone(), rules.clone());
        let mut got = feed(&mut first, &lines[..cut]);
        let bytes = postcard::to_stdvec(&first.save_state()).unwrap();
        let mut second = crate::engine::Engine::new(cfg.clone(), rules.clone());
        second.restore_state(postcard::from_bytes(&bytes).unwrap());
        got.extend(feed(&mut second, &lines[cut..]));
        assert_eq!(ids(&got), ids(&expected));
        let mut fresh = crate::engine::Engine::new(cfg.clone(), rules.clone());
        assert!(
            feed(&mut fresh, &lines[cut..]).is_empty(),
            "without the snapshot, the finding is in a new learning period"
        );
        // Size of the detector's part of the snapshot: 100 identities x 10 secrets.
        let Detector::FirstSeen(d) = &whole.state.rules[0].detector else {
            panic!("a first_seen detector")
        };
        let bytes = postcard::to_stdvec(d.state()).unwrap().len();
        let (keys, pairs) = (d.state().len(), d.state().pairs());
        assert_eq!((keys, pairs), (100, 100 * 10 + 1));
        println!(
            "first_seen snapshot: {bytes} bytes for {keys} identities, {pairs} (identity, \
             secret) pairs and 100 secrets: {:.0} bytes per identity, {:.1} per pair",
            bytes as f64 / keys as f64,
            bytes as f64 / pairs as f64
        );
        assert!(bytes < 64 * pairs as usize, "{bytes}");
    }

    #[test]
    fn the_tables_stay_within_their_bounds_and_count_what_goes() {
        let lim = Limits {
            max_keys: 10,
            max_values: 50,
            max_values_per_key: 8,
        };
        let mut s = FirstSeenState::default();
        for i in 0..1000i64 {
            let key = format!("k{}", i % 37);
            s.observe(&key, &format!("v{}", i % 101), i * NANOS, DAY, DAY, lim);
            assert!(s.keys.len() <= 10, "{}", s.keys.len());
            assert!(s.values.len() <= 50);
            assert!(s.pairs <= 50);
            assert!(s.keys.values().all(|k| k.values.len() <= 8));
            let pairs: usize = s.keys.values().map(|k| k.values.len()).sum();
            assert_eq!(pairs as u64, s.pairs);
        }
        assert!(s.evicted > 0);
    }
}
