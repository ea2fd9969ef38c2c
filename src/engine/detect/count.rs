//! `count`: at least `threshold` matching entries per key within `window_secs` of event
//! time; one alert per episode. Keys are bounded by `max_keys`: past it, keys idle for a
//! window go, then the least recently seen half (counted as evicted, never silent).

use std::collections::VecDeque;

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::engine::event::Event;
use crate::rules::CountSpec;

use super::window::{make_room, slide, Episode, Map, NANOS};
use super::{key_evidence, key_string};

/// A `count` detector: its settings and its per-key windows.
pub struct Count {
    spec: CountSpec,
    state: CountState,
}

impl Count {
    pub fn new(spec: CountSpec) -> Count {
        Count {
            spec,
            state: CountState::default(),
        }
    }

    pub fn adopt(&mut self, old: Count) {
        self.state = old.state;
    }

    pub fn observe(&mut self, ev: &Event<'_, '_>, evidence: &mut JsonMap<String, Json>) -> bool {
        let s = &self.spec;
        let k = key_string(ev, &s.key);
        match self
            .state
            .observe(&k, ev.time, s.window_secs, s.threshold, s.max_keys)
        {
            Some(n) => {
                evidence.insert("count".into(), json!(n));
                evidence.insert("window_secs".into(), json!(s.window_secs));
                evidence.insert("threshold".into(), json!(s.threshold));
                key_evidence(evidence, &s.key, &k);
                true
            }
            None => false,
        }
    }

    pub fn evicted(&self) -> u64 {
        self.state.evicted
    }

    /// Its state, for a snapshot.
    pub fn state(&self) -> &CountState {
        &self.state
    }

    /// Take a restored state.
    pub fn set_state(&mut self, state: CountState) {
        self.state = state;
    }

    pub fn keys(&self) -> usize {
        self.state.len()
    }
}

/// Count-in-window per key: one alert per episode (the condition holding continuously).
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct CountState {
    keys: Map<Box<str>, CountKey>,
    pub evicted: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CountKey {
    times: VecDeque<i64>,
    episode: Episode,
    last: i64,
}

impl CountState {
    /// Record an event; `Some(count)` when a new episode starts.
    pub fn observe(
        &mut self,
        key: &str,
        t: i64,
        window_secs: u64,
        threshold: u64,
        max_keys: u64,
    ) -> Option<usize> {
        let window = window_secs as i64 * NANOS;
        if !self.keys.contains_key(key) {
            self.evicted += make_room(&mut self.keys, max_keys, t - window, |k| k.last);
        }
        let k = self.keys.entry(key.into()).or_insert_with(|| CountKey {
            times: VecDeque::new(),
            episode: Episode::default(),
            last: t,
        });
        k.last = k.last.max(t);
        let holds = slide(&mut k.times, t, window, threshold as usize);
        k.episode.update(holds, t, window).then_some(k.times.len())
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

    #[test]
    fn a_count_fires_once_per_episode() {
        let mut c = CountState::default();
        let fired: Vec<i64> = (0..200)
            .filter_map(|i| c.observe("k", i * NANOS, 60, 10, 100).map(|_| i))
            .collect();
        assert_eq!(fired, vec![9]);
        let again = c.observe("k", 1000 * NANOS, 60, 1, 100);
        assert!(
            again.is_some(),
            "a new burst after a quiet window is a new episode"
        );
    }
}
