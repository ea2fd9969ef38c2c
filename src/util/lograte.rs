//! Rate-limited log lines: a detector under attack or cut off from a sink must not flood
//! its own log, yet must say how much it held back.
//!
//! Invariant: a kind of line is written at most once per period; the first one always
//! goes, and each one that goes carries how many of its kind were held back since the
//! previous one, so the count of events is never lost, only their lines.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// One kind of log line: written at most once per `every`.
#[derive(Clone, Debug)]
pub struct LogRate {
    every: Duration,
    /// When a line last went, and the lines held back since.
    last: Option<(Instant, u64)>,
}

impl LogRate {
    pub const fn new(every: Duration) -> LogRate {
        LogRate { every, last: None }
    }

    /// `Some(lines held back since the last one)` when a line may be written at `now`;
    /// `None` (counted) when it must not.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match &mut self.last {
            Some((at, skipped)) if now.saturating_duration_since(*at) < self.every => {
                *skipped += 1;
                None
            }
            Some((at, skipped)) => {
                *at = now;
                Some(std::mem::take(skipped))
            }
            None => {
                self.last = Some((now, 0));
                Some(0)
            }
        }
    }
}

/// Several kinds of log line (by trouble, by peer, ...), each limited on its own.
#[derive(Clone, Debug)]
pub struct LogRates<K> {
    every: Duration,
    kinds: HashMap<K, LogRate>,
}

impl<K: Hash + Eq> LogRates<K> {
    pub fn new(every: Duration) -> LogRates<K> {
        LogRates {
            every,
            kinds: HashMap::new(),
        }
    }

    /// [`LogRate::allow`] for the lines of kind `kind`.
    pub fn allow(&mut self, kind: K, now: Instant) -> Option<u64> {
        let every = self.every;
        self.kinds
            .entry(kind)
            .or_insert_with(|| LogRate::new(every))
            .allow(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn one_line_per_period_carrying_what_was_held_back() {
        let t0 = Instant::now();
        let mut l = LogRate::new(10 * S);
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + S), None);
        assert_eq!(l.allow(t0 + 2 * S), None);
        assert_eq!(l.allow(t0 + 10 * S), Some(2));
        assert_eq!(l.allow(t0 + 11 * S), None);
        assert_eq!(l.allow(t0 + 25 * S), Some(1));
        // A clock reading older than the last line (another thread's `now`) holds back.
        assert_eq!(l.allow(t0), None);
    }

    #[test]
    fn kinds_are_limited_apart() {
        let t0 = Instant::now();
        let mut l = LogRates::new(10 * S);
        assert_eq!(l.allow((0, "retry"), t0), Some(0));
        assert_eq!(l.allow((0, "retry"), t0 + S), None);
        assert_eq!(l.allow((1, "retry"), t0 + S), Some(0));
        assert_eq!(l.allow((0, "rejected"), t0 + S), Some(0));
        assert_eq!(l.allow((0, "retry"), t0 + 2 * S), None);
        assert_eq!(l.allow((0, "retry"), t0 + 11 * S), Some(2));
    }
}
