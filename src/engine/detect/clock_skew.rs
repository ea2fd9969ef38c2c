//! `clock_skew`: an entry whose time the engine's clock refused (see [`crate::engine::clock`]:
//! far ahead of the stream's time, or of the daemon's wall clock). It fires on the first
//! skewed entry of an episode; the episode ends once the stream's own time has moved
//! `quiet_secs` past the last skewed entry, so a node with a broken clock gives one finding
//! per episode, not one per entry.

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::parse::time::format_rfc3339;
use crate::rules::ClockSkewSpec;

use super::super::event::Event;
use super::window::NANOS;

/// A `clock_skew` detector: its settings and the episode it is in.
pub struct ClockSkew {
    spec: ClockSkewSpec,
    /// The stream's time at the last skewed entry, while an episode is open.
    open_since: Option<i64>,
}

impl ClockSkew {
    pub fn new(spec: ClockSkewSpec) -> ClockSkew {
        ClockSkew {
            spec,
            open_since: None,
        }
    }

    pub fn adopt(&mut self, old: ClockSkew) {
        self.open_since = old.open_since;
    }

    /// Its state (the open episode), for a snapshot.
    pub fn state(&self) -> Option<i64> {
        self.open_since
    }

    /// Take a restored state.
    pub fn set_state(&mut self, open_since: Option<i64>) {
        self.open_since = open_since;
    }

    /// True on the first skewed entry of an episode, with its evidence.
    pub fn observe(&mut self, ev: &Event<'_, '_>, evidence: &mut JsonMap<String, Json>) -> bool {
        let Some(skew) = ev.skew else {
            // A normal entry: the stream's time moves on, and may end the episode.
            if self
                .open_since
                .is_some_and(|s| ev.time.saturating_sub(s) >= self.quiet())
            {
                self.open_since = None;
            }
            return false;
        };
        let opened = self.open_since.is_none();
        self.open_since = Some(skew.stream_time);
        if !opened {
            return false;
        }
        evidence.insert("entry_time".into(), json!(format_rfc3339(ev.time)));
        evidence.insert(
            "stream_time".into(),
            json!(format_rfc3339(skew.stream_time)),
        );
        let secs = ev.time.saturating_sub(skew.stream_time) / NANOS;
        evidence.insert("skew_secs".into(), json!(secs));
        evidence.insert("wall_clock".into(), json!(skew.by_wall_clock));
        true
    }

    fn quiet(&self) -> i64 {
        (self.spec.quiet_secs as i64).saturating_mul(NANOS)
    }
}
