//! A small deterministic generator (xorshift64) for tests that pick at random: the same
//! seed gives the same run, so a failure can be run again as it was.

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The `alert_key` label auditwatch gives the alert of this `id` (a stable hash of it).
pub fn alert_key_of(id: &str) -> String {
    format!("{:016x}", auditwatch::util::stable_hash::stable_hash([id]))
}
