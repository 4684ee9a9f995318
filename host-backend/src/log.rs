//! Log lines a guest can trigger: the rate limiter every such line goes
//! through, and the sanitiser for guest-chosen names. The policy (what each
//! level is for) is written down in `docs/logging.md`.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Warnings a single limiter lets through per [`WARN_WINDOW`]. Enough to show
/// what went wrong; a guest that keeps sending garbage gets summarised.
pub const WARN_BURST: u32 = 10;

/// The window over which [`WARN_BURST`] applies.
pub const WARN_WINDOW: Duration = Duration::from_secs(10);

/// Lets at most [`WARN_BURST`] events through per [`WARN_WINDOW`] and counts
/// the rest, so that a guest repeating a fault cannot flood the log.
#[derive(Debug)]
pub struct WarnLimiter {
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
    burst: u32,
}

impl Default for WarnLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl WarnLimiter {
    /// A limiter with a fresh window.
    pub fn new() -> Self {
        Self::with_burst(WARN_BURST)
    }

    /// A limiter that lets `burst` events through per [`WARN_WINDOW`].
    pub fn with_burst(burst: u32) -> Self {
        WarnLimiter {
            window_start: Instant::now(),
            in_window: 0,
            suppressed: 0,
            burst,
        }
    }

    /// Returns `Some(n)` when the caller may log, where `n` is the number of
    /// events suppressed since the last allowed one (to mention in the line),
    /// or `None` when this event must be dropped.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= WARN_WINDOW {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        }
    }

    /// Events dropped and not yet reported.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

/// A limiter shared by the whole process, for lines that have no session
/// or connection of their own at hand.
pub fn daemon_limiter() -> MutexGuard<'static, WarnLimiter> {
    static L: OnceLock<Mutex<WarnLimiter>> = OnceLock::new();
    L.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Logs an event at `level` (`error`, `warn` or `info`) through a
/// [`WarnLimiter`], mentioning how many earlier lines were suppressed.
/// Every error, warn and info line a guest can trigger comes through here
/// (`tests/log_policy.rs` keeps it so).
#[macro_export]
macro_rules! limited {
    ($level:ident, $limiter:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.allow() {
            if suppressed > 0 {
                tracing::$level!(suppressed, $($arg)+);
            } else {
                tracing::$level!($($arg)+);
            }
        }
    };
}

/// [`limited!`] at level `error`: an operation a guest asked for failed in
/// the daemon (not in the runtime), e.g. resources ran out.
#[macro_export]
macro_rules! limited_error {
    ($limiter:expr, $($arg:tt)+) => { $crate::limited!(error, $limiter, $($arg)+) };
}

/// [`limited!`] at level `warn`: abnormal but handled (a guest's bad
/// request, a refused connection).
#[macro_export]
macro_rules! limited_warn {
    ($limiter:expr, $($arg:tt)+) => { $crate::limited!(warn, $limiter, $($arg)+) };
}

/// [`limited!`] at level `info`: lifecycle lines a guest can repeat at
/// will (connections, sessions, device resets).
#[macro_export]
macro_rules! limited_info {
    ($limiter:expr, $($arg:tt)+) => { $crate::limited!(info, $limiter, $($arg)+) };
}

/// Characters of a guest-chosen name (such as the session's client name)
/// that reach the log.
pub const LOGGED_NAME_CHARS: usize = 64;

/// A guest-chosen name as the log shows it: at most
/// [`LOGGED_NAME_CHARS`] characters, control characters escaped, so that
/// it can neither start a forged log line nor steer a terminal.
pub fn logged_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(LOGGED_NAME_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(LOGGED_NAME_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_names_are_short_and_escaped() {
        assert_eq!(logged_name("clinfo"), "clinfo");
        assert_eq!(logged_name("a\nb\u{1b}"), "a\\nb\\u{1b}");
        let long = "x".repeat(1000);
        assert_eq!(logged_name(&long).chars().count(), LOGGED_NAME_CHARS + 1);
    }

    #[test]
    fn limiter_lets_a_burst_through_then_counts() {
        let mut l = WarnLimiter::new();
        for _ in 0..WARN_BURST {
            assert_eq!(l.allow(), Some(0));
        }
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        assert_eq!(l.suppressed(), 2);
        // A new window reports what was dropped.
        l.window_start -= WARN_WINDOW;
        assert_eq!(l.allow(), Some(2));
        assert_eq!(l.suppressed(), 0);
    }
}
