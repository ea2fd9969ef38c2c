//! The email sink's decisions, as pure functions of its state and an injected clock (Unix
//! ms): which alerts are duplicates or folded by the suppression window ([`Filter`]),
//! which mails are due now (immediate ones at once, a digest per recipient once its
//! window closed: [`due`]), whether the hourly cap lets another mail go ([`RateCap`]),
//! and when to retry after a failure ([`Backoff`]). Every table is bounded.

use std::collections::{HashMap, VecDeque};

use super::outbox::Entry;
use crate::util::backoff;

/// Keys remembered by the duplicate and suppression windows, at most.
pub const MAX_REMEMBERED: usize = 100_000;
/// Alerts in one mail, at most (a bigger backlog goes out in several).
pub const MAX_ALERTS_PER_MAIL: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The same alert (`alert_key`) within the duplicate window.
    Duplicate,
    /// The same rule, tenant and actor within the suppression window.
    Suppressed,
}

/// A key remembered for a window that opened at some time.
#[derive(Default)]
struct Window {
    opened: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl Window {
    fn expire(&mut self, now: i64, len_ms: i64) {
        while let Some((t, k)) = self.order.front() {
            if *t + len_ms > now && self.order.len() < MAX_REMEMBERED {
                break;
            }
            if self.opened.get(k) == Some(t) {
                self.opened.remove(k);
            }
            self.order.pop_front();
        }
    }

    /// True when `key`'s window is open at `now`; otherwise opens one.
    fn hit(&mut self, key: &str, now: i64, len_ms: i64) -> bool {
        self.expire(now, len_ms);
        if let Some(t) = self.opened.get(key) {
            if now - t < len_ms {
                return true;
            }
        }
        self.opened.insert(key.to_string(), now);
        self.order.push_back((now, key.to_string()));
        false
    }
}

/// De-duplication and suppression windows (0 ms: off).
pub struct Filter {
    dedup_ms: i64,
    suppress_ms: i64,
    seen: Window,
    groups: Window,
}

impl Filter {
    pub fn new(dedup_secs: u64, suppress_secs: u64) -> Filter {
        Filter {
            dedup_ms: (dedup_secs as i64).saturating_mul(1000),
            suppress_ms: (suppress_secs as i64).saturating_mul(1000),
            seen: Window::default(),
            groups: Window::default(),
        }
    }

    pub fn check(&mut self, key: &str, group: &str, now: i64) -> Verdict {
        if self.dedup_ms > 0 && self.seen.hit(key, now, self.dedup_ms) {
            return Verdict::Duplicate;
        }
        if self.suppress_ms > 0 && self.groups.hit(group, now, self.suppress_ms) {
            return Verdict::Suppressed;
        }
        Verdict::Pass
    }
}

/// At most `max_per_hour` mails in any hour; beyond it mails wait.
pub struct RateCap {
    max: usize,
    sent: VecDeque<i64>,
}

impl RateCap {
    pub fn new(max_per_hour: u64) -> RateCap {
        RateCap {
            max: max_per_hour as usize,
            sent: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: i64) {
        while self.sent.front().is_some_and(|t| *t + 3_600_000 <= now) {
            self.sent.pop_front();
        }
    }

    /// Whether another mail may go at `now`.
    pub fn allows(&mut self, now: i64) -> bool {
        self.prune(now);
        self.sent.len() < self.max
    }

    /// When the next mail may go (`now` if it may now).
    pub fn next_free(&mut self, now: i64) -> i64 {
        self.prune(now);
        if self.sent.len() < self.max {
            now
        } else {
            self.sent[self.sent.len() - self.max] + 3_600_000
        }
    }

    pub fn record(&mut self, now: i64) {
        self.sent.push_back(now);
    }
}

/// When the next try may go after failures: the shared [`backoff::Backoff`] with 1 s
/// doubling to 5 min and jitter (half to all of the step), and the wall-clock time (Unix
/// ms, as the outbox keeps time) it sets.
#[derive(Clone, Debug)]
pub struct Backoff {
    steps: backoff::Backoff,
    pub until_ms: i64,
}

pub const BACKOFF_FIRST_MS: i64 = 1_000;
pub const BACKOFF_MAX_MS: i64 = 300_000;
const STEPS: backoff::Backoff = backoff::Backoff::new(
    std::time::Duration::from_millis(BACKOFF_FIRST_MS as u64),
    std::time::Duration::from_millis(BACKOFF_MAX_MS as u64),
    50,
);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            steps: STEPS,
            until_ms: 0,
        }
    }
}

