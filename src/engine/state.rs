//! State of the stateful detectors. Every table is bounded: entries are evicted by event
//! time once they can no longer contribute, and a hard cap evicts the least recently seen
//! keys (counted, never silent). Nothing here reads a clock: time is passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

pub type Map<K, V> = HashMap<K, V, RandomState>;

pub const NANOS: i64 = 1_000_000_000;

/// One alert per episode. An episode starts when the condition first holds and ends only
/// once it has not held for a whole window, so a count hovering around its threshold is
/// one episode, not an alert at every crossing.
#[derive(Clone, Copy, Debug, Default)]
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
fn slide(times: &mut VecDeque<i64>, t: i64, window: i64, cap: usize) -> bool {
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

/// Count-in-window per key: one alert per episode (the condition holding continuously).
#[derive(Default)]
pub struct CountState {
    keys: Map<Box<str>, CountKey>,
    pub evicted: u64,
}

struct CountKey {
    times: VecDeque<i64>,
    episode: Episode,
    last: i64,
}

impl CountState {
    /// Record an event; `Some(count)` when a new episode starts.
    pub fn observe(
        &mut self,
        key: &str,
        t: i64,
        window_secs: u64,
        threshold: u64,
        max_keys: u64,
    ) -> Option<usize> {
        let window = window_secs as i64 * NANOS;
        if !self.keys.contains_key(key) {
            self.make_room(t - window, max_keys);
        }
        let k = self.keys.entry(key.into()).or_insert_with(|| CountKey {
            times: VecDeque::new(),
            episode: Episode::default(),
            last: t,
        });
        k.last = k.last.max(t);
        let holds = slide(&mut k.times, t, window, threshold as usize);
        k.episode.update(holds, t, window).then_some(k.times.len())
    }

    fn make_room(&mut self, horizon: i64, max_keys: u64) {
        if (self.keys.len() as u64) < max_keys {
            return;
        }
        let before = self.keys.len();
        self.keys.retain(|_, k| k.last > horizon);
        if self.keys.len() as u64 >= max_keys {
            let mut lasts: Vec<i64> = self.keys.values().map(|k| k.last).collect();
            let cut = lasts.len() / 2;
            let (_, pivot, _) = lasts.select_nth_unstable(cut);
            let pivot = *pivot;
            self.keys.retain(|_, k| k.last > pivot);
        }
        self.evicted += (before - self.keys.len()) as u64;
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Distinct values per key in a window.
#[derive(Default)]
pub struct DistinctState {
    keys: Map<Box<str>, DistinctKey>,
    pub evicted: u64,
}

struct DistinctKey {
    values: Map<Box<str>, i64>,
    episode: Episode,
    last: i64,
}

impl DistinctState {
    /// Record a value; `Some(sample)` (a few of the values) when a new episode starts.
    pub fn observe(
        &mut self,
        key: &str,
        value: &str,
        t: i64,
        window_secs: u64,
        threshold: u64,
        max_keys: u64,
    ) -> Option<(usize, Vec<String>)> {
        let window = window_secs as i64 * NANOS;
        if !self.keys.contains_key(key) && self.keys.len() as u64 >= max_keys {
            let before = self.keys.len();
            self.keys.retain(|_, k| k.last > t - window);
            if self.keys.len() as u64 >= max_keys {
                let mut lasts: Vec<i64> = self.keys.values().map(|k| k.last).collect();
                let cut = lasts.len() / 2;
                let pivot = *lasts.select_nth_unstable(cut).1;
                self.keys.retain(|_, k| k.last > pivot);
            }
            self.evicted += (before - self.keys.len()) as u64;
        }
        let k = self.keys.entry(key.into()).or_insert_with(|| DistinctKey {
            values: Map::default(),
            episode: Episode::default(),
            last: t,
        });
        k.last = k.last.max(t);
        match k.values.get_mut(value) {
            Some(seen) => *seen = (*seen).max(t),
            None => {
                k.values.insert(value.into(), t);
            }
        }
        // Values age out of the window; the table never holds more than the threshold
        // plus what arrived within one window.
        if k.values.len() as u64 >= threshold || k.values.len() > 4096 {
            k.values.retain(|_, seen| *seen > t - window);
        }
        if k.values.len() > 4096 + threshold as usize {
            let mut times: Vec<i64> = k.values.values().copied().collect();
            let cut = times.len() - threshold as usize;
            let pivot = *times.select_nth_unstable(cut).1;
            k.values.retain(|_, seen| *seen >= pivot);
        }
        let holds = k.values.len() as u64 >= threshold;
        if k.episode.update(holds, t, window) {
            let mut sample: Vec<String> = k.values.keys().map(|s| s.to_string()).collect();
            sample.sort();
            sample.truncate(10);
            return Some((k.values.len(), sample));
        }
        None
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Cadence of reads per key.
pub struct CadenceKey {
    /// Last read (any), ns.
    pub last_read: i64,
    /// Last read that was not a duplicate, ns.
    pub last_counted: i64,
    intervals: [u32; 8],
    n_intervals: u32,
    /// Reads within the too-frequent window, from the second read on (boxed: most keys
    /// hold none, and a million keys must fit in well under 256 MiB).
    #[allow(clippy::box_collection)] // 8 bytes inline instead of 32, a million times
    recent: Option<Box<VecDeque<i64>>>,
    frequent: Episode,
    pub race_episode: bool,
    pub stale_fired: bool,
    /// The stale deadline in force, ns (0: none).
    pub deadline: i64,
    timer_armed: bool,
}

impl CadenceKey {
    fn new(t: i64) -> CadenceKey {
        CadenceKey {
            last_read: t,
            last_counted: t,
            intervals: [0; 8],
            n_intervals: 0,
            recent: None,
            frequent: Episode::default(),
            race_episode: false,
            stale_fired: false,
            deadline: 0,
            timer_armed: false,
        }
    }

    /// Median of the recent non-duplicate intervals, in seconds.
    pub fn learned_interval_secs(&self) -> Option<u32> {
        let n = (self.n_intervals as usize).min(self.intervals.len());
        if n == 0 {
            return None;
        }
        let mut v: Vec<u32> = self.intervals[..n].to_vec();
        v.sort_unstable();
        Some(v[n / 2])
    }

    pub fn intervals_seen(&self) -> u32 {
        self.n_intervals
    }
}

/// What one read did to a cadence key.
#[derive(Debug, Default)]
pub struct CadenceObservation {
    /// Reads in the too-frequent window when a too-frequent episode starts.
    pub too_frequent: Option<usize>,
    /// The interval since the previous counted read, when the read was counted (ns).
    pub interval: Option<i64>,
    /// True when this is the first read of the key.
    pub new_key: bool,
}

/// Slots per page of the cadence table: pages never move, so the table grows without the
/// copy (and the doubled peak) of one big vector.
const PAGE: usize = 4096;

type Slot = Option<(Box<str>, CadenceKey)>;

/// Cadence keys, up to a cap of about a million in well under 256 MiB: each key's name is
/// stored once (the index holds only slot numbers, hashed by the name in the slot), slots
/// live in fixed pages, and a key read once holds no heap besides its name.
#[derive(Default)]
pub struct CadenceState {
    index: HashTable<u32>,
    hasher: RandomState,
    pages: Vec<Vec<Slot>>,
    /// Bumped when a slot's key is evicted, so its pending timers are ignored.
    gens: Vec<u32>,
    free: Vec<u32>,
    timers: BinaryHeap<Reverse<(i64, u32, u32)>>,
    pub evicted: u64,
}

fn slot_ref(pages: &[Vec<Slot>], s: u32) -> Option<&(Box<str>, CadenceKey)> {
    pages
        .get(s as usize / PAGE)?
        .get(s as usize % PAGE)?
        .as_ref()
}

pub struct CadenceParams {
    pub duplicate_within: i64,
    pub frequent_window: i64,
    pub frequent_min_reads: usize,
    pub max_keys: usize,
}

impl CadenceState {
    pub fn observe(&mut self, key: &str, t: i64, p: &CadenceParams) -> (u32, CadenceObservation) {
        let mut obs = CadenceObservation::default();
        let hash = self.hasher.hash_one(key);
        let pages = &self.pages;
        let found = self
            .index
            .find(hash, |&s| {
                slot_ref(pages, s).is_some_and(|(k, _)| &**k == key)
            })
            .copied();
        let slot = match found {
            Some(s) => s,
            None => {
                if self.index.len() >= p.max_keys {
                    self.evict_oldest();
                }
                obs.new_key = true;
                let entry = Some((Box::<str>::from(key), CadenceKey::new(t)));
                let s = match self.free.pop() {
                    Some(s) => {
                        self.pages[s as usize / PAGE][s as usize % PAGE] = entry;
                        s
                    }
                    None => {
                        if self.pages.last().is_none_or(|pg| pg.len() == PAGE) {
                            self.pages.push(Vec::with_capacity(PAGE));
                        }
                        let n = (self.pages.len() - 1) * PAGE;
                        let pg = self.pages.last_mut().expect("a page with room");
                        pg.push(entry);
                        self.gens.push(0);
                        (n + pg.len() - 1) as u32
                    }
                };
                let (pages, hasher) = (&self.pages, &self.hasher);
                self.index.insert_unique(hash, s, |&x| {
                    slot_ref(pages, x).map_or(0, |(k, _)| hasher.hash_one(&**k))
                });
                s
            }
        };
        let (_, k) = self.pages[slot as usize / PAGE][slot as usize % PAGE]
            .as_mut()
            .expect("indexed slot is live");
        // A key read once keeps its one time in `last_read`, not in a heap-allocated
        // window: the window is filled in at the second read (the same contents the
        // window would have had).
        if obs.new_key && p.frequent_min_reads > 1 {
            k.stale_fired = false;
            return (slot, obs);
        }
        let first_read = k.last_read;
        let recent = k
            .recent
            .get_or_insert_with(|| Box::new(VecDeque::with_capacity(4)));
        if !obs.new_key && recent.is_empty() {
            recent.push_back(first_read);
        }
        if !obs.new_key {
            if t - k.last_counted > p.duplicate_within {
                let iv = t - k.last_counted;
                obs.interval = Some(iv);
                let secs = (iv / NANOS).clamp(0, u32::MAX as i64) as u32;
                let i = (k.n_intervals as usize) % k.intervals.len();
                k.intervals[i] = secs;
                k.n_intervals = k.n_intervals.saturating_add(1);
                k.last_counted = t;
            }
            k.last_read = k.last_read.max(t);
        }
        k.stale_fired = false;
        let holds = slide(recent, t, p.frequent_window, p.frequent_min_reads);
        if k.frequent.update(holds, t, p.frequent_window) {
            obs.too_frequent = Some(recent.len());
        }
        (slot, obs)
    }

    pub fn key(&self, slot: u32) -> Option<(&str, &CadenceKey)> {
        slot_ref(&self.pages, slot).map(|(k, v)| (&**k, v))
    }

    pub fn key_mut(&mut self, slot: u32) -> Option<&mut CadenceKey> {
        self.pages
            .get_mut(slot as usize / PAGE)?
            .get_mut(slot as usize % PAGE)?
            .as_mut()
            .map(|(_, v)| v)
    }

    /// Set the stale deadline of a key (0 disarms).
    pub fn set_deadline(&mut self, slot: u32, deadline: i64) {
        let generation = self.gens.get(slot as usize).copied().unwrap_or(0);
        let Some(k) = self.key_mut(slot) else { return };
        k.deadline = deadline;
        if deadline > 0 && !k.timer_armed {
            k.timer_armed = true;
            self.timers.push(Reverse((deadline, slot, generation)));
        }
    }

    /// Keys whose stale deadline is at or before `watermark`, each once per silence.
    pub fn due(&mut self, watermark: i64) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if at > watermark {
                break;
            }
            self.timers.pop();
            if self.gens.get(slot as usize) != Some(&generation) {
                continue;
            }
            let Some(k) = self.key_mut(slot) else {
                continue;
            };
            if k.deadline > at {
                // Re-armed later by a newer read: wait for that deadline.
                let d = k.deadline;
                self.timers.push(Reverse((d, slot, generation)));
                continue;
            }
            k.timer_armed = false;
            if k.deadline > 0 && !k.stale_fired {
                k.stale_fired = true;
                out.push(slot);
            }
        }
        out
    }

    fn evict_oldest(&mut self) {
        let mut lasts: Vec<i64> = self
            .pages
            .iter()
            .flatten()
            .flatten()
            .map(|(_, k)| k.last_read)
            .collect();
        if lasts.is_empty() {
            return;
        }
        let cut = lasts.len() / 10;
        let pivot = *lasts.select_nth_unstable(cut).1;
        let slots = self.pages.iter_mut().flat_map(|pg| pg.iter_mut());
        for (i, s) in slots.enumerate() {
            let Some((key, k)) = s else { continue };
            if k.last_read <= pivot {
                let hash = self.hasher.hash_one(&**key);
                if let Ok(e) = self.index.find_entry(hash, |&x| x as usize == i) {
                    e.remove();
                }
                *s = None;
                self.gens[i] = self.gens[i].wrapping_add(1);
                self.free.push(i as u32);
                self.evicted += 1;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn timers(&self) -> usize {
        self.timers.len()
    }
}

/// Absence of matching events.
#[derive(Default)]
pub struct AbsenceState {
    pub last_seen: Option<i64>,
    pub fired: bool,
    /// The stream carried `min_events` within a window before its last event.
    pub busy: bool,
    recent: VecDeque<i64>,
}

impl AbsenceState {
    pub fn observe(&mut self, t: i64, window: i64, min_events: u64) {
        self.busy = slide(&mut self.recent, t, window, min_events as usize);
        self.last_seen = Some(self.last_seen.map_or(t, |l| l.max(t)));
        self.fired = false;
    }
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

    #[test]
    fn cadence_keys_survive_eviction_and_pages_and_a_loop_is_found_from_its_second_read() {
        let p = CadenceParams {
            duplicate_within: 0,
            frequent_window: 300 * NANOS,
            frequent_min_reads: 3,
            max_keys: 10_000,
        };
        let mut c = CadenceState::default();
        // More keys than fit in two pages, then past the cap: the oldest tenth goes.
        for i in 0..10_000i64 {
            let (slot, obs) = c.observe(&format!("ns\0secret/data/k{i}"), i * NANOS, &p);
            assert!(obs.new_key);
            assert_eq!(c.key(slot).unwrap().0, format!("ns\0secret/data/k{i}"));
        }
        assert_eq!(c.len(), 10_000);
        let (_, obs) = c.observe("ns\0secret/data/new", 20_000 * NANOS, &p);
        assert!(obs.new_key);
        assert_eq!(c.evicted, 1_001);
        assert_eq!(c.len(), 10_000 - 1_001 + 1);
        // A survivor is found again (not new); an evicted key starts over.
        let (_, obs) = c.observe("ns\0secret/data/k9999", 20_001 * NANOS, &p);
        assert!(!obs.new_key);
        assert_eq!(obs.interval, Some((20_001 - 9_999) * NANOS));
        let (_, obs) = c.observe("ns\0secret/data/k5", 20_002 * NANOS, &p);
        assert!(obs.new_key);
        // Three reads in the window: too frequent at the third, the first read counted.
        let key = "ns\0secret/data/loop";
        let t0 = 30_000 * NANOS;
        assert!(c.observe(key, t0, &p).1.too_frequent.is_none());
        assert!(c.observe(key, t0 + 5 * NANOS, &p).1.too_frequent.is_none());
        assert_eq!(c.observe(key, t0 + 10 * NANOS, &p).1.too_frequent, Some(3));
    }

    #[test]
    fn a_count_fires_once_per_episode() {
        let mut c = CountState::default();
        let fired: Vec<i64> = (0..200)
            .filter_map(|i| c.observe("k", i * NANOS, 60, 10, 100).map(|_| i))
            .collect();
        assert_eq!(fired, vec![9]);
        let again = c.observe("k", 1000 * NANOS, 60, 1, 100);
        assert!(
            again.is_some(),
            "a new burst after a quiet window is a new episode"
        );
    }
}
