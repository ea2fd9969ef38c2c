//! Request/response pairing. Decisions are made on the response entry (the outcome is
//! known). A request entry is held (its raw line) until its response arrives; held
//! requests whose response does not come are handed back, oldest first, to be judged on
//! their own. One request is decided once: decided ids are remembered in a bounded FIFO
//! set, so a duplicate or late response is recognised and dropped.

use std::collections::{HashSet, VecDeque};

use super::detect::Map;

/// A request id as a 128-bit key: two independent 64-bit hashes of its bytes.
pub(super) fn id_key(id: &str) -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h1 = foldhash::fast::FixedState::with_seed(0x5eed).build_hasher();
    h1.write(id.as_bytes());
    let mut h2 = foldhash::fast::FixedState::with_seed(0xa11ce).build_hasher();
    h2.write(id.as_bytes());
    ((h1.finish() as u128) << 64) | h2.finish() as u128
}

/// Bounded FIFO set of request ids already decided.
struct Decided {
    set: HashSet<u128, foldhash::fast::RandomState>,
    order: VecDeque<u128>,
    cap: usize,
}

impl Decided {
    fn insert(&mut self, id: u128) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// A held request handed back to be judged on its own.
pub struct Held {
    pub raw: Vec<u8>,
    /// Its event time, at which it is judged.
    pub time: i64,
}

/// Held requests and decided ids.
pub struct Pairing {
    pending: Map<u128, Vec<u8>>,
    order: VecDeque<(u128, i64)>,
    /// Line buffers of decided requests, reused for the next held one.
    pool: Vec<Vec<u8>>,
    decided: Decided,
    cap: usize,
}

impl Pairing {
    /// At most `cap` held requests; the decided set remembers `max(cap, 1024)` ids.
    pub fn new(cap: usize) -> Pairing {
        Pairing {
            pending: Map::default(),
            order: VecDeque::new(),
            pool: Vec::new(),
            decided: Decided {
                set: HashSet::default(),
                order: VecDeque::new(),
                cap: cap.max(1024),
            },
            cap,
        }
    }

    /// Hold a request entry's line until its response; false when the request was already
    /// held or decided (a copy). Over the cap, the caller hands back the oldest.
    pub fn hold(&mut self, id: &str, raw: &[u8], time: i64) -> bool {
        let key = id_key(id);
        if self.decided.set.contains(&key) || self.pending.contains_key(&key) {
            return false;
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(raw);
        self.pending.insert(key, buf);
        self.order.push_back((key, time));
        if self.order.len() > 4 * self.pending.len() + 1024 {
            let live = &self.pending;
            self.order.retain(|(k, _)| live.contains_key(k));
        }
        true
    }

    /// A response arrived: true when it is the first for its request (to be judged),
    /// false for a duplicate. The held request line, if any, is released.
    pub fn decide(&mut self, id: &str) -> bool {
        let key = id_key(id);
        if !self.decided.insert(key) {
            return false;
        }
        if let Some(raw) = self.pending.remove(&key) {
            self.pool.push(raw);
        }
        true
    }

    /// The oldest held request due: held at or before `before`, or any while over the cap
    /// when `overflow`. It counts as decided from now on.
    pub fn next_due(&mut self, before: i64, overflow: bool) -> Option<Held> {
        loop {
            let &(key, time) = self.order.front()?;
            if !(time <= before || (overflow && self.over_cap())) {
                return None;
            }
            self.order.pop_front();
            let Some(raw) = self.pending.remove(&key) else {
                continue;
            };
            self.decided.insert(key);
            return Some(Held { raw, time });
        }
    }

    /// Give a judged request's buffer back for reuse.
    pub fn recycle(&mut self, raw: Vec<u8>) {
        self.pool.push(raw);
    }

    pub fn over_cap(&self) -> bool {
        self.pending.len() > self.cap
    }

    /// Held requests.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Decided ids remembered.
    pub fn decided(&self) -> usize {
        self.decided.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_decides_its_request_once_and_releases_it() {
        let mut p = Pairing::new(10);
        assert!(p.hold("a", b"req a", 1));
        assert!(!p.hold("a", b"req a again", 2), "a copy is not held twice");
        assert_eq!(p.pending(), 1);
        assert!(p.decide("a"));
        assert!(!p.decide("a"), "a second response is a duplicate");
        assert_eq!(p.pending(), 0);
        assert!(
            !p.hold("a", b"late copy", 3),
            "a decided request is not held"
        );
        assert!(p.next_due(i64::MAX, false).is_none());
    }

    #[test]
    fn held_requests_come_back_oldest_first_when_due() {
        let mut p = Pairing::new(10);
        p.hold("a", b"A", 10);
        p.hold("b", b"B", 20);
        assert!(p.next_due(5, false).is_none());
        let h = p.next_due(15, false).expect("a is due");
        assert_eq!((h.raw.as_slice(), h.time), (&b"A"[..], 10));
        assert!(p.next_due(15, false).is_none());
        assert!(!p.decide("a"), "a timed-out request counts as decided");
        assert!(p.decide("b"));
    }
}
