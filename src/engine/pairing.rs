//! Request/response pairing. Decisions are made on the response entry (the outcome is
//! known). A request entry is held (its raw line) until its response arrives; held
//! requests whose response does not come are handed back, oldest first, to be judged on
//! their own. One request is decided once: decided ids are remembered in a bounded FIFO
//! set, so a duplicate or late response is recognised and dropped.
//!
//! Bounds (a client shapes request bodies and ids): the held lines are bounded by count
//! (`max_pending_requests`) and by bytes (`max_pending_bytes`, each line's buffer capacity
//! plus [`ENTRY_OVERHEAD`]); beyond either, the oldest held requests are handed back one at
//! a time until both hold again, never the whole table. Decided ids are 128-bit hashes of
//! the id, whatever its length: `max(max_pending_requests, 1024)` of them, about 40 bytes
//! each. Reused line buffers: at most [`POOL_MAX`] of at most [`POOL_BUF_MAX`] bytes.

use std::collections::{HashSet, VecDeque};

use super::detect::Map;

/// Bytes a held request costs beyond its line: its key in the map and the order queue.
pub const ENTRY_OVERHEAD: usize = 96;
/// Line buffers kept for reuse.
pub const POOL_MAX: usize = 256;
/// A larger buffer is freed rather than kept for reuse.
pub const POOL_BUF_MAX: usize = 16 * 1024;

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
    /// Bytes the held lines cost (see [`ENTRY_OVERHEAD`]).
    bytes: usize,
    max_bytes: usize,
}

fn cost(line: &[u8], capacity: usize) -> usize {
    capacity.max(line.len()) + ENTRY_OVERHEAD
}

impl Pairing {
    /// At most `cap` held requests and `max_bytes` of them; the decided set remembers
    /// `max(cap, 1024)` ids.
    pub fn new(cap: usize, max_bytes: usize) -> Pairing {
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
            bytes: 0,
            max_bytes,
        }
    }

    /// New caps (a reload); the caller hands back the oldest while over them.
    pub fn set_caps(&mut self, cap: usize, max_bytes: usize) {
        self.cap = cap;
        self.max_bytes = max_bytes;
        self.decided.cap = cap.max(1024);
    }

    fn release(&mut self, raw: &[u8], capacity: usize) {
        self.bytes = self.bytes.saturating_sub(cost(raw, capacity));
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
        self.bytes += cost(&buf, buf.capacity());
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
            self.release(&raw, raw.capacity());
            self.recycle(raw);
        }
        true
    }

    /// The oldest held request due: held at or before `before`, or, with `overflow`, the
    /// oldest while over the count or byte budget. It counts as decided from now on.
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
            self.release(&raw, raw.capacity());
            self.decided.insert(key);
            return Some(Held { raw, time });
        }
    }

    /// Give a judged request's buffer back for reuse.
    pub fn recycle(&mut self, raw: Vec<u8>) {
        if raw.capacity() <= POOL_BUF_MAX && self.pool.len() < POOL_MAX {
            self.pool.push(raw);
        }
    }

    /// Over the count or the byte budget.
    pub fn over_cap(&self) -> bool {
        self.pending.len() > self.cap || self.bytes > self.max_bytes
    }

    /// Bytes the held requests cost.
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }

    /// Held requests.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Decided ids remembered.
    pub fn decided(&self) -> usize {
        self.decided.set.len()
    }

    /// The held requests (oldest first) and the decided ids (oldest first), for a snapshot.
    pub fn save(&self) -> PairingOut<'_> {
        PairingOut {
            held: self
                .order
                .iter()
                .filter_map(|(k, t)| self.pending.get(k).map(|raw| (*k, *t, raw.as_slice())))
                .collect(),
            decided: &self.decided.order,
        }
    }

    /// Take back what [`Pairing::save`] gave (into a new, empty table). Held requests past
    /// the caps are judged by the caller as usual ([`Pairing::over_cap`]).
    pub fn restore(&mut self, saved: PairingIn) {
        for id in saved.decided {
            self.decided.insert(id);
        }
        for (key, time, raw) in saved.held {
            if self.decided.set.contains(&key) || self.pending.contains_key(&key) {
                continue;
            }
            self.bytes += cost(&raw, raw.capacity());
            self.pending.insert(key, raw);
            self.order.push_back((key, time));
        }
    }
}

/// What a snapshot holds of the pairing table (written from borrowed lines).
#[derive(serde::Serialize)]
pub struct PairingOut<'a> {
    held: Vec<(u128, i64, &'a [u8])>,
    decided: &'a VecDeque<u128>,
}

/// What a snapshot holds of the pairing table, read back.
#[derive(serde::Deserialize)]
pub struct PairingIn {
    held: Vec<(u128, i64, Vec<u8>)>,
    decided: VecDeque<u128>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_decides_its_request_once_and_releases_it() {
        let mut p = Pairing::new(10, 1 << 20);
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
    fn over_the_byte_budget_only_the_oldest_come_back() {
        let mut p = Pairing::new(100, 3 * (1000 + ENTRY_OVERHEAD));
        let line = [b'x'; 1000];
        for (n, id) in ["a", "b", "c"].iter().enumerate() {
            p.hold(id, &line, n as i64);
            assert!(!p.over_cap(), "{id} fits");
        }
        p.hold("d", &line, 3);
        assert!(p.over_cap());
        let h = p
            .next_due(i64::MIN, true)
            .expect("the oldest is handed back");
        assert_eq!(h.time, 0);
        p.recycle(h.raw);
        assert!(!p.over_cap());
        assert!(
            p.next_due(i64::MIN, true).is_none(),
            "within budget: nothing else"
        );
        assert_eq!(p.pending(), 3);
        assert!(!p.decide("a"), "the evicted request counts as decided");
        assert!(p.decide("b"));
        assert_eq!(p.pending_bytes(), 2 * (1000 + ENTRY_OVERHEAD));
    }

    #[test]
    fn over_the_count_only_the_oldest_come_back() {
        let mut p = Pairing::new(2, usize::MAX);
        p.hold("a", b"A", 30);
        p.hold("b", b"B", 10);
        p.hold("c", b"C", 20);
        let h = p.next_due(i64::MIN, true).expect("over the count");
        assert_eq!(
            (h.raw.as_slice(), h.time),
            (&b"A"[..], 30),
            "oldest held, not earliest time"
        );
        assert!(p.next_due(i64::MIN, true).is_none());
        assert_eq!(p.pending(), 2);
    }

    #[test]
    fn a_request_larger_than_the_budget_comes_back_at_once() {
        let mut p = Pairing::new(100, 100);
        p.hold("a", &[b'x'; 500], 1);
        assert!(p.over_cap());
        assert!(p.next_due(i64::MIN, true).is_some());
        assert_eq!((p.pending(), p.pending_bytes()), (0, 0));
    }

    #[test]
    fn held_requests_come_back_oldest_first_when_due() {
        let mut p = Pairing::new(10, 1 << 20);
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
