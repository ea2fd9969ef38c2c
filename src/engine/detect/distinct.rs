//! `distinct`: at least `threshold` distinct values of a field per key within
//! `window_secs` (one identity touching many paths); one alert per episode, with a sample
//! of the values. Keys are bounded by `max_keys`, values per key by the threshold plus what
//! one window brings (at most 4,096 beyond it).

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::engine::event::Event;
use crate::rules::DistinctSpec;

use super::window::{make_room, Episode, Map, NANOS};
use super::{key_evidence, key_string};

/// A `distinct` detector: its settings and its per-key value sets.
pub struct Distinct {
    spec: DistinctSpec,
    state: DistinctState,
}

impl Distinct {
    pub fn new(spec: DistinctSpec) -> Distinct {
        Distinct {
            spec,
            state: DistinctState::default(),
        }
    }

    pub fn adopt(&mut self, old: Distinct) {
        self.state = old.state;
    }

    pub fn observe(&mut self, ev: &Event<'_, '_>, evidence: &mut JsonMap<String, Json>) -> bool {
        let s = &self.spec;
        let k = key_string(ev, &s.key);
        let Some(v) = ev.first(&s.field) else {
            return false;
        };
        let v = super::bounded(&v).into_owned();
        match self
            .state
            .observe(&k, &v, ev.time, s.window_secs, s.threshold, s.max_keys)
        {
            Some((n, sample)) => {
                evidence.insert("distinct".into(), json!(n));
                evidence.insert("field".into(), json!(s.field.name()));
                evidence.insert("window_secs".into(), json!(s.window_secs));
                evidence.insert("threshold".into(), json!(s.threshold));
                evidence.insert("sample".into(), json!(sample));
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
    pub fn state(&self) -> &DistinctState {
        &self.state
    }

    /// Take a restored state.
    pub fn set_state(&mut self, state: DistinctState) {
        self.state = state;
    }

    pub fn keys(&self) -> usize {
        self.state.len()
    }
}

/// Distinct values per key in a window.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct DistinctState {
    keys: Map<Box<str>, DistinctKey>,
    pub evicted: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DistinctKey {
    values: Map<Box<str>, i64>,
    episode: Episode,
    last: i64,
}

impl DistinctState {
    /// Record a value; `Some(sample)` (a few of the values) when a new episode starts.
    pub fn observe(
        &mut self,
        key: &str,
        value: &str,
        t: i64,
        window_secs: u64,
        threshold: u64,
        max_keys: u64,
    ) -> Option<(usize, Vec<String>)> {
        let window = window_secs as i64 * NANOS;
        if !self.keys.contains_key(key) {
            self.evicted += make_room(&mut self.keys, max_keys, t - window, |k| k.last);
        }
        let k = self.keys.entry(key.into()).or_insert_with(|| DistinctKey {
            values: Map::default(),
            episode: Episode::default(),
            last: t,
        });
        k.last = k.last.max(t);
        match k.values.get_mut(value) {
            Some(seen) => *seen = (*seen).max(t),
            None => {
                k.values.insert(value.into(), t);
            }
        }
        // Values age out of the window; the table never holds more than the threshold
        // plus what arrived within one window.
        if k.values.len() as u64 >= threshold || k.values.len() > 4096 {
            k.values.retain(|_, seen| *seen > t - window);
        }
        if k.values.len() > 4096 + threshold as usize {
            let mut times: Vec<i64> = k.values.values().copied().collect();
            let cut = times.len() - threshold as usize;
            let pivot = *times.select_nth_unstable(cut).1;
            k.values.retain(|_, seen| *seen >= pivot);
        }
        let holds = k.values.len() as u64 >= threshold;
        if k.episode.update(holds, t, window) {
            let mut sample: Vec<String> = k.values.keys().map(|s| s.to_string()).collect();
            sample.sort();
            sample.truncate(10);
            return Some((k.values.len(), sample));
        }
        None
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
