//! The engine's [`State`](super::State) as a serde value and back: what a snapshot of the
//! daemon (`state.dir`) keeps of detection, so a restart goes on where the last checkpoint
//! stopped (learned intervals, windows, episodes, suppressions, held requests, the clock and
//! the ids of the alerts raised lately).
//!
//! Written from borrowed state ([`StateOut`]: no copy of a million keys), read back owned
//! ([`StateIn`]); the two have the same fields in the same order. Rules are matched by id
//! on restore, as on a reload: a rule whose detector kind is unchanged takes its saved
//! state under its current settings; a rule that is new starts afresh; saved state of a
//! rule that is gone, or that changed kind, is dropped and named in [`Restored`]. The
//! engine's counters are the process's (metrics), not state, and are not saved.
//!
//! The encoding and its version are the caller's (the daemon's state file): any change to
//! the fields here or in the state types they hold changes the layout and must bump that
//! version.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::clock::ClockState;
use super::detect::absence::AbsenceState;
use super::detect::cadence::CadenceState;
use super::detect::count::CountState;
use super::detect::distinct::DistinctState;
use super::detect::first_seen::FirstSeenState;
use super::detect::hour_profile::HourProfileState;
use super::detect::token_origin::TokenOriginState;
use super::detect::wrap_token::WrapTokenState;
use super::detect::Detector;
use super::pairing::{PairingIn, PairingOut};
use super::policy::Suppressions;
use super::Engine;

/// The engine's state, borrowed, to be written.
#[derive(Serialize)]
pub struct StateOut<'a> {
    clock: ClockState,
    candidate: &'a [u8],
    pairing: PairingOut<'a>,
    recent: &'a VecDeque<u128>,
    rules: Vec<RuleOut<'a>>,
}

#[derive(Serialize)]
struct RuleOut<'a> {
    id: &'a str,
    detector: DetectorOut<'a>,
    suppress: &'a Suppressions,
}

