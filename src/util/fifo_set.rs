//! A set that remembers at most `cap` values and forgets the oldest first: the decided
//! request ids, the alert ids raised lately, and each sink's delivered ids. Memory is
//! bounded by the cap whatever the input (the value twice: in the set and in the order).

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

pub struct FifoSet<T> {
    set: HashSet<T, foldhash::fast::RandomState>,
    order: VecDeque<T>,
    cap: usize,
}

impl<T: Copy + Eq + Hash> FifoSet<T> {
    /// At most `cap` values (at least one).
    pub fn new(cap: usize) -> FifoSet<T> {
        FifoSet {
            set: HashSet::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Remember `v`; false when it was already remembered. Past the cap the oldest value is
    /// forgotten.
    pub fn insert(&mut self, v: T) -> bool {
        if !self.set.insert(v) {
            return false;
        }
        self.order.push_back(v);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    pub fn contains(&self, v: &T) -> bool {
        self.set.contains(v)
    }

    /// A new cap; the oldest values past it are forgotten at the next insert.
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
    }

    /// The values remembered, oldest first.
    pub fn oldest_first(&self) -> &VecDeque<T> {
        &self.order
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
    fn a_value_is_new_once_until_it_is_forgotten() {
        let mut s = FifoSet::new(2);
        assert!(s.insert(1));
        assert!(!s.insert(1));
        assert!(s.insert(2));
        assert!(s.insert(3), "1 is forgotten past the cap");
        assert!(!s.contains(&1) && s.contains(&2) && s.contains(&3));
        assert!(s.insert(1));
        assert_eq!(s.len(), 2);
        assert_eq!(s.oldest_first().iter().copied().collect::<Vec<_>>(), [3, 1]);
    }
}
