//! Exponential backoff with jitter, for anything that retries a remote service (the
//! Alertmanager and email sinks, the CloudWatch source), and the small random number
//! generator that draws the jitter.
//!
//! Invariants: the first failure waits about `initial`, each further one doubles the step
//! up to `max`, and a success ([`Backoff::reset`]) starts over. The wait is the step minus
//! a random part of at most `jitter_pct` % of it, so peers that failed together do not
//! retry together; with `jitter_pct` 0 the wait is the step exactly. Waits are whole
//! milliseconds and never exceed `max`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One retried thing's backoff: its policy (initial step, doubling to a cap, jitter) and
/// its state (the current step and the failures since the last success).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    jitter_pct: u64,
    /// The step of the last failure; 0 while there has been none since the last reset.
    step_ms: u64,
    failures: u32,
}

impl Backoff {
    /// A policy: steps of `initial` doubling up to `max`, each wait `100 - jitter_pct` to
    /// 100 % of its step (`jitter_pct` above 100 counts as 100).
    pub const fn new(initial: Duration, max: Duration, jitter_pct: u8) -> Backoff {
        let max_ms = max.as_millis() as u64;
        let initial_ms = initial.as_millis() as u64;
        Backoff {
            initial_ms: if initial_ms < max_ms {
                initial_ms
            } else {
                max_ms
            },
            max_ms,
            jitter_pct: if jitter_pct > 100 {
                100
            } else {
                jitter_pct as u64
            },
            step_ms: 0,
            failures: 0,
        }
    }

    /// A failure: the step grows and the wait before the next try is returned. `rand` is
    /// any random number (see [`Rng`]); it only picks the jitter.
    pub fn fail(&mut self, rand: u64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.step_ms = if self.step_ms == 0 {
            self.initial_ms
        } else {
            self.step_ms.saturating_mul(2).min(self.max_ms)
        };
        let span = self.step_ms * self.jitter_pct / 100;
        Duration::from_millis(self.step_ms - span + rand % (span + 1))
    }

    /// A success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.step_ms = 0;
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// xorshift64*: cheap, good enough for jitter, and not for anything secret.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed seed (tests); any seed works, 0 included.
    pub fn seeded(seed: u64) -> Rng {
        // xorshift never leaves 0: make sure it does not start there.
        Rng(seed | 1)
    }

    /// A generator seeded from the clock and the process id, so that two daemons started
    /// together (an HA pair) do not draw the same jitter.
    pub fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng::seeded(nanos ^ u64::from(std::process::id()).rotate_left(32))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn steps_double_up_to_the_cap_and_reset_starts_over() {
        let mut b = Backoff::new(S, 60 * S, 0);
        let waits: Vec<u64> = (0..8).map(|_| b.fail(12345).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.failures(), 8);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.fail(7), S);
    }

    #[test]
    fn jitter_takes_at_most_its_share_off_the_step() {
        let mut b = Backoff::new(Duration::from_millis(1000), Duration::from_secs(300), 50);
        assert_eq!(b.clone().fail(0), Duration::from_millis(500));
        assert_eq!(b.clone().fail(500), Duration::from_millis(1000));
        let mut rng = Rng::seeded(42);
        for _ in 0..30 {
            let step = b.step_ms.saturating_mul(2).clamp(1000, 300_000);
            let w = b.fail(rng.next_u64()).as_millis() as u64;
            assert!((step / 2..=step).contains(&w), "{w} for a step of {step}");
        }
        // Full jitter: anything from zero to the step.
        let mut b = Backoff::new(S, S, 200);
        assert!(b.fail(u64::MAX) <= S);
    }

    #[test]
    fn an_initial_step_over_the_cap_is_the_cap() {
        let mut b = Backoff::new(10 * S, 2 * S, 0);
        assert_eq!(b.fail(0), 2 * S);
        assert_eq!(b.fail(0), 2 * S);
    }

    #[test]
    fn the_generator_moves_and_never_sticks_at_zero() {
        let mut r = Rng::seeded(0);
        let draws: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert!(draws.iter().all(|&d| d != 0), "{draws:?}");
        assert_ne!(draws[0], draws[1]);
        assert_ne!(Rng::from_clock().next_u64(), 0);
    }
}
