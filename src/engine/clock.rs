//! The engine's clock: time is the entries' own. The stream's time (the newest accepted
//! event time) moves a watermark that trails it by `lateness_secs`; timers (response
//! timeouts, `stale`, absence) fire only when the watermark passes them, so replay and live
//! agree. An entry with no time is judged at the stream's time and never moves the clock.
//!
//! One entry can never move the stream's time far ahead (a node with a broken clock, or
//! anyone who can write to the socket port). The policy, the same in replay and live:
//!
//! - An entry at most `max_future_skew_secs` ahead of the stream's time is accepted (it may
//!   move the stream's time); an entry behind it is late and accepted too (it moves nothing).
//! - The first timed entry sets the stream's time (there is nothing to compare it with; in
//!   the daemon the wall clock bounds it, below).
//! - An entry further ahead is a *candidate jump*: its line is held and the next timed entry decides. When that entry
//!   is also beyond the old stream's time plus the skew and not more than the skew behind
//!   the candidate, the whole stream moved (a gap in the log): the candidate is accepted
//!   and judged exactly as it would have been without the policy, then the deciding entry.
//!   Otherwise the candidate was skewed. An untimed entry arriving meanwhile is judged at
//!   once at the stream's time (it has no time to hold back).
//! - At the end of input an undecided candidate is accepted (nothing contradicts it: replay
//!   cannot tell the last entry after a gap from a last entry with a broken clock).
//! - With a wall clock (the daemon with `tick_secs` > 0), an entry ahead of it by more
//!   than the skew is skewed at once, and an idle tick decides a waiting candidate by the
//!   wall clock. Normal input is never ahead of the wall clock, so outcomes do not change.
//!
//! A skewed entry moves nothing: not the stream's time, not the watermark. The engine
//! judges it at its own time by the time-free rules only and raises `clock_skew`.
//!
//! Silence is one finding. Three times are kept apart:
//!
//! - The **watermark** moves with the stream's own time only. It times out held requests,
//!   names silences (absence) and is what count and distinct windows are measured in.
//! - **Active time** is the stream's time less every stream-wide silence the entries
//!   showed: a gap with no entry at all that a whole-stream `absence` rule names
//!   (`audit_stream_silent`: at least its `silence_secs`, after a busy stream) is credited
//!   when the entry that ends it arrives ([`Clock::credit`]); active time stands still
//!   through it. Per-key timers that measure how long a key has been quiet (cadence
//!   `stale`) run on active time, so keys resume after Vault was sealed without a storm,
//!   and a key that stays silent after the stream resumed still goes stale once its
//!   deadline, so credited, passes. [`ActiveTime`] maps times between the two.
//! - The **wall clock** (the daemon's idle tick, `replay --idle-until`) can only tell that
//!   the whole stream is silent: it moves a mark of its own ([`Clock::raise_wall`]) that
//!   names silences and times out held requests, never the watermark, so it fires no
//!   per-key timer and closes no window.
//!
//! Replay and live agree: crediting is decided from the entries alone (the gap and the
//! absence detector's state before it), so whether a silence was first named by the wall
//! clock or by the entry after it, the same gaps are credited and the same keys go stale.

/// Event time and the watermark, in nanoseconds since the epoch.
#[derive(Clone, Debug)]
pub struct Clock {
    max_time: Option<i64>,
    watermark: i64,
    /// `max_future_skew_secs` in ns.
    skew: i64,
    /// The time of the candidate jump whose line is held, if any.
    candidate: Option<i64>,
    /// The wall clock, when the front end has one (ns).
    wall: Option<i64>,
    /// The wall clock's mark (its time less `lateness_secs`, ns): how far it has told that
    /// the stream is silent.
    wall_mark: i64,
    /// The gap the newest accepted entry ended: (the stream's time before it, its time).
    gap: Option<(i64, i64)>,
    /// Stream-wide silences credited to the per-key timers.
    active: ActiveTime,
}

/// Active time: the stream's time less the stream-wide silences credited so far. The
/// mapping is exact for times after the last credited gap and for those just before it;
/// a time before an earlier gap maps as if only the last one came after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActiveTime {
    /// Every credited gap, in total (ns).
    credit: i64,
    /// The total before the last credited gap.
    credit_before: i64,
    /// Where the last credited gap ended (its first entry's time; `i64::MIN`: none).
    credited_at: i64,
}

impl ActiveTime {
    /// Nothing credited.
    pub const NONE: ActiveTime = ActiveTime {
        credit: 0,
        credit_before: 0,
        credited_at: i64::MIN,
    };

