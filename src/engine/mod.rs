//! The engine: pure, synchronous, no I/O. It takes parsed entries in arrival order and
//! returns alerts; time is the entries' own ([`clock`]), so replay and the daemon, driving
//! the same engine, give the same alerts for the same input.
//!
//! One job per module: [`pairing`] holds request entries until their response decides
//! them (or judges them alone after `response_timeout_secs` of event time, or when its
//! count or byte budget is full); [`clock`] stamps entries, keeps the watermark and refuses
//! times that are clock skew (a skewed entry is judged by the time-free rules only and
//! moves no clock), and keeps active time, the stream's time less the stream-wide silences
//! named as findings, on which per-key `stale` timers run; [`detect`] holds one type per
//! detector kind,
//! each with its settings and state; [`policy`] applies severity overrides, allow-lists
//! and suppression; [`build`] makes the alert record and fills summaries.
//!
//! The engine is two halves: the immutable rules and config it was given (shared, swapped
//! whole on a reload) and its mutable [`State`], a value of its own.
//!
//! Time moves in three ways ([`clock`] has the policy): an entry newer than any before
//! moves the watermark ([`Engine::process`]); the end of input moves it to the newest
//! event time ([`Engine::finish`], [`Engine::settle_clock`]); a front end's wall clock
//! ([`Engine::advance_clock`]: the daemon's idle tick, `replay --idle-until`) only tells
//! that the whole stream is silent: it names silences and times out held requests, and
//! moves no per-key timer. A stream that stops is one `audit_stream_silent` finding that
//! counts the cadence keys waiting for a `stale` verdict, never a storm of `stale`.
//!
//! Memory: every table is bounded, in bytes where a client chooses its keys. Held request
//! lines: `max_pending_requests` and `max_pending_bytes`; decided request ids: 128-bit
//! hashes, `max(max_pending_requests, 1024)` of them (about 40 bytes each); the line of a
//! candidate jump: one line (`parse.max_line_bytes`); detector keys: `max_keys` per rule,
//! each key (and each value a `distinct` detector keeps) at most [`detect::MAX_KEY_BYTES`]
//! (a longer one is cut and hashed); suppression keys: 100,000 per rule, cut the same way.

pub mod build;
pub mod clock;
pub mod detect;
pub mod event;
pub mod pairing;
pub mod policy;
pub mod recent;
#[cfg(test)]
mod silence_tests;
pub mod snapshot;
#[cfg(test)]
mod token_tests;

use std::sync::Arc;

use serde_json::{json, Map as JsonMap};

use crate::alert::Alert;
use crate::config::Config;
use crate::parse::{Entry, EntryKind, Parser};
use crate::rules::RuleSet;
use clock::{Clock, Stamp, Verdict};
use detect::{Detector, StaleKeys, NANOS};
pub use event::{Event, Outcome, PathTenant, Skew};
use pairing::Pairing;
use policy::Suppressions;
use recent::RecentIds;

/// Alert ids remembered to drop a finding raised again from another copy of its entry.
const RECENT_ALERT_IDS: usize = 65_536;

/// Counters the engine keeps (exposed as metrics and in the replay summary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub evaluated: u64,
    pub untimed: u64,
    pub timed_out_requests: u64,
    pub duplicate_responses: u64,
    pub suppressed_alerts: u64,
    pub allow_listed: u64,
    pub evicted_keys: u64,
    /// Alerts raised again with the id of one raised lately (another copy of its entry).
    pub duplicate_alerts: u64,
    /// Entries whose time was clock skew ([`clock`]).
    pub skewed_entries: u64,
    /// Held requests judged early because the pending table's count or byte budget was
    /// full (the oldest first).
    pub evicted_requests: u64,
}

/// Sizes of the bounded state tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    pub pending_requests: usize,
    pub decided_requests: usize,
    pub count_keys: usize,
    pub distinct_keys: usize,
    pub cadence_keys: usize,
    pub cadence_timers: usize,
    pub suppression_keys: usize,
    /// Tokens the `token_origin` and `wrap_token` detectors track.
    pub token_keys: usize,
}

