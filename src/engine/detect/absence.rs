//! `absence`: no matching entry for `silence_secs` of event time after a stream that
//! carried at least `min_events` in the `silence_secs` before (a busy stream that stopped).
//! It fires on the watermark, once per silence.

use std::collections::VecDeque;

use serde_json::{json, Map as JsonMap};

use crate::alert::Alert;
use crate::engine::build::{absence_id, bare_alert, entry_identity};
use crate::engine::event::Event;
use crate::parse::time::format_rfc3339;
use crate::rules::{AbsenceSpec, Rule};
use crate::util::stable_hash::stable_hash;

use super::window::{slide, NANOS};

/// An `absence` detector: its settings and when the stream was last seen.
pub struct Absence {
    spec: AbsenceSpec,
    state: AbsenceState,
}

impl Absence {
    pub fn new(spec: AbsenceSpec) -> Absence {
        Absence {
            spec,
            state: AbsenceState::default(),
        }
    }

    pub fn adopt(&mut self, old: Absence) {
        self.state = old.state;
    }

    /// Its state, for a snapshot.
    pub fn state(&self) -> &AbsenceState {
        &self.state
    }

    /// Take a restored state.
    pub fn set_state(&mut self, state: AbsenceState) {
        self.state = state;
    }

    /// A matching entry: every entry, for the shipped rule, so this stays cheap. Its
    /// identity is kept as text (a copy of the request id) and hashed only when a silence
    /// after it is named.
    pub fn observe(&mut self, ev: &Event<'_, '_>) {
        let t = ev.time;
        let window = self.spec.silence_secs as i64 * NANOS;
        if self.state.last_seen.is_none_or(|l| t >= l) {
            let last = &mut self.state.last_entry;
            last.clear();
            match ev.entry.request.id {
                Some(id) => last.push_str(id),
                None => last.push_str(&entry_identity(ev)),
            }
        }
        self.state.observe(t, window, self.spec.min_events);
    }

    /// The silence alert, once, when the watermark is `silence_secs` past the last entry.
    pub fn fire_silence(&mut self, rule: &Rule, watermark: i64, out: &mut Vec<Alert>) {
        let silence = self.spec.silence_secs as i64 * NANOS;
        let a = &mut self.state;
        let Some(last) = a.last_seen else { return };
        if a.busy && !a.fired && watermark - last >= silence {
            a.fired = true;
            let mut ev = JsonMap::new();
            ev.insert("last_event_time".into(), json!(format_rfc3339(last)));
            ev.insert("silence_secs".into(), json!(self.spec.silence_secs));
            let id = absence_id(rule, "", stable_hash([a.last_entry.as_str()]));
            out.push(bare_alert(rule, id, last + silence, rule.severity, ev));
        }
    }
}

/// Absence of matching events.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct AbsenceState {
    pub last_seen: Option<i64>,
    /// The identity of the last entry seen: what names the silence after it.
    pub last_entry: String,
    pub fired: bool,
    /// The stream carried `min_events` within a window before its last event.
    pub busy: bool,
    recent: VecDeque<i64>,
}

impl AbsenceState {
    pub fn observe(&mut self, t: i64, window: i64, min_events: u64) {
        self.busy = slide(&mut self.recent, t, window, min_events as usize);
        self.last_seen = Some(self.last_seen.map_or(t, |l| l.max(t)));
        self.fired = false;
    }
}