    /// The active time of the stream time `t`.
    pub fn of(&self, t: i64) -> i64 {
        t.saturating_sub(self.credit_at(t))
    }

    /// The stream time of the active time `a`: at the stream's end of a credited gap, the
    /// later side (the time the stream showed again).
    pub fn stream(&self, a: i64) -> i64 {
        if a.saturating_add(self.credit) < self.credited_at {
            a.saturating_add(self.credit_before)
        } else {
            a.saturating_add(self.credit)
        }
    }

    /// The total credited before the stream time `t`.
    pub fn credit_at(&self, t: i64) -> i64 {
        if t < self.credited_at {
            self.credit_before
        } else {
            self.credit
        }
    }

    /// Every credited gap, in total (ns).
    pub fn credit(&self) -> i64 {
        self.credit
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new(300 * 1_000_000_000)
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

/// What to do with an entry, by its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Judge it now at this stamp.
    Accept(Stamp),
    /// Hold its line: it is a candidate jump.
    Hold,
    /// A candidate is held: judge it first (accepted when `true`, skewed when `false`),
    /// then ask again about this entry.
    Decide(bool),
    /// Skewed by the wall clock: judge it at its own time by the time-free rules; the
    /// stream's time is given (the wall clock's when the stream has no time yet).
    Skewed { stream: i64 },
}

/// What a snapshot holds of the clock: the stream's time, the watermark and the candidate
/// jump held (its line is kept by the engine). The skew comes from the config and the
/// wall clock from the front end, not from a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockState {
    pub max_time: Option<i64>,
    pub watermark: i64,
    pub candidate: Option<i64>,
    /// The silences credited so far: the per-key `stale` deadlines are in active time.
    pub active: ActiveTime,
    /// How far the wall clock has told that the stream is silent.
    pub wall_mark: i64,
}

impl Clock {
    /// Its state, for a snapshot.
    pub fn save(&self) -> ClockState {
        ClockState {
            max_time: self.max_time,
            watermark: self.watermark,
            candidate: self.candidate,
            active: self.active,
            wall_mark: self.wall_mark,
        }
    }

    /// Take a restored state.
    pub fn restore(&mut self, s: ClockState) {
        self.max_time = s.max_time;
        self.watermark = s.watermark;
        self.candidate = s.candidate;
        self.active = s.active;
        self.wall_mark = s.wall_mark;
    }

    /// A clock that calls an entry more than `skew` ns ahead of the stream's time skewed.
    pub fn new(skew: i64) -> Clock {
        Clock {
            max_time: None,
            watermark: i64::MIN,
            skew: skew.max(0),
            candidate: None,
            wall: None,
            wall_mark: i64::MIN,
            gap: None,
            active: ActiveTime::NONE,
        }
    }

    /// A new `max_future_skew_secs` (a reload), in ns.
    pub fn set_skew(&mut self, skew: i64) {
        self.skew = skew.max(0);
    }

    /// `max_future_skew_secs` in ns.
    pub fn skew(&self) -> i64 {
        self.skew
    }

    /// The front end's wall clock (ns), or `None` when time comes from entries only.
    pub fn set_wall(&mut self, now: Option<i64>) {
        self.wall = now;
    }

    /// What to do with an entry carrying `time`.
    pub fn judge(&mut self, time: Option<i64>) -> Verdict {
        let Some(t) = time else {
            return Verdict::Accept(self.stamp(None));
        };
        if let Some(w) = self.wall.filter(|w| t > w.saturating_add(self.skew)) {
            return Verdict::Skewed {
                stream: self.max_time.unwrap_or(w),
            };
        }
        let Some(m) = self.max_time else {
            return Verdict::Accept(self.stamp(Some(t)));
        };
        let beyond = t > m.saturating_add(self.skew);
        match self.candidate {
            Some(c) => Verdict::Decide(beyond && t >= c.saturating_sub(self.skew)),
            None if beyond => {
                self.candidate = Some(t);
                Verdict::Hold
            }
            None => Verdict::Accept(self.stamp(Some(t))),
        }
    }

    /// The held candidate is decided: accepted (its stamp, moving the stream's time) or
    /// skewed (`None`). Nothing happens when no candidate is held.
    pub fn decide(&mut self, accept: bool) -> Option<Stamp> {
        let c = self.candidate.take()?;
        accept.then(|| self.stamp(Some(c)))
    }

    /// The time of the held candidate.
    pub fn candidate(&self) -> Option<i64> {
        self.candidate
    }

    /// Whether the wall clock `now` vouches for the held candidate (it is not ahead of
    /// `now` by more than the skew); `None` when no candidate is held.
    pub fn wall_vouches(&self, now: i64) -> Option<bool> {
        self.candidate.map(|c| c <= now.saturating_add(self.skew))
    }