/// The immutable half: what the engine was given.
struct Given {
    cfg: Arc<Config>,
    rules: Arc<RuleSet>,
    /// The rules whose detectors fire as time moves (absence, cadence `stale`), by index:
    /// the only ones a moving watermark visits.
    timed: Vec<usize>,
}

impl Given {
    fn new(cfg: Arc<Config>, rules: Arc<RuleSet>, state: &[RuleState]) -> Given {
        let timed = (state.iter().enumerate())
            .filter(|(_, r)| r.detector.timed())
            .map(|(i, _)| i)
            .collect();
        Given { cfg, rules, timed }
    }
}

/// One rule's mutable state: its detector and its suppression table.
struct RuleState {
    detector: Detector,
    suppress: Suppressions,
}

impl RuleState {
    fn new(rule: &crate::rules::Rule) -> RuleState {
        RuleState {
            detector: Detector::new(&rule.detector),
            suppress: Suppressions::default(),
        }
    }
}

/// The mutable half: everything the engine learned from the entries it saw.
pub struct State {
    clock: Clock,
    /// The line of the candidate jump the clock holds, if any.
    candidate: Vec<u8>,
    pairing: Pairing,
    /// One per rule, in the rules' order.
    rules: Vec<RuleState>,
    /// Ids of the alerts raised lately.
    recent: RecentIds,
    stats: EngineStats,
}

/// Buffers and caches reused from entry to entry; they hold nothing that decides an alert.
#[derive(Default)]
struct Scratch {
    reparser: Parser,
    /// Reads a held candidate line again (its judging may read held requests again).
    candidate_parser: Parser,
    captures: Vec<(String, String)>,
    tenant_cache: event::TenantCache,
}

pub struct Engine {
    given: Given,
    state: State,
    scratch: Scratch,
}

