//! Rate-limited log lines: a refusal caused by a peer is logged once per interval per call
//! site, with the number of lines suppressed since, so a hostile client cannot flood the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// At most one line per call site in this interval.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// One call site's limiter. Lock-free; a `static` per site (see [`warn_limited!`]).
pub struct RateLimited {
    /// Milliseconds since the process epoch at which the next line may be written, plus one (0:
    /// never written).
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl RateLimited {
    pub const fn new() -> Self {
        RateLimited {
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines suppressed since the last one)` when a line may be written now.
    pub fn check(&self, interval: Duration) -> Option<u64> {
        let now = now_ms();
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + interval.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for RateLimited {
    fn default() -> Self {
        Self::new()
    }
}

/// `tracing::warn!`, at most once per [`INTERVAL`] from this call site; the line carries
/// `suppressed`, the number of lines skipped since the last one.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::ratelog::RateLimited = $crate::ratelog::RateLimited::new();
        if let Some(suppressed) = LIMIT.check($crate::ratelog::INTERVAL) {
            tracing::warn!(suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_rest_counted() {
        let limit = RateLimited::new();
        assert_eq!(limit.check(Duration::from_secs(3600)), Some(0));
        for _ in 0..5 {
            assert_eq!(limit.check(Duration::from_secs(3600)), None);
        }
        let quick = RateLimited::new();
        assert_eq!(quick.check(Duration::ZERO), Some(0));
        assert_eq!(
            quick.check(Duration::ZERO),
            Some(0),
            "a zero interval never suppresses"
        );
    }
}