    /// Stamp an entry with the time it is judged at, moving the newest time seen. The
    /// policy above is the caller's ([`Clock::judge`]); this only records an accepted time.
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
                    self.gap = self.max_time.map(|m| (m, t));
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

    /// The newest accepted event time (the stream's time).
    pub fn max_time(&self) -> Option<i64> {
        self.max_time
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Move the wall clock's mark forward to `to`; false (and no change) when it is not
    /// ahead. It never moves the watermark.
    pub fn raise_wall(&mut self, to: i64) -> bool {
        if to <= self.wall_mark {
            return false;
        }
        self.wall_mark = to;
        true
    }

    /// The gap the newest accepted entry ended, once: (the stream's time before it, its
    /// time). `None` after the first entry, and once taken.
    pub fn take_gap(&mut self) -> Option<(i64, i64)> {
        self.gap.take()
    }

    /// Credit the stream-wide silence from `from` to `to` (a gap with no entry) to the
    /// per-key timers: active time stands still through it.
    pub fn credit(&mut self, from: i64, to: i64) {
        let a = &mut self.active;
        a.credit_before = a.credit;
        a.credit = a.credit.saturating_add(to.saturating_sub(from).max(0));
        a.credited_at = to;
    }

    /// How stream time maps to active time.
    pub fn active_time(&self) -> ActiveTime {
        self.active
    }

    /// The watermark in active time: what the per-key timers are judged against.
    pub fn active_watermark(&self) -> i64 {
        self.watermark.saturating_sub(self.active.credit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    /// Feed times through the policy as the engine does; the accepted stamps' times and
    /// the skewed entries' times, in the order they are judged.
    fn run(c: &mut Clock, times: &[i64]) -> (Vec<i64>, Vec<i64>) {
        let (mut accepted, mut skewed) = (Vec::new(), Vec::new());
        for &t in times {
            loop {
                match c.judge(Some(t)) {
                    Verdict::Accept(s) => accepted.push(s.time),
                    Verdict::Hold => {}
                    Verdict::Decide(ok) => {
                        let held = c.candidate().unwrap();
                        match c.decide(ok) {
                            Some(s) => accepted.push(s.time),
                            None => skewed.push(held),
                        }
                        continue;
                    }
                    Verdict::Skewed { .. } => skewed.push(t),
                }
                break;
            }
        }
        (accepted, skewed)
    }

    #[test]
    fn an_untimed_entry_is_judged_at_the_newest_time_and_moves_nothing() {
        let mut c = Clock::new(300 * S);
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

    #[test]
    fn one_entry_far_ahead_is_skewed_and_moves_nothing() {
        let mut c = Clock::new(300 * S);
        let year_2099 = 4_070_908_800 * S;
        let (acc, skewed) = run(&mut c, &[1000 * S, 1001 * S, year_2099, 1002 * S, 1003 * S]);
        assert_eq!(acc, vec![1000 * S, 1001 * S, 1002 * S, 1003 * S]);
        assert_eq!(skewed, vec![year_2099]);
        assert_eq!(c.max_time(), Some(1003 * S));
    }

    #[test]
    fn ten_hours_ahead_is_skewed_but_the_skew_itself_is_tolerated() {
        let mut c = Clock::new(300 * S);
        let (acc, skewed) = run(
            &mut c,
            &[
                1000 * S,
                1000 * S + 36_000 * S,
                1001 * S,
                1299 * S,
                1300 * S,
            ],
        );
        assert_eq!(skewed, vec![1000 * S + 36_000 * S]);
        assert_eq!(acc, vec![1000 * S, 1001 * S, 1299 * S, 1300 * S]);
    }

    #[test]
    fn a_gap_in_the_stream_is_accepted_when_the_next_entry_agrees() {
        let mut c = Clock::new(300 * S);
        // An hour of silence, then the stream goes on; hourly entries (a sparse stream).
        let times = [1000 * S, 4600 * S, 4601 * S, 8200 * S, 11800 * S];
        let (acc, skewed) = run(&mut c, &times);
        assert!(skewed.is_empty(), "{skewed:?}");
        assert_eq!(
            acc,
            times[..4].to_vec(),
            "the last one waits for the next entry"
        );
        assert_eq!(
            c.decide(true).map(|s| s.time),
            Some(11800 * S),
            "end of input"
        );
    }

    #[test]
    fn two_entries_far_apart_do_not_confirm_each_other() {
        let mut c = Clock::new(300 * S);
        let far = 4_070_908_800 * S;
        // 2099, then a genuine gap of an hour: the gap is accepted, 2099 is not.
        let (acc, skewed) = run(&mut c, &[1000 * S, far, 4600 * S, 4601 * S]);
        assert_eq!(skewed, vec![far]);
        assert_eq!(acc, vec![1000 * S, 4600 * S, 4601 * S]);
    }

    #[test]
    fn the_first_entry_sets_the_stream_time_unless_the_wall_clock_refuses_it() {
        let far = 4_070_908_800 * S;
        let mut c = Clock::new(300 * S);
        let (acc, _) = run(&mut c, &[1000 * S]);
        assert_eq!(acc, vec![1000 * S], "judged at once: nothing to wait for");
        let mut c = Clock::new(300 * S);
        c.set_wall(Some(1000 * S));
        let (acc, skewed) = run(&mut c, &[far, 1000 * S, 1001 * S]);
        assert_eq!(skewed, vec![far]);
        assert_eq!(acc, vec![1000 * S, 1001 * S]);
    }

    #[test]
    fn an_entry_from_1970_is_late_and_moves_nothing() {
        let mut c = Clock::new(300 * S);
        let (acc, skewed) = run(&mut c, &[1000 * S, 1001 * S, 0, 1002 * S]);
        assert!(skewed.is_empty());
        assert_eq!(acc, vec![1000 * S, 1001 * S, 0, 1002 * S]);
        assert_eq!(c.max_time(), Some(1002 * S));
    }

    #[test]
    fn the_wall_clock_rejects_at_once_and_decides_a_waiting_candidate() {
        let mut c = Clock::new(300 * S);
        c.set_wall(Some(2000 * S));
        assert_eq!(
            c.judge(Some(2301 * S)),
            Verdict::Skewed { stream: 2000 * S },
            "no stream time yet: the wall clock's"
        );
        c.stamp(Some(1000 * S));
        assert_eq!(
            c.judge(Some(2301 * S)),
            Verdict::Skewed { stream: 1000 * S }
        );
        assert_eq!(c.candidate(), None, "rejected at once, never held");
        assert_eq!(c.judge(Some(1900 * S)), Verdict::Hold);
        assert_eq!(c.wall_vouches(2000 * S), Some(true));
        assert_eq!(c.wall_vouches(1000 * S), Some(false));
    }

    #[test]
    fn an_untimed_entry_behind_a_candidate_is_judged_at_the_stream_time() {
        let mut c = Clock::new(300 * S);
        c.stamp(Some(1000 * S));
        assert_eq!(c.judge(Some(5000 * S)), Verdict::Hold);
        assert!(matches!(c.judge(None), Verdict::Accept(s) if s.time == 1000 * S && s.untimed));
        assert_eq!(c.judge(Some(5001 * S)), Verdict::Decide(true));
    }

    #[test]
    fn a_credited_gap_stops_active_time_and_maps_back_to_the_stream() {
        let mut c = Clock::new(300 * S);
        c.stamp(Some(1000 * S));
        assert_eq!(c.take_gap(), None, "the first entry ends no gap");
        c.stamp(Some(1010 * S));
        assert_eq!(c.take_gap(), Some((1000 * S, 1010 * S)));
        assert_eq!(c.take_gap(), None, "taken once");
        // Two hours with no entry, credited when the entry after them comes.
        c.stamp(Some(8210 * S));
        let (from, to) = c.take_gap().unwrap();
        c.credit(from, to);
        let a = c.active_time();
        assert_eq!(a.credit(), 7200 * S);
        assert_eq!(a.of(1010 * S), 1010 * S, "before the gap: as it was");
        assert_eq!(a.of(8210 * S), 1010 * S, "active time stood still");
        assert_eq!(a.of(8300 * S), 1100 * S);
        assert_eq!(a.stream(1000 * S), 1000 * S);
        assert_eq!(a.stream(1010 * S), 8210 * S, "the stream's side of the gap");
        assert_eq!(a.stream(1100 * S), 8300 * S);
        assert!(c.raise(8205 * S));
        assert_eq!(c.active_watermark(), 1005 * S);
    }

    #[test]
    fn the_wall_clock_moves_its_own_mark_and_never_the_watermark() {
        let mut c = Clock::new(300 * S);
        c.stamp(Some(1000 * S));
        assert!(c.raise(995 * S));
        assert!(c.raise_wall(5000 * S));
        assert!(!c.raise_wall(4000 * S), "only forward");
        assert_eq!(c.watermark(), 995 * S);
        assert_eq!(c.max_time(), Some(1000 * S));
        assert_eq!(c.active_watermark(), 995 * S);
    }
}