impl Engine {
    pub fn new(cfg: Arc<Config>, rules: Arc<RuleSet>) -> Engine {
        let state = State {
            clock: Clock::new(skew_nanos(&cfg)),
            candidate: Vec::new(),
            pairing: Pairing::new(
                cfg.engine.max_pending_requests as usize,
                cfg.engine.max_pending_bytes as usize,
            ),
            rules: rules.rules.iter().map(RuleState::new).collect(),
            recent: RecentIds::new(RECENT_ALERT_IDS),
            stats: EngineStats::default(),
        };
        Engine {
            scratch: Scratch {
                reparser: Parser::new(&cfg.parse.prefix),
                candidate_parser: Parser::new(&cfg.parse.prefix),
                ..Scratch::default()
            },
            given: Given::new(cfg, rules, &state.rules),
            state,
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.given.cfg
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.given.rules
    }

    /// Swap in new rules and config (a reload). Detection state is kept for rules whose
    /// id and detector kind are unchanged.
    pub fn reload(&mut self, cfg: Arc<Config>, rules: Arc<RuleSet>) {
        let mut old: Vec<(String, RuleState)> = self
            .given
            .rules
            .rules
            .iter()
            .map(|r| r.id.clone())
            .zip(std::mem::take(&mut self.state.rules))
            .collect();
        self.state.rules = rules
            .rules
            .iter()
            .map(|r| {
                let mut fresh = RuleState::new(r);
                if let Some(pos) = old.iter().position(|(id, _)| *id == r.id) {
                    let (_, kept) = old.swap_remove(pos);
                    // A detector of another kind starts afresh, suppressions too.
                    if fresh.detector.adopt(kept.detector) {
                        fresh.suppress = kept.suppress;
                    }
                }
                fresh
            })
            .collect();
        self.state.clock.set_skew(skew_nanos(&cfg));
        self.state.pairing.set_caps(
            cfg.engine.max_pending_requests as usize,
            cfg.engine.max_pending_bytes as usize,
        );
        self.scratch = Scratch {
            reparser: Parser::new(&cfg.parse.prefix),
            candidate_parser: Parser::new(&cfg.parse.prefix),
            // The tenancy regexes may have changed.
            ..Scratch::default()
        };
        self.given = Given::new(cfg, rules, &self.state.rules);
    }

    pub fn stats(&self) -> EngineStats {
        let mut s = self.state.stats.clone();
        s.evicted_keys = self.state.rules.iter().map(|r| r.detector.evicted()).sum();
        s
    }

    pub fn table_sizes(&self) -> TableSizes {
        let mut t = TableSizes {
            pending_requests: self.state.pairing.pending(),
            decided_requests: self.state.pairing.decided(),
            suppression_keys: self.state.rules.iter().map(|r| r.suppress.len()).sum(),
            ..TableSizes::default()
        };
        for r in &self.state.rules {
            r.detector.sizes(&mut t);
        }
        t
    }

    /// The newest event time seen (ns).
    pub fn max_time(&self) -> Option<i64> {
        self.state.clock.max_time()
    }

    /// The wall clock (ns) of a front end that has one (the daemon with a tick), or `None`:
    /// an entry ahead of it by more than the skew is refused at once ([`clock`]).
    pub fn set_wall_clock(&mut self, now: Option<i64>) {
        self.state.clock.set_wall(now);
    }

    /// Feed one entry. `raw` is its unparsed line: kept while the entry is a request
    /// waiting for its response or a candidate jump of the clock. With `None` nothing is
    /// held (the entry is judged at once, its time accepted as it is).
    pub fn process(&mut self, entry: &Entry<'_>, raw: Option<&[u8]>, out: &mut Vec<Alert>) {
        let start = out.len();
        self.process_entry(entry, raw, out);
        self.drop_repeats(out, start);
    }

    /// Alerts appended to `out` from `start` on whose id was raised lately are dropped.
    /// Called once per public entry point, over all it raised (a second pass over the same
    /// alerts would find each of them already raised).
    fn drop_repeats(&mut self, out: &mut Vec<Alert>, start: usize) {
        let st = &mut self.state;
        // Kept alerts move down over dropped ones, in order: one pass, no shifting per drop.
        let mut kept = start;
        for i in start..out.len() {
            if st.recent.first(&out[i].id) {
                out.swap(kept, i);
                kept += 1;
            } else {
                st.stats.duplicate_alerts += 1;
            }
        }
        out.truncate(kept);
    }

    fn process_entry(&mut self, entry: &Entry<'_>, raw: Option<&[u8]>, out: &mut Vec<Alert>) {
        self.state.stats.events += 1;
        loop {
            match self.state.clock.judge(entry.time) {
                Verdict::Accept(stamp) => return self.settle(entry, raw, stamp, out),
                Verdict::Hold => {
                    let Some(line) = raw else {
                        let stamp = self.state.clock.decide(true);
                        if let Some(stamp) = stamp {
                            self.settle(entry, raw, stamp, out);
                        }
                        return;
                    };
                    self.state.candidate.clear();
                    self.state.candidate.extend_from_slice(line);
                    return;
                }
                Verdict::Decide(accept) => self.release(accept, entry.time, out),
                Verdict::Skewed { stream } => {
                    let skew = Skew {
                        stream_time: stream,
                        by_wall_clock: true,
                    };
                    return self.skewed(entry, raw, skew, out);
                }
            }
        }
    }

    /// Judge the held candidate jump: accepted (as if it had never been held) or skewed.
    /// `deciding` is the time of what decided it, the stream's time when it has none.
    fn release(&mut self, accept: bool, deciding: Option<i64>, out: &mut Vec<Alert>) {
        let Some(time) = self.state.clock.candidate() else {
            return;
        };
        let stamp = self.state.clock.decide(accept);
        let stream = self.state.clock.max_time().or(deciding).unwrap_or(time);
        let line = std::mem::take(&mut self.state.candidate);
        let mut parser = std::mem::take(&mut self.scratch.candidate_parser);
        parser.parse(&line, |_, r| {
            if let Ok(entry) = r {
                match stamp {
                    Some(stamp) => self.settle(&entry, Some(&line), stamp, out),
                    None => {
                        let skew = Skew {
                            stream_time: stream,
                            by_wall_clock: false,
                        };
                        self.skewed(&entry, Some(&line), skew, out)
                    }
                }
            }
        });
        self.scratch.candidate_parser = parser;
        self.state.candidate = line;
        self.state.candidate.clear();
    }

    /// Judge an accepted entry at its stamp.
    fn settle(
        &mut self,
        entry: &Entry<'_>,
        raw: Option<&[u8]>,
        stamp: Stamp,
        out: &mut Vec<Alert>,
    ) {
        let t = stamp.time;
        if stamp.untimed {
            self.state.stats.untimed += 1;
        }
        if stamp.newest {
            self.advance(t - self.given.cfg.engine.lateness_secs as i64 * NANOS, out);
        }
        self.judge(entry, raw, t, t, None, out);
    }

    /// Judge an entry whose time is clock skew: at its own time, by the time-free rules; a
    /// request waits for its response with the stream's time (its timeout is the stream's).
    fn skewed(&mut self, entry: &Entry<'_>, raw: Option<&[u8]>, skew: Skew, out: &mut Vec<Alert>) {
        self.state.stats.skewed_entries += 1;
        let t = entry.time.unwrap_or(skew.stream_time);
        self.judge(entry, raw, t, skew.stream_time, Some(skew), out);
    }

    /// Pair or evaluate an entry judged at `t`; a request is held with `hold_time`.
    fn judge(
        &mut self,
        entry: &Entry<'_>,
        raw: Option<&[u8]>,
        t: i64,
        hold_time: i64,
        skew: Option<Skew>,
        out: &mut Vec<Alert>,
    ) {
        match entry.kind {
            EntryKind::Request => {
                if let (Some(id), Some(raw)) = (entry.request.id, raw) {
                    if self.state.pairing.hold(id, raw, hold_time) && self.state.pairing.over_cap()
                    {
                        // Only the oldest, until the table is within its budget again.
                        self.expire_pending(i64::MIN, true, out);
                    }
                }
                // No id (help requests) or no raw line: the response entry decides.
            }
            EntryKind::Response => {
                if let Some(id) = entry.request.id {
                    if !self.state.pairing.decide(id) {
                        self.state.stats.duplicate_responses += 1;
                        return;
                    }
                }
                evaluate(
                    &self.given,
                    &mut self.state,
                    &mut self.scratch,
                    entry,
                    t,
                    skew,
                    out,
                );
            }
            EntryKind::Other(_) => evaluate(
                &self.given,
                &mut self.state,
                &mut self.scratch,
                entry,
                t,
                skew,
                out,
            ),
        }
    }

    /// The wall clock says it is `now` (ns) and no entry came: the daemon's idle tick, or
    /// `replay --idle-until` after the input. It decides a held candidate jump first
    /// (accepted when not ahead of `now` by more than the skew), then, at `now` less
    /// `lateness_secs`, judges held requests whose response timed out and names silences
    /// of the stream. Nothing else: the watermark stays the stream's, so no `stale` fires
    /// and no window closes by the wall clock.
    pub fn advance_clock(&mut self, now: i64, out: &mut Vec<Alert>) {
        let start = out.len();
        if let Some(accept) = self.state.clock.wall_vouches(now) {
            self.release(accept, Some(now), out);
        }
        let mark = now.saturating_sub(self.given.cfg.engine.lateness_secs as i64 * NANOS);
        if self.state.clock.raise_wall(mark) {
            let timeout = self.given.cfg.engine.response_timeout_secs as i64 * NANOS;
            self.expire_pending(mark.saturating_sub(timeout), false, out);
            self.name_silences(mark, None, out);
        }
        self.drop_repeats(out, start);
    }

    /// End of input for the clock, as a daemon ends (it stops): a held candidate jump is
    /// accepted (nothing after it contradicts it) and the watermark moves to the newest
    /// event time, as [`Engine::finish`] does first; requests still waiting for their
    /// response are not judged (after a restart that response, which repeats the request,
    /// decides).
    pub fn settle_clock(&mut self, out: &mut Vec<Alert>) {
        let start = out.len();
        self.release(true, None, out);
        if let Some(m) = self.state.clock.max_time() {
            self.advance(m, out);
        }
        self.drop_repeats(out, start);
    }

    /// End of input: requests still waiting for a response are evaluated on their own.
    /// Timers beyond the last event time do not fire (nothing is known past the input).
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let start = out.len();
        // Not `settle_clock`: repeats are dropped once, over everything raised here.
        self.release(true, None, out);
        if let Some(m) = self.state.clock.max_time() {
            self.advance(m, out);
        }
        self.expire_pending(i64::MAX, false, out);
        self.drop_repeats(out, start);
    }

