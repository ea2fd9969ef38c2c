//! What waits for delivery: the bounded list of alerts on their way to every
//! Alertmanager, what each POST's answer does to it, and the backoff between tries.
//!
//! Invariants: the list never holds more than `max_pending` alerts (a new one pushes the
//! oldest out, `retry_full`); each alert carries one bit per Alertmanager still owing an
//! acceptance, and leaves the list only with a [`Fate`]: accepted everywhere (or rejected
//! by some and accepted by the others), rejected everywhere, past `retry_for_secs`, or
//! pending at shutdown. A rejected batch is retried one alert per POST, so one bad alert
//! cannot take its neighbours with it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hyper::body::Bytes;

use crate::sink::Taken;
use crate::util::backoff::Backoff;

/// Between tries of a failing Alertmanager: 0.5 s doubling to 15 s, each wait 50-100 % of
/// its step.
pub const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15), 50);

/// An alert on its way to every Alertmanager.
pub(super) struct Entry {
    seq: u64,
    /// The serialised `postableAlert`.
    json: Box<str>,
    /// For log lines.
    pub(super) rule: Box<str>,
    /// Its id token and when it was taken (the retry window runs from there).
    pub(super) taken: Taken,
    /// One bit per Alertmanager still to accept it.
    todo: u32,
    /// One bit per Alertmanager that rejected a batch holding it: send it alone there.
    solo: u32,
    accepted: bool,
    rejected: bool,
}

/// How an entry left the pending list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Accepted by every Alertmanager (or by some, the others having rejected it).
    Delivered,
    /// Accepted by some Alertmanagers; the others never answered within the retry window.
    Partly,
    Rejected,
    Expired,
    Shutdown,
    RetryFull,
}

/// The answer to one POST.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Outcome {
    Accepted,
    /// A final "no" (4xx other than 408/429, 3xx): status and a body excerpt.
    Rejected(String),
    /// Worth retrying (5xx, 408, 429, connection errors, timeouts).
    Retry(String),
}

/// Alerts waiting for delivery, oldest first, bounded.
pub(super) struct Pending {
    entries: VecDeque<Entry>,
    all: u32,
    next_seq: u64,
    /// Most alerts held (`max_pending`).
    pub(super) cap: usize,
    batch_max: usize,
    retry_for: Duration,
}

