//! The shim's log lines: every line it writes to stderr goes through a
//! [`Limiter`], so that a program calling a failing API in a loop cannot
//! flood stderr, and errors are written with their whole cause chain
//! ([`Chain`]).
//!
//! | limiter | lines |
//! |---|---|
//! | [`CONNECT`] | why the process's one session could not be opened (once) |
//! | [`CALLS`] | failed calls and internal errors of entry points (one a second) |
//! | a [`Limiter::once`] per setting | a bad environment setting (`transport::settings`) |

use std::error::Error;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why the session could not be opened: said once, as the shim does not
/// retry.
pub(crate) static CONNECT: Limiter = Limiter::once();

/// Failed calls: a program can fail the same call in a loop, so at most
/// one line a second, each saying how many were left out before it.
pub(crate) static CALLS: Limiter = Limiter::every(Duration::from_secs(1));

/// Lets a line through at most once per period (or once for good),
/// counting the lines it holds back.
#[derive(Debug)]
pub struct Limiter {
    /// Milliseconds between lines; `u64::MAX`: one line, ever.
    period_ms: u64,
    /// Earliest time of the next line, in milliseconds since [`now_ms`]'s
    /// origin.
    next_ms: AtomicU64,
    /// Lines held back since the last one written.
    suppressed: AtomicU64,
}

impl Limiter {
    /// A limiter that lets one line through, ever.
    pub const fn once() -> Self {
        Self::with_period_ms(u64::MAX)
    }

    /// A limiter that lets one line through per `period`.
    pub const fn every(period: Duration) -> Self {
        let ms = period.as_millis();
        Self::with_period_ms(if ms > u64::MAX as u128 {
            u64::MAX
        } else {
            ms as u64
        })
    }

    const fn with_period_ms(period_ms: u64) -> Self {
        Limiter {
            period_ms,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line at time `now_ms` may be written: `Some(n)` with the
    /// number of lines held back since the last one, or `None` (and the
    /// line is counted as held back).
    pub fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let mut next = self.next_ms.load(Ordering::Relaxed);
        loop {
            if now_ms < next {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let after = now_ms.saturating_add(self.period_ms);
            match self.next_ms.compare_exchange_weak(
                next,
                after,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(seen) => next = seen,
            }
        }
    }

    /// Writes `vcompute: {msg}` to stderr if the limiter lets it through.
    pub fn log(&self, msg: fmt::Arguments<'_>) {
        if let Some(held) = self.admit_at(now_ms()) {
            // Nothing to do if stderr is gone.
            let _ = write_line(&mut std::io::stderr().lock(), msg, held);
        }
    }
}

/// Writes one log line: the prefix, the message and, if lines were held
/// back before it, how many.
pub fn write_line(out: &mut dyn Write, msg: fmt::Arguments<'_>, held: u64) -> std::io::Result<()> {
    match held {
        0 => writeln!(out, "vcompute: {msg}"),
        1 => writeln!(out, "vcompute: {msg} (1 earlier line suppressed)"),
        n => writeln!(out, "vcompute: {msg} ({n} earlier lines suppressed)"),
    }
}

/// Milliseconds since the first log-related call in this process: a
/// monotonic clock, so a clock step neither floods nor silences the log.
fn now_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let ms = ORIGIN.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Displays an error followed by each of its causes, `: `-separated: the
/// way to put an error into a log line.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_of_failures_gives_one_line_a_period_with_the_count() {
        let l = Limiter::every(Duration::from_secs(1));
        assert_eq!(l.admit_at(5), Some(0), "the first line goes out");
        for t in 6..1005 {
            assert_eq!(l.admit_at(t), None, "at {t} ms");
        }
        assert_eq!(
            l.admit_at(1005),
            Some(999),
            "one period later, with the count"
        );
        assert_eq!(l.admit_at(1006), None);
        assert_eq!(l.admit_at(9000), Some(1), "the count starts again");
    }

    #[test]
    fn once_lets_exactly_one_line_through() {
        let l = Limiter::once();
        assert_eq!(l.admit_at(0), Some(0));
        for t in [0, 1, 1 << 40, u64::MAX - 1] {
            assert_eq!(l.admit_at(t), None);
        }
    }

    #[test]
    fn threads_racing_get_one_line_between_them() {
        let l = Limiter::every(Duration::from_secs(3600));
        let admitted: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).filter(|_| l.admit_at(7).is_some()).count() as u64))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(admitted, 1);
        assert_eq!(l.admit_at(7 + 3_600_000), Some(3999));
    }

    #[test]
    fn lines_say_how_many_were_held_back() {
        let mut out = Vec::new();
        write_line(&mut out, format_args!("call failed"), 0).unwrap();
        write_line(&mut out, format_args!("call failed"), 1).unwrap();
        write_line(&mut out, format_args!("call failed"), 41).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "vcompute: call failed\n\
             vcompute: call failed (1 earlier line suppressed)\n\
             vcompute: call failed (41 earlier lines suppressed)\n"
        );
    }

    #[test]
    fn a_chain_writes_every_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
    }
}