    /// The stream's own time moved the watermark: held requests time out, silences the
    /// entries show are named, a stream-wide one the newest entry ended is credited to the
    /// per-key timers, and those run on active time.
    fn advance(&mut self, watermark: i64, out: &mut Vec<Alert>) {
        if !self.state.clock.raise(watermark) {
            return;
        }
        let timeout = self.given.cfg.engine.response_timeout_secs as i64 * NANOS;
        self.expire_pending(watermark.saturating_sub(timeout), false, out);
        let gap = self.state.clock.take_gap();
        self.name_silences(watermark, gap, out);
        let (given, st) = (&self.given, &mut self.state);
        let mark = st.clock.active_watermark();
        let time = st.clock.active_time();
        for &i in &given.timed {
            let rule = &given.rules.rules[i];
            st.rules[i]
                .detector
                .fire_stale(rule, &given.cfg, mark, &time, out);
        }
    }

    /// Name the silences `mark` has passed (once each). A rule watching the whole stream (an
    /// absence rule with no `when`) counts the cadence keys waiting for a `stale` verdict
    /// into its finding, and with `gap` (the gap the newest entry ended, only when the
    /// stream's own time moved) credits that gap to the per-key timers when it is a
    /// silence the rule names.
    fn name_silences(&mut self, mark: i64, mut gap: Option<(i64, i64)>, out: &mut Vec<Alert>) {
        let (given, st) = (&self.given, &mut self.state);
        for &i in &given.timed {
            let rule = &given.rules.rules[i];
            let whole = rule.when.is_none();
            let Detector::Absence(a) = &st.rules[i].detector else {
                continue;
            };
            if let Some(at) = a.silence_due(mark) {
                // Counted as of the silence's own time (not when some clock noticed it),
                // before its gap is credited: the same whoever names it first.
                let keys = whole.then(|| {
                    let at = st.clock.active_time().of(at);
                    given.timed.iter().fold(StaleKeys::default(), |n, &j| {
                        n + st.rules[j].detector.stale_keys(at)
                    })
                });
                if let Detector::Absence(a) = &mut st.rules[i].detector {
                    a.fire_silence(rule, keys, out);
                }
            }
            if let (Some((from, to)), Detector::Absence(a)) = (gap, &st.rules[i].detector) {
                if whole && a.names_gap(from, to, mark) {
                    st.clock.credit(from, to);
                    gap = None;
                }
            }
        }
    }