impl Pending {
    pub(super) fn new(
        targets: usize,
        cap: usize,
        batch_max: usize,
        retry_for: Duration,
    ) -> Pending {
        Pending {
            entries: VecDeque::new(),
            all: if targets >= 32 {
                u32::MAX
            } else {
                (1u32 << targets) - 1
            },
            next_seq: 0,
            cap: cap.max(1),
            batch_max: batch_max.max(1),
            retry_for,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Add an alert; when full, the oldest makes room and is returned.
    pub(super) fn push(&mut self, json: String, rule: &str, taken: Taken) -> Option<Entry> {
        let evicted = if self.entries.len() >= self.cap {
            self.entries.pop_front()
        } else {
            None
        };
        self.entries.push_back(Entry {
            seq: self.next_seq,
            json: json.into(),
            rule: rule.into(),
            taken,
            todo: self.all,
            solo: 0,
            accepted: false,
            rejected: false,
        });
        self.next_seq += 1;
        evicted
    }

    pub(super) fn has_work(&self, t: usize) -> bool {
        self.entries.iter().any(|e| e.todo & (1 << t) != 0)
    }

    /// The next batch for Alertmanager `t`: sequence numbers and the JSON array body.
    pub(super) fn batch(&self, t: usize) -> Option<(Vec<u64>, Bytes)> {
        let bit = 1u32 << t;
        let mut seqs = Vec::new();
        let mut body = String::from("[");
        for e in self.entries.iter().filter(|e| e.todo & bit != 0) {
            let solo = e.solo & bit != 0;
            if solo && !seqs.is_empty() {
                continue;
            }
            if !seqs.is_empty() {
                body.push(',');
            }
            body.push_str(&e.json);
            seqs.push(e.seq);
            if solo || seqs.len() >= self.batch_max {
                break;
            }
        }
        body.push(']');
        (!seqs.is_empty()).then(|| (seqs, Bytes::from(body)))
    }

    /// Record Alertmanager `t`'s answer to the batch `seqs`.
    pub(super) fn answer(&mut self, t: usize, seqs: &[u64], o: &Outcome) {
        let bit = 1u32 << t;
        let split = seqs.len() > 1;
        for e in self.entries.iter_mut().filter(|e| seqs.contains(&e.seq)) {
            match o {
                Outcome::Accepted => {
                    e.todo &= !bit;
                    e.accepted = true;
                }
                // Retry a rejected batch one alert per POST: only the bad one is dropped.
                Outcome::Rejected(_) if split => e.solo |= bit,
                Outcome::Rejected(_) => {
                    e.todo &= !bit;
                    e.rejected = true;
                }
                Outcome::Retry(_) => {}
            }
        }
    }

    /// Remove what is settled: done everywhere, or past the retry window (or everything,
    /// at shutdown).
    pub(super) fn reap(&mut self, now: Instant, shutdown: bool) -> Vec<(Entry, Fate)> {
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            let fate = if e.todo == 0 {
                Some(if e.accepted {
                    Fate::Delivered
                } else {
                    Fate::Rejected
                })
            } else if shutdown || now.duration_since(e.taken.at) >= self.retry_for {
                Some(if e.accepted {
                    Fate::Partly
                } else if shutdown {
                    Fate::Shutdown
                } else {
                    Fate::Expired
                })
            } else {
                None
            };
            match fate {
                Some(f) => out.push((e, f)),
                None => keep.push_back(e),
            }
        }
        self.entries = keep;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(targets: usize, cap: usize, batch: usize) -> Pending {
        Pending::new(targets, cap, batch, Duration::from_secs(60))
    }

    fn taken(token: u64, at: Instant) -> Taken {
        Taken {
            token,
            event_nanos: 0,
            at,
        }
    }

    fn push(p: &mut Pending, n: u64, now: Instant) {
        assert!(p
            .push(format!("{{\"n\":{n}}}"), "r", taken(n, now))
            .is_none());
    }

    #[test]
    fn batches_split_after_a_rejection_and_settle_per_target() {
        let now = Instant::now();
        let mut p = pending(2, 100, 3);
        for n in 0..4 {
            push(&mut p, n, now);
        }
        let (seqs, body) = p.batch(0).unwrap();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(&body[..], br#"[{"n":0},{"n":1},{"n":2}]"#);
        // Target 0 rejects the batch: its alerts go one per POST there.
        p.answer(0, &seqs, &Outcome::Rejected("HTTP 400".into()));
        assert_eq!(p.batch(0).unwrap().0, [0]);
        p.answer(0, &[0], &Outcome::Accepted);
        assert_eq!(p.batch(0).unwrap().0, [1]);
        p.answer(0, &[1], &Outcome::Rejected("HTTP 400".into()));
        assert_eq!(p.batch(0).unwrap().0, [2]);
        p.answer(0, &[2], &Outcome::Accepted);
        assert_eq!(p.batch(0).unwrap().0, [3]);
        p.answer(0, &[3], &Outcome::Retry("HTTP 503".into()));
        assert_eq!(p.batch(0).unwrap().0, [3]);
        p.answer(0, &[3], &Outcome::Accepted);
        assert!(!p.has_work(0));
        // Target 1 still owes everything: nothing settled yet.
        assert!(p.reap(now, false).is_empty());
        let (seqs, _) = p.batch(1).unwrap();
        p.answer(1, &seqs, &Outcome::Accepted);
        let (seqs, _) = p.batch(1).unwrap();
        assert_eq!(seqs, [3]);
        p.answer(1, &seqs, &Outcome::Accepted);
        let fates: Vec<_> = p
            .reap(now, false)
            .into_iter()
            .map(|(e, f)| (e.seq, f))
            .collect();
        // #1 was rejected by one Alertmanager and accepted by the other: delivered.
        assert_eq!(
            fates,
            [
                (0, Fate::Delivered),
                (1, Fate::Delivered),
                (2, Fate::Delivered),
                (3, Fate::Delivered)
            ]
        );
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn rejected_everywhere_expired_shutdown_and_full_are_drops() {
        let t0 = Instant::now();
        let mut p = pending(1, 3, 10);
        for n in 0..3 {
            push(&mut p, n, t0);
        }
        p.answer(0, &[1], &Outcome::Rejected("HTTP 400".into()));
        // Full: the oldest makes room.
        let old = p.push("{}".into(), "r", taken(9, t0 + Duration::from_secs(30)));
        assert_eq!(old.map(|e| e.seq), Some(0));
        let fates: Vec<_> = p
            .reap(t0 + Duration::from_secs(61), false)
            .into_iter()
            .map(|(e, f)| (e.seq, f))
            .collect();
        assert_eq!(fates, [(1, Fate::Rejected), (2, Fate::Expired)]);
        let fates: Vec<_> = p
            .reap(t0 + Duration::from_secs(62), true)
            .into_iter()
            .map(|(e, f)| (e.seq, f))
            .collect();
        assert_eq!(fates, [(3, Fate::Shutdown)]);
    }

    #[test]
    fn partly_delivered_when_one_alertmanager_stays_down() {
        let t0 = Instant::now();
        let mut p = pending(2, 10, 10);
        push(&mut p, 0, t0);
        p.answer(0, &[0], &Outcome::Accepted);
        p.answer(1, &[0], &Outcome::Retry("connect: refused".into()));
        assert!(p.reap(t0 + Duration::from_secs(59), false).is_empty());
        let f: Vec<_> = p
            .reap(t0 + Duration::from_secs(60), false)
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(f, [Fate::Partly]);
    }

    /// The wait after the `failures`-th failure in a row, drawing `rand` for it.
    fn backoff(failures: u32, rand: u64) -> Duration {
        let mut b = BACKOFF;
        for _ in 1..failures {
            b.fail(0);
        }
        b.fail(rand)
    }

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        assert!(backoff(1, 0) >= Duration::from_millis(250));
        assert!(backoff(1, 999) < Duration::from_millis(500));
        assert!(backoff(3, 500) > backoff(2, 500));
        assert!(backoff(40, 999) <= Duration::from_secs(15));
        assert!(backoff(40, 0) >= Duration::from_millis(7500));
    }
}
