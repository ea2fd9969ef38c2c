//! Event-time windows shared by the stateful detectors: the episode (one alert per
//! continuous holding of a condition) and the sliding window of recent times. Nothing here
//! reads a clock: time is passed in, in nanoseconds of event time.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;

/// A state table keyed by attacker-influenced strings: seeded hashing.
pub type Map<K, V> = HashMap<K, V, RandomState>;

pub const NANOS: i64 = 1_000_000_000;

/// One alert per episode. An episode starts when the condition first holds and ends only
/// once it has not held for a whole window, so a count hovering around its threshold is
/// one episode, not an alert at every crossing.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Episode {
    /// Event time the condition last held, while an episode is open.
    last_held: Option<i64>,
}

impl Episode {
    /// Record whether the condition holds at `t`; true when this starts a new episode.
    pub fn update(&mut self, holds: bool, t: i64, window: i64) -> bool {
        if let Some(last) = self.last_held {
            if t - last > window {
                self.last_held = None;
            }
        }
        if !holds {
            return false;
        }
        let starts = self.last_held.is_none();
        self.last_held = Some(self.last_held.map_or(t, |l| l.max(t)));
        starts
    }
}

/// Insert `t` into a sorted window of at most `cap` times measured back from the newest;
/// true when the window holds `cap` times. Entries may arrive a little out of order.
pub fn slide(times: &mut VecDeque<i64>, t: i64, window: i64, cap: usize) -> bool {
    let pos = times.partition_point(|&x| x <= t);
    times.insert(pos, t);
    let newest = *times.back().expect("just inserted");
    while times.front().is_some_and(|&f| f <= newest - window) {
        times.pop_front();
    }
    while times.len() > cap {
        times.pop_front();
    }
    times.len() >= cap
}

/// Room for one more key in a table of at most `max_keys` (keyed state of every stateful
/// detector): when it is full, keys last seen at or before `horizon` go, then, if it is
/// still full, the least recently seen half ([`evict_older_half`]). How many went, to be
/// counted as evicted.
pub fn make_room<K, V>(
    table: &mut Map<K, V>,
    max_keys: u64,
    horizon: i64,
    last: impl Fn(&V) -> i64,
) -> u64 {
    if (table.len() as u64) < max_keys {
        return 0;
    }
    let before = table.len();
    table.retain(|_, v| last(v) > horizon);
    if table.len() as u64 >= max_keys {
        evict_older_half(table, &last);
    }
    (before - table.len()) as u64
}

/// The least recently seen half of `table` goes (at least one entry when there is one);
/// how many went.
pub fn evict_older_half<K, V>(table: &mut Map<K, V>, last: impl Fn(&V) -> i64) -> u64 {
    if table.is_empty() {
        return 0;
    }
    let before = table.len();
    let pivot = older_half_pivot(table.values().map(&last).collect());
    table.retain(|_, v| last(v) > pivot);
    (before - table.len()) as u64
}

/// The time at and below which the least recently seen half of `lasts` lies.
pub fn older_half_pivot(mut lasts: Vec<i64>) -> i64 {
    let cut = lasts.len() / 2;
    *lasts.select_nth_unstable(cut).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_hovering_around_its_threshold_is_one_episode() {
        let mut e = Episode::default();
        let w = 30 * NANOS;
        assert!(e.update(true, 0, w));
        // Dips below and back within the window: the same episode.
        assert!(!e.update(false, 10 * NANOS, w));
        assert!(!e.update(true, 20 * NANOS, w));
        assert!(!e.update(false, 45 * NANOS, w));
        assert!(!e.update(true, 49 * NANOS, w));
        // Quiet for more than a window: the next hold is a new episode.
        assert!(!e.update(false, 100 * NANOS, w));
        assert!(e.update(true, 101 * NANOS, w));
    }
}