/// One detector's state; the variants are in the same order as [`DetectorIn`]'s.
#[derive(Serialize)]
enum DetectorOut<'a> {
    /// A detector that keeps no state: its kind only.
    Stateless(&'a str),
    Count(&'a CountState),
    Distinct(&'a DistinctState),
    Cadence(&'a CadenceState),
    Absence(&'a AbsenceState),
    ClockSkew(Option<i64>),
    TokenOrigin(&'a TokenOriginState),
    WrapToken(&'a WrapTokenState),
    FirstSeen(&'a FirstSeenState),
    HourProfile(&'a HourProfileState),
}

/// The engine's state, read back.
#[derive(Deserialize)]
pub struct StateIn {
    clock: ClockState,
    candidate: Vec<u8>,
    pairing: PairingIn,
    recent: VecDeque<u128>,
    rules: Vec<RuleIn>,
}

#[derive(Deserialize)]
struct RuleIn {
    id: String,
    detector: DetectorIn,
    suppress: Suppressions,
}

#[derive(Deserialize)]
enum DetectorIn {
    Stateless(String),
    Count(CountState),
    Distinct(DistinctState),
    Cadence(CadenceState),
    Absence(AbsenceState),
    ClockSkew(Option<i64>),
    TokenOrigin(TokenOriginState),
    WrapToken(WrapTokenState),
    FirstSeen(FirstSeenState),
    HourProfile(HourProfileState),
}

/// What a restore kept and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Rules whose saved state was taken.
    pub rules_kept: usize,
    /// Rules of the current set with no saved state (new rules): they start afresh.
    pub rules_new: Vec<String>,
    /// Saved rules whose state was dropped: gone from the rule set, or of another kind now.
    pub rules_dropped: Vec<String>,
}

fn save_detector(d: &Detector) -> DetectorOut<'_> {
    match d {
        Detector::Match => DetectorOut::Stateless("match"),
        Detector::TenantMismatch => DetectorOut::Stateless("tenant_mismatch"),
        Detector::TimeWindow => DetectorOut::Stateless("time_window"),
        Detector::Count(c) => DetectorOut::Count(c.state()),
        Detector::Distinct(c) => DetectorOut::Distinct(c.state()),
        Detector::Cadence(c) => DetectorOut::Cadence(c.state()),
        Detector::Absence(c) => DetectorOut::Absence(c.state()),
        Detector::ClockSkew(c) => DetectorOut::ClockSkew(c.state()),
        Detector::TokenOrigin(c) => DetectorOut::TokenOrigin(c.state()),
        Detector::WrapToken(c) => DetectorOut::WrapToken(c.state()),
        Detector::FirstSeen(c) => DetectorOut::FirstSeen(c.state()),
        Detector::HourProfile(c) => DetectorOut::HourProfile(c.state()),
    }
}

/// Put saved state into a fresh detector; false when the kinds differ.
fn load_detector(d: &mut Detector, saved: DetectorIn) -> bool {
    match (d, saved) {
        (Detector::Match, DetectorIn::Stateless(k)) => k == "match",
        (Detector::TenantMismatch, DetectorIn::Stateless(k)) => k == "tenant_mismatch",
        (Detector::TimeWindow, DetectorIn::Stateless(k)) => k == "time_window",
        (Detector::Count(c), DetectorIn::Count(s)) => {
            c.set_state(s);
            true
        }
        (Detector::Distinct(c), DetectorIn::Distinct(s)) => {
            c.set_state(s);
            true
        }
        (Detector::Cadence(c), DetectorIn::Cadence(s)) => {
            c.set_state(s);
            true
        }
        (Detector::Absence(c), DetectorIn::Absence(s)) => {
            c.set_state(s);
            true
        }
        (Detector::ClockSkew(c), DetectorIn::ClockSkew(s)) => {
            c.set_state(s);
            true
        }
        (Detector::TokenOrigin(c), DetectorIn::TokenOrigin(s)) => {
            c.set_state(s);
            true
        }
        (Detector::WrapToken(c), DetectorIn::WrapToken(s)) => {
            c.set_state(s);
            true
        }
        (Detector::FirstSeen(c), DetectorIn::FirstSeen(s)) => {
            c.set_state(s);
            true
        }
        (Detector::HourProfile(c), DetectorIn::HourProfile(s)) => {
            c.set_state(s);
            true
        }
        _ => false,
    }
}

impl Engine {
    /// The state to write (borrowed).
    pub fn save_state(&self) -> StateOut<'_> {
        let st = &self.state;
        StateOut {
            clock: st.clock.save(),
            candidate: &st.candidate,
            pairing: st.pairing.save(),
            recent: st.recent.save(),
            rules: self
                .given
                .rules
                .rules
                .iter()
                .zip(&st.rules)
                .map(|(rule, rs)| RuleOut {
                    id: &rule.id,
                    detector: save_detector(&rs.detector),
                    suppress: &rs.suppress,
                })
                .collect(),
        }
    }

    /// Take saved state. Meant for a new engine (nothing processed yet): what it holds is
    /// replaced.
    pub fn restore_state(&mut self, saved: StateIn) -> Restored {
        let st = &mut self.state;
        st.clock.restore(saved.clock);
        st.candidate = saved.candidate;
        if st.clock.candidate().is_some() == st.candidate.is_empty() {
            // A candidate time without its line (or the reverse) cannot be judged.
            st.clock.restore(super::clock::ClockState {
                candidate: None,
                ..st.clock.save()
            });
            st.candidate.clear();
        }
        st.pairing.restore(saved.pairing);
        st.recent.restore(saved.recent);
        let mut report = Restored::default();
        let mut saved_rules = saved.rules;
        for (rule, rs) in self.given.rules.rules.iter().zip(&mut st.rules) {
            let Some(pos) = saved_rules.iter().position(|r| r.id == rule.id) else {
                report.rules_new.push(rule.id.clone());
                continue;
            };
            let r = saved_rules.swap_remove(pos);
            if load_detector(&mut rs.detector, r.detector) {
                rs.suppress = r.suppress;
                report.rules_kept += 1;
            } else {
                report.rules_dropped.push(r.id);
            }
        }
        report
            .rules_dropped
            .extend(saved_rules.into_iter().map(|r| r.id));
        report
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::alert::Alert;
    use crate::config::Config;
    use crate::parse::Parser;
    use crate::rules::RuleSet;

    fn feed(e: &mut Engine, lines: &[String]) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut p = Parser::new("");
        for l in lines {
            p.parse(l.as_bytes(), |_, r| {
                e.process(&r.expect("a test entry"), Some(l.as_bytes()), &mut out)
            });
        }
        out
    }

    fn round_trip(e: &Engine) -> StateIn {
        let bytes = postcard::to_stdvec(&e.save_state()).expect("encodes");
        postcard::from_bytes(&bytes).expect("decodes")
    }

    /// An ESO key read every 60 s; a failed login burst from one address.
    fn traffic(from: u32, to: u32) -> Vec<String> {
        traffic_at(from, to, |n| 1_772_445_600 + n as i64 * 60)
    }

    /// The same entries, entry `n` at the Unix second `at(n)`.
    fn traffic_at(from: u32, to: u32, at: impl Fn(u32) -> i64) -> Vec<String> {
        let mut v = Vec::new();
        for n in from..to {
            let t = at(n);
            let time = crate::parse::time::format_rfc3339(t * 1_000_000_000);
            // Two ESO keys; the second stops being read at 190 (it goes stale).
            for path in ["db", "api"] {
                if (path == "api" && n >= 190) || at(n) % 60 != at(0) % 60 {
                    continue;
                }
                v.push(format!(
                    r#"{{"time":"{time}","type":"response","auth":{{"display_name":"kubernetes-bookstore-platform-lumen-bookstore-platform-eso","policies":["bookstore-platform-app-lumen"],"metadata":{{"role":"bookstore-platform-lumen","service_account_name":"bookstore-platform-eso","service_account_namespace":"bookstore-platform-lumen"}}}},"request":{{"id":"eso-{path}-{n}","operation":"read","mount_type":"kv","path":"secret/data/bookstore-platform/lumen/{path}","remote_address":"10.42.0.9"}},"response":{{}}}}"#
                ));
            }
            if n % 7 == 0 {
                v.push(format!(
                    r#"{{"time":"{time}","type":"response","error":"invalid username or password","auth":{{"token_type":"default"}},"request":{{"id":"login-{n}","operation":"update","mount_type":"userpass","path":"auth/userpass/login/u","remote_address":"198.51.100.7"}},"response":{{}}}}"#
                ));
            }
            // A request whose response comes later: held across the snapshot.
            v.push(format!(
                r#"{{"time":"{time}","type":"request","auth":{{"token_type":"default"}},"request":{{"id":"held-{n}","operation":"read","path":"sys/raw/core","remote_address":"10.0.0.1"}}}}"#
            ));
        }
        v
    }

    /// A snapshot taken anywhere and restored into a new engine gives the alerts the
    /// uninterrupted engine gives from there on: nothing missed, nothing repeated.
    #[test]
    fn a_restored_engine_goes_on_as_the_uninterrupted_one() {
        let cfg = Arc::new(Config::default());
        let rules = Arc::new(RuleSet::embedded());
        let all = traffic(0, 400);
        let mut whole = Engine::new(cfg.clone(), rules.clone());
        let mut expected = feed(&mut whole, &all);
        whole.finish(&mut expected);
        assert!(!expected.is_empty());

        for cut in [1, 37, 150, 399] {
            let cut = cut * all.len() / 400;
            let mut first = Engine::new(cfg.clone(), rules.clone());
            let mut got = feed(&mut first, &all[..cut]);
            let saved = round_trip(&first);
            drop(first);
            let mut second = Engine::new(cfg.clone(), rules.clone());
            let r = second.restore_state(saved);
            assert_eq!(r.rules_kept, rules.rules.len());
            assert!(r.rules_new.is_empty() && r.rules_dropped.is_empty());
            got.extend(feed(&mut second, &all[cut..]));
            second.finish(&mut got);
            let ids = |v: &[Alert]| v.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&expected), "cut at line {cut}");
        }
    }

    /// Every tenant's ESO stops for six hours while the platform carries on: the outage
    /// finding raised before a snapshot is not raised again after it, and the episode it
    /// opened is closed by the restored engine (the `resumed` record, every key folded).
    #[test]
    fn an_eso_outage_open_at_the_snapshot_stays_one_episode() {
        let cfg = Arc::new(Config::default());
        let rules = Arc::new(RuleSet::embedded().only("eso-read-cadence"));
        let at =
            |m: i64| crate::parse::time::format_rfc3339((1_772_409_600 + m * 60) * 1_000_000_000);
        let mut timed: Vec<(i64, String)> = Vec::new();
        for m in (0..16 * 60).step_by(15) {
            // The rest of the platform: reads the rule does not select.
            timed.push((m, format!(
                r#"{{"time":"{}","type":"response","auth":{{"display_name":"app"}},"request":{{"id":"app-{m}","operation":"update","path":"auth/token/lookup-self"}},"response":{{}}}}"#,
                at(m)
            )));
        }
        for t in ["acme", "lumen", "orbit"] {
            let hours = (0..5).chain(11..15);
            for (n, h) in hours.enumerate() {
                let m = h * 60 + t.len() as i64;
                timed.push((m, format!(
                    r#"{{"time":"{}","type":"response","auth":{{"display_name":"kubernetes-bookstore-platform-{t}-bookstore-platform-eso","metadata":{{"service_account_name":"bookstore-platform-eso","service_account_namespace":"bookstore-platform-{t}"}}}},"request":{{"id":"eso-{t}-{n}","operation":"read","mount_type":"kv","path":"secret/data/bookstore-platform/{t}/db"}},"response":{{}}}}"#,
                    at(m)
                )));
            }
        }
        timed.sort();
        let all: Vec<String> = timed.into_iter().map(|(_, l)| l).collect();
        let mut whole = Engine::new(cfg.clone(), rules.clone());
        let mut expected = feed(&mut whole, &all);
        whole.finish(&mut expected);
        let kinds: Vec<&str> = (expected.iter())
            .map(|a| a.evidence["kind"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["stale", "resumed"], "{expected:#?}");
        assert_eq!(expected[1].evidence["keys_folded"], 3);
        // Cut in the outage, after its finding (09:00): the restored engine goes on.
        let cut = all
            .iter()
            .position(|l| l.contains("T09:00"))
            .expect("a cut");
        let mut first = Engine::new(cfg.clone(), rules.clone());
        let mut got = feed(&mut first, &all[..cut]);
        assert_eq!(got.len(), 1, "the outage's finding before the cut");
        let saved = round_trip(&first);
        let mut second = Engine::new(cfg.clone(), rules.clone());
        second.restore_state(saved);
        got.extend(feed(&mut second, &all[cut..]));
        second.finish(&mut got);
        let ids = |v: &[Alert]| v.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&expected));
        assert_eq!(got[1].evidence, expected[1].evidence);
    }

    /// A busy stream with a two-hour stream-wide silence: the credit the silence gives the
    /// per-key timers, and the silence's own finding, survive a snapshot taken before, in
    /// or after the gap.
    #[test]
    fn a_silence_credited_before_the_snapshot_stays_credited() {
        let cfg = Arc::new(Config::default());
        let rules = Arc::new(RuleSet::embedded());
        // Every 10 s (a busy stream for the silence rule), with two hours of nothing at 200.
        let all = traffic_at(0, 1200, |n| {
            1_772_445_600 + n as i64 * 10 + if n >= 200 { 7200 } else { 0 }
        });
        let mut whole = Engine::new(cfg.clone(), rules.clone());
        let mut expected = feed(&mut whole, &all);
        whole.finish(&mut expected);
        assert!(
            expected.iter().any(|a| a.rule == "audit-stream-silent"),
            "the gap is a silence: {:?}",
            expected.iter().map(|a| &a.id).collect::<Vec<_>>()
        );
        // Ids and times: a credit lost would move the `stale` of the key that stopped.
        let ids = |v: &[Alert]| {
            v.iter()
                .map(|a| (a.id.clone(), a.time.clone()))
                .collect::<Vec<_>>()
        };
        assert!(
            expected
                .iter()
                .any(|a| a.evidence.get("kind").and_then(|k| k.as_str()) == Some("stale")),
            "the key that stopped goes stale"
        );
        let lines_before = |n: u32| {
            all.iter()
                .take_while(|l| !l.contains(&format!("\"held-{n}\"")))
                .count()
        };
        for cut in [
            lines_before(150),
            lines_before(200),
            lines_before(201) + 1,
            lines_before(300),
            lines_before(1100),
        ] {
            let mut first = Engine::new(cfg.clone(), rules.clone());
            let mut got = feed(&mut first, &all[..cut]);
            let mut second = Engine::new(cfg.clone(), rules.clone());
            second.restore_state(round_trip(&first));
            got.extend(feed(&mut second, &all[cut..]));
            second.finish(&mut got);
            assert_eq!(ids(&got), ids(&expected), "cut at line {cut}");
        }
    }

    /// Input processed again after a restore (a crash after the checkpoint) raises nothing
    /// twice that was raised before the checkpoint.
    #[test]
    fn alert_ids_raised_before_the_snapshot_are_remembered() {
        let cfg = Arc::new(Config::default());
        let rules = Arc::new(RuleSet::embedded());
        let all = traffic(0, 50);
        let mut first = Engine::new(cfg.clone(), rules.clone());
        let raised = feed(&mut first, &all);
        assert!(!raised.is_empty());
        let mut second = Engine::new(cfg, rules);
        second.restore_state(round_trip(&first));
        let again = feed(&mut second, &all[all.len() - 20..]);
        assert!(again.is_empty(), "raised again: {again:?}");
    }

    /// A rule that changed kind or is gone drops its state; a new rule starts afresh.
    #[test]
    fn rules_are_matched_by_id_and_kind() {
        let cfg = Arc::new(Config::default());
        let burst = "login-failure-burst-source";
        let mut e = Engine::new(cfg.clone(), Arc::new(RuleSet::embedded()));
        feed(&mut e, &traffic(0, 10));
        let saved = round_trip(&e);
        let mut changed = RuleSet::embedded();
        let n = changed.rules.len();
        let pos = changed.rules.iter().position(|r| r.id == burst).unwrap();
        changed.rules[pos].detector = crate::rules::Detector::Match;
        let gone = changed.rules.remove(0).id;
        let mut e = Engine::new(cfg, Arc::new(changed));
        let r = e.restore_state(saved);
        assert_eq!(r.rules_kept, n - 2);
        assert!(r.rules_new.is_empty());
        let mut dropped = r.rules_dropped.clone();
        dropped.sort();
        let mut want = vec![burst.to_string(), gone];
        want.sort();
        assert_eq!(dropped, want);
    }
}