    /// Evaluate held requests older than `before` (or, with `overflow`, the oldest until
    /// the table is within its budget again).
    fn expire_pending(&mut self, before: i64, overflow: bool, out: &mut Vec<Alert>) {
        let skew = self.state.clock.skew();
        while let Some(held) = self.state.pairing.next_due(before, overflow) {
            if overflow {
                self.state.stats.evicted_requests += 1;
            } else {
                self.state.stats.timed_out_requests += 1;
            }
            let mut parser = std::mem::take(&mut self.scratch.reparser);
            parser.parse(&held.raw, |_, r| {
                if let Ok(entry) = r {
                    // A skewed request was held at the stream's time: it is judged as skewed.
                    let (t, skew) = match entry.time {
                        Some(t) if t > held.time.saturating_add(skew) => (
                            t,
                            Some(Skew {
                                stream_time: held.time,
                                by_wall_clock: false,
                            }),
                        ),
                        _ => (held.time, None),
                    };
                    evaluate(
                        &self.given,
                        &mut self.state,
                        &mut self.scratch,
                        &entry,
                        t,
                        skew,
                        out,
                    );
                }
            });
            self.scratch.reparser = parser;
            self.state.pairing.recycle(held.raw);
        }
    }
}

/// `engine.max_future_skew_secs` in ns.
fn skew_nanos(cfg: &Config) -> i64 {
    (cfg.engine
        .max_future_skew_secs
        .min(i64::MAX as u64 / NANOS as u64) as i64)
        * NANOS
}

