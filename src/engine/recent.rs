//! The ids of the alerts raised lately, so a finding raised again from another copy of
//! the same entry (an entry without a request id read from both audit devices) goes out
//! once: the second is dropped and counted. Bounded: the oldest id is forgotten past
//! the cap, so memory is `cap` x 16 bytes (and the order queue) whatever the input.

use std::collections::{HashSet, VecDeque};

use super::pairing::id_key;

pub struct RecentIds {
    set: HashSet<u128, foldhash::fast::RandomState>,
    order: VecDeque<u128>,
    cap: usize,
}

impl RecentIds {
    pub fn new(cap: usize) -> RecentIds {
        RecentIds {
            set: HashSet::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// True when `id` was not raised lately (and remember it).
    pub fn first(&mut self, id: &str) -> bool {
        let key = id_key(id);
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// The ids remembered, oldest first (for a snapshot).
    pub fn save(&self) -> &VecDeque<u128> {
        &self.order
    }

    /// Remember the ids of a snapshot (oldest first), as if they had just been raised.
    pub fn restore(&mut self, ids: VecDeque<u128>) {
        for key in ids {
            if self.set.insert(key) {
                self.order.push_back(key);
                if self.order.len() > self.cap {
                    if let Some(old) = self.order.pop_front() {
                        self.set.remove(&old);
                    }
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_first_once_until_it_is_forgotten() {
        let mut r = RecentIds::new(2);
        assert!(r.first("a"));
        assert!(!r.first("a"));
        assert!(r.first("b"));
        assert!(r.first("c"), "a is forgotten past the cap");
        assert!(r.first("a"));
        assert_eq!(r.len(), 2);
    }
}
