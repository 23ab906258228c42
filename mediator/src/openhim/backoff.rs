//! Capped exponential backoff with jitter for registration retries.
//!
//! The delay for attempt n is `min(cap, initial·2ⁿ)` scaled by a factor in
//! [0.75, 1]. The jitter spreads mediators that restart together, while the range
//! is narrow enough that consecutive delays never shrink before the cap (the
//! lowest next delay, 0.75·2 = 1.5× the base, exceeds the highest current one).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, cap: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            cap: cap.max(initial),
            attempt: 0,
        }
    }

    /// The un-jittered delay of the current attempt.
    pub fn base(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// The next delay; `jitter` is a uniform sample in [0, 1).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let base = self.base();
        self.attempt = self.attempt.saturating_add(1);
        let j = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        base.mul_f64(0.75 + 0.25 * j)
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_under_the_cap() {
        let ms = Duration::from_millis;
        // Worst case for monotonicity: high jitter now, low jitter next.
        let mut b = Backoff::new(ms(100), ms(800));
        let mut prev = Duration::ZERO;
        for i in 0..4 {
            let d = b.next_delay(if i % 2 == 0 { 0.999 } else { 0.0 });
            assert!(d >= prev, "attempt {i}: {d:?} < {prev:?}");
            prev = d;
        }
        for _ in 0..50 {
            let d = b.next_delay(fastrand::f64());
            assert!(d <= ms(800) && d >= ms(600), "{d:?}");
        }
    }

    #[test]
    fn no_overflow_after_many_attempts() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..200 {
            assert!(b.next_delay(0.5) <= Duration::from_secs(60));
        }
        assert_eq!(b.attempts(), 200);
        b.reset();
        assert_eq!(b.base(), Duration::from_secs(1));
    }
}