/// Judge one entry at time `t` against every rule.
fn evaluate(
    given: &Given,
    state: &mut State,
    scratch: &mut Scratch,
    entry: &Entry<'_>,
    t: i64,
    skew: Option<Skew>,
    out: &mut Vec<Alert>,
) {
    state.stats.evaluated += 1;
    let cfg = &*given.cfg;
    let time = state.clock.active_time();
    let mut ev = Event::new(entry, t, cfg, &mut scratch.tenant_cache);
    ev.skew = skew;
    for (rule, rs) in given.rules.rules.iter().zip(&mut state.rules) {
        scratch.captures.clear();
        if let Some(w) = &rule.when {
            if !w.eval(&ev, &mut scratch.captures) {
                continue;
            }
        }
        let mut evidence = JsonMap::new();
        let Some(fired) = rs.detector.observe(&ev, cfg, &time, &mut evidence) else {
            continue;
        };
        let mut target_override: Option<String> = None;
        for (name, value) in scratch.captures.drain(..) {
            if name == "target_tenant" || name == "tenant" {
                target_override.get_or_insert(value.clone());
            }
            evidence.entry(name).or_insert(json!(value));
        }
        let mut severity = policy::severity(rule, &ev, fired.floor);
        if let Some(allow) = policy::allow_listed(cfg, rule, &ev) {
            state.stats.allow_listed += 1;
            match policy::allowed_severity(allow) {
                None => continue,
                Some(s) => {
                    severity = s;
                    let name = rule.allow_list.as_deref().unwrap_or_default();
                    evidence.insert("allow_listed".into(), json!(name));
                }
            }
        }
        if rs.suppress.suppressed(rule, &ev) {
            state.stats.suppressed_alerts += 1;
            continue;
        }
        out.push(build::event_alert(
            rule,
            &ev,
            severity,
            evidence,
            target_override,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Parser;

    /// A failed userpass login from `addr`, `n` seconds into the burst.
    fn failed_login(n: u32, addr: &str) -> String {
        format!(
            r#"{{"time":"2026-03-02T10:00:{n:02}Z","type":"response","error":"invalid username or password","auth":{{"token_type":"default"}},"request":{{"id":"r-{addr}-{n}","operation":"update","mount_type":"userpass","path":"auth/userpass/login/u{n}","remote_address":"{addr}"}},"response":{{}}}}"#
        )
    }

    fn feed(e: &mut Engine, lines: &[String]) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut p = Parser::new("");
        for l in lines {
            p.parse(l.as_bytes(), |_, r| {
                e.process(&r.expect("a test entry"), None, &mut out)
            });
        }
        out
    }

    /// A reload keeps the state of rules whose id and kind did not change: a burst split by
    /// a reload is still one burst; a rule reloaded as another kind starts afresh.
    #[test]
    fn a_reload_keeps_the_state_of_unchanged_rules() {
        let cfg = Arc::new(Config::default());
        let only = |id: &str| Arc::new(RuleSet::embedded().only(id));
        let burst = "login-failure-burst-source";
        let first: Vec<String> = (0..6).map(|n| failed_login(n, "198.51.100.7")).collect();
        let rest: Vec<String> = (6..12).map(|n| failed_login(n, "198.51.100.7")).collect();

        let mut e = Engine::new(cfg.clone(), only(burst));
        assert!(
            feed(&mut e, &first).is_empty(),
            "6 failures: under the threshold of 10"
        );
        e.reload(cfg.clone(), only(burst));
        let alerts = feed(&mut e, &rest);
        assert_eq!(alerts.len(), 1, "the 6 before the reload count: {alerts:?}");

        let mut e = Engine::new(cfg.clone(), only(burst));
        feed(&mut e, &first);
        let mut changed = RuleSet::embedded().only(burst);
        changed.rules[0].detector = crate::rules::Detector::Match;
        e.reload(cfg.clone(), Arc::new(changed));
        e.reload(cfg, only(burst));
        assert!(
            feed(&mut e, &rest).is_empty(),
            "a change of kind drops the old count"
        );
    }
}
