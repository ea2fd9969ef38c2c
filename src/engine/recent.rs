//! The ids of the alerts raised lately, so a finding raised again from another copy of
//! the same entry (an entry without a request id read from both audit devices) goes out
//! once: the second is dropped and counted. Bounded: the oldest id is forgotten past
//! the cap, so memory is `cap` x 16 bytes (and the order queue) whatever the input.

use std::collections::VecDeque;

use super::pairing::id_key;
use crate::util::fifo_set::FifoSet;

pub struct RecentIds {
    ids: FifoSet<u128>,
}

impl RecentIds {
    pub fn new(cap: usize) -> RecentIds {
        RecentIds {
            ids: FifoSet::new(cap),
        }
    }

    /// True when `id` was not raised lately (and remember it).
    pub fn first(&mut self, id: &str) -> bool {
        self.ids.insert(id_key(id))
    }

    /// The ids remembered, oldest first (for a snapshot).
    pub fn save(&self) -> &VecDeque<u128> {
        self.ids.oldest_first()
    }

    /// Remember the ids of a snapshot (oldest first), as if they had just been raised.
    pub fn restore(&mut self, ids: VecDeque<u128>) {
        for key in ids {
            self.ids.insert(key);
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
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
