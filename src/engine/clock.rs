//! The engine's clock: time is the entries' own. The newest event time seen moves a
//! watermark that trails it by `lateness_secs`; timers (response timeouts, `stale`,
//! absence) fire only when the watermark passes them, so replay and live agree. An entry
//! with no time is judged at the newest time seen and never moves the clock.

/// Event time and the watermark, in nanoseconds since the epoch.
#[derive(Clone, Debug)]
pub struct Clock {
    max_time: Option<i64>,
    watermark: i64,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock {
            max_time: None,
            watermark: i64::MIN,
        }
    }
}

/// When an entry is judged, and whether it moved the newest event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The time the entry is judged at.
    pub time: i64,
    /// The entry carried no time (judged at the newest time seen).
    pub untimed: bool,
    /// The entry's time is the newest seen: the watermark may move.
    pub newest: bool,
}

impl Clock {
    /// Stamp an entry with the time it is judged at, moving the newest time seen.
    pub fn stamp(&mut self, time: Option<i64>) -> Stamp {
        match time {
            None => Stamp {
                time: self.max_time.unwrap_or(0),
                untimed: true,
                newest: false,
            },
            Some(t) => {
                let newest = self.max_time.is_none_or(|m| t > m);
                if newest {
                    self.max_time = Some(t);
                }
                Stamp {
                    time: t,
                    untimed: false,
                    newest,
                }
            }
        }
    }

    /// Move the watermark forward to `to`; false (and no change) when it is not ahead.
    pub fn raise(&mut self, to: i64) -> bool {
        if to <= self.watermark {
            return false;
        }
        self.watermark = to;
        true
    }

    /// The newest event time seen.
    pub fn max_time(&self) -> Option<i64> {
        self.max_time
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untimed_entry_is_judged_at_the_newest_time_and_moves_nothing() {
        let mut c = Clock::default();
        assert_eq!(c.stamp(None).time, 0);
        assert!(c.stamp(Some(10)).newest);
        assert!(!c.stamp(Some(5)).newest, "an older entry is not the newest");
        let s = c.stamp(None);
        assert_eq!((s.time, s.untimed, s.newest), (10, true, false));
        assert_eq!(c.max_time(), Some(10));
    }

    #[test]
    fn the_watermark_only_moves_forward() {
        let mut c = Clock::default();
        assert!(c.raise(100));
        assert!(!c.raise(100));
        assert!(!c.raise(50));
        assert_eq!(c.watermark(), 100);
    }
}
