//! Seeded pseudo-randomness and fake HMACs for the simulator.
//!
//! Invariants: everything here is a pure function of its seed, so one seed always gives
//! the same bytes; no global or thread-local state, no clock. Every actor owns its own
//! [`Rng`] derived from the run seed and a stable label, so adding an actor or changing
//! one actor's behaviour does not reshuffle every other actor's traffic.
//!
//! [`Salt::hmac`] imitates the audit device's `hmac-sha256:` values: the same plaintext
//! always hashes to the same 64 hex digits (as it does under one device salt), different
//! plaintexts to different ones. It is not a cryptographic MAC and never needs to be: the
//! simulator only has to look like Vault, and nothing reads the plaintext back.

/// The SplitMix64 finaliser: a strong 64-bit bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a label (FNV-1a, then mixed), for deriving seeds.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// SplitMix64: tiny, fast, and good enough for traffic shapes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(mix64(seed ^ 0x5157_a7c4_d1e0_0001))
    }

    /// An independent stream for one actor: same (seed, label), same stream.
    pub fn derive(seed: u64, label: &str) -> Rng {
        Rng::new(seed.wrapping_mul(GOLDEN) ^ hash_str(label))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`); the multiply-shift bias is far below what matters here.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n.max(1) as u128) >> 64) as u64
    }

    /// Uniform in `lo..hi` (`hi > lo`; returns `lo` otherwise).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64) as i64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    /// An exponential wait with the given mean (ns), for Poisson arrivals.
    pub fn exp(&mut self, mean: i64) -> i64 {
        let u = 1.0 - self.unit(); // (0, 1]
        (-(u.ln()) * mean as f64) as i64
    }

    pub fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(n);
        let mut bits = 0u64;
        for i in 0..n {
            if i % 16 == 0 {
                bits = self.next_u64();
            }
            s.push(HEX[(bits & 15) as usize] as char);
            bits >>= 4;
        }
        s
    }

    /// A request id as Vault prints it: 8-4-4-4-12 random hex (not RFC 4122 versioned).
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// Random characters from `alphabet`.
    pub fn token(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

/// Base62, as in Vault token and lease suffixes.
pub const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The audit device's salt: the key of every fake HMAC of one run.
#[derive(Clone, Debug)]
pub struct Salt(u64);

impl Salt {
    pub fn new(seed: u64) -> Salt {
        Salt(mix64(seed ^ 0x00a0_d17d_e71c_e5a1))
    }

    /// `hmac-sha256:` and 64 lowercase hex digits, a function of (salt, plaintext).
    pub fn hmac(&self, plaintext: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(12 + 64);
        out.push_str("hmac-sha256:");
        for lane in 0..4u64 {
            let mut h = mix64(self.0 ^ lane.wrapping_mul(GOLDEN));
            for chunk in plaintext.as_bytes().chunks(8) {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                h = mix64(h ^ u64::from_le_bytes(w)).wrapping_add(GOLDEN);
            }
            h = mix64(h ^ plaintext.len() as u64);
            for i in (0..16).rev() {
                out.push(HEX[((h >> (i * 4)) & 15) as usize] as char);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::derive(7, "eso/acme");
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::derive(7, "eso/acme");
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::derive(7, "eso/lumen");
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bounded_draws_stay_in_range() {
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            let x = r.range(-5, 5);
            assert!((-5..5).contains(&x));
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn uuid_and_hmac_shapes() {
        let mut r = Rng::new(3);
        let u = r.uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        let s = Salt::new(1);
        let h = s.hmac("bookstore-platform-acme");
        assert_eq!(h.len(), 12 + 64);
        assert!(h[12..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(h, s.hmac("bookstore-platform-acme"));
        assert_ne!(h, s.hmac("bookstore-platform-lumen"));
        assert_ne!(h, Salt::new(2).hmac("bookstore-platform-acme"));
        assert_ne!(s.hmac(""), s.hmac("\0"));
    }
}
