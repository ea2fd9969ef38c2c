//! `absence`: no matching entry for `silence_secs` of event time after a stream that
//! carried at least `min_events` in the `silence_secs` before (a busy stream that stopped).
//! It fires once per silence, on the watermark (the stream's own time, when the entry after
//! the silence arrives) or on the wall clock's mark (the daemon's idle tick, `replay
//! --idle-until`), whichever passes first: both name it with the same id and evidence.
//!
//! A rule with no `when` watches the whole stream. Its silence is the one finding about
//! the stream: the engine adds to it how many cadence keys were waiting for a `stale`
//! verdict ([`StaleKeys`]), and credits the gap it names to the per-key timers
//! ([`Absence::names_gap`], `engine::clock`), so the keys raise no alert of their own.

use std::collections::VecDeque;

use serde_json::{json, Map as JsonMap};

use crate::alert::Alert;
use crate::engine::build::{absence_id, bare_alert, entry_identity};
use crate::engine::event::Event;
use crate::parse::time::format_rfc3339;
use crate::rules::{AbsenceSpec, Rule};
use crate::util::stable_hash::stable_hash;

use super::window::{slide, NANOS};
use super::StaleKeys;

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

    /// The time of the silence after the last entry (`silence_secs` after it), when `mark`
    /// has passed it and it is not named yet.
    pub fn silence_due(&self, mark: i64) -> Option<i64> {
        let silence = self.spec.silence_secs as i64 * NANOS;
        let a = &self.state;
        let last = a.last_seen?;
        (a.busy && !a.fired && mark.saturating_sub(last) >= silence).then(|| last + silence)
    }

    /// Whether the gap from `from` to `to` with no entry at all is a silence this detector
    /// names by the watermark `mark` (as it does whether or not a wall clock named it
    /// first): the gap alone is at least `silence_secs`, after a busy stream. Decided from
    /// the entries only, so replay and live credit the same gaps.
    pub fn names_gap(&self, from: i64, to: i64, mark: i64) -> bool {
        let silence = self.spec.silence_secs as i64 * NANOS;
        let a = &self.state;
        a.busy
            && to.saturating_sub(from) >= silence
            && a.last_seen
                .is_some_and(|l| mark.saturating_sub(l) >= silence)
    }

    /// Name the silence after the last entry (once); `keys`, for a rule watching the whole
    /// stream, are the cadence keys waiting for a `stale` verdict when it began.
    pub fn fire_silence(&mut self, rule: &Rule, keys: Option<StaleKeys>, out: &mut Vec<Alert>) {
        let silence = self.spec.silence_secs as i64 * NANOS;
        let a = &mut self.state;
        let Some(last) = a.last_seen else { return };
        if a.fired {
            return;
        }
        a.fired = true;
        let mut ev = JsonMap::new();
        ev.insert("last_event_time".into(), json!(format_rfc3339(last)));
        ev.insert("silence_secs".into(), json!(self.spec.silence_secs));
        if let Some(k) = keys {
            ev.insert(OVERDUE_KEYS.into(), json!(k.overdue));
            ev.insert(WATCHED_KEYS.into(), json!(k.watched));
        }
        let id = absence_id(rule, "", stable_hash([a.last_entry.as_str()]));
        out.push(bare_alert(rule, id, last + silence, rule.severity, ev));
    }
}

/// Evidence of a whole-stream silence: cadence keys whose `stale` deadline had passed by
/// the silence's time (its alert's `time`), had the silence counted.
pub const OVERDUE_KEYS: &str = "overdue_keys";
/// Evidence of a whole-stream silence: cadence keys with a `stale` deadline in force when
/// it began (each would go stale if the silence counted; their verdict waits for the
/// stream).
pub const WATCHED_KEYS: &str = "watched_keys";

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