impl Backoff {
    pub fn ready(&self, now: i64) -> bool {
        now >= self.until_ms
    }

    /// A failure at `now`; `rand` is any random number (the jitter). The wait chosen.
    pub fn fail(&mut self, now: i64, rand: u64) -> i64 {
        let wait = self.steps.fail(rand).as_millis() as i64;
        self.until_ms = now + wait;
        wait
    }

    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

/// Immediate mail or digest; also the `kind` label of `auditwatch_emails_sent_total`.
pub use crate::metrics::MailKind as Kind;

/// One mail to build: its recipients and the outbox entries (file names) it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub kind: Kind,
    pub to: Vec<String>,
    pub names: Vec<String>,
}

impl Mail {
    /// Who it goes to and how: failures of one such group back off on their own.
    pub fn group(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.to.join(","))
    }
}

/// The mails due at `now` (immediate ones first, each group in acceptance order) and
/// when the next digest falls due, for entries in acceptance order.
pub fn due<'a>(
    entries: impl Iterator<Item = (&'a String, &'a Entry)>,
    now: i64,
    digest_ms: i64,
) -> (Vec<Mail>, Option<i64>) {
    let mut immediate: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    // Per recipient: the oldest acceptance and the entries.
    let mut digests: Vec<(String, i64, Vec<String>)> = Vec::new();
    for (name, e) in entries {
        if e.pending.is_empty() {
            continue;
        }
        if e.immediate {
            let mut to = e.pending.clone();
            to.sort();
            to.dedup();
            match immediate.iter_mut().find(|(t, _)| *t == to) {
                Some((_, n)) => n.push(name.clone()),
                None => immediate.push((to, vec![name.clone()])),
            }
        } else {
            for r in &e.pending {
                match digests.iter_mut().find(|(t, _, _)| t == r) {
                    Some((_, oldest, n)) => {
                        *oldest = (*oldest).min(e.accepted_ms);
                        n.push(name.clone());
                    }
                    None => digests.push((r.clone(), e.accepted_ms, vec![name.clone()])),
                }
            }
        }
    }
    let mut mails = Vec::new();
    for (to, names) in immediate {
        for chunk in names.chunks(MAX_ALERTS_PER_MAIL) {
            mails.push(Mail {
                kind: Kind::Immediate,
                to: to.clone(),
                names: chunk.to_vec(),
            });
        }
    }
    let mut next: Option<i64> = None;
    for (r, oldest, names) in digests {
        let at = oldest.saturating_add(digest_ms);
        if at <= now {
            for chunk in names.chunks(MAX_ALERTS_PER_MAIL) {
                mails.push(Mail {
                    kind: Kind::Digest,
                    to: vec![r.clone()],
                    names: chunk.to_vec(),
                });
            }
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    (mails, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ms: i64, immediate: bool, pending: &[&str]) -> Entry {
        Entry {
            v: 1,
            key: format!("k{ms}"),
            group: "g".into(),
            accepted_ms: ms,
            severity: if immediate { "critical" } else { "warning" }.into(),
            immediate,
            pending: pending.iter().map(|s| s.to_string()).collect(),
            runbook: None,
            alert: serde_json::json!({}),
        }
    }

    #[test]
    fn duplicates_are_caught_within_the_window_only() {
        let mut f = Filter::new(60, 0);
        assert_eq!(f.check("a", "g", 0), Verdict::Pass);
        assert_eq!(f.check("a", "g", 59_999), Verdict::Duplicate);
        assert_eq!(f.check("b", "g", 59_999), Verdict::Pass);
        assert_eq!(f.check("a", "g", 60_000), Verdict::Pass);
        let mut off = Filter::new(0, 0);
        assert_eq!(off.check("a", "g", 0), Verdict::Pass);
        assert_eq!(off.check("a", "g", 1), Verdict::Pass);
    }

    #[test]
    fn suppression_folds_the_same_rule_tenant_and_actor_until_the_window_closes() {
        let mut f = Filter::new(3600, 600);
        assert_eq!(f.check("a", "rule|t1|alice", 0), Verdict::Pass);
        assert_eq!(f.check("b", "rule|t1|alice", 1_000), Verdict::Suppressed);
        assert_eq!(f.check("c", "rule|t1|bob", 1_000), Verdict::Pass);
        assert_eq!(f.check("b", "rule|t1|alice", 2_000), Verdict::Duplicate);
        assert_eq!(f.check("d", "rule|t1|alice", 600_000), Verdict::Pass);
        assert_eq!(f.check("e", "rule|t1|alice", 600_001), Verdict::Suppressed);
    }

    #[test]
    fn remembered_keys_stay_bounded() {
        let mut f = Filter::new(3600, 0);
        for i in 0..(MAX_REMEMBERED as i64 + 10) {
            f.check(&format!("k{i}"), "g", i);
        }
        assert!(f.seen.order.len() <= MAX_REMEMBERED);
        assert!(f.seen.opened.len() <= MAX_REMEMBERED);
    }

    #[test]
    fn the_rate_cap_holds_mails_for_an_hour_then_lets_them_go() {
        let mut c = RateCap::new(2);
        assert!(c.allows(0));
        c.record(0);
        c.record(10);
        assert!(!c.allows(20));
        assert_eq!(c.next_free(20), 3_600_000);
        assert!(!c.allows(3_599_999));
        assert!(c.allows(3_600_000));
        c.record(3_600_000);
        assert_eq!(c.next_free(3_600_001), 3_600_010);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_five_minutes_and_resets() {
        let mut b = Backoff::default();
        assert!(b.ready(0));
        let w = b.fail(0, 0);
        assert_eq!(w, 500);
        assert!(!b.ready(499) && b.ready(500));
        let w = b.fail(0, u64::MAX);
        assert!((1_000..=2_000).contains(&w), "{w}");
        for _ in 0..20 {
            b.fail(0, 7);
        }
        assert!(b.until_ms <= BACKOFF_MAX_MS && b.until_ms >= BACKOFF_MAX_MS / 2);
        b.reset();
        assert!(b.ready(0));
        assert_eq!(b.fail(0, 0), 500);
    }

    #[test]
    fn criticals_go_at_once_and_digests_group_per_recipient_when_their_window_closes() {
        let entries = [
            ("1".to_string(), e(0, false, &["ops@x", "sec@x"])),
            ("2".to_string(), e(100, true, &["sec@x", "cso@x"])),
            ("3".to_string(), e(5_000, false, &["ops@x"])),
            ("4".to_string(), e(7_000, false, &["dev@x"])),
            ("5".to_string(), e(8_000, true, &["cso@x", "sec@x"])),
        ];
        let it = || entries.iter().map(|(n, e)| (n, e));
        let (mails, next) = due(it(), 1_000, 10_000);
        assert_eq!(
            mails,
            vec![Mail {
                kind: Kind::Immediate,
                to: vec!["cso@x".into(), "sec@x".into()],
                names: vec!["2".into(), "5".into()],
            }]
        );
        assert_eq!(next, Some(10_000));
        let (mails, next) = due(it(), 10_000, 10_000);
        let digests: Vec<_> = mails.iter().filter(|m| m.kind == Kind::Digest).collect();
        assert_eq!(digests.len(), 2, "{mails:?}");
        assert_eq!(digests[0].to, vec!["ops@x".to_string()]);
        assert_eq!(digests[0].names, vec!["1".to_string(), "3".to_string()]);
        assert_eq!(digests[1].to, vec!["sec@x".to_string()]);
        assert_eq!(digests[1].names, vec!["1".to_string()]);
        assert_eq!(next, Some(17_000), "dev@x's window closes later");
        // A recipient already served is not mailed again.
        let mut served = entries.clone();
        served[0].1.pending = vec!["sec@x".into()];
        let (mails, _) = due(served.iter().map(|(n, e)| (n, e)), 10_000, 10_000);
        assert!(mails.iter().all(|m| !(m.kind == Kind::Digest
            && m.to == ["ops@x"]
            && m.names.contains(&"1".to_string()))));
    }

    #[test]
    fn a_big_backlog_goes_out_in_bounded_mails() {
        let entries: Vec<_> = (0..450)
            .map(|i| (format!("{i:05}"), e(i, true, &["a@x"])))
            .collect();
        let (mails, _) = due(entries.iter().map(|(n, e)| (n, e)), 0, 0);
        assert_eq!(
            mails.iter().map(|m| m.names.len()).collect::<Vec<_>>(),
            vec![200, 200, 50]
        );
    }
}
